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
from functools import lru_cache
from numbers import Real
from typing import Any

import numpy as np
from sklearn.utils import Bunch

from crl_neuro.core.validation import check_choice, check_float, check_generator, check_int

__all__ = ["simulate_fmri_rois", "true_abstraction_error", "SCENARIOS"]

SCENARIOS = ("separated", "coupled", "split_halves", "low_snr", "hrf")

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
    mask: np.ndarray, affine: np.ndarray, seeds_mm: list, sizes: list[int], taken: np.ndarray
) -> list[np.ndarray]:
    """Grow contiguous (6-connected) regions jointly from seed points.

    Each step gives the smallest unfinished region its frontier voxel closest to its
    seed, so regions grown from nearby seeds end up sharing a border. Returns a list
    of (n_i, 3) voxel-index arrays; ``taken`` is updated in place (private array).
    """
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

    def frontier(reg):
        out = set()
        for vox in reg:
            for off in offsets:
                nb = (vox[0] + off[0], vox[1] + off[1], vox[2] + off[2])
                if all(0 <= nb[d] < shape[d] for d in range(3)) and mask[nb] and not taken[nb]:
                    out.add(nb)
        return out

    fronts = [frontier(reg) for reg in regions]
    while True:
        todo = [k for k in range(len(regions)) if len(regions[k]) < sizes[k]]
        if not todo:
            break
        k = min(todo, key=lambda q: (len(regions[q]) / sizes[q], q))
        fronts[k] = {v for v in fronts[k] if not taken[v]}
        if not fronts[k]:
            raise ValueError(
                "could not grow a contiguous ROI of the requested size inside the mask; lower roi_size"
            )
        c = centres[k]
        best = min(fronts[k], key=lambda v: ((v[0] - c[0]) ** 2 + (v[1] - c[1]) ** 2 + (v[2] - c[2]) ** 2, v))
        taken[best] = True
        regions[k].append(best)
        fronts[k].discard(best)
        for off in offsets:
            nb = (best[0] + off[0], best[1] + off[1], best[2] + off[2])
            if all(0 <= nb[d] < shape[d] for d in range(3)) and mask[nb] and not taken[nb]:
                fronts[k].add(nb)
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


def _stabilise(A: np.ndarray) -> np.ndarray:
    rho = np.max(np.abs(np.linalg.eigvals(A)))
    if rho > _MAX_SPECTRAL_RADIUS:
        A = A * (_MAX_SPECTRAL_RADIUS / rho)
    return A


def _smooth_field(rng: np.random.Generator, mask: np.ndarray, sigma_vox: float) -> np.ndarray:
    from scipy import ndimage

    field = ndimage.gaussian_filter(rng.standard_normal(mask.shape), sigma=sigma_vox)
    vals = field[mask]
    return (vals - vals.mean()) / vals.std()


