"""Simulated multi-modal observations with latent causal variables and the ground truth.

The generative model follows Sun et al. (ICLR 2025): every modality has its own block of
latent variables; latents are linked by a sparse *cross-modal* DAG (and optionally by
edges inside a modality); each modality is observed through its own invertible nonlinear
mixing function.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.utils import Bunch, check_random_state

from crl_neuro.core.validation import check_choice, check_float, check_int

__all__ = ["simulate_multimodal", "structurally_identifiable"]


def _per_modality(value: Any, n_modalities: int, name: str, min_value: int) -> list[int]:
    """Expand an int (same for all) or a sequence (one per modality) to a list of ints."""
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != n_modalities:
            raise ValueError(f"{name} must have one entry per modality ({n_modalities}), got {len(value)}")
        return [check_int(v, name, min_value=min_value) for v in value]
    return [check_int(value, name, min_value=min_value)] * n_modalities


def _well_conditioned(rng: np.random.RandomState, n_out: int, n_in: int) -> np.ndarray:
    """Random matrix with orthonormal directions and singular values in [1, 2] (condition <= 2)."""
    q_out, _ = np.linalg.qr(rng.normal(size=(n_out, n_out)))
    q_in, _ = np.linalg.qr(rng.normal(size=(n_in, n_in)))
    s = rng.uniform(1.0, 2.0, size=min(n_out, n_in))
    return q_out[:, : s.size] @ np.diag(s) @ q_in[:, : s.size].T


def _leaky_relu(x: np.ndarray, slope: float) -> np.ndarray:
    return np.where(x > 0, x, slope * x)


def structurally_identifiable(dag: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Which latents the cross-modal structure singles out inside their modality.

    Latent ``i`` passes when the neighbourhoods (in the moral graph of ``dag``) of its
    neighbours in other modalities meet ``i``'s modality only at ``i``: mixing ``i``
    with another latent of its modality would then add a cross-modal link, which is the
    structural sparsity behind component-wise identifiability (Sun et al., ICLR 2025).
    A latent that fails (e.g. the effect of a link inside its modality with no child
    in another modality, or a latent without cross-modal neighbours) can be replaced by
    a mixture without a denser cross-modal graph; no method can then recover it from
    observational data alone.

    Parameters
    ----------
    dag : ndarray, shape (n_total, n_total)
        Weights of the latent DAG, ``dag[i, j] != 0`` for ``i -> j``.
    block : ndarray, shape (n_total,)
        Modality index of each latent.

    Returns
    -------
    ok : ndarray of bool, shape (n_total,)
    """
    A = np.asarray(dag) != 0
    block = np.asarray(block)
    n = A.shape[0]
    moral = A | A.T
    for j in range(n):
        parents = np.flatnonzero(A[:, j])
        moral[np.ix_(parents, parents)] = True
    np.fill_diagonal(moral, False)
    ok = np.zeros(n, bool)
    for i in range(n):
        same = block == block[i]
        cross_neighbours = np.flatnonzero(moral[i] & ~same)
        if cross_neighbours.size == 0:
            continue
        common = same.copy()
        for c in cross_neighbours:
            common &= moral[c] | (np.arange(n) == c)
        ok[i] = common.sum() == 1 and common[i]
    return ok


