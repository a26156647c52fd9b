"""Benchmark: ROI-level causal discovery on the NetSim fMRI simulations (Smith et al. 2011).

NetSim simulates BOLD time series of ``n`` nodes (ROIs) from a known directed
network (DCM neural model + balloon hemodynamics, varying TR, noise, HRF delays,
shared inputs, ...). The data are read from ``../shared/data/fmri/netsim_smith2011/``
beside the checkout (or ``--data-dir``): ``fmri_simN.npy`` (subjects, nodes, time, 1)
and ``fmri_simN_struct.csv`` (the off-diagonal entries of the true adjacency, column
by column: for each target ``j``, the sources ``i != j``); ``sim1-3.mat`` (``ts``,
``net[s, i, j] != 0`` => i -> j) are used to check that decoding. The script exits
cleanly when the data are absent.

Methods (each run per subject on that subject's series; nodes z-scored)
-----------------------------------------------------------------------
``CausalROIs graph``  the ROI-level discovery of :class:`crl_neuro.fmri.CausalROIs`
                      (:func:`crl_neuro.fmri.roi_causal_graph`, ``method="auto"``):
                      conditional Granger layer + PC on the VAR innovations, oriented
                      by the Hyvarinen-Smith tanh likelihood ratio when the
                      instantaneous dependence dominates (as on NetSim). One run per
                      subject here, so across-run changes are absent.
``PC (fisherz)``      causal-learn PC, alpha 0.05 (CPDAG; undirected edges count as
                      adjacent, half right in direction accuracy).
``partial corr``      Fisher-z test of the full partial correlation, alpha 0.05
                      (adjacency only; no direction).
``partial corr+lag``  the same skeleton oriented by the lag-1 asymmetry
                      ``corr(x_i(t-1), x_j(t)) > corr(x_j(t-1), x_i(t))`` => i -> j.
``partial corr+skew`` the same skeleton oriented by the pairwise skewness measure of
                      Hyvarinen & Smith (2013, JMLR): with skew-corrected standardized
                      ``x, y`` and correlation ``rho``, ``rho * E[x^2 y - x y^2] > 0``
                      => x -> y (higher-order statistics, no lags).
``Granger (lag 1)``   pooled lag-1 VAR t-tests, Bonferroni alpha 0.05.

Scores (mean over subjects, then over simulations)
--------------------------------------------------
``adj_prec``, ``adj_rec``, ``adj_f1``: skeleton precision / recall / F1
(:func:`crl_neuro.core.metrics.graph_scores`, undirected).
``dir_acc``: among true edges found adjacent, the fraction oriented correctly
(undirected/bidirected estimates count 0.5); NaN for undirected methods.
``time_ms``: mean time per subject.

Usage::

    python benchmarks/bench_netsim.py --quick     # sims 1, 2, 3, 5, 8; 10 subjects each
    python benchmarks/bench_netsim.py             # every simulation present, all subjects
"""

from __future__ import annotations

import argparse
import os
import re
import time
import warnings
from pathlib import Path

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from scipy import stats  # noqa: E402

from crl_neuro.core.metrics import graph_scores  # noqa: E402

warnings.filterwarnings("ignore")

DEFAULT_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "fmri" / "netsim_smith2011"
QUICK_SIMS = (1, 2, 3, 5, 8)


# ----------------------------------------------------------------------------- data
def decode_struct(flat: np.ndarray, n: int) -> np.ndarray:
    """Off-diagonal entries listed target by target (sources i != j) -> (n, n) adjacency."""
    if flat.size != n * (n - 1):
        raise ValueError(f"struct has {flat.size} entries, expected {n * (n - 1)} for {n} nodes")
    adj = np.zeros((n, n), dtype=bool)
    k = 0
    for j in range(n):
        for i in range(n):
            if i != j:
                adj[i, j] = flat[k] != 0
                k += 1
    return adj


def load_sim(data_dir: Path, sim: int):
    """Return (ts: (n_subjects, T, n_nodes), true adjacency (n, n) bool)."""
    arr = np.load(data_dir / f"fmri_sim{sim}.npy", allow_pickle=False)
    ts = np.transpose(arr[..., 0], (0, 2, 1))
    flat = np.loadtxt(data_dir / f"fmri_sim{sim}_struct.csv")
    return ts, decode_struct(flat, ts.shape[2])


