"""Group studies: fit one estimator per subject/session, resumably and at scale.

:func:`fit_group` fits one :func:`sklearn.base.clone` of an estimator per subject
(or per session, whatever unit the keys name) through :class:`joblib.Parallel`
without naming a backend, so the same call runs serially, on local processes
(``n_jobs``) or on a cluster::

    from dask.distributed import Client
    import joblib

    client = Client(cluster)                       # LocalCluster, SLURMCluster, ...
    with joblib.parallel_config(backend="dask"):
        result = fit_group(SessionCRL(n_sources=4), subjects, out_dir="derivatives/crl")

Each fitted estimator is written to ``out_dir / f"{subject}.crl"`` as soon as it
finishes (a temporary name, then an atomic rename), so an interrupted run loses
nothing finished. The file carries a fingerprint of the estimator's class and
parameters, the seed, the fit parameters and the inputs: a rerun skips a subject only
if its file is intact and its fingerprint matches, and refits it otherwise. Failures,
including a crashed worker process, are collected with their tracebacks instead of
aborting the study.

Group summaries: :func:`network_consistency` (how often each latent network edge
recurs across subjects after matching latents by sensor pattern or location),
:func:`roi_overlap` (Dice/ARI agreement of learned ROI maps and a probabilistic
group atlas) and :func:`grand_average_stc` (average of per-subject source
estimates, morphed to a common subject when a FreeSurfer ``subjects_dir`` exists).
"""

from __future__ import annotations

import gc
import hashlib
import json
import os
import re
import socket
import sys
import time
import traceback
import uuid
import zlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
from sklearn.base import clone
from sklearn.utils import Bunch

from crl_neuro.core.base import logger

__all__ = [
    "fit_group",
    "GroupResult",
    "GroupFitError",
    "default_loader",
    "subject_seed",
    "network_consistency",
    "roi_overlap",
    "grand_average_stc",
]

# File names are built from subject ids: keep them portable (BIDS-style ids pass).
_SUBJECT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._+-]*$")
_SUFFIX = ".crl"
# Bumped when what enters a fingerprint changes, so that old files are refit.
_FINGERPRINT_VERSION = 1


# ----------------------------------------------------------------------------- seeds
def subject_seed(random_state: int, subject: str) -> int:
    """Seed of one subject derived from the group ``random_state``.

    The seed depends only on ``random_state`` and the subject id (a CRC32 of the id
    is the spawn key of a :class:`numpy.random.SeedSequence`), so adding or removing
    subjects never changes the seeds of the others, and distinct subjects get
    statistically independent streams.

    Parameters
    ----------
    random_state : int
        Group seed (>= 0).
    subject : str
        Subject id.

    Returns
    -------
    seed : int
        A seed in ``[0, 2**32)``.
    """
    key = zlib.crc32(str(subject).encode("utf-8"))
    ss = np.random.SeedSequence(entropy=int(random_state), spawn_key=(key,))
    return int(ss.generate_state(1, dtype=np.uint32)[0])


# ----------------------------------------------------------------------------- loading
_RAW_EXT = (
    ".fif", ".fif.gz", ".edf", ".bdf", ".gdf", ".set", ".vhdr", ".cnt", ".con",
    ".sqd", ".mff", ".snirf", ".ds", ".lay", ".nxe",
)
_NII_EXT = (".nii", ".nii.gz", ".img", ".hdr", ".mgz")


def _is_pathlike(x: Any) -> bool:
    return isinstance(x, (str, os.PathLike)) or type(x).__name__ == "BIDSPath"


def default_loader(path: Any) -> Any:
    """Load one file into what crl_neuro estimators take, by its name.

    ======================================  =========================================
    file                                    loaded with
    ======================================  =========================================
    ``*-epo.fif``, ``*_epo.fif``            :func:`mne.read_epochs`
    ``*-fwd.fif``, ``*_fwd.fif``            :func:`mne.read_forward_solution`
    ``*-cov.fif``, ``*_cov.fif``            :func:`mne.read_cov`
    other M/EEG files (.fif, .edf, ...)     :func:`mne.io.read_raw` (``preload=True``)
    ``.nii``, ``.nii.gz``, ``.mgz``         :func:`nibabel.load`
    ``.npy``                                :func:`numpy.load` (``allow_pickle=False``)
    ``.tsv``, ``.csv``                      :func:`pandas.read_csv` (confounds)
    ``mne_bids.BIDSPath``                   :func:`mne_bids.read_raw_bids` (when installed)
    ======================================  =========================================

    Parameters
    ----------
    path : str | path-like | mne_bids.BIDSPath
        File to load.

    Returns
    -------
    obj : object
        The loaded object.
    """
    if type(path).__name__ == "BIDSPath":
        try:
            import mne_bids
        except ImportError as err:  # pragma: no cover - BIDSPath implies mne_bids
            raise ImportError(
                "loading a BIDSPath needs mne-bids: pip install mne-bids (or crl_neuro[bids])"
            ) from err
        return mne_bids.read_raw_bids(path, verbose=False)
    p = Path(path)
    name = p.name.lower()
    if not p.exists():
        raise FileNotFoundError(f"input file {str(p)!r} does not exist")
    stem = name[:-3] if name.endswith(".gz") else name
    if stem.endswith(".fif"):
        import mne

        if re.search(r"[-_]epo\.fif$", stem):
            return mne.read_epochs(p, preload=True, verbose=False)
        if re.search(r"[-_]fwd\.fif$", stem):
            return mne.read_forward_solution(p, verbose=False)
        if re.search(r"[-_]cov\.fif$", stem):
            return mne.read_cov(p, verbose=False)
    if name.endswith(_NII_EXT):
        import nibabel as nib

        return nib.load(p)
    if name.endswith(_RAW_EXT):
        import mne

        return mne.io.read_raw(p, preload=True, verbose=False)
    if name.endswith(".npy"):
        return np.load(p, allow_pickle=False)
    if name.endswith((".tsv", ".csv")):
        import pandas as pd

        return pd.read_csv(p, sep="\t" if name.endswith(".tsv") else ",")
    raise ValueError(
        f"cannot tell how to load {str(p)!r} from its name; pass loader=callable(path) -> object"
    )


