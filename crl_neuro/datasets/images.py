"""Procedural images with a known attribute SCM, for causal image generation and editing.

:func:`make_causal_images` renders a pendulum lit from above: the pendulum's angle and
the light's horizontal position cause the position and length of the shadow on the
ground. Every image is a deterministic function of its attributes and of two unlabelled
style variables (bob size, background level), so exact counterfactual images can be
re-rendered from the same exogenous noise.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from crl_neuro.core.validation import check_float, check_int

__all__ = ["make_causal_images", "ATTRIBUTES"]

#: Attribute names in causal (topological) order.
ATTRIBUTES = ("angle", "light", "shadow_position", "shadow_length")
_PARENTS = {
    "angle": (),
    "light": (),
    "shadow_position": ("angle", "light"),
    "shadow_length": ("angle", "light"),
}
_STYLE = ("bob_size", "background")

# Scene geometry in units of the image side (x to the right, y downwards).
_PIVOT = (0.5, 0.15)
_ROD = 0.35
_LIGHT_Y = -1.0  # the lamp hangs high above the scene; it is drawn at the top edge
_GROUND_Y = 0.88


def _shadow(angle: np.ndarray, light: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Noise-free shadow (centre, length) of the rod+bob cast from a point light on the ground."""
    px, py = _PIVOT
    bx = px + _ROD * np.sin(angle)
    by = py + _ROD * np.cos(angle)

    def project(x, y):
        return light + (x - light) * (_GROUND_Y - _LIGHT_Y) / (y - _LIGHT_Y)

    s_pivot, s_bob = project(px, py), project(bx, by)
    return 0.5 * (s_pivot + s_bob), np.abs(s_bob - s_pivot)


