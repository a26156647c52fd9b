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
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.exceptions import NotFittedError

__all__ = ["BaseCRLEstimator", "load", "check_is_fitted"]

_FORMAT_VERSION = 1
# Classes that may be rebuilt by ``load``: filled by ``BaseCRLEstimator.__init_subclass__``.
_REGISTRY: dict[str, type] = {}


def _class_key(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def check_is_fitted(estimator: Any, attributes: str | list[str] | None = None) -> None:
    """Raise :class:`sklearn.exceptions.NotFittedError` if ``estimator`` is not fitted.

    Parameters
    ----------
    estimator : object
        The estimator to check.
    attributes : str | list of str | None
        Fitted attributes that must exist. ``None`` checks for any attribute whose
        name ends with ``"_"`` (and does not start with ``"_"``).
    """
    if attributes is None:
        fitted = any(k.endswith("_") and not k.startswith("_") for k in vars(estimator))
    else:
        attributes = [attributes] if isinstance(attributes, str) else list(attributes)
        fitted = all(hasattr(estimator, a) for a in attributes)
    if not fitted:
        raise NotFittedError(
            f"This {type(estimator).__name__} instance is not fitted yet. Call 'fit' "
            "with appropriate arguments before using this estimator."
        )


class BaseCRLEstimator(BaseEstimator):
    """Base class of crl_neuro estimators: scikit-learn contract plus persistence.

    Subclasses get ``get_params``/``set_params``/``clone`` from scikit-learn and
    :meth:`save`. Fitted attributes (public names ending in ``_``) of these types
    are saved automatically: numpy arrays, numbers, strings, ``None``, lists and
    dicts of those, :class:`pandas.DataFrame`, :class:`crl_neuro.core.graphs.Graph`
    and :class:`torch.nn.Module` (as a state dict; the subclass must then implement
    :meth:`_build_modules`). Anything else must be handled by overriding
    :meth:`_extra_state` and :meth:`_set_extra_state`.
    """

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        _REGISTRY[_class_key(cls)] = cls

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

    def save(self, path: str | Path, overwrite: bool = False) -> Path:
        """Save the estimator (parameters and fitted state) without pickle.

        Parameters
        ----------
        path : str | Path
            Destination file (a zip archive; the ``.crl`` suffix is conventional).
        overwrite : bool
            Whether an existing file may be replaced.

        Returns
        -------
        path : Path
            The written file. Read it back with :func:`crl_neuro.load`.
        """
        path = Path(path)
        if path.exists() and not overwrite:
            raise FileExistsError(f"path {str(path)!r} exists; pass overwrite=True to replace it")
        params = {}
        for name, value in self.get_params(deep=False).items():
            params[name] = _encode_json(value, where=f"parameter {name!r}")
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
        extra = self._extra_state()
        with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr("meta.json", json.dumps(meta, indent=1))
            buf = io.BytesIO()
            np.savez(buf, **arrays)
            zf.writestr("arrays.npz", buf.getvalue())
            for name, blob in modules.items():
                zf.writestr(f"modules/{name}.pt", blob)
            for name, blob in extra.items():
                zf.writestr(f"extra/{name}", blob)
        return path


def load(path: str | Path) -> BaseCRLEstimator:
    """Load an estimator written by ``estimator.save(path)``.

    Nothing in the file is executed: parameters are JSON, arrays are read with
    ``numpy.load(allow_pickle=False)``, torch weights with
    ``torch.load(weights_only=True)``, and the class must be a registered
    crl_neuro estimator.

    Parameters
    ----------
    path : str | Path
        File written by :meth:`BaseCRLEstimator.save`.

    Returns
    -------
    estimator : BaseCRLEstimator
        The fitted estimator.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"path {str(path)!r} does not exist")
    if not zipfile.is_zipfile(path):
        raise ValueError(f"path {str(path)!r} is not a crl_neuro estimator file")
    with zipfile.ZipFile(path) as zf:
        names = set(zf.namelist())
        if "meta.json" not in names:
            raise ValueError(f"path {str(path)!r} has no meta.json; not a crl_neuro file")
        meta = json.loads(zf.read("meta.json"))
        with np.load(io.BytesIO(zf.read("arrays.npz")), allow_pickle=False) as npz:
            arrays = {k: npz[k] for k in npz.files}
        module_blobs = {
            n[len("modules/"):-len(".pt")]: zf.read(n) for n in names if n.startswith("modules/")
        }
        extra = {n[len("extra/"):]: zf.read(n) for n in names if n.startswith("extra/")}
    if meta.get("format_version") != _FORMAT_VERSION:
        raise ValueError(f"unsupported file format version {meta.get('format_version')!r}")
    key = meta.get("class", "")
    _import_owner_module(key)
    if key not in _REGISTRY:
        raise ValueError(f"class {key!r} in {str(path)!r} is not a crl_neuro estimator")
    cls = _REGISTRY[key]
    params = {k: _decode_json(v) for k, v in meta["params"].items()}
    est = cls(**params)
    module_names = []
    for name, enc in meta["fitted"].items():
        if isinstance(enc, dict) and enc.get("__kind__") == "module":
            module_names.append(name)
        else:
            setattr(est, name, _decode_value(enc, arrays))
    if module_names:
        # Every other fitted attribute is set by now, so _build_modules can read them.
        modules = est._build_modules(meta)
        for name in module_names:
            if name not in module_blobs or name not in modules:
                raise ValueError(f"file {str(path)!r} lacks the weights of module {name!r}")
            setattr(est, name, _load_module(modules[name], module_blobs[name]))
    est._set_extra_state(extra)
    return est


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
            return np.asarray(value["__array__"], dtype=value["dtype"])
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