def _load_inputs(value: Any, loader: Callable[[Any], Any]) -> Any:
    """Replace paths (alone or in a list) by loaded objects; leave the rest untouched."""
    if _is_pathlike(value):
        return loader(value)
    if isinstance(value, list) and value and all(_is_pathlike(v) for v in value):
        return [loader(v) for v in value]
    return value


# ----------------------------------------------------------------------------- fingerprints
def _digest(value: Any) -> Any:
    """JSON-able digest of a fit input: content hashes for data, size and mtime for files.

    Files are not read (a study's raw data can be large): a path is identified by its
    resolved name, size and modification time, which change when the file does.
    """
    import joblib

    if _is_pathlike(value):
        p = Path(os.fspath(getattr(value, "fpath", value)))
        try:
            st = p.stat()
        except OSError:
            return ["path", str(p), None, None]
        return ["path", str(p.resolve()), st.st_size, st.st_mtime_ns]
    if isinstance(value, (list, tuple)):
        return [type(value).__name__, [_digest(v) for v in value]]
    if isinstance(value, dict):
        return ["dict", sorted([str(k), _digest(v)] for k, v in value.items())]
    if value is None or isinstance(value, (bool, int, float, str)):
        return ["value", repr(value)]
    if hasattr(value, "dataobj") and hasattr(value, "affine"):
        # nibabel images: their pickle holds volatile header fields, so hash the content.
        return ["image", joblib.hash((np.asarray(value.dataobj), np.asarray(value.affine)))]
    try:
        return ["object", type(value).__qualname__, joblib.hash(value)]
    except Exception:  # noqa: BLE001 - an unhashable input only means "always refit"
        return ["unhashable", type(value).__qualname__, uuid.uuid4().hex]


def _fingerprint(estimator: Any, inputs: Any, fit_params: dict, loader: Callable,
                 seed: int | None) -> str:
    """Hash of everything that determines one subject's fit (see :func:`fit_group`)."""
    cls = type(estimator)
    parts = {
        "version": _FINGERPRINT_VERSION,
        "estimator": f"{cls.__module__}.{cls.__qualname__}",
        "params": _digest(estimator.get_params(deep=False)),
        "seed": seed,
        "fit_params": _digest(fit_params),
        "inputs": _digest(inputs),
        "loader": f"{getattr(loader, '__module__', '')}.{getattr(loader, '__qualname__', repr(loader))}",
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode("utf-8")).hexdigest()


def _stored_fingerprint(path: Path) -> str | None:
    """Fingerprint stored in a result file, or ``None`` if the file is damaged or has none."""
    from crl_neuro.core.base import CorruptModelError, read_metadata

    try:
        meta = read_metadata(path)
    except (CorruptModelError, OSError):
        return None
    fp = meta.get("fit_group", {}).get("fingerprint") if isinstance(meta.get("fit_group"), dict) else None
    return fp if isinstance(fp, str) else None


def _remove_orphans(out_dir: Path, subjects: list[str]) -> None:
    """Delete temporary files left by a killed earlier run for these subjects."""
    from crl_neuro.core.base import _is_temporary_of

    wanted = {f"{s}{_SUFFIX}" for s in subjects}
    legacy = re.compile(r"^\.(.+)\.[0-9a-f]{32}\.tmp$")  # names fit_group itself used earlier
    for f in out_dir.iterdir():
        name = f.name
        if not name.endswith(".tmp"):
            continue
        m = legacy.match(name)
        orphan = any(_is_temporary_of(name, t) for t in wanted) or (
            m is not None and f"{m.group(1)}{_SUFFIX}" in wanted)
        if orphan:
            try:
                f.unlink()
            except OSError:
                pass


# ----------------------------------------------------------------------------- results
class GroupFitError(RuntimeError):
    """Raised by :func:`fit_group` with ``errors="raise"`` when a subject fails.

    Attributes
    ----------
    result : GroupResult
        Everything finished before the failure (already saved when ``out_dir`` is set).
    subject : str
        The failing subject.
    """

    def __init__(self, message: str, result: "GroupResult", subject: str) -> None:
        super().__init__(message)
        self.result = result
        self.subject = subject


@dataclass
class _Outcome:
    subject: str
    status: str  # "fitted" | "skipped" | "failed"
    seed: int | None
    seconds: float
    path: Path | None = None
    estimator: Any = None
    error: str | None = None
    peak_rss: int | None = None  # bytes, peak resident memory of the worker during the fit
    worker: str | None = None  # "host:pid" of the process that fitted the subject
    fingerprint: str | None = None  # hash of estimator, parameters, seed and inputs


class GroupResult(Mapping):
    """Outcome of :func:`fit_group`: a mapping subject -> fitted estimator.

    Only successful subjects are keys. With ``out_dir``, estimators are read from
    their files on access (nothing is kept in memory, so a group of hundreds of
    subjects costs one estimator at a time); without it they are held in memory.

    Attributes
    ----------
    paths : dict
        Subject -> saved file (``out_dir`` runs only).
    errors : dict
        Subject -> formatted traceback of the failure.
    seeds : dict
        Subject -> seed given to its clone (``None`` when not set).
    fit_times : dict
        Subject -> fit seconds (0 for skipped subjects).
    peak_memory : dict
        Subject -> peak resident memory (bytes) of the worker process while it loaded,
        fitted and saved that subject (``None`` for skipped subjects, or where the
        platform cannot tell; see :func:`fit_group`).
    workers : dict
        Subject -> ``"host:pid"`` of the process that fitted it (``None`` if skipped).
    fingerprints : dict
        Subject -> hash of what its fit depends on (estimator class and parameters,
        seed, fit parameters, inputs), stored in its file (see :func:`fit_group`;
        ``None`` without ``out_dir``).
    fitted, skipped, failed : list of str
        Subjects fitted in this call, found on disk, and failed.
    """

    def __init__(self, outcomes: list[_Outcome]) -> None:
        self._outcomes = {o.subject: o for o in outcomes}
        ok = [o for o in outcomes if o.status != "failed"]
        self._order = [o.subject for o in ok]
        self.paths = {o.subject: o.path for o in ok if o.path is not None}
        self.errors = {o.subject: o.error for o in outcomes if o.status == "failed"}
        self.seeds = {o.subject: o.seed for o in outcomes}
        self.fit_times = {o.subject: o.seconds for o in outcomes}
        self.peak_memory = {o.subject: o.peak_rss for o in outcomes}
        self.workers = {o.subject: o.worker for o in outcomes}
        self.fingerprints = {o.subject: o.fingerprint for o in outcomes}
        self.fitted = [o.subject for o in outcomes if o.status == "fitted"]
        self.skipped = [o.subject for o in outcomes if o.status == "skipped"]
        self.failed = list(self.errors)

    def __getitem__(self, subject: str) -> Any:
        o = self._outcomes.get(subject)
        if o is None or o.status == "failed":
            raise KeyError(subject)
        if o.estimator is not None:
            return o.estimator
        from crl_neuro.core.base import load

        return load(o.path)

    def __iter__(self) -> Iterator[str]:
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._order)

    def summary(self):
        """One row per subject: status, seed, fit seconds, peak memory, worker, file, error.

        ``peak_rss_mb`` is the worker's peak resident memory during the subject (MiB)
        and ``error`` the last line of the traceback.

        Returns
        -------
        df : pandas.DataFrame
        """
        import pandas as pd

        rows = []
        for o in self._outcomes.values():
            last = o.error.strip().splitlines()[-1] if o.error else ""
            mb = None if o.peak_rss is None else o.peak_rss / 2**20
            rows.append(dict(subject=o.subject, status=o.status, seed=o.seed,
                             fit_seconds=o.seconds, peak_rss_mb=mb, worker=o.worker,
                             path=None if o.path is None else str(o.path), error=last))
        return pd.DataFrame(rows).set_index("subject")

    def __repr__(self) -> str:
        return (f"GroupResult({len(self.fitted)} fitted, {len(self.skipped)} skipped, "
                f"{len(self.failed)} failed)")


