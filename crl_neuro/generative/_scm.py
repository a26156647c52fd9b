"""Attribute-level additive-noise SCM: per-attribute polynomial regressions on parents.

Abduction of a continuous attribute's exogenous noise is its residual; a binary
attribute follows ``a = 1[U < p(parents)]`` with ``U ~ Uniform(0, 1)``, and its noise is
abducted by drawing ``U`` from its posterior given the observed value.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.preprocessing import PolynomialFeatures

from crl_neuro.core.graphs import topological_order


def orient_to_dag(adj: np.ndarray) -> np.ndarray:
    """Turn a CPDAG adjacency (undirected = both ways) into a DAG.

    Directed edges are kept first; undirected ones are oriented from the earlier to the
    later column; any edge that would close a cycle is dropped.
    """
    adj = np.asarray(adj) != 0
    k = len(adj)
    directed = adj & ~adj.T
    undirected = np.triu(adj & adj.T, 1)
    out = np.zeros((k, k), bool)
    for edges in (directed, undirected):
        for i, j in zip(*np.nonzero(edges)):
            out[i, j] = True
            try:
                topological_order(out)
            except ValueError:
                out[i, j] = False
    return out.astype(float)


def descendants(adj: np.ndarray, i: int) -> set[int]:
    """Indices of the strict descendants of node ``i``."""
    adj = np.asarray(adj) != 0
    seen, stack = set(), [i]
    while stack:
        for j in np.flatnonzero(adj[stack.pop()]):
            if int(j) not in seen:
                seen.add(int(j))
                stack.append(int(j))
    return seen


def _features(P: np.ndarray, powers: np.ndarray) -> np.ndarray:
    if P.shape[1] == 0:
        return np.zeros((P.shape[0], 0))
    return np.prod(P[:, None, :] ** powers[None], axis=2)


def fit_mechanisms(
    A: np.ndarray, adj: np.ndarray, binary: list[bool], degree: int, alpha: float
) -> list[dict[str, Any]]:
    """Fit one mechanism per attribute (JSON-able dicts) on standardized attributes ``A``."""
    mechs = []
    for j in range(A.shape[1]):
        parents = [int(p) for p in np.flatnonzero(adj[:, j])]
        P = A[:, parents]
        if parents:
            powers = PolynomialFeatures(degree, include_bias=False).fit(P).powers_
        else:
            powers = np.zeros((0, 0), int)
        F = _features(P, powers)
        if binary[j]:
            y = A[:, j] > 0
            if F.shape[1] and len(np.unique(y)) == 2:
                lr = LogisticRegression(C=1.0 / max(alpha, 1e-8), max_iter=1000).fit(F, y)
                coef, intercept = lr.coef_[0], float(lr.intercept_[0])
            else:
                p = np.clip(y.mean(), 1e-3, 1 - 1e-3)
                coef, intercept = np.zeros(F.shape[1]), float(np.log(p / (1 - p)))
        elif F.shape[1]:
            rg = Ridge(alpha=alpha).fit(F, A[:, j])
            coef, intercept = rg.coef_, float(rg.intercept_)
        else:
            coef, intercept = np.zeros(0), float(A[:, j].mean())
        mechs.append({
            "parents": parents, "powers": np.asarray(powers, int).tolist(),
            "coef": [float(c) for c in coef], "intercept": intercept, "binary": bool(binary[j]),
        })
    return mechs


def _mean(mech: dict[str, Any], A: np.ndarray) -> np.ndarray:
    if not mech["parents"]:
        return np.full(len(A), mech["intercept"])
    P = A[:, mech["parents"]]
    powers = np.asarray(mech["powers"], int).reshape(-1, len(mech["parents"]))
    F = _features(P, powers)
    return F @ np.asarray(mech["coef"], float) + mech["intercept"]


def abduct(mechs: list[dict[str, Any]], A: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Exogenous noise of each row of ``A`` (standardized scale)."""
    E = np.empty_like(A)
    for j, m in enumerate(mechs):
        mu = _mean(m, A)
        if m["binary"]:
            p = 1.0 / (1.0 + np.exp(-mu))
            u = rng.uniform(size=len(A))
            E[:, j] = np.where(A[:, j] > 0, u * p, p + u * (1 - p))
        else:
            E[:, j] = A[:, j] - mu
    return E


def predict(mechs: list[dict[str, Any]], E: np.ndarray, order: list[int], do: dict[int, np.ndarray]) -> np.ndarray:
    """Attributes from noise ``E`` under ``do`` (index -> values), in topological ``order``."""
    A = np.zeros_like(E)
    for j in order:
        if j in do:
            A[:, j] = do[j]
            continue
        mu = _mean(mechs[j], A)
        if mechs[j]["binary"]:
            p = 1.0 / (1.0 + np.exp(-mu))
            A[:, j] = np.where(E[:, j] < p, 1.0, -1.0)
        else:
            A[:, j] = mu + E[:, j]
    return A
