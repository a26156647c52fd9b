"""Ground-truth and API tests of ``crl_neuro.meeg.SessionCRL``."""

from __future__ import annotations

import copy
import warnings

import matplotlib.figure
import mne
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import FastICA
from sklearn.exceptions import NotFittedError

import crl_neuro
from crl_neuro.core.metrics import graph_scores, localization_error, mcc
from crl_neuro.datasets import simulate_meeg_sessions
from crl_neuro.meeg import SessionCRL, scan_leadfield


@pytest.fixture(scope="module")
def sim():
    # Perturbed head model (nominal forward given to the method), causally linked chain.
    return simulate_meeg_sessions(n_sources=4, n_sessions=4, duration=40.0, random_state=1)


@pytest.fixture(scope="module")
def fitted(sim):
    return SessionCRL(4, noise_cov=sim.noise_cov, random_state=0).fit(sim.raws, forward=sim.forward)


def _truth_sources(sim):
    return np.hstack(sim.truth.sources).T


def test_ground_truth_recovery(sim, fitted):
    est = fitted
    Z = np.hstack([est.transform(r) for r in sim.raws]).T
    score, match, per_latent = mcc(_truth_sources(sim), Z, return_details=True)
    assert score >= 0.9, per_latent
    err = localization_error(sim.truth.pos, est.source_pos_)
    assert err <= 10.0, err
    f1 = graph_scores(sim.truth.markov_network, est.markov_network_[np.ix_(match, match)])["f1"]
    assert f1 >= 0.8, f1
    assert np.all(est.source_gof_ > 80)


def test_free_orientation_forward_off_grid(sim):
    """The true sources sit off the decimated grid with the fine cortex's normals, so a
    grid vertex's normal can be far from the source's orientation; with the free-
    orientation solution the fixed forward was converted from (what
    mne.make_forward_solution returns) the scan fits the orientation too."""
    free = mne.convert_forward_solution(sim.forward, surf_ori=True, force_fixed=False, verbose=False)
    est = SessionCRL(4, noise_cov=sim.noise_cov, random_state=0).fit(sim.raws, forward=free)
    Z = np.hstack([est.transform(r) for r in sim.raws]).T
    assert mcc(_truth_sources(sim), Z) >= 0.9
    assert localization_error(sim.truth.pos, est.source_pos_) <= 8.0
    np.testing.assert_allclose(np.linalg.norm(est.source_ori_, axis=1), 1.0)
    np.testing.assert_allclose(est.dipoles_.pos, est.source_pos_)


def test_orientation_basis():
    """_ori_basis: orthonormal basis of each location's visible orientations and the
    map back to orientation coefficients (G c = Q v); silent orientations dropped."""
    from crl_neuro.meeg.localization import _ori_basis

    rng = np.random.default_rng(0)
    G = rng.normal(size=(50, 12, 3))
    G[:5, :, 2] = 1e-9 * G[:5, :, 0] + 1e-30 * rng.normal(size=(5, 12))  # silent third column
    Q, to_coef = _ori_basis(G)
    gram = np.swapaxes(Q, 1, 2) @ Q
    visible = np.r_[np.full(5, 2), np.full(45, 3)]
    assert np.linalg.matrix_rank(Q[0], tol=1e-8) == 2
    for s in range(50):  # Q^T Q = identity on the visible orientations, zero elsewhere
        d = np.diag(gram[s])
        np.testing.assert_allclose(gram[s], np.diag(d), atol=1e-8)
        np.testing.assert_allclose(np.sort(d), [0.0] * (3 - visible[s]) + [1.0] * visible[s], atol=1e-8)
    np.testing.assert_allclose(G @ to_coef, Q, atol=1e-10)
    # same span as an SVD of the leadfield, for the visible orientations
    U = np.linalg.svd(G[10], full_matrices=False)[0]
    np.testing.assert_allclose(Q[10] @ Q[10].T, U @ U.T, atol=1e-10)


def test_beats_ica_with_same_leadfield_scan(sim, fitted):
    info = sim.raws[0].info
    X = np.hstack([r.get_data() for r in sim.raws])
    from mne.cov import compute_whitener

    Wn, _ = compute_whitener(sim.noise_cov, info, pca=True, verbose=False)
    ica = FastICA(4, random_state=0, max_iter=1000).fit((Wn @ X).T)
    ica_mcc = mcc(_truth_sources(sim), ica.transform((Wn @ X).T))
    Z = np.hstack([fitted.transform(r) for r in sim.raws]).T
    assert mcc(_truth_sources(sim), Z) >= ica_mcc + 0.05
    loc = scan_leadfield(sim.forward, np.linalg.pinv(Wn) @ ica.mixing_, info=info, noise_cov=sim.noise_cov)
    assert localization_error(sim.truth.pos, fitted.source_pos_) <= localization_error(sim.truth.pos, loc.pos)


