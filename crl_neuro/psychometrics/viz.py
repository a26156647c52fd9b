"""Path diagram of a fitted LatentCausalModel (matplotlib + networkx)."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["plot_path_diagram"]


def plot_path_diagram(model: Any, ax=None, show_items: bool = True, show_stability: bool = True):
    """Draw latents (ellipses), items (boxes), loadings and the latent equivalence class.

    Directed latent edges are arrows, undirected edges (direction not identified)
    plain lines; hidden latents (no items) are dashed. Items flagged impure are
    drawn in orange, item-item ties as dotted lines.

    Parameters
    ----------
    model : LatentCausalModel
        A fitted model.
    ax : matplotlib Axes | None
        Axes to draw on; a new figure otherwise.
    show_items : bool
        Draw items and loadings.
    show_stability : bool
        Annotate latent edges with their bootstrap frequency (when available).

    Returns
    -------
    fig : matplotlib Figure
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Ellipse, FancyArrowPatch

    S = model.structure_
    names = list(S.index)
    measured = list(model.measurement_.columns)
    k = len(names)
    if ax is None:
        fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * k + 2), 6.5))
    else:
        fig = ax.figure
    # latents on a circle (hidden ones at the centre when there is one)
    hidden = [nm for nm in names if nm not in measured]
    pos: dict[str, np.ndarray] = {}
    radius = 1.0
    for i, nm in enumerate(measured):
        ang = np.pi / 2 - 2 * np.pi * i / max(len(measured), 1)
        pos[nm] = radius * np.array([np.cos(ang), np.sin(ang)])
    for j, nm in enumerate(hidden):
        pos[nm] = np.array([0.25 * (j - (len(hidden) - 1) / 2), 0.0])
    stab = {}
    if show_stability and getattr(model, "edge_stability_", None) is not None:
        for _, row in model.edge_stability_.iterrows():
            stab[frozenset((row["source"], row["target"]))] = row["p_edge"]
    A = S.to_numpy() != 0
    for a in range(k):
        for b in range(k):
            if not A[a, b] or (A[b, a] and b < a):
                continue
            pa, pb = pos[names[a]], pos[names[b]]
            style = "-|>" if not A[b, a] else "-"
            ax.add_patch(FancyArrowPatch(pa, pb, arrowstyle=style, mutation_scale=18, lw=2,
                                         color="k", shrinkA=22, shrinkB=22, zorder=2))
            key = frozenset((names[a], names[b]))
            if key in stab:
                mid = (pa + pb) / 2
                ax.text(mid[0], mid[1], f"{stab[key]:.2f}", fontsize=8, color="tab:blue",
                        ha="center", va="center", bbox=dict(fc="white", ec="none", alpha=0.8))
    for nm in names:
        x, y = pos[nm]
        ax.add_patch(Ellipse((x, y), 0.36, 0.22, fc="white" if nm in measured else "0.92",
                             ec="k", lw=1.5, ls="-" if nm in measured else "--", zorder=3))
        ax.text(x, y, nm, ha="center", va="center", fontsize=10, zorder=4)
    if show_items:
        M = model.measurement_
        impure = set(model.impure_items_)
        item_pos: dict[str, np.ndarray] = {}
        for nm in measured:
            items = [it for it in M.index if model.clusters_.get(str(it)) == nm]
            centre = pos[nm]
            direction = centre / (np.linalg.norm(centre) + 1e-9)
            normal = np.array([-direction[1], direction[0]])
            for t, it in enumerate(items):
                # fan the items out on an arc behind their latent
                spread = min(0.28, 1.6 / max(len(items), 1))
                offset = (t - (len(items) - 1) / 2) * spread
                item_pos[str(it)] = centre * 1.8 + normal * offset + direction * 0.15 * abs(offset)
        for it, xy in item_pos.items():
            for nm in measured:
                lo = M.loc[it, nm]
                if lo != 0:
                    ax.plot([pos[nm][0], xy[0]], [pos[nm][1], xy[1]], color="0.6",
                            lw=0.5 + 2 * abs(lo), ls="-" if lo > 0 else "--", zorder=1)
            ax.text(xy[0], xy[1], it, fontsize=7, ha="center", va="center", zorder=5,
                    bbox=dict(boxstyle="square,pad=0.2", fc="orange" if it in impure else "white", ec="0.4"))
        for i1, i2 in model.item_effects_:
            if i1 in item_pos and i2 in item_pos:
                p1, p2 = item_pos[i1], item_pos[i2]
                ax.plot([p1[0], p2[0]], [p1[1], p2[1]], ls=":", color="tab:red", lw=1, zorder=1)
    ax.set_xlim(-2.3, 2.3)
    ax.set_ylim(-2.3, 2.3)
    ax.set_aspect("equal")
    ax.axis("off")
    ax.set_title("Latent causal structure (arrows: oriented; lines: direction not identified)", fontsize=9)
    return fig
