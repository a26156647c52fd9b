"""Plots of causal ROIs with :mod:`nilearn.plotting`."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_causal_rois", "plot_roi_graph"]


def _roi_colours(n: int) -> list[tuple[float, float, float, float]]:
    """One colour per ROI label 1..n, shared by the ROI map and the graph's nodes."""
    import matplotlib.pyplot as plt

    cmap = plt.get_cmap("tab10" if n <= 10 else "tab20")
    return [cmap(i % cmap.N) for i in range(n)]


def plot_roi_graph(estimator: Any, axes: Any = None, title: str | None = None, edge_threshold: float | None = None,
                   legend: bool = True, colorbar: bool = True):
    """Draw ``roi_graph_`` with :func:`nilearn.plotting.plot_connectome` at the ROI centroids.

    Directed edges are drawn as lines (``plot_connectome`` is undirected); the
    stronger direction of each pair sets the line's value. Node ``i`` has the colour of
    label ``i`` in :func:`plot_causal_rois`'s ROI map and the name ``lut_["name"]``.

    Parameters
    ----------
    estimator : CausalROIs
        Fitted estimator.
    axes : matplotlib.axes.Axes | None
    title : str | None
    edge_threshold : float | None
        Passed to ``plot_connectome``.
    legend : bool
        Name the ROIs (``lut_["name"]``) in a legend beside the glass brains.
    colorbar : bool
        Colour scale of the edge values (Granger coefficients).

    Returns
    -------
    display : nilearn display object
    """
    from matplotlib.lines import Line2D
    from nilearn import plotting

    lut = estimator.lut_
    rois = lut[lut["index"] > 0]
    coords = rois[["x", "y", "z"]].to_numpy(dtype=float)
    colours = _roi_colours(int(rois["index"].max()) if len(rois) else 0)
    node_colours = [colours[int(i) - 1] for i in rois["index"]]
    G = np.asarray(estimator.roi_graph_, dtype=float)
    sym = np.where(np.abs(G) >= np.abs(G.T), G, G.T)
    ok = np.all(np.isfinite(coords), axis=1)
    coords = coords[ok]
    sym = sym[np.ix_(ok, ok)]
    node_colours = [c for c, keep in zip(node_colours, ok) if keep]
    names = [str(n) for n, keep in zip(rois["name"], ok) if keep]
    display = plotting.plot_connectome(
        sym, coords, axes=axes, title=title, edge_threshold=edge_threshold,
        node_color=node_colours, display_mode="ortho", colorbar=bool(colorbar and np.any(sym != 0)),
    )
    if legend and names:
        handles = [Line2D([], [], ls="", marker="o", color=c, label=n) for c, n in zip(node_colours, names)]
        display.frame_axes.legend(handles=handles, loc="upper center", bbox_to_anchor=(0.5, 0.02),
                                  ncol=min(len(handles), 5), fontsize=7, frameon=False,
                                  handletextpad=0.2, columnspacing=1.0)
    return display


def plot_causal_rois(estimator: Any, title: str | None = None):
    """Figure with the ROI map (:func:`nilearn.plotting.plot_roi`) and the ROI graph.

    The ROIs have the same colours in both panels, and their ``lut_`` names in the legend.

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
    from matplotlib.colors import ListedColormap
    from nilearn import plotting

    n = int(estimator.lut_["index"].max())
    fig, axes = plt.subplots(2, 1, figsize=(9, 6))
    plotting.plot_roi(
        estimator.labels_img_, bg_img=estimator.mask_img_, axes=axes[0],
        title=title or f"{int(estimator.n_rois)} causal ROIs", display_mode="ortho",
        draw_cross=False, cmap=ListedColormap(_roi_colours(max(n, 1))), vmin=0.5, vmax=max(n, 1) + 0.5,
        colorbar=False,
    )
    plot_roi_graph(estimator, axes=axes[1], title="ROI graph (lagged, run-specific Granger)")
    return fig
