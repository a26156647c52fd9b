"""Simulated multi-session EEG with causally linked cortical sources and known ground truth.

The simulator builds a cortical surface source space from the fsaverage5 meshes
bundled with Nilearn, puts it in the head coordinate frame of MNE's standard
montages (so that ``trans=None`` is exact), computes sphere-model EEG forward
solutions with MNE, and draws ``n_sources`` dipoles whose time courses follow a
linear structural equation model whose edges and strengths change across
sessions.

Generative model (session ``s``, time ``t``)::

    z_t = B_s^T z_t + e_t                (instantaneous linear SEM, B_s a DAG)
    x_t = P (a z_t) + L_bg b_t + n_t     (sensors: true patterns, background brain
                                          noise, white sensor noise)

``e_t`` has independent, non-Gaussian, temporally coloured components, so the
zero-lag precision matrix of ``z`` in each session is
``(I - B_s) D_s^{-1} (I - B_s)^T``: it is zero off the session's moralised graph.
"""

from __future__ import annotations

import os
from copy import deepcopy
import tempfile
from functools import lru_cache
from numbers import Real
from typing import Any

import numpy as np
from scipy.signal import lfilter
from sklearn.utils import Bunch

from crl_neuro.core.graphs import is_dag, moral_graph
from crl_neuro.core.validation import check_choice, check_float, check_generator, check_int
from crl_neuro._mne_compat import info_unlocked

__all__ = ["draw_meeg_problem", "simulate_meeg_sessions"]

_SPACINGS = ("ico3", "ico4", "ico5", "oct4", "oct5", "oct6", "all")
_INNOVATIONS = ("bursty", "laplace", "gaussian")
_GRAPHS = ("chain", "random")
# Nominal sphere model: MNE's defaults (brain, CSF, skull, scalp).
_NOMINAL_RADII = (0.90, 0.92, 0.97, 1.0)
_NOMINAL_SIGMAS = (0.33, 1.0, 0.004, 0.33)
_SENSORS = ("eeg", "meg")
_N_MEG = 102
_MEG_RADIUS = 0.12  # metres from the head-sphere centre


# --------------------------------------------------------------------------- geometry
def _fsaverage_mri_to_head() -> np.ndarray:
    """4x4 MRI (surface RAS, metres) -> head transform of MNE's bundled fsaverage."""
    import mne

    fname = os.path.join(os.path.dirname(mne.__file__), "data", "fsaverage", "fsaverage-trans.fif")
    trans = mne.read_trans(fname)  # head -> MRI
    if trans["from"] == mne.io.constants.FIFF.FIFFV_COORD_HEAD:
        return np.linalg.inv(trans["trans"])
    return np.asarray(trans["trans"])


@lru_cache(maxsize=4)
def _cortex_source_space(spacing: str):
    """Decimated fsaverage5 white-matter surface source space in head coordinates.

    The meshes are written as FreeSurfer surfaces (already in the head frame) into a
    temporary subjects directory so that ``mne.setup_source_space`` does the
    decimation and normals; the forward is then computed with ``trans=None``.
    """
    import mne
    import nibabel as nib
    from nilearn import datasets

    fsavg = datasets.load_fsaverage("fsaverage5")
    mri_head = _fsaverage_mri_to_head()
    with tempfile.TemporaryDirectory(prefix="crl_neuro_fs5_") as subjects_dir:
        surf_dir = os.path.join(subjects_dir, "fsaverage5", "surf")
        os.makedirs(surf_dir)
        for hemi, part in (("lh", "left"), ("rh", "right")):
            white = fsavg["white_matter"].parts[part]
            rr = np.asarray(white.coordinates, float) / 1000.0
            rr = rr @ mri_head[:3, :3].T + mri_head[:3, 3]
            faces = np.asarray(white.faces, dtype=np.int32)
            nib.freesurfer.write_geometry(os.path.join(surf_dir, f"{hemi}.white"), rr * 1000.0, faces)
            sphere = fsavg["sphere"].parts[part]
            nib.freesurfer.write_geometry(
                os.path.join(surf_dir, f"{hemi}.sphere"),
                np.asarray(sphere.coordinates, float),
                np.asarray(sphere.faces, dtype=np.int32),
            )
        src = mne.setup_source_space(
            "fsaverage5", spacing=spacing, subjects_dir=subjects_dir, add_dist=False, verbose=False
        )
    return src


def _make_info(montage: Any, sfreq: float):
    import mne

    if isinstance(montage, str):
        try:
            mont = mne.channels.make_standard_montage(montage)
        except ValueError as err:
            raise ValueError(
                f"montage must be a name accepted by mne.channels.make_standard_montage ({err})"
            ) from err
    elif isinstance(montage, mne.channels.DigMontage):
        mont = montage.copy()
    else:
        raise TypeError(f"montage must be a str or mne.channels.DigMontage, got {type(montage).__name__}")
    info = mne.create_info(mont.ch_names, sfreq, "eeg")
    info.set_montage(mont, verbose=False)
    return info


