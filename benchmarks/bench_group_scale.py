"""Scale benchmark of group fits and of the heart estimators' cost.

Part 1 — group fits. ``fit_group`` on 1 -> 64 simulated subjects (``--quick``: 1 -> 8)
read from FIF files (each worker loads one subject's files), serial vs loky vs a Dask
``LocalCluster`` (process workers), same machine, one run. Columns: wall time,
speed-up over serial, peak resident memory of the whole process tree and of the
largest single worker (sampled with psutil every 20 ms; for serial runs the main
process, which also holds the benchmark's own state; for Dask the lifetime peak of
the worker processes). The idle RSS of a worker after importing the libraries is
printed first: the difference is what one subject's data and fit cost.

Part 2 — cost growth. Fit time of ``SessionCRL`` vs channels (EEG montages), time
points and sessions, and of ``CausalROIs`` vs voxels (grid resolution), time points
and runs, one factor at a time; the exponent is the slope of log(time) on log(size).

Run: ``python benchmarks/bench_group_scale.py [--quick] [--workers 2]``.
Set ``OMP_NUM_THREADS=1`` etc. for stable timings (``fit_group`` caps the workers'
inner threads itself).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import threading
import time
import warnings
from pathlib import Path

import numpy as np

warnings.filterwarnings("ignore")
os.environ.setdefault("MNE_LOGGING_LEVEL", "ERROR")


class MemorySampler:
    """Peak RSS of this process and its children (total and largest child)."""

    def __init__(self, interval: float = 0.02) -> None:
        import psutil

        self._proc = psutil.Process()
        self.interval = interval
        self.peak_total = 0
        self.peak_child = 0
        self.peak_self = 0
        self._stop = threading.Event()

    def _run(self) -> None:
        import psutil

        while not self._stop.is_set():
            total, child_max = 0, 0
            try:
                total = self._proc.memory_info().rss
                self.peak_self = max(self.peak_self, total)
                for c in self._proc.children(recursive=True):
                    try:
                        r = c.memory_info().rss
                    except psutil.Error:
                        continue
                    total += r
                    child_max = max(child_max, r)
            except psutil.Error:
                pass
            self.peak_total = max(self.peak_total, total)
            self.peak_child = max(self.peak_child, child_max)
            self._stop.wait(self.interval)

    def __enter__(self) -> "MemorySampler":
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._t.join()


def load_fixed(path):
    """Default loader, with forwards converted back to fixed orientation (as simulated)."""
    import mne

    from crl_neuro.group import default_loader

    obj = default_loader(path)
    if isinstance(obj, mne.Forward):
        obj = mne.convert_forward_solution(obj, surf_ori=True, force_fixed=True, use_cps=True,
                                           verbose=False)
    return obj


def make_meeg_subjects(root: Path, n_distinct: int, duration: float) -> tuple[list[dict], object]:
    """Simulate ``n_distinct`` subjects and write them as FIF files (raws + forward)."""
    import mne

    from crl_neuro.datasets import simulate_meeg_sessions

    subs, cov = [], None
    for i in range(n_distinct):
        sim = simulate_meeg_sessions(n_sources=3, n_sessions=3, duration=duration, random_state=i)
        paths = []
        for s, raw in enumerate(sim.raws):
            p = root / f"sim{i}_ses{s}_raw.fif"
            raw.save(p, overwrite=True, verbose=False)
            paths.append(str(p))
        fwd = root / f"sim{i}-fwd.fif"
        mne.write_forward_solution(fwd, sim.forward, overwrite=True, verbose=False)  # free ori on disk
        subs.append({"insts": paths, "forward": str(fwd)})
        cov = cov or sim.noise_cov
    return subs, cov


def part_group(args, root: Path) -> list[dict]:
    import joblib

    from crl_neuro.group import fit_group
    from crl_neuro.meeg import SessionCRL

    sizes = [1, 2, 4, 8] if args.quick else [1, 2, 4, 8, 16, 32, 64]
    subs, cov = make_meeg_subjects(root, n_distinct=min(4, max(sizes)), duration=args.duration)
    template = SessionCRL(n_sources=3, noise_cov=cov, verbose=False)
    rows = []
    backends = ["serial", "loky", "dask"]
    try:
        from dask.distributed import Client, LocalCluster
    except ImportError:
        backends.remove("dask")
    client = cluster = None
    if "dask" in backends:
        cluster = LocalCluster(n_workers=args.workers, threads_per_worker=1, processes=True,
                               dashboard_address=None)
        client = Client(cluster)
    try:
        # Warm-up: start the workers and import crl_neuro/mne/torch in each once, then
        # record a worker's resident memory with the libraries loaded but no data.
        warm = {f"w{j}": subs[0] for j in range(2 * args.workers)}
        fit_group(template, {"w": subs[0]}, n_jobs=1, loader=load_fixed)  # this process too (serial runs)
        fit_group(template, warm, n_jobs=args.workers, loader=load_fixed)
        import psutil

        base_loky = max((c.memory_info().rss for c in psutil.Process().children(recursive=True)),
                        default=0)
        base_dask = 0
        if client is not None:
            with joblib.parallel_config(backend="dask"):
                fit_group(template, warm, n_jobs=-1, loader=load_fixed)
            base_dask = max(client.run(_worker_rss).values())
        print(f"idle worker RSS after imports: loky {base_loky / 2**20:.0f} MB, "
              f"dask {base_dask / 2**20:.0f} MB", flush=True)
        for n in sizes:
            group = {f"sub-{j:03d}": subs[j % len(subs)] for j in range(n)}
            serial_t = None
            for backend in backends:
                out = root / f"out_{backend}_{n}"
                t0 = time.perf_counter()
                with MemorySampler() as mem:
                    if backend == "serial":
                        res = fit_group(template, group, out_dir=out, n_jobs=1, random_state=0,
                                        loader=load_fixed)
                    elif backend == "loky":
                        res = fit_group(template, group, out_dir=out, n_jobs=args.workers,
                                        random_state=0, loader=load_fixed)
                    else:
                        with joblib.parallel_config(backend="dask"):
                            res = fit_group(template, group, out_dir=out, n_jobs=-1, random_state=0,
                                            loader=load_fixed)
                wall = time.perf_counter() - t0
                if res.errors:
                    raise RuntimeError(next(iter(res.errors.values())))
                if backend == "serial":
                    serial_t = wall
                # The Dask workers are not children of this process: report their memory.
                worker_peak = mem.peak_self if backend == "serial" else mem.peak_child
                if backend == "dask":
                    info = client.run(_worker_peak_rss)
                    worker_peak = max(info.values())
                rows.append(dict(subjects=n, backend=backend,
                                 workers=1 if backend == "serial" else args.workers,
                                 wall_s=wall, per_subject_s=wall / n, speedup=serial_t / wall,
                                 peak_tree_MB=mem.peak_total / 2**20, peak_worker_MB=worker_peak / 2**20))
                print(_fmt_row(rows[-1]), flush=True)
    finally:
        if client is not None:
            client.close()
            cluster.close()
    return rows


def _worker_rss() -> int:
    """Current RSS of a Dask worker process (bytes)."""
    import psutil

    return psutil.Process().memory_info().rss


def _worker_peak_rss() -> int:
    """Lifetime peak RSS of a Dask worker process (bytes; Linux reports KiB)."""
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def _fmt_row(r: dict) -> str:
    return "  ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.items())


def _slope(sizes, times) -> float:
    return float(np.polyfit(np.log(sizes), np.log(times), 1)[0])


def _timed(fn, repeat: int = 1) -> float:
    best = np.inf
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def part_cost(args) -> list[dict]:
    from crl_neuro.datasets import simulate_fmri_rois, simulate_meeg_sessions
    from crl_neuro.fmri import CausalROIs
    from crl_neuro.meeg import SessionCRL

    q = args.quick
    rows = []
    base = dict(n_sources=3, n_sessions=3, duration=args.duration, random_state=0)
    meeg_factors = {
        "channels": ("montage", ["biosemi32", "biosemi64", "biosemi128"],
                     lambda sim: len(sim.info["ch_names"])),
        "time points": ("duration", [10.0, 20.0, 40.0] if q else [10.0, 20.0, 40.0, 80.0],
                        lambda sim: sim.raws[0].n_times),
        "sessions": ("n_sessions", [2, 4, 8] if q else [2, 4, 8, 16], lambda sim: len(sim.raws)),
    }
    for factor, (param, values, size_of) in meeg_factors.items():
        sizes, times = [], []
        for v in values:
            sim = simulate_meeg_sessions(**{**base, param: v})
            est = SessionCRL(n_sources=3, noise_cov=sim.noise_cov, verbose=False)
            t = _timed(lambda: est.fit(sim.raws, forward=sim.forward), repeat=1 if q else 2)
            sizes.append(size_of(sim))
            times.append(t)
        rows.append(dict(estimator="SessionCRL", factor=factor, sizes=sizes, times=times,
                         exponent=_slope(sizes, times)))
        print(_fmt_cost(rows[-1]), flush=True)
    fbase = dict(scenario="separated", n_runs=3, n_timepoints=100, random_state=0)
    fmri_factors = {
        "voxels": ("resolution", [10.0, 8.0, 6.0] if q else [10.0, 8.0, 6.0, 5.0],
                   lambda sim: int(np.asarray(sim.mask_img.dataobj).astype(bool).sum())),
        "time points": ("n_timepoints", [100, 200, 400] if q else [100, 200, 400, 800],
                        lambda sim: sim.imgs[0].shape[-1]),
        "runs": ("n_runs", [2, 4, 8] if q else [2, 4, 8, 16], lambda sim: len(sim.imgs)),
    }
    for factor, (param, values, size_of) in fmri_factors.items():
        sizes, times = [], []
        for v in values:
            sim = simulate_fmri_rois(**{**fbase, param: v})
            n_rois = int(np.asarray(sim.labels_img.dataobj).max())
            est = CausalROIs(n_rois=n_rois)
            t = _timed(lambda: est.fit(sim.imgs), repeat=1 if q else 2)
            sizes.append(size_of(sim))
            times.append(t)
        rows.append(dict(estimator="CausalROIs", factor=factor, sizes=sizes, times=times,
                         exponent=_slope(sizes, times)))
        print(_fmt_cost(rows[-1]), flush=True)
    return rows


def _fmt_cost(r: dict) -> str:
    pts = ", ".join(f"{s}:{t:.2f}s" for s, t in zip(r["sizes"], r["times"]))
    return f"{r['estimator']:<11} {r['factor']:<12} exponent {r['exponent']:5.2f}   ({pts})"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="1 -> 8 subjects, 3 sizes per factor")
    p.add_argument("--workers", type=int, default=2, help="workers for loky and Dask")
    p.add_argument("--duration", type=float, default=20.0, help="seconds per simulated session")
    p.add_argument("--skip-group", action="store_true")
    p.add_argument("--skip-cost", action="store_true")
    args = p.parse_args(argv)
    import pandas as pd

    print(f"CPUs: {os.cpu_count()}, workers: {args.workers}, quick: {args.quick}")
    if not args.skip_group:
        with tempfile.TemporaryDirectory() as tmp:
            rows = part_group(args, Path(tmp))
        df = pd.DataFrame(rows)
        print("\nGroup fits (SessionCRL, 3 sessions x 64 channels per subject, files on disk):")
        print(df.to_string(index=False, float_format=lambda x: f"{x:.2f}"))
    if not args.skip_cost:
        print("\nCost growth (log-log slope of fit time on size; one factor at a time):")
        rows = part_cost(args)
        df = pd.DataFrame([{k: v for k, v in r.items() if k not in ("sizes", "times")} |
                           {"sizes": " ".join(map(str, r["sizes"])),
                            "seconds": " ".join(f"{t:.2f}" for t in r["times"])} for r in rows])
        print(df.to_string(index=False, float_format=lambda x: f"{x:.2f}"))


if __name__ == "__main__":
    main()