# ----------------------------------------------------------------------------- main
def simulate_fmri_rois(
    scenario: str = "separated",
    n_runs: int = 3,
    n_timepoints: int = 200,
    t_r: float = 2.0,
    snr: float | None = None,
    hrf: bool | None = None,
    resolution: float = 8.0,
    n_rois: int | None = None,
    roi_size: int | None = None,
    nuisance: float = 0.3,
    baseline: float = 100.0,
    random_state: Any = 0,
) -> Bunch:
    """Simulate fMRI runs of a voxel model whose exact abstraction is a set of causal ROIs.

    See the module docstring for the generative model and the scenarios.

    Parameters
    ----------
    scenario : {"separated", "coupled", "split_halves", "low_snr", "hrf"}
        Spatial layout and ROI-level causal model (see module docstring).
    n_runs : int
        Number of runs (distributions). The ROI-level mechanisms change across runs.
        ``"split_halves"`` needs at least 2.
    n_timepoints : int
        Volumes per run (>= 20).
    t_r : float
        Repetition time in seconds (stored in the image headers; used for the HRF).
    snr : float or None
        Per-voxel signal-to-noise variance ratio inside ROIs:
        ``var(loading * s_r) / noise_std**2``. ``numpy.inf`` gives noise-free voxels.
        None: 1.0, or 0.1 for ``"low_snr"``.
    hrf : bool or None
        Convolve ROI signals with the Glover HRF. None: True for ``"hrf"``, False
        otherwise. ``scenario="hrf"`` with ``hrf=False`` is an error.
    resolution : float
        Voxel size in mm of the MNI grid, in [4, 12]. 8 mm gives ~3,600 brain voxels.
    n_rois : int or None
        Number of ROIs. None: 5. Range: 2–8 (``"separated"``, ``"low_snr"``, ``"hrf"``),
        3–8 (``"coupled"``), 4–8 (``"split_halves"``).
    roi_size : int or None
        Voxels per ROI (each half in ``"split_halves"``). None: about 20 ml
        (``round(20000 / resolution**3)``, at least 8).
    nuisance : float
        Standard deviation of the spatially smooth nuisance signal relative to the
        median voxel noise standard deviation (>= 0). Added to every voxel.
        With ``snr=inf`` it is relative to the median ROI signal standard deviation.
    baseline : float
        Mean intensity of brain voxels (>= 0); varies smoothly by about ±5 %.
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
            one run (value: the mean absolute lag-1 weight over runs; zero diagonal).
        ``truth``
            Bunch with:
            ``run_coupling`` (n_runs, n_rois, n_rois) VAR(1) matrices ``A_r``
            (``z_t = z_{t-1} @ A_r + e_t``, diagonal = autoregression);
            ``run_graphs`` (n_runs, n_rois, n_rois) bool off-diagonal edges per run;
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
            ``voxel_coords_mni`` (n_mask_voxels, 3) mm; ``voxel_ijk`` (n_mask_voxels, 3)
            voxel indices in the image grid; ``roi_names`` (list);
            ``roi_seeds_mni`` (n_rois, 3); ``roi_centroids_mni`` (n_rois, 3);
            ``hrf`` (bool); ``hrf_kernel`` (ndarray or None, sampled at ``t_r``);
            ``scenario``; ``snr``; ``t_r``; ``differing_runs`` (runs in which the halves
            of ``"split_halves"`` receive different inputs; empty otherwise).
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
    n_runs = check_int(n_runs, "n_runs", min_value=1, max_value=100)
    if scenario == "split_halves" and n_runs < 2:
        raise ValueError("n_runs must be >= 2 for scenario='split_halves' (the halves differ only in some runs)")
    n_timepoints = check_int(n_timepoints, "n_timepoints", min_value=20)
    t_r = check_float(t_r, "t_r", min_value=0.0, inclusive=False)
    if snr is None:
        snr = 0.1 if scenario == "low_snr" else 1.0
    if isinstance(snr, bool) or not isinstance(snr, Real):
        raise TypeError(f"snr must be a positive number (or numpy.inf), got {type(snr).__name__}")
    snr = float(snr)
    if np.isnan(snr) or snr <= 0:
        raise ValueError(f"snr must be > 0 (numpy.inf for no noise), got {snr}")
    if hrf is None:
        hrf = scenario == "hrf"
    if not isinstance(hrf, (bool, np.bool_)):
        raise TypeError(f"hrf must be a bool or None, got {type(hrf).__name__}")
    hrf = bool(hrf)
    if scenario == "hrf" and not hrf:
        raise ValueError("hrf=False contradicts scenario='hrf'; use scenario='separated' for no HRF")
    resolution = check_float(resolution, "resolution", min_value=4.0, max_value=12.0)
    min_rois = {"coupled": 3, "split_halves": 4}.get(scenario, 2)
    n_rois = 5 if n_rois is None else check_int(n_rois, "n_rois", min_value=min_rois, max_value=8)
    if roi_size is None:
        roi_size = max(8, int(round(20000.0 / resolution**3)))
    else:
        roi_size = check_int(roi_size, "roi_size", min_value=2)
    nuisance = check_float(nuisance, "nuisance", min_value=0.0)
    baseline = check_float(baseline, "baseline", min_value=0.0)
    rng = check_generator(random_state)

    # ---------------------------------------------------------------- layout
    mask, affine = _mni_mask(resolution)
    taken = np.zeros(mask.shape, dtype=bool)
    sep = list(_SEPARATED_SEEDS)
    if scenario == "coupled":
        special = list(_COUPLED_PAIR)
        others = [s for s in sep if s[0] != "L primary motor"]
    elif scenario == "split_halves":
        name, c = _SPLIT_REGION
        c = np.asarray(c)
        special = [
            (f"{name} (anterior half)", tuple(c + [0.0, _SPLIT_OFFSET_MM, 0.0])),
            (f"{name} (posterior half)", tuple(c - [0.0, _SPLIT_OFFSET_MM, 0.0])),
        ]
        others = [s for s in sep if s[0] != "R intraparietal sulcus"]
    else:
        special, others = [], sep
    seeds = (special + others)[:n_rois]
    regions = _grow_regions(mask, affine, [s[1] for s in seeds], [roi_size] * n_rois, taken)

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
    differing_runs: list[int] = []
    if scenario == "coupled":
        # 0 (cause) -> 1 (effect) strong; cause slow; both have distinct effects elsewhere.
        rest = list(range(2, K))
        adj = _random_dag(rng, [0] + rest, K)
        adj[0, 1] = True
        base[adj] = rng.uniform(0.3, 0.5, size=adj.sum()) * rng.choice([-1.0, 1.0], size=adj.sum(), p=[0.3, 0.7])
        base[0, 1] = 0.9
        if K >= 4:
            base[1, 3] = 0.45  # the effect has its own effect (not shared with the cause)
            base[0, 3] = 0.0
        auto[0], auto[1] = 0.9, 0.2
        innov_base[1] = 0.3
    elif scenario == "split_halves":
        # 0, 1 halves; 2 drives both halves in the "same" runs; 3 drives half 1 in the differing runs.
        rest = list(range(2, K))
        adj = _random_dag(rng, rest, K)
        base[adj] = rng.uniform(0.3, 0.5, size=adj.sum()) * rng.choice([-1.0, 1.0], size=adj.sum(), p=[0.3, 0.7])
        base[2, 0] = base[2, 1] = 0.8
        # The anterior half alone drives the last ROI: the halves have different effects,
        # so merging them is not an exact abstraction (even in the runs where they look alike).
        base[0, K - 1] = 0.45
        # ROI 4 closely follows ROI 3 (one TR later), so the halves stay correlated even
        # in the runs where their inputs differ: only lagged/innovation information and
        # the change across runs separate them, not the correlation.
        base[2, 3] = 0.8
        auto[3] = 0.3
        innov_base[3] = 0.35
        auto[0] = auto[1] = 0.5
        innov_base[0] = innov_base[1] = 0.2
        n_diff = max(1, n_runs // 3)
        differing_runs = list(range(n_runs - n_diff, n_runs))
    else:
        adj = _random_dag(rng, list(range(K)), K)
        base[adj] = rng.uniform(0.3, 0.5, size=adj.sum()) * rng.choice([-1.0, 1.0], size=adj.sum(), p=[0.3, 0.7])

    edges = np.argwhere(base != 0)
    protected = {(0, 1)} if scenario == "coupled" else set()
    if scenario == "split_halves":
        protected = {(2, 0), (2, 1), (2, 3), (0, K - 1)}
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
        if scenario == "coupled":
            A[:, 0, 1] = base[0, 1] * np.linspace(1.0, 0.7, n_runs)  # coupling weakens across runs
        if scenario == "split_halves":
            for r in differing_runs:
                A[r, 2, 1] = 0.0  # half 2 loses the common input ...
                A[r, 3, 1] = 0.8  # ... and is driven by ROI 4 instead
    for r in range(n_runs):
        A[r][np.diag_indices(K)] = auto
        A[r] = _stabilise(A[r])
    innovation_std = innov_base[None] * rng.uniform(0.7, 1.4, size=(n_runs, K))
    run_graphs = A != 0
    run_graphs[:, np.arange(K), np.arange(K)] = False
    changing_edges = np.zeros((K, K), dtype=bool)
    if n_runs >= 2:
        changing_edges = run_graphs.any(0) & ~np.all(np.isclose(A, A[:1]), axis=0)
        changing_edges[np.diag_indices(K)] = False
    roi_graph = np.where(run_graphs.any(0), np.abs(A).mean(0), 0.0)

    # ---------------------------------------------------------------- latent dynamics
    hrf_kernel = None
    if hrf:
        from nilearn.glm.first_level import glover_hrf

        hrf_kernel = glover_hrf(t_r, oversampling=1, time_length=32.0)
        hrf_kernel = hrf_kernel / np.sqrt(np.sum(hrf_kernel**2))  # keeps white-noise variance
    n_total = _BURN_IN + n_timepoints
    latents, signals = [], []
    for r in range(n_runs):
        # Unit-variance Laplace innovations (non-Gaussian, as identifiability needs).
        e = rng.laplace(scale=1.0 / np.sqrt(2.0), size=(n_total, K)) * innovation_std[r]
        z = np.zeros((n_total, K))
        for t in range(1, n_total):
            z[t] = z[t - 1] @ A[r] + e[t]
        if hrf:
            from scipy.signal import lfilter

            s = lfilter(hrf_kernel, [1.0], z, axis=0)
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
        u = rng.standard_normal((n_total, n_nuis))
        w = np.zeros_like(u)
        for t in range(1, n_total):
            w[t] = 0.95 * w[t - 1] + u[t]
        w = w[_BURN_IN:]
        nuis_ts.append((w - w.mean(0)) / w.std(0))
    base_int = baseline * (1.0 + 0.05 * _smooth_field(rng, mask, sigma_vox=2.0)) if baseline > 0 else np.zeros(n_vox)

    import nibabel as nib

    header = nib.Nifti1Header()
    header.set_xyzt_units("mm", "sec")
    imgs = []
    for r in range(n_runs):
        X = base_int[None] + nuis_ts[r] @ nuis_maps
        X[:, in_roi] += signals[r][:, voxel_labels[in_roi] - 1] * loadings[in_roi]
        X += rng.standard_normal((n_timepoints, n_vox)) * noise_std
        vol = np.zeros(mask.shape + (n_timepoints,), dtype=np.float32)
        vol[mask] = X.T
        img = nib.Nifti1Image(vol, affine.copy(), header=header.copy())
        img.header.set_zooms((resolution,) * 3 + (t_r,))
        imgs.append(img)
    mask_img = nib.Nifti1Image(mask.astype(np.uint8), affine.copy())
    labels_img = nib.Nifti1Image(label_vol, affine.copy())
    labels_img.set_data_dtype(np.int32)

    truth = Bunch(
        run_coupling=A,
        run_graphs=run_graphs,
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
        voxel_coords_mni=coords,
        voxel_ijk=vox_idx,
        roi_names=[s[0] for s in seeds],
        roi_seeds_mni=np.array([s[1] for s in seeds], float),
        roi_centroids_mni=centroids,
        hrf=hrf,
        hrf_kernel=hrf_kernel,
        scenario=scenario,
        snr=snr,
        t_r=t_r,
        differing_runs=differing_runs,
    )
    description = (
        f"simulate_fmri_rois(scenario={scenario!r}): {n_runs} runs x {n_timepoints} volumes "
        f"(TR {t_r:g} s) on a {resolution:g} mm MNI grid, {n_vox} brain voxels, {K} ROIs of "
        f"{roi_size} voxels ({int(in_roi.sum())} ROI voxels, the rest background), "
        f"{int(run_graphs.any(0).sum())} directed ROI edges ({int(changing_edges.sum())} changing "
        f"across runs), voxel SNR {snr:g}, HRF {'on' if hrf else 'off'}."
    )
    return Bunch(
        imgs=imgs,
        mask_img=mask_img,
        labels_img=labels_img,
        roi_graph=roi_graph,
        truth=truth,
        description=description,
    )


def true_abstraction_error(truth: Bunch, labels: Any, reduce: str = "mean") -> float:
    """Abstraction error of a voxel partition under the simulator's true micro dynamics.

    The micro variables are the noise-free ROI voxel signals ``x = z @ L`` (``L`` the
    (n_rois, n_roi_voxels) loading matrix), whose exact transition in run ``r`` is
    ``B_r = pinv(L) @ A_r @ L`` with stationary covariance ``L' Sigma_r L``. The
    partition defines a constructive tau (plain averages within each estimated ROI)
    and :func:`crl_neuro.core.abstraction.var_abstraction_error` measures the relative
    interventional inconsistency of the best macro VAR; the result is averaged over runs.
    The true partition gives 0 (up to rounding); merging, splitting or dropping
    true ROIs gives a positive error. Background voxels carry no modelled signal, so
    including them in an ROI only rescales it (ARI, not this error, penalises that).

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
    for r in range(truth.run_coupling.shape[0]):
        A = truth.run_coupling[r]
        Sz = stationary_covariance(A, truth.innovation_std[r] ** 2)
        B = Lp @ A @ L
        C = L.T @ Sz @ L
        errs.append(var_abstraction_error(B, T, cov=C, reduce=reduce)["error"])
    return float(np.mean(errs))