def _make_meg_info(sfreq: float, r0: np.ndarray, n_sensors: int = _N_MEG):
    """Synthetic whole-head array: magnetometers on a helmet-shaped spherical cap.

    Sensors sit 12 cm from the head-sphere centre on a Fibonacci lattice covering
    polar angles up to ~110 degrees (top, sides and back of the head), with coil
    normals pointing outwards; device and head frames coincide.
    """
    import mne
    from mne.io.constants import FIFF

    n_total = int(np.ceil(n_sensors / 0.65)) + 8
    i = np.arange(n_total) + 0.5
    polar = np.arccos(1 - 2 * i / n_total)
    azimuth = np.pi * (1 + 5**0.5) * i
    keep = np.argsort(polar)[:n_sensors]
    polar, azimuth = polar[keep], azimuth[keep]
    normals = np.column_stack(
        [np.sin(polar) * np.cos(azimuth), np.sin(polar) * np.sin(azimuth), np.cos(polar)]
    )
    names = [f"MEG{k + 1:03d}" for k in range(n_sensors)]
    info = mne.create_info(names, sfreq, "mag")
    with info_unlocked(info):
        info["dev_head_t"] = mne.transforms.Transform("meg", "head", np.eye(4))
        for ch, nz in zip(info["chs"], normals):
            ex = np.cross([0.0, 0.0, 1.0], nz)
            ex = ex / np.linalg.norm(ex) if np.linalg.norm(ex) > 1e-8 else np.array([1.0, 0.0, 0.0])
            ey = np.cross(nz, ex)
            ch["loc"][:] = np.concatenate([r0 + _MEG_RADIUS * nz, ex, ey, nz])
            ch["coord_frame"] = FIFF.FIFFV_COORD_DEVICE
    return info


def _make_sensor_info(sensors: str, montage: Any, sfreq: float):
    """(info, nominal sphere): the sphere is always fitted to the EEG montage's head shape."""
    import mne

    eeg_info = _make_info(montage, sfreq)
    sphere = mne.make_sphere_model("auto", "auto", eeg_info, verbose=False)
    if sensors == "eeg":
        return eeg_info, sphere
    return _make_meg_info(sfreq, np.asarray(sphere["r0"], float)), sphere


@lru_cache(maxsize=8)
def _nominal_forward_cached(montage_key: Any, spacing: str, sensors: str):
    info, sphere = _make_sensor_info(sensors, montage_key, 100.0)
    return _forward(info, spacing, sphere)


def _forward(info, spacing: str, sphere):
    import mne

    src = _cortex_source_space(spacing).copy()
    meg = "mag" in info.get_channel_types()
    fwd = mne.make_forward_solution(info, None, src, sphere, meg=meg, eeg=not meg, verbose=False)
    return mne.convert_forward_solution(fwd, surf_ori=True, force_fixed=True, use_cps=True, verbose=False)


def _random_unit(rng: np.random.Generator) -> np.ndarray:
    v = rng.normal(size=3)
    return v / np.linalg.norm(v)


def _perturbed_model(info, nominal_sphere, rng: np.random.Generator, jitter: float, coreg: float):
    """Head model used to simulate.

    Other radii and conductivities, a head (scalp, skull, electrodes) displaced
    rigidly relative to the brain by a co-registration error, and electrodes jittered
    tangentially on the scalp.
    """
    import mne
    from scipy.spatial.transform import Rotation

    r0 = np.asarray(nominal_sphere["r0"], float)
    head_radius = float(nominal_sphere.radius)
    # Co-registration error: rotation about r0 (scalp moves by ~coreg) + translation coreg.
    rot = Rotation.from_rotvec(_random_unit(rng) * coreg / head_radius).as_matrix()
    translation = coreg * _random_unit(rng)
    shift = translation + 0.002 * _random_unit(rng)  # sphere centre: moves with the head, plus 2 mm
    radius = head_radius * (1.0 + rng.choice([-1.0, 1.0]) * rng.uniform(0.02, 0.04))
    radii = (
        _NOMINAL_RADII[0] - rng.uniform(0.005, 0.015),
        _NOMINAL_RADII[1] - rng.uniform(0.0, 0.005),
        _NOMINAL_RADII[2] + rng.uniform(-0.01, 0.005),
        1.0,
    )
    # Skull conductivity is the least known; brain:skull ratios of 1:25-1:80 are all in use.
    sigmas = (
        _NOMINAL_SIGMAS[0] * rng.uniform(0.85, 1.15),
        _NOMINAL_SIGMAS[1] * rng.uniform(0.8, 1.25),
        _NOMINAL_SIGMAS[2] * rng.uniform(1.4, 2.5),
        _NOMINAL_SIGMAS[3] * rng.uniform(0.85, 1.3),
    )
    sphere = mne.make_sphere_model(
        r0=tuple(r0 + shift), head_radius=radius, relative_radii=radii, sigmas=sigmas, verbose=False
    )
    info_true = info.copy()
    if "mag" in info.get_channel_types():
        # MEG: the helmet is rigid; only the co-registration error moves sensors vs. the head.
        with info_unlocked(info_true):
            for ch in info_true["chs"]:
                loc = ch["loc"]
                loc[:3] = rot @ (loc[:3] - r0) + r0 + translation
                for a in (3, 6, 9):
                    loc[a : a + 3] = rot @ loc[a : a + 3]
        details = Bunch(
            r0=r0 + shift, head_radius=radius, relative_radii=radii, sigmas=sigmas, electrode_jitter=0.0,
            coregistration_rotation=rot, coregistration_translation=translation,
        )
        return info_true, sphere, details
    with info_unlocked(info_true):
        for ch in info_true["chs"]:
            pos = rot @ (ch["loc"][:3] - r0) + r0 + translation
            radial = pos - r0 - translation
            radial /= np.linalg.norm(radial)
            step = rng.normal(size=3)
            step -= step.dot(radial) * radial  # tangential jitter on the scalp
            step *= jitter / np.linalg.norm(step)
            ch["loc"][:3] = pos + step
        # the reference electrode location (loc[3:6]) follows the same rigid motion
        for ch in info_true["chs"]:
            if np.any(ch["loc"][3:6]):
                ch["loc"][3:6] = rot @ (ch["loc"][3:6] - r0) + r0 + translation
    details = Bunch(
        r0=r0 + shift, head_radius=radius, relative_radii=radii, sigmas=sigmas, electrode_jitter=jitter,
        coregistration_rotation=rot, coregistration_translation=translation,
    )
    return info_true, sphere, details


