"""Ground-truth checks for ``crl_neuro.datasets.simulate_fmri_rois``."""

import numpy as np
import pytest
from scipy import ndimage

from crl_neuro.datasets.fmri import SCENARIOS, simulate_fmri_rois

SMALL = dict(n_runs=3, n_timepoints=60)


@pytest.fixture(scope="module")
def sims():
    return {sc: simulate_fmri_rois(sc, random_state=3, **SMALL) for sc in SCENARIOS}


def _masked(img, mask_img):
    from nilearn.maskers import NiftiMasker

    return NiftiMasker(mask_img, standardize=None).fit().transform(img)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_labels_image_has_declared_rois(sims, scenario):
    data = sims[scenario]
    K = data.roi_graph.shape[0]
    lab = np.asarray(data.labels_img.dataobj)
    mask = np.asarray(data.mask_img.dataobj).astype(bool)
    assert data.labels_img.get_data_dtype() == np.int32
    assert lab.dtype == np.int32
    assert np.allclose(data.labels_img.affine, data.mask_img.affine)
    assert set(np.unique(lab)) == set(range(K + 1))
    assert not np.any(lab[~mask])  # ROIs inside the mask
    roi_size = None
    for k in range(1, K + 1):
        comp, n_comp = ndimage.label(lab == k)  # 6-connectivity
        assert n_comp == 1, f"ROI {k} is not contiguous"
        size = int((lab == k).sum())
        roi_size = size if roi_size is None else roi_size
        assert size == roi_size >= 8
    # Most of the mask is background.
    assert (lab > 0).sum() < 0.2 * mask.sum()
    # voxel_labels follow NiftiMasker's column order.
    np.testing.assert_array_equal(_masked(data.labels_img, data.mask_img).ravel(), data.truth.voxel_labels)
    # Centroids sit in the brain, near the plausible seed locations (coarse grid).
    dist = np.linalg.norm(data.truth.roi_centroids_mni - data.truth.roi_seeds_mni, axis=1)
    assert np.all(dist < 25.0)


def test_adjacent_rois_touch_in_coupled_and_split(sims):
    for sc in ("coupled", "split_halves"):
        lab = np.asarray(sims[sc].labels_img.dataobj)
        grown = ndimage.binary_dilation(lab == 1)
        assert np.any(grown & (lab == 2)), f"{sc}: ROIs 1 and 2 should share a border"
    lab = np.asarray(sims["separated"].labels_img.dataobj)
    for k in range(1, lab.max() + 1):
        grown = ndimage.binary_dilation(lab == k, iterations=2)
        assert not np.any(grown & (lab > 0) & (lab != k)), "separated ROIs should be apart"


@pytest.mark.parametrize("hrf", [False, True])
def test_noise_free_voxels_follow_micro_model(hrf):
    data = simulate_fmri_rois(
        "separated", hrf=hrf, snr=np.inf, nuisance=0.0, baseline=0.0, random_state=1, **SMALL
    )
    tr = data.truth
    assert np.all(tr.noise_std == 0)
    for r, img in enumerate(data.imgs):
        assert img.shape[-1] == SMALL["n_timepoints"]
        X = _masked(img, data.mask_img)
        roi = tr.voxel_labels > 0
        expected = tr.roi_signals[r][:, tr.voxel_labels[roi] - 1] * tr.loadings[roi]
        np.testing.assert_allclose(X[:, roi], expected, rtol=1e-5, atol=1e-5 * np.abs(expected).max())
        assert np.all(X[:, ~roi] == 0)
        if hrf:
            # s = z convolved with the kernel (up to the discarded burn-in).
            conv = np.convolve(tr.roi_timeseries[r][:, 0], tr.hrf_kernel)[: SMALL["n_timepoints"]]
            n_k = len(tr.hrf_kernel)
            np.testing.assert_allclose(tr.roi_signals[r][n_k:, 0], conv[n_k:], rtol=1e-8, atol=1e-10)
        else:
            np.testing.assert_array_equal(tr.roi_signals[r], tr.roi_timeseries[r])