def check_against_mat(data_dir: Path) -> None:
    """Cross-check the .npy/.csv decoding against sim1-3.mat (if present)."""
    from scipy.io import loadmat

    for sim in (1, 2, 3):
        f = data_dir / f"sim{sim}.mat"
        if not f.exists() or not (data_dir / f"fmri_sim{sim}.npy").exists():
            continue
        m = loadmat(f)
        ts, adj = load_sim(data_dir, sim)
        n_sub, T = int(m["Nsubjects"].squeeze()), int(m["Ntimepoints"].squeeze())
        if not np.allclose(m["ts"].reshape(n_sub, T, -1), ts):
            raise RuntimeError(f"sim{sim}: .npy time series differ from .mat")
        net = m["net"][0] != 0
        np.fill_diagonal(net, False)
        if not np.array_equal(net, adj):
            raise RuntimeError(f"sim{sim}: decoded struct differs from .mat net")


# ----------------------------------------------------------------------------- methods
def _z(x):
    return (x - x.mean(0)) / np.where(x.std(0) > 0, x.std(0), 1.0)


def partial_corr_skeleton(x, alpha=0.05):
    n, p = x.shape
    P = np.linalg.pinv(np.cov(x, rowvar=False))
    d = np.sqrt(np.diag(P))
    pc = -P / np.outer(d, d)
    np.fill_diagonal(pc, 0.0)
    z = np.arctanh(np.clip(pc, -0.999999, 0.999999)) * np.sqrt(max(n - (p - 2) - 3, 1))
    pv = 2 * stats.norm.sf(np.abs(z))
    adj = pv < alpha
    np.fill_diagonal(adj, False)
    return adj


def m_partial_corr(x):
    A = partial_corr_skeleton(x).astype(float)
    return A, False  # symmetric, undirected


def _orient(skel, score):
    """score[i, j] > 0 => i -> j, for each adjacent pair."""
    G = np.zeros_like(skel, dtype=float)
    n = skel.shape[0]
    for i in range(n):
        for j in range(i + 1, n):
            if skel[i, j]:
                if score[i, j] >= 0:
                    G[i, j] = 1
                else:
                    G[j, i] = 1
    return G


def m_pcorr_lag(x):
    x = _z(x)
    skel = partial_corr_skeleton(x)
    L = x[:-1].T @ x[1:] / (x.shape[0] - 1)  # L[i, j] = corr(x_i(t-1), x_j(t))
    return _orient(skel, L - L.T), True


def m_pcorr_skew(x):
    x = _z(x)
    skel = partial_corr_skeleton(x)
    x = x * np.sign(stats.skew(x, axis=0) + 1e-12)
    rho = x.T @ x / x.shape[0]
    x2 = x**2
    # M[i, j] = E[x_i^2 x_j - x_i x_j^2]
    M = (x2.T @ x - x.T @ x2) / x.shape[0]
    return _orient(skel, rho * M), True


def m_pc(x):
    from causallearn.search.ConstraintBased.PC import pc

    cg = pc(_z(x), alpha=0.05, indep_test="fisherz", show_progress=False)
    g = cg.G.graph
    n = g.shape[0]
    G = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            if g[i, j] == -1 and g[j, i] == 1:
                G[i, j] = 1
            elif g[i, j] == 1 and g[j, i] == -1:
                G[j, i] = 1
            elif g[i, j] != 0 or g[j, i] != 0:
                G[i, j] = G[j, i] = 1  # undirected / bidirected
    return G, True


def m_granger(x, alpha=0.05):
    x = _z(x)
    P, F = x[:-1], x[1:]
    K = x.shape[1]
    B, *_ = np.linalg.lstsq(P, F, rcond=None)
    resid = F - P @ B
    s2 = (resid**2).sum(0) / (P.shape[0] - K)
    se = np.sqrt(np.outer(np.diag(np.linalg.inv(P.T @ P)), s2))
    pv = 2 * stats.norm.sf(np.abs(B / se))
    G = (pv < alpha / (K * (K - 1))).astype(float)
    np.fill_diagonal(G, 0.0)
    return G, True


def _first(res):
    """A graph, or the graph of a (graph, p-values) pair."""
    return np.asarray(res[0] if isinstance(res, tuple) else res)


def _crl_discovery():
    """CausalROIs' ROI-level discovery (:func:`crl_neuro.fmri.roi_causal_graph`, defaults)."""
    try:
        from crl_neuro.fmri import roi_causal_graph
    except Exception as err:
        print(f"[CausalROIs ROI-level discovery unavailable: {err}]")
        return None
    return lambda x: ((_first(roi_causal_graph([_z(x)])) != 0).astype(float), True)


