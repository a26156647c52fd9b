"""Simulated fMRI runs with ground-truth causal regions of interest.

The simulator builds a small brain on the MNI grid (Nilearn's MNI152 brain mask
resampled to a coarse resolution), places contiguous ROIs at plausible cortical
locations, simulates an ROI-level causal model whose mechanisms change across
runs, and maps it to voxels:

* macro (ROI) model, one VAR(1) per run ``r``::

      z_t = z_{t-1} @ A_r + e_t,   e_t[i] = innovation_std[r, i] * (unit-variance Laplace)

  ``A_r[i, j] != 0`` (``i != j``) means ROI ``i+1`` causes ROI ``j+1`` with lag one
  TR; the diagonal holds each ROI's own autoregression.
* micro (voxel) model: voxel ``v`` of ROI ``r``::

      x_v(t) = baseline_v + loading_v * s_r(t) + nuisance_v(t) + noise_v(t)

  where ``s_r = z_r`` (``hrf=False``) or ``z_r`` convolved with the Glover HRF
  (``hrf=True``). Background voxels carry ``baseline + nuisance + noise`` only.
  ``nuisance`` is a few spatially smooth, slowly varying components shared by all
  voxels (physiological-like), ``noise`` is white Gaussian.

Scenarios
---------
``"separated"``
    Well separated ROIs and a random directed graph (a spanning tree plus a few
    extra edges); some edges change strength or switch off across runs.
``"coupled"``
    As ``"separated"`` but ROIs 1 and 2 are adjacent (they share a border) and
    ROI 1 drives ROI 2 strongly, so their time courses are highly correlated:
    the case correlation parcellations merge. ROI 1 and ROI 2 have different
    effects on the other ROIs.
``"split_halves"``
    ROIs 1 and 2 are the two halves of one contiguous region. In most runs both
    halves receive the same input (from ROI 3) and behave almost identically; in
    the last run(s) they receive different inputs (ROI 3 and ROI 4 respectively).
    The true ROIs are the halves.
``"low_snr"``
    The ``"separated"`` layout with a low voxel signal-to-noise ratio.
``"hrf"``
    The ``"separated"`` layout with HRF-convolved BOLD signals.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from functools import lru_cache
from numbers import Real
from typing import Any

import numpy as np
from sklearn.utils import Bunch

from crl_neuro.core.validation import check_choice, check_float, check_generator, check_int

__all__ = ["simulate_fmri_rois", "draw_fmri_problem", "true_abstraction_error", "SCENARIOS"]

# Plausible cortical seed locations (MNI mm), far apart from each other.
_SEPARATED_SEEDS = [
    ("L occipital (V1/V2)", (-16.0, -90.0, 4.0)),
    ("R intraparietal sulcus", (34.0, -58.0, 46.0)),
    ("medial prefrontal", (0.0, 52.0, 12.0)),
    ("L primary motor", (-38.0, -24.0, 56.0)),
    ("R superior temporal", (56.0, -22.0, 6.0)),
    ("L inferior frontal", (-46.0, 24.0, 10.0)),
    ("R primary motor", (38.0, -24.0, 56.0)),
    ("L superior temporal", (-56.0, -22.0, 6.0)),
]
# Adjacent pair for "coupled": left dorsal premotor (cause) next to left M1 (effect).
_COUPLED_PAIR = [
    ("L dorsal premotor", (-30.0, -2.0, 58.0)),
    ("L primary motor", (-38.0, -26.0, 56.0)),
]
# One region split into halves for "split_halves": left intraparietal lobule.
_SPLIT_REGION = ("L intraparietal", (-34.0, -56.0, 46.0))
_SPLIT_OFFSET_MM = 10.0  # half-distance between the two half-seeds (anterior/posterior)
_SPLIT_HALVES = [
    (f"{_SPLIT_REGION[0]} (anterior half)", tuple(np.asarray(_SPLIT_REGION[1]) + [0.0, _SPLIT_OFFSET_MM, 0.0])),
    (f"{_SPLIT_REGION[0]} (posterior half)", tuple(np.asarray(_SPLIT_REGION[1]) - [0.0, _SPLIT_OFFSET_MM, 0.0])),
]


@dataclass(frozen=True)
class _ScenarioSpec:
    """What one ``scenario`` of :func:`simulate_fmri_rois` means, as data.

    ROI indices are 0-based. In ``fixed_weights`` and ``protected_edges`` a negative
    index counts from the last ROI and entries naming an ROI the problem does not have
    (index >= ``n_rois``) are skipped; the other indices must exist for every
    ``n_rois >= min_rois``.

    Attributes
    ----------
    snr : float
        Voxel SNR when ``snr=None``.
    hrf : bool
        The scenario is about HRF-convolved signals: ``hrf=None`` means True and
        ``hrf=False`` is an error. Otherwise ``hrf=None`` means False.
    min_runs, min_runs_reason : int, str
        Fewest runs the scenario needs, and why (part of the error message).
    min_rois : int
        Fewest ROIs.
    pair_roles : tuple of str
        Non-empty: ROIs 1 and 2 form an adjacent (border-sharing) pair; the roles
        tag their names with ``layout="random"``.
    atlas_pair, atlas_replaces : list of (name, MNI mm), str or None
        ``layout="atlas"``: seeds of the pair, placed first, and the name of the
        separated seed they replace.
    dag_excludes : tuple of int
        ROIs left out of the random DAG (their inputs are fixed below).
    forced_edges : tuple of (i, j)
        Edges added to the random DAG before its weights are drawn.
    fixed_weights, fixed_auto, fixed_innovation : tuples of (i, j, w), (i, a), (i, s)
        Weights, autoregressions and innovation scales set after the random draw,
        in this order.
    protected_edges : tuple of (i, j)
        Edges that never change across runs (except as below) and are never
        instantaneous.
    driver_edge : (i, j) or None
        The strong driver -> driven link: it weakens linearly to 70 % over the runs,
        ``coupling_correlation`` tunes it and ``truth.coupling_correlation`` reports
        the latent correlation of its two ROIs.
    rewiring : tuple of (i, j, w)
        Lagged weights set in the differing runs (the last ``max(1, n_runs // 3)``);
        empty: no differing runs.
    """

    snr: float = 1.0
    hrf: bool = False
    min_runs: int = 1
    min_runs_reason: str = ""
    min_rois: int = 2
    pair_roles: tuple[str, ...] = ()
    atlas_pair: tuple[tuple[str, tuple[float, float, float]], ...] = ()
    atlas_replaces: str | None = None
    dag_excludes: tuple[int, ...] = ()
    forced_edges: tuple[tuple[int, int], ...] = ()
    fixed_weights: tuple[tuple[int, int, float], ...] = ()
    fixed_auto: tuple[tuple[int, float], ...] = ()
    fixed_innovation: tuple[tuple[int, float], ...] = ()
    protected_edges: tuple[tuple[int, int], ...] = ()
    driver_edge: tuple[int, int] | None = None
    rewiring: tuple[tuple[int, int, float], ...] = ()


_SCENARIO_SPECS: dict[str, _ScenarioSpec] = {
    "separated": _ScenarioSpec(),
    "coupled": _ScenarioSpec(
        min_rois=3,
        pair_roles=("driver", "driven"),
        atlas_pair=tuple(_COUPLED_PAIR),
        atlas_replaces="L primary motor",
        # 0 (cause) -> 1 (effect) strong; cause slow; both have distinct effects elsewhere.
        dag_excludes=(1,),
        forced_edges=((0, 1),),
        # the effect has its own effect (not shared with the cause), with >= 4 ROIs
        fixed_weights=((0, 1, 0.9), (1, 3, 0.45), (0, 3, 0.0)),
        fixed_auto=((0, 0.9), (1, 0.2)),
        fixed_innovation=((1, 0.3),),
        protected_edges=((0, 1),),
        driver_edge=(0, 1),
    ),
    "split_halves": _ScenarioSpec(
        min_runs=2,
        min_runs_reason="the halves differ only in some runs",
        min_rois=4,
        pair_roles=("half A", "half B"),
        atlas_pair=tuple(_SPLIT_HALVES),
        atlas_replaces="R intraparietal sulcus",
        # 0, 1 halves; 2 drives both halves in the "same" runs; 3 drives half 1 in the
        # differing runs.
        dag_excludes=(0, 1),
        fixed_weights=(
            (2, 0, 0.8),
            (2, 1, 0.8),
            # The anterior half alone drives the last ROI: the halves have different effects,
            # so merging them is not an exact abstraction (even in the runs where they look alike).
            (0, -1, 0.45),
            # ROI 4 closely follows ROI 3 (one TR later), so the halves stay correlated even
            # in the runs where their inputs differ: only lagged/innovation information and
            # the change across runs separate them, not the correlation.
            (2, 3, 0.8),
        ),
        fixed_auto=((3, 0.3), (0, 0.5), (1, 0.5)),
        fixed_innovation=((3, 0.35), (0, 0.2), (1, 0.2)),
        protected_edges=((2, 0), (2, 1), (2, 3), (0, -1)),
        # half 2 loses the common input ... and is driven by ROI 4 instead
        rewiring=((2, 1, 0.0), (3, 1, 0.8)),
    ),
    "low_snr": _ScenarioSpec(snr=0.1),
    "hrf": _ScenarioSpec(hrf=True),
}
SCENARIOS = tuple(_SCENARIO_SPECS)


def _roi_index(i: int, n_rois: int) -> int | None:
    """Spec index -> ROI index (negative counts from the end; None when out of range)."""
    if i < 0:
        i += n_rois
    return i if 0 <= i < n_rois else None

_MAX_SPECTRAL_RADIUS = 0.95
_BURN_IN = 100


# ----------------------------------------------------------------------------- helpers
@lru_cache(maxsize=8)
def _mni_mask(resolution: float) -> tuple[np.ndarray, np.ndarray]:
    """Boolean brain mask on an MNI grid of ``resolution`` mm and its affine (cached)."""
    from nilearn import datasets, image
    from scipy import ndimage

    template = datasets.load_mni152_brain_mask(resolution=2)
    src_affine = template.affine
    shape = np.array(template.shape)
    corners = np.array(
        [[i, j, k, 1] for i in (0, shape[0] - 1) for j in (0, shape[1] - 1) for k in (0, shape[2] - 1)]
    )
    world = (src_affine @ corners.T).T[:, :3]
    lo = np.floor(world.min(0) / resolution) * resolution  # keeps MNI 0 on the grid
    hi = np.ceil(world.max(0) / resolution) * resolution
    tshape = tuple(int(s) for s in np.round((hi - lo) / resolution).astype(int) + 1)
    affine = np.eye(4)
    affine[:3, :3] *= resolution
    affine[:3, 3] = lo
    # Continuous interpolation + 0.5 threshold gives a smoother coarse mask than nearest.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "binary image, continuous interpolation": intended
        resampled = image.resample_img(
            image.new_img_like(template, template.get_fdata().astype(np.float32)),
            target_affine=affine,
            target_shape=tshape,
            interpolation="continuous",
            force_resample=True,
            copy_header=True,
        )
    mask = np.asarray(resampled.get_fdata()) > 0.5
    lab, n = ndimage.label(mask)
    if n > 1:
        sizes = ndimage.sum(mask, lab, index=np.arange(1, n + 1))
        mask = lab == (int(np.argmax(sizes)) + 1)
    mask = ndimage.binary_fill_holes(mask)
    mask.setflags(write=False)
    affine.setflags(write=False)
    return mask, affine


def _grow_regions(
    mask: np.ndarray,
    affine: np.ndarray,
    seeds_mm: list,
    sizes: list[int],
    taken: np.ndarray,
    jitter: np.ndarray | None = None,
    irregularity: float = 0.0,
) -> list[np.ndarray]:
    """Grow contiguous (6-connected) regions jointly from seed points.

    Each step gives the smallest unfinished region its frontier voxel of lowest
    priority: the squared distance to its seed (compact, ball-like regions), or with
    ``irregularity > 0`` the distance plus ``irregularity`` times the region's radius
    times a smooth random field ``jitter`` (lobulated, irregular shapes). Regions grown
    from nearby seeds end up sharing a border. Returns a list of (n_i, 3) voxel-index
    arrays; ``taken`` is updated in place (private array).
    """
    import heapq

    inv = np.linalg.inv(affine)
    mask_idx = np.argwhere(mask & ~taken)
    if mask_idx.shape[0] < sum(sizes):
        raise ValueError("the brain mask is too small for the requested ROI sizes; lower roi_size")
    world = (affine[:3, :3] @ mask_idx.T).T + affine[:3, 3]
    regions: list[list[tuple[int, int, int]]] = []
    centres = []
    for seed in seeds_mm:
        seed = np.asarray(seed, float)
        # Seed voxel: the free mask voxel nearest to the requested MNI point.
        start = tuple(int(v) for v in mask_idx[np.argmin(np.sum((world - seed) ** 2, 1))])
        if taken[start]:
            raise ValueError("two ROI seeds fell on the same voxel; use a finer resolution")
        taken[start] = True
        regions.append([start])
        centres.append((inv[:3, :3] @ seed) + inv[:3, 3])
    offsets = [(1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0), (0, 0, 1), (0, 0, -1)]
    shape = mask.shape
    radii = [(3.0 * n / (4.0 * np.pi)) ** (1.0 / 3.0) for n in sizes]  # in voxels

    def priority(k, v):
        c = centres[k]
        d2 = (v[0] - c[0]) ** 2 + (v[1] - c[1]) ** 2 + (v[2] - c[2]) ** 2
        if irregularity > 0 and jitter is not None:
            return (float(np.sqrt(d2) + irregularity * radii[k] * jitter[v]), v)
        return (d2, v)

    def push(k, vox):
        for off in offsets:
            nb = (vox[0] + off[0], vox[1] + off[1], vox[2] + off[2])
            if all(0 <= nb[d] < shape[d] for d in range(3)) and mask[nb] and not taken[nb]:
                heapq.heappush(heaps[k], priority(k, nb))

    heaps: list[list] = [[] for _ in regions]
    for k, reg in enumerate(regions):
        push(k, reg[0])
    while True:
        todo = [k for k in range(len(regions)) if len(regions[k]) < sizes[k]]
        if not todo:
            break
        k = min(todo, key=lambda q: (len(regions[q]) / sizes[q], q))
        heap = heaps[k]
        while heap and taken[heap[0][1]]:
            heapq.heappop(heap)
        if not heap:
            raise ValueError(
                "could not grow a contiguous ROI of the requested size inside the mask; lower roi_size"
            )
        best = heapq.heappop(heap)[1]
        taken[best] = True
        regions[k].append(best)
        push(k, best)
    return [np.array(reg, dtype=int) for reg in regions]


def _random_dag(rng: np.random.Generator, nodes: list[int], n_total: int, extra_prob: float = 0.25):
    """Random DAG over ``nodes`` (in causal order): a spanning tree plus extra edges."""
    adj = np.zeros((n_total, n_total), dtype=bool)
    for pos in range(1, len(nodes)):
        parent = nodes[int(rng.integers(pos))]
        adj[parent, nodes[pos]] = True
        for earlier in nodes[:pos]:
            if earlier != parent and rng.random() < extra_prob:
                adj[earlier, nodes[pos]] = True
    return adj


def _stabilise(A: np.ndarray, M: np.ndarray) -> np.ndarray:
    """Scale the lagged matrix so that the reduced-form transition ``A M`` is stable.

    ``M = (I - B)^-1`` folds in the same-volume links (identity without them).
    """
    rho = np.max(np.abs(np.linalg.eigvals(A @ M)))
    return A * (_MAX_SPECTRAL_RADIUS / rho) if rho > _MAX_SPECTRAL_RADIUS else A


def _smooth_field(rng: np.random.Generator, mask: np.ndarray, sigma_vox: float) -> np.ndarray:
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(mask.shape), sigma=sigma_vox)
    vals = field[mask]
    return (vals - vals.mean()) / vals.std()


def _crop_to_box(mask: np.ndarray, affine: np.ndarray, box: Any) -> tuple[np.ndarray, np.ndarray]:
    """Crop the mask grid to an MNI bounding box (a partial field of view).

    Keeps the largest connected piece of the brain inside the box and shifts the
    affine so that world coordinates are unchanged.
    """
    from scipy import ndimage

    try:
        lo_hi = np.asarray(box, dtype=float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"bounding_box must be ((xmin, xmax), (ymin, ymax), (zmin, zmax)) in MNI mm: {err}") from err
    if lo_hi.shape != (3, 2) or not np.all(np.isfinite(lo_hi)) or np.any(lo_hi[:, 1] <= lo_hi[:, 0]):
        raise ValueError(
            "bounding_box must be ((xmin, xmax), (ymin, ymax), (zmin, zmax)) in MNI mm with min < max, "
            f"got {box!r}"
        )
    inv = np.linalg.inv(affine)
    ijk = np.stack([inv[:3, :3] @ lo_hi[:, c] + inv[:3, 3] for c in (0, 1)])
    lo = np.clip(np.floor(ijk.min(0)).astype(int), 0, np.array(mask.shape) - 1)
    hi = np.clip(np.ceil(ijk.max(0)).astype(int) + 1, 1, np.array(mask.shape))
    sub = mask[lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]].copy()
    lab, n = ndimage.label(sub)
    if n == 0:
        raise ValueError(f"bounding_box {box!r} does not overlap the brain")
    if n > 1:
        sizes = ndimage.sum(sub, lab, index=np.arange(1, n + 1))
        sub = lab == (int(np.argmax(sizes)) + 1)
    new_affine = affine.copy()
    new_affine[:3, 3] = affine[:3, :3] @ lo + affine[:3, 3]
    return sub, new_affine


def _random_seeds(
    rng: np.random.Generator, mask: np.ndarray, affine: np.ndarray, sizes: list[int], n_pair: int,
    resolution: float,
) -> list[np.ndarray]:
    """Random ROI seeds in cortex-like voxels (within 12 mm of the brain's edge).

    The first ``n_pair`` (0 or 2) seeds form an adjacent pair: the second lies at
    about the sum of the two regions' radii from the first, so the grown regions share
    a border. The others keep at least 1.2 times the sum of radii (plus a voxel) from
    every seed placed so far, relaxed gradually when the field of view is crowded.
    """
    from scipy import ndimage

    depth = ndimage.distance_transform_edt(mask) * resolution
    cand = np.argwhere(mask & (depth <= 12.0) & (depth >= min(resolution, 4.0)))
    if cand.shape[0] < len(sizes):
        cand = np.argwhere(mask)
    world = (affine[:3, :3] @ cand.T).T + affine[:3, 3]
    radii = np.array([(3.0 * n / (4.0 * np.pi)) ** (1.0 / 3.0) * resolution for n in sizes])
    seeds: list[np.ndarray] = []
    if n_pair:
        first = world[int(rng.integers(world.shape[0]))]
        d = np.linalg.norm(world - first, axis=1)
        want = radii[0] + radii[1]
        ok = np.flatnonzero(np.abs(d - want) <= 0.3 * want + resolution)
        second = world[int(rng.choice(ok))] if ok.size else world[int(np.argmin(np.abs(d - want) + (d == 0) * 1e9))]
        seeds += [first, second]
    factor = 1.2
    while len(seeds) < len(sizes):
        k = len(seeds)
        for _ in range(400):
            p = world[int(rng.integers(world.shape[0]))]
            if all(np.linalg.norm(p - q) >= factor * (radii[k] + radii[j]) + resolution for j, q in enumerate(seeds)):
                seeds.append(p)
                break
        else:
            factor *= 0.85
            if factor < 0.3:
                # crowded field of view: the candidate farthest from every seed (relative to
                # the radii), so the regions still get distinct seeds and grow side by side
                rel = np.min(
                    [np.linalg.norm(world - q, axis=1) / (radii[k] + radii[j]) for j, q in enumerate(seeds)], axis=0
                )
                best = int(np.argmax(rel))
                if np.min([np.linalg.norm(world[best] - q) for q in seeds]) < resolution:
                    raise ValueError(
                        "cannot place that many ROIs of that size in the field of view; lower n_rois or roi_size"
                    )
                seeds.append(world[best])
                factor = 1.2
    return seeds


def _double_gamma_hrf(t_r: float, peak: float, dispersion: float, undershoot: float) -> np.ndarray:
    """SPM-style double-gamma HRF sampled at ``t_r`` (32 s), scaled to unit energy."""
    from scipy import stats

    t = np.arange(0.0, 32.0, t_r)
    h = stats.gamma.pdf(t, peak / dispersion, scale=dispersion) - stats.gamma.pdf(
        t, undershoot / dispersion, scale=dispersion
    ) / 6.0
    return h / np.sqrt(np.sum(h**2))


def _match_coupling(
    A: np.ndarray, M: np.ndarray, innov: np.ndarray, target: float, edge: tuple[int, int] = (0, 1)
) -> float:
    """Weight of the edge ``i -> j`` (``edge``) that gives their latent signals correlation ``target``.

    Bisection on the stationary correlation of ``z_t = (z_{t-1} A + e_t) M`` (``M`` the
    instantaneous mixing); the matrix is stabilised as in the simulation.
    """
    from scipy import linalg

    i, j = edge

    def corr(c):
        B = A.copy()
        B[i, j] = c
        T = _stabilise(B, M) @ M
        Q = M.T @ np.diag(innov**2) @ M
        S = linalg.solve_discrete_lyapunov(T.T, Q)
        return S[i, j] / np.sqrt(S[i, i] * S[j, j])

    lo, hi = 0.0, 3.0
    if corr(hi) < target:
        return hi
    for _ in range(50):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if corr(mid) < target else (lo, mid)
    return (lo + hi) / 2


def _motion_parameters(rng: np.random.Generator, n: int, rms_mm: float) -> np.ndarray:
    """Six rigid-body parameters (3 translations in mm, 3 rotations in degrees).

    A slow random walk plus two abrupt jumps (a head movement), scaled so that the
    translations have root-mean-square ``rms_mm`` about their mean.
    """
    steps = rng.standard_normal((n, 6)) * 0.1
    for _ in range(2):
        steps[int(rng.integers(1, n)), :] += rng.standard_normal(6)
    m = np.cumsum(steps, axis=0)
    m -= m.mean(axis=0)
    scale = rms_mm / max(float(np.sqrt(np.mean(m[:, :3] ** 2))), 1e-12)
    return m * scale


def _motion_maps(intensity: np.ndarray, mask: np.ndarray, affine: np.ndarray, resolution: float) -> np.ndarray:
    """Intensity change per unit of each motion parameter, at every mask voxel (6, n_voxels).

    First-order effect of moving the head image: translations give the spatial
    gradient of the intensity image (largest at the brain's edge), rotations (per
    degree) the gradient dotted with the rotation of each voxel's position.
    """
    from scipy import ndimage

    vol = ndimage.gaussian_filter(intensity, sigma=1.0)
    grads = np.stack([g / resolution for g in np.gradient(vol)])  # per mm, voxel axes
    pos = (affine[:3, :3] @ np.argwhere(mask).T).T + affine[:3, 3]
    pos -= pos.mean(axis=0)
    g = grads[:, mask].T  # (n_vox, 3)
    rad = np.pi / 180.0
    rot = np.stack([np.cross(np.eye(3)[a], pos) * rad for a in range(3)])  # displacement per degree
    maps = [g[:, a] for a in range(3)] + [np.sum(g * rot[a], axis=1) for a in range(3)]
    return np.stack(maps)


# ----------------------------------------------------------------------------- main
def simulate_fmri_rois(
    scenario: str = "separated",
    n_runs: int = 3,
    n_timepoints: Any = 200,
    t_r: float = 2.0,
    snr: float | None = None,
    hrf: bool | None = None,
    resolution: float = 8.0,
    n_rois: int | None = None,
    roi_size: Any = None,
    nuisance: float = 0.3,
    baseline: float = 100.0,
    layout: str = "atlas",
    bounding_box: Any = None,
    irregularity: float = 0.0,
    hrf_variability: float = 0.0,
    instantaneous: float = 0.0,
    coupling_correlation: float | None = None,
    drift: float = 0.0,
    motion: float = 0.0,
    noise_smoothness: float = 0.0,
    random_state: Any = 0,
) -> Bunch:
    """Simulate fMRI runs of a voxel model whose exact abstraction is a set of causal ROIs.

    See the module docstring for the generative model and the scenarios;
    :func:`draw_fmri_problem` draws the settings of the randomised benchmark family.

    Parameters
    ----------
    scenario : {"separated", "coupled", "split_halves", "low_snr", "hrf"}
        Spatial layout and ROI-level causal model (see module docstring).
    n_runs : int
        Number of runs (distributions). The ROI-level mechanisms change across runs.
        ``"split_halves"`` needs at least 2.
    n_timepoints : int | sequence of int
        Volumes per run (>= 20), or one length per run.
    t_r : float
        Repetition time in seconds (stored in the image headers; used for the HRF).
    snr : float or None
        Per-voxel signal-to-noise variance ratio inside ROIs:
        ``var(loading * s_r) / noise_std**2``. ``numpy.inf`` gives noise-free voxels.
        None: 1.0, or 0.1 for ``"low_snr"``.
    hrf : bool or None
        Convolve ROI signals with a haemodynamic response. None: True for ``"hrf"``,
        False otherwise. ``scenario="hrf"`` with ``hrf=False`` is an error.
    resolution : float
        Voxel size in mm of the MNI grid, in [2, 12]. 8 mm gives ~3,600 brain voxels,
        2 mm about 230,000 (whole brain).
    n_rois : int or None
        Number of ROIs. None: 5. Range: 2–8 (``"separated"``, ``"low_snr"``, ``"hrf"``),
        3–8 (``"coupled"``), 4–8 (``"split_halves"``); up to 16 with ``layout="random"``.
    roi_size : int | (int, int) | None
        Voxels per ROI (each half in ``"split_halves"``), or a (min, max) range from
        which each ROI's size is drawn. None: about 20 ml
        (``round(20000 / resolution**3)``, at least 8).
    nuisance : float
        Standard deviation of the spatially smooth nuisance signal relative to the
        median voxel noise standard deviation (>= 0). Added to every voxel.
        With ``snr=inf`` it is relative to the median ROI signal standard deviation.
    baseline : float
        Mean intensity of brain voxels (>= 0); varies smoothly by about ±5 %.
    layout : {"atlas", "random"}
        ``"atlas"``: ROIs grown from fixed plausible cortical locations (named in
        ``truth.roi_names``). ``"random"``: seeds drawn in cortex-like voxels (within
        12 mm of the brain's edge) of the field of view; the adjacent pair of
        ``"coupled"``/``"split_halves"`` is placed at random too.
    bounding_box : ((xmin, xmax), (ymin, ymax), (zmin, zmax)) | None
        Field of view in MNI mm: the images are cropped to it (partial coverage).
        Needs ``layout="random"``. None: whole brain.
    irregularity : float
        Shape irregularity of the ROIs (>= 0): 0 grows compact, ball-like regions; 1
        gives lobulated regions (growth order perturbed by a smooth random field).
    hrf_variability : float
        In [0, 1]. 0: Nilearn's Glover HRF for every ROI. Otherwise each ROI gets its
        own double-gamma HRF with peak time ``6 s ± 2 s * hrf_variability``,
        dispersion ``1 ± 0.3 * hrf_variability`` and undershoot ``16 s ± 3 s *
        hrf_variability`` (uniform draws). Needs ``hrf=True``.
    instantaneous : float
        In [0, 1]: expected fraction of the (non-protected) causal links that act
        within the same volume instead of with a one-TR lag.
    coupling_correlation : float | None
        ``"coupled"`` only: the driver -> driven weight is set so that the two ROIs'
        latent signals correlate this much in the first run (in (0, 1)). None keeps
        the fixed weight 0.9.
    drift : float
        Scanner drift: slow cosine drifts (periods of the run length down to a third
        of it) with spatially smooth amplitudes, standard deviation ``drift`` times
        the median voxel noise standard deviation (>= 0).
    motion : float
        Head motion: root-mean-square translation in mm (>= 0; 0.05-0.3 is typical).
        Each run gets six rigid-body parameters (a slow drift plus two jumps,
        ``truth.motion``, usable as Nilearn ``confounds``). Their effect on the
        voxels is the first-order image change (largest at the brain's edge) plus a
        spin-history term proportional to the previous volume's displacement, which
        regressing the six parameters does not remove.
    noise_smoothness : float
        Spatial smoothness of the voxel noise: Gaussian kernel sigma in voxels (>= 0;
        the noise variance is kept).
    random_state : int, numpy Generator or None
        Seed; fixes the layout, the causal model and all noise.

    Returns
    -------
    data : sklearn.utils.Bunch
        ``imgs``
            list of 4D ``Nifti1Image`` (float32), one per run, ``n_timepoints`` volumes.
        ``mask_img``
            3D ``Nifti1Image`` (uint8) brain mask on the MNI grid.
        ``labels_img``
            3D ``Nifti1Image`` (int32): 0 background, ``1..n_rois`` the true ROIs.
        ``roi_graph``
            (n_rois, n_rois) float, ``[i, j] != 0`` means ROI i+1 -> ROI j+1 in at least
            one run, lagged or instantaneous (value: the mean absolute weight over runs;
            zero diagonal).
        ``truth``
            Bunch with:
            ``run_coupling`` (n_runs, n_rois, n_rois) lagged matrices ``A_r`` and
            ``run_instantaneous`` (n_runs, n_rois, n_rois) same-volume matrices ``B_r``
            (``z_t = z_t @ B_r + z_{t-1} @ A_r + e_t``; diagonal of ``A_r`` =
            autoregression, ``B_r`` strictly acyclic);
            ``run_graphs`` (n_runs, n_rois, n_rois) bool off-diagonal edges per run;
            ``instantaneous_edges`` (n_rois, n_rois) bool: links acting within a volume;
            ``changing_edges`` (n_rois, n_rois) bool: edges whose weight differs across
            runs (including switched off);
            ``innovation_std`` (n_runs, n_rois) scales of the Laplace innovations;
            ``roi_timeseries`` list per run of (n_timepoints, n_rois) latent ``z``;
            ``roi_signals`` list per run of (n_timepoints, n_rois) ``s`` (= ``z`` without
            HRF, HRF-convolved ``z`` otherwise), the signal the voxels load on;
            ``voxel_labels`` (n_mask_voxels,) int in ``NiftiMasker(mask_img).fit()
            .transform(img)`` column order (0 = background);
            ``loadings`` (n_mask_voxels,) (0 for background);
            ``noise_std`` (n_mask_voxels,); ``baseline`` (n_mask_voxels,);
            ``nuisance_maps`` (n_nuisance, n_mask_voxels) and ``nuisance_timeseries``
            (list per run of (n_timepoints, n_nuisance)), already scaled so that the
            nuisance term is ``nuisance_timeseries[r] @ nuisance_maps``;
            ``motion`` (list per run of (n_timepoints, 6) rigid-body parameters; zeros
            without motion); ``voxel_coords_mni`` (n_mask_voxels, 3) mm;
            ``voxel_ijk`` (n_mask_voxels, 3) voxel indices in the image grid;
            ``roi_names`` (list); ``roi_seeds_mni`` (n_rois, 3); ``roi_centroids_mni``
            (n_rois, 3); ``hrf`` (bool); ``hrf_kernel`` (ndarray or None, sampled at
            ``t_r``; the first ROI's with ``hrf_variability``) and ``hrf_kernels``
            (list per ROI or None); ``scenario``; ``snr``; ``t_r``; ``differing_runs``
            (runs in which the halves of ``"split_halves"`` receive different inputs;
            empty otherwise); ``coupling_correlation`` (the driver/driven latent
            correlation per run for ``"coupled"``, else None).
        ``description``
            str, a short human-readable summary.

    Raises
    ------
    ValueError, TypeError
        For bad arguments (the message names the argument).

    Examples
    --------
    >>> from crl_neuro.datasets import simulate_fmri_rois
    >>> data = simulate_fmri_rois("coupled", random_state=0)
    >>> data.imgs[0].shape[-1], int(data.labels_img.get_fdata().max())
    (200, 5)
    """
    # ---------------------------------------------------------------- validation
    check_choice(scenario, "scenario", SCENARIOS)
    spec = _SCENARIO_SPECS[scenario]
    n_runs = check_int(n_runs, "n_runs", min_value=1, max_value=100)
    if n_runs < spec.min_runs:
        raise ValueError(f"n_runs must be >= {spec.min_runs} for scenario={scenario!r} ({spec.min_runs_reason})")
    if isinstance(n_timepoints, (list, tuple, np.ndarray)):
        if len(n_timepoints) != n_runs:
            raise ValueError(f"n_timepoints must be an int or have one entry per run ({n_runs}), got {len(n_timepoints)}")
        lengths = [check_int(n, "n_timepoints", min_value=20) for n in n_timepoints]
    else:
        lengths = [check_int(n_timepoints, "n_timepoints", min_value=20)] * n_runs
    t_r = check_float(t_r, "t_r", min_value=0.0, inclusive=False)
    if snr is None:
        snr = spec.snr
    if isinstance(snr, bool) or not isinstance(snr, Real):
        raise TypeError(f"snr must be a positive number (or numpy.inf), got {type(snr).__name__}")
    snr = float(snr)
    if np.isnan(snr) or snr <= 0:
        raise ValueError(f"snr must be > 0 (numpy.inf for no noise), got {snr}")
    if hrf is None:
        hrf = spec.hrf
    if not isinstance(hrf, (bool, np.bool_)):
        raise TypeError(f"hrf must be a bool or None, got {type(hrf).__name__}")
    hrf = bool(hrf)
    if spec.hrf and not hrf:
        raise ValueError(f"hrf=False contradicts scenario={scenario!r}; use scenario='separated' for no HRF")
    resolution = check_float(resolution, "resolution", min_value=2.0, max_value=12.0)
    layout = check_choice(layout, "layout", ("atlas", "random"))
    min_rois = spec.min_rois
    max_rois = 8 if layout == "atlas" else 16
    n_rois = 5 if n_rois is None else check_int(n_rois, "n_rois", min_value=min_rois, max_value=max_rois)
    if roi_size is None:
        roi_size = max(8, int(round(20000.0 / resolution**3)))
    if isinstance(roi_size, (list, tuple, np.ndarray)):
        if len(roi_size) != 2:
            raise ValueError(f"roi_size must be an int or a (min, max) pair, got {roi_size!r}")
        lo_size = check_int(roi_size[0], "roi_size", min_value=2)
        hi_size = check_int(roi_size[1], "roi_size", min_value=lo_size)
    else:
        lo_size = hi_size = check_int(roi_size, "roi_size", min_value=2)
    nuisance = check_float(nuisance, "nuisance", min_value=0.0)
    baseline = check_float(baseline, "baseline", min_value=0.0)
    irregularity = check_float(irregularity, "irregularity", min_value=0.0, max_value=5.0)
    hrf_variability = check_float(hrf_variability, "hrf_variability", min_value=0.0, max_value=1.0)
    if hrf_variability > 0 and not hrf:
        raise ValueError("hrf_variability > 0 needs hrf=True (region-specific HRFs)")
    instantaneous = check_float(instantaneous, "instantaneous", min_value=0.0, max_value=1.0)
    if coupling_correlation is not None:
        if spec.driver_edge is None:
            tunable = " or ".join(f"scenario={name!r}" for name, sp in _SCENARIO_SPECS.items() if sp.driver_edge)
            raise ValueError(f"coupling_correlation applies to {tunable} only")
        coupling_correlation = check_float(coupling_correlation, "coupling_correlation", 0.0, 1.0, inclusive=False)
    drift = check_float(drift, "drift", min_value=0.0)
    motion = check_float(motion, "motion", min_value=0.0, max_value=10.0)
    noise_smoothness = check_float(noise_smoothness, "noise_smoothness", min_value=0.0, max_value=5.0)
    if bounding_box is not None and layout != "random":
        raise ValueError("bounding_box needs layout='random' (the atlas seeds may fall outside the box)")
    rng = check_generator(random_state)

    # ---------------------------------------------------------------- layout
    mask, affine = _mni_mask(resolution)
    if bounding_box is not None:
        mask, affine = _crop_to_box(mask, affine, bounding_box)
    else:
        mask, affine = mask.copy(), affine.copy()
    taken = np.zeros(mask.shape, dtype=bool)
    if layout == "atlas":
        special = list(spec.atlas_pair)
        others = [s for s in _SEPARATED_SEEDS if s[0] != spec.atlas_replaces]
        seeds = (special + others)[:n_rois]
        sizes = [lo_size] * n_rois if lo_size == hi_size else [int(v) for v in rng.integers(lo_size, hi_size + 1, n_rois)]
    else:
        sizes = [int(v) for v in rng.integers(lo_size, hi_size + 1, n_rois)]
        if sum(sizes) > 0.6 * mask.sum():
            raise ValueError(
                f"the ROIs ({sum(sizes)} voxels) do not fit in the field of view ({int(mask.sum())} brain voxels); "
                "lower roi_size or n_rois, or enlarge bounding_box"
            )
        role = spec.pair_roles
        pts = _random_seeds(rng, mask, affine, sizes, 2 if role else 0, resolution)
        seeds = []
        for k, p in enumerate(pts):
            tag = f" ({role[k]})" if k < len(role) else ""
            seeds.append((f"ROI {k + 1} at ({p[0]:.0f}, {p[1]:.0f}, {p[2]:.0f}){tag}", tuple(float(v) for v in p)))
    jitter = _smooth_field(rng, np.ones(mask.shape, bool), 1.5).reshape(mask.shape) if irregularity > 0 else None
    regions = _grow_regions(mask, affine, [s[1] for s in seeds], sizes, taken, jitter, irregularity)

    label_vol = np.zeros(mask.shape, dtype=np.int32)
    for k, reg in enumerate(regions):
        label_vol[tuple(reg.T)] = k + 1
    vox_idx = np.argwhere(mask)  # C order == NiftiMasker column order
    n_vox = vox_idx.shape[0]
    voxel_labels = label_vol[mask].astype(int)
    coords = (affine[:3, :3] @ vox_idx.T).T + affine[:3, 3]
    centroids = np.array([coords[voxel_labels == k + 1].mean(0) for k in range(n_rois)])

    # ---------------------------------------------------------------- ROI-level causal model
    K = n_rois
    base = np.zeros((K, K))
    auto = rng.uniform(0.5, 0.8, size=K)
    innov_base = rng.uniform(0.8, 1.2, size=K)
    def at(*idx: int) -> tuple[int, ...] | None:  # spec indices -> ROI indices (None: no such ROI)
        out = tuple(_roi_index(i, K) for i in idx)
        return None if None in out else out

    differing_runs: list[int] = []
    if spec.rewiring:
        n_diff = max(1, n_runs // 3)
        differing_runs = list(range(n_runs - n_diff, n_runs))
    adj = _random_dag(rng, [k for k in range(K) if k not in spec.dag_excludes], K)
    for i, j in spec.forced_edges:
        adj[i, j] = True
    base[adj] = rng.uniform(0.3, 0.5, size=adj.sum()) * rng.choice([-1.0, 1.0], size=adj.sum(), p=[0.3, 0.7])
    for i, j, w in spec.fixed_weights:
        if (ij := at(i, j)) is not None:
            base[ij] = w
    for i, a in spec.fixed_auto:
        auto[i] = a
    for i, sd in spec.fixed_innovation:
        innov_base[i] = sd

    edges = np.argwhere(base != 0)
    protected = {ij for i, j in spec.protected_edges if (ij := at(i, j)) is not None}
    # Changing edges: about 40 % of the others (at least one), per-run strength
    # factors and, when n_runs >= 2, switched off in one run.
    candidates = [tuple(e) for e in edges if tuple(e) not in protected]
    changing = [e for e in candidates if rng.random() < 0.4]
    if not changing and candidates and n_runs >= 2:
        changing = [candidates[int(rng.integers(len(candidates)))]]
    A = np.repeat(base[None], n_runs, axis=0)
    if n_runs >= 2:
        for e in changing:
            A[:, e[0], e[1]] *= rng.uniform(0.5, 1.5, size=n_runs)
            A[int(rng.integers(n_runs)), e[0], e[1]] = 0.0
        if spec.driver_edge is not None:
            i, j = spec.driver_edge
            A[:, i, j] = base[i, j] * np.linspace(1.0, 0.7, n_runs)  # coupling weakens across runs
        for r in differing_runs:
            for i, j, w in spec.rewiring:
                A[r, i, j] = w
    # Same-volume links: a random share of the non-protected edges (all drawn from a
    # DAG, so the instantaneous part is acyclic).
    inst_edges = np.zeros((K, K), dtype=bool)
    if instantaneous > 0:
        for e in candidates:
            if rng.random() < instantaneous:
                inst_edges[e] = True
    Binst = np.where(inst_edges[None], A, 0.0)
    A = np.where(inst_edges[None], 0.0, A)
    Ms = [np.linalg.inv(np.eye(K) - Binst[r]) for r in range(n_runs)]
    innovation_std = innov_base[None] * rng.uniform(0.7, 1.4, size=(n_runs, K))
    if coupling_correlation is not None:
        A0 = A[0].copy()
        A0[np.diag_indices(K)] = auto
        i, j = spec.driver_edge
        c = _match_coupling(A0, Ms[0], innovation_std[0], coupling_correlation, edge=(i, j))
        A[:, i, j] = c * (np.linspace(1.0, 0.7, n_runs) if n_runs >= 2 else 1.0)
    for r in range(n_runs):
        A[r][np.diag_indices(K)] = auto
        A[r] = _stabilise(A[r], Ms[r])
    run_graphs = (A != 0) | (Binst != 0)
    run_graphs[:, np.arange(K), np.arange(K)] = False
    changing_edges = np.zeros((K, K), dtype=bool)
    if n_runs >= 2:
        changing_edges = run_graphs.any(0) & ~(
            np.all(np.isclose(A, A[:1]), axis=0) & np.all(np.isclose(Binst, Binst[:1]), axis=0)
        )
        changing_edges[np.diag_indices(K)] = False
    roi_graph = np.where(run_graphs.any(0), np.abs(A + Binst).mean(0), 0.0)
    coupling_corr = None
    if spec.driver_edge is not None:
        from crl_neuro.core.abstraction import stationary_covariance

        i, j = spec.driver_edge
        coupling_corr = []
        for r in range(n_runs):
            S = stationary_covariance(A[r] @ Ms[r], Ms[r].T @ np.diag(innovation_std[r] ** 2) @ Ms[r])
            coupling_corr.append(float(S[i, j] / np.sqrt(S[i, i] * S[j, j])))

    # ---------------------------------------------------------------- latent dynamics
    hrf_kernel, hrf_kernels = None, None
    if hrf:
        from nilearn.glm.first_level import glover_hrf

        if hrf_variability > 0:
            u = rng.uniform(-1.0, 1.0, size=(K, 3)) * hrf_variability
            hrf_kernels = [
                _double_gamma_hrf(t_r, 6.0 + 2.0 * a, 1.0 + 0.3 * b, 16.0 + 3.0 * c) for a, b, c in u
            ]
            hrf_kernel = hrf_kernels[0]
        else:
            hrf_kernel = glover_hrf(t_r, oversampling=1, time_length=32.0)
            hrf_kernel = hrf_kernel / np.sqrt(np.sum(hrf_kernel**2))  # keeps white-noise variance
    latents, signals = [], []
    for r in range(n_runs):
        n_total = _BURN_IN + lengths[r]
        # Unit-variance Laplace innovations (non-Gaussian, as identifiability needs).
        e = rng.laplace(scale=1.0 / np.sqrt(2.0), size=(n_total, K)) * innovation_std[r]
        z = np.zeros((n_total, K))
        if instantaneous > 0:
            for t in range(1, n_total):
                z[t] = (z[t - 1] @ A[r] + e[t]) @ Ms[r]
        else:
            for t in range(1, n_total):
                z[t] = z[t - 1] @ A[r] + e[t]
        if hrf:
            from scipy.signal import lfilter

            if hrf_kernels is None:
                s = lfilter(hrf_kernel, [1.0], z, axis=0)
            else:
                s = np.stack([lfilter(hrf_kernels[k], [1.0], z[:, k]) for k in range(K)], axis=1)
        else:
            s = z
        latents.append(z[_BURN_IN:].copy())
        signals.append(s[_BURN_IN:].copy())

    # ---------------------------------------------------------------- voxel model
    loadings = np.zeros(n_vox)
    in_roi = voxel_labels > 0
    loadings[in_roi] = rng.uniform(0.6, 1.4, size=int(in_roi.sum()))
    roi_sd = np.concatenate(signals).std(0)  # pooled over runs
    sig_sd = np.zeros(n_vox)
    sig_sd[in_roi] = loadings[in_roi] * roi_sd[voxel_labels[in_roi] - 1]
    noise_std = np.zeros(n_vox)
    if np.isfinite(snr):
        noise_std[in_roi] = sig_sd[in_roi] / np.sqrt(snr)
        ref = np.median(noise_std[in_roi])
        noise_std[~in_roi] = ref * rng.uniform(0.8, 1.2, size=int((~in_roi).sum()))
        noise_ref = ref
    else:
        noise_ref = float(np.median(sig_sd[in_roi]))
    n_nuis = 3
    nuis_maps = np.stack([_smooth_field(rng, mask, sigma_vox=12.0 / resolution * 2) for _ in range(n_nuis)])
    nuis_maps *= nuisance * noise_ref / np.sqrt(n_nuis)
    nuis_ts = []
    for r in range(n_runs):
        # Slow AR(1) nuisance time courses with unit variance.
        n_total = _BURN_IN + lengths[r]
        u = rng.standard_normal((n_total, n_nuis))
        w = np.zeros_like(u)
        for t in range(1, n_total):
            w[t] = 0.95 * w[t - 1] + u[t]
        w = w[_BURN_IN:]
        nuis_ts.append((w - w.mean(0)) / w.std(0))
    base_int = baseline * (1.0 + 0.05 * _smooth_field(rng, mask, sigma_vox=2.0)) if baseline > 0 else np.zeros(n_vox)
    drift_maps = None
    if drift > 0:
        # three slow cosines (periods: run length, 1/2, 1/3), smooth amplitude maps plus
        # a voxel-specific part
        drift_maps = np.stack(
            [0.7 * _smooth_field(rng, mask, sigma_vox=20.0 / resolution) + 0.3 * rng.standard_normal(n_vox) for _ in range(3)]
        ) * (drift * noise_ref / np.sqrt(3.0))
    motion_pars = [np.zeros((n, 6)) for n in lengths]
    motion_maps = None
    if motion > 0:
        vol = np.zeros(mask.shape)
        vol[mask] = base_int if baseline > 0 else noise_ref * 50.0
        motion_maps = _motion_maps(vol, mask, affine, resolution)
        motion_pars = [_motion_parameters(rng, n, motion) for n in lengths]

    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_xyzt_units("mm", "sec")
    imgs = []
    for r in range(n_runs):
        n_t = lengths[r]
        X = base_int[None] + nuis_ts[r] @ nuis_maps
        X[:, in_roi] += signals[r][:, voxel_labels[in_roi] - 1] * loadings[in_roi]
        if noise_smoothness > 0:
            X += _smooth_noise(rng, mask, n_t, noise_smoothness) * noise_std
        else:
            X += rng.standard_normal((n_t, n_vox)) * noise_std
        if drift_maps is not None:
            tt = (np.arange(n_t) + 0.5) / n_t
            X += np.stack([np.cos(np.pi * (k + 1) * tt) * np.sqrt(2.0) for k in range(3)], axis=1) @ drift_maps
        if motion_maps is not None:
            disp = motion_pars[r] @ motion_maps
            # spin history: the previous volume's displacement leaves a trace
            X += disp + 0.5 * np.vstack([np.zeros((1, n_vox)), disp[:-1]]) * rng.uniform(0.5, 1.5)
        vol = np.zeros(mask.shape + (n_t,), dtype=np.float32)
        vol[mask] = X.T
        img = nib.Nifti1Image(vol, affine.copy(), header=header.copy())
        img.header.set_zooms((resolution,) * 3 + (t_r,))
        imgs.append(img)
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), affine.copy())
    labels_img = nib.Nifti1Image(label_vol, affine.copy())
    labels_img.set_data_dtype(np.int32)

    truth = Bunch(
        run_coupling=A,
        run_instantaneous=Binst,
        run_graphs=run_graphs,
        instantaneous_edges=inst_edges,
        changing_edges=changing_edges,
        innovation_std=innovation_std,
        roi_timeseries=latents,
        roi_signals=signals,
        voxel_labels=voxel_labels,
        loadings=loadings,
        noise_std=noise_std,
        baseline=base_int,
        nuisance_maps=nuis_maps,
        nuisance_timeseries=nuis_ts,
        motion=motion_pars,
        voxel_coords_mni=coords,
        voxel_ijk=vox_idx,
        roi_names=[s[0] for s in seeds],
        roi_seeds_mni=np.array([s[1] for s in seeds], float),
        roi_centroids_mni=centroids,
        hrf=hrf,
        hrf_kernel=hrf_kernel,
        hrf_kernels=hrf_kernels,
        scenario=scenario,
        snr=snr,
        t_r=t_r,
        differing_runs=differing_runs,
        coupling_correlation=coupling_corr,
    )
    len_txt = f"{lengths[0]}" if len(set(lengths)) == 1 else "/".join(str(n) for n in lengths)
    description = (
        f"simulate_fmri_rois(scenario={scenario!r}): {n_runs} runs x {len_txt} volumes "
        f"(TR {t_r:g} s) on a {resolution:g} mm MNI grid, {n_vox} brain voxels, {K} ROIs of "
        f"{sizes[0] if len(set(sizes)) == 1 else f'{min(sizes)}-{max(sizes)}'} voxels "
        f"({int(in_roi.sum())} ROI voxels, the rest background), "
        f"{int(run_graphs.any(0).sum())} directed ROI edges ({int(changing_edges.sum())} changing "
        f"across runs, {int(inst_edges.sum())} instantaneous), voxel SNR {snr:g}, HRF {'on' if hrf else 'off'}."
    )
    return Bunch(
        imgs=imgs,
        mask_img=mask_img,
        labels_img=labels_img,
        roi_graph=roi_graph,
        truth=truth,
        description=description,
    )


def _smooth_noise(rng: np.random.Generator, mask: np.ndarray, n_t: int, sigma: float) -> np.ndarray:
    """Unit-variance Gaussian noise, spatially smoothed with a Gaussian of ``sigma`` voxels."""
    from scipy import ndimage

    out = np.empty((n_t, int(mask.sum())))
    # variance of a smoothed white field (away from the grid's edge)
    probe = np.zeros((int(8 * sigma) + 3,) * 3)
    probe[(probe.shape[0] // 2,) * 3] = 1.0
    scale = np.sqrt(np.sum(ndimage.gaussian_filter(probe, sigma) ** 2))
    for t in range(n_t):
        out[t] = ndimage.gaussian_filter(rng.standard_normal(mask.shape), sigma)[mask] / scale
    return out


def draw_fmri_problem(random_state: Any = None, kind: str | None = None) -> dict[str, Any]:
    """Draw the settings of one problem of the randomised fMRI benchmark family.

    Every draw randomises what real data vary: grid (2, 3 or 4 mm) and field of view
    (6,000-20,000 brain voxels around a random point; the whole brain when smaller),
    ROI count (4-16), sizes (each ROI within a factor 3 of the draw's mean) and
    irregular shapes, the kind of the special pair (none, an adjacent driver/driven
    pair at a latent correlation of 0.75-0.9, or one region whose halves receive
    different inputs in some runs), region-specific HRFs, voxel SNR (0.05-2,
    log-uniform), spatially smooth noise, drifts, head motion with spin history,
    physiological-like nuisance, 2-4 runs of 150-400 volumes each, TR 0.8-2.5 s and the
    share of same-volume causal links (0-50 %). Benchmarks report the mean and
    worst case over draws; estimator defaults are chosen on the family.

    Parameters
    ----------
    random_state : int | numpy.random.Generator | None
        Seed of the draw; the simulation itself is seeded from it too.
    kind : {"separated", "coupled", "split_halves"} | None
        Force the kind of the draw; ``None`` draws it.

    Returns
    -------
    kwargs : dict
        Keyword arguments of :func:`simulate_fmri_rois` (``random_state`` included).
    """
    rng = check_generator(random_state)
    kinds = ("separated", "coupled", "split_halves")
    if kind is None:
        kind = str(rng.choice(kinds))
    check_choice(kind, "kind", kinds)
    resolution = float(rng.choice([2.0, 3.0, 4.0]))
    mask, affine = _mni_mask(resolution)
    target = int(rng.integers(6000, 20001))
    n_runs = int(rng.integers(2, 5))
    kw: dict[str, Any] = dict(
        scenario=kind,
        n_runs=n_runs,
        n_timepoints=[int(v) for v in rng.integers(150, 401, n_runs)],
        t_r=float(np.round(rng.uniform(0.8, 2.5), 2)),
        snr=float(np.exp(rng.uniform(np.log(0.05), np.log(2.0)))),
        hrf=True,
        hrf_variability=float(rng.uniform(0.0, 1.0)),
        resolution=resolution,
        layout="random",
        irregularity=float(rng.uniform(0.0, 1.5)),
        instantaneous=float(rng.uniform(0.0, 0.5)),
        nuisance=float(rng.uniform(0.1, 0.6)),
        drift=float(rng.uniform(0.0, 2.0)),
        motion=float(rng.uniform(0.0, 0.3)),
        noise_smoothness=float(rng.uniform(0.0, 1.0)),
    )
    n_brain = int(mask.sum())
    if target < n_brain:
        # a box around a random brain point, grown until it holds about `target` voxels
        ijk = np.argwhere(mask)
        centre = ijk[int(rng.integers(ijk.shape[0]))]
        aspect = rng.uniform(0.7, 1.4, size=3)
        lo, hi = 1.0, float(max(mask.shape))
        for _ in range(30):
            half = (lo + hi) / 2
            a = np.clip(np.round(centre - half * aspect).astype(int), 0, None)
            b = np.round(centre + half * aspect).astype(int) + 1
            n_in = int(mask[a[0] : b[0], a[1] : b[1], a[2] : b[2]].sum())
            lo, hi = (half, hi) if n_in < target else (lo, half)
        a = np.clip(np.round(centre - hi * aspect).astype(int), 0, None)
        b = np.minimum(np.round(centre + hi * aspect).astype(int), np.array(mask.shape) - 1)
        world = np.stack([affine[:3, :3] @ v + affine[:3, 3] for v in (a, b)])
        kw["bounding_box"] = tuple((float(world[0, d]), float(world[1, d])) for d in range(3))
        n_brain = min(n_brain, target)
    n_rois = int(rng.integers(4, 17))
    share = rng.uniform(0.1, 0.3)  # of the field of view taken by ROIs
    ml = rng.uniform(2.0, 12.0)  # typical ROI volume
    mean_size = min(ml * 1000.0 / resolution**3, share * n_brain / n_rois)
    mean_size = max(mean_size, 12.0)
    kw["n_rois"] = n_rois
    kw["roi_size"] = (max(8, int(mean_size / 1.7)), max(9, int(mean_size * 1.7)))
    if kind == "coupled":
        kw["coupling_correlation"] = float(rng.uniform(0.75, 0.9))
    kw["random_state"] = int(rng.integers(2**31 - 1))
    return kw


def true_abstraction_error(truth: Bunch, labels: Any, reduce: str = "mean") -> float:
    """Abstraction error of a voxel partition under the simulator's true micro dynamics.

    The micro variables are the noise-free ROI voxel signals ``x = z @ L`` (``L`` the
    (n_rois, n_roi_voxels) loading matrix), whose exact transition in run ``r`` is
    ``B_r = pinv(L) @ A_r M_r @ L`` (``M_r = (I - B_inst_r)^-1`` folds in the
    same-volume links) with stationary covariance ``L' Sigma_r L``. HRF filtering is
    not part of this macro model. The
    partition defines a constructive tau (plain averages within each estimated ROI)
    and :func:`crl_neuro.core.abstraction.var_abstraction_error` measures the relative
    interventional inconsistency of the best macro VAR; the result is averaged over runs.
    The true partition gives 0 (up to rounding); merging, splitting or dropping
    true ROIs gives a positive error. Background voxels carry no modelled signal, so
    including them in an ROI only rescales it (ARI, not this error, penalises that).

    Each intervention's relative error is capped at 1 (an inconsistency as large as
    the effect itself): a parcel holding a sliver of an ROI and mostly background
    otherwise has an unbounded relative error that would dominate the mean.

    Parameters
    ----------
    truth : Bunch
        ``simulate_fmri_rois(...).truth``.
    labels : array-like of int, shape (n_mask_voxels,), or 3D array / image
        Estimated ROI labels (0 = background), in ``truth.voxel_labels`` order, or a
        3D label volume on the simulation grid (e.g. an estimator's ``labels_img_``).
    reduce : {"mean", "max"}
        Summary over single-ROI interventions.

    Returns
    -------
    error : float
        Mean over runs; 1.0 when the partition leaves every true ROI voxel as background.
    """
    from crl_neuro.core.abstraction import stationary_covariance, var_abstraction_error

    check_choice(reduce, "reduce", ("mean", "max"))
    if hasattr(labels, "dataobj"):
        labels = np.asarray(labels.dataobj)
    labels = np.asarray(labels)
    ijk = truth.voxel_ijk
    if labels.ndim == 3:
        labels = labels[tuple(ijk.T)]
    if labels.ndim != 1 or labels.shape[0] != ijk.shape[0]:
        raise ValueError(
            f"labels must have one entry per mask voxel ({ijk.shape[0]}) or be a 3D volume "
            f"on the simulation grid, got shape {labels.shape}"
        )
    if not np.all(np.isfinite(labels.astype(float))) or np.any(labels < 0):
        raise ValueError("labels must be non-negative integers")
    labels = np.round(labels).astype(int)
    roi = truth.voxel_labels > 0
    K = truth.run_coupling.shape[1]
    L = np.zeros((K, int(roi.sum())))
    L[truth.voxel_labels[roi] - 1, np.arange(L.shape[1])] = truth.loadings[roi]
    # Plain averages over the *whole* estimated ROI, restricted to the modelled voxels.
    est = labels[roi]
    uniq = [u for u in np.unique(est) if u > 0]
    if not uniq:
        return 1.0
    sizes = np.bincount(labels, minlength=max(uniq) + 1)
    T = np.zeros((L.shape[1], len(uniq)))
    for c, u in enumerate(uniq):
        T[est == u, c] = 1.0 / sizes[u]
    Lp = np.linalg.pinv(L)
    errs = []
    inst = truth.get("run_instantaneous")
    for r in range(truth.run_coupling.shape[0]):
        # reduced form of z_t = z_t B + z_{t-1} A + e_t: z_t = z_{t-1} A M + e_t M
        M = np.eye(K) if inst is None else np.linalg.inv(np.eye(K) - inst[r])
        A = truth.run_coupling[r] @ M
        Sz = stationary_covariance(A, M.T @ np.diag(truth.innovation_std[r] ** 2) @ M)
        B = Lp @ A @ L
        C = L.T @ Sz @ L
        per = var_abstraction_error(B, T, cov=C)["per_block"]
        per = np.minimum(per[np.isfinite(per)], 1.0)
        errs.append(float(per.mean() if reduce == "mean" else per.max()) if per.size else 1.0)
    return float(np.mean(errs))
