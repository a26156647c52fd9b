"""causal-learn's latent-structure methods (RLCD port, GIN), converted to this package's format."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

__all__ = ["run_causallearn", "efa_clusters"]


def _from_causallearn_adjacency(adj: np.ndarray, names: list[str], n_obs: int) -> dict[str, Any]:
    """Latents, indicators and latent graph from causal-learn's endpoint matrix.

    causal-learn's convention: ``adj[i, j] == -1 and adj[j, i] == 1`` means i → j;
    any other non-zero pair is an undirected (or unoriented) edge.
    """
    k_all = adj.shape[0]
    lat_idx = list(range(n_obs, k_all))
    lat_names = [names[i] for i in lat_idx]
    indicators: dict[str, list[str]] = {nm: [] for nm in lat_names}
    for li, nm in zip(lat_idx, lat_names):
        for j in range(n_obs):
            if adj[li, j] == -1 and adj[j, li] == 1:
                indicators[nm].append(names[j])
    S = np.zeros((len(lat_idx), len(lat_idx)), dtype=int)
    for a, ia in enumerate(lat_idx):
        for b, ib in enumerate(lat_idx):
            if a == b or (adj[ia, ib] == 0 and adj[ib, ia] == 0):
                continue
            if adj[ia, ib] == -1 and adj[ib, ia] == 1:
                S[a, b] = 1
            elif adj[ia, ib] == 1 and adj[ib, ia] == -1:
                S[b, a] = 1
            else:
                S[a, b] = S[b, a] = 1
    return {
        "latents": lat_names,
        "indicators": indicators,
        "structure": pd.DataFrame(S, index=lat_names, columns=lat_names),
    }


def run_causallearn(X: np.ndarray, names: list[str], method: str = "causallearn-rlcd", alpha: float = 0.01) -> dict[str, Any]:
    """Run causal-learn's RLCD port or GIN as shipped.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_items)
        Complete, standardised responses.
    names : list of str
        Item names.
    method : {"causallearn-rlcd", "gin"}
        ``causallearn.search.HiddenCausal.RLCD.RLCD`` (default rank tests and
        stage-1 GES) or ``causallearn.search.HiddenCausal.GIN.GIN.GIN`` with the
        HSIC independence test (KCI is far slower at questionnaire sample sizes).
    alpha : float
        Significance level passed to the method.

    Returns
    -------
    result : dict
        ``latents`` (names), ``indicators`` (latent -> items), ``structure``
        (DataFrame, package convention: ``[a, b] != 0 and [b, a] == 0`` ⇒ a → b).
    """
    p = X.shape[1]
    if method == "causallearn-rlcd":
        from causallearn.search.HiddenCausal.RLCD import RLCD

        cg = RLCD(X, node_names=list(names), alpha_dict={r: alpha for r in range(4)})
        adj = np.asarray(cg.adjacency)
        return _from_causallearn_adjacency(adj, list(cg.all_vars), p)
    if method == "gin":
        from causallearn.search.HiddenCausal.GIN.GIN import GIN

        G, _ = GIN(X, indep_test_method="hsic", alpha=alpha)
        nodes = G.get_nodes()
        node_names = [n.get_name() for n in nodes]
        # GIN names items X1..Xp; put items first, latents after
        obs = [f"X{i + 1}" for i in range(p)]
        lat = [nm for nm in node_names if nm not in obs]
        order = [node_names.index(o) if o in node_names else -1 for o in obs] + [node_names.index(nm) for nm in lat]
        full = np.zeros((p + len(lat), p + len(lat)))
        graph = np.asarray(G.graph)
        for a, ia in enumerate(order):
            for b, ib in enumerate(order):
                if ia >= 0 and ib >= 0:
                    full[a, b] = graph[ia, ib]
        return _from_causallearn_adjacency(full, list(names) + lat, p)
    raise ValueError(f"method must be 'causallearn-rlcd' or 'gin', got {method!r}")


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
