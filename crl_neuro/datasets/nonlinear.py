"""Multi-domain latent causal models observed through a nonlinear mixing.

Ground-truth generator for the nonparametric setting of Zhang, Xie, Ng & Zheng
(ICML 2024): latents follow an acyclic structural equation model whose weights,
noise scales and shifts change across domains, and the observations are an
injective multilayer-perceptron (leaky-ReLU or smooth) mixing of the latents.
:func:`draw_multidomain_problem` draws one problem of the randomised benchmark
family (graph, innovation law, what changes, domains, samples, mixing, noise).
"""

from __future__ import annotations

from itertools import combinations
from typing import Any

import numpy as np
from sklearn.utils import Bunch, check_random_state

from crl_neuro.core.graphs import intimate_neighbors, is_dag, moral_graph, topological_order
from crl_neuro.core.multidist import min_domains_condition
from crl_neuro.core.validation import check_choice, check_generator, check_int
from crl_neuro.datasets._noise import unit_variance_noise

__all__ = [
    "simulate_multidomain_latents",
    "draw_multidomain_problem",
    "min_domains_condition",
    "theory_violations",
    "moral_graph",
    "intimate_neighbours",
]

_GRAPHS = ("chain", "y", "collider", "dense", "fork", "random")
_NOISES = ("laplace", "gaussian", "uniform", "student_t")
_CHANGES = ("weights", "noise_scales", "shifts")
_ACTIVATIONS = ("leaky_relu", "smooth")
#: Kinds (latent-DAG families) of :func:`draw_multidomain_problem`.
FAMILY_KINDS = ("chain", "fork", "collider", "random")
#: Largest total number of samples of a family draw (keeps one fit benchmarkable on CPU).
FAMILY_MAX_SAMPLES = 12000


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
        elif graph == "dense":  # Erdős–Rényi, expected degree 2, always connected chain backbone
            p = min(1.0, 2.0 / max(n - 1, 1))
            dag = np.triu(rng.rand(n, n) < p, k=1)
            for i in range(n - 1):
                dag[i, i + 1] = True
        elif graph == "fork":
            # a root with two branches that continue as chains: 0 -> 1, 0 -> 2, 1 -> 3,
            # 2 -> 4, 3 -> 5, ... (a tree; no collider, so the moral graph is the skeleton)
            for k in range(1, n):
                dag[0 if k <= 2 else k - 2, k] = True
        else:  # random: sparse Erdős–Rényi DAG (expected degree 1.5), no backbone
            p = min(1.0, 1.5 / max(n - 1, 1))
            dag = np.triu(rng.rand(n, n) < p, k=1)
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


def _smooth_leaky(x: np.ndarray, slope: float) -> np.ndarray:
    """Smooth, strictly increasing leaky ReLU: ``slope * x + (1 - slope) * softplus(x)``."""
    return slope * x + (1.0 - slope) * np.logaddexp(0.0, x)


