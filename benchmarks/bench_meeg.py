"""Benchmark: crl_neuro SessionCRL vs. source-imaging baselines on simulated multi-session EEG.

Every method sees the same data (``simulate_meeg_sessions``: causally linked cortical
sources whose network changes across sessions, simulated with a *perturbed* head
model) and the same *nominal* forward model and noise covariance, in one run.

Methods
-------
- ``dSPM``, ``sLORETA``, ``eLORETA`` (:mod:`mne.minimum_norm`, fixed orientation,
  depth weighting 0.8, ``lambda2 = 1`` as for continuous data): source power map
  = mean squared source amplitude over all sessions (computed exactly from the
  sensor covariance), then the K largest peaks at least ``PEAK_SEPARATION`` apart;
  time courses = the inverse kernel rows at the peaks applied to the data.
- ``LCMV`` (:func:`mne.beamformer.make_lcmv`, unit-noise-gain-invariant, data
  covariance pooled over sessions, ``reg=1.0``): peaks of
  :func:`mne.beamformer.apply_lcmv_cov` power; time courses = beamformer weights
  at the peaks. With MNE's default ``reg=0.05`` a single source at 20 dB is
  mislocalised by 7-11 cm (the head-model mismatch makes the beamformer cancel
  the true source); of 0.05, 0.5 and 1.0, 1.0 gave LCMV its best scores.
- ``RAP-MUSIC``, ``TRAP-MUSIC`` (:mod:`mne.beamformer`): these need an ``Evoked``;
  the continuous sessions are concatenated into one ``EvokedArray`` (``nave=1``).
  MUSIC uses only the signal subspace of ``data @ data.T`` (the unnormalised
  sensor covariance of all sessions), so this is the covariance-domain use of
  MUSIC, the same information the other methods get. Time courses are the
  least-squares dipole amplitudes MNE returns.
- ``ICA-FastICA``, ``ICA-Picard`` (:class:`mne.preprocessing.ICA`, noise-covariance
  pre-whitening, ``n_components=K``, fit on the concatenated sessions): patterns
  ``get_components()`` localised with :func:`crl_neuro.meeg.localization.scan_leadfield`
  (the same scan SessionCRL uses); time courses from ``get_sources``.
- ``crl_neuro SessionCRL``: ``SessionCRL(n_sources=K, noise_cov=noise_cov,
  random_state=seed).fit(raws, forward=forward)``; its own ``markov_network_`` and
  ``changing_edges_``.
- ``SessionCRL+dipole fit``: the same fit, then ``localize(forward,
  bem=nominal_sphere)``: each pattern's position fitted continuously
  (:func:`mne.fit_dipole`) in the nominal head model instead of on the grid.

Networks for the baselines: partial correlations of their K recovered time
courses, per session; an edge when the Fisher-z test rejects zero partial
correlation in any session at ``ALPHA`` (Bonferroni over pairs and sessions), with
the effective sample size corrected for autocorrelation (Bartlett). An edge changes
when a chi-square test of equal Fisher-z values across sessions rejects at ``ALPHA``
(Bonferroni over the edges tested).

Metrics: mean localization error (mm, Hungarian matched), MCC of source time
courses (Pearson, Hungarian on |corr|, all sessions concatenated), Markov-network
F1 and changing-edge F1 (estimated components put in the order of the true sources
with the MCC matching), fit time (s) and peak memory (MiB above the level before
the fit: resident set size sampled every 2 ms after returning freed memory to the
OS, so torch/numpy/C allocations all count; shared preprocessing, e.g. the free-
orientation copy of the nominal forward needed by MNE's depth weighting, is outside).

Measured, synthetic MEG helmet (2026-12-06, CPU, 1 thread; ``python
benchmarks/bench_meeg.py --sensors meg --seeds 0 1 2 3 4 --methods RAP-MUSIC
TRAP-MUSIC ICA-FastICA+scan "crl_neuro SessionCRL"``: K = 3 and 5, 0 and 10 dB, 4
sessions of 60 s, fixed orientation, 20 problems, 182 s)::

    method                 loc mm mean / worst   MCC    network F1   changing F1   fit s   peak MiB
    RAP-MUSIC                 6.2 / 10.4         0.92      0.74         0.47        2.25      338
    TRAP-MUSIC               10.2 / 39.4         0.90      0.74         0.47        1.40      338
    ICA-FastICA+scan         20.4 / 43.3         0.81      0.75         0.54        1.20      235
    crl_neuro SessionCRL      6.3 / 13.7         0.92      0.91         0.75        0.56       85

On MEG, SessionCRL localises like RAP-MUSIC on average (one problem worse: 13.7 vs
10.4 mm), with the same time courses, and adds a better network and its changes.

Same 20 problems (2026-12-06, ``--sensors meg --methods RAP-MUSIC "crl_neuro
SessionCRL" "SessionCRL+dipole fit"``, one run per orientation, 82 s and 134 s; fit
times on a 2-core machine shared with other jobs). ``--orientation free`` gives every method the
free-orientation nominal forward (three orientations per cortical location; the data
are unchanged)::

    orientation  method                 loc mm mean / worst   MCC   network F1  changing F1  fit s
    fixed        RAP-MUSIC                 6.2 / 10.4         0.92     0.74        0.47       1.10
    fixed        crl_neuro SessionCRL      6.3 / 13.7         0.92     0.91        0.75       0.30
    fixed        SessionCRL+dipole fit     4.2 /  7.1         0.92     0.91        0.75       0.55
    free         RAP-MUSIC                 4.6 /  8.2         0.94     0.77        0.53       2.03
    free         crl_neuro SessionCRL      4.5 /  8.2         0.94     0.97        0.72       0.80
    free         SessionCRL+dipole fit     4.1 /  6.9         0.94     0.97        0.72       1.13

Before (main at 7abc87f), SessionCRL with free orientation on MEG was at 38.8 / 69.0
mm, MCC 0.66: in a spherical head the radial dipole is silent, and the scans gave its
rounding-noise leadfield full weight (now dropped below 1e-6 of a location's largest
singular value, as MNE's ``rap_music`` does). With that fixed alone it was at 6.1 / 31.1
mm (MCC 0.92): RAP-MUSIC's exclusion of locations alike a found source compared the
best of all orientations of a location, which in a 3-dimensional signal subspace is
close to any found pattern; it now compares the orientation the location would be
given. The continuous dipole fit of the patterns (``SessionCRL.localize(forward,
bem=...)``) removes most of the grid error in both cases.

Same commands, 2026-12-06 14:00 UTC, after ``SessionCRL(subspace="change")`` became the
default (RAP-MUSIC rows reproduced; worst case over the 20 problems after the slash)::

    orientation  method                 loc mm mean / worst   MCC   network F1  changing F1  fit s
    fixed        RAP-MUSIC                 6.2 / 10.4         0.92     0.74        0.47       1.25
    fixed        crl_neuro SessionCRL      6.0 / 10.8         0.93     0.89        0.72       0.85
    fixed        SessionCRL+dipole fit     4.0 /  6.4         0.93     0.89        0.72       1.14
    free         RAP-MUSIC                 4.6 /  8.2         0.94     0.77        0.53       1.61
    free         crl_neuro SessionCRL      4.2 /  7.0         0.94     0.95        0.70       0.94
    free         SessionCRL+dipole fit     3.9 /  6.3         0.94     0.95        0.70       1.21

Usage::

    python benchmarks/bench_meeg.py --quick
    python benchmarks/bench_meeg.py --seeds 0 1 2 3 4 --n-sources 3 5 --snr 0 10 --out meeg.csv
    python benchmarks/bench_meeg.py --quick --sensors meg          # synthetic MEG helmet
    python benchmarks/bench_meeg.py --quick --noise-cov-duration 30  # estimated noise covariance
"""

