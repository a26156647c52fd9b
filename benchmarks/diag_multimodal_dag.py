"""Diagnosis (issue 22): does the sparsity of the best *causal DAG* single out the true latents?

Partial correlations (``align="pcor"``) measure the Markov blanket (moral graph), in
which co-parents are joined; on the randomised family (``bench_multimodal.py
--family``) a within-modality re-mixing of the true latents is sparser by that measure
than the truth (``diag_multimodal_align.py``, ``diag_multimodal_nldep.py``). Hypothesis
tested here: the truth admits a sparser DAG than its within-modality re-mixings,
because the structural graph has no moralisation edges. On the true latents themselves
(perfect encoders, no VAE fitted), for each family draw:

* score ``A`` (primary, decides): number of edges of the DAG (skeleton of the CPDAG)
  found by GRaSP (``causallearn``, linear-Gaussian BIC from the covariance, its default
  penalty ``lambda_value=2``, depth 3) on standardised columns, minimum over 3 runs
  (seeds of its random initial order); lower is sparser;
* score ``B`` (reported only): the linear SEM under a greedily built topological order
  (each step appends the latent whose regression on the latents already placed has the
  smallest L1 of standardised coefficients): sum of the absolute coefficients, and
  their count above 0.1;
* at the truth only (added after the first run, to tell the score from the search): the
  BIC of GRaSP's graph minus the BIC of the simulator's DAG; positive means the score
  itself prefers another graph than the true one;
* each is evaluated, on the same 2000 rows (all if fewer), at the truth, at 30 random
  within-modality mixtures (15: the per-modality whitened truth rotated by a Haar
  orthogonal matrix; 15: near-identity mixtures ``T_m (I + 0.3 G)``, ``G`` standard
  normal), and at the solution of ``sparsity_alignment`` (``align="pcor"``'s search)
  started from the mixed truth of ``diag_multimodal_nldep.py`` (``T_m G_m^T``, ``G``
  from ``default_rng(draw)``), with that solution's MCC (mean over modalities, all rows).

Pass criterion (fixed before the first run): the truth has strictly fewer DAG edges
(score ``A``) than the pcor search's solution on at least 16 of the draws where that
solution has MCC < 0.95 -- read as a fraction, at least 80 % of those draws (16 of 20)
when fewer than 20 such draws exist -- AND strictly fewer edges than at least 90 % of the
30 random mixtures (27) on at least 18 of the 20 draws (0-19). Ties count as failures.

The true latents are used only for scoring.

Measured (2026-12-06, 21:48-21:55 UTC, shared 2-core CPU machine, one thread; family
draws 0-19, 2000 rows per score; "BIC gap" = BIC of GRaSP's graph at the truth minus
the true DAG's; draws 0, 2, 3, 11, 17 have pcor MCC >= 0.95 and are not among the
wrong draws)::

    | draw | k | true DAG edges | BIC gap | pcor MCC | A truth | A pcor sol | A mixes min | truth < mixes |
    |---|---|---|---|---|---|---|---|---|
    | 0 | 3x3x2 | 5 | 0 | 0.999 | 5 | 5 | 10 | 1.00 |
    | 1 | 2x3x6x2 | 18 | 0 | 0.814 | 18 | 28 | 36 | 1.00 |
    | 2 | 3x4 | 3 | 0 | 0.995 | 3 | 3 | 8 | 1.00 |
    | 3 | 3x2 | 2 | 0 | 0.999 | 2 | 2 | 4 | 1.00 |
    | 4 | 4x6x6x6 | 47 | +592 | 0.706 | 59 | 80 | 115 | 1.00 |
    | 5 | 4x5x4x2 | 19 | 0 | 0.780 | 19 | 32 | 47 | 1.00 |
    | 6 | 4x6x3 | 18 | 0 | 0.737 | 18 | 23 | 42 | 1.00 |
    | 7 | 6x4x3x6 | 35 | +1265 | 0.737 | 57 | 54 | 90 | 1.00 |
    | 8 | 3x2x2x2 | 10 | +358 | 0.908 | 14 | 11 | 14 | 0.97 |
    | 9 | 4x5x4 | 11 | 0 | 0.895 | 11 | 10 | 33 | 1.00 |
    | 10 | 2x5x4 | 10 | +330 | 0.807 | 17 | 10 | 19 | 1.00 |
    | 11 | 4x4x5x5 | 14 | 0 | 0.957 | 14 | 15 | 54 | 1.00 |
    | 12 | 6x2x2x2 | 22 | +2981 | 0.837 | 31 | 20 | 29 | 0.77 |
    | 13 | 6x2x6x6 | 33 | 0 | 0.880 | 33 | 59 | 95 | 1.00 |
    | 14 | 6x4x2 | 13 | 0 | 0.777 | 13 | 12 | 26 | 1.00 |
    | 15 | 6x3x3x3 | 21 | 0 | 0.939 | 21 | 28 | 52 | 1.00 |
    | 16 | 6x4x5x2 | 21 | -8 | 0.867 | 21 | 30 | 61 | 1.00 |
    | 17 | 2x2x2 | 4 | +11 | 0.997 | 5 | 5 | 6 | 1.00 |
    | 18 | 6x3x4x5 | 22 | +25 | 0.943 | 24 | 27 | 50 | 1.00 |
    | 19 | 6x3x3 | 13 | 0 | 0.784 | 13 | 13 | 26 | 1.00 |

    pcor search MCC mean 0.868, worst 0.706; 15 draws with MCC < 0.95
    A: truth < pcor solution on 8/15 of them (tie on 19; pcor solution sparser on
       7, 8, 9, 10, 12, 14; need 12): FAIL; truth < >= 90 % of the mixes on 19/20 (need 18)
    B l1: truth < pcor solution on 6/15, truth < all mixes on 18/20
    B count: truth < pcor solution on 10/15, truth < >= 90 % of mixes on 19/20

Step 1 fails, so the score was not tried as a selection rule on fitted latents (step 2
of the issue). The DAG count separates the truth from *random* within-modality mixtures
(their median count is 1.1-4.9 times the truth's, 2.4-3.3 on 11 of 20) but not from
the partial-correlation search's solutions, for two measured reasons. (1) On draws 4, 7,
8, 10, 12 (and 17, 18) the linear-Gaussian BIC itself prefers a denser graph than the
true DAG at the truth (BIC gap > 0, e.g. draw 12: 31 edges vs 22), presumably because
the family's links are nonlinear, so that d-separation no longer implies a vanishing
partial correlation; the pcor solution is sparser on four of them (draws 7, 8, 10, 12).
(2) On draws 9 and 14 GRaSP recovers the true DAG exactly at the truth, yet the pcor
solution (MCC 0.895 / 0.777) has a DAG with one edge fewer, i.e. a structural count is
gamed by re-mixing too; plausibly (not checked) the equivalence of ``_align.py``'s
docstring, a latent replaced by its own exogenous noise ``a2 - w a1``, which costs no
edge when its children need none. A one-off check on the six losing draws (7, 8, 9, 10,
12, 14) with 10 GRaSP runs of depth 4, keeping the graph of best BIC rather than the
fewest edges, gave truth vs pcor solution 55 vs 58, 14 vs 11, 11 vs 11, 17 vs 10, 31 vs
20, 13 vs 12: the truth then wins draw 7 only (9/15 if the other draws are unchanged;
not rerun), so a longer search does not rescue the criterion. Score ``B`` (greedy-order
SEM) is no better (6/15 by L1, 10/15 by count).

Run: ``python benchmarks/diag_multimodal_dag.py --draws 0-19``.
"""

