"""Diagnosis: where CausalROIs' ROI-graph F1 is lost against the true partition.

On the tuning draws of ``bench_fmri.py`` (seeds 100-119), CausalROIs is fitted once
per draw with its defaults and cached (``$H20CACHE``, default ``/tmp/h20cache``:
labels, its graph and the cleaned runs every benchmark graph is learned on). Per draw
the directed-F1 loss of its ROI graph, ``1 - F1 = (missed + extra edges) / (true +
estimated edges)`` over pairs of true ROIs after the Hungarian match of
``matched_graph_f1``, is split into three additive parts:

(a) ``unrecoverable``: the pair has a *lost* endpoint: a true ROI that is unmatched,
    whose matched ROI is mostly other voxels (purity < 0.5), or whose voxels lie
    mostly in an estimated ROI matched to another true ROI (merged). No graph
    routine can recover these pairs.
(b) ``detection``: missed or extra edge between two recovered ROIs.
(c) ``direction``: both graphs have an edge there, in different directions (counts
    as one missed plus one extra edge, as in F1).

The same split for the true partition (same graph routine) has ``a = 0``, so the
gap ``F1(oracle) - F1(CausalROIs) = a + (b - b_oracle) + (c - c_oracle)``.

Remedies (written before they were measured)
--------------------------------------------
R1 ``graph-aware selection`` (partition): the ROI graph regresses the leading 5
   principal components of the background voxels out of the ROI means, so a region
   whose denoised signal those components explain adds nothing to the graph. Select
   the ROIs with the graph in mind: after the usual selection (energy of the denoised
   mean), take the background components of that partition, and reselect the
   ``n_rois`` candidate regions by the energy of their denoised mean time course left
   after regressing those components out (per run). Changes labels.
R2 ``replication`` (graph routine): "same causes and effects across runs". A pair is
   added to the Granger skeleton when the lagged test of one direction, fitted in each
   run separately (same VAR order), is significant at the per-run level
   ``alpha_rep`` in every run but at most one, and in at least 2 runs (needs >= 2
   runs: a no-op for a single run, e.g. NetSim). Orientation rules are unchanged.
   ``alpha_rep`` is 0.01 or 0.05, the one with the higher mean tuning F1.

Adoption rule, per remedy against the default, on tuning draws 100-119 only: the
mean CausalROIs graph F1 rises by >= 0.03; the worst draw's F1 does not fall by more
than 0.05; the mean ROI-voxel ARI does not fall (R2 leaves labels unchanged); if
edge orientation logic changes, NetSim direction accuracy (``bench_netsim.py``) does
not fall by more than 0.02. If both qualify, the combination is adopted only if it
also qualifies and has the higher mean F1. Draws 0-23 are reported only afterwards.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy.optimize import linear_sum_assignment  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench_fmri as B  # noqa: E402

CACHE = Path(os.environ.get("H20CACHE", "/tmp/h20cache"))


def load_draw(seed, cache=CACHE):
    """One draw: true and CausalROIs labels and graphs, cleaned z-scored runs (cached).

    CausalROIs is fitted once per draw with its defaults (as ``bench_fmri.py`` does);
    labels are in the voxel order of ``truth.voxel_labels``, 0 = background, ROIs
    renumbered 1..n; ``Zs`` are the runs every benchmark method's graph is learned on.
    """
    f = cache / f"draw{seed}.npz"
    if not f.exists():
        cache.mkdir(parents=True, exist_ok=True)
        kw = B.draw_fmri_problem(seed)
        data = B.simulate_fmri_rois(**kw)
        X = B._masked_runs(data)
        K = data.roi_graph.shape[0]
        t0 = time.perf_counter()
        labels, graph = B.m_causal_rois()(data, K, seed, {"X": X, "conn": None})
        fit_s = time.perf_counter() - t0
        ids = [u for u in np.unique(labels) if u > 0]
        remap = np.zeros(int(labels.max()) + 1, dtype=int)
        remap[ids] = np.arange(1, len(ids) + 1)
        Zs = B._zscore(X)
        np.savez(
            f, true_labels=data.truth.voxel_labels, est_labels=remap[labels],
            est_graph=graph if graph is not None else np.zeros((0, 0)), true_graph=data.roi_graph,
            kind=kw["scenario"], fit_s=fit_s, n_runs=len(Zs),
            **{f"Z{r}": z.astype(np.float32) for r, z in enumerate(Zs)},
        )
    d = dict(np.load(f))
    d["Zs"] = [d.pop(f"Z{r}").astype(float) for r in range(int(d["n_runs"]))]
    d["kind"] = str(d["kind"])
    return d


def match_rois(true_labels, est_labels, K):
    """Hungarian match of true ROIs 1..K to estimated ROIs (as ``matched_graph_f1``).

    Returns ``match`` (K,) estimated label matched to each true ROI (0: none) and
    ``lost`` (K,) bool: the true ROI is unmatched, or its matched ROI is mostly made of
    other voxels (purity < 0.5), or most of its ROI voxels lie in an estimated ROI
    matched to another true ROI (merged).
    """
    n_est = int(est_labels.max())
    ov = np.array([[np.sum((true_labels == k + 1) & (est_labels == u)) for u in range(1, n_est + 1)]
                   for k in range(K)]).reshape(K, n_est)
    match = np.zeros(K, dtype=int)
    if n_est:
        for r, c in zip(*linear_sum_assignment(-ov)):
            if ov[r, c] > 0:
                match[r] = c + 1
    owner = {u: k for k, u in enumerate(match) if u > 0}
    lost = np.zeros(K, bool)
    for k in range(K):
        u = match[k]
        if u == 0:
            lost[k] = True
            continue
        purity = ov[k, u - 1] / max(np.sum(est_labels == u), 1)
        home = int(np.argmax(ov[k])) + 1
        lost[k] = purity < 0.5 or (ov[k, home - 1] > ov[k, u - 1] and owner.get(home, k) != k)
    return match, lost


def loss_split(true_labels, est_labels, true_graph, est_graph):
    """Split ``1 - F1`` of the matched directed graph into three additive parts.

    Pairs of true ROIs are scored as :func:`crl_neuro.core.metrics.graph_scores`
    (``directed=True``) scores them: with ``D`` = true + estimated edges,
    ``1 - F1 = (missed + extra) / D``. Every wrong pair is charged to (a)
    ``unrecoverable`` when an endpoint is lost (:func:`match_rois`), else (c)
    ``direction`` when both graphs have an edge there with different directions
    (counts twice, as in F1), else (b) ``detection`` (missed or extra edge).
    Returns a dict with ``f1, a, b, c`` (``a + b + c = 1 - f1``) and counts.
    """
    K = true_graph.shape[0]
    match, lost = match_rois(true_labels, est_labels, K)
    G = np.zeros((K, K))
    for i in range(K):
        for j in range(K):
            if i != j and match[i] and match[j]:
                G[i, j] = est_graph[match[i] - 1, match[j] - 1]
    t, e = true_graph != 0, G != 0
    parts = dict(a=0, b=0, c=0)
    D = tp = 0
    for i in range(K):
        for j in range(i + 1, K):
            tt = int(t[i, j]) + 2 * int(t[j, i])  # 0 none, 1 i->j, 2 j->i, 3 both
            et = int(e[i, j]) + 2 * int(e[j, i])
            D += (tt > 0) + (et > 0)
            if tt == et:
                tp += tt > 0
                continue
            wrong = (tt > 0) + (et > 0)
            key = "a" if lost[i] or lost[j] else ("c" if tt and et else "b")
            parts[key] += wrong
    f1 = 2 * tp / D if D else 1.0
    out = {k: v / D if D else 0.0 for k, v in parts.items()}
    return dict(f1=f1, **out, K=K, n_est=int(est_labels.max()), n_lost=int(lost.sum()),
                n_true_edges=int(t.sum()), n_est_edges=int(e.sum()))


def default_graph(Zs, labels):
    """The ROI graph CausalROIs learns (``bench_fmri._roi_discovery``, 5 background components)."""
    series, _ = B._roi_means(Zs, labels)
    return B._roi_discovery(series, Zs, labels)


def regime(Zs, labels):
    """``roi_causal_graph``'s regime (lagged / instantaneous) on these ROI means."""
    from crl_neuro.fmri import roi_causal_graph
    from crl_neuro.fmri._parcellation import background_components

    series, _ = B._roi_means(Zs, labels)
    conf = background_components(Zs, labels == 0, B._N_BACKGROUND)
    return roi_causal_graph(series, confounds=conf, return_details=True)[1].regime[:4]


