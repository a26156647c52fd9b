"""causal-learn's latent-structure methods (RLCD port, GIN), converted to this package's format."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from crl_neuro.core.discovery import gin, rlcd
from crl_neuro.core.graphs import ARROW, TAIL, Graph

__all__ = ["run_causallearn", "efa_clusters"]


def _latent_structure(graph: Graph, names: list[str]) -> dict[str, Any]:
    """Latents, their indicators and the latent graph of a graph with latent nodes.

    An item is an indicator of a latent when the graph has ``latent --> item``; latents
    joined by any other edge than a directed one are joined both ways in ``structure``.
    """
    m = graph.marks
    directed = (m == ARROW) & (m.T == TAIL)  # directed[i, j]: i --> j
    index = {name: k for k, name in enumerate(graph.names)}
    lat_idx = np.flatnonzero(graph.latent)
    lat_names = [graph.names[i] for i in lat_idx]
    indicators = {
        graph.names[li]: [item for item in names if item in index and directed[li, index[item]]]
        for li in lat_idx
    }
    L = np.ix_(lat_idx, lat_idx)
    S = ((m[L] != 0) & ~directed[L].T).astype(int)
    return {
        "latents": lat_names,
        "indicators": indicators,
        "structure": pd.DataFrame(S, index=lat_names, columns=lat_names),
    }


def run_causallearn(X: np.ndarray, names: list[str], method: str = "causallearn-rlcd", alpha: float = 0.01) -> dict[str, Any]:
    """Run causal-learn's RLCD port or GIN as shipped (through :mod:`crl_neuro.core.discovery`).

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_items)
        Complete, standardised responses.
    names : list of str
        Item names.
    method : {"causallearn-rlcd", "gin"}
        ``causallearn.search.HiddenCausal.RLCD.RLCD`` (default rank tests and
        stage-1 GES, item names given to causal-learn; :func:`~crl_neuro.core.discovery.rlcd`)
        or ``causallearn.search.HiddenCausal.GIN.GIN.GIN`` with the HSIC independence
        test (KCI is far slower at questionnaire sample sizes;
        :func:`~crl_neuro.core.discovery.gin`).
    alpha : float
        Significance level passed to the method.

    Returns
    -------
    result : dict
        ``latents`` (names), ``indicators`` (latent -> items), ``structure``
        (DataFrame, package convention: ``[a, b] != 0 and [b, a] == 0`` ⇒ a → b).
    """
    names = list(names)
    if method == "causallearn-rlcd":
        graph = rlcd(X, alpha=alpha, names=names, pass_names=True)
    elif method == "gin":
        graph = gin(X, indep_test="hsic", alpha=alpha, names=names)
    else:
        raise ValueError(f"method must be 'causallearn-rlcd' or 'gin', got {method!r}")
    return _latent_structure(graph, names)


def efa_clusters(X: np.ndarray, n_factors: int = 5, random_state: int | None = 0) -> np.ndarray:
    """Item clusters of an exploratory factor analysis (varimax), the usual psychometric baseline.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_items)
        Complete responses.
    n_factors : int
        Number of factors.
    random_state : int | None
        Seed of :class:`sklearn.decomposition.FactorAnalysis`.

    Returns
    -------
    labels : ndarray of int, shape (n_items,)
        Factor with the largest |loading| for each item.
    """
    from sklearn.decomposition import FactorAnalysis

    Z = (X - X.mean(axis=0)) / X.std(axis=0)
    fa = FactorAnalysis(n_components=n_factors, rotation="varimax", random_state=random_state).fit(Z)
    return np.argmax(np.abs(fa.components_), axis=0)
