"""Estimator base class and pickle-free persistence shared by every crl_neuro estimator.

Every estimator follows the scikit-learn contract (``__init__`` only stores
parameters, validation happens in ``fit``, fitted attributes end in ``_``) and
inherits :meth:`BaseCRLEstimator.save`. :func:`load` rebuilds an estimator from
such a file without unpickling anything:

* parameters and small fitted values are JSON (``meta.json``),
* numeric arrays go to ``arrays.npz`` read with ``allow_pickle=False``,
* torch modules are stored as state dicts read with ``torch.load(weights_only=True)``,
* the class is looked up in a registry of crl_neuro classes, never imported by name
  from the file.

``save`` writes a temporary file beside the target and renames it atomically, so a
failure mid-write never damages an existing file. ``load`` checks the archive's
integrity, the format version and every declared fitted array (dtype kind, shape,
dimensions shared between arrays) and reports any damaged or tampered file with one
error class, :class:`CorruptModelError`.

A failed ``fit`` leaves the estimator as it was before the call: the subclass's
``fit`` is wrapped so that its attributes are rolled back on an exception, never
leaving new fitted attributes beside old ones.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import io
import json
import logging
import os
import pickle
import re
import struct
import sys
import uuid
import zipfile
import zlib
from collections.abc import Callable, Iterator
from numbers import Integral
from pathlib import Path
from typing import Any, BinaryIO, ClassVar, NamedTuple

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted as _sk_check_is_fitted

__all__ = [
    "ArraySpec",
    "BaseCRLEstimator",
    "CorruptModelError",
    "all_estimators",
    "check_is_fitted",
    "docdict",
    "fill_doc",
    "load",
    "logger",
    "logger_verbosity",
    "read_metadata",
    "set_log_level",
    "use_log_level",
    "verbose",
]

_FORMAT_VERSION = 1
# Classes that may be rebuilt by ``load``: filled by ``BaseCRLEstimator.__init_subclass__``.
_REGISTRY: dict[str, type] = {}


def _class_key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


class CorruptModelError(ValueError):
    """A file given to :func:`crl_neuro.load` is damaged, truncated or tampered with.

    Raised for every problem with the file's content: not a zip archive, failed
    checksums, missing or malformed members, an unsupported format version, an
    unknown class, or fitted arrays whose dtype or shape disagree with what the
    estimator declares. A subclass of :class:`ValueError`.
    """


class ArraySpec(NamedTuple):
    """Declared dtype and shape of one fitted array, checked by :func:`load`.

    Subclasses of :class:`BaseCRLEstimator` list their fitted arrays in the class
    attribute ``_fitted_arrays`` (attribute name -> ``ArraySpec``).

    Attributes
    ----------
    kinds : str
        Accepted :attr:`numpy.dtype.kind` characters, e.g. ``"f"`` (float),
        ``"b"`` (bool), ``"iu"`` (integers), ``""`` (any dtype).
    shape : tuple | None
        One entry per dimension: an ``int`` (exact size), a ``str`` (a symbol; every
        array using the same symbol in one file must agree, and a symbol naming an
        integer fitted attribute or parameter, e.g. ``"n_features_in_"``, must equal
        it) or ``None`` (any size). ``None`` checks the dtype only.
    optional : bool
        Whether a fitted file may lack the attribute (e.g. set by a later method).
    """

    kinds: str
    shape: tuple[int | str | None, ...] | None = None
    optional: bool = False


# -- fitted checks -----------------------------------------------------------
# scikit-learn's own check, re-exported so that every estimator raises the same
# NotFittedError; BaseCRLEstimator.__sklearn_is_fitted__ tells it what "fitted" means.
check_is_fitted = _sk_check_is_fitted


# -- logging -----------------------------------------------------------------
class _CurrentStderr:
    """Write to whatever ``sys.stderr`` is at call time (pytest and notebooks swap it)."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


#: The one logger of the package. Messages go to stderr so that the CLI's product on
#: stdout (tables, CSV) stays clean; the level is WARNING unless ``verbose`` says otherwise.
logger = logging.getLogger("crl_neuro")
if not any(getattr(h, "_crl_neuro", False) for h in logger.handlers):
    _handler = logging.StreamHandler(_CurrentStderr())  # type: ignore[arg-type]
    _handler._crl_neuro = True  # type: ignore[attr-defined]
    _handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(_handler)
if logger.level == logging.NOTSET:
    logger.setLevel(logging.WARNING)

