"""Benchmark: MultiModalCRL vs per-modality FastICA and vs one model on concatenated modalities.

Same simulated data (``crl_neuro.datasets.simulate_multimodal``) for every method, one run:

* ``crl_neuro``: :class:`crl_neuro.multimodal.MultiModalCRL` (cross-modal graph from its
  learned sparse SEM prior);
* ``ica+pc``: FastICA per modality, then PC (causal-learn, Fisher-z) over all estimated
  latents, keeping the cross-modal edges;
* ``concat``: one model on the concatenated modalities (MultiModalCRL with a single
  pseudo-modality holding every feature, then PC); its latents are matched to each
  modality's truth among all estimated latents.

Metrics per problem: MCC per modality (Pearson, Hungarian matching), subspace R² (linear
regression of each modality's true latents on the estimated latents of that modality,
averaged), cross-modal edge F1 and SHD on the skeleton (directions are identified only
up to Markov equivalence) after aligning estimated latents to the truth, fit time.

Run ``python benchmarks/bench_multimodal.py --quick`` (2 modalities x 2 latents, with and
without a within-modality edge, 2 seeds).
"""

from __future__ import annotations

import argparse
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402
from sklearn.decomposition import FastICA  # noqa: E402
from sklearn.linear_model import LinearRegression  # noqa: E402

from crl_neuro.core.discovery import pc  # noqa: E402
from crl_neuro.core.metrics import graph_scores, mcc  # noqa: E402
from crl_neuro.datasets.multimodal import simulate_multimodal  # noqa: E402
from crl_neuro.multimodal import MultiModalCRL  # noqa: E402
from crl_neuro.multimodal._module import structure_masks  # noqa: E402


def subspace_r2(true: np.ndarray, est: np.ndarray) -> float:
    """Mean R² of a linear regression of each true latent on the estimated block."""
    pred = LinearRegression().fit(est, true).predict(est)
    ss = ((true - pred) ** 2).sum(0) / ((true - true.mean(0)) ** 2).sum(0)
    return float(np.mean(1 - ss))


def score(sim, latents: dict, est_blocks: list[np.ndarray], cross_est: np.ndarray | None) -> dict:
    """MCC/R² per modality and cross-modal skeleton F1/SHD (``cross_est`` over ``est_blocks``)."""
    out = {}
    perm, offset = [], 0
    for m, Zm in zip(sim.modalities, est_blocks):
        s, match, _ = mcc(sim.latents[m], Zm, return_details=True)
        out[f"mcc_{m}"] = s
        out[f"r2_{m}"] = subspace_r2(sim.latents[m], Zm)
        perm += list(offset + match)
        offset += Zm.shape[1]
    if cross_est is not None:
        perm = np.asarray(perm)
        g = graph_scores(sim.truth.cross_modal_graph, cross_est[np.ix_(perm, perm)])
        out["f1"], out["shd"] = g["f1"], g["shd"]
    return out


def cross_from_pc(Z: np.ndarray, dims: list[int]) -> np.ndarray:
    adj = pc(Z, alpha=0.01).to_adjacency()
    cross, _ = structure_masks(dims)
    return np.where(cross, adj, 0)


def run_crl(sim, seed: int, max_iter: int) -> dict:
    dims = {m: sim.latents[m].shape[1] for m in sim.modalities}
    t0 = time.perf_counter()
    est = MultiModalCRL(dims, max_iter=max_iter, random_state=seed).fit(sim.data)
    Z = est.transform(sim.data)
    res = score(sim, Z, [Z[m] for m in sim.modalities], est.cross_modal_graph_)
    res["time_s"] = time.perf_counter() - t0
    return res


def run_ica(sim, seed: int) -> dict:
    t0 = time.perf_counter()
    blocks = [FastICA(sim.latents[m].shape[1], random_state=seed, max_iter=2000).fit_transform(sim.data[m])
              for m in sim.modalities]
    Z = np.concatenate(blocks, axis=1)
    res = score(sim, None, blocks, cross_from_pc(Z, [b.shape[1] for b in blocks]))
    res["time_s"] = time.perf_counter() - t0
    return res