def test_full_micro_model_residual_is_the_declared_noise():
    data = simulate_fmri_rois("coupled", n_runs=2, n_timepoints=400, random_state=5)
    tr = data.truth
    X = _masked(data.imgs[1], data.mask_img)
    signal = np.zeros_like(X)
    roi = tr.voxel_labels > 0
    signal[:, roi] = tr.roi_signals[1][:, tr.voxel_labels[roi] - 1] * tr.loadings[roi]
    resid = X - tr.baseline - signal - tr.nuisance_timeseries[1] @ tr.nuisance_maps
    ratio = resid.std(0) / tr.noise_std
    assert abs(np.median(ratio) - 1) < 0.05
    assert abs(resid.mean()) < 0.01 * tr.noise_std.mean()
    # Per-voxel SNR inside ROIs equals the declared one (pooled over runs).
    sig_var = np.concatenate(tr.roi_signals).var(0)[tr.voxel_labels[roi] - 1] * tr.loadings[roi] ** 2
    np.testing.assert_allclose(sig_var / tr.noise_std[roi] ** 2, tr.snr, rtol=1e-6)


def test_latents_follow_var_dynamics(sims):
    tr = sims["coupled"].truth
    for r, z in enumerate(tr.roi_timeseries):
        e = z[1:] - z[:-1] @ tr.run_coupling[r]
        # Innovations have the declared scale (std of 60 Laplace draws, loose) and are heavy-tailed.
        assert np.all(np.abs(e.std(0) / tr.innovation_std[r] - 1) < 0.45)
    long = simulate_fmri_rois("separated", n_runs=2, n_timepoints=2000, resolution=12.0, random_state=0).truth
    e = long.roi_timeseries[0][1:] - long.roi_timeseries[0][:-1] @ long.run_coupling[0]
    e = e / e.std(0)
    kurt = (e**4).mean(0) - 3
    assert np.all(kurt > 1.0)  # Laplace excess kurtosis is 3, Gaussian 0 (+-0.1 here)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_roi_graph_matches_couplings_and_changes(sims, scenario):
    data = sims[scenario]
    tr = data.truth
    A = tr.run_coupling
    K = A.shape[1]
    assert A.shape == (SMALL["n_runs"], K, K)
    assert tr.innovation_std.shape == (SMALL["n_runs"], K)
    off = ~np.eye(K, dtype=bool)
    union = (A != 0).any(0) & off
    np.testing.assert_array_equal(data.roi_graph != 0, union)
    np.testing.assert_array_equal(tr.run_graphs, (A != 0) & off)
    assert np.all(np.diag(data.roi_graph) == 0)
    assert union.sum() >= K - 1  # at least a spanning tree
    # Each run is stable.
    for r in range(A.shape[0]):
        assert np.max(np.abs(np.linalg.eigvals(A[r]))) < 1
    # Declared changing edges really change; the others are constant.
    changes = ~np.all(np.isclose(A, A[:1]), axis=0) & union
    np.testing.assert_array_equal(tr.changing_edges, changes)
    assert tr.changing_edges.any()
    assert not np.allclose(tr.innovation_std, tr.innovation_std[:1])
    if scenario == "coupled":
        assert np.all(A[:, 0, 1] >= 0.6) and tr.changing_edges[0, 1]
        corr = [np.corrcoef(s[:, 0], s[:, 1])[0, 1] for s in tr.roi_signals]
        assert np.mean(corr) > 0.75  # strongly coupled: correlation methods merge them
    if scenario == "split_halves":
        diff = tr.differing_runs
        same = [r for r in range(A.shape[0]) if r not in diff]
        assert diff and same
        for r in same:
            parents0 = np.flatnonzero(A[r, :, 0] * off[:, 0])
            parents1 = np.flatnonzero(A[r, :, 1] * off[:, 1])
            np.testing.assert_array_equal(parents0, parents1)  # same inputs in these runs
            assert A[r, 2, 0] == A[r, 2, 1] != 0
        for r in diff:
            assert A[r, 2, 0] != 0 and A[r, 2, 1] == 0 and A[r, 3, 1] != 0


def test_hrf_flag_and_headers(sims):
    assert sims["hrf"].truth.hrf and sims["hrf"].truth.hrf_kernel is not None
    assert not sims["separated"].truth.hrf and sims["separated"].truth.hrf_kernel is None
    img = sims["separated"].imgs[0]
    assert img.ndim == 4 and img.header.get_zooms()[3] == 2.0
    assert sims["low_snr"].truth.snr < sims["separated"].truth.snr