_LEVEL_NAMES = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _verbose_level(verbose: Any, name: str = "verbose") -> int | None:
    """Turn a ``verbose`` value into a :mod:`logging` level (``None``: leave it as is).

    MNE semantics: ``True`` is INFO, ``False`` is WARNING, a string names a level.
    An int below 10 counts verbosity as scikit-learn does (0 WARNING, 1 INFO, >= 2
    DEBUG); from 10 on it is a :mod:`logging` level, as in MNE.
    """
    if verbose is None:
        return None
    if isinstance(verbose, (bool, np.bool_)):
        return logging.INFO if verbose else logging.WARNING
    if isinstance(verbose, Integral):
        v = int(verbose)
        if v < 0:
            raise ValueError(f"{name} must be >= 0, got {v}")
        if v >= 10:
            return v
        return (logging.WARNING, logging.INFO)[v] if v < 2 else logging.DEBUG
    if isinstance(verbose, str):
        if verbose.upper() not in _LEVEL_NAMES:
            raise ValueError(f"{name} must be one of {list(_LEVEL_NAMES)} (any case), got {verbose!r}")
        return getattr(logging, verbose.upper())
    raise TypeError(f"{name} must be None, a bool, an int or a level name (str), "
                    f"got {type(verbose).__name__}")


def set_log_level(verbose: Any) -> None:
    """Set the level of the ``crl_neuro`` logger for the rest of the session.

    Parameters
    ----------
    verbose : bool | int | str | None
        ``True``/``"INFO"`` shows progress messages, ``False``/``"WARNING"`` only
        warnings, ``"DEBUG"`` everything; ints as in :func:`use_log_level`.
        ``None`` resets the default (WARNING).
    """
    level = _verbose_level(verbose)
    logger.setLevel(logging.WARNING if level is None else level)


@contextlib.contextmanager
def use_log_level(verbose: Any) -> Iterator[None]:
    """Context manager setting the ``crl_neuro`` logger's level, then restoring it.

    Parameters
    ----------
    verbose : bool | int | str | None
        ``None`` changes nothing; ``True`` is INFO and ``False`` WARNING; a str names
        a level; an int below 10 counts verbosity (0 WARNING, 1 INFO, >= 2 DEBUG) and
        one from 10 on is a :mod:`logging` level. When MNE is already imported its
        logger follows the same level, so MNE calls inside honour ``verbose`` too.
    """
    level = _verbose_level(verbose)
    if level is None:
        yield
        return
    old = logger.level
    logger.setLevel(level)
    mne = sys.modules.get("mne")
    mne_ctx = (mne.utils.use_log_level(level) if mne is not None and hasattr(mne, "utils")
               else contextlib.nullcontext())
    try:
        with mne_ctx:
            yield
    finally:
        logger.setLevel(old)


def logger_verbosity() -> int:
    """Current verbosity of the ``crl_neuro`` logger as an int (0, 1 INFO, 2 DEBUG).

    For code that drives a progress bar or another library's ``verbose`` (tqdm,
    joblib) from the logger's level.
    """
    if logger.isEnabledFor(logging.DEBUG):
        return 2
    return 1 if logger.isEnabledFor(logging.INFO) else 0


def verbose(method: Callable[..., Any]) -> Callable[..., Any]:
    """Decorate an estimator method so that it accepts ``verbose=`` (MNE style).

    During the call the ``crl_neuro`` logger uses the method's ``verbose`` argument
    if given, else the estimator's ``verbose`` parameter. A method that declares
    ``verbose`` itself receives it; otherwise the keyword is consumed here.
    """
    takes_verbose = "verbose" in inspect.signature(method).parameters

    @functools.wraps(method)
    def with_log_level(self: Any, *args: Any, **kwargs: Any) -> Any:
        level = kwargs.get("verbose") if takes_verbose else kwargs.pop("verbose", None)
        if level is None:
            level = getattr(self, "verbose", None)
        with use_log_level(level):
            return method(self, *args, **kwargs)

    if not takes_verbose:
        sig = inspect.signature(method)
        params = list(sig.parameters.values())
        extra = inspect.Parameter("verbose", inspect.Parameter.KEYWORD_ONLY, default=None)
        at = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD), len(params))
        with_log_level.__signature__ = sig.replace(parameters=[*params[:at], extra, *params[at:]])  # type: ignore[attr-defined]
    with_log_level._crl_verbose = True  # type: ignore[attr-defined]
    return with_log_level