from __future__ import annotations

import argparse
import os
import threading
import time
import warnings
from typing import Callable

import numpy as np
import pandas as pd
from scipy import stats

ALPHA = 0.01
PEAK_SEPARATION = 0.02  # metres between picked peaks of power maps
# minimum-norm regularisation: continuous data, SNR = 1 (1/9 gave the same picture)
LAMBDA2 = float(os.environ.get("BENCH_LAMBDA2", 1.0))
# LCMV regularisation (fraction of the mean eigenvalue). MNE's default 0.05 makes the
# beamformer cancel the true source when the forward model is wrong (as here, and in
# real data). Of 0.05, 0.5 and 1.0, 1.0 gave LCMV its best scores on the quick problems.
LCMV_REG = float(os.environ.get("BENCH_LCMV_REG", 1.0))


# --------------------------------------------------------------------------- memory
def _libc():
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        # Fixed mmap threshold: large arrays are mmapped and go back to the OS when freed,
        # so the resident set size tracks live memory instead of the allocator's high water.
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD
        return libc
    except (OSError, AttributeError):  # pragma: no cover - non-glibc platforms
        return None


_LIBC = _libc()


def _release_free_memory() -> None:
    import gc

    gc.collect()
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _rss() -> int:
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except OSError:  # pragma: no cover - non-Linux
        import resource

        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


