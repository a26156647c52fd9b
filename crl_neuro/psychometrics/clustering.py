"""Indicator clusters: which items measure which latent, and which items are impure.

Step 1 proposes clusters with an exploratory factor analysis on the correlation
matrix (principal-axis factoring, number of factors by parallel analysis, oblimin
rotation); this is fast and robust on real questionnaires. Step 2 fits the
one-factor-per-cluster measurement model and *purifies* it: an item whose
residual correlations with other items are significant (cross-loading or
item-to-item effect: both break the rank-1 constraints of a pure cluster) is
removed from the set of pure indicators, one item at a time, worst first (the
idea of Purify, Silva et al. 2006). Step 3 describes every impure item: its
loadings on all latents and the items it is directly tied to.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = [
    "parallel_analysis",
    "principal_axis",
    "oblimin",
    "propose_clusters",
    "fit_cluster_model",
    "purify",
    "describe_impure_items",
    "within_cluster_ties",
]


def _reduced_eigenvalues(R: np.ndarray) -> np.ndarray:
    """Eigenvalues of the correlation matrix with communalities (SMC) on the diagonal."""
    Rr = R.copy()
    np.fill_diagonal(Rr, 1 - 1 / np.diag(np.linalg.inv(R)))
    return np.linalg.eigvalsh(Rr)[::-1]


def parallel_analysis(R: np.ndarray, n: int, n_iter: int = 20, quantile: float = 0.95, random_state=None) -> int:
    """Number of factors by parallel analysis on the reduced correlation matrix.

    Eigenvalues of ``R`` with squared multiple correlations on the diagonal
    (common-factor version of Horn 1965) are compared with those of random
    normal data of the same size; the count of leading eigenvalues above the
    ``quantile`` of the random ones is returned. The common-factor version does
    not under-factor when the latents are correlated, as the PCA version does.

    Parameters
    ----------
    R : ndarray
        Correlation matrix (p, p).
    n : int
        Sample size.
    n_iter : int
        Random data sets.
    quantile : float
        Quantile of the random eigenvalues to exceed.
    random_state : int | None
        Seed.
    """
    rng = np.random.default_rng(random_state)
    p = R.shape[0]
    rand = np.empty((n_iter, p))
    n_sim = min(n, 4000)  # cap the cost; the spread is rescaled to n below
    for t in range(n_iter):
        Z = rng.standard_normal((n_sim, p))
        rand[t] = _reduced_eigenvalues(np.corrcoef(Z, rowvar=False))
    if n_sim < n:  # sampling spread of eigenvalues scales as 1/sqrt(n)
        centre = rand.mean(axis=0, keepdims=True) * 0
        rand = centre + rand * np.sqrt(n_sim / n)
    thr = np.quantile(rand, quantile, axis=0)
    ev = _reduced_eigenvalues(R)
    above = ev > thr
    return int(np.argmin(above)) if not above.all() else p


def principal_axis(R: np.ndarray, n_factors: int, max_iter: int = 100, tol: float = 1e-5) -> np.ndarray:
    """Principal-axis factoring of a correlation matrix; returns loadings (p, n_factors)."""
    p = R.shape[0]
    try:
        h2 = 1 - 1 / np.diag(np.linalg.inv(R))
    except np.linalg.LinAlgError:
        h2 = np.full(p, 0.5)
    h2 = np.clip(h2, 0.05, 0.995)
    L = np.zeros((p, n_factors))
    for _ in range(max_iter):
        Rr = R.copy()
        np.fill_diagonal(Rr, h2)
        w, V = np.linalg.eigh(Rr)
        w, V = w[::-1][:n_factors], V[:, ::-1][:, :n_factors]
        L = V * np.sqrt(np.clip(w, 1e-8, None))
        new = np.clip((L ** 2).sum(axis=1), 0.005, 0.995)
        if np.max(np.abs(new - h2)) < tol:
            h2 = new
            break
        h2 = new
    return L


def _varimax(L: np.ndarray, max_iter: int = 100, tol: float = 1e-6) -> np.ndarray:
    p, k = L.shape
    if k < 2:
        return L
    # Kaiser normalisation, so that items with small communality count as much
    h = np.sqrt((L ** 2).sum(axis=1, keepdims=True))
    h[h == 0] = 1
    A = L / h
    Rot = np.eye(k)
    d = 0.0
    for _ in range(max_iter):
        B = A @ Rot
        U, s, Vt = np.linalg.svd(A.T @ (B ** 3 - B @ np.diag((B ** 2).sum(axis=0)) / p))
        Rot = U @ Vt
        d_new = s.sum()
        if d_new < d * (1 + tol):
            break
        d = d_new
    return (A @ Rot) * h


def _quartimin(L: np.ndarray) -> tuple[float, np.ndarray]:
    """Quartimin criterion (direct oblimin, gamma = 0) and its gradient."""
    L2 = L ** 2
    N = np.ones((L.shape[1], L.shape[1])) - np.eye(L.shape[1])
    M = L2 @ N
    return float(np.sum(L2 * M) / 4), L * M


def oblimin(L: np.ndarray, max_iter: int = 1000, tol: float = 1e-6) -> tuple[np.ndarray, np.ndarray]:
    """Direct quartimin (oblimin) rotation by gradient projection (Jennrich 2002).

    Oblique rotation matters here: latents that cause one another are correlated,
    and orthogonal-start rotations such as promax can merge strongly correlated
    factors. Starts from the varimax solution.

    Returns
    -------
    pattern : ndarray, shape (p, k)
        Rotated pattern loadings.
    phi : ndarray, shape (k, k)
        Factor correlations.
    """
    k = L.shape[1]
    if k < 2:
        return L, np.eye(k)
    A = _varimax(L)
    T = np.eye(k)
    step = 1.0
    Lr = A.copy()
    f, Gq = _quartimin(Lr)
    G = -(Lr.T @ Gq @ np.linalg.inv(T)).T
    for _ in range(max_iter):
        Gp = G - T @ np.diag(np.sum(T * G, axis=0))
        s = np.linalg.norm(Gp)
        if s < tol:
            break
        step *= 2
        for _ in range(20):  # backtracking line search on the unit-column manifold
            X = T - step * Gp
            Tt = X / np.sqrt(np.sum(X ** 2, axis=0))
            Lt = A @ np.linalg.inv(Tt).T
            ft, Gqt = _quartimin(Lt)
            if ft < f - 0.5 * s ** 2 * step:
                break
            step /= 2
        T, f, Lr, Gq = Tt, ft, Lt, Gqt
        G = -(Lr.T @ Gq @ np.linalg.inv(T)).T
    return Lr, T.T @ T


def propose_clusters(
    R: np.ndarray, n: int, n_factors: int | None = None, min_loading: float = 0.3, random_state=None
) -> tuple[np.ndarray, np.ndarray]:
    """Propose item clusters from an exploratory factor analysis.

    Returns
    -------
    labels : ndarray of int, shape (p,)
        Cluster of each item, -1 for items that load on no factor.
    pattern : ndarray, shape (p, n_factors)
        Rotated pattern loadings.
    """
    if n_factors is None:
        n_factors = max(1, parallel_analysis(R, n, random_state=random_state))
    n_factors = min(n_factors, R.shape[0] // 2)
    pattern, _ = oblimin(principal_axis(R, n_factors))
    labels = np.argmax(np.abs(pattern), axis=1)
    labels[np.max(np.abs(pattern), axis=1) < min_loading] = -1
    # clusters need >= 2 items to identify their latent
    for c in range(n_factors):
        if np.sum(labels == c) < 2:
            labels[labels == c] = -1
    # relabel 0..k-1 in order of first item
    out = np.full_like(labels, -1)
    nxt = 0
    for i, c in enumerate(labels):
        if c >= 0 and out[i] < 0:
            out[labels == c] = nxt
            nxt += 1
    return out, pattern


def _one_factor(Rc: np.ndarray) -> np.ndarray:
    """Loadings of a one-factor model of a cluster's correlation matrix (sign: mostly positive)."""
    m = Rc.shape[0]
    if m == 1:
        return np.ones(1)
    if m == 2:
        lam = np.sqrt(max(abs(Rc[0, 1]), 1e-3)) * np.array([1.0, np.sign(Rc[0, 1]) or 1.0])
    else:
        lam = principal_axis(Rc, 1)[:, 0]
    if lam.sum() < 0:
        lam = -lam
    return lam


