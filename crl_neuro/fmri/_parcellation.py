"""Array-level engine of :class:`crl_neuro.fmri.CausalROIs` (no Nilearn here).

Steps (each documented where it is implemented):

1. :func:`denoise` - PCA of all voxels' z-scored time courses (runs stacked): ROI
   signals live in a low-dimensional subspace, voxel noise does not. Each voxel's
   coordinates, scaled to unit norm, make Euclidean distance the correlation
   distance of denoised time courses.
2. :func:`ward_labels` - spatially constrained Ward clustering of those coordinates into
   many contiguous pieces (an over-segmentation).
3. :func:`merge_same_variable` - adjacent pieces are merged while they are the same
   variable: the noise-corrected (disattenuated) correlation of their innovations
   (what is new in each at every volume, given the past of all signals, run by run)
   is close to one. Two parts of one ROI share every input and output; a driver and
   the region it drives share slow dynamics but not their innovations.
4. :func:`select_coherent` - the regions whose denoised mean time course is strongest
   are the ROIs; the rest is background. :func:`select_beyond_confounds` (the
   default of :class:`~crl_neuro.fmri.CausalROIs`) counts only the part of that
   signal the background's principal components, the ROI graph's confounds, do not
   explain.
"""

from __future__ import annotations

import numpy as np
from scipy import sparse
from sklearn.cluster import AgglomerativeClustering

from crl_neuro.fmri.roi_graph import _lagged


# time points x voxels summed per block in :func:`denoise` (about 16 MB of float64)
GRAM_BLOCK_ENTRIES = 2**21
# scikit-learn's connectivity-constrained ward_tree holds about 3 kB per voxel
# (700 MB at 235,000 voxels, whatever the number of volumes); above this many
# voxels the over-segmentation runs on slabs of at most this size.
WARD_MAX_VOXELS = 60_000


def zscore_runs(Xs: list[np.ndarray], copy: bool = True) -> list[np.ndarray]:
    """Z-score every column of every run (constant columns become 0); keeps the dtype.

    ``copy=False`` works in place on writeable float arrays (the masker's fresh output,
    which nobody else holds), so whole-brain data are not held twice.
    """
    out = []
    for x in Xs:
        mean = x.mean(axis=0)
        if copy or not x.flags.writeable or not np.issubdtype(x.dtype, np.floating):
            x = x - mean
        else:
            x -= mean
        sd = x.std(axis=0)
        sd[sd == 0] = 1.0
        x /= sd
        out.append(x)
    return out