def test_reproducible_and_seed_dependent():
    a = simulate_fmri_rois("split_halves", random_state=7, **SMALL)
    b = simulate_fmri_rois("split_halves", random_state=7, **SMALL)
    c = simulate_fmri_rois("split_halves", random_state=8, **SMALL)
    for ia, ib in zip(a.imgs, b.imgs):
        np.testing.assert_array_equal(ia.get_fdata(), ib.get_fdata())
    np.testing.assert_array_equal(a.truth.run_coupling, b.truth.run_coupling)
    np.testing.assert_array_equal(a.labels_img.get_fdata(), b.labels_img.get_fdata())
    assert not np.array_equal(a.imgs[0].get_fdata(), c.imgs[0].get_fdata())
    rs = np.random.RandomState(0)
    simulate_fmri_rois(random_state=rs, **SMALL)  # RandomState accepted


def test_options_change_size():
    d = simulate_fmri_rois(n_rois=3, roi_size=10, n_runs=2, n_timepoints=30, resolution=10.0)
    assert d.roi_graph.shape == (3, 3)
    assert np.bincount(d.truth.voxel_labels)[1:].tolist() == [10, 10, 10]
    assert len(d.imgs) == 2 and d.imgs[0].shape[-1] == 30
    assert d.imgs[0].header.get_zooms()[:3] == (10.0, 10.0, 10.0)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(scenario="nope"), ValueError, "scenario"),
        (dict(n_runs=0), ValueError, "n_runs"),
        (dict(n_runs=2.5), TypeError, "n_runs"),
        (dict(scenario="split_halves", n_runs=1), ValueError, "n_runs"),
        (dict(n_timepoints=5), ValueError, "n_timepoints"),
        (dict(t_r=0), ValueError, "t_r"),
        (dict(snr=-1.0), ValueError, "snr"),
        (dict(snr="high"), TypeError, "snr"),
        (dict(hrf="yes"), TypeError, "hrf"),
        (dict(scenario="hrf", hrf=False), ValueError, "hrf"),
        (dict(resolution=1.0), ValueError, "resolution"),
        (dict(n_rois=1), ValueError, "n_rois"),
        (dict(scenario="split_halves", n_rois=3), ValueError, "n_rois"),
        (dict(n_rois=9), ValueError, "n_rois"),
        (dict(roi_size=1), ValueError, "roi_size"),
        (dict(roi_size=5000), ValueError, "roi_size"),
        (dict(nuisance=-0.1), ValueError, "nuisance"),
        (dict(random_state="a"), TypeError, "random_state"),
    ],
)
def test_bad_arguments(kwargs, err, match):
    with pytest.raises(err, match=match):
        simulate_fmri_rois(**kwargs)


@pytest.mark.parametrize("scenario", ["coupled", "split_halves"])
def test_true_abstraction_error_zero_for_truth_positive_for_merges(sims, scenario):
    from crl_neuro.datasets.fmri import true_abstraction_error

    data = sims[scenario]
    tr = data.truth
    assert true_abstraction_error(tr, tr.voxel_labels) < 1e-8
    assert true_abstraction_error(tr, data.labels_img) < 1e-8  # 3D image accepted
    # Adding background voxels to an ROI only rescales it: still exact.
    noisy = tr.voxel_labels.copy()
    bg = np.flatnonzero(noisy == 0)[:50]
    noisy[bg] = 1
    assert true_abstraction_error(tr, noisy) < 1e-8
    merged = tr.voxel_labels.copy()
    merged[merged == 2] = 1  # the adjacent pair as one ROI
    assert true_abstraction_error(tr, merged) > 0.04
    dropped = tr.voxel_labels.copy()
    dropped[dropped == 3] = 0
    assert true_abstraction_error(tr, dropped) > 0.04
    assert true_abstraction_error(tr, np.zeros_like(tr.voxel_labels)) == 1.0
    with pytest.raises(ValueError, match="labels"):
        true_abstraction_error(tr, np.ones(5, dtype=int))


def test_labels_img_feeds_nifti_labels_masker(sims):
    from nilearn.maskers import NiftiLabelsMasker

    data = sims["separated"]
    tr = data.truth
    ts = NiftiLabelsMasker(data.labels_img, standardize=None).fit_transform(data.imgs[0])
    K = data.roi_graph.shape[0]
    assert ts.shape == (SMALL["n_timepoints"], K)
    # ROI means follow the ROI signals (voxel noise averages out over the ROI).
    for k in range(K):
        assert np.corrcoef(ts[:, k], tr.roi_signals[0][:, k])[0, 1] > 0.8