def fit_cluster_model(R: np.ndarray, clusters: list[list[int]]) -> tuple[list[np.ndarray], np.ndarray]:
    """One-factor loadings per cluster and the latent correlation matrix.

    The latent correlation of clusters a and b is the least-squares fit of
    ``R[a, b] ≈ phi * lam_a lam_b^T`` (correction for attenuation).
    """
    lams = [_one_factor(R[np.ix_(c, c)]) for c in clusters]
    outside_all = [i for c in clusters for i in c]
    for a, c in enumerate(clusters):
        if len(c) != 2:
            continue
        # Two items alone give only the product lam1 * lam2 = r12; their ratio
        # comes from their correlations with the other clusters' items
        # (r1j / r2j = lam1 / lam2 for pure items).
        out = [j for j in outside_all if j not in c]
        r1, r2 = R[c[0], out], R[c[1], out]
        if out and np.sum(r2 ** 2) > 1e-6:
            ratio = float(np.sum(r1 * r2) / np.sum(r2 ** 2))
            r12 = R[c[0], c[1]]
            if ratio * r12 > 0:
                l1 = np.sqrt(abs(r12 * ratio))
                lam = np.clip(np.array([l1, l1 / ratio]), -0.99, 0.99)
                lams[a] = -lam if lam.sum() < 0 else lam
    k = len(clusters)
    Phi = np.eye(k)
    for a in range(k):
        for b in range(a + 1, k):
            outer = np.outer(lams[a], lams[b])
            phi = np.sum(outer * R[np.ix_(clusters[a], clusters[b])]) / max(np.sum(outer ** 2), 1e-12)
            Phi[a, b] = Phi[b, a] = np.clip(phi, -0.999, 0.999)
    return lams, Phi