# ----------------------------------------------------------------------------- fitting
def _cap_threads(n: int | None):
    """Context limiting BLAS/OpenMP (threadpoolctl) and torch intra-op threads."""
    from contextlib import ExitStack, contextmanager

    @contextmanager
    def ctx():
        if n is None:
            yield
            return
        with ExitStack() as stack:
            from threadpoolctl import threadpool_limits

            stack.enter_context(threadpool_limits(limits=n))
            torch = sys.modules.get("torch")
            if torch is None:
                try:
                    import torch
                except ImportError:  # pragma: no cover - torch is a dependency
                    torch = None
            if torch is not None:
                old = torch.get_num_threads()
                torch.set_num_threads(n)
                stack.callback(torch.set_num_threads, old)
            yield

    return ctx()


def _reset_peak_rss() -> bool:
    """Reset this process's peak-RSS counter (Linux: ``/proc/self/clear_refs``).

    Returns whether the reset worked, i.e. whether :func:`_peak_rss` will measure
    from now on rather than over the process lifetime.
    """
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _peak_rss() -> int | None:
    """Peak resident memory of this process in bytes since :func:`_reset_peak_rss` (Linux)."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):  # pragma: no cover - exotic kernels
        pass
    return None  # pragma: no cover


def _release_memory() -> None:
    """Give a finished subject's memory back to the OS before the next one.

    glibc keeps part of the freed heap mapped after a fit (about one subject's data
    for ``SessionCRL``); ``malloc_trim`` returns those pages, so an idle worker
    between subjects holds only the libraries and the estimator template.
    """
    gc.collect()
    if sys.platform.startswith("linux"):
        try:
            import ctypes

            ctypes.CDLL("libc.so.6").malloc_trim(0)
        except (OSError, AttributeError):  # pragma: no cover - non-glibc libc
            pass


def _fit_one(estimator: Any, subject: str, inputs: Any, fit_params: dict, loader: Callable,
             seed: int | None, out_dir: Path | None, inner_threads: int | None,
             keep_in_memory: bool, fingerprint: str | None = None) -> _Outcome:
    """Worker: load, fit, save atomically. Never raises (failures are returned)."""
    worker = f"{socket.gethostname()}:{os.getpid()}"
    measured = _reset_peak_rss()
    t0 = time.perf_counter()
    outcome = _fit_save(estimator, subject, inputs, fit_params, loader, seed, out_dir,
                        inner_threads, keep_in_memory, fingerprint)
    outcome.fingerprint = fingerprint
    outcome.seconds = time.perf_counter() - t0
    outcome.worker = worker
    outcome.peak_rss = _peak_rss() if measured else None
    # Outside the try/except of _fit_save, so that no traceback frame still holds the
    # subject's data when the memory is handed back.
    _release_memory()
    return outcome


def _fit_save(estimator: Any, subject: str, inputs: Any, fit_params: dict, loader: Callable,
              seed: int | None, out_dir: Path | None, inner_threads: int | None,
              keep_in_memory: bool, fingerprint: str | None = None) -> _Outcome:
    from joblib import parallel_config

    from crl_neuro.core.base import BaseCRLEstimator

    try:
        # Nested joblib calls inside the fit (e.g. per-session work) stay in this worker,
        # on at most inner_threads threads. Under the Dask backend they would otherwise
        # become cluster tasks: the worker thread secedes while waiting, the worker
        # starts another subject meanwhile, and several subjects' data pile up in one
        # worker (memory grows with the number of subjects; the cores oversubscribe).
        with _cap_threads(inner_threads), parallel_config(backend="threading",
                                                          n_jobs=inner_threads):
            est = clone(estimator)
            if seed is not None:
                est.set_params(random_state=seed)
            if isinstance(inputs, dict):
                args = ()
                kwargs = {k: _load_inputs(v, loader) for k, v in inputs.items()}
            else:
                args = (_load_inputs(inputs, loader),)
                kwargs = {}
            kwargs.update({k: _load_inputs(v, loader) for k, v in fit_params.items()})
            est.fit(*args, **kwargs)
            del args, kwargs  # free the subject's data before saving
        path = None
        if out_dir is not None:
            path = out_dir / f"{subject}{_SUFFIX}"
            if isinstance(est, BaseCRLEstimator):
                # save writes a temporary file and renames it atomically.
                est.save(path, overwrite=True, metadata={"fit_group": {
                    "fingerprint": fingerprint, "subject": subject, "seed": seed}})
            else:
                tmp = out_dir / f".{subject}{_SUFFIX}.{uuid.uuid4().hex}.tmp"
                try:
                    est.save(tmp)
                    os.replace(tmp, path)  # atomic on POSIX and Windows (same directory)
                finally:
                    if tmp.exists():
                        tmp.unlink()
            err_file = out_dir / f"{subject}.error.txt"
            if err_file.exists():
                err_file.unlink()
        return _Outcome(subject, "fitted", seed, 0.0, path, est if keep_in_memory else None)
    except Exception:  # noqa: BLE001 - collected and reported per subject
        tb = traceback.format_exc()
        if out_dir is not None:
            try:
                (out_dir / f"{subject}.error.txt").write_text(tb)
            except OSError:
                pass
        return _Outcome(subject, "failed", seed, 0.0, error=tb)


def _normalise_subjects(subjects: Any) -> list[tuple[str, Any]]:
    if isinstance(subjects, Mapping):
        items = list(subjects.items())
    elif isinstance(subjects, (list, tuple)):
        items = []
        for i, item in enumerate(subjects):
            if not (isinstance(item, tuple) and len(item) == 2):
                raise TypeError(
                    "subjects must be a mapping subject_id -> inputs or a list of "
                    f"(subject_id, inputs) pairs; item {i} is {type(item).__name__}"
                )
            items.append(item)
    else:
        raise TypeError(
            "subjects must be a mapping subject_id -> inputs or a list of (subject_id, inputs) "
            f"pairs, got {type(subjects).__name__}"
        )
    if not items:
        raise ValueError("subjects is empty; give at least one subject")
    out, seen = [], set()
    for sid, inputs in items:
        if not isinstance(sid, (str, int, np.integer)) or isinstance(sid, bool):
            raise TypeError(f"subjects: subject ids must be str or int, got {type(sid).__name__}")
        sid = str(sid)
        if not _SUBJECT_RE.match(sid):
            raise ValueError(
                f"subjects: subject id {sid!r} is not usable as a file name (letters, digits, "
                "'.', '_', '+', '-'; not starting with a dot)"
            )
        if sid in seen:
            raise ValueError(f"subjects: duplicate subject id {sid!r}")
        seen.add(sid)
        out.append((sid, inputs))
    return out


def fit_group(
    estimator: Any,
    subjects: Any,
    loader: Callable[[Any], Any] | None = None,
    out_dir: str | os.PathLike | None = None,
    n_jobs: int | None = None,
    random_state: int | None = None,
    inner_threads: int | None = 1,
    overwrite: bool = False,
    errors: str = "collect",
    fit_params: dict | None = None,
    verbose: int = 0,
) -> GroupResult:
    """Fit one clone of ``estimator`` per subject (or session), resumably and in parallel.

    Parameters
    ----------
    estimator : crl_neuro estimator
        Unfitted template; each subject gets ``sklearn.base.clone(estimator)``.
    subjects : mapping | list of (subject_id, inputs)
        Subject id (``str`` or ``int``; used as file name) -> what to fit on. ``inputs``
        is either the first argument of ``fit`` (an object such as a list of
        ``Raw``/``Epochs`` or Niimg, a path, or a list of paths — one per
        session/run), or a ``dict`` of keyword arguments of ``fit`` (e.g.
        ``{"insts": [...], "forward": "sub-01-fwd.fif"}`` or
        ``{"X": X, "domains": d}``). Paths (alone or in a list, also as dict values)
        are loaded **inside the worker** with ``loader`` so that only file names
        travel and one subject's data at a time occupies a worker.
    loader : callable | None
        ``loader(path) -> object``; default :func:`default_loader` (MNE for M/EEG
        files, nibabel for NIfTI, mne-bids for ``BIDSPath`` when installed).
    out_dir : path-like | None
        Where to write ``{subject}.crl`` (:meth:`BaseCRLEstimator.save`, no pickle)
        as each subject finishes. Written to a temporary name and renamed
        atomically, so an interrupted run leaves only complete files; temporary
        files a killed run left for these subjects are removed at the start. Each
        file stores a fingerprint (SHA-256) of the estimator's class and
        ``get_params()``, the subject's seed, ``fit_params``, the loader's name and
        the inputs (content hashes of arrays and loaded objects; the resolved name,
        size and modification time of input files). A subject is skipped (not
        refitted) only if its file passes an integrity check (every member's CRC,
        see :func:`crl_neuro.core.base.read_metadata`) and its fingerprint equals the
        current one; a damaged file, or one from other parameters, another
        estimator, other inputs or an older crl_neuro without fingerprints, is
        refit. A failure writes ``{subject}.error.txt`` (removed when the subject
        later succeeds). ``None`` keeps the fitted estimators in memory only.
    n_jobs : int | None
        Number of parallel jobs (joblib semantics). The backend is not named, so
        ``with joblib.parallel_config(backend="dask"):`` runs on a Dask cluster.
    random_state : int | None
        Group seed. Each subject's clone gets ``random_state=subject_seed(random_state,
        subject)`` (via ``set_params``, when the estimator has that parameter): the seed
        depends only on the group seed and the subject id, so adding subjects does not
        change the others' seeds. ``None`` leaves the template's ``random_state`` as is.
    inner_threads : int | None
        Cap on BLAS/OpenMP threads (:func:`threadpoolctl.threadpool_limits`) and torch
        threads inside each fit, so ``n_jobs`` workers do not oversubscribe the CPUs,
        and default ``n_jobs`` of joblib calls nested in the fit, which run on threads
        of the worker (never as new cluster tasks). ``None`` leaves the BLAS/torch
        threads alone (nested joblib calls then default to one job).
    overwrite : bool
        Refit subjects even if their file in ``out_dir`` matches.
    errors : {"collect", "raise"}
        ``"collect"``: a failing subject is recorded in ``result.errors`` (with its
        traceback) and the others go on. If a worker process dies (e.g. killed for
        memory, or a crash in native code), the subjects it and the pool had not
        finished are recorded as failed (with ``{subject}.error.txt``) and the result
        of the finished ones is still returned; a rerun fits the missing ones.
        ``"raise"``: the first failure stops the group with :class:`GroupFitError`
        (subjects already finished stay saved and are in ``err.result``).
    fit_params : dict | None
        Keyword arguments passed to every ``fit`` (e.g. a shared ``forward``); paths are
        loaded like inputs.
    verbose : int
        ``> 0`` shows a progress bar (tqdm) and logs a warning per failure or refit
        (``crl_neuro`` logger, on stderr).

    Returns
    -------
    result : GroupResult
        Mapping subject -> fitted estimator (loaded lazily from ``out_dir``), with
        ``errors``, ``seeds``, ``fit_times`` and :meth:`GroupResult.summary`.

    Raises
    ------
    GroupFitError
        With ``errors="raise"`` when a subject fails.

    Notes
    -----
    Each worker receives the template and the subject's inputs (paths are cheap to
    ship; loaded objects are pickled to process-based backends). With ``out_dir``,
    workers return only the file name, so results never accumulate in the parent.

    Memory per worker is one subject at a time: joblib loops nested in an
    estimator's ``fit`` run inside the worker (with the Dask backend they would
    otherwise be sent to the cluster, and a worker waiting for them would start other
    subjects meanwhile, so that its memory grew with the number of subjects), and
    after each subject the worker frees its data and returns the freed heap to the
    operating system (``malloc_trim`` on glibc). On Linux the peak
    resident memory of the worker process during each subject is recorded
    (``result.peak_memory``, ``summary()["peak_rss_mb"]``) from the kernel's peak-RSS
    counter, reset when the subject starts (so ``getrusage``'s ``ru_maxrss`` of a
    worker, or of the caller with ``n_jobs=1``, no longer covers earlier subjects). It
    is the process's peak, hence a per-subject figure for process workers with one
    thread each (loky, Dask with ``threads_per_worker=1``); with ``n_jobs=1`` it
    includes the caller's own memory.
    """
    from joblib import Parallel, delayed

    from crl_neuro.core.validation import check_choice, check_int

    if not hasattr(estimator, "fit") or not hasattr(estimator, "get_params"):
        raise TypeError(f"estimator must be an unfitted scikit-learn style estimator, got "
                        f"{type(estimator).__name__}")
    if out_dir is not None and not hasattr(estimator, "save"):
        raise TypeError("estimator must have a save(path) method when out_dir is given")
    items = _normalise_subjects(subjects)
    if loader is None:
        loader = default_loader
    elif not callable(loader):
        raise TypeError(f"loader must be callable(path) -> object or None, got {type(loader).__name__}")
    if random_state is not None:
        check_int(random_state, "random_state", min_value=0)
    if inner_threads is not None:
        check_int(inner_threads, "inner_threads", min_value=1)
    if n_jobs is not None:
        check_int(n_jobs, "n_jobs")
    check_choice(errors, "errors", ["collect", "raise"])
    if fit_params is None:
        fit_params = {}
    elif not isinstance(fit_params, dict):
        raise TypeError(f"fit_params must be a dict or None, got {type(fit_params).__name__}")
    has_rs = "random_state" in estimator.get_params(deep=False)
    if out_dir is not None:
        out_dir = Path(out_dir)
        out_dir.mkdir(parents=True, exist_ok=True)

    start_ns = time.time_ns()  # files written after this are this run's
    if out_dir is not None:
        _remove_orphans(out_dir, [sid for sid, _ in items])

    outcomes: list[_Outcome] = []
    tasks = []
    pending: dict[str, tuple[int | None, str | None]] = {}  # subject -> (seed, fingerprint)
    for sid, inputs in items:
        seed = subject_seed(random_state, sid) if (random_state is not None and has_rs) else None
        fp = None
        if out_dir is not None:
            fp = _fingerprint(estimator, inputs, fit_params, loader, seed)
            path = out_dir / f"{sid}{_SUFFIX}"
            if not overwrite and path.is_file():
                stored = _stored_fingerprint(path)
                if stored == fp:
                    outcomes.append(_Outcome(sid, "skipped", seed, 0.0, path, fingerprint=fp))
                    continue
                if verbose:
                    why = "is damaged or has no fingerprint" if stored is None else \
                        "was fitted with other parameters or inputs"
                    logger.warning(f"fit_group: refitting subject {sid}: {path.name} {why}")
        pending[sid] = (seed, fp)
        tasks.append(delayed(_fit_one)(estimator, sid, inputs, fit_params, loader, seed, out_dir,
                                       inner_threads, out_dir is None, fp))

    done: list[_Outcome] = []
    if tasks:
        def run() -> Iterator[_Outcome]:
            # Started lazily so that a backend failure at submission is handled below
            # like a worker crash.
            try:  # results in completion order (joblib >= 1.4), else in submission order
                # One subject per task: fits are long enough, and auto-batching would
                # pile several subjects onto one (Dask) worker.
                g = Parallel(n_jobs=n_jobs, batch_size=1, return_as="generator_unordered")(tasks)
            except ValueError:  # pragma: no cover - old joblib
                g = Parallel(n_jobs=n_jobs, batch_size=1, return_as="generator")(tasks)
            try:
                yield from g
            finally:
                if hasattr(g, "close"):
                    g.close()

        gen = run()
        bar = None
        if verbose:
            from tqdm.auto import tqdm

            bar = tqdm(total=len(tasks), desc="fit_group", unit="subject")
        try:
            for outcome in gen:
                done.append(outcome)
                if bar is not None:
                    bar.update(1)
                if outcome.status == "failed":
                    if verbose:
                        last = outcome.error.strip().splitlines()[-1]
                        logger.warning(f"fit_group: subject {outcome.subject} failed: {last}")
                    if errors == "raise":
                        result = GroupResult(_ordered(items, outcomes + done))
                        raise GroupFitError(
                            f"subject {outcome.subject!r} failed:\n{outcome.error}",
                            result, outcome.subject,
                        )
        except GroupFitError:
            raise
        except Exception as err:  # e.g. loky's TerminatedWorkerError
            # A worker process died (or the backend failed): joblib cancels the
            # remaining tasks, so every unfinished subject is recorded as failed and
            # the finished ones are still returned.
            lost = _record_crash(err, pending, {o.subject for o in done}, out_dir, start_ns)
            done.extend(lost)
            failed = [o for o in lost if o.status == "failed"]
            if verbose:
                logger.warning(f"fit_group: a worker crashed ({type(err).__name__}); "
                               f"{len(failed)} subject(s) not finished")
            if errors == "raise" and failed:
                result = GroupResult(_ordered(items, outcomes + done))
                raise GroupFitError(f"a worker crashed before subject {failed[0].subject!r} "
                                    f"finished:\n{failed[0].error}", result, failed[0].subject) from err
        finally:
            if bar is not None:
                bar.close()
            gen.close()
    return GroupResult(_ordered(items, outcomes + done))


def _record_crash(err: BaseException, pending: dict[str, tuple[int | None, str | None]],
                  finished: set[str], out_dir: Path | None, start_ns: int) -> list[_Outcome]:
    """Outcomes of the subjects a crashed run did not report: fitted if a worker saved a
    matching file during this run (its result was lost with the pool), else failed (with
    an error file)."""
    tb = "".join(traceback.format_exception(type(err), err, err.__traceback__))
    msg = ("the worker process fitting this subject, or another subject of the same pool, "
           "died before it finished (the pool was stopped); rerun fit_group to fit it.\n" + tb)
    lost = []
    for sid, (seed, fp) in pending.items():
        if sid in finished:
            continue
        if out_dir is not None:
            path = out_dir / f"{sid}{_SUFFIX}"
            try:
                fresh = path.stat().st_mtime_ns >= start_ns
            except OSError:
                fresh = False
            if fresh and _stored_fingerprint(path) == fp:
                lost.append(_Outcome(sid, "fitted", seed, 0.0, path, fingerprint=fp))
                continue
        lost.append(_Outcome(sid, "failed", seed, 0.0, error=msg, fingerprint=fp))
        if out_dir is not None:
            try:
                (out_dir / f"{sid}.error.txt").write_text(msg)
            except OSError:
                pass
    return lost


def _ordered(items: list[tuple[str, Any]], outcomes: list[_Outcome]) -> list[_Outcome]:
    by = {o.subject: o for o in outcomes}
    return [by[s] for s, _ in items if s in by]


# ----------------------------------------------------------------------------- summaries
def _as_estimator_dict(estimators: Any, name: str = "estimators") -> dict[str, Any]:
    if isinstance(estimators, Mapping):
        out = {str(k): v for k, v in estimators.items()}
    elif isinstance(estimators, (list, tuple)):
        out = {str(i): v for i, v in enumerate(estimators)}
    else:
        raise TypeError(f"{name} must be a GroupResult, a mapping or a list, got "
                        f"{type(estimators).__name__}")
    if len(out) < 2:
        raise ValueError(f"{name} needs at least 2 fitted estimators, got {len(out)}")
    out = {k: (_load_if_path(v)) for k, v in out.items()}
    return out


def _load_if_path(v: Any) -> Any:
    if _is_pathlike(v):
        from crl_neuro.core.base import load

        return load(v)
    return v


def _patterns_of(est: Any) -> np.ndarray | None:
    for attr in ("patterns_", "mixing_"):
        if hasattr(est, attr):
            return np.asarray(getattr(est, attr), dtype=float)
    return None


def _abs_corr_cols(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    a = a / np.maximum(np.linalg.norm(a, axis=0), 1e-300)
    b = b / np.maximum(np.linalg.norm(b, axis=0), 1e-300)
    return np.abs(a.T @ b)


def network_consistency(
    estimators: Any,
    match: str = "auto",
    reference: str | None = None,
    threshold: float = 0.5,
) -> Bunch:
    """How consistently each latent network edge appears across subjects.

    Latents are only identified up to order (and sign/scale), so each subject's
    latents are first matched to a reference subject's by the Hungarian algorithm
    (:func:`scipy.optimize.linear_sum_assignment`) on either the distances between
    localized sources (``source_pos_``, M/EEG) or the absolute correlation of the
    sensor patterns (``patterns_``/``mixing_``; needs the same sensors in every
    subject). The permuted ``markov_network_`` (and ``changing_edges_`` when present)
    are then averaged into per-edge frequencies.

    Parameters
    ----------
    estimators : GroupResult | mapping | list
        Fitted estimators (or paths to ``.crl`` files) with ``markov_network_`` of the
        same size.
    match : {"auto", "positions", "patterns"}
        Matching criterion. ``"auto"`` uses positions when every estimator has
        ``source_pos_``, else patterns.
    reference : str | None
        Subject whose latent order is used; default the first.
    threshold : float
        Frequency at or above which an edge enters ``consensus``.

    Returns
    -------
    summary : sklearn.utils.Bunch
        ``edge_frequency`` (k, k) fraction of subjects with each edge;
        ``changing_frequency`` (k, k) or ``None``; ``consensus`` (k, k) bool;
        ``matchings`` dict subject -> permutation (``perm[i]`` is the subject's latent
        matched to reference latent ``i``); ``match_quality`` dict subject -> mean
        matched distance in mm (positions) or mean absolute correlation (patterns);
        ``pairwise_f1`` (n_subjects, n_subjects) graph F1 between matched networks;
        ``subjects``, ``reference``, ``match``.
    """
    from scipy.optimize import linear_sum_assignment

    from crl_neuro.core.metrics import graph_f1
    from crl_neuro.core.validation import check_choice, check_float

    ests = _as_estimator_dict(estimators)
    check_choice(match, "match", ["auto", "positions", "patterns"])
    check_float(threshold, "threshold", min_value=0.0, max_value=1.0)
    for sid, e in ests.items():
        if not hasattr(e, "markov_network_"):
            raise ValueError(f"estimators: subject {sid!r} has no markov_network_ (not fitted, or "
                             "not a network estimator)")
    ks = {sid: np.asarray(e.markov_network_).shape[0] for sid, e in ests.items()}
    if len(set(ks.values())) != 1:
        raise ValueError(f"estimators must have the same number of latents, got {ks}")
    k = next(iter(ks.values()))
    subjects = list(ests)
    ref = subjects[0] if reference is None else str(reference)
    if ref not in ests:
        raise ValueError(f"reference {reference!r} is not one of the subjects {subjects}")
    if match == "auto":
        match = "positions" if all(hasattr(e, "source_pos_") for e in ests.values()) else "patterns"
    if match == "positions":
        missing = [s for s, e in ests.items() if not hasattr(e, "source_pos_")]
        if missing:
            raise ValueError(f"match='positions' needs source_pos_ (localize first); missing for {missing}")
    else:
        pats = {s: _patterns_of(e) for s, e in ests.items()}
        bad = [s for s, p in pats.items() if p is None]
        if bad:
            raise ValueError(f"match='patterns' needs patterns_ or mixing_; missing for {bad}")
        shapes = {s: p.shape for s, p in pats.items()}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"match='patterns' needs the same sensors in every subject, got shapes {shapes}")

    matchings, quality, nets, chgs = {}, {}, {}, {}
    for sid, e in ests.items():
        if match == "positions":
            d = np.linalg.norm(np.asarray(ests[ref].source_pos_)[:, None, :]
                               - np.asarray(e.source_pos_)[None, :, :], axis=-1)
            rows, perm = linear_sum_assignment(d)
            quality[sid] = float(d[rows, perm].mean() * 1e3)
        else:
            c = _abs_corr_cols(pats[ref], pats[sid])
            rows, perm = linear_sum_assignment(-c)
            quality[sid] = float(c[rows, perm].mean())
        matchings[sid] = perm
        net = np.asarray(e.markov_network_, dtype=bool)
        nets[sid] = net[np.ix_(perm, perm)]
        if hasattr(e, "changing_edges_"):
            chgs[sid] = np.asarray(e.changing_edges_, dtype=bool)[np.ix_(perm, perm)]
    freq = np.mean([nets[s] for s in subjects], axis=0)
    chg = np.mean([chgs[s] for s in subjects], axis=0) if len(chgs) == len(subjects) else None
    n = len(subjects)
    f1 = np.ones((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            f1[i, j] = f1[j, i] = graph_f1(nets[subjects[i]], nets[subjects[j]])
    return Bunch(edge_frequency=freq, changing_frequency=chg, consensus=(freq >= threshold) & ~np.eye(k, dtype=bool),
                 matchings=matchings, match_quality=quality, pairwise_f1=f1, subjects=subjects,
                 reference=ref, match=match)


def _labels_data(x: Any, name: str):
    import nibabel as nib

    if hasattr(x, "labels_img_"):
        x = x.labels_img_
    if _is_pathlike(x):
        x = nib.load(x)
    if not hasattr(x, "get_fdata"):
        raise TypeError(f"{name} must be a fitted CausalROIs, a labels image or a path, got {type(x).__name__}")
    return x


def roi_overlap(estimators: Any, reference: str | None = None) -> Bunch:
    """Agreement of ROI maps (``labels_img_``) across subjects.

    ROIs carry arbitrary numbers, so every subject's ROIs are matched to the
    reference subject's by maximum overlap (Hungarian on the Dice matrix). Maps on
    another grid than the reference are resampled to it (nearest neighbour), which
    assumes they are in the same (e.g. MNI) space.

    Parameters
    ----------
    estimators : GroupResult | mapping | list
        Fitted :class:`~crl_neuro.fmri.CausalROIs` (or their labels images, or paths
        to ``.crl`` / NIfTI files).
    reference : str | None
        Subject whose ROI numbering is used; default the first.

    Returns
    -------
    summary : sklearn.utils.Bunch
        ``dice`` (n_subjects, n_ref_rois) Dice of each reference ROI with its match
        (0 when unmatched); ``mean_dice`` per subject; ``ari`` (n_subjects, n_subjects)
        adjusted Rand index between maps over voxels labelled in either
        (:func:`crl_neuro.core.metrics.labels_ari`); ``matchings`` dict subject ->
        array, ``m[i]`` the subject's label matched to reference label ``i + 1``
        (0 if none); ``probability_img`` 4D image, volume ``i`` the fraction of
        subjects whose matched ROI covers each voxel (a probabilistic group atlas
        of reference ROI ``i + 1``); ``roi_graph_frequency`` (n_ref, n_ref) fraction of
        subjects with each directed matched ``roi_graph_`` edge (``None`` unless all
        inputs are fitted estimators); ``subjects``, ``reference``.
    """
    import nibabel as nib
    from nilearn.image import resample_to_img
    from scipy.optimize import linear_sum_assignment

    from crl_neuro.core.metrics import labels_ari

    raw = estimators
    if isinstance(raw, Mapping):
        items = {str(k): v for k, v in raw.items()}
    elif isinstance(raw, (list, tuple)):
        items = {str(i): v for i, v in enumerate(raw)}
    else:
        raise TypeError(f"estimators must be a GroupResult, a mapping or a list, got {type(raw).__name__}")
    if len(items) < 2:
        raise ValueError(f"estimators needs at least 2 ROI maps, got {len(items)}")
    items = {k: (_load_if_path(v) if _is_pathlike(v) and str(v).endswith(_SUFFIX) else v)
             for k, v in items.items()}
    imgs = {k: _labels_data(v, f"estimators[{k!r}]") for k, v in items.items()}
    subjects = list(imgs)
    ref = subjects[0] if reference is None else str(reference)
    if ref not in imgs:
        raise ValueError(f"reference {reference!r} is not one of the subjects {subjects}")
    ref_img = imgs[ref]
    labels = {}
    for s, img in imgs.items():
        if img.shape[:3] != ref_img.shape[:3] or not np.allclose(img.affine, ref_img.affine):
            img = resample_to_img(img, ref_img, interpolation="nearest", force_resample=True,
                                  copy_header=True)
        labels[s] = np.rint(np.asarray(img.get_fdata())).astype(int).reshape(ref_img.shape[:3])
    ref_lab = labels[ref]
    ref_ids = np.unique(ref_lab[ref_lab > 0])
    n_ref = ref_ids.size
    dice = np.zeros((len(subjects), n_ref))
    matchings = {}
    prob = np.zeros(ref_lab.shape + (n_ref,))
    for si, s in enumerate(subjects):
        lab = labels[s]
        ids = np.unique(lab[lab > 0])
        d = np.zeros((n_ref, ids.size))
        for i, a in enumerate(ref_ids):
            ma = ref_lab == a
            for j, b in enumerate(ids):
                mb = lab == b
                d[i, j] = 2.0 * np.sum(ma & mb) / (ma.sum() + mb.sum())
        m = np.zeros(n_ref, dtype=int)
        if ids.size:
            rows, cols = linear_sum_assignment(-d)
            for r, c in zip(rows, cols):
                m[r] = ids[c]
                dice[si, r] = d[r, c]
                prob[..., r] += lab == ids[c]
        matchings[s] = m
    prob /= len(subjects)
    n = len(subjects)
    ari = np.ones((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            ari[i, j] = ari[j, i] = labels_ari(labels[subjects[i]], labels[subjects[j]])
    graph_freq = None
    if all(hasattr(v, "roi_graph_") for v in items.values()):
        acc = np.zeros((n_ref, n_ref))
        for s in subjects:
            g = np.asarray(items[s].roi_graph_) != 0
            m = matchings[s]
            for i in range(n_ref):
                for j in range(n_ref):
                    if m[i] > 0 and m[j] > 0 and m[i] - 1 < g.shape[0] and m[j] - 1 < g.shape[0]:
                        acc[i, j] += g[m[i] - 1, m[j] - 1]
        graph_freq = acc / n
    prob_img = nib.Nifti1Image(prob.astype(np.float32), ref_img.affine)
    return Bunch(dice=dice, mean_dice=dict(zip(subjects, dice.mean(axis=1) if n_ref else np.zeros(n))),
                 ari=ari, matchings=matchings, probability_img=prob_img,
                 roi_graph_frequency=graph_freq, subjects=subjects, reference=ref)


def grand_average_stc(stcs: Any, subject_to: str | None = None, subjects_dir: Any = None,
                      src_to: Any = None, smooth: int | str | None = None,
                      sparse: bool = True) -> Any:
    """Average per-subject :class:`mne.SourceEstimate` objects (e.g. from ``SessionCRL.to_stc``).

    Sparse CRL estimates only carry the vertices of their sources; the average is
    taken over the union of the vertices, a subject contributing zero where it has no
    source, so the result shows where (and how strongly) the subjects agree.

    Parameters
    ----------
    stcs : list of mne.SourceEstimate
        One per subject, same times (e.g. source power, or evoked time courses).
    subject_to : str | None
        Common subject (e.g. ``"fsaverage"``). ``None``: the estimates must already live
        on one source space (same ``subject``; e.g. simulated subjects on the fsaverage5
        template of :func:`crl_neuro.datasets.simulate_meeg_sessions`, whose vertex
        numbers are also fsaverage's) and are averaged directly. Otherwise each is
        morphed from its ``stc.subject`` with :func:`mne.compute_source_morph`, which
        reads the FreeSurfer spheres (``surf/?h.sphere.reg``) of both subjects from
        ``subjects_dir`` (fsaverage itself comes from
        :func:`mne.datasets.fetch_fsaverage`, a one-time download).
    subjects_dir : path-like | None
        FreeSurfer subjects directory (``None``: MNE's ``SUBJECTS_DIR``).
    src_to : mne.SourceSpaces | None
        Target source space of a dense morph (``sparse=False`` only; default the
        ico-5 grid of ``subject_to``).
    smooth : int | "nearest" | None
        Smoothing steps of a dense morph (``sparse=False`` only; MNE's default fills
        the surface).
    sparse : bool
        ``True`` (default): each vertex moves to the nearest vertex of ``subject_to``
        on the registered spheres and the estimate stays sparse — right for the few
        dipoles of ``SessionCRL.to_stc``, which a smoothing morph would smear over
        the cortex. ``False``: MNE's smoothing morph, for dense estimates (e.g.
        minimum-norm inverse solutions).

    Returns
    -------
    stc : mne.SourceEstimate
        The grand average on the union of the (morphed) vertices, ``subject`` set to
        ``subject_to`` (or the common subject).
    """
    import mne

    if not isinstance(stcs, (list, tuple)) or not stcs:
        raise TypeError("stcs must be a non-empty list of mne.SourceEstimate")
    for i, s in enumerate(stcs):
        if not isinstance(s, mne.SourceEstimate):
            raise TypeError(f"stcs[{i}] must be an mne.SourceEstimate, got {type(s).__name__}")
    if not isinstance(sparse, bool):
        raise TypeError(f"sparse must be True or False, got {sparse!r}")
    if subject_to is not None:
        if not isinstance(subject_to, str):
            raise TypeError(f"subject_to must be a subject name (str) or None, got "
                            f"{type(subject_to).__name__}")
        if sparse and (src_to is not None or smooth is not None):
            raise ValueError("src_to and smooth apply to the smoothing morph only; pass "
                             "sparse=False to use them")
        for i, s in enumerate(stcs):
            if s.subject is None:
                raise ValueError(f"stcs[{i}] has no subject (stc.subject is None); set it to the "
                                 "FreeSurfer subject the estimate lives on, to morph it")
        if sparse:
            kw = dict(spacing=None, sparse=True)
        else:
            kw = dict(src_to=src_to, smooth=smooth)
        stcs = [
            mne.compute_source_morph(s, subject_from=s.subject, subject_to=subject_to,
                                     subjects_dir=subjects_dir, verbose=False, **kw).apply(s)
            for s in stcs
        ]
    ref = stcs[0]
    for i, s in enumerate(stcs[1:], 1):
        if s.subject != ref.subject:
            raise ValueError(f"stcs[{i}] is on subject {s.subject!r}, stcs[0] on {ref.subject!r}; "
                             "pass subject_to (and subjects_dir) to morph them to a common subject")
        if s.data.shape[1] != ref.data.shape[1] or not np.isclose(s.tmin, ref.tmin):
            raise ValueError(f"stcs[{i}] has other times than stcs[0] ({s.data.shape[1]} samples "
                             f"from {s.tmin} vs {ref.data.shape[1]} from {ref.tmin}); crop them")
    n_hemi = len(ref.vertices)
    union = [np.unique(np.concatenate([s.vertices[h] for s in stcs])) for h in range(n_hemi)]
    offsets = np.cumsum([0] + [u.size for u in union])
    data = np.zeros((offsets[-1], ref.data.shape[1]), dtype=np.result_type(*[s.data for s in stcs]))
    for s in stcs:
        row = 0
        for h in range(n_hemi):
            idx = offsets[h] + np.searchsorted(union[h], s.vertices[h])
            # add.at: a morph may send two sources to one vertex; their sum is kept.
            np.add.at(data, idx, s.data[row:row + s.vertices[h].size])
            row += s.vertices[h].size
    data /= len(stcs)
    return mne.SourceEstimate(data, vertices=union, tmin=ref.tmin, tstep=ref.tstep,
                              subject=subject_to or ref.subject)
