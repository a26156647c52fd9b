"""Localization priors of :class:`crl_neuro.meeg.SessionCRL`.

With a forward model, ``SessionCRL`` starts from a RAP-MUSIC scan of the leadfield
and then refines the unmixing by the multi-session causal objective. A *prior* turns
the leadfield into a penalty on that refinement. It is passed as
``SessionCRL(prior=...)``: ``"leadfield"`` (the default, :class:`LeadfieldPrior`),
``None`` (no penalty: the refinement is free to leave the dipole patterns), or any
object with a ``penalty(context)`` method, written as :class:`LeadfieldPrior` is.

The penalty acts on the unmixing ``W`` of the reduced source space (``k x k``, one
row per source). ``penalty(context)`` returns a function ``W -> Q`` where ``Q`` has
shape ``(k, k, k)`` and ``Q[i]`` is a symmetric positive semi-definite matrix: the
refinement adds ``sum_i W[i] @ Q[i] @ W[i]`` to its objective, re-evaluating ``Q``
from the current ``W`` at every step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

import numpy as np

from crl_neuro.core.validation import check_float

__all__ = ["LeadfieldPrior", "PriorContext"]


@dataclass(frozen=True)
class PriorContext:
    """What a prior may use, built by ``SessionCRL.fit`` after the RAP-MUSIC start.

    Attributes
    ----------
    gain : ndarray, shape (n_whitened, n_locations * n_ori)
        Noise-whitened leadfield (columns location by location, ``n_ori`` each).
    n_ori : int
        Orientations per location (1 fixed, 3 free).
    positions : ndarray, shape (n_locations, 3)
        Location positions (m, head coordinates).
    start_locations : ndarray of int, shape (n_sources,)
        Location of each source in the RAP-MUSIC start.
    reduce : ndarray, shape (n_sources, n_whitened)
        Whitened channels -> reduced source space (unit pooled covariance).
    expand : ndarray, shape (n_whitened, n_sources)
        Reduced space -> whitened channels (``reduce @ expand`` is the identity).
    penalty_scale : float
        The theory level of the sparsity penalty for these sessions, the unit in which
        a prior's weight is expressed.
    """

    gain: np.ndarray
    n_ori: int
    positions: np.ndarray
    start_locations: np.ndarray
    reduce: np.ndarray
    expand: np.ndarray
    penalty_scale: float


class LeadfieldPrior:
    """Keep each source's filter off the other sources' dipole patterns.

    At every step of the refinement each source's pattern is re-fitted by a dipole, but
    only at locations within ``radius`` of its RAP-MUSIC start: the refinement may
    correct head-model error (a local effect) but a pattern cannot wander to another
    brain region. Each source's filter is then penalised for picking up the other
    sources' fitted dipole patterns, with weight ``weight`` times the theory level of
    the sparsity penalty.

    Parameters
    ----------
    weight : float
        Penalty weight relative to the sparsity penalty's theory level (> 0).
    radius : float
        Radius (m) around each start location within which its dipole is re-fitted
        (>= 0; 0 keeps the start locations and re-fits only orientations).
    """

    def __init__(self, weight: float = 100.0, radius: float = 0.02) -> None:
        self.weight = check_float(weight, "weight", min_value=0.0, inclusive=False)
        self.radius = check_float(radius, "radius", min_value=0.0)

    def __repr__(self) -> str:
        return f"LeadfieldPrior(weight={self.weight!r}, radius={self.radius!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, LeadfieldPrior) and (self.weight, self.radius) == (other.weight, other.radius)

    def __hash__(self) -> int:
        return hash((LeadfieldPrior, self.weight, self.radius))

    def penalty(self, context: PriorContext) -> Callable[[np.ndarray], np.ndarray]:
        """The penalty function ``W -> Q`` for one fit (see the module docstring).

        Parameters
        ----------
        context : PriorContext

        Returns
        -------
        penalty : callable
            ``penalty(W)`` with ``W`` of shape ``(k, k)`` returns ``Q`` of shape
            ``(k, k, k)``.
        """
        from crl_neuro.meeg.localization import _ori_basis, _scan

        V, Vpinv, n_ori = context.reduce, context.expand, context.n_ori
        k = V.shape[0]
        mu = self.weight * context.penalty_scale
        n_src = context.gain.shape[1] // n_ori
        G = context.gain.reshape(context.gain.shape[0], n_src, n_ori)
        pos = context.positions
        cands = [np.nonzero(np.linalg.norm(pos - pos[s], axis=1) <= self.radius)[0]
                 for s in context.start_locations]
        # The leadfield does not change during the fit: orientation bases once.
        bases = [_ori_basis(G[:, c, :].transpose(1, 0, 2)) if n_ori > 1 else None for c in cands]

        def penalty(W: np.ndarray) -> np.ndarray:
            mix_w = Vpinv @ np.linalg.inv(W)
            cols = []
            for j, cand in enumerate(cands):
                Gj = G[:, cand, :].reshape(G.shape[0], -1)
                b, _sc, coef, _amp = _scan(Gj, mix_w[:, [j]], n_ori, basis=bases[j])
                cols.append(G[:, cand[b[0]], :] @ coef[0])
            T = V @ np.stack(cols, axis=1)  # (k, k) targets in the reduced space
            T /= np.maximum(np.linalg.norm(T, axis=0, keepdims=True), 1e-300)
            Q = np.empty((k, k, k))
            for i in range(k):
                others = np.delete(np.arange(k), i)
                Q[i] = mu * T[:, others] @ T[:, others].T
            return Q

        return penalty


def check_prior(prior: Any) -> Any:
    """``"leadfield"`` -> :class:`LeadfieldPrior`; None; or an object with ``penalty``."""
    if isinstance(prior, str):
        if prior != "leadfield":
            raise ValueError(f"prior must be 'leadfield', None or an object with a penalty(context) "
                             f"method, got {prior!r}")
        return LeadfieldPrior()
    if prior is None or callable(getattr(prior, "penalty", None)):
        return prior
    raise TypeError(f"prior must be 'leadfield', None or an object with a penalty(context) method, "
                    f"got {type(prior).__name__}")