def test_fitted_attributes(sim, fitted):
    est = fitted
    n_ch, k = len(sim.raws[0].ch_names), 4
    assert est.patterns_.shape == (n_ch, k) and est.filters_.shape == (k, n_ch)
    assert est.session_precisions_.shape == (4, k, k)
    for name in ("markov_network_", "changing_edges_"):
        a = getattr(est, name)
        assert a.dtype == bool and a.shape == (k, k) and np.array_equal(a, a.T) and not a.diagonal().any()
    assert np.all(est.changing_edges_ <= est.markov_network_)
    np.testing.assert_array_equal(est.sessions_, np.arange(4))
    assert isinstance(est.info_, mne.Info) and est.info_["ch_names"] == sim.raws[0].ch_names
    assert est.source_pos_.shape == (k, 3) and est.source_vertices_.shape == (k,)
    assert isinstance(est.dipoles_, mne.Dipole) and len(est.dipoles_.times) == k
    # filters unmix the patterns
    np.testing.assert_allclose(est.filters_ @ est.patterns_, np.eye(k), atol=1e-6)


def test_epochs_and_single_instance(sim, fitted):
    k = 4
    epochs = [mne.make_fixed_length_epochs(r, duration=2.0, preload=True, verbose=False) for r in sim.raws]
    est_e = SessionCRL(k, noise_cov=sim.noise_cov).fit(epochs, forward=sim.forward)
    assert localization_error(fitted.source_pos_, est_e.source_pos_) < 10.0
    # One Raw with per-sample session labels.
    raw = mne.concatenate_raws([r.copy() for r in sim.raws], verbose=False)
    labels = np.repeat(np.arange(4), sim.raws[0].n_times)
    est_r = SessionCRL(k, noise_cov=sim.noise_cov).fit(raw, sessions=labels, forward=sim.forward)
    assert localization_error(fitted.source_pos_, est_r.source_pos_) < 1e-9
    np.testing.assert_array_equal(est_r.markov_network_, fitted.markov_network_)
    # One Epochs with per-epoch labels.
    ep = mne.concatenate_epochs(epochs, verbose=False)
    ep_labels = np.repeat(np.arange(4), [len(e) for e in epochs])
    est_1e = SessionCRL(k, noise_cov=sim.noise_cov).fit(ep, sessions=ep_labels, forward=sim.forward)
    assert localization_error(fitted.source_pos_, est_1e.source_pos_) < 10.0
    src = est_e.get_sources(epochs[0])
    assert isinstance(src, mne.BaseEpochs) and src.ch_names == ["CRL000", "CRL001", "CRL002", "CRL003"]
    assert len(src) == len(epochs[0])


def test_get_sources_localize_to_stc(sim, fitted):
    raw = sim.raws[0]
    src = fitted.get_sources(raw)
    assert isinstance(src, mne.io.BaseRaw)
    assert src.get_channel_types() == ["misc"] * 4 and src.n_times == raw.n_times
    np.testing.assert_allclose(src.get_data(), fitted.transform(raw))
    dip = fitted.localize(sim.forward)
    assert isinstance(dip, mne.Dipole) and np.all((dip.gof > 0) & (dip.gof <= 100))
    stc = fitted.to_stc(raw, sim.forward)
    assert isinstance(stc, mne.SourceEstimate)
    assert stc.data.shape[1] == raw.n_times and stc.data.shape[0] <= 4


def test_get_sources_real_raw_with_meas_date_and_annotations(sim, fitted):
    """Recorded data carry a measurement date and annotations tied to it (EDF, FIF...)."""
    from datetime import datetime, timezone

    raw = sim.raws[0].copy().crop(1.0, None)  # first_samp > 0, as after any crop
    date = datetime(2009, 8, 12, 16, 15, tzinfo=timezone.utc)
    raw.set_meas_date(date)
    raw.set_annotations(mne.Annotations([2.0, 5.0], [1.0, 0.5], ["T1", "T2"], orig_time=date))
    src = fitted.get_sources(raw)
    assert src.info["meas_date"] == date and src.first_samp == raw.first_samp
    np.testing.assert_allclose(src.annotations.onset, raw.annotations.onset)
    assert list(src.annotations.description) == ["T1", "T2"]
    events, _ = mne.events_from_annotations(src, verbose=False)
    np.testing.assert_array_equal(events, mne.events_from_annotations(raw, verbose=False)[0])


