"""Scores that compare an estimate with the ground truth.

* :func:`mcc` - mean correlation coefficient between true and estimated latents after
  matching them one-to-one (latents are identified up to permutation, sign and scale,
  or an invertible component-wise function for ``method="spearman"``).
* :func:`graph_scores`, :func:`graph_f1`, :func:`shd` - edge precision / recall / F1 and
  structural Hamming distance between two graphs.
* :func:`localization_error` - mean distance in millimetres between true and estimated
  source positions after matching them one-to-one.
* :func:`labels_ari` - adjusted Rand index between two label images (parcellations).

One-to-one matching always uses the Hungarian algorithm
(:func:`scipy.optimize.linear_sum_assignment`).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.stats import rankdata

__all__ = [
    "mcc",
    "correlation_matrix",
    "graph_scores",
    "graph_f1",
    "shd",
    "localization_error",
    "labels_ari",
]


# -- latents ------------------------------------------------------------------------
def _as_2d(x: Any, name: str) -> np.ndarray:
    arr = np.asarray(x, dtype=float)
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2:
        raise ValueError(f"{name} must be 1D or 2D (n_samples, n_latents), got shape {arr.shape}")
    if arr.shape[0] < 2:
        raise ValueError(f"{name} needs at least 2 samples, got {arr.shape[0]}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite values")
    return arr


def correlation_matrix(true: Any, estimated: Any, method: str = "pearson") -> np.ndarray:
    """Absolute correlations between every true and every estimated latent.

    Parameters
    ----------
    true : array-like, shape (n_samples, k_true)
        True latents.
    estimated : array-like, shape (n_samples, k_est)
        Estimated latents.
    method : {"pearson", "spearman"}
        Pearson correlation, or Spearman (Pearson on ranks; invariant to monotone
        component-wise transforms).

    Returns
    -------
    corr : ndarray, shape (k_true, k_est)
        ``|corr(true[:, i], estimated[:, j])|``; 0 where a column is constant.
    """
    t = _as_2d(true, "true")
    e = _as_2d(estimated, "estimated")
    if t.shape[0] != e.shape[0]:
        raise ValueError(
            f"true and estimated must have the same number of samples, got {t.shape[0]} "
            f"and {e.shape[0]}"
        )
    if method not in ("pearson", "spearman"):
        raise ValueError(f"method must be one of ['pearson', 'spearman'], got {method!r}")
    if method == "spearman":
        t = rankdata(t, axis=0)
        e = rankdata(e, axis=0)
    t = t - t.mean(axis=0)
    e = e - e.mean(axis=0)
    nt = np.linalg.norm(t, axis=0)
    ne = np.linalg.norm(e, axis=0)
    denom = np.outer(nt, ne)
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = np.abs(t.T @ e) / denom
    # A constant column carries no information: score it as uncorrelated.
    corr[~np.isfinite(corr)] = 0.0
    return np.clip(corr, 0.0, 1.0)


def mcc(
    true: Any,
    estimated: Any,
    method: str = "pearson",
    return_details: bool = False,
) -> float | tuple[float, np.ndarray, np.ndarray]:
    """Mean correlation coefficient after one-to-one matching of latents.

    Parameters
    ----------
    true : array-like, shape (n_samples, k_true)
        True latents.
    estimated : array-like, shape (n_samples, k_est)
        Estimated latents (same samples, any order, sign or scale).
    method : {"pearson", "spearman"}
        Correlation used; ``"spearman"`` is invariant to monotone transforms.
    return_details : bool
        Also return the matching and the per-latent scores.

    Returns
    -------
    score : float
        Mean ``|corr|`` over the matched pairs (the Hungarian matching maximises the
        sum of ``|corr|``). With ``k_est < k_true`` only ``k_est`` pairs exist; the
        unmatched true latents do not enter the mean (see ``per_latent``).
    matching : ndarray of int, shape (k_true,)
        Only with ``return_details``: ``matching[i]`` is the estimated column matched to
        true column ``i`` (``-1`` if unmatched).
    per_latent : ndarray, shape (k_true,)
        Only with ``return_details``: ``|corr|`` of each true latent with its match
        (NaN if unmatched).

    Examples
    --------
    >>> import numpy as np
    >>> z = np.random.default_rng(0).normal(size=(100, 3))
    >>> round(mcc(z, -2 * z[:, ::-1]), 6)
    1.0
    """
    corr = correlation_matrix(true, estimated, method=method)
    return _matched_mean(corr, maximize=True, return_details=return_details)


def _matched_mean(values: np.ndarray, maximize: bool, return_details: bool) -> Any:
    """Hungarian one-to-one matching of rows (truth) to columns (estimates) on ``values``.

    Returns the mean matched value, or with ``return_details`` also the column matched to
    each row (-1 if none) and each row's matched value (NaN if none).
    """
    rows, cols = linear_sum_assignment(-values if maximize else values)
    score = float(values[rows, cols].mean())
    if not return_details:
        return score
    matching = np.full(values.shape[0], -1, dtype=int)
    matching[rows] = cols
    per_row = np.full(values.shape[0], np.nan)
    per_row[rows] = values[rows, cols]
    return score, matching, per_row


# -- graphs ---------------------------------------------------------------------------
def _as_adjacency(adj: Any, name: str) -> np.ndarray:
    if hasattr(adj, "to_adjacency"):  # crl_neuro Graph
        adj = adj.to_adjacency()
    arr = np.asarray(adj)
    if arr.ndim != 2 or arr.shape[0] != arr.shape[1]:
        raise ValueError(f"{name} must be a square adjacency matrix, got shape {arr.shape}")
    if arr.dtype == object:
        raise TypeError(f"{name} must be a numeric or boolean matrix, got dtype object")
    if arr.dtype.kind == "f" and np.isnan(arr).any():
        raise ValueError(f"{name} contains NaN values")
    out = arr != 0
    np.fill_diagonal(out, False)
    return out


def _edge_types(a: np.ndarray) -> np.ndarray:
    """Type of the edge of each pair i < j: 0 none, 1 i->j, 2 j->i, 3 undirected (both)."""
    iu = np.triu_indices(a.shape[0], k=1)
    fwd = a[iu].astype(int)
    bwd = a.T[iu].astype(int)
    return fwd + 2 * bwd


def _prf(tp: int, n_est: int, n_true: int) -> tuple[float, float, float]:
    # Convention for empty graphs: predicting no edge for an empty truth is perfect.
    if n_est == 0 and n_true == 0:
        return 1.0, 1.0, 1.0
    precision = tp / n_est if n_est else 0.0
    recall = tp / n_true if n_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall > 0 else 0.0
    return float(precision), float(recall), float(f1)


def graph_scores(true_adj: Any, est_adj: Any, directed: bool = False) -> dict[str, float]:
    """Edge precision, recall, F1 and structural Hamming distance between two graphs.

    Parameters
    ----------
    true_adj, est_adj : array-like, shape (n, n), or Graph
        Adjacency matrices: ``adj[i, j] != 0`` means an edge from ``i`` to ``j``;
        a pair with both entries non-zero is an undirected edge. The diagonal is ignored.
        A :class:`crl_neuro.core.graphs.Graph` is converted with ``to_adjacency()``.
    directed : bool
        ``False``: compare skeletons (both matrices symmetrised, each unordered pair
        counted once). ``True``: an edge is correct only if its type (``i -> j``,
        ``j -> i`` or undirected) matches; in the SHD a pair whose edge is missing,
        extra, reversed or differently oriented counts once.

    Returns
    -------
    scores : dict
        ``"precision"`` (correct / estimated edges), ``"recall"`` (correct / true
        edges), ``"f1"``, ``"shd"`` (number of pairs that differ, as a float).
        Two empty graphs score precision = recall = F1 = 1.
    """
    t = _as_adjacency(true_adj, "true_adj")
    e = _as_adjacency(est_adj, "est_adj")
    if t.shape != e.shape:
        raise ValueError(f"true_adj and est_adj must have the same shape, got {t.shape} and {e.shape}")
    tt = _edge_types(t)
    et = _edge_types(e)
    if not directed:
        tt = tt > 0
        et = et > 0
    present_t = tt > 0
    present_e = et > 0
    tp = int(np.sum(present_t & present_e & (tt == et)))
    precision, recall, f1 = _prf(tp, int(present_e.sum()), int(present_t.sum()))
    return {
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "shd": float(np.sum(tt != et)),
    }


def graph_f1(true_adj: Any, est_adj: Any, directed: bool = False) -> float:
    """Edge F1 score; shortcut for ``graph_scores(...)["f1"]``."""
    return graph_scores(true_adj, est_adj, directed=directed)["f1"]


def shd(true_adj: Any, est_adj: Any, directed: bool = False) -> int:
    """Structural Hamming distance (number of node pairs whose edge differs).

    Parameters
    ----------
    true_adj, est_adj : array-like, shape (n, n), or Graph
        Adjacency matrices (see :func:`graph_scores`).
    directed : bool
        Whether orientation counts (a reversed edge then counts once). Default
        ``False`` (skeletons), as in :func:`graph_scores`.

    Returns
    -------
    shd : int
    """
    return int(graph_scores(true_adj, est_adj, directed=directed)["shd"])


# -- source positions -------------------------------------------------------------------
def localization_error(
    true_pos: Any, est_pos: Any, return_details: bool = False
) -> float | tuple[float, np.ndarray, np.ndarray]:
    """Mean Euclidean error in millimetres between matched true and estimated positions.

    Parameters
    ----------
    true_pos : array-like, shape (n_true, 3)
        True positions in metres.
    est_pos : array-like, shape (n_est, 3)
        Estimated positions in metres (any order).
    return_details : bool
        Also return the matching and the per-source errors.

    Returns
    -------
    error_mm : float
        Mean distance (mm) over the pairs of the matching that minimises the total
        distance. With ``n_est < n_true`` the unmatched true sources do not enter the mean.
    matching : ndarray of int, shape (n_true,)
        Only with ``return_details``: estimated index matched to each true source (-1 if none).
    errors_mm : ndarray, shape (n_true,)
        Only with ``return_details``: error of each true source in mm (NaN if unmatched).
    """
    t = np.asarray(true_pos, dtype=float)
    e = np.asarray(est_pos, dtype=float)
    for arr, name in ((t, "true_pos"), (e, "est_pos")):
        if arr.ndim != 2 or arr.shape[1] != 3 or arr.shape[0] == 0:
            raise ValueError(f"{name} must have shape (n_sources, 3) in metres, got {arr.shape}")
        if not np.all(np.isfinite(arr)):
            raise ValueError(f"{name} contains NaN or infinite values")
    dist = np.linalg.norm(t[:, None, :] - e[None, :, :], axis=-1) * 1e3
    return _matched_mean(dist, maximize=False, return_details=return_details)


# -- label images -----------------------------------------------------------------------
def _label_array(x: Any, name: str) -> np.ndarray:
    if hasattr(x, "get_fdata"):  # nibabel-like image, without importing nibabel
        arr = np.asarray(x.dataobj)
    elif hasattr(x, "dataobj"):
        arr = np.asarray(x.dataobj)
    else:
        arr = np.asarray(x)
    if arr.dtype == object:
        raise TypeError(f"{name} must be a label array or image, got dtype object")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinite labels")
    return arr


def labels_ari(true_labels: Any, est_labels: Any, mask: Any = None) -> float:
    """Adjusted Rand index between two labelings (label arrays or 3D label images).

    Parameters
    ----------
    true_labels, est_labels : array-like or image
        Integer labels of the same shape, or images with ``dataobj`` (e.g.
        ``nibabel.Nifti1Image``) on the same grid. 0 is background.
    mask : array-like of bool or image, optional
        Voxels to compare. Default: voxels where either labeling is non-zero, so that
        the (large) shared background does not inflate the score while voxels one
        method left as background still count as a disagreement.

    Returns
    -------
    ari : float
        Adjusted Rand index (1 = identical partitions up to label names, ~0 = chance).
    """
    from sklearn.metrics import adjusted_rand_score

    t = _label_array(true_labels, "true_labels")
    e = _label_array(est_labels, "est_labels")
    if t.shape != e.shape:
        raise ValueError(
            f"true_labels and est_labels must have the same shape, got {t.shape} and {e.shape}"
        )
    if mask is None:
        m = (t != 0) | (e != 0)
    else:
        m = _label_array(mask, "mask")
        if m.shape != t.shape:
            raise ValueError(f"mask must have the labels' shape {t.shape}, got {m.shape}")
        m = m != 0
    if not m.any():
        raise ValueError("mask selects no voxel (both labelings are all background?)")
    return float(adjusted_rand_score(t[m].ravel(), e[m].ravel()))