from __future__ import annotations

import argparse
import os
import random
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from crl_neuro.core.metrics import mcc  # noqa: E402
from crl_neuro.multimodal._align import _block_whiteners, sparsity_alignment  # noqa: E402

from bench_multimodal import family_problem, parse_draws  # noqa: E402

N_MIX = 30


def _standardise(Z: np.ndarray) -> np.ndarray:
    return (Z - Z.mean(0)) / Z.std(0)


def bic(X: np.ndarray, parents: list[list[int]]) -> float:
    """Linear-Gaussian BIC of the DAG ``parents`` on standardised ``X`` (higher is better).

    The same local score (``local_score_BIC_from_cov``, ``lambda_value=2``) as GRaSP's.
    """
    from causallearn.score.LocalScoreFunction import local_score_BIC_from_cov

    C, n = np.corrcoef(X, rowvar=False), len(X)
    return float(sum(local_score_BIC_from_cov((C, n), i, list(p), {"lambda_value": 2})
                     for i, p in enumerate(parents)))


def dag_edges(Z: np.ndarray, n_runs: int = 3) -> tuple[int, float]:
    """Score ``A``: edges of the GRaSP (BIC) graph of ``Z``, fewest over ``n_runs`` runs.

    Parameters
    ----------
    Z : ndarray, shape (n_samples, n_latents)
        Candidate latents (all modalities stacked).
    n_runs : int
        GRaSP runs, seeded 0, 1, ... (its initial order is random).

    Returns
    -------
    edges : int
        Number of adjacencies of the learned CPDAG (fewest over the runs).
    bic : float
        BIC of that graph (of a DAG in its equivalence class).
    """
    from causallearn.search.PermutationBased.GRaSP import grasp
    from causallearn.utils.PDAG2DAG import pdag2dag

    X = _standardise(Z)
    best = None
    for seed in range(n_runs):
        random.seed(seed)
        G = grasp(X, verbose=False)
        D = pdag2dag(G).graph  # D[j, i] == 1 for i -> j
        parents = [list(np.flatnonzero(D[j] == 1)) for j in range(D.shape[0])]
        e = int(np.triu((G.graph != 0) | (G.graph.T != 0), 1).sum())
        if best is None or e < best[0]:
            best = (e, bic(X, parents))
    return best


