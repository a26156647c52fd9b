"""Zero-mean, unit-variance noise laws shared by the simulators."""

from __future__ import annotations

import numpy as np


def unit_variance_noise(rng: np.random.RandomState, law: str, size: int | tuple[int, ...],
                        df: float = 5.0) -> np.ndarray:
    """Draw zero-mean, unit-variance noise of a named law (names already validated).

    ``"gaussian"``, ``"laplace"``, ``"uniform"``, ``"student"``/``"student_t"`` (Student t
    with ``df`` > 2 degrees of freedom, rescaled) or ``"bimodal"`` (equal mixture of
    N(+-0.8, 0.6^2)).
    """
    if law == "laplace":
        return rng.laplace(scale=1.0 / np.sqrt(2.0), size=size)
    if law == "uniform":
        return rng.uniform(-np.sqrt(3.0), np.sqrt(3.0), size=size)
    if law in ("student", "student_t"):
        return rng.standard_t(df, size=size) * np.sqrt((df - 2.0) / df)
    if law == "bimodal":  # variance 0.64 + 0.36
        return rng.choice([-0.8, 0.8], size=size) + 0.6 * rng.normal(size=size)
    if law == "gaussian":
        return rng.normal(size=size)
    raise ValueError(f"unknown noise law {law!r}")