# -- shared parameter documentation ----------------------------------------------
#: Numpydoc entries of the parameters every estimator shares; ``%(name)s`` on a line
#: of its own in a docstring decorated with :func:`fill_doc` is replaced by the entry.
docdict: dict[str, str] = {
    "random_state": """\
random_state : int | RandomState | None
    Randomness, as in scikit-learn: an int gives the same result on every call,
    ``None`` draws from numpy's global random state (seed it with
    :func:`numpy.random.seed` for reproducibility), a
    :class:`numpy.random.RandomState` is drawn from. Saving needs an int or ``None``.""",
    "verbose": """\
verbose : bool | int | str | None
    Level of the ``crl_neuro`` logger during ``fit``/``transform`` (messages go to
    stderr): ``False``/``0`` warnings only, ``True``/``1``/``"INFO"`` progress,
    ``2``/``"DEBUG"`` details, ``None`` leaves the level as set by
    :func:`crl_neuro.core.base.set_log_level`. Methods also accept ``verbose=`` to
    override it for one call.""",
    "n_jobs": """\
n_jobs : int | None
    Number of parallel jobs (joblib): ``None`` or ``1`` runs sequentially, ``-1``
    uses every core. ``0`` is not allowed.""",
    "device": """\
device : {"cpu", "cuda", "auto"}
    Torch device for training and inference (``"cuda:N"`` picks a GPU). ``"auto"``
    uses CUDA when available; results are bitwise reproducible on CPU only.""",
}

_DOC_KEY = re.compile(r"^(?P<indent>[ \t]*)%\((?P<key>\w+)\)s[ \t]*$", re.MULTILINE)


def fill_doc(obj: Any) -> Any:
    """Replace ``%(name)s`` lines of ``obj``'s docstring by :data:`docdict` entries.

    Each placeholder must be alone on its line; the entry is indented like it.
    Unlike ``%``-formatting, other ``%`` characters in the docstring are left alone.

    Parameters
    ----------
    obj : callable | type
        Function, method or class whose ``__doc__`` is filled in place.

    Returns
    -------
    obj : callable | type
        The same object.
    """
    doc = obj.__doc__
    if not doc:
        return obj

    def entry(match: re.Match[str]) -> str:
        key = match.group("key")
        if key not in docdict:
            raise KeyError(f"fill_doc: no shared docstring entry {key!r} (known: {sorted(docdict)})")
        indent = match.group("indent")
        return "\n".join(indent + line if line else line for line in docdict[key].splitlines())

    obj.__doc__ = _DOC_KEY.sub(entry, doc)
    return obj


# -- registry of public estimators ---------------------------------------------------
# name -> module; classes import lazily (torch, MNE, nilearn are heavy).
_PUBLIC_ESTIMATORS: dict[str, str] = {
    "CausalImageModel": "crl_neuro.generative.model",
    "CausalROIs": "crl_neuro.fmri.causal_rois",
    "CEMPolicy": "crl_neuro.rl.policy",
    "IFactorWorldModel": "crl_neuro.rl.world_model",
    "IVAE": "crl_neuro.core.nonlinear",
    "LatentCausalModel": "crl_neuro.psychometrics.model",
    "MultiDistributionCRL": "crl_neuro.core.multidist",
    "MultiModalCRL": "crl_neuro.multimodal.model",
    "SessionCRL": "crl_neuro.meeg.session_crl",
}


def all_estimators() -> dict[str, type]:
    """Return the public crl_neuro estimators, name -> class (imports their modules).

    Returns
    -------
    estimators : dict
        Every public subclass of :class:`BaseCRLEstimator`, sorted by name.
    """
    import importlib

    return {name: getattr(importlib.import_module(mod), name)
            for name, mod in sorted(_PUBLIC_ESTIMATORS.items())}