def sem_l1(Z: np.ndarray, threshold: float = 0.1) -> tuple[float, int]:
    """Score ``B``: L1 and count (> ``threshold``) of SEM coefficients under a greedy order.

    Parameters
    ----------
    Z : ndarray, shape (n_samples, n_latents)
        Candidate latents.
    threshold : float
        Absolute coefficient above which a coefficient counts as an edge.

    Returns
    -------
    l1 : float
        Sum of absolute standardised regression coefficients of each latent on the
        latents placed before it.
    count : int
        Number of those coefficients above ``threshold``.
    """
    R = np.corrcoef(Z, rowvar=False)
    placed, rest, l1, count = [], list(range(R.shape[0])), 0.0, 0
    while rest:
        best = None
        for j in rest:
            b = np.linalg.solve(R[np.ix_(placed, placed)], R[placed, j]) if placed else np.zeros(0)
            if best is None or np.abs(b).sum() < np.abs(best[1]).sum():
                best = (j, b)
        placed.append(best[0])
        rest.remove(best[0])
        l1 += float(np.abs(best[1]).sum())
        count += int((np.abs(best[1]) > threshold).sum())
    return l1, count


def analyse(draw: int, n_sub: int) -> dict:
    """Scores at the truth, random mixtures and the pcor search's solution on one draw."""
    _, sim = family_problem(draw)
    T = np.concatenate([sim.latents[m] for m in sim.modalities], axis=1)
    dims = [sim.latents[m].shape[1] for m in sim.modalities]
    offsets = np.concatenate([[0], np.cumsum(dims)])

    def apply(X, maps):
        return np.concatenate([X[:, a:b] @ A.T for a, b, A in zip(offsets[:-1], offsets[1:], maps)], axis=1)

    def mean_mcc(Y):
        return float(np.mean([mcc(T[:, a:b], Y[:, a:b]) for a, b in zip(offsets[:-1], offsets[1:])]))

    rng = np.random.default_rng(draw)  # the mixing of diag_multimodal_nldep.py
    Tmix = apply(T, [rng.normal(size=(k, k)).T for k in dims])
    P = apply(Tmix, sparsity_alignment(Tmix, dims, seed=0)[0])
    sub = np.random.default_rng(draw).choice(len(T), min(n_sub, len(T)), replace=False)
    Tw = apply(T, _block_whiteners(np.cov(T, rowvar=False), dims))
    rng = np.random.default_rng(2000 + draw)
    mixes = []
    for r in range(N_MIX):
        if r < N_MIX // 2:  # Haar orthogonal rotation of the whitened truth
            maps = [np.linalg.qr(rng.normal(size=(k, k)))[0] for k in dims]
            mixes.append(apply(Tw[sub], maps))
        else:
            mixes.append(apply(T[sub], [np.eye(k) + 0.3 * rng.normal(size=(k, k)) for k in dims]))
    a_mix = np.array([dag_edges(M)[0] for M in mixes])
    b_mix = [sem_l1(M) for M in mixes]
    b_truth, b_pcor = sem_l1(T[sub]), sem_l1(P[sub])
    a_truth, bic_truth = dag_edges(T[sub])
    dag = sim.truth.dag != 0
    bic_true_dag = bic(_standardise(T[sub]), [list(np.flatnonzero(dag[:, j])) for j in range(len(dag))])
    return dict(
        draw=draw, dims="x".join(map(str, dims)), n_true=int(dag.sum()), mcc_pcor=mean_mcc(P),
        a_truth=a_truth, bic_gap=bic_truth - bic_true_dag, a_pcor=dag_edges(P[sub])[0], a_mix=a_mix,
        b_truth=b_truth, b_pcor=b_pcor, b_mix_l1=np.array([b[0] for b in b_mix]),
        b_mix_count=np.array([b[1] for b in b_mix]),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--draws", type=str, default="0-19")
    parser.add_argument("--n-sub", type=int, default=2000, help="rows used by the scores")
    args = parser.parse_args()
    import torch

    torch.set_num_threads(1)
    rows = []
    for draw in parse_draws(args.draws):
        t0 = time.perf_counter()
        r = analyse(draw, args.n_sub)
        rows.append(r)
        r["a_frac"] = float((r["a_truth"] < r["a_mix"]).mean())
        print(f"draw {draw} k={r['dims']} true DAG edges {r['n_true']} (BIC of GRaSP graph at truth minus "
              f"true DAG's {r['bic_gap']:+.0f}) | MCC pcor {r['mcc_pcor']:.3f} | "
              f"A: truth {r['a_truth']} pcor-sol {r['a_pcor']} mixes min/median {r['a_mix'].min()}/"
              f"{np.median(r['a_mix']):.0f} truth<mix {r['a_frac']:.2f} | "
              f"B l1: truth {r['b_truth'][0]:.2f} pcor-sol {r['b_pcor'][0]:.2f} mixes min "
              f"{r['b_mix_l1'].min():.2f} | B count: truth {r['b_truth'][1]} pcor-sol {r['b_pcor'][1]} "
              f"mixes min {r['b_mix_count'].min()} [{time.perf_counter() - t0:.0f} s]", flush=True)
    n = len(rows)
    wrong = [r for r in rows if r["mcc_pcor"] < 0.95]
    mp = np.array([r["mcc_pcor"] for r in rows])
    need = min(16, int(np.ceil(0.8 * len(wrong))))
    beat_pcor = sum(r["a_truth"] < r["a_pcor"] for r in wrong)
    tie_pcor = sum(r["a_truth"] == r["a_pcor"] for r in wrong)
    beat_mix = sum(r["a_frac"] >= 0.9 for r in rows)
    print(f"\n{n} draws; pcor search MCC mean {mp.mean():.3f} worst {mp.min():.3f}; "
          f"{len(wrong)} draws with MCC < 0.95")
    print(f"A: truth < pcor solution on {beat_pcor}/{len(wrong)} wrong draws (ties {tie_pcor}; need {need}); "
          f"truth < >= 90 % of mixes on {beat_mix}/{n} draws (need 18 of 20)")
    print(f"B l1: truth < pcor solution on {sum(r['b_truth'][0] < r['b_pcor'][0] for r in wrong)}/{len(wrong)}; "
          f"truth < all mixes on {sum(r['b_truth'][0] < r['b_mix_l1'].min() for r in rows)}/{n}")
    print(f"B count: truth < pcor solution on {sum(r['b_truth'][1] < r['b_pcor'][1] for r in wrong)}"
          f"/{len(wrong)}; truth < >= 90 % of mixes on "
          f"{sum((r['b_truth'][1] < r['b_mix_count']).mean() >= 0.9 for r in rows)}/{n}")
    passed = beat_pcor >= need and beat_mix >= 18 * n / 20
    print("step 1:", "PASS" if passed else "FAIL")


if __name__ == "__main__":
    main()