def test_family_draw_ground_truth():
    """draw_fmri_problem: random layout in a field of view, varied sizes, same-volume
    links folded into the truth, motion confounds, run lengths; the truth stays exact."""
    from crl_neuro.datasets import draw_fmri_problem
    from crl_neuro.datasets.fmri import true_abstraction_error

    kw = draw_fmri_problem(3, kind="coupled")
    assert kw == draw_fmri_problem(3, kind="coupled")  # reproducible
    kw.update(resolution=4.0, bounding_box=None, n_timepoints=[60] * kw["n_runs"], instantaneous=0.5)
    data = simulate_fmri_rois(**kw)
    tr = data.truth
    K = data.roi_graph.shape[0]
    lab = np.asarray(data.labels_img.dataobj)
    for k in range(1, K + 1):
        assert ndimage.label(lab == k)[1] == 1
    assert np.any(ndimage.binary_dilation(lab == 1) & (lab == 2))  # driver touches driven
    assert abs(tr.coupling_correlation[0] - kw["coupling_correlation"]) < 1e-3
    assert tr.instantaneous_edges.any()
    assert not np.any(tr.run_coupling[:, tr.instantaneous_edges])  # an edge is lagged or same-volume
    assert [m.shape for m in tr.motion] == [(60, 6)] * kw["n_runs"]
    assert true_abstraction_error(tr, tr.voxel_labels) < 1e-8
    merged = tr.voxel_labels.copy()
    merged[merged == 2] = 1
    assert true_abstraction_error(tr, merged) > 1e-3
    with pytest.raises(ValueError, match="bounding_box"):
        simulate_fmri_rois(bounding_box=((0, 1), (0, 1), (0, 1)))  # needs layout="random"
    with pytest.raises(ValueError, match="coupling_correlation"):
        simulate_fmri_rois(coupling_correlation=0.8)
    with pytest.raises(ValueError, match="hrf_variability"):
        simulate_fmri_rois(hrf_variability=0.5)


def test_crowded_field_of_view_still_places_every_roi():
    """Draw 20 of the family asks for 15 ROIs in a small 2 mm box: the seed placement
    falls back to the farthest free point instead of giving up, and every ROI is one
    contiguous, non-empty region; ROIs that cannot fit still give a clear error."""
    from crl_neuro.datasets import draw_fmri_problem

    kw = draw_fmri_problem(20)
    kw.update(n_timepoints=[30] * kw["n_runs"])
    data = simulate_fmri_rois(**kw)
    lab = np.asarray(data.labels_img.dataobj)
    assert data.roi_graph.shape[0] == kw["n_rois"]
    for k in range(1, kw["n_rois"] + 1):
        assert ndimage.label(lab == k)[1] == 1
    with pytest.raises(ValueError, match="n_rois"):
        simulate_fmri_rois(layout="random", resolution=4.0, bounding_box=((0, 8), (0, 8), (0, 8)), n_rois=16,
                           roi_size=(2, 2))


def test_scenario_specs_are_consistent():
    # Every scenario is a declarative spec; its fixed ROI indices exist at the smallest allowed n_rois.
    from crl_neuro.datasets.fmri import _SCENARIO_SPECS, _SEPARATED_SEEDS

    assert tuple(_SCENARIO_SPECS) == SCENARIOS
    seed_names = {name for name, _ in _SEPARATED_SEEDS}
    for name, spec in _SCENARIO_SPECS.items():
        k = spec.min_rois
        idx = [i for e in spec.forced_edges for i in e] + [i for i, _ in spec.fixed_auto]
        idx += [i for i, _ in spec.fixed_innovation] + [i for e in spec.rewiring for i in e[:2]]
        idx += list(spec.dag_excludes) + list(spec.driver_edge or ())
        assert all(0 <= i < k for i in idx), name
        assert bool(spec.pair_roles) == bool(spec.atlas_pair), name
        assert len(spec.pair_roles) in (0, 2) and len(spec.atlas_pair) in (0, 2), name
        assert spec.atlas_replaces is None or spec.atlas_replaces in seed_names, name
        if spec.driver_edge is not None:
            assert spec.driver_edge in spec.protected_edges, name
        if spec.rewiring:
            assert spec.min_runs >= 2, name  # the differing runs must leave some common runs
