"""Benchmark: latent causal structure from questionnaire items.

crl_neuro's ``LatentCausalModel`` against causal-learn's RLCD port and GIN as
shipped, and an exploratory factor analysis (sklearn ``FactorAnalysis`` with
varimax, given the true number of factors) for the measurement part, on the same
simulated data in one run; then timing and trait alignment on the 25-item ``bfi``
(when ``../shared/data`` is present).

Scores: cluster ARI (items → latents), latent-skeleton F1, SHD on the equivalence
class (each latent pair whose edge mark differs counts once), error in the number of
latents, correct equivalence class (clusters, number of latents and every mark right),
and wall time.

Usage::

    python benchmarks/bench_psychometrics.py --quick    # 1 seed, no GIN, no port on bfi
    python benchmarks/bench_psychometrics.py            # 5 seeds, GIN on seed 0 (first 500
                                                        # rows), causal-learn RLCD on bfi
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from sklearn.metrics import adjusted_rand_score  # noqa: E402

from crl_neuro.datasets import simulate_latent_questionnaire  # noqa: E402
from crl_neuro.psychometrics import LatentCausalModel  # noqa: E402
from crl_neuro.psychometrics.baselines import efa_clusters, run_causallearn  # noqa: E402
from crl_neuro.psychometrics.evaluation import score_model, score_structure  # noqa: E402

STRUCTURES = ["chain", "fork", "collider", "diamond", "hidden", "impure"]
BFI = Path(__file__).resolve().parents[2] / "shared" / "data" / "psychometric" / "psych_R_pkg" / "bfi.csv"


def _score_causallearn(res: dict, truth) -> dict:
    measured = [nm for nm in res["latents"] if res["indicators"][nm]]
    indicators = {nm: res["indicators"][nm] for nm in measured}
    S = res["structure"]
    children = {nm: [c for c in measured if S.loc[nm, c] or S.loc[c, nm]]
                for nm in res["latents"] if nm not in measured}
    return score_structure(S, indicators, truth, children)


def run_simulations(seeds: list[int], n_samples: int, noise: str, gin_seeds: list[int],
                    gin_samples: int | None = None) -> pd.DataFrame:
    rows = []
    for structure in STRUCTURES:
        for seed in seeds:
            b = simulate_latent_questionnaire(structure, n_samples=n_samples, noise=noise, random_state=seed)
            X = b.data.to_numpy()
            Z = (X - X.mean(axis=0)) / X.std(axis=0)
            names = list(b.data.columns)
            t0 = time.perf_counter()
            m = LatentCausalModel().fit(b.data)
            rows.append({"method": "crl_neuro", "structure": structure, "seed": seed,
                         "time_s": time.perf_counter() - t0, **score_model(m, b.truth)})
            k_true = len(set(b.truth.clusters))
            t0 = time.perf_counter()
            lab = efa_clusters(X, n_factors=k_true, random_state=seed)
            rows.append({"method": "EFA varimax (true k)", "structure": structure, "seed": seed,
                         "time_s": time.perf_counter() - t0,
                         "cluster_ari": adjusted_rand_score(b.truth.clusters.values, lab)})
            methods = ["causallearn-rlcd"] + (["gin"] if seed in gin_seeds else [])
            for meth in methods:
                t0 = time.perf_counter()
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        # GIN's HSIC tests cost O(n^2): optionally the first rows only
                        Zm = Z[:gin_samples] if meth == "gin" and gin_samples else Z
                        res = run_causallearn(Zm, names, method=meth)
                    sc = _score_causallearn(res, b.truth)
                except Exception as err:  # report, do not hide, a crash of a baseline
                    print(f"  {meth} failed on {structure}/{seed}: {type(err).__name__}: {err}")
                    sc = {"cluster_ari": np.nan, "correct_class": 0.0}
                rows.append({"method": f"causal-learn {meth.replace('causallearn-', '').upper()}",
                             "structure": structure, "seed": seed,
                             "time_s": time.perf_counter() - t0, **sc})
            print(f"  done {structure} seed {seed}", flush=True)
    return pd.DataFrame(rows)


def run_bfi(with_port: bool) -> pd.DataFrame | None:
    if not BFI.is_file():
        print("bfi.csv not found beside the checkout: bfi part skipped")
        return None
    df = pd.read_csv(BFI).drop(columns=["id", "gender", "education", "age"], errors="ignore")
    keys = [c[0] for c in df.columns]
    rows = []
    t0 = time.perf_counter()
    m = LatentCausalModel().fit(df)
    t = time.perf_counter() - t0
    lab = [m.clusters_[c] or "none" for c in df.columns]
    rows.append({"method": "crl_neuro", "time_s": t, "trait_ari": adjusted_rand_score(keys, lab),
                 "n_latents": m.measurement_.shape[1], "n_impure": len(m.impure_items_)})
    complete = df.dropna().to_numpy()
    t0 = time.perf_counter()
    lab = efa_clusters(complete, n_factors=5)
    rows.append({"method": "EFA varimax (k=5, listwise)", "time_s": time.perf_counter() - t0,
                 "trait_ari": adjusted_rand_score(keys, lab), "n_latents": 5})
    if with_port:
        Z = (complete - complete.mean(axis=0)) / complete.std(axis=0)
        t0 = time.perf_counter()
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = run_causallearn(Z, list(df.columns), method="causallearn-rlcd")
        t = time.perf_counter() - t0
        item_lat = {it: nm for nm, its in res["indicators"].items() for it in its}
        lab = [item_lat.get(c, f"none_{c}") for c in df.columns]
        rows.append({"method": "causal-learn RLCD (listwise)", "time_s": t,
                     "trait_ari": adjusted_rand_score(keys, lab), "n_latents": len(res["latents"])})
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="1 seed, no GIN, no causal-learn run on bfi")
    ap.add_argument("--seeds", type=int, default=None, help="number of seeds (default 5; 1 with --quick)")
    ap.add_argument("--n-samples", type=int, default=2000)
    ap.add_argument("--noise", default="exponential", help="non-Gaussian by default, as GIN needs")
    ap.add_argument("--gin-samples", type=int, default=500,
                    help="GIN (HSIC tests, O(n^2)) runs on the first rows of each data set only; 0 = all")
    args = ap.parse_args(argv)
    n_seeds = args.seeds or (1 if args.quick else 5)
    seeds = list(range(n_seeds))
    print(f"simulations: {len(STRUCTURES)} structures x {n_seeds} seed(s), n = {args.n_samples}, "
          f"noise = {args.noise}")
    sim = run_simulations(seeds, args.n_samples, args.noise, gin_seeds=[] if args.quick else [0],
                          gin_samples=args.gin_samples or None)
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    cols = ["cluster_ari", "skeleton_f1", "shd", "n_latents_error", "correct_class", "time_s"]
    per = sim.groupby(["structure", "method"], sort=False)[cols].mean().round(2)
    print("\nPer structure (mean over seeds)\n")
    print(per.to_string())
    overall = sim.groupby("method", sort=False)[cols].mean().round(2)
    print("\nOverall (mean over structures and seeds)\n")
    print(overall.to_string())
    bfi = run_bfi(with_port=not args.quick)
    if bfi is not None:
        print("\nbfi (2800 x 25): alignment of item clusters with the five keyed traits\n")
        print(bfi.round(3).to_string(index=False))
        if len(bfi) > 2:
            ratio = bfi.loc[2, "time_s"] / bfi.loc[0, "time_s"]
            print(f"\nspeed-up over the causal-learn port on bfi: {ratio:.0f}x")


if __name__ == "__main__":
    main()