def diagnose(seeds):
    """Per draw: ARI, ROI counts, the loss split of CausalROIs and of the true partition."""
    from crl_neuro.core.metrics import labels_ari

    rows = []
    for s in seeds:
        d = load_draw(s)
        tl, el, tg, eg, Zs = d["true_labels"], d["est_labels"], d["true_graph"], d["est_graph"], d["Zs"]
        est = loss_split(tl, el, tg, eg)
        orc = loss_split(tl, tl, tg, default_graph(Zs, tl))
        rows.append(dict(
            seed=s, kind=d["kind"][:5], K=est["K"], n_est=est["n_est"], lost=est["n_lost"],
            ari=labels_ari(tl, el, mask=tl > 0), f1=est["f1"], a=est["a"], b=est["b"], c=est["c"],
            f1_orc=orc["f1"], b_orc=orc["b"], c_orc=orc["c"], edges=est["n_true_edges"],
            est_edges=est["n_est_edges"], orc_edges=orc["n_est_edges"],
            reg=regime(Zs, el), reg_orc=regime(Zs, tl),
        ))
    return pd.DataFrame(rows)


def print_diagnosis(df):
    pd.set_option("display.width", 200)
    print(df.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    m = df.mean(numeric_only=True)
    gap = m.f1_orc - m.f1
    print(f"\nmean F1 {m.f1:.3f} (oracle {m.f1_orc:.3f}, gap {gap:.3f}); loss 1-F1 = a {m.a:.3f} + b {m.b:.3f} + c {m.c:.3f}"
          f" (oracle: b {m.b_orc:.3f} + c {m.c_orc:.3f})")
    print(f"gap = a {m.a:.3f} + b {m.b - m.b_orc:+.3f} + c {m.c - m.c_orc:+.3f}")


if __name__ == "__main__" and sys.argv[1:2] == ["--cache"]:
    for s in range(int(sys.argv[2]), int(sys.argv[3])):
        t0 = time.perf_counter()
        load_draw(s)
        print(s, f"{time.perf_counter() - t0:.1f}s", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--first-seed", type=int, default=100)
    ap.add_argument("--draws", type=int, default=20)
    args = ap.parse_args(argv)
    seeds = range(args.first_seed, args.first_seed + args.draws)
    df = diagnose(seeds)
    print_diagnosis(df)
    return df


if __name__ == "__main__" and sys.argv[1:2] != ["--cache"]:
    main()
