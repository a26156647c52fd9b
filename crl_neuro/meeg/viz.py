"""Figures for SessionCRL: pattern topographies and the source network."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

__all__ = ["plot_patterns", "plot_source_network"]


def _topomap_type(info: Any) -> str:
    """Channel type to draw: the first of eeg, mag, grad present."""
    types = set(info.get_channel_types())
    for t in ("eeg", "mag", "grad"):
        if t in types:
            return t
    raise ValueError("info has no EEG or MEG channels to draw topographies of")


def plot_patterns(
    patterns: np.ndarray, info: Any, gof: Sequence[float] | None = None, show: bool = False
) -> Any:
    """Topomaps of sensor patterns (one per column) with :func:`mne.viz.plot_topomap`.

    Parameters
    ----------
    patterns : ndarray, shape (n_channels, n_sources)
        Patterns on the channels of ``info``.
    info : mne.Info
        Channels of the patterns (with positions).
    gof : sequence of float | None
        Goodness of fit (%) shown in the titles.
    show : bool
        Show the figure.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt
    import mne

    ch_type = _topomap_type(info)
    picks = [i for i, t in enumerate(info.get_channel_types()) if t == ch_type]
    sub = mne.pick_info(info, picks)
    k = patterns.shape[1]
    ncol = min(k, 5)
    nrow = int(np.ceil(k / ncol))
    fig, axes = plt.subplots(
        nrow, ncol, figsize=(2.2 * ncol, 2.3 * nrow + 0.4), squeeze=False, layout="constrained"
    )
    for j, ax in enumerate(axes.ravel()):
        if j >= k:
            ax.set_axis_off()
            continue
        mne.viz.plot_topomap(patterns[picks, j], sub, ch_type=ch_type, axes=ax, show=False, contours=4)
        title = f"CRL{j:03d}"
        if gof is not None:
            title += f"\nGOF {gof[j]:.0f}%"
        ax.set_title(title, fontsize=9)
    fig.suptitle("SessionCRL source patterns")
    if show:
        plt.show()
    return fig


def plot_source_network(
    network: np.ndarray,
    changing: np.ndarray | None = None,
    precisions: np.ndarray | None = None,
    session_labels: Sequence[Any] | None = None,
    show: bool = False,
) -> Any:
    """Draw the source Markov network on a circle; changing edges in red, dashed.

    Edge widths are the mean absolute partial correlation across sessions;
    a second panel shows the partial correlation of each edge per session.

    Returns
    -------
    fig : matplotlib.figure.Figure
    """
    import matplotlib.pyplot as plt

    net = np.asarray(network, bool)
    k = net.shape[0]
    chg = np.zeros_like(net) if changing is None else np.asarray(changing, bool)
    pc = None
    if precisions is not None:
        P = np.asarray(precisions, float)
        d = np.sqrt(np.einsum("sii->si", P))
        pc = -P / (d[:, :, None] * d[:, None, :])
    ncols = 2 if pc is not None else 1
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 4.5), squeeze=False)
    ax = axes[0, 0]
    ang = 2 * np.pi * np.arange(k) / k
    xy = np.c_[np.cos(ang), np.sin(ang)]
    edges = [(i, j) for i in range(k) for j in range(i + 1, k) if net[i, j]]
    for i, j in edges:
        w = 1.5 if pc is None else 1.0 + 6.0 * float(np.mean(np.abs(pc[:, i, j])))
        style = dict(color="tab:red", ls="--") if chg[i, j] else dict(color="0.3", ls="-")
        ax.plot(*xy[[i, j]].T, lw=w, zorder=1, **style)
    ax.scatter(*xy.T, s=600, c="tab:blue", zorder=2)
    for i in range(k):  # the names of get_sources' channels and plot_patterns' titles
        ax.text(*xy[i], f"CRL\n{i:03d}", color="w", ha="center", va="center", zorder=3, fontsize=7)
    ax.set_aspect("equal")
    ax.set_xlim(-1.4, 1.4)
    ax.set_ylim(-1.4, 1.4)
    ax.set_axis_off()
    ax.set_title("source network (red dashed: changing)")
    if pc is not None:
        ax2 = axes[0, 1]
        x = np.arange(pc.shape[0])
        for i, j in edges:
            ax2.plot(x, pc[:, i, j], "o-" if chg[i, j] else "s:", label=f"CRL{i:03d}-CRL{j:03d}")
        ax2.axhline(0, color="0.7", lw=0.8)
        ax2.set_xticks(x)
        if session_labels is not None:
            ax2.set_xticklabels([str(s) for s in session_labels], rotation=45, fontsize=8)
        ax2.set_xlabel("session")
        ax2.set_ylabel("partial correlation")
        ax2.set_title("per session (solid: changing)")
        if edges:
            ax2.legend(fontsize=6, ncol=2)
    fig.tight_layout()
    if show:
        plt.show()
    return fig