def test_caller_instances_unchanged_and_reproducible(sim):
    raws = [r.copy() for r in sim.raws]
    before = [r.get_data().copy() for r in raws]
    projs = [list(r.info["projs"]) for r in raws]
    a = SessionCRL(4, noise_cov=sim.noise_cov, random_state=0).fit(raws, forward=sim.forward)
    b = SessionCRL(4, noise_cov=sim.noise_cov, random_state=0).fit(raws, forward=sim.forward)
    for r, x, p in zip(raws, before, projs):
        np.testing.assert_array_equal(r.get_data(), x)
        assert r.info["projs"] == p and r.info["bads"] == []
    np.testing.assert_array_equal(a.filters_, b.filters_)
    np.testing.assert_array_equal(a.markov_network_, b.markov_network_)


def test_bad_channels_and_default_noise_cov(sim):
    raws = [r.copy() for r in sim.raws]
    raws[1].info["bads"] = ["Fp1"]
    with pytest.warns(RuntimeWarning, match="noise_cov"):
        est = SessionCRL(3).fit(raws)
    assert "Fp1" not in est.info_["ch_names"] and est.patterns_.shape[0] == len(raws[0].ch_names) - 1
    assert not hasattr(est, "source_pos_")
    dip = est.localize(sim.forward)
    assert len(dip.times) == 3


def test_save_load_round_trip(sim, fitted, tmp_path):
    path = fitted.save(tmp_path / "session.crl")
    loaded = crl_neuro.load(path)
    assert isinstance(loaded, SessionCRL)
    np.testing.assert_array_equal(loaded.transform(sim.raws[0]), fitted.transform(sim.raws[0]))
    assert loaded.info_["ch_names"] == fitted.info_["ch_names"]
    np.testing.assert_array_equal(loaded.dipoles_.pos, fitted.dipoles_.pos)
    np.testing.assert_array_equal(loaded.changing_edges_, fitted.changing_edges_)
    assert isinstance(loaded.noise_cov, mne.Covariance)
    np.testing.assert_allclose(loaded.noise_cov.data, fitted.noise_cov.data, rtol=1e-6)
    # The reloaded estimator can be refitted (its parameters are intact).
    assert clone(loaded).get_params()["n_sources"] == 4