def run_concat(sim, seed: int, max_iter: int) -> dict:
    t0 = time.perf_counter()
    X = np.concatenate([sim.data[m] for m in sim.modalities], axis=1)
    n_total = sum(sim.latents[m].shape[1] for m in sim.modalities)
    est = MultiModalCRL({"all": n_total}, max_iter=max_iter, random_state=seed).fit({"all": X})
    Z = est.transform({"all": X})["all"]
    # one-to-one matching of all true latents to the estimated ones; the columns matched
    # to a modality's truth form that modality's block (the model itself has no split)
    _, match, _ = mcc(sim.truth.latents, Z, return_details=True)
    sizes = [sim.latents[m].shape[1] for m in sim.modalities]
    blocks = np.split(Z[:, match], np.cumsum(sizes)[:-1], axis=1)
    res = score(sim, None, blocks, cross_from_pc(Z[:, match], sizes))
    res["time_s"] = time.perf_counter() - t0
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="two small problems, two seeds")
    args = parser.parse_args()
    if args.quick:
        problems = [dict(n_modalities=2, latent_dims=2, n_layers=1, within_edges=0),
                    dict(n_modalities=2, latent_dims=2, n_layers=1, within_edges=1)]
        seeds, max_iter = [0, 1], 150
    else:
        problems = [
            dict(n_modalities=2, latent_dims=2, n_layers=1, within_edges=0),
            dict(n_modalities=2, latent_dims=2, n_layers=1, within_edges=1),
            dict(n_modalities=2, latent_dims=3, n_layers=1, within_edges=1),
            dict(n_modalities=3, latent_dims=3, n_layers=2, within_edges=1),
        ]
        seeds, max_iter = [0, 1, 2], 200
    rows = []
    for prob in problems:
        for seed in seeds:
            sim = simulate_multimodal(n_samples=2000, random_state=seed, **prob)
            label = f"M={prob['n_modalities']} k={prob['latent_dims']} L={prob['n_layers']} w={prob['within_edges']}"
            for name, fn in [("crl_neuro", lambda: run_crl(sim, seed, max_iter)),
                             ("ica+pc", lambda: run_ica(sim, seed)),
                             ("concat", lambda: run_concat(sim, seed, max_iter))]:
                r = fn()
                mccs = [r[f"mcc_{m}"] for m in sim.modalities]
                r2s = [r[f"r2_{m}"] for m in sim.modalities]
                rows.append((label, seed, name, mccs, r2s, r.get("f1", np.nan), r.get("shd", np.nan), r["time_s"]))
                print(f"{label:24s} seed={seed} {name:10s} MCC={' '.join(f'{v:.3f}' for v in mccs)} "
                      f"R2={' '.join(f'{v:.3f}' for v in r2s)} F1={rows[-1][5]:.2f} "
                      f"SHD={rows[-1][6]:.0f} time={r['time_s']:.1f}s", flush=True)
    print("\n| problem | method | MCC per modality (mean over seeds) | subspace R² | cross-modal F1 | SHD | time (s) |")
    print("|---|---|---|---|---|---|---|")
    for label in dict.fromkeys(r[0] for r in rows):
        for name in ("crl_neuro", "ica+pc", "concat"):
            sel = [r for r in rows if r[0] == label and r[2] == name]
            mcc_mean = np.mean([r[3] for r in sel], axis=0)
            r2_mean = np.mean([r[4] for r in sel], axis=0)
            print(f"| {label} | {name} | {' / '.join(f'{v:.3f}' for v in mcc_mean)} | "
                  f"{' / '.join(f'{v:.3f}' for v in r2_mean)} | {np.nanmean([r[5] for r in sel]):.2f} | "
                  f"{np.nanmean([r[6] for r in sel]):.1f} | {np.mean([r[7] for r in sel]):.1f} |")


if __name__ == "__main__":
    main()
