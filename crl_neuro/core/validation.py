"""Input validation with messages that name the offending argument.

All public estimators and functions validate through these helpers so that bad
input always fails the same way: ``TypeError`` for a wrong type, ``ValueError``
for a wrong value, and the message names the argument and what was expected.
"""

from __future__ import annotations

from numbers import Integral, Real
from typing import Any, Iterable

import numpy as np

__all__ = [
    "check_data",
    "check_domains",
    "check_int",
    "check_float",
    "check_magnitude",
    "check_real",
    "check_choice",
    "check_n_latents",
    "check_square",
    "check_generator",
    "check_n_features",
    "check_n_jobs",
    "check_random_state",
    "check_seed",
]


def check_data(
    X: Any,
    name: str = "X",
    ndim: int = 2,
    min_samples: int = 2,
    min_features: int = 1,
    dtype: type = np.float64,
    allow_nan: bool = False,
) -> np.ndarray:
    """Return ``X`` as a finite float array with ``ndim`` dimensions (a copy if converted).

    Parameters
    ----------
    X : array-like
        Data to check.
    name : str
        Argument name used in error messages.
    ndim : int
        Required number of dimensions.
    min_samples : int
        Minimum size of the first axis.
    min_features : int
        Minimum size of the second axis (when ``ndim >= 2``).
    dtype : type
        Output dtype.
    allow_nan : bool
        Whether NaN (e.g. a missing answer) is accepted; infinity never is.

    Returns
    -------
    X : ndarray
        Validated array. The caller's array is never modified.
    """
    if X is None:
        raise TypeError(f"{name} must be an array-like of numbers, got None")
    if hasattr(X, "tocsr") or type(X).__module__.startswith("scipy.sparse"):
        raise TypeError(f"{name}: sparse input is not supported; pass a dense array ({name}.toarray())")
    try:
        arr = np.asarray(X)
    except Exception as err:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be an array-like of numbers ({err})") from err
    if arr.dtype == object:
        # Numbers stored as objects (e.g. from a mixed DataFrame) are accepted as floats.
        try:
            arr = arr.astype(np.float64)
        except (TypeError, ValueError) as err:
            raise TypeError(f"{name} must contain numbers: {err}") from err
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must contain numbers, got dtype {arr.dtype}")
    check_real(arr, name)
    if arr.ndim != ndim:
        hint = f"; Reshape your data, e.g. {name}.reshape(-1, 1) for one feature" if arr.ndim == 1 else ""
        raise ValueError(f"{name} must be {ndim}D, got an array of shape {arr.shape}{hint}")
    if arr.shape[0] < min_samples:
        raise ValueError(
            f"{name} needs at least {min_samples} samples, got {arr.shape[0]} (n_samples={arr.shape[0]})"
        )
    if ndim >= 2 and arr.shape[1] < min_features:
        raise ValueError(
            f"{name} needs at least {min_features} features: {arr.shape[1]} feature(s) "
            f"(shape={arr.shape}) while a minimum of {min_features} is required."
        )
    arr = np.array(arr, dtype=dtype, copy=True)
    check_magnitude(arr, name, allow_nan=allow_nan)
    return arr


# Larger values overflow float64 once squared (covariances) and float32 (torch) at
# once; no measurement in any supported modality comes near them, so they are errors.
MAX_ABS_VALUE = 1e100


def check_real(arr: np.ndarray, name: str) -> None:
    """Refuse complex data instead of letting numpy drop the imaginary part with a warning.

    Raises :class:`ValueError`, as scikit-learn does for complex input.

    Parameters
    ----------
    arr : ndarray
        Data to check.
    name : str
        Argument name used in error messages.
    """
    if np.iscomplexobj(arr):
        raise ValueError(
            f"{name} must be real-valued. Complex data not supported (dtype {arr.dtype}); "
            f"pass e.g. np.abs({name}) or {name}.real explicitly"
        )


def check_magnitude(arr: np.ndarray, name: str, allow_nan: bool = False) -> None:
    """Check that a float array is finite (NaN optionally allowed) and not huge.

    Parameters
    ----------
    arr : ndarray
        Float data to check.
    name : str
        Argument name used in error messages.
    allow_nan : bool
        Whether NaN (e.g. missing answers) is accepted; infinity never is.
    """
    finite = np.isfinite(arr)
    if not finite.all():
        bad = ~finite & ~np.isnan(arr) if allow_nan else ~finite
        if bad.any():
            raise ValueError(f"{name} contains {int(bad.sum())} NaN or infinite value(s)"
                             if not allow_nan else f"{name} contains {int(bad.sum())} infinite value(s)")
    with np.errstate(invalid="ignore"):
        peak = float(np.nanmax(np.abs(arr))) if arr.size and not np.isnan(arr).all() else 0.0
    if peak > MAX_ABS_VALUE:
        raise ValueError(
            f"{name} has values as large as {peak:.3g}; values above {MAX_ABS_VALUE:.0e} overflow "
            f"the computations: rescale {name} (e.g. to SI units or z-scores)"
        )


