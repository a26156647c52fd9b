"""Scale benchmark of group fits and of the heart estimators' cost.

Part 1 — group fits. :func:`crl_neuro.group.fit_group` with a realistic
:class:`~crl_neuro.meeg.SessionCRL` subject (full run: 128 EEG channels, 6 sessions
of 5 min at 200 Hz, 5 sources, forward model; 350 MB of float64 data and about
2 s of one core per subject) on 1 -> 64 subjects given as **file paths** (FIF raws + forward, read inside
the worker), serial vs loky vs a Dask ``LocalCluster`` (``--workers`` processes, one
thread each), same data, one run. Columns: wall time, seconds per subject, speed-up
over serial at the same number of subjects and parallel efficiency
(speed-up / workers), and memory **per worker**: ``fit_group`` records each
subject's peak resident memory inside the worker that fitted it (Linux peak-RSS
counter, reset at the start of every subject; no polling), so ``peak_worker_MB`` is
the largest over the subjects, ``drift_MB`` the largest change between the first and
the last subject a worker fitted (growth with the number of subjects shows here)
and ``rss_after_MB`` the workers' resident memory when idle after the run. The
workers' idle memory after importing the libraries and one subject's data size are
printed first. Subjects beyond the simulated ones reuse their files (same size, so
the per-subject work is constant; the files are in the page cache after the warm-up).

Part 2 — cost growth. Fit time of ``SessionCRL`` vs channels (subsets of a 256-channel
net), time points (cropped sessions) and sessions, and of ``CausalROIs`` vs voxels
(grid resolution), time points and runs, one factor at a time; the exponent is the
slope of log(time) on log(size) over all sizes, ``upper`` the slope between the two
largest sizes (fixed costs weigh less there).

Full run (about 6-7 minutes on 2 idle cores)::

    OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1 \\
        python benchmarks/bench_group_scale.py --workers 2

``--quick`` (1 -> 8 subjects of 2-minute sessions, 3 sizes per factor) is a smoke
run. ``--max-subjects N`` caps the group sizes, ``--sizes 1,2,4,8`` sets them.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
os.environ.setdefault("MNE_LOGGING_LEVEL", "ERROR")


# ----------------------------------------------------------------------------- helpers
def load_fixed(path):
    """Default loader, with forwards converted back to fixed orientation (as simulated)."""
    import mne

    from crl_neuro.group import default_loader

    obj = default_loader(path)
    if isinstance(obj, mne.Forward):
        obj = mne.convert_forward_solution(obj, surf_ori=True, force_fixed=True, use_cps=True,
                                           verbose=False)
    return obj


def _rss_of_this_process(pause: float = 0.0) -> tuple[int, int]:
    """(pid, current RSS in bytes) of the calling process; ``pause`` lets every worker get a task."""
    time.sleep(pause)
    try:
        import psutil  # installed with dask.distributed

        return os.getpid(), psutil.Process().memory_info().rss
    except ImportError:  # Linux without psutil
        with open("/proc/self/statm") as f:
            return os.getpid(), int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _loky_workers_rss(n_jobs: int) -> list[int]:
    """Current RSS of the (reused) loky workers, asked with a few tiny tasks."""
    from joblib import Parallel, delayed

    out = Parallel(n_jobs=n_jobs)(delayed(_rss_of_this_process)(0.3) for _ in range(3 * n_jobs))
    return list(dict(out).values())


def _dask_workers_rss(client) -> list[int]:
    return [rss for _pid, rss in client.run(_rss_of_this_process).values()]


def _mb(x) -> float:
    return float(x) / 2**20


def _fmt_row(r: dict) -> str:
    return "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())


# ----------------------------------------------------------------------------- part 1
def make_meeg_subjects(root: Path, n_distinct: int, n_sessions: int, duration: float,
                       montage: str, n_sources: int):
    """Simulate ``n_distinct`` subjects, write them as FIF (raws + forward), return paths.

    Returns the list of per-subject inputs (``{"insts": [paths], "forward": path}``),
    a noise covariance and one subject's float64 data size in bytes.
    """
    import mne

    from crl_neuro.datasets import simulate_meeg_sessions

    subs, cov, nbytes = [], None, 0
    for i in range(n_distinct):
        sim = simulate_meeg_sessions(n_sources=n_sources, n_sessions=n_sessions, duration=duration,
                                     montage=montage, random_state=i)
        paths = []
        for s, raw in enumerate(sim.raws):
            p = root / f"sim{i}_ses{s}_raw.fif"
            raw.save(p, overwrite=True, verbose=False)
            paths.append(str(p))
        nbytes = sum(r.n_times * len(r.ch_names) * 8 for r in sim.raws)
        fwd = root / f"sim{i}-fwd.fif"
        mne.write_forward_solution(fwd, sim.forward, overwrite=True, verbose=False)  # free ori on disk
        subs.append({"insts": paths, "forward": str(fwd)})
        cov = cov or sim.noise_cov
        del sim
    return subs, cov, nbytes


def _per_worker(res) -> tuple[float, float, int]:
    """Largest per-subject peak (MB), largest first->last drift (MB), workers used."""
    by_worker: dict[str, list[float]] = {}
    for sid in res.fitted:  # subject order = dispatch order (one subject per task)
        if res.peak_memory[sid] is not None:
            by_worker.setdefault(res.workers[sid], []).append(_mb(res.peak_memory[sid]))
    if not by_worker:
        return float("nan"), float("nan"), 0
    peak = max(max(v) for v in by_worker.values())
    drift = max(v[-1] - v[0] for v in by_worker.values())
    return peak, drift, len(by_worker)


def part_group(args, root: Path) -> list[dict]:
    import joblib

    from crl_neuro.group import fit_group
    from crl_neuro.meeg import SessionCRL

    if args.quick:
        spec = dict(n_distinct=2, n_sessions=4, duration=120.0, montage="biosemi128", n_sources=5)
    else:
        spec = dict(n_distinct=4, n_sessions=6, duration=300.0, montage="biosemi128", n_sources=5)
    sizes = sorted({s for s in args.sizes if s <= args.max_subjects} | {args.max_subjects})
    t0 = time.perf_counter()
    subs, cov, nbytes = make_meeg_subjects(root, **spec)
    print(f"simulated and wrote {spec['n_distinct']} distinct subjects in "
          f"{time.perf_counter() - t0:.0f} s; one subject: {spec['n_sessions']} sessions x "
          f"{spec['duration']:.0f} s x 128 channels = {_mb(nbytes):.0f} MB as float64", flush=True)
    template = SessionCRL(n_sources=spec["n_sources"], noise_cov=cov, verbose=False)

    backends = ["serial", "loky", "dask"]
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        print("dask.distributed not installed: no Dask rows")
        backends.remove("dask")
    client = cluster = None
    rows = []
    try:
        if "dask" in backends:
            cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                                   dashboard_address=None)
            client = Client(cluster)
        # Warm-up: import the libraries in this process and in every worker, and read
        # the files once (page cache), so the rows time the fits, not the start-up.
        warm = {f"warm{j}": subs[j % len(subs)] for j in range(2 * args.workers)}
        fit_group(template, {"warm": subs[0]}, n_jobs=1, loader=load_fixed)
        fit_group(template, warm, n_jobs=args.workers, loader=load_fixed)
        idle = {"serial": [_rss_of_this_process()[1]], "loky": _loky_workers_rss(args.workers)}
        if client is not None:
            with joblib.parallel_config(backend="dask"):
                fit_group(template, warm, n_jobs=-1, loader=load_fixed)
            idle["dask"] = _dask_workers_rss(client)
        print("idle worker RSS after imports and warm-up: "
              + ", ".join(f"{b} {_mb(max(v)):.0f} MB" for b, v in idle.items()), flush=True)
        for n in sizes:
            group = {f"sub-{j:03d}": subs[j % len(subs)] for j in range(n)}
            serial_t = None
            for backend in backends:
                out = root / f"out_{backend}_{n}"
                t0 = time.perf_counter()
                if backend == "dask":
                    with joblib.parallel_config(backend="dask"):
                        res = fit_group(template, group, out_dir=out, n_jobs=-1, random_state=0,
                                        loader=load_fixed)
                else:
                    res = fit_group(template, group, out_dir=out, random_state=0, loader=load_fixed,
                                    n_jobs=1 if backend == "serial" else args.workers)
                wall = time.perf_counter() - t0
                if res.errors:
                    raise RuntimeError(next(iter(res.errors.values())))
                if backend == "serial":
                    serial_t = wall
                    after = [_rss_of_this_process()[1]]
                elif backend == "loky":
                    after = _loky_workers_rss(args.workers)
                else:
                    after = _dask_workers_rss(client)
                peak, drift, used = _per_worker(res)
                n_workers = 1 if backend == "serial" else args.workers
                speedup = serial_t / wall
                rows.append(dict(subjects=n, backend=backend, workers=n_workers, used=used,
                                 wall_s=wall, s_per_subject=wall / n, speedup=speedup,
                                 efficiency=speedup / n_workers, peak_worker_MB=peak,
                                 drift_MB=drift, rss_after_MB=_mb(max(after))))
                print(_fmt_row(rows[-1]), flush=True)
    finally:
        if client is not None:
            client.close()
            cluster.close()
    return rows


# ----------------------------------------------------------------------------- part 2
def _slope(sizes, times) -> float:
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def _timed(fn, repeat: int) -> float:
    """Best of ``repeat`` runs; a run over 1 s is not repeated (noise matters less there)."""
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
        if best > 1.0:
            break
    return best


def _cost_row(estimator: str, factor: str, sizes, times) -> dict:
    row = dict(estimator=estimator, factor=factor, sizes=list(sizes), times=list(times),
               exponent=_slope(sizes, times), upper=_slope(sizes[-2:], times[-2:]))
    pts = ", ".join(f"{s}:{t:.2f}s" for s, t in zip(sizes, times))
    print(f"{estimator:<11} {factor:<12} exponent {row['exponent']:5.2f} (upper {row['upper']:5.2f})"
          f"   ({pts})", flush=True)
    return row


def part_cost(args) -> list[dict]:
    from crl_neuro.datasets import simulate_fmri_rois, simulate_meeg_sessions
    from crl_neuro.fmri import CausalROIs
    from crl_neuro.meeg import SessionCRL

    q = args.quick
    rep = 1 if q else 2
    k = 5
    rows = []

    def fit_meeg(raws, sim, picks=None):
        est = SessionCRL(n_sources=k, noise_cov=sim.noise_cov, picks=picks, verbose=False)
        return _timed(lambda: est.fit(raws, forward=sim.forward), rep)

    # Channels: evenly spread subsets of one 256-channel net (same sources and head).
    sim = simulate_meeg_sessions(n_sources=k, n_sessions=4, duration=60.0 if q else 120.0,
                                 montage="GSN-HydroCel-256", random_state=0)
    names = sim.info["ch_names"]
    n_ch = [32, 64, 128] if q else [32, 64, 128, 256]
    times = []
    for n in n_ch:
        picks = [names[i] for i in np.round(np.linspace(0, len(names) - 1, n)).astype(int)]
        times.append(fit_meeg(sim.raws, sim, picks))
    rows.append(_cost_row("SessionCRL", "channels", n_ch, times))
    # Time points: the same sessions cropped.
    durations = [30.0, 60.0, 120.0] if q else [30.0, 60.0, 120.0, 240.0]
    sim = simulate_meeg_sessions(n_sources=k, n_sessions=4, duration=durations[-1],
                                 montage="biosemi128", random_state=0)
    sizes, times = [], []
    for d in durations:
        raws = [r.copy().crop(tmax=d, include_tmax=False) for r in sim.raws]
        sizes.append(raws[0].n_times)
        times.append(fit_meeg(raws, sim))
    rows.append(_cost_row("SessionCRL", "time points", sizes, times))
    # Sessions: the first n of one simulation.
    n_ses = [2, 4, 8] if q else [2, 4, 8, 16]
    sim = simulate_meeg_sessions(n_sources=k, n_sessions=n_ses[-1], duration=60.0,
                                 montage="biosemi128", random_state=0)
    times = [fit_meeg(sim.raws[:n], sim) for n in n_ses]
    rows.append(_cost_row("SessionCRL", "sessions", n_ses, times))
    del sim

    fbase = dict(scenario="separated", n_runs=3, n_timepoints=100, resolution=8.0, random_state=0)
    fmri_factors = {
        "voxels": ("resolution", [10.0, 8.0, 6.0] if q else [10.0, 8.0, 6.0, 4.0],
                   lambda s: int(np.asarray(s.mask_img.dataobj).astype(bool).sum())),
        "time points": ("n_timepoints", [100, 200, 400] if q else [100, 200, 400, 800],
                        lambda s: s.imgs[0].shape[-1]),
        "runs": ("n_runs", [2, 4, 8] if q else [2, 4, 8, 16], lambda s: len(s.imgs)),
    }
    for factor, (param, values, size_of) in fmri_factors.items():
        sizes, times = [], []
        for v in values:
            fsim = simulate_fmri_rois(**{**fbase, param: v})
            est = CausalROIs(n_rois=int(np.asarray(fsim.labels_img.dataobj).max()))
            times.append(_timed(lambda: est.fit(fsim.imgs), rep))
            sizes.append(size_of(fsim))
        rows.append(_cost_row("CausalROIs", factor, sizes, times))
    return rows


# ----------------------------------------------------------------------------- main
def _int_list(text: str) -> list[int]:
    try:
        out = [int(x) for x in text.split(",") if x.strip()]
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from err
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 1 -> 8 lighter subjects, 3 sizes per cost factor")
    p.add_argument("--workers", type=int, default=2, help="workers for loky and Dask")
    p.add_argument("--max-subjects", type=int, default=None,
                   help="largest group (default 64, --quick 8)")
    p.add_argument("--sizes", type=_int_list, default=None,
                   help="group sizes, comma-separated (default 1,4,16,64; --quick 1,2,4,8)")
    p.add_argument("--skip-group", action="store_true")
    p.add_argument("--skip-cost", action="store_true")
    args = p.parse_args(argv)
    if args.max_subjects is None:
        args.max_subjects = 8 if args.quick else 64
    if args.sizes is None:
        args.sizes = [1, 2, 4, 8] if args.quick else [1, 4, 16, 64]
    import pandas as pd

    threads = {v: os.environ.get(v, "unset") for v in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS")}
    print(f"CPUs: {os.cpu_count()}, workers: {args.workers}, quick: {args.quick}, {threads}", flush=True)
    t_start = time.perf_counter()
    if not args.skip_group:
        with tempfile.TemporaryDirectory() as tmp:
            rows = part_group(args, Path(tmp))
        print("\nGroup fits (SessionCRL subjects read from FIF files inside the workers; "
              "memory per worker measured inside the worker):")
        print(pd.DataFrame(rows).to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    if not args.skip_cost:
        print("\nCost growth (log-log slope of fit time on size; one factor at a time):", flush=True)
        rows = part_cost(args)
        df = pd.DataFrame([{k: v for k, v in r.items() if k not in ("sizes", "times")}
                           | {"sizes": " ".join(map(str, r["sizes"])),
                              "seconds": " ".join(f"{t:.2f}" for t in r["times"])} for r in rows])
        print(df.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    print(f"\ntotal {time.perf_counter() - t_start:.0f} s")


if __name__ == "__main__":
    main()
