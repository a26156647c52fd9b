"""Array-level engine of :class:`crl_neuro.fmri.CausalROIs` (no Nilearn here).

Steps (each documented where it is implemented):

1. :func:`coherent_voxels` - background rule: a voxel is foreground when its time
   course correlates with the mean of its spatial neighbours more than a
   circular-shift null allows.
2. :func:`causal_role_features` - per voxel, a denoised signature of its causal role:
   the direction of its (PCA-denoised) time course *and* of its one-step innovation
   (the part not predicted by the past of all signals, per run). Voxels of one ROI share
   both; a driven region shares the driver's slow time course but not its innovations.
3. :func:`agglomerate` - spatially constrained Ward clustering of these signatures into
   ``n_init`` contiguous clusters, then merging of adjacent clusters while the merged
   partition keeps the VAR abstraction closest to exact
   (:func:`crl_neuro.core.abstraction.var_abstraction_error_from_data`).
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.cluster import AgglomerativeClustering
from sklearn.utils.extmath import randomized_svd

from crl_neuro.core.abstraction import var_abstraction_error_from_data


def zscore_runs(Xs: list[np.ndarray]) -> list[np.ndarray]:
    """Z-score every column of every run (constant columns become 0)."""
    out = []
    for x in Xs:
        x = x - x.mean(axis=0)
        sd = x.std(axis=0)
        sd[sd == 0] = 1.0
        out.append(x / sd)
    return out


def _neighbour_mean(x: np.ndarray, adj: sparse.csr_matrix) -> np.ndarray:
    deg = np.asarray(adj.sum(axis=1)).ravel()
    deg[deg == 0] = 1.0
    return (adj @ x.T).T / deg


def _colcorr(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    den = np.sqrt((a**2).sum(0) * (b**2).sum(0))
    den[den == 0] = np.inf
    return (a * b).sum(0) / den


def coherent_voxels(
    Zs: list[np.ndarray], adj: sparse.csr_matrix, alpha: float, n_perm: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray, float]:
    """Local-coherence test of every voxel against a circular-shift null.

    The statistic of voxel ``v`` is the correlation (over all runs) between its
    z-scored time course and the mean time course of its face neighbours. The null
    distribution breaks the temporal alignment by circularly shifting the neighbour
    mean by a random lag (per run), which keeps both autocorrelations; it is pooled
    over voxels and permutations. A voxel is foreground when its statistic exceeds
    the ``1 - alpha`` quantile of the null.

    Returns
    -------
    foreground : ndarray of bool, shape (n_voxels,)
    stat : ndarray, shape (n_voxels,)
    threshold : float
    """
    nbr = [_neighbour_mean(z, adj) for z in Zs]
    Z = np.concatenate(Zs)
    stat = _colcorr(Z, np.concatenate(nbr))
    null = []
    for _ in range(n_perm):
        shifted = []
        for m in nbr:
            n = m.shape[0]
            shift = int(rng.integers(max(1, n // 4), max(2, n - n // 4)))
            shifted.append(np.roll(m, shift, axis=0))
        null.append(_colcorr(Z, np.concatenate(shifted)))
    null = np.concatenate(null)
    thr = float(np.quantile(null, 1.0 - alpha))
    return stat > thr, stat, thr


def _lagged(x: np.ndarray, p: int) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[0]
    past = np.concatenate([x[p - i - 1 : n - i - 1] for i in range(p)], axis=1)
    return past, x[p:]


def _sqrtm_psd(C: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh((C + C.T) / 2)
    return (V * np.sqrt(np.clip(w, 0, None))) @ V.T


def causal_role_features(
    Zs: list[np.ndarray],
    n_components: int,
    n_lags: int,
    innovation_weight: float,
    random_state: int,
) -> tuple[np.ndarray, list[np.ndarray], np.ndarray]:
    """Per-voxel causal-role signatures.

    The voxels' z-scored runs are stacked and reduced by PCA to ``n_components``
    (denoising: ROI signals live in a low-dimensional subspace, voxel noise does not).
    Voxel ``v`` has coordinates ``c_v`` in that subspace. For every run ``r`` with
    component scores ``S_r``, a VAR(``n_lags``) of ``S_r`` gives innovations ``E_r``.
    The signature of ``v`` concatenates, over runs, the unit vectors
    ``c_v Cov(S_r)^{1/2}`` (direction of its denoised time course: what
    correlation-based parcellation uses) and ``innovation_weight * c_v Cov(E_r)^{1/2}``
    (direction of its innovation: its own exogenous input, i.e. what is new in it
    given the past of everything). Euclidean distances between signatures are
    therefore correlation distances between denoised time courses and between
    innovations, run by run, so changes of inputs across runs separate voxels too.

    Returns
    -------
    features : ndarray, shape (n_voxels, n_runs * 2 * n_components)
    scores : list of ndarray, one (n_times_r, n_components) per run
    coords : ndarray, shape (n_voxels, n_components)
    """
    Z = np.concatenate(Zs)
    k = int(min(n_components, min(Z.shape) - 1))
    U, s, Vt = randomized_svd(Z, k, random_state=random_state, n_iter=4)
    coords = Vt.T  # (n_voxels, k): voxel v's time course ~ scores @ coords[v]
    scores, start = [], 0
    for z in Zs:
        scores.append(U[start : start + z.shape[0]] * s)
        start += z.shape[0]
    feats = []
    for S in scores:
        S = S - S.mean(axis=0)
        past, now = _lagged(S, n_lags)
        G = past.T @ past
        coef = np.linalg.solve(G + 1e-3 * np.trace(G) / G.shape[0] * np.eye(G.shape[0]), past.T @ now)
        E = now - past @ coef
        for C, w in ((S.T @ S / S.shape[0], 1.0), (E.T @ E / E.shape[0], innovation_weight)):
            f = coords @ _sqrtm_psd(C)
            nrm = np.linalg.norm(f, axis=1, keepdims=True)
            nrm[nrm == 0] = 1.0
            feats.append(w * f / nrm)
    F = np.concatenate(feats, axis=1) / np.sqrt(len(Zs))
    return F, scores, coords


def ward_labels(F: np.ndarray, connectivity: sparse.spmatrix, n_clusters: int) -> np.ndarray:
    """Spatially constrained Ward clustering; labels 1..n_clusters.

    Connected components of ``connectivity`` are clustered separately (never joined
    by an artificial edge), with clusters allotted in proportion to their sizes (at
    least one each), so every cluster is contiguous. The result may then have more
    than ``n_clusters`` clusters when there are more components than that.
    """
    from scipy.sparse.csgraph import connected_components

    n = F.shape[0]
    n_comp, comp = connected_components(connectivity, directed=False)
    if n_comp == 1:
        k = int(min(n_clusters, n))
        if k <= 1:
            return np.ones(n, dtype=int)
        model = AgglomerativeClustering(n_clusters=k, connectivity=connectivity, linkage="ward").fit(F)
        return model.labels_ + 1
    sizes = np.bincount(comp)
    alloc = np.maximum(1, np.floor(n_clusters * sizes / n).astype(int))
    # hand out the remaining clusters to the largest components
    for c in np.argsort(-sizes)[: max(0, n_clusters - int(alloc.sum()))]:
        alloc[c] += 1
    labels = np.zeros(n, dtype=int)
    nxt = 0
    C = sparse.csr_matrix(connectivity)
    for c in range(n_comp):
        idx = np.flatnonzero(comp == c)
        k = int(min(alloc[c], idx.size))
        if k <= 1:
            sub = np.zeros(idx.size, dtype=int)
        else:
            sub = AgglomerativeClustering(
                n_clusters=k, connectivity=C[idx][:, idx], linkage="ward"
            ).fit(F[idx]).labels_
        labels[idx] = sub + nxt + 1
        nxt += int(sub.max()) + 1
    return labels


def cluster_adjacency(labels: np.ndarray, connectivity: sparse.spmatrix) -> np.ndarray:
    """(K, K) bool: clusters sharing at least one edge of the voxel graph."""
    coo = sparse.coo_matrix(connectivity)
    a, b = labels[coo.row], labels[coo.col]
    K = int(labels.max())
    adj = np.zeros((K + 1, K + 1), bool)
    adj[a, b] = True
    adj = adj[1:, 1:]
    np.fill_diagonal(adj, False)
    return adj | adj.T


def merge_by_abstraction(
    Zs: list[np.ndarray],
    F: np.ndarray,
    init_labels: np.ndarray,
    connectivity: sparse.spmatrix,
    n_clusters: int,
    error_weight: float,
) -> np.ndarray:
    """Greedy merging of adjacent clusters, penalising loss of abstraction exactness.

    Each candidate merge of two adjacent clusters ``a`` and ``b`` costs its Ward
    increase (``n_a n_b / (n_a + n_b) ||mu_a - mu_b||^2`` on the signatures, normalised
    by the total within-cluster inertia) plus ``error_weight`` times the increase of
    the data abstraction error of the partition of clusters into the merged groups
    (micro = current clusters' mean time courses, macro = merged groups;
    :func:`crl_neuro.core.abstraction.var_abstraction_error_from_data`). Two parts of
    one ROI merge at no abstraction cost; a driver and its driven neighbour carry
    different predictive information about the rest and are kept apart. Pieces that
    do not touch are only merged once no touching pair is left.
    """
    labels = init_labels.copy()
    K0 = int(labels.max())
    micro = [np.stack([z[:, labels == k].mean(axis=1) for k in range(1, K0 + 1)], axis=1) for z in Zs]
    groups = np.arange(1, K0 + 1)  # micro cluster -> current group
    adj0 = cluster_adjacency(labels, connectivity)
    sizes0 = np.bincount(labels, minlength=K0 + 1)[1:].astype(float)
    mus0 = np.stack([F[labels == k].mean(axis=0) for k in range(1, K0 + 1)])
    scale = float(((F - F.mean(axis=0)) ** 2).sum()) / max(F.shape[0], 1)

    def err_of(g: np.ndarray) -> float:
        _, g = np.unique(g, return_inverse=True)
        return var_abstraction_error_from_data(micro, g + 1)["error"]

    base = err_of(groups)
    while len(np.unique(groups)) > n_clusters:
        ids = np.unique(groups)
        best, best_cost = None, np.inf
        # contiguity first: pieces that touch are merged before distant ones
        any_adjacent = any(
            adj0[np.ix_(groups == a, groups == b)].any() for ia, a in enumerate(ids) for b in ids[ia + 1 :]
        )
        for ia, a in enumerate(ids):
            ma = groups == a
            for b in ids[ia + 1 :]:
                mb = groups == b
                adjacent = bool(adj0[np.ix_(ma, mb)].any())
                if not adjacent and any_adjacent:
                    continue
                na, nb = sizes0[ma].sum(), sizes0[mb].sum()
                mua = (sizes0[ma, None] * mus0[ma]).sum(0) / na
                mub = (sizes0[mb, None] * mus0[mb]).sum(0) / nb
                ward = na * nb / (na + nb) * float(((mua - mub) ** 2).sum()) / (scale * F.shape[0])
                g = groups.copy()
                g[mb] = a
                cost = ward + error_weight * max(err_of(g) - base, 0.0)
                if cost < best_cost:
                    best, best_cost = (a, b), cost
        a, b = best
        groups[groups == b] = a
        base = err_of(groups)
    _, g = np.unique(groups, return_inverse=True)
    return (g + 1)[labels - 1]


def robust_z(stat: np.ndarray) -> np.ndarray:
    """Robust z-score against the bulk of the values (Efron-style empirical null).

    Most voxels of a brain mask carry no ROI signal, so the median and the
    MAD-derived scale of a voxel statistic describe its null distribution,
    whatever spatially smooth nuisance or autocorrelation inflates it.
    """
    med = np.median(stat)
    dev = np.abs(stat - med)
    mad = 1.4826 * np.median(dev)
    if mad <= 0:
        # degenerate bulk (e.g. noise-free background): any deviation is significant
        off = dev[dev > 0]
        mad = 1.4826 * np.median(off) * 1e-3 if off.size else 1.0
    return (stat - med) / mad


def local_coherence(Zs: list[np.ndarray], adj: sparse.csr_matrix, n_steps: int = 1) -> np.ndarray:
    """Correlation of each voxel with the mean of its neighbours (``n_steps`` graph steps).

    ``adj`` must have a zero diagonal, so a voxel's own noise never enters its
    neighbourhood mean.
    """
    A = adj.copy()
    for _ in range(n_steps - 1):
        A = A + A @ adj
    A = A.tocsr()
    A.setdiag(0)
    A.eliminate_zeros()
    A.data[:] = 1.0
    nbr = [_neighbour_mean(z, A) for z in Zs]
    return _colcorr(np.concatenate(Zs), np.concatenate(nbr))


def grow_rois(
    Zs: list[np.ndarray], core: np.ndarray, adj: sparse.csr_matrix, threshold: float
) -> tuple[np.ndarray, np.ndarray]:
    """Second background pass: attach voxels that carry an ROI's signal to that ROI.

    Every voxel's correlation with each ROI's mean time course (over its core voxels,
    all runs) is computed; its best correlation is robustly z-scored against the
    whole mask (:func:`robust_z`). Voxels above ``threshold`` join the ROI they
    correlate best with, by region growing from the cores (so ROIs stay contiguous);
    core voxels whose best ROI is not their own and whose own statistic is below
    threshold become background.

    Returns
    -------
    labels : ndarray of int, shape (n_voxels,)
    score : ndarray, shape (n_voxels,) robust z of the best correlation.
    """
    K = int(core.max())
    Z = np.concatenate(Zs)
    R = np.stack([Z[:, core == k].mean(axis=1) for k in range(1, K + 1)], axis=1)
    R = (R - R.mean(0)) / np.where(R.std(0) > 0, R.std(0), 1.0)
    C = (Z.T @ R) / Z.shape[0]  # (n_voxels, K) correlations (Z is z-scored per run)
    best = np.argmax(C, axis=1) + 1
    score = robust_z(C.max(axis=1))
    cand = score > threshold
    labels = np.where(core > 0, core, 0)
    # drop core voxels that carry no ROI signal at all (isolated false positives)
    labels[(labels > 0) & ~cand & (score < 0)] = 0
    indptr, indices = adj.indptr, adj.indices
    frontier = np.flatnonzero(labels > 0)
    while frontier.size:
        new = []
        for v in frontier:
            for u in indices[indptr[v] : indptr[v + 1]]:
                if labels[u] == 0 and cand[u] and best[u] == labels[v]:
                    labels[u] = labels[v]
                    new.append(u)
        frontier = np.array(new, dtype=int)
    return labels, score


def drop_small_components(keep: np.ndarray, adj: sparse.csr_matrix, min_size: int) -> np.ndarray:
    """Remove connected pieces of ``keep`` (on the voxel graph) smaller than ``min_size``.

    Isolated voxels that pass a voxel-wise test by chance are not regions.
    """
    from scipy.sparse.csgraph import connected_components

    idx = np.flatnonzero(keep)
    if idx.size == 0 or min_size <= 1:
        return keep.copy()
    _, comp = connected_components(adj[idx][:, idx], directed=False)
    sizes = np.bincount(comp)
    out = np.zeros_like(keep)
    out[idx[sizes[comp] >= min_size]] = True
    return out


def remove_background_components(
    Zs: list[np.ndarray], background: np.ndarray, n_components: int | str, random_state: int,
    max_check: int = 10,
) -> tuple[list[np.ndarray], int]:
    """Regress out the strong components of background voxels (CompCor-like nuisance removal).

    ``background`` marks voxels that very likely carry no ROI signal (lowest local
    coherence). Their principal components are nuisance (physiological-like
    fluctuations shared across the brain) plus noise. ``n_components="auto"`` keeps the
    components whose eigenvalue exceeds the Marchenko-Pastur upper edge
    ``(1 + sqrt(n_voxels / n_samples))^2`` of unit-variance white noise (the
    strongest ``max_check`` at most); an int keeps that many; 0 does nothing. Their time
    courses are regressed out of every voxel, run by run (Behzadi et al. 2007 use the
    same idea with anatomical noise masks).
    """
    if n_components == 0 or background.sum() < 3:
        return Zs, 0
    Z = np.concatenate(Zs)[:, background]
    n, V = Z.shape
    k = int(min(max_check if n_components == "auto" else n_components, min(Z.shape) - 1))
    if k < 1:
        return Zs, 0
    U, s, _ = randomized_svd(Z, k, random_state=random_state, n_iter=4)
    if n_components == "auto":
        edge = (1.0 + np.sqrt(V / n)) ** 2
        sel = np.flatnonzero(s**2 / n > edge)
    else:
        sel = np.arange(k)
    if sel.size == 0:
        return Zs, 0
    out, start = [], 0
    for z in Zs:
        u = U[start : start + z.shape[0], sel]
        start += z.shape[0]
        u = u - u.mean(axis=0)
        coef, *_ = np.linalg.lstsq(u, z, rcond=None)
        out.append(z - u @ coef)
    return zscore_runs(out), int(sel.size)


def split_to_count(Zs: list[np.ndarray], labels: np.ndarray, adj: sparse.csr_matrix, n_clusters: int) -> np.ndarray:
    """Split the largest clusters in two (contiguous Ward on time courses) until ``n_clusters`` exist."""
    labels = labels.copy()
    while 0 < len(np.unique(labels[labels > 0])) < n_clusters:
        ks = np.unique(labels[labels > 0])
        big = ks[np.argmax([np.sum(labels == k) for k in ks])]
        vox = np.flatnonzero(labels == big)
        if vox.size < 2:
            break
        X = np.concatenate([z[:, vox] for z in Zs]).T
        sub = ward_labels(X, adj[vox][:, vox], 2)
        labels[vox[sub >= 2]] = labels.max() + 1
    return labels