def simulate_multimodal(
    n_samples: int = 2000,
    n_modalities: int = 2,
    latent_dims: int | Sequence[int] = 3,
    n_features: int | Sequence[int] | None = None,
    n_layers: int = 1,
    within_edges: int = 1,
    extra_cross_edges: int = 0,
    edge_strength: tuple[float, float] = (0.6, 1.4),
    nonlinearity: float = 0.5,
    slope: float = 0.25,
    noise_std: float = 0.0,
    innovations: str = "gaussian",
    modality_names: Sequence[str] | None = None,
    random_state: Any = None,
) -> Bunch:
    """Simulate several modalities driven by causally related latent variables.

    Generative model:

    1. A random causal order over all latents. Cross-modal edges: every latent of
       modality ``m`` is paired with one latent of modality ``m + 1`` (a chain of
       modalities; a distinct partner per latent where the sizes allow), plus
       ``extra_cross_edges`` random cross-modal edges. Edges point along the causal
       order. This gives every latent its own cross-modal neighbourhood, the structural
       sparsity under which Sun et al. (ICLR 2025) prove component-wise identifiability.
    2. ``within_edges`` random edges inside each modality (where per-modality ICA is
       misspecified: the latents of a modality are dependent).
    3. Nonlinear SEM in causal order: ``z_j = sum_i w_ij g_i(z_i) + e_j`` with
       ``g(u) = u + nonlinearity * tanh(2 u) / 2`` (monotone), exogenous noises ``e_j``
       drawn from ``innovations`` (unit variance), each latent standardised after it is
       generated.
    4. Per-modality mixing: a well-conditioned linear map (``n_features`` x ``k``, singular
       values in [1, 2]) followed by a leaky ReLU, then ``n_layers - 1`` further square
       well-conditioned layers, each followed by a leaky ReLU (invertible for
       ``n_features >= k``); observed features are standardised, plus optional
       Gaussian noise.

    Parameters
    ----------
    n_samples : int
        Number of samples (rows, shared by all modalities).
    n_modalities : int
        Number of modalities (2 to 6).
    latent_dims : int | sequence of int
        Number of latents per modality (same for all, or one per modality).
    n_features : int | sequence of int | None
        Observed features per modality (>= its number of latents); default equal to
        the number of latents (square, invertible mixing).
    n_layers : int
        Number of leaky-ReLU layers of each mixing function.
    within_edges : int
        Number of edges inside each modality (capped by the number of pairs).
    extra_cross_edges : int
        Additional random cross-modal edges on top of the chain pairing.
    edge_strength : tuple of float
        Range of ``|w_ij|``; the strengths are spread evenly over it (random assignment,
        small jitter, random sign) so that no two couplings are equal.
    nonlinearity : float
        Strength of the ``tanh`` term in the SEM functions (0 = linear SEM).
    slope : float
        Negative slope of the leaky ReLUs, in (0, 1].
    noise_std : float
        Standard deviation of the observation noise added to the standardised features.
    innovations : {"gaussian", "laplace", "uniform"}
        Distribution of the exogenous noises of the latent SEM. With Gaussian noises a
        causal link inside a modality is invisible to second-order statistics (a
        modality's latents can be rotated into canonical pairs with the other
        modalities); non-Gaussian noises make the exogenous noises recoverable by
        independence, which :class:`crl_neuro.multimodal.MultiModalCRL` uses with
        ``align="ica"``.
    modality_names : sequence of str | None
        Names of the modalities (default ``"m1"``, ``"m2"``, ...).
    random_state : None | int | numpy RandomState
        Seed; fixes everything.

    Returns
    -------
    bunch : sklearn.utils.Bunch
        ``data``: dict modality -> array (n_samples, n_features_m);
        ``latents``: dict modality -> array (n_samples, k_m);
        ``modalities``: list of names;
        ``truth``: Bunch with ``latent_index`` (list of ``(modality, i)`` naming the rows
        and columns of the graphs), ``latents`` (n_samples, n_total), ``dag``
        (n_total, n_total) weights, ``dag[i, j] != 0`` means latent ``i -> j``;
        ``cross_modal_graph`` (the entries of ``dag`` between different modalities);
        ``within_modality_graph`` (the others); ``identifiable`` (bool per latent, see
        :func:`structurally_identifiable`); ``order`` (the causal order used);
        ``mixing`` (dict modality -> list of layer weight matrices).

    Examples
    --------
    >>> sim = simulate_multimodal(n_samples=500, random_state=0)
    >>> sorted(sim.data), sim.data["m1"].shape, sim.truth.dag.shape
    (['m1', 'm2'], (500, 3), (6, 6))
    """
    n_samples = check_int(n_samples, "n_samples", min_value=10)
    n_modalities = check_int(n_modalities, "n_modalities", min_value=2, max_value=6)
    dims = _per_modality(latent_dims, n_modalities, "latent_dims", 1)
    feats = dims if n_features is None else _per_modality(n_features, n_modalities, "n_features", 1)
    for m, (p, k) in enumerate(zip(feats, dims)):
        if p < k:
            raise ValueError(f"n_features must be >= latent_dims for every modality; modality {m} has {p} < {k}")
    n_layers = check_int(n_layers, "n_layers", min_value=1)
    within_edges = check_int(within_edges, "within_edges", min_value=0)
    extra_cross_edges = check_int(extra_cross_edges, "extra_cross_edges", min_value=0)
    if len(edge_strength) != 2 or not 0 < edge_strength[0] <= edge_strength[1]:
        raise ValueError(f"edge_strength must be (low, high) with 0 < low <= high, got {edge_strength!r}")
    nonlinearity = check_float(nonlinearity, "nonlinearity", min_value=0.0)
    slope = check_float(slope, "slope", min_value=0.0, max_value=1.0, inclusive=True)
    if slope == 0:
        raise ValueError("slope must be > 0 (a zero slope makes the mixing non-invertible)")
    noise_std = check_float(noise_std, "noise_std", min_value=0.0)
    innovations = check_choice(innovations, "innovations", ("gaussian", "laplace", "uniform"))
    if modality_names is None:
        modality_names = [f"m{m + 1}" for m in range(n_modalities)]
    names = [str(n) for n in modality_names]
    if len(names) != n_modalities or len(set(names)) != n_modalities:
        raise ValueError(f"modality_names must be {n_modalities} distinct names, got {modality_names!r}")
    rng = check_random_state(random_state)

    latent_index = [(names[m], i) for m in range(n_modalities) for i in range(dims[m])]
    block = np.array([m for m in range(n_modalities) for _ in range(dims[m])])
    offsets = np.concatenate([[0], np.cumsum(dims)])
    n_total = int(offsets[-1])
    order = rng.permutation(n_total)
    rank = np.empty(n_total, int)
    rank[order] = np.arange(n_total)

    skeleton = np.zeros((n_total, n_total), bool)
    for m in range(n_modalities - 1):
        a = offsets[m] + np.arange(dims[m])
        b = offsets[m + 1] + rng.permutation(dims[m + 1])
        for t in range(max(dims[m], dims[m + 1])):
            i, j = a[t % dims[m]], b[t % dims[m + 1]]
            skeleton[i, j] = skeleton[j, i] = True
    cross_pairs = [(i, j) for i in range(n_total) for j in range(i + 1, n_total)
                   if block[i] != block[j] and not skeleton[i, j]]
    for t in rng.permutation(len(cross_pairs))[:extra_cross_edges]:
        i, j = cross_pairs[t]
        skeleton[i, j] = skeleton[j, i] = True
    for m in range(n_modalities):
        pairs = [(i, j) for i in range(offsets[m], offsets[m + 1]) for j in range(i + 1, offsets[m + 1])]
        for t in rng.permutation(len(pairs))[:within_edges]:
            i, j = pairs[t]
            skeleton[i, j] = skeleton[j, i] = True
    dag = np.zeros((n_total, n_total))
    edges = list(zip(*np.nonzero(np.triu(skeleton))))
    # Strengths spread evenly over the range (random assignment, small jitter): two equal
    # couplings between paired latents would make a rotation of that pair unidentifiable
    # from second-order statistics, a degenerate case the design avoids.
    low, high = edge_strength
    strengths = rng.permutation(np.linspace(low, high, len(edges))) if edges else []
    for (i, j), w in zip(edges, strengths):
        src, dst = (i, j) if rank[i] < rank[j] else (j, i)
        jitter = rng.uniform(-0.02, 0.02) * (high - low)
        dag[src, dst] = (w + jitter) * rng.choice([-1.0, 1.0])

    Z = np.zeros((n_samples, n_total))
    for j in order:
        parents = np.flatnonzero(dag[:, j])
        if innovations == "laplace":
            z = rng.laplace(scale=1 / np.sqrt(2), size=n_samples)
        elif innovations == "uniform":
            z = rng.uniform(-np.sqrt(3), np.sqrt(3), size=n_samples)
        else:
            z = rng.normal(size=n_samples)
        for i in parents:
            z = z + dag[i, j] * (Z[:, i] + nonlinearity * np.tanh(2.0 * Z[:, i]) / 2.0)
        Z[:, j] = (z - z.mean()) / z.std()

    data, latents, mixing = {}, {}, {}
    for m, name in enumerate(names):
        z = Z[:, offsets[m]:offsets[m + 1]]
        weights = [_well_conditioned(rng, feats[m], dims[m])]
        weights += [_well_conditioned(rng, feats[m], feats[m]) for _ in range(n_layers - 1)]
        x = z
        for W in weights:
            x = _leaky_relu(x @ W.T, slope)
        x = (x - x.mean(axis=0)) / x.std(axis=0)
        if noise_std > 0:
            x = x + noise_std * rng.normal(size=x.shape)
        data[name], latents[name], mixing[name] = x, z.copy(), weights

    cross = np.where(block[:, None] != block[None, :], dag, 0.0)
    truth = Bunch(
        latent_index=latent_index,
        latents=Z,
        dag=dag,
        cross_modal_graph=cross,
        within_modality_graph=dag - cross,
        identifiable=structurally_identifiable(dag, block),
        order=order,
        mixing=mixing,
    )
    return Bunch(data=data, latents=latents, modalities=names, truth=truth)