def theory_violations(
    n_domains: int, min_domains: int, changes: Any, noise: str, n_edges: int
) -> list[str]:
    """Conditions of the identifiability theory that a multi-domain problem violates.

    Parameters
    ----------
    n_domains : int
        Number of domains.
    min_domains : int
        ``2 n + |M| + 1`` (:func:`min_domains_condition`).
    changes : sequence of str or str
        What changes across domains (``"weights"``, ``"noise_scales"``, ``"shifts"``;
        a ``"+"``-joined string is accepted, as written in benchmark CSVs).
    noise : str
        Innovation law.
    n_edges : int
        Number of edges of the latent DAG.

    Returns
    -------
    violations : list of str
        ``"n_domains"``: fewer than ``min_domains`` domains. ``"sufficient_change"``:
        the DAG has edges but its weights are the same in every domain - the
        innovations ``eps = (I - B^T) z`` (linear in the latents) are then independent
        in every domain, a valid set of latents with an empty Markov network, so the
        sparsest-network criterion of the theory picks them, not ``z`` (in the terms of
        Zhang et al., the second-order derivatives of ``log p(z | u)`` span only ``n``
        directions across domains, fewer than the ``2 n + |M|`` needed); or, with no
        edge, only the means of Gaussian latents change (no second-order change).
    """
    if isinstance(changes, str):
        changes = tuple(c for c in changes.split("+") if c)
    out = []
    if n_domains < min_domains:
        out.append("n_domains")
    if (n_edges > 0 and "weights" not in changes) or (
        tuple(changes) == ("shifts",) and noise == "gaussian"
    ):
        out.append("sufficient_change")
    return out


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
    n_samples_per_domain: int | Any = 1000,
    graph: str | np.ndarray = "chain",
    noise: str = "laplace",
    n_mixing_layers: int = 2,
    n_features: int | None = None,
    sem: str = "linear",
    negative_slope: float = 0.2,
    random_state: int | np.random.RandomState | None = 0,
    *,
    changes: Any = _CHANGES,
    activation: str = "leaky_relu",
    obs_noise: float = 0.0,
    noise_df: float = 5.0,
) -> Bunch:
    """Simulate latents with domain-changing causal relations and a nonlinear mixing.

    In every domain ``u`` the latents follow the acyclic SEM
    ``z_j = sum_{i in pa(j)} B_u[i, j] f(z_i) + shift_u[j] + sigma_u[j] * eps_j``
    with the *same* DAG but weights ``B_u``, shifts and noise scales drawn anew per
    domain (this is the "sufficient change" the identifiability theory needs;
    ``changes`` selects which of the three change). The observations are
    ``X = g(Z)``: an injective MLP with ``n_mixing_layers`` leaky-ReLU (or smooth
    leaky) layers (weight matrices with singular values in [1, 2]) followed by a
    linear read-out, plus optional Gaussian observation noise.
    ``n_mixing_layers=0`` gives a linear mixing.

    The defaults (and any call that leaves the keyword-only options at their
    defaults) give the same data and truth as before these options existed.

    Parameters
    ----------
    n_latents : int
        Number of latent variables (>= 2).
    n_domains : int
        Number of domains (>= 2).
    n_samples_per_domain : int | sequence of int
        Samples drawn in each domain: one number for all, or one per domain.
    graph : {"chain", "y", "collider", "dense", "fork", "random"} | ndarray, shape (n_latents, n_latents)
        The latent DAG: ``"chain"`` 0->1->...; ``"y"`` 0->2<-1 followed by a chain
        from 2; ``"collider"`` groups of two parents with a common child;
        ``"dense"`` a random DAG (expected degree 2) on a chain backbone;
        ``"fork"`` a root with two branches continuing as chains (0->1, 0->2,
        1->3, 2->4, ...); ``"random"`` a sparse random DAG (expected degree 1.5,
        possibly disconnected); or an adjacency with ``graph[i, j] != 0`` meaning
        ``i -> j``.
    noise : {"laplace", "gaussian", "uniform", "student_t"}
        Distribution of the exogenous innovations (unit variance).
    n_mixing_layers : int
        Number of nonlinear layers of the mixing MLP (0 = linear mixing).
    n_features : int | None
        Number of observed features (>= ``n_latents``); ``None`` uses ``2 * n_latents``.
    sem : {"linear", "nonlinear"}
        ``f`` is the identity (``"linear"``) or ``tanh`` scaled to unit slope at
        zero (``"nonlinear"``).
    negative_slope : float
        Slope of the leaky ReLU for negative inputs (in (0, 1)).
    random_state : int | RandomState | None
        Seed; the same seed gives the same data and truth.
    changes : sequence of {"weights", "noise_scales", "shifts"}
        What changes across domains; the others are drawn once (domain 0's values)
        and shared by every domain. Default: all three.
    activation : {"leaky_relu", "smooth"}
        Nonlinearity of the mixing layers: the leaky ReLU, or its smooth, strictly
        increasing version ``s x + (1 - s) softplus(x)`` (``s`` = ``negative_slope``),
        which keeps the mixing invertible and infinitely differentiable.
    obs_noise : float
        Standard deviation of Gaussian observation noise added to each feature,
        relative to that feature's noise-free standard deviation (>= 0; the theory
        assumes 0).
    noise_df : float
        Degrees of freedom of the Student-t innovations (> 2; ``noise="student_t"``).

    Returns
    -------
    data : Bunch
        ``X`` (n_samples, n_features) observations (standardised per feature),
        ``domains`` (n_samples,) int domain labels, ``latents`` (n_samples,
        n_latents) the true latents, and ``truth`` (Bunch): ``dag`` (n_latents,
        n_latents) bool, ``weights`` (n_domains, n_latents, n_latents) ``B_u``,
        ``noise_scales`` and ``shifts`` (n_domains, n_latents),
        ``markov_network`` (n_latents, n_latents) bool (moral graph of the DAG),
        ``intimate_neighbours`` (list of lists), ``identifiable`` (n_latents,) bool
        (latents without intimate neighbours: identified component-wise),
        ``changes`` (tuple), ``noise``, ``obs_noise``, ``mixing`` (Bunch with
        ``weights`` (list of matrices), ``negative_slope``, ``n_layers``,
        ``activation``, ``description``).
    """
    n = check_int(n_latents, "n_latents", min_value=2)
    n_dom = check_int(n_domains, "n_domains", min_value=2)
    if np.ndim(n_samples_per_domain) == 0:
        per = [check_int(n_samples_per_domain, "n_samples_per_domain", min_value=2)] * n_dom
    else:
        per = [check_int(v, "n_samples_per_domain", min_value=2) for v in n_samples_per_domain]
        if len(per) != n_dom:
            raise ValueError(f"n_samples_per_domain must be an int or have one entry per domain "
                             f"({n_dom}), got {len(per)} entries")
    check_choice(noise, "noise", _NOISES)
    check_choice(sem, "sem", ("linear", "nonlinear"))
    check_choice(activation, "activation", _ACTIVATIONS)
    if isinstance(changes, str):
        changes = (changes,)
    changes = tuple(changes)
    for c in changes:
        check_choice(c, "changes", _CHANGES)
    n_layers = check_int(n_mixing_layers, "n_mixing_layers", min_value=0)
    d = 2 * n if n_features is None else check_int(n_features, "n_features", min_value=n)
    if not (isinstance(negative_slope, (int, float)) and 0 < negative_slope < 1):
        raise ValueError(f"negative_slope must be a number in (0, 1), got {negative_slope!r}")
    if not (isinstance(obs_noise, (int, float)) and np.isfinite(obs_noise) and obs_noise >= 0):
        raise ValueError(f"obs_noise must be a finite number >= 0, got {obs_noise!r}")
    if not (isinstance(noise_df, (int, float)) and noise_df > 2):
        raise ValueError(f"noise_df must be a number > 2 (finite variance), got {noise_df!r}")
    rng = check_random_state(random_state)

    dag = _make_dag(graph, n, rng)
    order = topological_order(dag)
    # Domain-specific parameters: weights with a random sign and magnitude in
    # [0.5, 1.5] (bounded away from zero so that edges are present in every domain),
    # noise scales in [0.5, 2] and shifts in [-1, 1]. What does not change is
    # domain 0's value everywhere (drawn the same way so that the seed's stream,
    # and the default output, do not depend on ``changes``).
    signs = rng.choice([-1.0, 1.0], size=(n_dom, n, n))
    weights = signs * rng.uniform(0.5, 1.5, size=(n_dom, n, n)) * dag[None]
    scales = rng.uniform(0.5, 2.0, size=(n_dom, n))
    shifts = rng.uniform(-1.0, 1.0, size=(n_dom, n))
    if "weights" not in changes:
        weights = np.repeat(weights[:1], n_dom, axis=0)
    if "noise_scales" not in changes:
        scales = np.repeat(scales[:1], n_dom, axis=0)
    if "shifts" not in changes:
        shifts = np.repeat(shifts[:1], n_dom, axis=0)

    f = (lambda v: v) if sem == "linear" else np.tanh
    bounds = np.concatenate([[0], np.cumsum(per)])
    Z = np.empty((int(bounds[-1]), n))
    domains = np.repeat(np.arange(n_dom), per)
    for u in range(n_dom):
        eps = unit_variance_noise(rng, noise, (per[u], n), float(noise_df))
        z = np.zeros((per[u], n))
        for j in order:
            pa = np.flatnonzero(dag[:, j])
            z[:, j] = f(z[:, pa]) @ weights[u, pa, j] + shifts[u, j] + scales[u, j] * eps[:, j]
        # keep the latent scale comparable across nodes and domains (long chains grow)
        Z[bounds[u]:bounds[u + 1]] = z
    Z /= Z.std(axis=0, keepdims=True)

    act = _leaky_relu if activation == "leaky_relu" else _smooth_leaky
    mats = []
    h = Z
    in_dim = n
    for _ in range(n_layers):
        W = _random_well_conditioned(d, in_dim, rng)
        mats.append(W)
        h = act(h @ W.T, negative_slope)
        in_dim = d
    W = _random_well_conditioned(d, in_dim, rng)
    mats.append(W)
    X = h @ W.T
    if obs_noise > 0:
        X = X + obs_noise * X.std(axis=0) * rng.randn(*X.shape)
    X = (X - X.mean(axis=0)) / X.std(axis=0)

    mn = moral_graph(dag)
    nbs = intimate_neighbours(mn)
    name = "leaky-ReLU" if activation == "leaky_relu" else "smooth leaky-ReLU (softplus)"
    truth = Bunch(
        dag=dag,
        weights=weights,
        noise_scales=scales,
        shifts=shifts,
        markov_network=mn,
        intimate_neighbours=nbs,
        identifiable=np.array([not nb for nb in nbs], dtype=bool),
        changes=changes,
        noise=noise,
        obs_noise=float(obs_noise),
        mixing=Bunch(
            weights=mats,
            negative_slope=float(negative_slope),
            n_layers=n_layers,
            activation=activation,
            description=(
                f"{n_layers} {name} layer(s) (slope {negative_slope}) of {d} units, "
                "then a linear read-out; output standardised per feature"
            ),
        ),
    )
    return Bunch(X=X, domains=domains, latents=Z, truth=truth)


