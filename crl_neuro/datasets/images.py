"""Procedural images with a known attribute SCM, for causal image generation and editing.

:func:`make_causal_images` renders one of two scenes:

* ``"pendulum"``: a pendulum lit from above; the pendulum's angle and the light's
  horizontal position cause the position and length of the shadow on the ground.
* ``"faces"``: colour face-like sprites; age causes eyeglasses (binary) and hair
  greyness, while smile and face width are free attributes.

Every image is a deterministic function of its attributes and of unlabelled style
variables, so exact counterfactual images can be re-rendered from the same exogenous
noise.
"""

from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import pandas as pd
from sklearn.utils import Bunch

from crl_neuro.core.validation import check_choice, check_float, check_generator, check_int

__all__ = ["make_causal_images", "ATTRIBUTES", "FACE_ATTRIBUTES"]

#: Attribute names of the pendulum scene, in causal (topological) order.
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


# -- faces -----------------------------------------------------------------------------
#: Attribute names of the faces scene, in causal (topological) order.
FACE_ATTRIBUTES = ("age", "eyeglasses", "hair_grey", "smile", "face_width")
_FACE_PARENTS = {"age": (), "eyeglasses": ("age",), "hair_grey": ("age",), "smile": (), "face_width": ()}
_FACE_STYLE = ("skin", "background", "hair_base")
# eyeglasses = 1[age - _GLASSES_AGE + U > 0]: half of the people older than this wear them
_GLASSES_AGE = 50.0


def _face_structural(noise: pd.DataFrame, do: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """Evaluate the faces' attribute SCM on exogenous ``noise`` under ``do``."""
    do = {} if do is None else dict(do)
    n = len(noise)
    out: dict[str, np.ndarray] = {}
    for name in FACE_ATTRIBUTES:
        if name in do:
            out[name] = np.broadcast_to(np.asarray(do[name], float), (n,)).copy()
            continue
        eps = noise[name].to_numpy(float)
        if name == "eyeglasses":
            out[name] = (out["age"] - _GLASSES_AGE + eps > 0).astype(float)
        elif name == "hair_grey":
            # linear in age, so that its residual is independent of age (and Fisher-z PC applies)
            out[name] = 0.12 + 0.76 * (out["age"] - 20.0) / 60.0 + eps
        else:
            out[name] = eps.copy()
    return pd.DataFrame(out, index=noise.index)


def _face_render(attributes: pd.DataFrame, style: pd.DataFrame, size: int) -> np.ndarray:
    """Draw RGB face sprites with anti-aliased shapes; a pure function of its inputs."""
    n = len(attributes)
    grid = (np.arange(size) + 0.5) / size
    yy, xx = np.meshgrid(grid, grid, indexing="ij")
    xx, yy = xx[None], yy[None]
    px = 1.0 / size

    def soft(dist):
        return np.clip(0.5 - dist / px, 0.0, 1.0)

    def col(name):
        return attributes[name].to_numpy(float)[:, None, None]

    def sty(name):
        return style[name].to_numpy(float)[:, None, None]

    age, glasses, grey = col("age"), col("eyeglasses"), np.clip(col("hair_grey"), 0.0, 1.0)
    smile, width = col("smile"), col("face_width")
    skin, bg, hair_base = sty("skin"), sty("background"), sty("hair_base")

    def paint(img, mask, rgb):
        # rgb: 3 arrays broadcastable to (n, 1, 1)
        m = mask[..., None]
        colour = np.stack([np.broadcast_to(c, (n, 1, 1)) for c in rgb], axis=-1)
        return img * (1.0 - m) + colour * m

    img = np.broadcast_to(np.stack([0.6 * bg, 0.8 * bg, bg + 0.2], axis=-1), (n, size, size, 3)).copy()
    # hair: an ellipse behind the face, brown-black mixed towards light grey
    hair_mask = soft(np.hypot((xx - 0.5) / (width + 0.06), (yy - 0.47) / 0.40) * 0.3 - 0.3)
    hair = [(1 - grey) * (hair_base * k) + grey * 0.85 for k in (1.3, 1.0, 0.75)]
    img = paint(img, hair_mask, hair)
    # face
    face_d = (np.hypot((xx - 0.5) / width, (yy - 0.58) / 0.33) - 1.0) * np.minimum(width, 0.33)
    face_mask = soft(face_d)
    img = paint(img, face_mask, [skin, 0.82 * skin, 0.68 * skin])
    # age wrinkles: forehead lines whose darkness grows with age
    wrinkle = np.zeros((n, size, size))
    # (lines about a pixel wide at 32x32, so that age shows by itself, not only via its effects)
    for y0 in (0.32, 0.385):  # above the glasses' rims
        d = np.maximum(np.abs(yy - y0) - 0.01, 0.0) + np.maximum(np.abs(xx - 0.5) - 0.12, 0.0)
        wrinkle = np.maximum(wrinkle, soft(d - 0.006))
    strength = np.clip((age - 20.0) / 60.0, 0.0, 1.0) * 0.8
    img = paint(img, wrinkle * strength * face_mask, [0.35 * skin, 0.25 * skin, 0.2 * skin])
    # eyes
    eyes = np.maximum(soft(np.hypot(xx - 0.39, yy - 0.52) - 0.03), soft(np.hypot(xx - 0.61, yy - 0.52) - 0.03))
    img = paint(img, eyes, [0.1, 0.1, 0.15])
    # eyeglasses: two rims and a bridge
    rims = np.maximum(soft(np.abs(np.hypot(xx - 0.39, yy - 0.52) - 0.075) - 0.012),
                      soft(np.abs(np.hypot(xx - 0.61, yy - 0.52) - 0.075) - 0.012))
    bridge = soft(np.maximum(np.abs(xx - 0.5) - 0.035, 0.0) + np.abs(yy - 0.51) - 0.01)
    img = paint(img, np.maximum(rims, bridge) * glasses, [0.05, 0.05, 0.08])
    # mouth: a parabola whose corners rise with the smile
    u = (xx - 0.5) / 0.12
    y_mouth = 0.74 + 0.05 * smile * (1.0 - u**2) - 0.01
    d = np.abs(yy - y_mouth) + np.maximum(np.abs(u) - 1.0, 0.0) * 0.12 - 0.013
    img = paint(img, soft(d), [0.55, 0.12, 0.15])
    return np.clip(img, 0.0, 1.0)


def _pendulum_noise(rng: np.random.Generator, n: int, noise_scale: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "angle": rng.uniform(0.0, 0.9, n),
            "light": rng.uniform(0.1, 0.4, n),
            "shadow_position": rng.normal(0.0, 0.04 * noise_scale, n),
            "shadow_length": rng.normal(0.0, 0.03 * noise_scale, n),
            "bob_size": rng.uniform(0.05, 0.09, n),
            "background": rng.uniform(0.0, 0.15, n),
        }
    )