def denoise(
    Zs: list[np.ndarray], n_components: int, adjacency: sparse.spmatrix | None = None
) -> tuple[np.ndarray, list[np.ndarray]]:
    """Leading principal components of the stacked runs, without stacking them.

    The (time x time) Gram matrix is assembled block by block from the runs, so memory
    stays at the size of the data plus ``n_times**2``.

    Returns
    -------
    coords : ndarray, shape (n_voxels, k)
        Voxel coordinates (right singular vectors times singular values): voxel
        ``v``'s denoised time course is ``scores @ coords[v] / s**2``-scaled.
    scores : list of ndarray, one (n_times_r, k) per run
        Component time courses (left singular vectors times singular values).
    """
    sizes = [z.shape[0] for z in Zs]
    bounds = np.cumsum([0] + sizes)
    n_vox = Zs[0].shape[1]
    W = None
    if adjacency is not None:
        # component time courses from neighbourhood means: a region's signal is kept,
        # white voxel noise shrinks by the neighbourhood size
        W = sparse.csr_matrix(adjacency, dtype=float) + sparse.identity(n_vox, format="csr")
        W = sparse.csr_matrix(sparse.diags(1.0 / np.asarray(W.sum(axis=1)).ravel()) @ W)
    # The Gram matrix is summed over blocks of voxels, so neither the averaged data nor
    # a float64 copy of the runs is ever held whole (at 2 mm whole brain either would
    # cost several times the data). A block's neighbours lie within a window of columns
    # (voxels are in grid order), so each block touches only that window of the runs.
    G = np.zeros((bounds[-1], bounds[-1]))
    step = int(max(16, GRAM_BLOCK_ENTRIES // max(1, bounds[-1])))
    for start in range(0, n_vox, step):
        stop = min(n_vox, start + step)
        if W is None:
            Y = np.vstack([np.asarray(z[:, start:stop], dtype=float) for z in Zs])
        else:
            Wb = W[start:stop]
            lo, hi = int(Wb.indices.min()), int(Wb.indices.max()) + 1
            Wb = Wb[:, lo:hi]
            Y = np.vstack([np.asarray(Wb @ np.asarray(z[:, lo:hi], dtype=float).T).T for z in Zs])
        G += Y @ Y.T
    k = int(min(n_components, G.shape[0] - 1, Zs[0].shape[1]))
    w, U = np.linalg.eigh(G)
    order = np.argsort(w)[::-1][:k]
    s = np.sqrt(np.clip(w[order], 1e-12, None))
    U = U[:, order]
    coords = np.zeros((n_vox, k))
    for i, z in enumerate(Zs):
        coords += np.asarray(z.T @ U[bounds[i] : bounds[i + 1]].astype(z.dtype), dtype=float)  # = V * s
    if adjacency is not None:
        s = np.sqrt(np.clip((coords**2).sum(axis=0), 1e-12, None))  # scale of the raw data
    scores = [U[bounds[i] : bounds[i + 1]] * s for i in range(len(Zs))]
    return coords, scores


def background_components(Zs: list[np.ndarray], background: np.ndarray, n_components: int) -> list[np.ndarray] | None:
    """Per run, the leading principal component time courses of the background voxels.

    The nuisance regressors of aCompCor (Behzadi et al. 2007), taken from the voxels
    that no ROI claims. The (time x time) Gram matrix is summed over blocks of voxels,
    so the background is never copied whole. ``None`` when there is no background or
    ``n_components`` is 0.
    """
    idx = np.flatnonzero(background)
    if n_components <= 0 or idx.size == 0:
        return None
    out = []
    for z in Zs:
        n_t = z.shape[0]
        k = int(min(n_components, idx.size, n_t - 1))
        G = np.zeros((n_t, n_t))
        step = int(max(16, GRAM_BLOCK_ENTRIES // max(1, n_t)))
        for start in range(0, idx.size, step):
            Y = np.asarray(z[:, idx[start : start + step]], dtype=float)
            G += Y @ Y.T
        w, U = np.linalg.eigh(G)
        order = np.argsort(w)[::-1][:k]
        out.append(U[:, order] * np.sqrt(np.clip(w[order], 0.0, None)))
    return out


def _indicator(labels: np.ndarray, K: int, where: np.ndarray | None = None) -> sparse.csr_matrix:
    """(n_voxels, K) 0/1 matrix: voxel ``v`` in cluster ``labels[v]`` (label 0 and voxels
    outside ``where`` have no column); ``Z @ ind`` gives per-cluster sums."""
    live = labels > 0 if where is None else where & (labels > 0)
    return sparse.csr_matrix(
        (np.ones(int(live.sum())), (np.flatnonzero(live), labels[live] - 1)), shape=(labels.size, K)
    )


def cluster_sums(z: np.ndarray, ind: sparse.csr_matrix, block: int = 32) -> np.ndarray:
    """(n_times, K) float64 sums of ``z``'s columns per cluster (``ind`` from
    :func:`_indicator`), in blocks of time points and in ``z``'s own float type, so a
    whole-brain run is never copied or upcast."""
    dtype = z.dtype if np.issubdtype(z.dtype, np.floating) else np.float64
    indT = sparse.csr_matrix(ind.T, dtype=dtype)
    out = np.empty((z.shape[0], ind.shape[1]))
    for t0 in range(0, z.shape[0], block):
        out[t0 : t0 + block] = np.asarray(indT @ np.asarray(z[t0 : t0 + block], dtype=dtype).T).T
    return out


def unit_rows(F: np.ndarray) -> np.ndarray:
    """Rows scaled to unit norm (zero rows stay zero)."""
    nrm = np.linalg.norm(F, axis=1, keepdims=True)
    return F / np.where(nrm > 0, nrm, 1.0)


def ward_labels(F: np.ndarray, connectivity: sparse.spmatrix, n_clusters: int) -> np.ndarray:
    """Spatially constrained Ward clustering; labels 1..n_clusters.

    Connected components of ``connectivity`` are clustered separately (never joined
    by an artificial edge), with clusters allotted in proportion to their sizes (at
    least one each), so every cluster is contiguous. Above ``WARD_MAX_VOXELS`` the
    grid is first cut into slabs of consecutive voxels, each clustered alone into
    ``n_clusters`` pieces. The result may then have more
    than ``n_clusters`` clusters when there are more components than that.
    """
    from scipy.sparse.csgraph import connected_components

    n = F.shape[0]
    if n > WARD_MAX_VOXELS:
        # Masked voxels are in C order, so blocks of consecutive indices are slabs
        # along the first grid axis; clustering each alone bounds ward_tree's
        # memory. Every slab gets ``n_clusters`` pieces (a slab may hold most of
        # the signal); pieces cut at a slab border are adjacent and carry the same
        # signal, so the merge step joins them again.
        C = sparse.csr_matrix(connectivity)
        labels = np.zeros(n, dtype=int)
        for idx in np.array_split(np.arange(n), -(-n // WARD_MAX_VOXELS)):
            labels[idx] = ward_labels(F[idx], C[idx][:, idx], n_clusters) + labels.max()
        return labels
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
    """(K, K) bool: clusters sharing at least one edge of the voxel graph (label 0 ignored)."""
    coo = sparse.coo_matrix(connectivity)
    a, b = labels[coo.row], labels[coo.col]
    K = int(labels.max())
    adj = np.zeros((K + 1, K + 1), bool)
    adj[a, b] = True
    adj = adj[1:, 1:]
    np.fill_diagonal(adj, False)
    return adj | adj.T


def _innovation_projectors(scores: list[np.ndarray], n_lags: int) -> list[np.ndarray]:
    """Per run, the map from a series to its innovation given the past of all components.

    ``y -> y[p:] - past @ coef`` with ``coef`` the ridge regression of ``y[p:]`` on the
    ``n_lags`` past volumes of every component score (the denoised "everything");
    returned as a (n_times_r - p, n_times_r) matrix so it applies to many series at once.
    """
    out = []
    for S in scores:
        S = S - S.mean(axis=0)
        past, _ = _lagged(S, n_lags)
        past = past - past.mean(axis=0)
        G = past.T @ past
        H = past @ np.linalg.solve(G + 1e-3 * np.trace(G) / G.shape[0] * np.eye(G.shape[0]), past.T)
        n = S.shape[0]
        sel = np.zeros((n - n_lags, n))
        sel[np.arange(n - n_lags), np.arange(n_lags, n)] = 1.0
        sel -= 1.0 / (n - n_lags) * sel.sum(axis=0, keepdims=True)  # centre
        out.append(sel - H @ sel)
    return out


def spatial_halves(labels: np.ndarray, positions: np.ndarray) -> np.ndarray:
    """Bool per voxel: which side of its cluster's median plane (normal to the cluster's
    longest axis) it lies on. Halves that are apart in space share little spatially
    smooth noise, unlike random halves, whose neighbouring voxels share it."""
    half = np.zeros(labels.size, bool)
    for k in np.unique(labels[labels > 0]):
        idx = np.flatnonzero(labels == k)
        if idx.size < 2:
            continue
        p = positions[idx] - positions[idx].mean(axis=0)
        axis = np.linalg.svd(p, full_matrices=False)[2][0]
        proj = p @ axis
        order = np.argsort(proj, kind="stable")
        half[idx[order[: idx.size // 2]]] = True
    return half


def merge_same_variable(
    Zs: list[np.ndarray],
    labels: np.ndarray,
    connectivity: sparse.spmatrix,
    scores: list[np.ndarray],
    threshold: float,
    signal: str,
    n_lags: int,
    positions: np.ndarray,
    min_reliability: float = 0.05,
    n_target: int | None = None,
    across_runs: str = "pooled",
) -> np.ndarray:
    """Merge adjacent pieces that carry the same variable.

    For every piece, its mean time course and the means of its two spatial halves
    (:func:`spatial_halves`: spatially smooth noise is then mostly not shared) are
    computed per run, and transformed to innovations (``signal=
    "innovations"``: the part not predicted by the past of every denoised component,
    run by run; see :func:`_innovation_projectors`) or kept as time courses
    (``"timecourses"``). The split-half correlation ``r`` of a piece gives the
    reliability of its mean, ``2r / (1 + r)`` (Spearman-Brown), and the correlation of
    two pieces' means divided by the square root of the product of their reliabilities
    estimates the correlation of their noise-free signals (Spearman's correction for
    attenuation). Adjacent pieces whose corrected correlation is at least
    ``threshold`` are merged, most similar first (sums are additive, so merged pieces
    are updated exactly). ``n_target``: keep merging the most similar adjacent pair
    regardless of ``threshold`` until that many pieces remain.
    """
    K = int(labels.max())
    half = spatial_halves(labels, positions)
    proj = _innovation_projectors(scores, n_lags) if signal == "innovations" else None

    def sums(mask_cols):
        # (n_samples, K) per-piece sums over runs, innovations or centred time courses
        ind = _indicator(labels, K, mask_cols)
        blocks = []
        for i, z in enumerate(Zs):
            m = cluster_sums(z, ind)
            blocks.append(proj[i] @ m if proj is not None else m - m.mean(axis=0))
        rows.append(np.cumsum([0] + [b.shape[0] for b in blocks]))
        return np.concatenate(blocks)

    rows: list[np.ndarray] = []

    live = labels > 0
    full, h1, h2 = sums(live), sums(live & half), sums(live & ~half)
    bnd = rows[0]
    adj = cluster_adjacency(labels, connectivity)
    group = np.arange(K)  # piece -> current group id (a piece index)
    alive = np.ones(K, bool)

    def rel(g):
        a, b = h1[:, g], h2[:, g]
        den = np.sqrt((a @ a) * (b @ b))
        r = (a @ b) / den if den > 0 else 0.0
        return 2 * r / (1 + r) if r > 0 else 0.0

    rels = np.array([rel(g) for g in range(K)])
    norms = np.sqrt((full**2).sum(axis=0))

    def score(a, b):
        if rels[a] < min_reliability or rels[b] < min_reliability or norms[a] == 0 or norms[b] == 0:
            return -np.inf
        if across_runs == "every":
            # one variable in every run: the smallest per-run correlation decides
            cs = []
            for r0, r1 in zip(bnd[:-1], bnd[1:]):
                fa, fb = full[r0:r1, a], full[r0:r1, b]
                den = np.sqrt((fa @ fa) * (fb @ fb))
                cs.append((fa @ fb) / den if den > 0 else 0.0)
            c = min(cs)
        else:
            c = (full[:, a] @ full[:, b]) / (norms[a] * norms[b])
        return c / np.sqrt(rels[a] * rels[b])

    S = np.full((K, K), -np.inf)
    for a, b in zip(*np.nonzero(np.triu(adj, 1))):
        S[a, b] = S[b, a] = score(a, b)
    while alive.sum() > 1:
        a, b = np.unravel_index(np.argmax(S), S.shape)
        forced = n_target is not None and alive.sum() > n_target
        if not forced and S[a, b] < threshold:
            break
        if not np.isfinite(S[a, b]):
            if not forced:
                break
            # no reliable pair left: merge adjacent pieces by time-course similarity
            cand = np.argwhere(np.triu(adj, 1) & alive[:, None] & alive[None, :])
            if cand.size == 0:
                break
            a, b = cand[0]
        full[:, a] += full[:, b]
        h1[:, a] += h1[:, b]
        h2[:, a] += h2[:, b]
        norms[a] = np.sqrt(full[:, a] @ full[:, a])
        rels[a] = rel(a)
        alive[b] = False
        group[group == b] = a
        adj[a] |= adj[b]
        adj[:, a] |= adj[:, b]
        adj[a, a] = False
        adj[b, :] = adj[:, b] = False
        S[b, :] = S[:, b] = -np.inf
        for c in np.flatnonzero(adj[a] & alive):
            S[a, c] = S[c, a] = score(a, c)
        S[a, ~(adj[a] & alive)] = S[~(adj[a] & alive), a] = -np.inf
    _, new = np.unique(group, return_inverse=True)
    out = np.zeros_like(labels)
    out[live] = new[labels[live] - 1] + 1
    return out


def coherence(Zs: list[np.ndarray], labels: np.ndarray) -> np.ndarray:
    """Variance of each cluster's mean z-scored time course (runs pooled), labels 1..K.

    For z-scored voxels this is about the mean correlation between the cluster's
    voxels: high for a region carrying one signal, about ``1 / n_voxels`` for noise.
    """
    K = int(labels.max())
    ind = _indicator(labels, K)
    n = np.asarray(ind.sum(axis=0)).ravel()
    n[n == 0] = 1.0
    tot, cnt = np.zeros(K), 0
    for z in Zs:
        m = cluster_sums(z, ind) / n
        tot += ((m - m.mean(axis=0)) ** 2).sum(axis=0)
        cnt += z.shape[0]
    return tot / cnt


def select_coherent(coords: np.ndarray, labels: np.ndarray, n_keep: int) -> np.ndarray:
    """Keep the ``n_keep`` clusters with the strongest denoised mean signal; the rest is 0.

    A cluster's denoised mean time course is ``scores @ mean(coords[cluster])``; its
    energy ``|mean(coords[cluster])|^2`` (up to the common factor) is what the cluster
    shares in the leading components. Unlike the raw coherence, it does not reward
    small compact clusters of spatially smooth noise: noise that is white in time
    spreads over all components and hardly reaches the leading ones.
    Kept clusters are renumbered 1..n_keep in label order.
    """
    means = _cluster_coord_means(coords, labels)
    return _keep_strongest((means**2).sum(axis=1), labels, n_keep)


def select_beyond_confounds(
    Zs: list[np.ndarray], coords: np.ndarray, scores: list[np.ndarray], labels: np.ndarray,
    n_keep: int, n_confounds: int,
) -> np.ndarray:
    """Keep the ``n_keep`` clusters with the strongest denoised signal beyond the background's.

    The ROI graph regresses the ``n_confounds`` leading principal components of the
    background voxels out of the ROI means (:func:`background_components`), so a
    region whose signal those components explain (a smooth nuisance field, say)
    adds nothing to it. The ROIs are therefore chosen with the graph in mind: after
    :func:`select_coherent`, the background components of that partition are
    regressed, run by run, out of every cluster's denoised mean time course
    (``U @ mean(coords[cluster])``, ``U`` the leading components' unit time courses,
    whose squared norm is :func:`select_coherent`'s energy), and the clusters with the
    most energy left are kept. Without background (or ``n_confounds=0``) this is
    :func:`select_coherent`. Kept clusters are renumbered 1..n_keep in label order.
    """
    means = _cluster_coord_means(coords, labels)
    first = _keep_strongest((means**2).sum(axis=1), labels, n_keep)  # select_coherent
    conf = background_components(Zs, first == 0, n_confounds)
    if conf is None:
        return first
    scale = np.sqrt(sum((sc**2).sum(axis=0) for sc in scores))  # U = scores / scale
    energy = np.zeros(means.shape[0])
    for sc, c in zip(scores, conf):
        D = (sc / np.where(scale > 0, scale, 1.0)) @ means.T  # (n_times_r, K) denoised means
        c = c - c.mean(axis=0)
        D = D - c @ np.linalg.lstsq(c, D, rcond=None)[0]
        energy += (D**2).sum(axis=0)
    return _keep_strongest(energy, labels, n_keep)


def _cluster_coord_means(coords: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """(K, k) mean coordinates of clusters 1..K."""
    ind = _indicator(labels, int(labels.max()))
    n = np.asarray(ind.sum(axis=0)).ravel()
    return np.asarray(ind.T @ coords) / np.where(n > 0, n, 1.0)[:, None]


def _keep_strongest(energy: np.ndarray, labels: np.ndarray, n_keep: int) -> np.ndarray:
    """Labels of the ``n_keep`` clusters of highest ``energy`` renumbered 1..n_keep, the rest 0."""
    keep = np.sort(np.argsort(-energy, kind="stable")[:n_keep]) + 1
    relabel = np.zeros(int(labels.max()) + 1, dtype=int)
    relabel[keep] = np.arange(1, keep.size + 1)
    return relabel[labels]


def split_to_count(Zs: list[np.ndarray], labels: np.ndarray, adj: sparse.csr_matrix, n_clusters: int) -> np.ndarray:
    """Split the largest clusters in two (contiguous Ward on time courses) until ``n_clusters`` exist."""
    labels = labels.copy()
    adj = sparse.csr_matrix(adj)
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


def trim_to_signal(Zs: list[np.ndarray], labels: np.ndarray, connectivity: sparse.spmatrix, z: float = 4.0) -> np.ndarray:
    """Return ROI voxels that do not follow their ROI to the background.

    Each voxel's correlation with the mean of the *other* voxels of its ROI (runs
    pooled) is compared with the correlations of the background voxels with that mean,
    which give the null (voxels without the ROI's signal, with whatever spatially
    smooth or autocorrelated noise the data carry): voxels below the background's
    median plus ``z`` robust standard deviations (1.4826 MAD), and below the midpoint
    of the null's and the ROI voxels' median correlations, leave the ROI. Ward
    pieces are cut by signal, not by noise, so their borders collect a few noise
    voxels; these are what goes. Each ROI then keeps its largest connected part, so
    ROIs stay contiguous. Without background voxels nothing changes.
    """
    from scipy.sparse.csgraph import connected_components

    K = int(labels.max())
    bg = labels == 0
    if K == 0 or bg.sum() < 10:
        return labels
    ind = _indicator(labels, K)
    dot = np.zeros((labels.size, K))  # voxel . ROI sum, runs pooled
    ssq = np.zeros(K)  # |ROI sum|^2
    for zr in Zs:
        s = cluster_sums(zr, ind)  # (n_t, K) ROI sums
        dot += zr.T @ s.astype(zr.dtype) if np.issubdtype(zr.dtype, np.floating) else zr.T @ s
        ssq += (s**2).sum(axis=0)
    n_t = sum(zr.shape[0] for zr in Zs)  # each z-scored voxel has squared norm n_t
    out = labels.copy()
    C = sparse.csr_matrix(connectivity)
    for k in range(K):
        vox = np.flatnonzero(labels == k + 1)
        if vox.size < 3:
            continue
        null = dot[bg, k] / np.sqrt(n_t * ssq[k])
        # leave-one-out: the ROI sum without the voxel itself
        own = dot[vox, k] - n_t
        r = own / np.sqrt(n_t * np.maximum(ssq[k] - 2 * dot[vox, k] + n_t, 1e-12))
        # below the null's tail, and closer to the null than to the ROI's own voxels: at
        # low SNR true voxels correlate weakly too, and must not be cut
        mid = 0.5 * (np.median(null) + np.median(r))
        thr = min(np.median(null) + z * 1.4826 * np.median(np.abs(null - np.median(null))), mid)
        keep = vox[r > thr]
        out[vox] = 0
        if keep.size == 0:
            continue
        _, comp = connected_components(C[keep][:, keep], directed=False)
        out[keep[comp == np.argmax(np.bincount(comp))]] = k + 1
    return out


def innovation_coords(coords: np.ndarray, scores: list[np.ndarray], n_lags: int) -> np.ndarray:
    """Voxel coordinates whose Euclidean geometry is that of the denoised *innovations*.

    A voxel's denoised time course is ``scores @ (coords[v] / s**2)``; its innovation
    (what the past of every component does not predict, run by run,
    :func:`_innovation_projectors`) is ``I @ (coords[v] / s**2)`` with ``I`` the
    projected scores. With ``I.T @ I = L L.T`` (runs pooled), ``coords / s**2 @ L``
    has the innovations' inner products, so unit rows of it give their correlation
    distance without forming any voxel time course.
    """
    proj = _innovation_projectors(scores, n_lags)
    k = coords.shape[1]
    M = np.zeros((k, k))
    for P, S in zip(proj, scores):
        inn = P @ S
        M += inn.T @ inn
    s2 = np.concatenate([(S**2).sum(axis=0, keepdims=True) for S in scores]).sum(axis=0)
    w, U = np.linalg.eigh(M)
    L = U * np.sqrt(np.clip(w, 0.0, None))  # M = L L.T
    return (coords / np.where(s2 > 0, s2, 1.0)) @ L


def absorb_small(Zs: list[np.ndarray], labels: np.ndarray, connectivity: sparse.spmatrix, min_size: int = 4) -> np.ndarray:
    """Merge pieces of fewer than ``min_size`` voxels into an adjacent piece.

    Such pieces are too small to split in halves, so their reliability (and with it
    the same-variable test) is undefined; Ward leaves them where many voxels are
    identical (noise-free or constant voxels). Each goes, smallest first, to the
    adjacent piece whose summed time course it correlates with most (the largest
    adjacent piece when no correlation is defined). Labels are renumbered 1..K.
    """
    labels = labels.copy()
    K = int(labels.max())
    sizes = np.bincount(labels, minlength=K + 1)[1:]
    if K < 2 or sizes[sizes > 0].min() >= min_size:
        return labels
    live = labels > 0
    ind = _indicator(labels, K)
    sums = np.concatenate([cluster_sums(z, ind) for z in Zs])
    sums -= sums.mean(axis=0)
    adj = cluster_adjacency(labels, connectivity)
    group = np.arange(K)
    for a in np.argsort(sizes, kind="stable"):
        if sizes[a] >= min_size or sizes[a] == 0:
            continue
        nb = np.flatnonzero(adj[a])
        if nb.size == 0:
            continue
        na = np.linalg.norm(sums[:, a])
        nn = np.linalg.norm(sums[:, nb], axis=0)
        with np.errstate(invalid="ignore", divide="ignore"):
            c = (sums[:, nb].T @ sums[:, a]) / (nn * na)
        b = nb[np.nanargmax(c)] if np.any(np.isfinite(c)) else nb[np.argmax(sizes[nb])]
        sums[:, b] += sums[:, a]
        sizes[b] += sizes[a]
        sizes[a] = 0
        group[group == a] = b
        adj[b] |= adj[a]
        adj[:, b] |= adj[:, a]
        adj[b, b] = False
        adj[a, :] = adj[:, a] = False
    _, new = np.unique(group, return_inverse=True)
    out = np.zeros_like(labels)
    out[live] = new[labels[live] - 1] + 1
    return out


def parcellate(
    Zs: list[np.ndarray],
    connectivity: sparse.spmatrix,
    positions: np.ndarray,
    n_rois: int,
    *,
    n_components: int,
    n_pieces: int,
    innovation_weight: float = 0.0,
    merge_threshold: float = 0.8,
    merge_signal: str = "innovations",
    n_lags: int = 1,
    local_average: bool = True,
    background: bool = True,
    trim: bool = True,
    across_runs: str = "pooled",
    selection_confounds: int = 0,
) -> np.ndarray:
    """The whole partition (steps 1-4 of the module docstring) on z-scored runs.

    ``selection_confounds > 0`` selects the ROIs by their signal beyond that many
    background components (:func:`select_beyond_confounds`), 0 by their denoised
    energy (:func:`select_coherent`). Returns labels per voxel: 0 background, ROIs
    1..n_rois (at most ``n_rois`` distinct labels; :func:`split_to_count` tops up to
    exactly ``n_rois``).
    """
    coords, scores = denoise(Zs, n_components, connectivity if local_average else None)
    F = unit_rows(coords)
    if innovation_weight > 0:
        F = np.hstack([F, innovation_weight * unit_rows(innovation_coords(coords, scores, n_lags))])
    pieces = absorb_small(Zs, ward_labels(F, connectivity, n_pieces), connectivity)
    labels = merge_same_variable(
        Zs, pieces, connectivity, scores, merge_threshold, merge_signal, n_lags, positions,
        n_target=None if background else n_rois, across_runs=across_runs,
    )
    if background:
        if selection_confounds > 0:
            labels = select_beyond_confounds(Zs, coords, scores, labels, n_rois, selection_confounds)
        else:
            labels = select_coherent(coords, labels, n_rois)
        if trim:
            labels = trim_to_signal(Zs, labels, connectivity)
    return split_to_count(Zs, labels, connectivity, n_rois)
