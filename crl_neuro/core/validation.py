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
    "check_choice",
    "check_n_latents",
    "check_square",
    "check_generator",
]


def check_data(
    X: Any,
    name: str = "X",
    ndim: int = 2,
    min_samples: int = 2,
    min_features: int = 1,
    dtype: type = np.float64,
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

    Returns
    -------
    X : ndarray
        Validated array. The caller's array is never modified.
    """
    if X is None:
        raise TypeError(f"{name} must be an array-like of numbers, got None")
    try:
        arr = np.asarray(X)
    except Exception as err:  # pragma: no cover - exotic inputs
        raise TypeError(f"{name} must be an array-like of numbers ({err})") from err
    if arr.dtype == object or not (np.issubdtype(arr.dtype, np.number) or arr.dtype == bool):
        raise TypeError(f"{name} must contain numbers, got dtype {arr.dtype}")
    if arr.ndim != ndim:
        raise ValueError(f"{name} must be {ndim}D, got an array of shape {arr.shape}")
    if arr.shape[0] < min_samples:
        raise ValueError(f"{name} needs at least {min_samples} samples, got {arr.shape[0]}")
    if ndim >= 2 and arr.shape[1] < min_features:
        raise ValueError(f"{name} needs at least {min_features} features, got {arr.shape[1]}")
    arr = np.array(arr, dtype=dtype, copy=True)
    if not np.all(np.isfinite(arr)):
        n_bad = int(np.sum(~np.isfinite(arr)))
        raise ValueError(f"{name} contains {n_bad} NaN or infinite value(s)")
    return arr


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
            f"{name}={n} exceeds the rank of the data ({rank}); reduce {name} or provide more "
            "channels/features"
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