class BaseCRLEstimator(BaseEstimator):
    """Base class of crl_neuro estimators: scikit-learn contract plus persistence.

    Subclasses get ``get_params``/``set_params``/``clone`` from scikit-learn and
    :meth:`save`. Fitted attributes (public names ending in ``_``) of these types
    are saved automatically: numpy arrays, numbers, strings, ``None``, lists and
    dicts of those, :class:`pandas.DataFrame`, :class:`crl_neuro.core.graphs.Graph`
    and :class:`torch.nn.Module` (as a state dict; the subclass must then implement
    :meth:`_build_modules`). Anything else must be handled by overriding
    :meth:`_extra_state` and :meth:`_set_extra_state`; parameters that are not JSON
    by overriding :meth:`_params_to_json` and :meth:`_params_from_json`.

    Fitted arrays declared in ``_fitted_arrays`` (name -> :class:`ArraySpec`) are
    checked by :func:`load`; :meth:`_check_loaded` adds estimator-specific checks.
    A subclass's ``fit`` is wrapped so that an exception restores the attributes
    the estimator had before the call.
    """

    #: Declared fitted arrays (name -> ArraySpec), validated by :func:`load`.
    _fitted_arrays: ClassVar[dict[str, ArraySpec]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[_class_key(cls)] = cls
        fit = cls.__dict__.get("fit")
        if callable(fit) and not getattr(fit, "_crl_rolls_back", False):
            cls.fit = _rollback_on_failure(fit)
        # Every entry point accepts verbose= and logs at the estimator's level.
        for name in _VERBOSE_METHODS:
            method = cls.__dict__.get(name)
            if callable(method) and not getattr(method, "_crl_verbose", False):
                setattr(cls, name, verbose(method))

    def __sklearn_is_fitted__(self) -> bool:
        """Whether ``fit`` has run: any public attribute ending in ``_`` exists."""
        return any(k.endswith("_") and not k.startswith("_") for k in vars(self))

    # -- hooks for subclasses -------------------------------------------------
    def _extra_state(self) -> dict[str, bytes]:
        """Return extra files (name -> bytes) to store; attributes they cover are skipped.

        Override together with :meth:`_set_extra_state` for fitted attributes the
        generic encoder cannot write (e.g. an ``mne.Info``). Names of attributes
        handled here must be listed in ``_extra_attributes``.
        """
        return {}

    def _set_extra_state(self, files: dict[str, bytes]) -> None:
        """Restore what :meth:`_extra_state` wrote."""

    _extra_attributes: tuple[str, ...] = ()

    def _params_to_json(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        """Return the parameters to store as JSON, and files for those that are not JSON.

        Override for parameters such as images or covariance objects: replace their
        value by something JSON-able (e.g. ``None``) in the returned dict and return
        their bytes as files (name -> bytes; stored beside the :meth:`_extra_state`
        files, so the names must differ). :meth:`_params_from_json` undoes it.
        The estimator itself must not be modified.

        Returns
        -------
        params : dict
            Parameter name -> JSON-able value.
        files : dict
            File name -> bytes.
        """
        return self.get_params(deep=False), {}

    @classmethod
    def _params_from_json(cls, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        """Rebuild constructor parameters from what :meth:`_params_to_json` stored.

        Parameters
        ----------
        params : dict
            Decoded JSON parameters.
        files : dict
            Every extra file of the archive (name -> bytes).

        Returns
        -------
        params : dict
            Keyword arguments of ``cls``.
        """
        return params

    def _check_loaded(self) -> None:
        """Check consistency of a loaded estimator beyond ``_fitted_arrays``.

        Called by :func:`load` once every fitted attribute is restored; raise
        :class:`ValueError` on a mismatch (reported as :class:`CorruptModelError`).
        """

    def _build_modules(self, meta: dict[str, Any]) -> dict[str, Any]:
        """Return freshly built torch modules (name -> module) to load state dicts into.

        Called by :func:`load` after every other fitted attribute has been restored,
        so an implementation can read e.g. ``self.config_``; ``meta`` is the file's
        decoded ``meta.json``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} stores torch modules but does not implement _build_modules"
        )

    # -- persistence ------------------------------------------------------------
    def _fitted_attribute_names(self) -> list[str]:
        return sorted(
            k for k in vars(self)
            if k.endswith("_") and not k.startswith("_") and k not in self._extra_attributes
        )

    def save(self, path: str | Path, overwrite: bool = False, *,
             metadata: dict[str, Any] | None = None) -> Path:
        """Save the estimator (parameters and fitted state) without pickle.

        The archive is written to a temporary file in the same folder and renamed
        over ``path`` only once complete, so an error or a crash mid-write leaves
        an existing file intact (and no temporary file behind, except after a hard
        kill).

        Parameters
        ----------
        path : str | Path
            Destination file (a zip archive; the ``.crl`` suffix is conventional).
        overwrite : bool
            Whether an existing file may be replaced.
        metadata : dict | None
            JSON-able data stored with the model (read back without loading it by
            :func:`read_metadata`), e.g. the fingerprint :func:`crl_neuro.group.fit_group`
            uses to tell whether a file matches a rerun.

        Returns
        -------
        path : Path
            The written file. Read it back with :func:`crl_neuro.load`.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"path {str(path)!r} exists; pass overwrite=True to replace it")
        if path.is_dir():
            raise IsADirectoryError(f"path {str(path)!r} is a directory")
        raw_params, param_files = self._params_to_json()
        params = {name: _encode_json(value, where=f"parameter {name!r}")
                  for name, value in raw_params.items()}
        arrays: dict[str, np.ndarray] = {}
        modules: dict[str, bytes] = {}
        fitted: dict[str, Any] = {}
        for name in self._fitted_attribute_names():
            fitted[name] = _encode_value(getattr(self, name), name, arrays, modules)
        meta = {
            "format_version": _FORMAT_VERSION,
            "class": _class_key(type(self)),
            "crl_neuro_version": _package_version(),
            "params": params,
            "fitted": fitted,
        }
        if metadata is not None:
            meta["metadata"] = _encode_json(metadata, where="metadata")
        extra = self._extra_state()
        clash = set(extra) & set(param_files)
        if clash:
            raise RuntimeError(f"{type(self).__name__}: parameter and state files share names {sorted(clash)}")
        extra = {**param_files, **extra}
        _atomic_write(path, lambda f: _write_archive(f, meta, arrays, modules, extra))
        return path


def load(path: str | Path) -> BaseCRLEstimator:
    """Load an estimator written by ``estimator.save(path)``.

    Nothing in the file is executed: parameters are JSON, arrays are read with
    ``numpy.load(allow_pickle=False)``, torch weights with
    ``torch.load(weights_only=True)``, and the class must be a registered
    crl_neuro estimator. The archive's checksums, the format version and the
    declared fitted arrays (dtype, shape and dimensions shared between arrays) are
    checked before the estimator is returned.

    Parameters
    ----------
    path : str | Path
        File written by :meth:`BaseCRLEstimator.save`.

    Returns
    -------
    estimator : BaseCRLEstimator
        The fitted estimator.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    CorruptModelError
        If the file is not a crl_neuro estimator file, or is damaged, truncated or
        tampered with.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r} does not exist")
    try:
        return _load(path)
    except CorruptModelError:
        raise
    except _DECODE_ERRORS as err:
        raise CorruptModelError(
            f"file {str(path)!r} is damaged or not a valid crl_neuro estimator file: "
            f"{type(err).__name__}: {err}"
        ) from err


def read_metadata(path: str | Path) -> dict[str, Any]:
    """Verify a saved estimator file's integrity and return its ``metadata``.

    Cheaper than :func:`load`: the checksums of every member are verified and
    ``meta.json`` is parsed, but no estimator is built.

    Parameters
    ----------
    path : str | Path
        File written by :meth:`BaseCRLEstimator.save`.

    Returns
    -------
    metadata : dict
        What was passed as ``save(..., metadata=...)`` (empty if nothing).

    Raises
    ------
    CorruptModelError
        If the file is damaged or not a crl_neuro estimator file.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r} does not exist")
    try:
        with _open_archive(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                raise CorruptModelError(f"file {str(path)!r}: member {bad!r} fails its checksum")
            meta = _read_meta(zf, path)
        out = _decode_json(meta.get("metadata", {"__dict__": {}}))
        if not isinstance(out, dict):
            raise CorruptModelError(f"file {str(path)!r}: metadata is not a dict")
        return out
    except CorruptModelError:
        raise
    except _DECODE_ERRORS as err:
        raise CorruptModelError(
            f"file {str(path)!r} is damaged: {type(err).__name__}: {err}"
        ) from err


# Errors that decoding a damaged archive can raise; all become CorruptModelError.
_DECODE_ERRORS = (
    zipfile.BadZipFile, zlib.error, EOFError, struct.error, pickle.UnpicklingError,
    KeyError, IndexError, TypeError, ValueError, AttributeError, RuntimeError,
)


def _open_archive(path: Path) -> zipfile.ZipFile:
    if not zipfile.is_zipfile(path):
        raise CorruptModelError(f"path {str(path)!r} is not a crl_neuro estimator file "
                                "(not a zip archive, or truncated)")
    return zipfile.ZipFile(path)


def _read_meta(zf: zipfile.ZipFile, path: Path) -> dict[str, Any]:
    if "meta.json" not in zf.namelist():
        raise CorruptModelError(f"path {str(path)!r} has no meta.json; not a crl_neuro file")
    meta = json.loads(zf.read("meta.json"))
    if not isinstance(meta, dict):
        raise CorruptModelError(f"file {str(path)!r}: meta.json is not a JSON object")
    version = meta.get("format_version")
    if version != _FORMAT_VERSION:
        raise CorruptModelError(
            f"file {str(path)!r} has unsupported file format version {version!r} (this "
            f"crl_neuro reads version {_FORMAT_VERSION}; the file was written by crl_neuro "
            f"{meta.get('crl_neuro_version')!r})"
        )
    for key, kind in (("class", str), ("params", dict), ("fitted", dict)):
        if not isinstance(meta.get(key), kind):
            raise CorruptModelError(f"file {str(path)!r}: meta.json lacks a valid {key!r} entry")
    return meta


def _load(path: Path) -> BaseCRLEstimator:
    with _open_archive(path) as zf:
        meta = _read_meta(zf, path)
        names = set(zf.namelist())
        if "arrays.npz" not in names:
            raise CorruptModelError(f"file {str(path)!r} has no arrays.npz")
        with np.load(io.BytesIO(zf.read("arrays.npz")), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        module_blobs = {
            n[len("modules/"):-len(".pt")]: zf.read(n) for n in names if n.startswith("modules/")
        }
        extra = {n[len("extra/"):]: zf.read(n) for n in names if n.startswith("extra/")}
    key = meta["class"]
    _import_owner_module(key)
    if key not in _REGISTRY:
        raise CorruptModelError(f"class {key!r} in {str(path)!r} is not a crl_neuro estimator")
    cls = _REGISTRY[key]
    params = {k: _decode_json(v) for k, v in meta["params"].items()}
    params = cls._params_from_json(params, extra)
    est = cls(**params)
    module_names = []
    fitted = {}
    for name, enc in meta["fitted"].items():
        if not (isinstance(name, str) and name.endswith("_") and not name.startswith("_")):
            raise CorruptModelError(f"file {str(path)!r}: {name!r} is not a fitted attribute name")
        if not isinstance(enc, dict):
            raise CorruptModelError(f"file {str(path)!r}: fitted attribute {name!r} is malformed")
        if enc.get("__kind__") == "module":
            module_names.append(name)
        else:
            fitted[name] = _decode_value(enc, arrays)
    _check_fitted_arrays(cls, fitted, module_names, params, path)
    for name, value in fitted.items():
        setattr(est, name, value)
    if module_names:
        # Every other fitted attribute is set by now, so _build_modules can read them.
        modules = est._build_modules(meta)
        for name in module_names:
            if name not in module_blobs or name not in modules:
                raise CorruptModelError(f"file {str(path)!r} lacks the weights of module {name!r}")
            setattr(est, name, _load_module(modules[name], module_blobs[name]))
    est._set_extra_state(extra)
    est._check_loaded()
    return est


def _check_fitted_arrays(cls: type, fitted: dict[str, Any], module_names: list[str],
                         params: dict[str, Any], path: Path) -> None:
    """Check decoded fitted arrays against ``cls._fitted_arrays``; raise CorruptModelError."""
    specs = cls._fitted_arrays
    if not specs or not (fitted or module_names):
        return  # nothing declared, or an unfitted estimator
    where = f"file {str(path)!r} ({cls.__name__})"
    # Symbols naming an integer fitted attribute or parameter are bound to its value.
    bound: dict[str, tuple[int, str]] = {}
    symbols = {d for spec in specs.values() for d in (spec.shape or ()) if isinstance(d, str)}
    for sym in symbols:
        for source, values in (("fitted attribute", fitted), ("parameter", params)):
            if sym in values:
                v = values[sym]
                if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
                    bound[sym] = (int(v), f"{source} {sym}")
                elif source == "fitted attribute":
                    raise CorruptModelError(f"{where}: {sym} must be an integer, got {v!r}")
                break
    for name, spec in specs.items():
        if name not in fitted:
            if name in module_names:
                continue
            if not spec.optional:
                raise CorruptModelError(f"{where}: fitted attribute {name!r} is missing")
            continue
        value = fitted[name]
        if not isinstance(value, np.ndarray):
            raise CorruptModelError(f"{where}: fitted attribute {name!r} must be an array, got "
                                    f"{type(value).__name__}")
        if spec.kinds and value.dtype.kind not in spec.kinds:
            raise CorruptModelError(f"{where}: fitted attribute {name!r} has dtype {value.dtype}, "
                                    f"expected kind {spec.kinds!r}")
        if spec.shape is None:
            continue
        if value.ndim != len(spec.shape):
            raise CorruptModelError(f"{where}: fitted attribute {name!r} has {value.ndim} "
                                    f"dimensions {value.shape}, expected {len(spec.shape)}")
        for axis, (size, want) in enumerate(zip(value.shape, spec.shape)):
            if want is None:
                continue
            if isinstance(want, str):
                if want not in bound:
                    bound[want] = (size, f"{name} axis {axis}")
                    continue
                want_size, origin = bound[want]
            else:
                want_size, origin = want, "the declared shape"
            if size != want_size:
                raise CorruptModelError(
                    f"{where}: fitted attribute {name!r} has shape {value.shape}; axis {axis} "
                    f"should be {want_size} ({want if isinstance(want, str) else 'size'} from "
                    f"{origin})"
                )


# Methods wrapped with :func:`verbose` in every subclass.
_VERBOSE_METHODS = ("fit", "transform", "fit_transform", "inverse_transform", "predict", "score")


def _rollback_on_failure(fit: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap ``fit`` so that an exception restores the attributes held before the call.

    Without this a failed refit could leave new fitted attributes beside old ones
    (e.g. new feature statistics with an old network), and later calls would mix
    two fits. The snapshot is shallow: fits assign new objects to their fitted
    attributes, they do not modify the old ones in place.
    """
    @functools.wraps(fit)
    def fit_or_roll_back(self: Any, *args: Any, **kwargs: Any) -> Any:
        before = dict(vars(self))
        try:
            return fit(self, *args, **kwargs)
        except BaseException:
            vars(self).clear()
            vars(self).update(before)
            raise

    fit_or_roll_back._crl_rolls_back = True  # type: ignore[attr-defined]
    return fit_or_roll_back


def _atomic_write(path: Path, write: Callable[[BinaryIO], None]) -> None:
    """Write ``path`` through a temporary file in its folder, then rename it over ``path``.

    ``os.replace`` is atomic within one file system, so readers see either the old
    or the complete new file; the temporary file is removed on any error.
    """
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(tmp, "xb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())  # the data must be on disk before the rename is
        os.replace(tmp, path)
    except BaseException:
        try:
            tmp.unlink()
        except OSError:
            pass
        raise


def _is_temporary_of(name: str, target: str) -> bool:
    """Whether file ``name`` is a temporary file :func:`_atomic_write` made for ``target``."""
    return re.fullmatch(rf"\.{re.escape(target)}\.[0-9a-f]{{32}}\.tmp", name) is not None


def _write_archive(f: BinaryIO, meta: dict, arrays: dict[str, np.ndarray],
                   modules: dict[str, bytes], extra: dict[str, bytes]) -> None:
    with zipfile.ZipFile(f, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("meta.json", json.dumps(meta, indent=1))
        buf = io.BytesIO()
        np.savez(buf, **arrays)
        zf.writestr("arrays.npz", buf.getvalue())
        for name, blob in modules.items():
            zf.writestr(f"modules/{name}.pt", blob)
        for name, blob in extra.items():
            zf.writestr(f"extra/{name}", blob)


# -- encoding helpers -----------------------------------------------------------
def _package_version() -> str:
    from crl_neuro import __version__

    return __version__


def _import_owner_module(key: str) -> None:
    """Import the crl_neuro module that defines ``key`` so that it registers itself."""
    if not key.startswith("crl_neuro."):
        return
    import importlib

    parts = key.split(".")
    for i in range(len(parts) - 1, 1, -1):
        try:
            importlib.import_module(".".join(parts[:i]))
            return
        except ImportError:
            continue


def _encode_json(value: Any, where: str) -> Any:
    """Encode a parameter value to JSON-able data (tuples and numpy scalars included)."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return {"__float__": repr(f)} if not np.isfinite(f) else f
    if isinstance(value, tuple):
        return {"__tuple__": [_encode_json(v, where) for v in value]}
    if isinstance(value, list):
        return [_encode_json(v, where) for v in value]
    if type(value) is dict:  # not subclasses such as mne.Covariance: they'd lose their type
        if not all(isinstance(k, str) for k in value):
            raise TypeError(f"cannot save {where}: dict keys must be strings")
        return {"__dict__": {k: _encode_json(v, where) for k, v in value.items()}}
    if isinstance(value, np.ndarray) and value.dtype != object:
        return {"__array__": value.tolist(), "dtype": str(value.dtype)}
    if isinstance(value, np.random.RandomState):
        raise TypeError(
            f"cannot save {where}: a RandomState instance is not JSON; use an int seed"
        )
    raise TypeError(f"cannot save {where} of type {type(value).__name__}")


def _decode_json(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode_json(v) for v in value]
    if isinstance(value, dict):
        if "__float__" in value:
            return float(value["__float__"])
        if "__tuple__" in value:
            return tuple(_decode_json(v) for v in value["__tuple__"])
        if "__dict__" in value:
            return {k: _decode_json(v) for k, v in value["__dict__"].items()}
        if "__array__" in value:
            dtype = np.dtype(value["dtype"])
            if dtype.kind in "OV":  # only plain numbers/strings, never Python objects
                raise ValueError(f"refusing stored array of dtype {dtype}")
            return np.asarray(value["__array__"], dtype=dtype)
        raise ValueError(f"unknown JSON entry {sorted(value)}")
    return value


def _encode_value(value: Any, name: str, arrays: dict, modules: dict) -> Any:
    import pandas as pd

    if isinstance(value, np.ndarray):
        if value.dtype == object:
            raise TypeError(f"cannot save fitted attribute {name!r}: object arrays are not allowed")
        key = f"a{len(arrays)}"
        arrays[key] = value
        return {"__kind__": "array", "key": key}
    if isinstance(value, pd.DataFrame):
        return _encode_frame(value, name, arrays)
    if type(value).__name__ == "Graph" and type(value).__module__.startswith("crl_neuro."):
        return {"__kind__": "graph", "data": value.to_dict()}
    if _is_torch_module(value):
        import torch

        buf = io.BytesIO()
        torch.save(value.state_dict(), buf)
        modules[name] = buf.getvalue()
        return {"__kind__": "module"}
    if isinstance(value, list) and value and any(isinstance(v, np.ndarray) for v in value):
        return {"__kind__": "list", "items": [_encode_value(v, name, arrays, modules) for v in value]}
    return {"__kind__": "json", "value": _encode_json(value, where=f"fitted attribute {name!r}")}


def _decode_value(enc: dict, arrays: dict) -> Any:
    import pandas as pd

    kind = enc["__kind__"]
    if kind == "array":
        if enc["key"] not in arrays:
            raise CorruptModelError(f"array {enc['key']!r} is missing from arrays.npz")
        return arrays[enc["key"]]
    if kind == "frame":
        return _decode_frame(enc, arrays)
    if kind == "dataframe":
        return pd.read_json(io.StringIO(enc["data"]), orient="split")
    if kind == "graph":
        from crl_neuro.core.graphs import Graph

        return Graph.from_dict(enc["data"])
    if kind == "list":
        return [_decode_value(e, arrays) for e in enc["items"]]
    if kind == "json":
        return _decode_json(enc["value"])
    raise ValueError(f"unknown stored kind {kind!r}")


def _frame_array(values: Any) -> np.ndarray | None:
    """Return a column/index as an array npz stores without pickle, or None."""
    arr = np.asarray(values)
    if arr.dtype.kind in "biufc":
        return arr
    if arr.dtype == object and all(isinstance(v, str) for v in arr):
        return arr.astype(str)
    return None


def _encode_frame(df: Any, name: str, arrays: dict) -> dict:
    """Store a DataFrame column by column in the npz so numbers round-trip bit-exactly."""
    cols = [_frame_array(df.iloc[:, k].to_numpy()) for k in range(df.shape[1])]
    index = _frame_array(df.index.to_numpy())
    if any(c is None for c in cols) or index is None or df.columns.nlevels > 1 or df.index.nlevels > 1:
        # Mixed/exotic columns: JSON keeps 15 significant digits, acceptable for labels.
        return {"__kind__": "dataframe", "data": df.to_json(orient="split", double_precision=15)}
    keys = []
    for arr in cols + [index]:
        key = f"a{len(arrays)}"
        arrays[key] = arr
        keys.append(key)
    return {
        "__kind__": "frame",
        "columns": [_encode_json(c, where=f"column of {name!r}") for c in df.columns],
        "column_keys": keys[:-1],
        "index_key": keys[-1],
        "index_name": _encode_json(df.index.name, where=f"index name of {name!r}"),
    }


def _decode_frame(enc: dict, arrays: dict) -> Any:
    import pandas as pd

    data = {k: arrays[key] for k, key in enumerate(enc["column_keys"])}
    index = pd.Index(arrays[enc["index_key"]], name=_decode_json(enc["index_name"]))
    df = pd.DataFrame(data, index=index)
    df.columns = [_decode_json(c) for c in enc["columns"]]
    return df


def _is_torch_module(value: Any) -> bool:
    import sys

    # A torch module can only exist if torch was imported; avoid importing it for nothing.
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(value, torch.nn.Module)


def _load_module(module: Any, blob: bytes) -> Any:
    import torch

    state = torch.load(io.BytesIO(blob), map_location="cpu", weights_only=True)
    module.load_state_dict(state)
    module.eval()
    return module