def check_domains(
    domains: Any, n_samples: int, name: str = "domains", min_domains: int = 2, min_per_domain: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Validate per-sample domain labels.

    Returns
    -------
    labels : ndarray, shape (n_domains,)
        The distinct labels, sorted.
    codes : ndarray of int, shape (n_samples,)
        Index of each sample's domain in ``labels``.
    """
    if domains is None:
        raise TypeError(f"{name} must be an array of one label per sample, got None")
    arr = np.asarray(domains)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1D (one label per sample), got shape {arr.shape}")
    if arr.shape[0] != n_samples:
        raise ValueError(f"{name} has {arr.shape[0]} labels but the data have {n_samples} samples")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite labels")
    labels, codes = np.unique(arr, return_inverse=True)
    if labels.size < min_domains:
        raise ValueError(
            f"{name} must contain at least {min_domains} distinct values (domains/sessions), "
            f"got {labels.size}"
        )
    counts = np.bincount(codes, minlength=labels.size)
    if counts.min() < min_per_domain:
        bad = labels[counts.argmin()]
        raise ValueError(
            f"{name}: domain {bad!r} has {counts.min()} samples; each needs at least {min_per_domain}"
        )
    return labels, codes.astype(int)


def check_int(value: Any, name: str, min_value: int | None = None, max_value: int | None = None) -> int:
    """Check that ``value`` is an integer within bounds; return it as ``int``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} ({value!r})")
    value = int(value)
    if min_value is not None and value < min_value:
        raise ValueError(f"{name} must be >= {min_value}, got {value}")
    if max_value is not None and value > max_value:
        raise ValueError(f"{name} must be <= {max_value}, got {value}")
    return value


def check_float(
    value: Any,
    name: str,
    min_value: float | None = None,
    max_value: float | None = None,
    inclusive: bool = True,
) -> float:
    """Check that ``value`` is a finite real number within bounds; return it as ``float``."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise TypeError(f"{name} must be a number, got {type(value).__name__} ({value!r})")
    value = float(value)
    if not np.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if min_value is not None and (value < min_value if inclusive else value <= min_value):
        raise ValueError(f"{name} must be {'>=' if inclusive else '>'} {min_value}, got {value}")
    if max_value is not None and (value > max_value if inclusive else value >= max_value):
        raise ValueError(f"{name} must be {'<=' if inclusive else '<'} {max_value}, got {value}")
    return value


def check_choice(value: Any, name: str, choices: Iterable[Any]) -> Any:
    """Check that ``value`` is one of ``choices``."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")
    return value


def check_n_latents(n_latents: Any, X: np.ndarray, name: str = "n_latents", rank: int | None = None) -> int:
    """Check a number of latents against the data size and (numerical) rank."""
    n = check_int(n_latents, name, min_value=1)
    if rank is None:
        rank = int(np.linalg.matrix_rank(X - X.mean(axis=0)))
    if n > rank:
        raise ValueError(
            f"{name}={n} exceeds the rank of the data ({rank}; n_samples={X.shape[0]}, "
            f"n_features={X.shape[1]}); reduce {name} or provide more channels/features"
        )
    if X.shape[0] <= n:
        raise ValueError(f"too few samples ({X.shape[0]}) for {name}={n}; need more than {n}")
    return n


def check_square(A: Any, name: str, n: int | None = None) -> np.ndarray:
    """Return ``A`` as a finite square float matrix (optionally of size ``n``)."""
    arr = check_data(A, name=name, ndim=2, min_samples=1)
    if arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {arr.shape}")
    if n is not None and arr.shape[0] != n:
        raise ValueError(f"{name} must have shape ({n}, {n}), got {arr.shape}")
    return arr