def _family_dag(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Latent DAG of a family draw, nodes in a random order (``dag[i, j]``: ``i -> j``)."""
    dag = np.zeros((n, n), dtype=bool)
    if kind in ("chain", "fork"):
        dag = _make_dag(kind, n, np.random.RandomState(0))  # deterministic shapes
    elif kind == "collider":
        # a chain in which 1-3 interior nodes are colliders: c-1 -> c <- c+1
        for i in range(n - 1):
            dag[i, i + 1] = True
        interior = np.arange(1, n - 1)
        n_col = int(rng.integers(1, max(1, (n - 2) // 3) + 1))
        chosen: list[int] = []
        for c in rng.permutation(interior):
            if len(chosen) == n_col:
                break
            if all(abs(int(c) - o) > 1 for o in chosen):
                chosen.append(int(c))
        for c in chosen:
            dag[c, c + 1] = False
            dag[c + 1, c] = True
    else:  # random sparse DAG, expected degree 1.5-2.5, at least n // 2 edges
        p = rng.uniform(1.5, 2.5) / (n - 1)
        while True:
            dag = np.triu(rng.random((n, n)) < p, k=1)
            if dag.sum() >= n // 2:
                break
    perm = rng.permutation(n)
    return dag[np.ix_(perm, perm)]


def draw_multidomain_problem(random_state: Any = None, kind: str | None = None) -> dict[str, Any]:
    """Draw one problem of the randomised multi-domain nonlinear-CRL benchmark family.

    Every draw randomises: the latent DAG (``kind``: a chain, a fork - a root with two
    branches continuing as chains -, a chain with 1-3 colliders, or a random sparse
    DAG; 4-10 latents, in a random order), the innovation law (Gaussian, Laplace,
    uniform, Student-t with 3-10 degrees of freedom), what changes across domains (a
    non-empty subset of causal weights, noise scales and means), the number of
    domains (5-40) and of samples per domain (300-3000), the mixing (1-3 leaky-ReLU
    layers or 1-3 smooth invertible "softplus-leaky" layers, negative slope 0.1-0.4),
    the observed dimension (``n_latents`` to ``3 * n_latents``) and the observation
    noise (none in a quarter of the draws, else 1-10 % of each feature's standard
    deviation, log-uniform). The latent SEM is linear in the latents (``sem="linear"``).

    To keep one fit benchmarkable on CPU, the total number of samples is capped at
    ``FAMILY_MAX_SAMPLES`` (12,000): when ``n_domains * n_samples_per_domain`` exceeds
    it, the samples per domain are lowered to ``12000 // n_domains`` (never below 300)
    and ``params["capped"]`` is True.

    Draws that violate the conditions of the identifiability theory (Zhang, Xie, Ng &
    Zheng, ICML 2024) are kept (a benchmark must see them) but flagged, see
    :func:`theory_violations`: ``"n_domains"`` when there are fewer than
    ``2 n + |M| + 1`` domains (:func:`min_domains_condition`), ``"sufficient_change"``
    when the causal weights do not change (then the innovations, a linear function of
    the latents, are an equally valid set of latents with an *empty* Markov network,
    so the true latents are not the sparsest solution). Observation noise (the theory
    assumes a noise-free mixing) is reported in ``noise_free``, not as a violation.

    Parameters
    ----------
    random_state : int | numpy.random.Generator | None
        Seed of the draw; the simulation itself is seeded from it too.
    kind : {"chain", "fork", "collider", "random"} | None
        Force the kind (latent-DAG family) of the draw; ``None`` draws it.

    Returns
    -------
    problem : dict
        ``X`` (n_samples, n_features), ``domains`` (n_samples,) int labels,
        ``latents`` (n_samples, n_latents) the true latents, ``truth`` (Bunch, as
        returned by :func:`simulate_multidomain_latents`: ``dag``,
        ``markov_network`` (the moral graph), ``intimate_neighbours``,
        ``identifiable`` (latents without intimate neighbours), weights, ...),
        ``kind`` (str), ``params`` (dict: the keyword arguments of
        :func:`simulate_multidomain_latents` - ``graph`` as the drawn array,
        ``random_state`` included - plus ``capped``), ``min_domains`` (int,
        ``2 n + |M| + 1``), ``violations`` (list of str, see above), ``theory_ok``
        (bool, no violation) and ``noise_free`` (bool).
    """
    rng = check_generator(random_state)
    if kind is None:
        kind = str(rng.choice(FAMILY_KINDS))
    check_choice(kind, "kind", FAMILY_KINDS)
    n = int(rng.integers(4, 11))
    dag = _family_dag(kind, n, rng)
    noise = str(rng.choice(_NOISES))
    subsets = [c for r in (1, 2, 3) for c in combinations(_CHANGES, r)]
    changes = tuple(subsets[int(rng.integers(len(subsets)))])
    n_domains = int(rng.integers(5, 41))
    n_per = int(rng.integers(300, 3001))
    capped = n_domains * n_per > FAMILY_MAX_SAMPLES
    if capped:
        n_per = max(300, FAMILY_MAX_SAMPLES // n_domains)
    activation = str(rng.choice(_ACTIVATIONS))
    params: dict[str, Any] = dict(
        n_latents=n,
        n_domains=n_domains,
        n_samples_per_domain=n_per,
        graph=dag,
        noise=noise,
        n_mixing_layers=int(rng.integers(1, 4)),
        n_features=int(rng.integers(n, 3 * n + 1)),
        sem="linear",
        negative_slope=float(np.round(rng.uniform(0.1, 0.4), 3)),
        changes=changes,
        activation=activation,
        obs_noise=0.0 if rng.random() < 0.25 else float(np.exp(rng.uniform(np.log(0.01), np.log(0.1)))),
        noise_df=float(rng.integers(3, 11)),
        random_state=int(rng.integers(2**31 - 1)),
    )
    data = simulate_multidomain_latents(**params)
    m_needed = min_domains_condition(data.truth.markov_network)
    violations = theory_violations(n_domains, m_needed, changes, noise, int(dag.sum()))
    return dict(
        X=data.X,
        domains=data.domains,
        latents=data.latents,
        truth=data.truth,
        kind=kind,
        params={**params, "capped": bool(capped)},
        min_domains=m_needed,
        violations=violations,
        theory_ok=not violations,
        noise_free=params["obs_noise"] == 0.0,
    )