def test_bootstrap_tells_surplus_sources_from_real_ones(sim, tmp_path):
    # 4 true sources, 6 asked for: the 2 surplus sources must not reappear in
    # bootstrap refits, the 4 real ones must.
    from scipy.optimize import linear_sum_assignment

    est = SessionCRL(6, noise_cov=sim.noise_cov, random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(sim.raws, forward=sim.forward)
    before = [r.get_data().copy() for r in sim.raws]
    conf = est.bootstrap(sim.raws, sim.forward, n_boot=10, random_state=0)
    d = np.linalg.norm(est.source_pos_[:, None] - sim.truth.pos[None], axis=2) * 1e3
    real, _ = linear_sum_assignment(d)
    surplus = np.setdiff1d(np.arange(6), real)
    assert conf.stability.to_numpy()[real].min() >= 0.8, conf
    assert conf.stability.to_numpy()[surplus].max() <= 0.3, conf
    assert np.all(conf.radius95_mm.to_numpy()[real] < 20.0), conf
    assert list(conf.index) == [f"CRL{i:03d}" for i in range(6)]
    for r, x in zip(sim.raws, before):
        np.testing.assert_array_equal(r.get_data(), x)
    F = est.network_frequency_
    assert F.shape == (6, 6) and np.allclose(F, F.T) and F.min() >= 0 and F.max() <= 1
    assert len(est.dipoles_.conf["vol"]) == 6
    loaded = crl_neuro.load(est.save(tmp_path / "boot.crl"))
    np.testing.assert_array_equal(loaded.source_confidence_.to_numpy(), conf.to_numpy())
    np.testing.assert_array_equal(loaded.dipoles_.conf["vol"], est.dipoles_.conf["vol"])
    report = mne.Report(verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.to_report(report, title="B")
    assert "B: source stability (bootstrap)" in "".join(report.html)
    # A refit makes the confidence stale: it is dropped.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est.fit(sim.raws)
    assert not hasattr(est, "source_confidence_") and not hasattr(est, "network_frequency_")


def test_bootstrap_bad_input(sim, fitted):
    with pytest.raises(NotFittedError):
        SessionCRL(2).bootstrap(sim.raws, sim.forward)
    no_fwd = SessionCRL(2, noise_cov=sim.noise_cov, random_state=0).fit(sim.raws)
    with pytest.raises(ValueError, match="forward"):
        no_fwd.bootstrap(sim.raws, sim.forward)
    with pytest.raises(ValueError, match="n_boot"):
        fitted.bootstrap(sim.raws, sim.forward, n_boot=1)
    with pytest.raises(ValueError, match="block_duration"):
        fitted.bootstrap(sim.raws, sim.forward, block_duration=0.0)
    with pytest.raises(ValueError, match="single bootstrap block"):
        fitted.bootstrap(sim.raws, sim.forward, block_duration=1000.0)
    with pytest.raises(ValueError, match="fitted on"):
        fitted.bootstrap(sim.raws[:3], sim.forward)
    with pytest.raises(TypeError, match="forward"):
        fitted.bootstrap(sim.raws, "fwd.fif")
    assert not hasattr(fitted, "source_confidence_")
    # Same seed, same replicates, whether they run here or in worker processes.
    a, b = copy.deepcopy(fitted), copy.deepcopy(fitted).set_params(n_jobs=2)
    conf_a = a.bootstrap(sim.raws, sim.forward, n_boot=3, random_state=5)
    conf_b = b.bootstrap(sim.raws, sim.forward, n_boot=3, random_state=5)
    np.testing.assert_array_equal(conf_a.to_numpy(), conf_b.to_numpy())


def test_clone_and_not_fitted(sim):
    est = SessionCRL(3, picks="eeg", sparsity=0.5, random_state=2)
    assert clone(est).get_params() == est.get_params()
    with pytest.raises(NotFittedError):
        est.get_sources(sim.raws[0])
    with pytest.raises(NotFittedError):
        est.plot_components()


def test_bad_input(sim):
    raws = sim.raws
    cov = sim.noise_cov
    with pytest.raises(ValueError, match="at least 2 sessions"):
        SessionCRL(2, noise_cov=cov).fit(raws[:1])
    other = raws[1].copy().drop_channels(["Cz", "Pz"])
    with pytest.raises(ValueError, match="Cz"):
        SessionCRL(2, noise_cov=cov).fit([raws[0], other])
    bad = raws[1].copy()
    bad._data[3, 10] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        SessionCRL(2, noise_cov=cov).fit([raws[0], bad])
    with pytest.raises(ValueError, match="n_sources"):
        SessionCRL(80, noise_cov=cov).fit(raws[:2])
    with pytest.raises(TypeError, match="insts"):
        SessionCRL(2, noise_cov=cov).fit([np.zeros((3, 100)), np.zeros((3, 100))])
    with pytest.raises(TypeError, match="noise_cov"):
        SessionCRL(2, noise_cov=np.eye(3)).fit(raws[:2])
    with pytest.raises(TypeError, match="forward"):
        SessionCRL(2, noise_cov=cov).fit(raws[:2], forward="fwd.fif")
    with pytest.raises(ValueError, match="sessions"):
        SessionCRL(2, noise_cov=cov).fit(raws[0])
    with pytest.raises(ValueError, match="sessions"):
        SessionCRL(2, noise_cov=cov).fit(raws[0], sessions=np.zeros(10))
    with pytest.raises(TypeError, match="n_sources"):
        SessionCRL("4", noise_cov=cov).fit(raws[:2])


def test_plots_and_report(sim, fitted):
    assert isinstance(fitted.plot_components(), matplotlib.figure.Figure)
    assert isinstance(fitted.plot_network(), matplotlib.figure.Figure)
    report = mne.Report(verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = fitted.to_report(report, title="CRL")
    html = "".join(report.html)
    assert out is report and "CRL: source patterns" in html and "CRL: source network" in html


def test_free_orientation_forward(sim):
    sphere = mne.make_sphere_model("auto", "auto", sim.info, verbose=False)
    fwd_free = mne.make_forward_solution(
        sim.info, trans=None, src=sim.forward["src"], bem=sphere, eeg=True, meg=False, verbose=False
    )
    est = SessionCRL(4, noise_cov=sim.noise_cov, verbose=False).fit(sim.raws, forward=fwd_free)
    assert localization_error(sim.truth.pos, est.source_pos_) <= 12.0
    np.testing.assert_allclose(np.linalg.norm(est.source_ori_, axis=1), 1.0)


def test_rap_music_does_not_split_a_generator():
    """A location whose leadfield, in the signal subspace, is 0.9-correlated with a
    source already found is what RAP-MUSIC picks next here; with max_corr it is not."""
    from crl_neuro.meeg.localization import _rap_music

    e = np.eye(6)
    gain = np.c_[e[0], 0.9 * e[0] + np.sqrt(1 - 0.81) * e[1], 0.3 * e[0] + 0.5 * e[1] + 0.81 * e[2],
                 0.2 * e[3] + e[4]]
    basis = e[:, :2]
    locs, _ = _rap_music(gain, basis, 2, 1)
    assert locs.tolist() == [0, 1]
    locs, pats = _rap_music(gain, basis, 2, 1, max_corr=0.8)
    assert locs.tolist() == [0, 2]
    proj = basis.T @ pats
    proj /= np.linalg.norm(proj, axis=0)
    assert abs(proj[:, 0] @ proj[:, 1]) <= 0.8
    # free orientation: the other two orientations reach only channels outside the
    # signal subspace, so the choice is the same
    e14 = np.eye(14)
    gain3 = np.zeros((14, 12))
    for i in range(4):
        gain3[:6, 3 * i] = gain[:, i]
        gain3[:, 3 * i + 1], gain3[:, 3 * i + 2] = e14[6 + 2 * i], e14[7 + 2 * i]
    basis3 = e14[:, :2]
    assert _rap_music(gain3, basis3, 2, 3)[0].tolist() == [0, 1]
    assert _rap_music(gain3, basis3, 2, 3, max_corr=0.8)[0].tolist() == [0, 2]


def test_scan_leadfield_true_patterns(sim):
    loc = scan_leadfield(sim.forward, sim.truth.patterns, info=sim.info, noise_cov=sim.noise_cov)
    assert localization_error(sim.truth.pos, loc.pos) <= 10.0
    assert loc.vertices.shape == (4,) and np.all(loc.gof > 80) and isinstance(loc.dipole, mne.Dipole)
    # Without info: unwhitened comparison on the forward's channels.
    loc2 = scan_leadfield(sim.forward, sim.truth.patterns, ch_names=sim.info["ch_names"])
    assert localization_error(sim.truth.pos, loc2.pos) <= 15.0
    with pytest.raises(ValueError, match="rows"):
        scan_leadfield(sim.forward, sim.truth.patterns[:10], info=sim.info)
    with pytest.raises(TypeError, match="forward"):
        scan_leadfield("fwd", sim.truth.patterns)
    with pytest.raises(ValueError, match="forward lacks"):
        scan_leadfield(sim.forward, np.ones((2, 1)), ch_names=["X1", "X2"])


def test_warns_on_split_sources_and_unconverged_refinement(sim, fitted):
    from crl_neuro.core.multidist import fit_joint_sparse

    est = clone(fitted)
    for name, value in vars(fitted).items():
        setattr(est, name, value.copy() if isinstance(value, np.ndarray) else value)
    assert fitted.pattern_correlation_.shape == (4, 4)
    assert fitted.pattern_correlation_.max() <= 0.8  # the well-posed fixture: no warning
    est.patterns_ = est.patterns_.copy()
    est.patterns_[:, 1] = est.patterns_[:, 0] + 0.1 * est.patterns_[:, 1]
    with pytest.warns(RuntimeWarning, match="sources 0-1 .* split in two"):
        est._warn_duplicates()
    est.patterns_ = fitted.patterns_.copy()
    est.source_pos_ = fitted.source_pos_.copy()
    est.source_pos_[2] = est.source_pos_[3] + 0.003
    with pytest.warns(RuntimeWarning, match="sources 2-3"):
        est._warn_duplicates()
    # The refinement reports when it stops at max_iter.
    covs = np.array([np.diag([1.0, 2.0, 3.0]), np.diag([3.0, 1.0, 2.0])])
    covs[:, 0, 1] = covs[:, 1, 0] = 0.5
    res = fit_joint_sparse(covs, np.array([500.0, 500.0]), np.eye(3) + 0.3, max_iter=1)
    assert not res["converged"] and res["n_iter"] == 1


def test_refinement_that_splits_a_source_is_rejected(sim, fitted, monkeypatch):
    """A refinement that makes two patterns alike is rejected; the leadfield start is kept."""
    from crl_neuro.meeg import session_crl

    assert fitted.refined_ is True  # the well-posed fixture keeps its refinement
    real = session_crl.fit_joint_sparse
    calls = []

    def splitting(covs, n_eff, W0, **kw):
        res = real(covs, n_eff, W0, **kw)
        calls.append(kw.get("update_W", True))
        if kw.get("update_W", True):  # the refinement: make source 1 a copy of source 0
            M = np.linalg.inv(res["W"])
            M[:, 1] = M[:, 0] + 0.02 * M[:, 1]
            res = dict(res, W=np.linalg.inv(M))
        return res

    monkeypatch.setattr(session_crl, "fit_joint_sparse", splitting)
    real_music, starts = session_crl._rap_music, []

    def spy(*args, **kw):
        out = real_music(*args, **kw)
        starts.append(out[0])
        return out

    monkeypatch.setattr(session_crl, "_rap_music", spy)
    est = SessionCRL(4, noise_cov=sim.noise_cov, random_state=0).fit(sim.raws, forward=sim.forward)
    assert calls == [True, False]  # refined, then rejected and re-estimated on the start
    assert est.refined_ is False
    assert est.pattern_correlation_.max() <= 0.8
    # The sources are the start's dipoles, and so are their locations.
    np.testing.assert_array_equal(est.source_vertices_, starts[0])
    np.testing.assert_allclose(est.source_pos_, sim.forward["source_rr"][starts[0]])
    assert np.all((est.source_gof_ > 50) & (est.source_gof_ <= 100))
    # The start alone still finds the sources (within 2 cm on this easy problem).
    assert localization_error(sim.truth.pos, est.source_pos_) < 20.0


def test_power_changes_are_not_changing_edges():
    """Strengths fixed, sources' power changing: few edges flagged; a real change is found."""
    flagged = tested = 0
    for seed in range(3):
        sim = simulate_meeg_sessions(n_sources=4, n_sessions=5, duration=40.0, n_changing_edges=0,
                                     snr=5.0, random_state=seed)
        est = SessionCRL(4, noise_cov=sim.noise_cov).fit(sim.raws, forward=sim.forward)
        flagged += int(est.changing_edges_.sum() // 2)
        tested += int(est.markov_network_.sum() // 2)
        assert est.changing_sources_.all()  # every source's power changes: its mechanism does
        assert est.changing_edges_pvalues_.shape == (4, 4)
        assert np.all(est.changing_edges_effect_ci_[0] <= est.changing_edges_effect_ci_[1])
    assert tested >= 8 and flagged <= 0.15 * tested, (flagged, tested)
    # An edge that switches on and off is found; the fixed edge beside it is not flagged.
    g = np.zeros((3, 3))
    g[0, 1], g[1, 2] = 0.8, 0.7
    graphs = np.repeat(g[None], 5, axis=0)
    graphs[:, 1, 2] = [0.0, 0.8, 0.0, 0.8, 0.0]  # 1 -> 2 switches on and off
    sim = simulate_meeg_sessions(n_sources=3, n_sessions=5, duration=40.0, graph=graphs, random_state=0)
    est = SessionCRL(3, noise_cov=sim.noise_cov).fit(sim.raws, forward=sim.forward)
    _, match, _ = mcc(np.concatenate(sim.truth.sources, 1).T,
                      np.concatenate([est.transform(r) for r in sim.raws], 1).T, return_details=True)
    chg = est.changing_edges_[np.ix_(match, match)]
    assert chg[1, 2] and not chg[0, 1], chg


def test_silent_orientation_is_not_a_direction():
    """In a spherical head the radial MEG dipole is silent: its leadfield column is
    rounding noise. The scan and RAP-MUSIC must not treat that noise as a third
    orientation (a QR basis normalises it to full weight)."""
    from crl_neuro.meeg.localization import _rap_music, _scan

    rng = np.random.default_rng(0)
    e = np.eye(10)
    g1 = e[:, 2] + 0.5 * e[:, 3]  # the true source's (visible) leadfield
    a = g1 + 0.6 * e[:, 4]  # its pattern, with some head-model error
    # location 0: two visible orientations far from the pattern, and a silent one
    # whose rounding noise happens to point along the pattern
    loc0 = np.c_[e[:, 0], e[:, 1], 1e-20 * a / np.linalg.norm(a) + 1e-24 * rng.normal(size=10)]
    loc1 = np.c_[g1, e[:, 5], e[:, 6]]
    gain = np.c_[loc0, loc1]
    best, sc, coef, _amp = _scan(gain, a[:, None], 3)
    assert best.tolist() == [1]
    assert abs(coef[0, 0]) > 0.99 and sc[0] < 1.0
    basis = (a / np.linalg.norm(a))[:, None]
    assert _rap_music(gain, basis, 1, 3)[0].tolist() == [1]


@pytest.fixture(scope="module")
def meg_sim():
    return simulate_meeg_sessions(n_sources=3, n_sessions=4, duration=30.0, snr=10.0, sensors="meg",
                                  random_state=0)


def test_free_orientation_meg_sphere(meg_sim):
    sim = meg_sim
    fwd_free = mne.make_forward_solution(sim.info, None, sim.forward["src"], sim.truth.nominal_sphere,
                                         meg=True, eeg=False, verbose=False)
    loc = scan_leadfield(fwd_free, sim.truth.patterns, info=sim.info, noise_cov=sim.noise_cov)
    assert localization_error(sim.truth.pos, loc.pos) <= 8.0
    est = SessionCRL(3, noise_cov=sim.noise_cov, random_state=0, verbose=False)
    est.fit(sim.raws, forward=fwd_free)
    assert localization_error(sim.truth.pos, est.source_pos_) <= 8.0


def test_localize_continuous_dipole_fit(meg_sim):
    """Off-grid sources: a continuous fit of the patterns beats the grid scan."""
    sim = meg_sim
    est = SessionCRL(3, noise_cov=sim.noise_cov, random_state=0, verbose=False)
    est.fit(sim.raws, forward=sim.forward)
    err_scan = localization_error(sim.truth.pos, est.source_pos_)
    grid_pos, grid_gof = est.source_pos_.copy(), est.source_gof_.copy()
    dip = est.localize(sim.forward, bem=sim.truth.nominal_sphere)
    err_fit = localization_error(sim.truth.pos, est.source_pos_)
    assert err_fit <= 6.0 and err_fit < err_scan
    assert np.all(est.source_gof_ >= grid_gof)  # never a worse fit of the pattern than the scan
    assert isinstance(dip, mne.Dipole) and est.dipoles_ is dip and len(dip.pos) == 3
    np.testing.assert_allclose(np.linalg.norm(est.source_ori_, axis=1), 1.0)
    assert np.all((est.source_gof_ > 0) & (est.source_gof_ <= 100))
    nearest = np.linalg.norm(sim.forward["source_rr"][None] - est.source_pos_[:, None], axis=-1).argmin(1)
    np.testing.assert_array_equal(est.source_vertices_, nearest)
    est.localize(sim.forward)  # without bem: back to the grid scan
    np.testing.assert_allclose(est.source_pos_, grid_pos)
    with pytest.raises(TypeError, match="bem"):
        est.localize(sim.forward, bem=np.eye(3))
    with pytest.raises(TypeError, match="trans"):
        est.localize(sim.forward, bem=sim.truth.nominal_sphere, trans=np.eye(4))
    np.testing.assert_allclose(est.source_pos_, grid_pos)  # a refused call changes nothing


def test_localization_prior_is_pluggable(sim, fitted, tmp_path):
    """prior= takes the default LeadfieldPrior, None, or any object with penalty(context)."""
    from crl_neuro.meeg.priors import LeadfieldPrior, PriorContext

    def fit(prior):
        return SessionCRL(4, noise_cov=sim.noise_cov, prior=prior, random_state=0).fit(
            sim.raws, forward=sim.forward)

    np.testing.assert_array_equal(fit(LeadfieldPrior()).filters_, fitted.filters_)

    class Recording:  # a user's prior: here the default one, watched
        def __init__(self):
            self.calls, self.context = 0, None

        def penalty(self, context):
            self.context = context
            inner = LeadfieldPrior().penalty(context)

            def f(W):
                self.calls += 1
                return inner(W)

            return f

    rec = Recording()
    est = fit(rec)
    ctx = rec.context
    assert isinstance(ctx, PriorContext) and rec.calls > 0
    n_white = ctx.gain.shape[0]
    assert ctx.reduce.shape == (4, n_white) and ctx.expand.shape == (n_white, 4)
    np.testing.assert_allclose(ctx.reduce @ ctx.expand, np.eye(4), atol=1e-8)
    assert ctx.start_locations.shape == (4,) and ctx.penalty_scale > 0
    assert ctx.positions.shape == (ctx.gain.shape[1] // ctx.n_ori, 3)
    np.testing.assert_array_equal(est.filters_, fitted.filters_)
    # without a physics penalty the refinement is another fit
    assert not np.array_equal(fit(None).filters_, fitted.filters_)

    w = fit(LeadfieldPrior(weight=50.0, radius=0.01))
    loaded = crl_neuro.load(w.save(tmp_path / "prior.crl"))
    assert loaded.prior == LeadfieldPrior(weight=50.0, radius=0.01)
    np.testing.assert_array_equal(loaded.filters_, w.filters_)
    with pytest.raises(TypeError, match="prior"):
        est.save(tmp_path / "custom.crl")
    with pytest.raises(ValueError, match="prior"):
        SessionCRL(2, noise_cov=sim.noise_cov, prior="beamformer").fit(sim.raws[:2])
    with pytest.raises(TypeError, match="prior"):
        SessionCRL(2, noise_cov=sim.noise_cov, prior=3).fit(sim.raws[:2])
    with pytest.raises(ValueError, match="weight"):
        LeadfieldPrior(weight=0)
    with pytest.raises(ValueError, match="radius"):
        LeadfieldPrior(radius=-1)


def test_rap_music_start_agrees_with_mne_rap_music(sim):
    """Cross-check of the leadfield scan SessionCRL starts from against MNE's RAP-MUSIC."""
    from mne.cov import compute_whitener

    from crl_neuro.meeg.localization import _forward_gain, _n_ori, _rap_music

    fwd, info = sim.forward, sim.info
    rr = fwd["source_rr"]
    # two correlated-pattern locations 3 cm apart (the hard case for a sequential scan)
    a = int(np.argmax(rr[:, 0]))
    b = int(np.argmin(np.abs(np.linalg.norm(rr - rr[a], axis=1) - 0.03)))
    n_ori = _n_ori(fwd)
    gain = _forward_gain(fwd, info["ch_names"])
    rng = np.random.default_rng(0)
    cols = [gain[:, s * n_ori:(s + 1) * n_ori] @ rng.normal(size=n_ori) for s in (a, b)]
    data = np.stack(cols, axis=1) @ rng.normal(size=(2, 300))
    data += 0.05 * data.std() * rng.normal(size=data.shape)
    evoked = mne.EvokedArray(data, info, tmin=0.0, verbose=False)

    dips = mne.beamformer.rap_music(evoked, fwd, sim.noise_cov, n_dipoles=2, verbose=False)
    mne_locs = sorted(int(np.argmin(np.linalg.norm(rr - d.pos[0], axis=1))) for d in dips)

    Wn, _, _ = compute_whitener(sim.noise_cov, evoked.info, picks=info["ch_names"], pca=True,
                                return_rank=True, verbose=False)
    U, _, _ = np.linalg.svd(Wn @ evoked.data, full_matrices=False)
    ours, _ = _rap_music(Wn @ gain, U[:, :2], 2, n_ori)
    assert sorted(int(v) for v in ours) == mne_locs == sorted([a, b])


def test_change_subspace_ignores_a_strong_stationary_rhythm():
    """A strong rhythm whose power never changes (alpha-like) dominates the variance:
    the principal subspace holds it and loses the sources; the directions that change
    across sessions (subspace="change", the default) keep the sources."""
    from scipy.signal import butter, sosfiltfilt

    sim = simulate_meeg_sessions(n_sources=3, n_sessions=4, duration=30.0, random_state=0)
    gain, rr = sim.forward["sol"]["data"], sim.forward["source_rr"]
    rng = np.random.default_rng(0)
    far = np.linalg.norm(rr[:, None] - sim.truth.pos[None], axis=-1).min(axis=1) > 0.04
    v = rng.choice(np.flatnonzero(far))
    sos = butter(4, [8.0, 12.0], btype="band", fs=sim.info["sfreq"], output="sos")
    raws = []
    for raw in sim.raws:
        x = raw.get_data()
        y = np.outer(gain[:, v], sosfiltfilt(sos, rng.standard_normal(x.shape[1])))
        raws.append(mne.io.RawArray(x + 2.0 * np.linalg.norm(x) / np.linalg.norm(y) * y, raw.info,
                                    verbose=False))
    truth = np.hstack(sim.truth.sources).T
    res = {}
    for subspace in ("change", "variance"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "variance" splits the rhythm
            est = SessionCRL(3, noise_cov=sim.noise_cov, subspace=subspace, random_state=0,
                             verbose=False).fit(raws, forward=sim.forward)
        res[subspace] = (mcc(truth, np.hstack([est.transform(r) for r in raws]).T),
                         localization_error(sim.truth.pos, est.source_pos_))
    assert res["change"][0] >= 0.9 and res["change"][1] <= 10.0
    assert res["variance"][0] < 0.75 and res["variance"][1] > 20.0
    with pytest.raises(ValueError, match="subspace"):
        SessionCRL(3, subspace="pca").fit(raws, forward=sim.forward)