def _structural(noise: pd.DataFrame, do: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Evaluate the attribute SCM on exogenous ``noise`` under the intervention ``do``."""
    do = {} if do is None else dict(do)
    n = len(noise)
    out: dict[str, np.ndarray] = {}
    for name in ATTRIBUTES:
        if name in do:
            out[name] = np.broadcast_to(np.asarray(do[name], float), (n,)).copy()
            continue
        eps = noise[name].to_numpy(float)
        if name in ("angle", "light"):
            out[name] = eps.copy()
        else:
            centre, length = _shadow(out["angle"], out["light"])
            out[name] = centre + eps if name == "shadow_position" else length + eps
    return pd.DataFrame(out, index=noise.index)


def _render(attributes: pd.DataFrame, style: pd.DataFrame, size: int) -> np.ndarray:
    """Draw the scene with anti-aliased shapes; a pure function of its inputs."""
    n = len(attributes)
    grid = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    xx, yy = xx[None], yy[None]
    px = 1.0 / size  # one pixel, for anti-aliasing

    def soft(dist):
        return np.clip(0.5 - dist / px, 0.0, 1.0)

    a = attributes["angle"].to_numpy(float)[:, None, None]
    light = attributes["light"].to_numpy(float)[:, None, None]
    s_pos = attributes["shadow_position"].to_numpy(float)[:, None, None]
    s_len = attributes["shadow_length"].to_numpy(float)[:, None, None]
    r_bob = style["bob_size"].to_numpy(float)[:, None, None]
    bg = style["background"].to_numpy(float)[:, None, None]

    x0, y0 = _PIVOT
    bx, by = x0 + _ROD * np.sin(a), y0 + _ROD * np.cos(a)
    # rod: distance to the segment pivot-bob
    dx, dy = bx - x0, by - y0
    t = np.clip(((xx - x0) * dx + (yy - y0) * dy) / (dx**2 + dy**2), 0, 1)
    d_rod = np.hypot(xx - (x0 + t * dx), yy - (y0 + t * dy)) - 0.02
    d_bob = np.hypot(xx - bx, yy - by) - r_bob
    d_lamp = np.hypot(xx - light, yy - 0.05) - 0.05
    # shadow: a bar on the ground (rounded ends)
    half = np.maximum(s_len, 0.0) / 2
    qx = np.maximum(np.abs(xx - s_pos) - half, 0.0)
    d_shadow = np.hypot(qx, yy - _GROUND_Y) - 0.035
    img = np.broadcast_to(bg, (n, size, size)).copy()
    img = np.maximum(img, 0.45 * soft(d_shadow))
    img = np.maximum(img, 0.6 * soft(d_rod))
    img = np.maximum(img, 0.9 * soft(d_bob))
    img = np.maximum(img, 1.0 * soft(d_lamp))
    return np.clip(img, 0.0, 1.0)


def make_causal_images(
    n_samples: int = 1000,
    image_size: int = 32,
    noise_scale: float = 1.0,
    random_state: Any = None,
) -> Bunch:
    """Render pendulum images whose attributes follow a known structural causal model.

    SCM (units: fractions of the image side, angle in radians)::

        angle           = U_angle,            U_angle ~ Uniform(0, 0.9)
        light           = U_light,            U_light ~ Uniform(0.1, 0.4)
        shadow_position = c(angle, light) + U_pos,  U_pos ~ N(0, (0.04 noise_scale)^2)
        shadow_length   = l(angle, light) + U_len,  U_len ~ N(0, (0.03 noise_scale)^2)

    where ``c`` and ``l`` are the centre and length of the shadow of the rod and bob
    cast on the ground by a point light high above at horizontal position ``light``.
    The image also depends on two unlabelled style variables (bob radius, background
    level), part of the exogenous noise. The rendering is a deterministic function of
    the attributes and the style, so counterfactuals are exact.

    Parameters
    ----------
    n_samples : int
        Number of images.
    image_size : int
        Images are ``image_size x image_size`` (at least 8).
    noise_scale : float
        Multiplies the standard deviation of the shadows' exogenous noise (> 0; small
        values make the shadow nearly a deterministic function of its causes).
    random_state : None | int | numpy random generator
        Fixes every draw.

    Returns
    -------
    data : Bunch
        ``images`` (n_samples, H, W) floats in [0, 1]; ``attributes`` DataFrame with
        columns ``angle, light, shadow_position, shadow_length``; ``noise`` DataFrame of
        the exogenous variables (one per attribute, roots' noise is their value, plus
        ``bob_size`` and ``background``); ``graph`` attributes x attributes DataFrame
        (``graph.loc[a, b] == 1`` means a -> b); ``render(attributes, noise=None)``
        re-renders images from attributes with the style of ``noise`` (default: this
        data set's); ``scm(noise, do=None)`` evaluates the attribute SCM;
        ``counterfactual(do, index=None)`` returns ``(images, attributes)``: the exact
        counterfactuals of the (selected) samples under ``do`` (keeping all exogenous
        noise); ``image_size``.
    """
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    image_size = check_int(image_size, "image_size", min_value=8)
    noise_scale = check_float(noise_scale, "noise_scale", min_value=0.0, inclusive=False)
    rng = np.random.default_rng(random_state)
    exogenous = pd.DataFrame(
        {
            "angle": rng.uniform(0.0, 0.9, n_samples),
            "light": rng.uniform(0.1, 0.4, n_samples),
            "shadow_position": rng.normal(0.0, 0.04 * noise_scale, n_samples),
            "shadow_length": rng.normal(0.0, 0.03 * noise_scale, n_samples),
            "bob_size": rng.uniform(0.05, 0.09, n_samples),
            "background": rng.uniform(0.0, 0.15, n_samples),
        }
    )
    attributes = _structural(exogenous)
    graph = pd.DataFrame(0, index=list(ATTRIBUTES), columns=list(ATTRIBUTES))
    for child, parents in _PARENTS.items():
        for p in parents:
            graph.loc[p, child] = 1

    def render(attributes: pd.DataFrame, noise: pd.DataFrame | None = None) -> np.ndarray:
        """Render images of ``attributes`` with the style variables of ``noise``."""
        noise = exogenous if noise is None else noise
        if not isinstance(attributes, pd.DataFrame) or set(ATTRIBUTES) - set(attributes.columns):
            raise ValueError(f"attributes must be a DataFrame with columns {list(ATTRIBUTES)}")
        if not isinstance(noise, pd.DataFrame) or set(_STYLE) - set(noise.columns):
            raise ValueError(f"noise must be a DataFrame with columns {list(_STYLE)}")
        if len(noise) != len(attributes):
            raise ValueError(
                f"attributes has {len(attributes)} rows but noise has {len(noise)}; pass the "
                "matching rows of noise"
            )
        return _render(attributes.reset_index(drop=True), noise.reset_index(drop=True), image_size)

    def counterfactual(do: Mapping[str, Any], index: Any = None) -> tuple[np.ndarray, pd.DataFrame]:
        """Exact counterfactual ``(images, attributes)`` of samples ``index`` under ``do``."""
        unknown = set(do) - set(ATTRIBUTES)
        if unknown:
            raise ValueError(f"do has unknown attribute(s) {sorted(unknown)}; expected {list(ATTRIBUTES)}")
        sub = exogenous if index is None else exogenous.iloc[np.asarray(index)]
        attrs = _structural(sub, do)
        return render(attrs, sub), attrs

    images = _render(attributes, exogenous, image_size)
    return Bunch(
        images=images,
        attributes=attributes,
        noise=exogenous,
        graph=graph,
        render=render,
        scm=_structural,
        counterfactual=counterfactual,
        image_size=image_size,
    )