class PeakMemory:
    """Context manager sampling the resident set size; ``peak_mib`` above the start level."""

    def __init__(self, interval: float = 0.002):
        self.interval = interval
        self.peak_mib = 0.0

    def __enter__(self):
        _release_free_memory()
        self._start = _rss()
        self._peak = self._start
        self._stop = threading.Event()

        def sample():
            while not self._stop.is_set():
                self._peak = max(self._peak, _rss())
                time.sleep(self.interval)

        self._thread = threading.Thread(target=sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, _rss())
        self.peak_mib = (self._peak - self._start) / 2**20
        return False


# --------------------------------------------------------------------------- helpers
def _pick_peaks(power: np.ndarray, pos: np.ndarray, k: int, min_sep: float = PEAK_SEPARATION) -> np.ndarray:
    """Indices of the ``k`` largest values of ``power`` at least ``min_sep`` apart."""
    chosen: list[int] = []
    for idx in np.argsort(power)[::-1]:
        if all(np.linalg.norm(pos[idx] - pos[c]) >= min_sep for c in chosen):
            chosen.append(int(idx))
            if len(chosen) == k:
                break
    return np.array(chosen)


def _concat(raws) -> np.ndarray:
    return np.concatenate([r.get_data() for r in raws], axis=1)


def _data_cov(raws):
    """Sensor covariance pooled over sessions (each session centred), as mne.Covariance."""
    import mne

    xs = [r.get_data() for r in raws]
    n = sum(x.shape[1] for x in xs)
    c = sum((x - x.mean(1, keepdims=True)) @ (x - x.mean(1, keepdims=True)).T for x in xs) / (n - len(xs))
    info = raws[0].info
    return mne.Covariance(c, list(info["ch_names"]), [], list(info["projs"]), n - len(xs), verbose=False)


def _ess(x: np.ndarray, y: np.ndarray, max_lag: int) -> float:
    """Bartlett effective sample size for the correlation of two autocorrelated series."""
    n = x.size
    x = (x - x.mean()) / x.std()
    y = (y - y.mean()) / y.std()
    fx = np.fft.rfft(x, 2 * n)
    fy = np.fft.rfft(y, 2 * n)
    ax = np.fft.irfft(fx * np.conj(fx))[1 : max_lag + 1] / n
    ay = np.fft.irfft(fy * np.conj(fy))[1 : max_lag + 1] / n
    return float(n / max(1.0, 1.0 + 2.0 * np.sum(ax * ay)))


