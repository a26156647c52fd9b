"""Multi-domain latent causal models observed through a nonlinear mixing.

Ground-truth generator for the nonparametric setting of Zhang, Xie, Ng & Zheng
(ICML 2024): latents follow an acyclic structural equation model whose weights,
noise scales and shifts change across domains, and the observations are an
injective multilayer-perceptron (leaky-ReLU) mixing of the latents.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.utils import Bunch, check_random_state

from crl_neuro.core.graphs import intimate_neighbors, is_dag, moral_graph, topological_order
from crl_neuro.core.validation import check_choice, check_int

__all__ = ["simulate_multidomain_latents", "moral_graph", "intimate_neighbours"]

_GRAPHS = ("chain", "y", "collider", "dense")


def intimate_neighbours(markov_network: np.ndarray) -> list[list[int]]:
    """Intimate neighbours of every node of a Markov network, as lists.

    Backward-compatible spelling of :func:`crl_neuro.core.graphs.intimate_neighbors`
    (which returns arrays); see there for the definition.

    Parameters
    ----------
    markov_network : ndarray of bool, shape (n, n)
        Symmetric adjacency of the Markov network.

    Returns
    -------
    neighbours : list of list of int
        ``neighbours[i]`` lists the intimate neighbours of node ``i`` (sorted).
    """
    return [[int(j) for j in nb] for nb in intimate_neighbors(markov_network)]


def _make_dag(graph: Any, n: int, rng: np.random.RandomState) -> np.ndarray:
    """Binary DAG (``dag[i, j]`` means ``i -> j``) in topological order 0..n-1."""
    if isinstance(graph, str):
        check_choice(graph, "graph", _GRAPHS)
        dag = np.zeros((n, n), dtype=bool)
        if graph == "chain":
            for i in range(n - 1):
                dag[i, i + 1] = True
        elif graph == "y":
            # 0 -> 2 <- 1, then a chain 2 -> 3 -> ... (a Y lying on its side)
            if n < 3:
                raise ValueError(f"graph='y' needs n_latents >= 3, got {n}")
            dag[0, 2] = dag[1, 2] = True
            for i in range(2, n - 1):
                dag[i, i + 1] = True
        elif graph == "collider":
            # pairs of parents with a common child: (0, 1) -> 2, (3, 4) -> 5, ...;
            # a leftover node hangs on the previous child.
            for start in range(0, n, 3):
                if start + 2 < n:
                    dag[start, start + 2] = dag[start + 1, start + 2] = True
                elif start > 0:
                    for k in range(start, n):
                        dag[start - 1, k] = True
                elif n == 2:
                    dag[0, 1] = True
        else:  # dense: Erdős–Rényi with expected degree 2, always connected chain backbone
            p = min(1.0, 2.0 / max(n - 1, 1))
            dag = np.triu(rng.rand(n, n) < p, k=1)
            for i in range(n - 1):
                dag[i, i + 1] = True
        return dag
    arr = np.asarray(graph)
    if arr.shape != (n, n):
        raise ValueError(f"graph must be one of {list(_GRAPHS)} or an array of shape ({n}, {n}), "
                         f"got shape {arr.shape}")
    dag = arr != 0
    np.fill_diagonal(dag, False)
    if not is_dag(dag):
        raise ValueError("graph must be acyclic (a DAG); the array contains a cycle")
    return dag


def _leaky_relu(x: np.ndarray, slope: float) -> np.ndarray:
    return np.where(x > 0, x, slope * x)


def _random_well_conditioned(rows: int, cols: int, rng: np.random.RandomState) -> np.ndarray:
    """Random matrix with singular values in [1, 2] (keeps the mixing injective and tame)."""
    U, _ = np.linalg.qr(rng.randn(rows, rows))
    V, _ = np.linalg.qr(rng.randn(cols, cols))
    k = min(rows, cols)
    S = np.zeros((rows, cols))
    S[np.arange(k), np.arange(k)] = rng.uniform(1.0, 2.0, size=k)
    return U @ S @ V.T


def simulate_multidomain_latents(
    n_latents: int = 6,
    n_domains: int = 20,
    n_samples_per_domain: int = 1000,
    graph: str | np.ndarray = "chain",
    noise: str = "laplace",
    n_mixing_layers: int = 2,
    n_features: int | None = None,
    sem: str = "linear",
    negative_slope: float = 0.2,
    random_state: int | np.random.RandomState | None = 0,
) -> Bunch:
    """Simulate latents with domain-changing causal relations and a nonlinear mixing.

    In every domain ``u`` the latents follow the acyclic SEM
    ``z_j = sum_{i in pa(j)} B_u[i, j] f(z_i) + shift_u[j] + sigma_u[j] * eps_j``
    with the *same* DAG but weights ``B_u``, shifts and noise scales drawn anew per
    domain (this is the "sufficient change" the identifiability theory needs). The
    observations are ``X = g(Z)``: an injective MLP with ``n_mixing_layers``
    leaky-ReLU layers (weight matrices with singular values in [1, 2]) followed by a
    linear read-out. ``n_mixing_layers=0`` gives a linear mixing.

    Parameters
    ----------
    n_latents : int
        Number of latent variables (>= 2).
    n_domains : int
        Number of domains (>= 2).
    n_samples_per_domain : int
        Samples drawn in each domain.
    graph : {"chain", "y", "collider", "dense"} | ndarray, shape (n_latents, n_latents)
        The latent DAG: ``"chain"`` 0->1->...; ``"y"`` 0->2<-1 followed by a chain
        from 2; ``"collider"`` groups of two parents with a common child;
        ``"dense"`` a random DAG (expected degree 2) on a chain backbone; or an
        adjacency with ``graph[i, j] != 0`` meaning ``i -> j``.
    noise : {"laplace", "gaussian"}
        Distribution of the exogenous innovations (unit variance).
    n_mixing_layers : int
        Number of leaky-ReLU layers of the mixing MLP (0 = linear mixing).
    n_features : int | None
        Number of observed features (>= ``n_latents``); ``None`` uses ``2 * n_latents``.
    sem : {"linear", "nonlinear"}
        ``f`` is the identity (``"linear"``) or ``tanh`` scaled to unit slope at
        zero (``"nonlinear"``).
    negative_slope : float
        Slope of the leaky ReLU for negative inputs (in (0, 1)).
    random_state : int | RandomState | None
        Seed; the same seed gives the same data and truth.

    Returns
    -------
    data : Bunch
        ``X`` (n_samples, n_features) observations (standardised per feature),
        ``domains`` (n_samples,) int domain labels, ``latents`` (n_samples,
        n_latents) the true latents, and ``truth`` (Bunch): ``dag`` (n_latents,
        n_latents) bool, ``weights`` (n_domains, n_latents, n_latents) ``B_u``,
        ``noise_scales`` and ``shifts`` (n_domains, n_latents),
        ``markov_network`` (n_latents, n_latents) bool (moral graph of the DAG),
        ``intimate_neighbours`` (list of lists), ``mixing`` (Bunch with
        ``weights`` (list of matrices), ``negative_slope``, ``n_layers``,
        ``description``).
    """
    n = check_int(n_latents, "n_latents", min_value=2)
    n_dom = check_int(n_domains, "n_domains", min_value=2)
    n_per = check_int(n_samples_per_domain, "n_samples_per_domain", min_value=2)
    check_choice(noise, "noise", ("laplace", "gaussian"))
    check_choice(sem, "sem", ("linear", "nonlinear"))
    n_layers = check_int(n_mixing_layers, "n_mixing_layers", min_value=0)
    d = 2 * n if n_features is None else check_int(n_features, "n_features", min_value=n)
    if not (isinstance(negative_slope, (int, float)) and 0 < negative_slope < 1):
        raise ValueError(f"negative_slope must be a number in (0, 1), got {negative_slope!r}")
    rng = check_random_state(random_state)

    dag = _make_dag(graph, n, rng)
    order = topological_order(dag)
    # Domain-specific parameters: weights with a random sign and magnitude in
    # [0.5, 1.5] (bounded away from zero so that edges are present in every domain),
    # noise scales in [0.5, 2] and shifts in [-1, 1].
    signs = rng.choice([-1.0, 1.0], size=(n_dom, n, n))
    weights = signs * rng.uniform(0.5, 1.5, size=(n_dom, n, n)) * dag[None]
    scales = rng.uniform(0.5, 2.0, size=(n_dom, n))
    shifts = rng.uniform(-1.0, 1.0, size=(n_dom, n))

    f = (lambda v: v) if sem == "linear" else np.tanh
    Z = np.empty((n_dom * n_per, n))
    domains = np.repeat(np.arange(n_dom), n_per)
    for u in range(n_dom):
        if noise == "laplace":
            eps = rng.laplace(scale=1.0 / np.sqrt(2.0), size=(n_per, n))
        else:
            eps = rng.randn(n_per, n)
        z = np.zeros((n_per, n))
        for j in order:
            pa = np.flatnonzero(dag[:, j])
            z[:, j] = f(z[:, pa]) @ weights[u, pa, j] + shifts[u, j] + scales[u, j] * eps[:, j]
        # keep the latent scale comparable across nodes and domains (long chains grow)
        Z[u * n_per:(u + 1) * n_per] = z
    Z /= Z.std(axis=0, keepdims=True)

    mats = []
    h = Z
    in_dim = n
    for _ in range(n_layers):
        W = _random_well_conditioned(d, in_dim, rng)
        mats.append(W)
        h = _leaky_relu(h @ W.T, negative_slope)
        in_dim = d
    W = _random_well_conditioned(d, in_dim, rng)
    mats.append(W)
    X = h @ W.T
    X = (X - X.mean(axis=0)) / X.std(axis=0)

    mn = moral_graph(dag)
    truth = Bunch(
        dag=dag,
        weights=weights,
        noise_scales=scales,
        shifts=shifts,
        markov_network=mn,
        intimate_neighbours=intimate_neighbours(mn),
        mixing=Bunch(
            weights=mats,
            negative_slope=float(negative_slope),
            n_layers=n_layers,
            description=(
                f"{n_layers} leaky-ReLU layer(s) (slope {negative_slope}) of {d} units, "
                "then a linear read-out; output standardised per feature"
            ),
        ),
    )
    return Bunch(X=X, domains=domains, latents=Z, truth=truth)