def _implied(R: np.ndarray, clusters: list[list[int]], lams, Phi) -> np.ndarray:
    p = R.shape[0]
    Lam = np.zeros((p, len(clusters)))
    for a, (c, lam) in enumerate(zip(clusters, lams)):
        Lam[c, a] = lam
    S = Lam @ Phi @ Lam.T
    return S


def purify(
    R: np.ndarray,
    n: int,
    clusters: list[list[int]],
    alpha: float = 0.01,
    min_residual: float = 0.05,
    min_cluster_size: int = 2,
) -> tuple[list[list[int]], list[int], list[tuple[int, int]]]:
    """Remove impure items until the one-factor-per-cluster model fits.

    A residual correlation is significant when ``|r - r_model| * sqrt(n)`` exceeds
    the Bonferroni-corrected normal quantile for ``alpha`` *and* its size exceeds
    ``min_residual`` (large real samples reject every model; the size floor keeps
    trivial misfit from emptying the clusters).

    Returns
    -------
    pure_clusters : list of list of int
    removed : list of int
        Items removed, in order.
    ties : list of (int, int)
        Pairs of items of one cluster tied beyond their latent (see
        :func:`within_cluster_ties`); one item of each is removed while the
        cluster keeps more than 3 items.
    """
    clusters = [list(c) for c in clusters]
    used = sorted(i for c in clusters for i in c)
    n_pairs = max(len(used) * (len(used) - 1) // 2, 1)
    z_crit = stats.norm.isf(alpha / (2 * n_pairs))
    thr = max(z_crit / np.sqrt(n), min_residual)
    removed: list[int] = []

    def misfit(cl: list[list[int]]) -> tuple[float, np.ndarray, list[int]]:
        lams, Phi = fit_cluster_model(R, cl)
        S = _implied(R, cl, lams, Phi)
        idx = sorted(i for c in cl for i in c)
        E = np.abs((R - S)[np.ix_(idx, idx)])
        np.fill_diagonal(E, 0.0)
        excess = np.clip(E - thr, 0.0, None)
        return float((excess ** 2).sum()), (excess ** 2).sum(axis=1), idx

    total, score, idx = misfit(clusters)
    while total > 0:
        # Try removing each of the worst-fitting items and keep the removal that
        # leaves the least misfit: the item with the largest residuals is not
        # always the culprit (an item-to-item effect inflates its partner's
        # loading, which pushes residuals onto innocent items).
        bad = {idx[j] for j in range(len(idx)) if score[j] > 0}
        order = sorted({i for c in clusters if bad & set(c) for i in c} | bad)
        best = None
        for item in order:
            cl = next(c for c in clusters if item in c)
            if len(cl) <= min_cluster_size:
                continue
            trial = [[i for i in c if i != item] for c in clusters]
            t_total, t_score, t_idx = misfit(trial)
            if best is None or t_total < best[0]:
                best = (t_total, item, trial, t_score, t_idx)
        if best is None:
            break
        total, worst, clusters, score, idx = best
        removed.append(worst)
    # Residuals miss a pair of items tied inside a cluster (the one-factor fit
    # absorbs it into their loadings); its tetrad constraints do not.
    ties: list[tuple[int, int]] = []
    while True:
        found = within_cluster_ties(R, n, clusters, alpha=alpha, min_effect=min_residual)
        if not found:
            break
        counts: dict[int, int] = {}
        for i, j in found:
            counts[i] = counts.get(i, 0) + 1
            counts[j] = counts.get(j, 0) + 1
        cands = [i for i in counts if len(next(c for c in clusters if i in c)) > max(min_cluster_size, 3)]
        if not cands:
            ties += [t for t in found if t not in ties]
            break
        lams, _ = fit_cluster_model(R, clusters)
        lam_of = {i: abs(lam[c.index(i)]) for c, lam in zip(clusters, lams) for i in c}
        # of a tied pair, drop the item tied most often, then the weaker indicator
        worst = max(cands, key=lambda i: (counts[i], -lam_of[i]))
        # record only the removed item's ties: the others are re-tested without it
        ties += [t for t in found if worst in t and t not in ties]
        clusters = [[i for i in c if i != worst] for c in clusters]
        removed.append(worst)
    return clusters, removed, ties


def within_cluster_ties(
    R: np.ndarray, n: int, clusters: list[list[int]], alpha: float = 0.01, min_effect: float = 0.1
) -> list[tuple[int, int]]:
    """Pairs of items of one cluster tied beyond their common latent (rank test).

    For item j of cluster a, every trek between the other items of a and
    {j} ∪ (items of the other clusters) passes through a's latent when the
    cluster is pure, so their cross-covariance has rank 1; a direct tie between
    j and a cluster-mate adds a trek and makes it rank 2. Unlike residuals of a
    one-factor fit (which absorbs a tie into the two loadings) and unlike
    within-cluster tetrads (which cannot tell tie (1, 2) from tie (3, 4) in a
    4-item cluster), this localises the tied items. Items rejected (Bonferroni
    over items, Bartlett's χ², second canonical correlation above
    ``min_effect``) in the same cluster are paired by their largest residual
    correlation. Needs another cluster correlated with ``a`` for power.
    """
    from crl_neuro.psychometrics.rank_tests import canonical_correlations, rank_test_pvalue

    n_items = sum(len(c) for c in clusters)
    flagged: dict[int, list[int]] = {}
    for a, c in enumerate(clusters):
        if len(c) < 3:
            continue
        others = [i for b, cb in enumerate(clusters) if b != a for i in cb]
        if not others:
            continue
        for j in c:
            left = [i for i in c if i != j]
            right = [j] + others
            p = rank_test_pvalue(R, left, right, 1, n)
            if p < alpha / n_items and canonical_correlations(R, left, right)[1] > min_effect:
                flagged.setdefault(a, []).append(j)
    ties = []
    lams, Phi = fit_cluster_model(R, clusters)
    for a, items in flagged.items():
        c, lam = clusters[a], lams[a]
        for j in items:
            # partner: the cluster-mate with the largest residual correlation
            res = {i: abs(R[i, j] - lam[c.index(i)] * lam[c.index(j)]) for i in c if i != j}
            partner = max(res, key=res.get)
            ties.append((min(i for i in (j, partner)), max(j, partner)))
    return sorted(set(ties))


def describe_impure_items(
    R: np.ndarray,
    n: int,
    clusters: list[list[int]],
    impure: list[int],
    main_cluster: dict[int, int],
    min_loading: float = 0.2,
    alpha: float = 0.01,
    min_residual: float = 0.05,
) -> tuple[np.ndarray, list[tuple[int, int]]]:
    """Loadings of impure items on every latent and their direct item-item ties.

    Loadings come from the item's covariances with the latents (estimated through
    the pure indicators, so measurement error does not bias them):
    ``loadings = Phi^{-1} Cov(x, L)``. Loadings below ``min_loading`` other than
    the main one are set to 0. A remaining residual correlation with another item
    (significant and above ``min_residual``) is reported as an item-item effect.

    Returns
    -------
    loadings : ndarray, shape (len(impure), k)
    effects : list of (item, item)
        Pairs of item indices with a direct tie (direction not identified).
    """
    lams, Phi = fit_cluster_model(R, clusters)
    k = len(clusters)
    loadings = np.zeros((len(impure), k))
    for r, i in enumerate(impure):
        cov = np.array([np.sum(lam * R[i, c]) / np.sum(lam ** 2) for c, lam in zip(clusters, lams)])
        lo = np.linalg.solve(Phi, cov)
        keep = np.abs(lo) >= min_loading
        if i in main_cluster and main_cluster[i] >= 0:
            keep[main_cluster[i]] = True
        loadings[r] = np.where(keep, lo, 0.0)
    # full loading matrix for residuals
    p = R.shape[0]
    Lam = np.zeros((p, k))
    for a, (c, lam) in enumerate(zip(clusters, lams)):
        Lam[c, a] = lam
    for r, i in enumerate(impure):
        Lam[i] = loadings[r]
    S = Lam @ Phi @ Lam.T
    used = sorted(set(i for c in clusters for i in c) | set(impure))
    n_pairs = max(len(used) * (len(used) - 1) // 2, 1)
    thr = max(stats.norm.isf(alpha / (2 * n_pairs)) / np.sqrt(n), min_residual)
    effects = []
    for i in impure:
        for j in used:
            if j == i or (j in impure and j < i):
                continue
            if abs(R[i, j] - S[i, j]) > thr:
                effects.append((min(i, j), max(i, j)))
    return loadings, sorted(set(effects))