def check_generator(random_state: Any, name: str = "random_state") -> np.random.Generator:
    """Return a :class:`numpy.random.Generator` for ``random_state``.

    ``None`` (fresh entropy), a non-negative int (a seed), a ``Generator`` (used
    as is) or a legacy ``RandomState`` (seeds a new Generator from it).
    """
    if random_state is None or (isinstance(random_state, Integral) and not isinstance(random_state, bool)):
        if random_state is not None and int(random_state) < 0:
            raise ValueError(f"{name} must be a non-negative int, got {random_state}")
        return np.random.default_rng(random_state)
    if isinstance(random_state, np.random.Generator):
        return random_state
    if isinstance(random_state, np.random.RandomState):
        return np.random.default_rng(random_state.randint(0, 2**31 - 1))
    raise TypeError(
        f"{name} must be None, an int, a numpy Generator or RandomState, "
        f"got {type(random_state).__name__}"
    )


def check_random_state(random_state: Any, name: str = "random_state") -> np.random.RandomState:
    """Return a :class:`numpy.random.RandomState` for ``random_state`` (scikit-learn policy).

    The one ``random_state`` policy of the estimators: an int in ``[0, 2**32)``
    seeds a new RandomState (same result on every call), ``None`` returns numpy's
    global RandomState (not a fixed seed), a RandomState is used as is. Unlike
    :func:`sklearn.utils.check_random_state` the errors name the argument.

    Parameters
    ----------
    random_state : int | RandomState | None
        Value to check.
    name : str
        Argument name used in error messages.

    Returns
    -------
    rng : numpy.random.RandomState
    """
    from sklearn.utils import check_random_state as _sk_check_random_state

    if random_state is None or isinstance(random_state, np.random.RandomState):
        return _sk_check_random_state(random_state)
    if isinstance(random_state, (bool, np.bool_)) or not isinstance(random_state, Integral):
        raise TypeError(
            f"{name} must be None, an int or a numpy RandomState, got "
            f"{type(random_state).__name__} ({random_state!r})"
        )
    if not 0 <= int(random_state) < 2**32:
        raise ValueError(f"{name} must be in [0, 2**32), got {int(random_state)}")
    return _sk_check_random_state(int(random_state))


def check_seed(random_state: Any, name: str = "random_state") -> int:
    """Return an int seed (for torch or a helper taking ints) from a ``random_state``.

    An int is returned unchanged, so fits stay deterministic; ``None`` draws the
    seed from numpy's global RandomState and a RandomState (or a
    :class:`numpy.random.Generator`) is advanced by one draw, as scikit-learn
    estimators do. ``None`` never silently becomes a fixed seed.

    Parameters
    ----------
    random_state : int | RandomState | Generator | None
        Value to check.
    name : str
        Argument name used in error messages.

    Returns
    -------
    seed : int
        In ``[0, 2**32)``.
    """
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(0, 2**31 - 1))
    if random_state is not None and not isinstance(random_state, np.random.RandomState):
        check_random_state(random_state, name)  # type and range, with the argument's name
        return int(random_state)
    return int(check_random_state(random_state, name).randint(0, 2**31 - 1))


def check_n_jobs(n_jobs: Any, name: str = "n_jobs") -> int | None:
    """Check a joblib ``n_jobs``: ``None`` or a non-zero int (negative counts from all cores)."""
    if n_jobs is None:
        return None
    n_jobs = check_int(n_jobs, name)
    if n_jobs == 0:
        raise ValueError(f"{name} must be a non-zero int or None (-1 uses every core), got 0")
    return n_jobs


def check_n_features(X: np.ndarray, n_features: int, estimator: Any, name: str = "X") -> None:
    """Check that ``X`` has the number of features the estimator was fitted with.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features)
        Validated data.
    n_features : int
        ``n_features_in_`` of the fitted estimator.
    estimator : object
        The estimator (its class name is used in the message).
    name : str
        Argument name used in error messages.
    """
    if X.shape[1] != n_features:
        raise ValueError(
            f"{name} has {X.shape[1]} features, but {type(estimator).__name__} is expecting "
            f"{n_features} features as input (it was fitted with {n_features})"
        )


def require_optional(module: str, extra: str, feature: str) -> Any:
    """Import an optional dependency, or raise an ImportError that says how to install it.

    Parameters
    ----------
    module : str
        Module to import (e.g. ``"torch"``).
    extra : str
        The crl_neuro extra that installs it (e.g. ``"deep"``).
    feature : str
        What needs it, for the message.

    Returns
    -------
    module : module
    """
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{feature} needs {module}, which is not installed. Install it with "
            f"pip install 'crl_neuro[{extra}]' (for torch on a machine without a GPU, the "
            "CPU build: pip install torch --index-url https://download.pytorch.org/whl/cpu)"
        ) from err