def _face_noise(rng: np.random.Generator, n: int, noise_scale: float) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "age": rng.uniform(20.0, 80.0, n),
            "eyeglasses": rng.logistic(0.0, 6.0 * noise_scale, n),
            "hair_grey": rng.normal(0.0, 0.06 * noise_scale, n),
            "smile": rng.uniform(-1.0, 1.0, n),
            "face_width": rng.uniform(0.24, 0.34, n),
            "skin": rng.uniform(0.55, 0.95, n),
            "background": rng.uniform(0.05, 0.4, n),
            "hair_base": rng.uniform(0.08, 0.35, n),
        }
    )


# scene -> (attributes, parents, style variables, noise sampler, SCM, renderer)
_SCENES = {
    "pendulum": (ATTRIBUTES, _PARENTS, _STYLE, _pendulum_noise, _structural, _render),
    "faces": (FACE_ATTRIBUTES, _FACE_PARENTS, _FACE_STYLE, _face_noise, _face_structural, _face_render),
}
_CHUNK = 256  # images rendered at once, to bound memory at 64x64 and above


def make_causal_images(
    n_samples: int = 1000,
    image_size: int = 32,
    noise_scale: float = 1.0,
    random_state: Any = None,
    scene: str = "pendulum",
) -> Bunch:
    """Render images whose attributes follow a known structural causal model.

    Pendulum scene (``scene="pendulum"``; grayscale; units: fractions of the image
    side, angle in radians)::

        angle           = U_angle,            U_angle ~ Uniform(0, 0.9)
        light           = U_light,            U_light ~ Uniform(0.1, 0.4)
        shadow_position = c(angle, light) + U_pos,  U_pos ~ N(0, (0.04 noise_scale)^2)
        shadow_length   = l(angle, light) + U_len,  U_len ~ N(0, (0.03 noise_scale)^2)

    where ``c`` and ``l`` are the centre and length of the shadow of the rod and bob
    cast on the ground by a point light high above at horizontal position ``light``.
    Unlabelled style: bob radius, background level.

    Faces scene (``scene="faces"``; RGB; age in years)::

        age        = U_age,         U_age ~ Uniform(20, 80)
        eyeglasses = 1[age - 50 + U_glasses > 0],  U_glasses ~ Logistic(0, 6 noise_scale)
        hair_grey  = 0.12 + 0.76 (age - 20) / 60 + U_hair,  U_hair ~ N(0, (0.06 noise_scale)^2)
        smile      = U_smile,       U_smile ~ Uniform(-1, 1)
        face_width = U_width,       U_width ~ Uniform(0.24, 0.34)

    ``eyeglasses`` is binary (0/1); age also shows directly as forehead wrinkles.
    Unlabelled style: skin tone, background and base hair colour. The graph is a fork
    (eyeglasses <- age -> hair_grey), so observational data identify its skeleton but
    not the direction of its edges.

    The rendering is a deterministic function of the attributes and the style, so
    counterfactuals are exact.

    Parameters
    ----------
    n_samples : int
        Number of images.
    image_size : int
        Images are ``image_size x image_size`` (at least 8).
    noise_scale : float
        Multiplies the scale of the effects' exogenous noise (> 0; small values make
        the effects nearly deterministic functions of their causes).
    random_state : None | int | numpy random generator
        Fixes every draw.
    scene : {"pendulum", "faces"}
        Which scene to render.

    Returns
    -------
    data : Bunch
        ``images``: (n_samples, H, W) floats in [0, 1] for the pendulum, (n_samples,
        H, W, 3) for faces; ``attributes`` DataFrame (columns in causal order, see
        :data:`ATTRIBUTES` and :data:`FACE_ATTRIBUTES`); ``noise`` DataFrame of the
        exogenous variables (one per attribute, roots' noise is their value, plus the
        style variables); ``graph`` attributes x attributes DataFrame
        (``graph.loc[a, b] == 1`` means a -> b); ``render(attributes, noise=None)``
        re-renders images from attributes with the style of ``noise`` (default: this
        data set's); ``scm(noise, do=None)`` evaluates the attribute SCM;
        ``counterfactual(do, index=None)`` returns ``(images, attributes)``: the exact
        counterfactuals of the (selected) samples under ``do`` (keeping all exogenous
        noise); ``image_size``; ``scene``.
    """
    n_samples = check_int(n_samples, "n_samples", min_value=1)
    image_size = check_int(image_size, "image_size", min_value=8)
    noise_scale = check_float(noise_scale, "noise_scale", min_value=0.0, inclusive=False)
    scene = check_choice(scene, "scene", tuple(_SCENES))
    rng = check_generator(random_state)
    names, parents, style_names, sample_noise, scm, draw = _SCENES[scene]
    exogenous = sample_noise(rng, n_samples, noise_scale)
    attributes = scm(exogenous)
    graph = pd.DataFrame(0, index=list(names), columns=list(names))
    for child, pa in parents.items():
        for p in pa:
            graph.loc[p, child] = 1

    def _draw(attrs: pd.DataFrame, style: pd.DataFrame) -> np.ndarray:
        attrs, style = attrs.reset_index(drop=True), style.reset_index(drop=True)
        chunks = [draw(attrs.iloc[s:s + _CHUNK], style.iloc[s:s + _CHUNK], image_size)
                  for s in range(0, len(attrs), _CHUNK)]
        return np.concatenate(chunks) if chunks else draw(attrs, style, image_size)

    def render(attributes: pd.DataFrame, noise: pd.DataFrame | None = None) -> np.ndarray:
        """Render images of ``attributes`` with the style variables of ``noise``."""
        noise = exogenous if noise is None else noise
        if not isinstance(attributes, pd.DataFrame) or set(names) - set(attributes.columns):
            raise ValueError(f"attributes must be a DataFrame with columns {list(names)}")
        if not isinstance(noise, pd.DataFrame) or set(style_names) - set(noise.columns):
            raise ValueError(f"noise must be a DataFrame with columns {list(style_names)}")
        if len(noise) != len(attributes):
            raise ValueError(
                f"attributes has {len(attributes)} rows but noise has {len(noise)}; pass the "
                "matching rows of noise"
            )
        return _draw(attributes, noise)

    def counterfactual(do: Mapping[str, Any], index: Any = None) -> tuple[np.ndarray, pd.DataFrame]:
        """Exact counterfactual ``(images, attributes)`` of samples ``index`` under ``do``."""
        unknown = set(do) - set(names)
        if unknown:
            raise ValueError(f"do has unknown attribute(s) {sorted(unknown)}; expected {list(names)}")
        sub = exogenous if index is None else exogenous.iloc[np.asarray(index)]
        attrs = scm(sub, do)
        return render(attrs, sub), attrs

    return Bunch(
        images=_draw(attributes, exogenous),
        attributes=attributes,
        noise=exogenous,
        graph=graph,
        render=render,
        scm=scm,
        counterfactual=counterfactual,
        image_size=image_size,
        scene=scene,
    )