def partial_corr_network(
    sources: list[np.ndarray], alpha: float = ALPHA, max_lag: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Markov network and changing edges from per-session partial correlations.

    Parameters
    ----------
    sources : list of arrays (k, n_times_s)
        Recovered time courses, one array per session.

    Returns
    -------
    network, changing : bool arrays (k, k)
    """
    k = sources[0].shape[0]
    if k < 2:
        return np.zeros((k, k), bool), np.zeros((k, k), bool)
    n_sess = len(sources)
    n_pairs = k * (k - 1) // 2
    z = np.zeros((n_sess, k, k))
    w = np.zeros((n_sess, k, k))
    p = np.ones((n_sess, k, k))
    for s, x in enumerate(sources):
        prec = np.linalg.pinv(np.cov(x))
        d = np.sqrt(np.abs(np.diag(prec)))
        pc = np.clip(-prec / np.outer(d, d), -0.999999, 0.999999)
        # residuals of each source given the others: partial corr = their correlation
        resid = prec @ (x - x.mean(1, keepdims=True))
        for i in range(k):
            for j in range(i + 1, k):
                n_eff = _ess(resid[i], resid[j], max_lag)
                dof = max(n_eff - (k - 2) - 3, 1.0)
                z[s, i, j] = z[s, j, i] = np.arctanh(pc[i, j])
                w[s, i, j] = w[s, j, i] = dof
                p[s, i, j] = p[s, j, i] = 2 * stats.norm.sf(abs(z[s, i, j]) * np.sqrt(dof))
    network = np.any(p < alpha / (n_pairs * n_sess), axis=0)
    np.fill_diagonal(network, False)
    changing = np.zeros_like(network)
    edges = list(zip(*np.nonzero(np.triu(network, 1))))
    for i, j in edges:
        zz, ww = z[:, i, j], w[:, i, j]
        zbar = np.sum(ww * zz) / np.sum(ww)
        q = np.sum(ww * (zz - zbar) ** 2)
        if stats.chi2.sf(q, n_sess - 1) < alpha / max(len(edges), 1):
            changing[i, j] = changing[j, i] = True
    return network, changing


def _split(tc: np.ndarray, lengths: list[int]) -> list[np.ndarray]:
    return np.split(tc, np.cumsum(lengths)[:-1], axis=1)


# --------------------------------------------------------------------------- methods
def _free_forward(sim):
    """The nominal forward in free orientation (needed by MNE for depth weighting).

    Same source space and the same nominal sphere as ``sim.forward`` (whose
    ``mri_head_t`` is the identity and whose ``info`` holds the sensors).
    """
    import mne

    bem = sim.truth.get("nominal_sphere")
    if bem is None:
        bem = mne.make_sphere_model("auto", "auto", sim.info, verbose=False)
    meg = "mag" in sim.info.get_channel_types()
    fwd = mne.make_forward_solution(
        sim.info, None, sim.forward["src"], bem, meg=meg, eeg=not meg, verbose=False
    )
    return mne.convert_forward_solution(fwd, surf_ori=True, verbose=False)


def method_minimum_norm(method: str) -> Callable:
    def run(sim, k, seed, ctx):
        import mne

        free = ctx["orientation"] == "free"
        inv = mne.minimum_norm.make_inverse_operator(
            sim.info, ctx["free_forward"], sim.noise_cov, loose=1.0 if free else 0.0, fixed=not free,
            depth=0.8, verbose=False
        )
        ident = mne.EvokedArray(np.eye(len(sim.info["ch_names"])), sim.info, nave=1, verbose=False)
        pick_ori = "vector" if free else None
        kernel = mne.minimum_norm.apply_inverse(ident, inv, LAMBDA2, method, pick_ori=pick_ori,
                                                verbose=False).data
        cov = _data_cov(sim.raws).data
        if free:  # (n_src, 3, n_ch): power summed over orientations, time course along the
            # orientation of largest power at the peak
            power = np.einsum("soj,jk,sok->s", kernel, cov, kernel)
        else:
            power = np.einsum("ij,jk,ik->i", kernel, cov, kernel)
        # kernel rows follow the forward's source order (all sources, fixed orientation)
        src_pos = ctx["free_forward"]["source_rr"]
        peaks = _pick_peaks(power, src_pos, k)
        if free:
            rows = []
            for p in peaks:
                _, vecs = np.linalg.eigh(kernel[p] @ cov @ kernel[p].T)
                rows.append(vecs[:, -1] @ kernel[p])
            kernel_peaks = np.array(rows)
        else:
            kernel_peaks = kernel[peaks]
        return src_pos[peaks], [kernel_peaks @ r.get_data() for r in sim.raws], None

    return run


def method_lcmv(sim, k, seed, ctx):
    import mne

    data_cov = _data_cov(sim.raws)
    filters = mne.beamformer.make_lcmv(
        sim.info, sim.forward, data_cov, reg=LCMV_REG, noise_cov=sim.noise_cov, pick_ori=None,
        weight_norm="unit-noise-gain-invariant", rank="info", verbose=False,
    )
    stc = mne.beamformer.apply_lcmv_cov(data_cov, filters, verbose=False)
    src_pos = sim.forward["source_rr"]
    peaks = _pick_peaks(stc.data[:, 0], src_pos, k)
    # as mne.beamformer.apply_lcmv_raw: the whitener (which includes the projector), then weights
    w = filters["weights"][peaks] @ filters["whitener"]
    tcs = [w @ r.get_data() for r in sim.raws]
    return src_pos[peaks], tcs, None


def method_music(trap: bool) -> Callable:
    def run(sim, k, seed, ctx):
        import mne

        evoked = mne.EvokedArray(_concat(sim.raws), sim.info, nave=1, verbose=False)
        fun = mne.beamformer.trap_music if trap else mne.beamformer.rap_music
        dips = fun(evoked, sim.forward, sim.noise_cov, n_dipoles=k, verbose=False)
        pos = np.array([d.pos[0] for d in dips])
        amps = np.array([d.amplitude for d in dips])
        return pos, _split(amps, ctx["lengths"]), None

    return run


def method_ica(algorithm: str) -> Callable:
    def run(sim, k, seed, ctx):
        import mne

        from crl_neuro.meeg.localization import scan_leadfield

        raw = mne.concatenate_raws([r.copy() for r in sim.raws], verbose=False)
        ica = mne.preprocessing.ICA(
            n_components=k, method=algorithm, noise_cov=sim.noise_cov, random_state=seed, max_iter=1000,
            verbose=False,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # "not high-pass filtered": simulated data have no drift
            ica.fit(raw, verbose=False)
        loc = scan_leadfield(sim.forward, ica.get_components(), info=sim.info, noise_cov=sim.noise_cov)
        tcs = [ica.get_sources(r).get_data() for r in sim.raws]
        return loc.pos, tcs, None

    return run


def method_session_crl(sim, k, seed, ctx):
    from crl_neuro.meeg import SessionCRL

    est = SessionCRL(n_sources=k, noise_cov=sim.noise_cov, random_state=seed)
    est.fit(sim.raws, forward=sim.forward)
    tcs = [est.get_sources(r).get_data() for r in sim.raws]
    nets = (np.asarray(est.markov_network_, bool), np.asarray(est.changing_edges_, bool))
    return est.source_pos_, tcs, nets


def method_session_crl_dipfit(sim, k, seed, ctx):
    """SessionCRL, then a continuous dipole fit of each pattern in the nominal head model."""
    from crl_neuro.meeg import SessionCRL

    est = SessionCRL(n_sources=k, noise_cov=sim.noise_cov, random_state=seed)
    est.fit(sim.raws, forward=sim.forward)
    est.localize(sim.forward, bem=sim.truth["nominal_sphere"])
    tcs = [est.get_sources(r).get_data() for r in sim.raws]
    nets = (np.asarray(est.markov_network_, bool), np.asarray(est.changing_edges_, bool))
    return est.source_pos_, tcs, nets


def _session_crl_available() -> bool:
    try:
        from crl_neuro.meeg import SessionCRL  # noqa: F401
    except Exception:
        return False
    return True


METHODS: dict[str, Callable] = {
    "dSPM": method_minimum_norm("dSPM"),
    "sLORETA": method_minimum_norm("sLORETA"),
    "eLORETA": method_minimum_norm("eLORETA"),
    "LCMV": method_lcmv,
    "RAP-MUSIC": method_music(trap=False),
    "TRAP-MUSIC": method_music(trap=True),
    "ICA-FastICA+scan": method_ica("fastica"),
    "ICA-Picard+scan": method_ica("picard"),
    "crl_neuro SessionCRL": method_session_crl,
    "SessionCRL+dipole fit": method_session_crl_dipfit,
}


# --------------------------------------------------------------------------- scoring
def score(sim, pos, tcs, networks) -> dict[str, float]:
    from crl_neuro.core.metrics import graph_f1, localization_error, mcc

    truth = sim.truth
    true_tc = np.concatenate(truth.sources, axis=1).T
    est_tc = np.concatenate(tcs, axis=1).T
    mcc_score, matching, _ = mcc(true_tc, est_tc, return_details=True)
    if networks is None:
        networks = partial_corr_network(tcs, max_lag=int(sim.info["sfreq"] // 2))
    net, chg = networks
    k = truth.markov_network.shape[0]
    order = np.array([m if m >= 0 else 0 for m in matching])
    net_t = net[np.ix_(order, order)]
    chg_t = chg[np.ix_(order, order)]
    if np.any(matching < 0):  # fewer estimated than true components: unmatched have no edges
        miss = matching < 0
        net_t[miss, :] = net_t[:, miss] = False
        chg_t[miss, :] = chg_t[:, miss] = False
    return {
        "loc_err_mm": localization_error(truth.pos, np.asarray(pos)),
        "mcc": mcc_score,
        "network_f1": graph_f1(truth.markov_network, net_t),
        "changing_f1": graph_f1(truth.changing_edges, chg_t),
        "k_true_edges": int(np.triu(truth.markov_network, 1).sum()),
        "k": k,
    }


# --------------------------------------------------------------------------- main
def run_benchmark(
    seeds, n_sources_list, snrs, duration, n_sessions, methods, sensors="eeg", noise_cov_duration=None,
    verbose=True, orientation="fixed",
) -> pd.DataFrame:
    import mne

    from crl_neuro.datasets import simulate_meeg_sessions

    mne.set_log_level("ERROR")
    rows = []
    for k in n_sources_list:
        for snr in snrs:
            for seed in seeds:
                sim = simulate_meeg_sessions(
                    n_sources=k, n_sessions=n_sessions, duration=duration, snr=snr, sensors=sensors,
                    noise_cov_duration=noise_cov_duration, random_state=seed,
                )
                ctx = {"free_forward": _free_forward(sim), "lengths": [r.n_times for r in sim.raws],
                       "orientation": orientation}
                if orientation == "free":
                    # Every method gets the free-orientation nominal forward (three
                    # orientations per location, orientation unknown to the methods);
                    # the data and the truth are unchanged.
                    sim.forward = ctx["free_forward"]
                for name in methods:
                    fun = METHODS[name]
                    try:
                        with PeakMemory() as mem:
                            t0 = time.perf_counter()
                            pos, tcs, nets = fun(sim, k, seed, ctx)
                            fit_time = time.perf_counter() - t0
                        row = score(sim, pos, tcs, nets)
                        row.update(fit_time_s=fit_time, peak_mem_mib=mem.peak_mib)
                    except Exception as err:  # keep the benchmark going; report the failure
                        row = {"error": f"{type(err).__name__}: {err}"}
                        if verbose:
                            print(f"  {name} failed on K={k} snr={snr} seed={seed}: {row['error']}")
                    row.update(method=name, n_sources=k, snr_db=snr, seed=seed)
                    rows.append(row)
                if verbose:
                    done = rows[-len(methods) :]
                    summary = ", ".join(
                        f"{r['method']}: {r.get('loc_err_mm', np.nan):.1f} mm" for r in done
                    )
                    print(f"K={k} snr={snr:g} dB seed={seed}: {summary}", flush=True)
    return pd.DataFrame(rows)


def aggregate(df: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    cols = ["loc_err_mm", "mcc", "network_f1", "changing_f1", "fit_time_s", "peak_mem_mib"]
    cols = [c for c in cols if c in df]
    g = df.groupby(by, sort=False)[cols]
    mean, sd = g.mean(), g.std(ddof=1).fillna(0.0)
    fmt = {"loc_err_mm": "{:.1f}", "fit_time_s": "{:.2f}", "peak_mem_mib": "{:.0f}"}
    out = pd.DataFrame(index=mean.index)
    for c in cols:
        f = fmt.get(c, "{:.2f}")
        out[c] = [f"{f.format(m)} ± {f.format(s)}" for m, s in zip(mean[c], sd[c])]
    out["n"] = g.size()
    return out


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help="small run (2 seeds, K=3 and 5, the SNRs, 30 s sessions)"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--n-sources", type=int, nargs="+", default=[3, 5])
    parser.add_argument("--snr", type=float, nargs="+", default=[0.0, 10.0], help="SNR values in dB")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds per session")
    parser.add_argument("--n-sessions", type=int, default=4)
    parser.add_argument("--sensors", choices=["eeg", "meg"], default="eeg")
    parser.add_argument(
        "--noise-cov-duration", type=float, default=None,
        help="estimate the noise covariance from a simulated baseline of this many seconds (default: exact)",
    )
    parser.add_argument(
        "--orientation", choices=["fixed", "free"], default="fixed",
        help="forward given to the methods: fixed (cortical normals) or free orientation",
    )
    parser.add_argument("--methods", nargs="+", default=None, help=f"subset of {list(METHODS)}")
    parser.add_argument("--out", default=None, help="write per-run results to this CSV file")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.n_sources, args.duration = [0, 1], [3, 5], 30.0
    methods = args.methods or list(METHODS)
    unknown = [m for m in methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {list(METHODS)}")
    if "crl_neuro SessionCRL" in methods and not _session_crl_available():
        print("crl_neuro SessionCRL: not available (crl_neuro.meeg.SessionCRL missing); skipped")
        methods = [m for m in methods if m != "crl_neuro SessionCRL"]

    t0 = time.perf_counter()
    df = run_benchmark(
        args.seeds, args.n_sources, args.snr, args.duration, args.n_sessions, methods, sensors=args.sensors,
        noise_cov_duration=args.noise_cov_duration, orientation=args.orientation,
    )
    if args.out:
        df.to_csv(args.out, index=False)
        print(f"per-run results written to {args.out}")
    ok = df[df.get("error").isna()] if "error" in df else df
    pd.set_option("display.width", 200)
    pd.set_option("display.max_columns", 20)
    print("\nMean ± sd over seeds, per source count and SNR (lower loc_err is better):")
    print(aggregate(ok, ["n_sources", "snr_db", "method"]).to_string())
    print("\nOverall (all problems):")
    print(aggregate(ok, ["method"]).to_string())
    print(
        f"\nseeds={args.seeds} n_sources={args.n_sources} snr_db={args.snr} duration={args.duration}s "
        f"n_sessions={args.n_sessions} sensors={args.sensors} orientation={args.orientation} "
        f"noise_cov_duration={args.noise_cov_duration}; total {time.perf_counter() - t0:.0f} s"
    )
    return df


if __name__ == "__main__":
    main()
