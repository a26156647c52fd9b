"""Plots of :class:`~crl_neuro.multimodal.MultiModalCRL` results."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["plot_multimodal_graph"]


def plot_multimodal_graph(
    cross: Any,
    latent_index: Sequence[tuple[str, int]],
    within: Any = None,
    ax: Any = None,
    title: str | None = "Latent causal graph (cross-modal edges in colour)",
) -> Any:
    """Draw latents in one column per modality with their causal edges.

    Parameters
    ----------
    cross : array, shape (n_total, n_total)
        Cross-modal adjacency, ``[i, j] != 0`` means latent ``i -> j``; the colour encodes
        the sign, the width ``|weight|``.
    latent_index : sequence of (modality, i)
        Names of the rows/columns.
    within : array, shape (n_total, n_total) | None
        Within-modality adjacency, drawn in grey.
    ax : matplotlib Axes | None
        Where to draw (new figure when None).
    title : str | None
        Axes title.

    Returns
    -------
    fig : matplotlib Figure
    """
    import matplotlib.pyplot as plt

    cross = np.asarray(cross, dtype=float)
    n = len(latent_index)
    if cross.shape != (n, n):
        raise ValueError(f"cross must have shape ({n}, {n}) to match latent_index, got {cross.shape}")
    modalities = list(dict.fromkeys(m for m, _ in latent_index))
    col = {m: c for c, m in enumerate(modalities)}
    counts = {m: sum(1 for mm, _ in latent_index if mm == m) for m in modalities}
    pos = np.array([[col[m], -(i - (counts[m] - 1) / 2)] for m, i in latent_index], dtype=float)
    if ax is None:
        fig, ax = plt.subplots(figsize=(2.2 + 2.0 * len(modalities), 1.5 + 0.8 * max(counts.values())))
    else:
        fig = ax.figure
    scale = max(np.abs(cross).max(), 1e-12)

    def arrows(adj: np.ndarray, colour_of: Any, rad: float) -> None:
        for i, j in zip(*np.nonzero(adj)):
            ax.annotate(
                "", xy=pos[j], xytext=pos[i],
                arrowprops=dict(arrowstyle="-|>", color=colour_of(adj[i, j]), lw=0.8 + 2.5 * abs(adj[i, j]) / scale,
                                shrinkA=14, shrinkB=14, connectionstyle=f"arc3,rad={rad}"),
            )

    if within is not None:
        arrows(np.asarray(within, dtype=float), lambda w: "0.6", 0.4)
    arrows(cross, lambda w: "tab:red" if w > 0 else "tab:blue", 0.08)
    colours = plt.get_cmap("tab10")
    for k, (m, i) in enumerate(latent_index):
        ax.scatter(*pos[k], s=600, color=colours(col[m] % 10), alpha=0.85, zorder=3)
        ax.text(*pos[k], f"z{i}", ha="center", va="center", fontsize=9, zorder=4)
    for m in modalities:
        ax.text(col[m], (counts[m] + 1) / 2 + 0.1, m, ha="center", va="bottom", fontweight="bold")
    ax.set_xlim(-0.7, len(modalities) - 0.3)
    top = max(counts.values()) / 2 + 0.9
    ax.set_ylim(-top, top)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=10)
    return fig
