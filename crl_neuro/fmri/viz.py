"""Plots of causal ROIs with :mod:`nilearn.plotting`."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_causal_rois", "plot_roi_graph"]


def plot_roi_graph(estimator: Any, axes: Any = None, title: str | None = None, edge_threshold: float | None = None):
    """Draw ``roi_graph_`` with :func:`nilearn.plotting.plot_connectome` at the ROI centroids.

    Directed edges are drawn as lines (``plot_connectome`` is undirected); the
    stronger direction of each pair sets the line's value.

    Parameters
    ----------
    estimator : CausalROIs
        Fitted estimator.
    axes : matplotlib.axes.Axes | None
    title : str | None
    edge_threshold : float | None
        Passed to ``plot_connectome``.

    Returns
    -------
    display : nilearn display object
    """
    from nilearn import plotting

    lut = estimator.lut_
    rois = lut[lut["index"] > 0]
    coords = rois[["x", "y", "z"]].to_numpy(dtype=float)
    G = np.asarray(estimator.roi_graph_, dtype=float)
    sym = np.where(np.abs(G) >= np.abs(G.T), G, G.T)
    ok = np.all(np.isfinite(coords), axis=1)
    coords = coords[ok]
    sym = sym[np.ix_(ok, ok)]
    return plotting.plot_connectome(
        sym, coords, axes=axes, title=title, edge_threshold=edge_threshold,
        node_color="auto", display_mode="ortho", colorbar=False,
    )


def plot_causal_rois(estimator: Any, title: str | None = None):
    """Figure with the ROI map (:func:`nilearn.plotting.plot_roi`) and the ROI graph.

    Parameters
    ----------
    estimator : CausalROIs
        Fitted estimator.
    title : str | None

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    from nilearn import plotting

    fig, axes = plt.subplots(2, 1, figsize=(8, 6))
    plotting.plot_roi(
        estimator.labels_img_, bg_img=estimator.mask_img_, axes=axes[0],
        title=title or f"{int(estimator.n_rois)} causal ROIs", display_mode="ortho",
        draw_cross=False, cmap="tab20",
    )
    plot_roi_graph(estimator, axes=axes[1], title="ROI graph (lagged, run-specific Granger)")
    return fig