def _off_grid_positions(fwd, vertices: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A full-mesh vertex in the cell of each grid vertex: positions and normals (head frame)."""
    from scipy.spatial import cKDTree

    dense = _cortex_source_space("all")
    rr = np.concatenate([s["rr"][s["vertno"]] for s in dense])
    nn = np.concatenate([s["nn"][s["vertno"]] for s in dense])
    grid = fwd["source_rr"]
    _, owner = cKDTree(grid).query(rr)
    pos, ori = [], []
    for v in vertices:
        cell = np.flatnonzero(owner == v)
        dist = np.linalg.norm(rr[cell] - grid[v], axis=1)
        cell, dist = cell[dist > 1e-6], dist[dist > 1e-6]
        if cell.size == 0:  # a cell with no other mesh vertex: stay on the grid
            pos.append(grid[v])
            ori.append(fwd["source_nn"][v])
            continue
        pick = cell[np.argsort(dist)[(cell.size - 1) // 2]]
        pos.append(rr[pick])
        ori.append(nn[pick])
    return np.array(pos), np.array(ori)


def _fixed_gain(info, sphere, pos: np.ndarray, ori: np.ndarray) -> np.ndarray:
    """Leadfield of fixed dipoles at arbitrary positions (discrete source space)."""
    import mne

    src = mne.setup_volume_source_space(pos=dict(rr=pos, nn=ori), verbose=False)
    meg = "mag" in info.get_channel_types()
    fwd = mne.make_forward_solution(info, None, src, sphere, meg=meg, eeg=not meg, mindist=0.0,
                                    verbose=False)
    out = np.full((len(info["ch_names"]), len(pos)), np.nan)
    kept = fwd["src"][0]["vertno"]  # points outside the model's inner sphere are dropped by MNE
    G = fwd["sol"]["data"].reshape(fwd["sol"]["data"].shape[0], len(kept), 3)
    out[:, kept] = np.einsum("cka,ka->ck", G, ori[kept])
    return out


def _forward_vertex_keys(fwd) -> np.ndarray:
    """(hemisphere, vertex number) keys of the forward's sources, encoded as ints."""
    return np.concatenate([s["vertno"] + 10**7 * k for k, s in enumerate(fwd["src"])])


# --------------------------------------------------------------------------- causal model
def _random_dag(n: int, edge_prob: float, rng: np.random.Generator) -> np.ndarray:
    for _ in range(100):
        order = rng.permutation(n)
        adj = np.zeros((n, n), bool)
        for a in range(n):
            for b in range(a + 1, n):
                if rng.random() < edge_prob:
                    adj[order[a], order[b]] = True
        if adj.any() or n < 2:
            return adj
    return adj  # pragma: no cover - edge_prob > 0 makes this unreachable in practice


def _session_graphs(graph, n_sources, n_sessions, weight_range, edge_prob, n_changing_edges, rng):
    """Per-session weighted DAGs, shape ``(n_sessions, K, K)``; ``[s, i, j] != 0`` means i -> j."""
    lo, hi = weight_range
    if isinstance(graph, str):
        check_choice(graph, "graph", _GRAPHS)
        if graph == "chain":
            base = np.zeros((n_sources, n_sources), bool)
            base[np.arange(n_sources - 1), np.arange(1, n_sources)] = True
        else:
            if edge_prob is None:
                edge_prob = min(1.0, 1.5 / max(n_sources - 1, 1))
            base = _random_dag(n_sources, edge_prob, rng)
        signs = rng.choice([-1.0, 1.0], size=base.shape)
        base_w = np.where(base, signs * rng.uniform(lo, hi, base.shape), 0.0)
    else:
        try:
            arr = np.asarray(graph, dtype=float)
        except (TypeError, ValueError) as err:
            raise TypeError(f"graph must be 'chain', 'random' or a numeric array ({err})") from err
        if arr.shape == (n_sessions, n_sources, n_sources):
            if not np.all(np.isfinite(arr)):
                raise ValueError("graph contains NaN or infinite weights")
            for s in range(n_sessions):
                if np.any(np.diag(arr[s]) != 0) or not is_dag(arr[s] != 0):
                    raise ValueError(f"graph[{s}] must be a DAG (acyclic, zero diagonal)")
            return arr.copy()
        if arr.shape != (n_sources, n_sources):
            raise ValueError(
                f"graph must be 'chain', 'random', an array of shape ({n_sources}, {n_sources}) or "
                f"({n_sessions}, {n_sources}, {n_sources}); got shape {arr.shape}"
            )
        if not np.all(np.isfinite(arr)):
            raise ValueError("graph contains NaN or infinite weights")
        if np.any(np.diag(arr) != 0) or not is_dag(arr != 0):
            raise ValueError("graph must be a DAG (acyclic, zero diagonal); graph[i, j] != 0 means i -> j")
        base_w = arr.copy()

    edges = list(zip(*np.nonzero(base_w)))
    graphs = np.repeat(base_w[None], n_sessions, axis=0)
    if n_sessions < 2 or not edges:
        return graphs
    if n_changing_edges is None:
        n_changing_edges = int(np.ceil(len(edges) / 2))
    n_changing_edges = min(n_changing_edges, len(edges))
    changing = rng.permutation(len(edges))[:n_changing_edges]
    for rank, e in enumerate(changing):
        i, j = edges[e]
        if rank % 2 == 0:  # switched on in some sessions, off in the others
            on = np.zeros(n_sessions, bool)
            n_on = rng.integers(1, n_sessions)
            on[rng.permutation(n_sessions)[:n_on]] = True
            graphs[~on, i, j] = 0.0
        else:  # present everywhere, with clearly different strengths
            sign = np.sign(base_w[i, j])
            if isinstance(graph, str):
                mags = np.linspace(lo, hi, n_sessions)
            else:
                mags = abs(base_w[i, j]) * np.linspace(0.4, 1.4, n_sessions)
            graphs[:, i, j] = sign * rng.permutation(mags)
    return graphs


def _noise_scales(n_sessions: int, k: int, scale_range, n_power_changes, rng) -> np.ndarray:
    """Innovation standard deviations per session, shape ``(n_sessions, k)``.

    ``n_power_changes`` sources (all by default) get scales spread over
    ``scale_range`` across sessions; the others keep one scale in every session.
    A change of scale is a change of the source's own power, not of any causal
    strength.
    """
    lo, hi = scale_range
    scales = np.repeat(np.exp(rng.uniform(np.log(lo), np.log(hi), size=(1, k))), n_sessions, axis=0)
    if n_sessions < 2 or lo == hi:
        return scales
    n_change = k if n_power_changes is None else min(n_power_changes, k)
    for j in rng.permutation(k)[:n_change]:
        scales[:, j] = np.exp(rng.permutation(np.linspace(np.log(lo), np.log(hi), n_sessions)))
    return scales


def _precisions(graphs: np.ndarray, scales: np.ndarray) -> np.ndarray:
    k = graphs.shape[1]
    eye = np.eye(k)
    return np.stack([(eye - B) @ np.diag(1.0 / d**2) @ (eye - B).T for B, d in zip(graphs, scales)])


# --------------------------------------------------------------------------- time courses
def _ar2(x: np.ndarray, freq: float, sfreq: float, r: float = 0.96) -> np.ndarray:
    w = 2 * np.pi * freq / sfreq
    return lfilter([1.0], [1.0, -2 * r * np.cos(w), r * r], x, axis=-1)


def _innovations(kind, n_sources, n_times, sfreq, freqs, colored, rng) -> np.ndarray:
    burn = int(2 * sfreq)
    n = n_times + burn
    if kind == "gaussian":
        x = rng.standard_normal((n_sources, n))
    else:
        x = rng.laplace(size=(n_sources, n))
    if colored:
        x = np.stack([_ar2(x[i], freqs[i], sfreq) for i in range(n_sources)])
    if kind == "bursty":
        # Slow log-normal amplitude envelope: bursts of oscillation (super-Gaussian).
        a = np.exp(-1.0 / (0.5 * sfreq))
        z = lfilter([np.sqrt(1 - a * a)], [1.0, -a], rng.standard_normal((n_sources, n)), axis=-1)
        x = x * np.exp(0.6 * z / z[:, burn:].std(axis=1, keepdims=True))
    x = x[:, burn:]
    x -= x.mean(axis=1, keepdims=True)
    # Unit empirical variance: the scales set per session are then exact.
    return x / x.std(axis=1, keepdims=True)


def _background(n_bg, n_times, sfreq, rng) -> np.ndarray:
    """Independent 1/f-like (AR(1)) unit-variance time courses for background dipoles."""
    burn = int(sfreq)
    a = 0.95
    z = lfilter([1.0], [1.0, -a], rng.standard_normal((n_bg, n_times + burn)), axis=-1)[:, burn:]
    z -= z.mean(axis=1, keepdims=True)
    return z / z.std(axis=1, keepdims=True)


# --------------------------------------------------------------------------- helpers
def _check_range(value, name, positive=True) -> tuple[float, float]:
    try:
        lo, hi = (float(v) for v in value)
    except Exception as err:
        raise TypeError(f"{name} must be a pair of numbers (low, high), got {value!r}") from err
    if not (np.isfinite(lo) and np.isfinite(hi)) or lo > hi or (positive and lo <= 0):
        raise ValueError(f"{name} must satisfy 0 < low <= high (finite), got {value!r}")
    return lo, hi


def _select_sources(pos, candidates, n_sources, min_distance, rng) -> np.ndarray:
    for _ in range(30):
        chosen: list[int] = []
        for idx in rng.permutation(candidates):
            if all(np.linalg.norm(pos[idx] - pos[c]) >= min_distance for c in chosen):
                chosen.append(int(idx))
                if len(chosen) == n_sources:
                    return np.array(chosen)
    raise ValueError(
        f"could not place n_sources={n_sources} sources at least min_distance={min_distance} m apart "
        "within max_depth of the cortex; lower n_sources or min_distance, or raise max_depth"
    )


# --------------------------------------------------------------------------- public
def simulate_meeg_sessions(
    n_sources: int = 4,
    n_sessions: int = 4,
    kind: str = "raw",
    duration: float = 60.0,
    n_times: int | None = None,
    sfreq: float = 200.0,
    epoch_duration: float = 2.0,
    graph: str | np.ndarray = "chain",
    edge_prob: float | None = None,
    n_changing_edges: int | None = None,
    n_power_changes: int | None = None,
    weight_range: tuple[float, float] = (0.5, 0.9),
    noise_scale_range: tuple[float, float] = (0.5, 2.0),
    innovations: str = "bursty",
    colored: bool = True,
    source_amplitude: float = 20e-9,
    snr: float = 5.0,
    brain_noise_ratio: float = 0.5,
    n_background: int = 300,
    sensors: str = "eeg",
    montage: Any = "biosemi64",
    spacing: str = "oct5",
    min_distance: float = 0.03,
    max_depth: float = 0.04,
    noise_cov_duration: float | None = None,
    perturb_head: bool = True,
    off_grid: bool = True,
    electrode_jitter: float = 0.004,
    coregistration_error: float = 0.004,
    random_state: Any = None,
) -> Bunch:
    """Simulate several EEG sessions of causally linked cortical sources, with ground truth.

    ``n_sources`` fixed-orientation dipoles on an fsaverage5 cortical surface source
    space (head coordinates, sphere head model, standard montage) follow a linear
    structural equation model ``z = B_s^T z + e`` whose edges and weights change across
    sessions ``s``. Innovations ``e`` are independent, non-Gaussian and temporally
    coloured. Sensors = true patterns x sources + background brain noise + white
    sensor noise.

    Parameters
    ----------
    n_sources : int
        Number of causally linked dipoles K (>= 1).
    n_sessions : int
        Number of sessions (distributions). Changes across sessions need >= 2.
    kind : {"raw", "epochs"}
        Return continuous :class:`mne.io.Raw` or :class:`mne.Epochs` (consecutive,
        non-overlapping windows of ``epoch_duration`` seconds of the continuous signal).
    duration : float
        Seconds per session (ignored when ``n_times`` is given).
    n_times : int | None
        Samples per session; overrides ``duration``. With ``kind="epochs"`` it is
        truncated to a whole number of epochs.
    sfreq : float
        Sampling frequency in Hz.
    epoch_duration : float
        Epoch length in seconds (``kind="epochs"`` only).
    graph : {"chain", "random"} | array, shape (K, K) or (n_sessions, K, K)
        Causal graph among sources; ``graph[i, j] != 0`` means source i -> source j.
        ``"chain"`` is 0 -> 1 -> ... -> K-1; ``"random"`` a random DAG with edge
        probability ``edge_prob``. A (K, K) array gives the base weights and the
        simulator chooses which edges change; a (n_sessions, K, K) array is used as is.
    edge_prob : float | None
        Edge probability for ``graph="random"`` (default ``min(1, 1.5 / (K - 1))``).
    n_changing_edges : int | None
        Number of base edges that change across sessions (default: half of them,
        rounded up). They alternate between "switched on/off" (present in a random
        non-empty proper subset of sessions) and "re-weighted" (present in all
        sessions, clearly different weights). The other edges keep constant weights.
        ``n_changing_edges=0`` keeps every causal strength fixed (with
        ``n_power_changes`` > 0 only the sources' power then changes).
    n_power_changes : int | None
        Number of sources whose innovation scale (own power) changes across
        sessions, spread over ``noise_scale_range`` (default: all of them); the
        others keep one scale.
    weight_range : (float, float)
        Range of absolute edge weights (signs are random).
    noise_scale_range : (float, float)
        Range of innovation standard deviations across sessions.
    innovations : {"bursty", "laplace", "gaussian"}
        Innovation distribution: ``"bursty"`` (default) is Laplace noise, coloured,
        times a slow log-normal envelope (bursts of oscillations, strongly
        super-Gaussian); ``"laplace"`` without envelope; ``"gaussian"`` for
        misspecification studies.
    colored : bool
        Colour innovations with an AR(2) resonance at a random alpha/beta frequency
        (8-25 Hz) per source. ``False`` gives white innovations.
    source_amplitude : float
        Scale of the source time courses in A·m (sources are
        ``source_amplitude * z``).
    snr : float
        Signal-to-noise ratio in dB: ``10 log10(P_signal / P_noise)`` with powers
        averaged over channels, samples and sessions of the average-referenced data,
        signal = sources projected by the true patterns, noise = background + sensor
        noise. ``np.inf`` gives noise-free data.
    brain_noise_ratio : float
        Fraction (0-1) of the noise power due to background brain activity
        (``n_background`` random cortical dipoles with independent AR(1) time
        courses); the rest is white sensor noise.
    n_background : int
        Number of background dipoles.
    sensors : {"eeg", "meg"}
        ``"eeg"``: the electrodes of ``montage`` (average-reference projector added).
        ``"meg"``: 102 synthetic magnetometers (Vectorview magnetometer coils) on a
        helmet-shaped cap 12 cm from the head-sphere centre (Sarvas sphere model;
        radial dipoles are silent, so true sources are chosen among visible ones).
    montage : str | mne.channels.DigMontage
        EEG montage (e.g. "biosemi64", "biosemi32", "standard_1020"); its positions
        are in fsaverage head coordinates, like MNE's standard montages. With
        ``sensors="meg"`` it only defines the head sphere.
    spacing : str
        Source space decimation passed to :func:`mne.setup_source_space` on the
        fsaverage5 mesh: one of "ico3", "ico4", "ico5", "oct4", "oct5", "oct6", "all".
        The default "oct5" gives about 2000 sources.
    min_distance : float
        Minimum distance between true sources, in metres.
    max_depth : float
        Maximum depth of true sources below the inner sphere (brain) surface, metres.
    noise_cov_duration : float | None
        ``None``: ``noise_cov`` is the exact (analytic) covariance of the noise model.
        A number of seconds: ``noise_cov`` is estimated from an independent
        noise-only recording of that length (like a baseline or empty-room
        estimate; more realistic, imperfect whitening).
    perturb_head : bool
        Simulate with a perturbed head model (other radii, conductivities, sphere
        centre, a co-registration error, electrodes jittered by ``electrode_jitter`` on
        the scalp) and return the
        nominal forward, to avoid the inverse crime. ``False`` simulates with the
        returned forward itself.
    electrode_jitter : float
        Tangential electrode displacement in metres for the perturbed model.
    off_grid : bool
        Put the true sources between the points of the returned forward's source
        space, as real generators are: each source moves from a grid vertex to a
        vertex of the full fsaverage5 mesh in that vertex's cell (the one at the
        median distance from it, a few mm away), with that vertex's normal; its
        pattern is computed there. ``False`` keeps sources on the grid (then a
        leadfield scan can be exact).
    coregistration_error : float
        Size in metres of the rigid displacement of the true head (scalp, skull,
        electrodes) relative to the brain in the perturbed model: a translation of this
        length plus a rotation about the sphere centre moving the scalp by about as
        much (template brains and digitised electrodes are never perfectly aligned).
    random_state : int | numpy.random.Generator | numpy.random.RandomState | None
        Seed; the same seed gives the same data, truth and forward.

    Returns
    -------
    sim : sklearn.utils.Bunch
        ``raws`` (list of :class:`mne.io.RawArray`, one per session) or ``epochs``
        (list of :class:`mne.EpochsArray`) when ``kind="epochs"``. Data carry an
        (inactive) EEG average-reference projector; data themselves are
        reference-free, exactly ``patterns @ sources + noise``.

        ``forward``: nominal :class:`mne.Forward` (fixed orientation normal to the
        cortex, surface source space, head coordinates, ``trans=None``) to use for
        inversion/localization.

        ``noise_cov``: :class:`mne.Covariance` of background + sensor noise, computed
        analytically from the true noise model, or estimated from a simulated
        baseline when ``noise_cov_duration`` is given (with ``snr=inf``, an ad-hoc
        diagonal covariance from :func:`mne.make_ad_hoc_cov`).

        ``info``: the nominal :class:`mne.Info` of the data.

        With ``sensors="meg"`` there is no projector and no electrode jitter (the
        perturbation is the sphere centre and the co-registration error).

        ``truth`` (Bunch):

        - ``vertices`` (K,) indices into ``forward["source_rr"]`` (and leadfield columns)
          of the grid point each source is closest to (its own position with
          ``off_grid=False``);
        - ``pos`` (K, 3) positions in metres, head coordinates (off the grid by
          default); ``ori`` (K, 3) normals;
        - ``sources`` list per session of (K, n_times) arrays in A·m (for epochs, the
          epochs concatenated in time);
        - ``innovations`` list per session of (K, n_times) arrays (``e`` in A·m);
        - ``patterns`` (n_channels, K): leadfield columns of the model actually used
          to simulate (the perturbed one when ``perturb_head``);
        - ``graphs`` (n_sessions, K, K) weights, ``graphs[s, i, j] != 0`` means i -> j;
        - ``noise_scales`` (n_sessions, K) innovation standard deviations (units of
          ``source_amplitude``);
        - ``precisions`` (n_sessions, K, K) zero-lag precision matrices of
          ``sources / source_amplitude``: ``(I - B) diag(1/scale^2) (I - B)^T``;
        - ``moral_graphs`` (n_sessions, K, K) bool per-session moralised graphs;
        - ``markov_network`` (K, K) bool: union of the moral graphs;
        - ``changing_edges`` (K, K) bool, symmetric: pairs joined by a causal edge whose
          strength (weight in ``graphs``) differs across sessions, switched on/off
          included. A change of a source's power alone is not a changing edge;
        - ``changing_sources`` (K,) bool: sources whose mechanism changes across
          sessions (an incoming weight or the innovation scale differs), as in CD-NOD;
        - ``sessions`` (n_sessions,) int session labels; ``snr`` (dB);
        - ``noise_power`` (brain and sensor parts); ``head_model`` (perturbation details,
          or None), ``nominal_sphere`` (the :class:`mne.bem.ConductorModel` of
          ``forward``, e.g. to recompute it with free orientation) and
          ``forward_true`` (the forward used to simulate).

    Notes
    -----
    Positions of MNE's standard montages are in fsaverage head coordinates; the
    fsaverage5 meshes (fsaverage MRI coordinates) are moved into that frame with MNE's
    bundled ``fsaverage-trans.fif``, so every forward uses ``trans=None``.
    Geometry is cached per process (:func:`functools.lru_cache`).
    """
    import mne

    n_sources = check_int(n_sources, "n_sources", min_value=1)
    n_sessions = check_int(n_sessions, "n_sessions", min_value=1)
    check_choice(kind, "kind", ("raw", "epochs"))
    sfreq = check_float(sfreq, "sfreq", min_value=0.0, inclusive=False)
    if sfreq < 60:
        raise ValueError(f"sfreq must be >= 60 Hz to hold alpha/beta rhythms, got {sfreq}")
    if n_times is None:
        duration = check_float(duration, "duration", min_value=0.0, inclusive=False)
        n_times = int(round(duration * sfreq))
    n_times = check_int(n_times, "n_times", min_value=max(10, n_sources + 1))
    if kind == "epochs":
        epoch_duration = check_float(epoch_duration, "epoch_duration", min_value=0.0, inclusive=False)
        n_epoch_times = int(round(epoch_duration * sfreq))
        if n_epoch_times < 2 or n_epoch_times > n_times:
            raise ValueError(
                f"epoch_duration={epoch_duration} s must give between 2 samples and the session length "
                f"({n_times} samples)"
            )
        n_epochs = n_times // n_epoch_times
        n_times = n_epochs * n_epoch_times
    if not isinstance(graph, str) and not isinstance(graph, (np.ndarray, list, tuple)):
        raise TypeError(f"graph must be 'chain', 'random' or an array, got {type(graph).__name__}")
    if edge_prob is not None:
        edge_prob = check_float(edge_prob, "edge_prob", min_value=0.0, max_value=1.0, inclusive=True)
    if n_changing_edges is not None:
        n_changing_edges = check_int(n_changing_edges, "n_changing_edges", min_value=0)
    if n_power_changes is not None:
        n_power_changes = check_int(n_power_changes, "n_power_changes", min_value=0)
    weight_range = _check_range(weight_range, "weight_range")
    noise_scale_range = _check_range(noise_scale_range, "noise_scale_range")
    check_choice(innovations, "innovations", _INNOVATIONS)
    if not isinstance(colored, (bool, np.bool_)):
        raise TypeError(f"colored must be a bool, got {type(colored).__name__}")
    source_amplitude = check_float(source_amplitude, "source_amplitude", min_value=0.0, inclusive=False)
    if isinstance(snr, bool) or not isinstance(snr, Real):
        raise TypeError(f"snr must be a number in dB (np.inf for no noise), got {snr!r}")
    if np.isnan(snr) or snr == -np.inf:
        raise ValueError(f"snr must be a number in dB (np.inf for no noise), got {snr!r}")
    snr = float(snr)
    brain_noise_ratio = check_float(brain_noise_ratio, "brain_noise_ratio", 0.0, 1.0)
    n_background = check_int(n_background, "n_background", min_value=0)
    check_choice(spacing, "spacing", _SPACINGS)
    check_choice(sensors, "sensors", _SENSORS)
    min_distance = check_float(min_distance, "min_distance", min_value=0.0)
    max_depth = check_float(max_depth, "max_depth", min_value=0.0, inclusive=False)
    if not isinstance(off_grid, (bool, np.bool_)):
        raise TypeError(f"off_grid must be a bool, got {type(off_grid).__name__}")
    if not isinstance(perturb_head, (bool, np.bool_)):
        raise TypeError(f"perturb_head must be a bool, got {type(perturb_head).__name__}")
    electrode_jitter = check_float(electrode_jitter, "electrode_jitter", min_value=0.0, max_value=0.03)
    coregistration_error = check_float(
        coregistration_error, "coregistration_error", min_value=0.0, max_value=0.03
    )
    if noise_cov_duration is not None:
        noise_cov_duration = check_float(
            noise_cov_duration, "noise_cov_duration", min_value=0.0, inclusive=False
        )
        if noise_cov_duration * sfreq < 2:
            raise ValueError(f"noise_cov_duration={noise_cov_duration} s gives fewer than 2 samples")
    rng = check_generator(random_state)

    # ---- causal model
    graphs = _session_graphs(graph, n_sources, n_sessions, weight_range, edge_prob, n_changing_edges, rng)
    scales = _noise_scales(n_sessions, n_sources, noise_scale_range, n_power_changes, rng)
    precisions = _precisions(graphs, scales)
    moral = np.stack([moral_graph(g) for g in graphs])
    markov = moral.any(axis=0)
    weight_changes = np.ptp(graphs, axis=0) > 0
    changing = weight_changes | weight_changes.T
    changing_sources = weight_changes.any(axis=0) | (np.ptp(scales, axis=0) > 0)

    # ---- head models
    montage_key = montage if isinstance(montage, str) else None
    info, nominal_sphere = _make_sensor_info(sensors, montage, sfreq)
    if montage_key is not None:
        fwd = _nominal_forward_cached(montage_key, spacing, sensors).copy()
    else:
        fwd = _forward(info, spacing, nominal_sphere)
    if perturb_head:
        info_true, true_sphere, head_model = _perturbed_model(
            info, nominal_sphere, rng, electrode_jitter, coregistration_error
        )
        fwd_true = _forward(info_true, spacing, true_sphere)
    else:
        fwd_true, head_model = fwd, None

    # Sources must exist in both models (spheres may drop different cortical points).
    keys_nom, keys_true = _forward_vertex_keys(fwd), _forward_vertex_keys(fwd_true)
    common, idx_nom, idx_true = np.intersect1d(keys_nom, keys_true, return_indices=True)
    pos_all = fwd["source_rr"]
    r0 = np.asarray(nominal_sphere["r0"], float)
    inner = nominal_sphere["layers"][0]["rad"]
    depth = inner - np.linalg.norm(pos_all[idx_nom] - r0, axis=1)
    # Not too deep, and visible to the sensors (MEG is blind to radial dipoles).
    gain_norm = np.linalg.norm(fwd["sol"]["data"][:, idx_nom], axis=0)
    cand = np.flatnonzero((depth <= max_depth) & (gain_norm >= 0.25 * np.median(gain_norm)))
    chosen = _select_sources(pos_all[idx_nom], cand, n_sources, min_distance, rng)
    vertices = idx_nom[chosen]
    true_cols = idx_true[chosen]
    gain_true = fwd_true["sol"]["data"]
    if off_grid:
        true_pos, true_ori = _off_grid_positions(fwd, vertices)
        patterns = _fixed_gain(info_true if perturb_head else info,
                               true_sphere if perturb_head else nominal_sphere, true_pos, true_ori)
        outside = np.isnan(patterns).any(axis=0)  # the true head's sphere cut it: stay on the grid
        true_pos[outside] = fwd["source_rr"][vertices[outside]]
        true_ori[outside] = fwd["source_nn"][vertices[outside]]
        patterns[:, outside] = gain_true[:, true_cols[outside]]
    else:
        true_pos, true_ori = fwd["source_rr"][vertices].copy(), fwd["source_nn"][vertices].copy()
        patterns = gain_true[:, true_cols].copy()

    freqs = rng.uniform(8.0, 25.0, size=n_sources)
    freqs = np.minimum(freqs, 0.4 * sfreq)
    eye = np.eye(n_sources)
    sources, innov = [], []
    for s in range(n_sessions):
        e = _innovations(innovations, n_sources, n_times, sfreq, freqs, colored, rng) * scales[s][:, None]
        z = np.linalg.solve(eye - graphs[s].T, e)
        sources.append(source_amplitude * z)
        innov.append(source_amplitude * e)
    signals = [patterns @ z for z in sources]

    # ---- noise at the requested SNR (powers of average-referenced data)
    n_ch = len(info["ch_names"])
    # EEG powers are those of average-referenced data; MEG is reference-free.
    center = np.eye(n_ch) - 1.0 / n_ch if sensors == "eeg" else np.eye(n_ch)
    p_signal = np.mean([np.mean((center @ x) ** 2) for x in signals])
    bg_idx = idx_true[rng.choice(len(common), size=min(n_background, len(common)), replace=False)]
    gain_bg = gain_true[:, bg_idx]
    if np.isinf(snr) or (n_background == 0 and brain_noise_ratio == 1.0):
        a_bg = sigma = 0.0
        if not np.isinf(snr):
            raise ValueError("brain_noise_ratio=1 needs n_background > 0 for a finite snr")
    else:
        p_noise = p_signal / 10 ** (snr / 10.0)
        p_bg_unit = np.mean((center @ gain_bg) ** 2) * gain_bg.shape[1] if n_background else 0.0
        ratio = brain_noise_ratio if n_background else 0.0
        a_bg = np.sqrt(p_noise * ratio / p_bg_unit) if ratio > 0 else 0.0
        white_gain = (n_ch - 1) / n_ch if sensors == "eeg" else 1.0  # white noise power after centring
        sigma = np.sqrt(p_noise * (1 - ratio) / white_gain)
    data = []
    for x in signals:
        x = x.copy()
        if a_bg > 0:
            x += a_bg * (gain_bg @ _background(gain_bg.shape[1], n_times, sfreq, rng))
        if sigma > 0:
            x += sigma * rng.standard_normal(x.shape)
        data.append(x)

    # ---- MNE containers
    insts = []
    for s, x in enumerate(data):
        if kind == "raw":
            inst = mne.io.RawArray(x, info.copy(), verbose=False)
        else:
            ep = x.reshape(n_ch, n_epochs, n_epoch_times).transpose(1, 0, 2)
            events = np.column_stack(
                [np.arange(n_epochs) * n_epoch_times, np.zeros(n_epochs, int), np.full(n_epochs, s + 1)]
            )
            inst = mne.EpochsArray(
                ep, info.copy(), events=events, tmin=0.0, event_id={f"session_{s + 1}": s + 1},
                baseline=None, proj=False, verbose=False,
            )
        if sensors == "eeg":
            inst.set_eeg_reference("average", projection=True, verbose=False)
        insts.append(inst)
    out_info = insts[0].info.copy()

    if a_bg == 0 and sigma == 0:
        noise_cov = mne.make_ad_hoc_cov(out_info, verbose=False)
    else:
        if noise_cov_duration is None:
            cov, nfree = a_bg**2 * gain_bg @ gain_bg.T + sigma**2 * np.eye(n_ch), n_times * n_sessions
        else:  # estimated from an independent noise-only (baseline) recording
            n_base = int(round(noise_cov_duration * sfreq))
            base = sigma * rng.standard_normal((n_ch, n_base))
            if a_bg > 0:
                base += a_bg * (gain_bg @ _background(gain_bg.shape[1], n_base, sfreq, rng))
            base -= base.mean(axis=1, keepdims=True)
            cov, nfree = base @ base.T / (n_base - 1), n_base - 1
        noise_cov = mne.Covariance(
            cov, list(out_info["ch_names"]), bads=[], projs=deepcopy(out_info["projs"]),
            nfree=nfree, verbose=False,
        )

    truth = Bunch(
        vertices=np.asarray(vertices, dtype=int),
        pos=true_pos,
        ori=true_ori,
        sources=sources,
        innovations=innov,
        patterns=patterns,
        graphs=graphs,
        noise_scales=scales,
        precisions=precisions,
        moral_graphs=moral,
        markov_network=markov,
        changing_edges=changing,
        changing_sources=changing_sources,
        sessions=np.arange(1, n_sessions + 1),
        frequencies=freqs,
        snr=snr,
        noise_power=Bunch(brain_amplitude=float(a_bg), sensor_std=float(sigma)),
        head_model=head_model,
        nominal_sphere=nominal_sphere,
        forward_true=fwd_true,
    )
    sim = Bunch(forward=fwd, noise_cov=noise_cov, info=out_info, truth=truth)
    sim["raws" if kind == "raw" else "epochs"] = insts
    return sim


def draw_meeg_problem(random_state: Any = None, changes: str | None = None) -> dict[str, Any]:
    """Draw the settings of one problem of the randomised M/EEG benchmark family.

    Every draw randomises what real recordings vary: number of sources (3-6) and
    sessions (3-8), causal graph (chain or random DAG), what changes across
    sessions (causal strengths and power, or power only), session length
    (30-120 s), SNR (-5 to 10 dB), innovation law, brain-noise share, montage
    (64 or 32 electrodes), source depth and spacing, and whether the noise
    covariance is exact or estimated from a baseline. Benchmarks report the
    mean and worst case over draws; defaults are chosen on the family.

    Parameters
    ----------
    random_state : int | numpy.random.Generator | None
        Seed of the draw; the simulation itself is seeded from it too.
    changes : {"edges", "power"} | None
        Force what changes across sessions: ``"edges"`` (some causal strengths
        switch or change, and sources' power), ``"power"`` (every strength
        fixed, only the sources' power changes). ``None`` draws it.

    Returns
    -------
    kwargs : dict
        Keyword arguments of :func:`simulate_meeg_sessions` (``random_state``
        included); power-only draws have ``n_changing_edges=0``.
    """
    rng = check_generator(random_state)
    if changes is None:
        changes = str(rng.choice(["edges", "power"]))
    check_choice(changes, "changes", ("edges", "power"))
    k = int(rng.integers(3, 7))
    kw: dict[str, Any] = dict(
        n_sources=k,
        n_sessions=int(rng.integers(3, 9)),
        graph=str(rng.choice(["chain", "random"])),
        duration=float(rng.choice([30.0, 60.0, 120.0])),
        snr=float(rng.uniform(-5.0, 10.0)),
        innovations=str(rng.choice(list(_INNOVATIONS))),
        brain_noise_ratio=float(rng.uniform(0.2, 0.8)),
        montage=str(rng.choice(["biosemi64", "biosemi32"])),
        max_depth=float(rng.uniform(0.02, 0.05)),
        min_distance=float(rng.uniform(0.025, 0.04)),
        noise_cov_duration=None if rng.random() < 0.5 else float(rng.choice([30.0, 60.0])),
        random_state=int(rng.integers(2**31 - 1)),
    )
    if changes == "power":
        kw["n_changing_edges"] = 0
    return kw