# ----------------------------------------------------------------------------- scoring
def direction_accuracy(true_adj, G):
    """Among true edges i->j found adjacent, 1 if only i->j, 0 if only j->i, 0.5 if both."""
    scores = []
    for i, j in zip(*np.nonzero(true_adj)):
        fwd, bwd = G[i, j] != 0, G[j, i] != 0
        if fwd or bwd:
            scores.append(1.0 if fwd and not bwd else 0.0 if bwd and not fwd else 0.5)
    return float(np.mean(scores)) if scores else np.nan


def score(true_adj, G, directed):
    skel = (G != 0) | (G.T != 0)
    s = graph_scores(true_adj | true_adj.T, skel, directed=False)
    return dict(
        adj_prec=s["precision"],
        adj_rec=s["recall"],
        adj_f1=s["f1"],
        dir_acc=direction_accuracy(true_adj, G) if directed else np.nan,
    )


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="sims 1, 2, 3, 5, 8 with 10 subjects each")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DIR)
    ap.add_argument("--sims", type=int, nargs="+", default=None)
    ap.add_argument("--subjects", type=int, default=None, help="subjects per simulation (default all)")
    ap.add_argument("--max-nodes", type=int, default=15, help="skip simulations with more nodes (sim4: 50)")
    args = ap.parse_args(argv)

    if not args.data_dir.is_dir():
        print(f"NetSim data not found in {args.data_dir}; skipping.")
        return None
    present = sorted(
        int(m.group(1)) for f in args.data_dir.glob("fmri_sim*.npy") if (m := re.match(r"fmri_sim(\d+)\.npy", f.name))
    )
    sims = args.sims or (QUICK_SIMS if args.quick else present)
    sims = [s for s in sims if s in present]
    if not sims:
        print(f"No requested NetSim simulation in {args.data_dir}; skipping.")
        return None
    n_sub = args.subjects or (10 if args.quick else None)
    check_against_mat(args.data_dir)

    meths = {}
    crl = _crl_discovery()
    if crl is not None:
        meths["CausalROIs graph"] = crl
    meths.update(
        {
            "PC (fisherz)": m_pc,
            "partial corr": m_partial_corr,
            "partial corr+lag": m_pcorr_lag,
            "partial corr+skew": m_pcorr_skew,
            "Granger (lag 1)": m_granger,
        }
    )
    rows = []
    t_start = time.perf_counter()
    for sim in sims:
        ts, true_adj = load_sim(args.data_dir, sim)
        if ts.shape[2] > args.max_nodes:
            print(f"[sim{sim}: {ts.shape[2]} nodes > --max-nodes {args.max_nodes}; skipped]")
            continue
        subjects = range(ts.shape[0] if n_sub is None else min(n_sub, ts.shape[0]))
        for name, fn in meths.items():
            for s in subjects:
                t0 = time.perf_counter()
                G, directed = fn(ts[s])
                dt = time.perf_counter() - t0
                rows.append(dict(sim=sim, nodes=ts.shape[2], T=ts.shape[1], method=name, subject=s,
                                 time_ms=1000 * dt, **score(true_adj, G, directed)))
    df = pd.DataFrame(rows)
    cols = ["adj_prec", "adj_rec", "adj_f1", "dir_acc", "time_ms"]
    order = list(meths)
    pd.set_option("display.width", 200)
    per_sim = df.groupby(["sim", "method"])[cols].mean()
    print(f"NetSim (Smith et al. 2011): sims {sims}, {'all' if n_sub is None else n_sub} subjects each; "
          "mean over subjects")
    for sim in per_sim.index.get_level_values(0).unique():
        info = df[df.sim == sim].iloc[0]
        print(f"\n== sim{sim} ({info.nodes} nodes, {info['T']} volumes) ==")
        print(per_sim.loc[sim].reindex(order).to_string(float_format=lambda v: f"{v:.3f}"))
    overall = per_sim.groupby("method").mean().reindex(order)
    print("\n== overall (mean over simulations) ==")
    print(overall.to_string(float_format=lambda v: f"{v:.3f}"))
    print(f"\ntotal time {time.perf_counter() - t_start:.0f} s")
    return df


if __name__ == "__main__":
    main()
