"""The group runner: :func:`fit_group` and what it needs.

One :func:`sklearn.base.clone` of an estimator per subject (or session) through
:class:`joblib.Parallel`; per-subject seeds (:func:`subject_seed`); loading of input
files inside the workers (:func:`default_loader`); fingerprints and integrity checks
of the saved files, so that a rerun skips only what is intact and unchanged; atomic
saving; collection of failures and of crashed workers (:class:`GroupResult`,
:class:`GroupFitError`). The public names are documented and imported from
:mod:`crl_neuro.group`.
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

from crl_neuro.core.base import logger

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
