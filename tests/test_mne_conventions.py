"""MNE data conventions: BAD_ annotations, rejected epochs, private-API compatibility."""

from __future__ import annotations

import pathlib

import mne
import numpy as np
import pytest

import crl_neuro
from crl_neuro.core.metrics import localization_error
from crl_neuro.core.multidist import effective_n
from crl_neuro.datasets import simulate_meeg_sessions, simulate_multimodal
from crl_neuro import _mne_compat as _compat
from crl_neuro.meeg import SessionCRL
from crl_neuro.multimodal import MultiModalCRL

_ARTEFACT = 1e-3  # volts: ~100 x the simulated EEG, enough to take over any fit


@pytest.fixture(scope="module")
def sim():
    return simulate_meeg_sessions(n_sources=3, n_sessions=3, duration=20.0, random_state=0)


def _fit(sim, insts, **kw):
    # The forward path is deterministic and fast (no random restarts).
    return SessionCRL(3, noise_cov=sim.noise_cov, verbose="error").fit(insts, forward=sim.forward, **kw)


def _with_artefact(raw, onset, duration, description="BAD_muscle"):
    """Copy of ``raw`` with huge values over an annotated stretch; also its annotation mask."""
    raw = raw.copy()
    raw.set_annotations(mne.Annotations([onset], [duration], [description]))
    bad = _compat.bad_annotation_mask(raw)
    rng = np.random.default_rng(0)
    raw._data[:, bad] += _ARTEFACT * rng.standard_normal((raw._data.shape[0], bad.sum()))
    return raw, bad


def test_bad_annotation_mask_follows_mne():
    info = mne.create_info(["a", "b"], 100.0, "eeg")
    ramp = np.tile(np.arange(1000.0), (2, 1))
    raw = mne.io.RawArray(ramp, info, verbose="error").crop(1.0)  # first_samp = 100
    # Any case of "bad" counts; zero-duration BAD annotations remove nothing; others are kept.
    raw.set_annotations(mne.Annotations([3.0, 6.0, 8.0], [1.0, 0.5, 0.0], ["bad_blink", "T1", "BAD_x"]))
    mask = _compat.bad_annotation_mask(raw)
    np.testing.assert_array_equal(np.nonzero(mask)[0], np.arange(300, 400))  # from the data start
    omitted = raw.get_data(reject_by_annotation="omit", verbose="error")
    np.testing.assert_array_equal(omitted, raw.get_data()[:, ~mask])
    # With a measurement date, onsets count from it, as in MNE.
    raw.set_meas_date(0)
    raw.set_annotations(mne.Annotations([3.0], [1.0], ["BAD_blink"], orig_time=raw.info["meas_date"]))
    mask = _compat.bad_annotation_mask(raw)
    np.testing.assert_array_equal(np.nonzero(mask)[0], np.arange(200, 300))
    raw.set_annotations(None)
    assert not _compat.bad_annotation_mask(raw).any()


def test_effective_n_does_not_correlate_across_joins():
    from scipy.signal import lfilter

    rng = np.random.default_rng(0)
    # Two strongly autocorrelated stretches that end and start at different levels.
    x1, x2 = (lfilter([1.0], [1.0, -0.99], rng.standard_normal((600, 2)), axis=0) for _ in range(2))
    a, b = np.concatenate([x1, x2]), np.concatenate([x2, x1])
    # Without segments the products across the join depend on which stretch comes first...
    assert not np.allclose(effective_n(a, pairwise=True), effective_n(b, pairwise=True), rtol=1e-6)
    # ...with them no product crosses the join, so the order of the stretches is irrelevant.
    np.testing.assert_allclose(effective_n(a, pairwise=True, segments=[600, 600]),
                               effective_n(b, pairwise=True, segments=[600, 600]), rtol=1e-12)
    assert effective_n(a, segments=[1200]) == effective_n(a)  # one segment is the default
    with pytest.raises(ValueError, match="segments"):
        effective_n(a, segments=[400, 600])


@pytest.mark.parametrize("onset", [5.0, 16.0])  # inside the recording, and up to its end
def test_session_crl_excludes_bad_segments(sim, onset):
    raw1, bad = _with_artefact(sim.raws[1], onset, 4.0)
    assert bad.sum() == 800
    raws = [sim.raws[0], raw1, sim.raws[2]]
    cropped = mne.io.RawArray(raw1.get_data()[:, ~bad], raw1.info, verbose="error")
    ref = _fit(sim, [sim.raws[0], cropped, sim.raws[2]])
    est = _fit(sim, raws)  # default: reject_by_annotation=True
    np.testing.assert_allclose(est.mean_, ref.mean_, rtol=1e-10, atol=0)
    np.testing.assert_array_equal(est.markov_network_, ref.markov_network_)
    assert localization_error(ref.source_pos_, est.source_pos_) == 0.0
    # Joined stretches differ from the cropped recording only in the autocorrelations
    # taken across the join (effective sample sizes); a stretch cut at the end not at all.
    tol = 1e-12 if onset + 4.0 >= 20.0 else 1e-3
    np.testing.assert_allclose(est.patterns_, ref.patterns_, rtol=0, atol=tol * np.abs(ref.patterns_).max())
    # With the annotations ignored the artefact is fitted.
    used = _fit(sim, raws, reject_by_annotation=False)
    assert np.abs(used.mean_ - ref.mean_).max() > 100 * np.abs(ref.mean_).max()
    assert localization_error(ref.source_pos_, used.source_pos_) > 20.0
    # The caller's Raw keeps its artefact and annotation.
    assert len(raws[1].annotations) == 1 and np.abs(raws[1].get_data()).max() > 1e-4


def test_session_crl_no_lagged_statistics_across_removed_stretch(sim):
    raw1, bad = _with_artefact(sim.raws[1], 5.0, 4.0)
    x = raw1.get_data()
    first, art, last = x[:, :1000], x[:, bad], x[:, 1800:]
    assert np.array_equal(np.nonzero(bad)[0], np.arange(1000, 1800))
    # The same two good stretches in the other order, the artefact still between them.
    swapped = mne.io.RawArray(np.hstack([last, art, first]), raw1.info, verbose="error")
    swapped.set_annotations(mne.Annotations([last.shape[1] / 200.0], [4.0], ["BAD_muscle"]))
    est = _fit(sim, [sim.raws[0], raw1, sim.raws[2]])
    est_swapped = _fit(sim, [sim.raws[0], swapped, sim.raws[2]])
    # Effective sample sizes come from autocorrelations within each stretch only, so the
    # order of the stretches cannot matter (a product across the join would make it matter).
    np.testing.assert_allclose(est_swapped.n_eff_, est.n_eff_, rtol=1e-8)
    np.testing.assert_allclose(est_swapped.patterns_, est.patterns_, rtol=1e-6, atol=1e-12)


def test_session_crl_single_raw_drops_labels_of_bad_samples(sim):
    raw1, _ = _with_artefact(sim.raws[1], 5.0, 4.0)
    raws = [sim.raws[0], raw1, sim.raws[2]]
    n = raw1.n_times
    joined = mne.io.RawArray(np.hstack([r.get_data() for r in raws]), raw1.info, verbose="error")
    joined.set_annotations(mne.Annotations([n / raw1.info["sfreq"] + 5.0], [4.0], ["BAD_muscle"]))
    labels = np.repeat(["a", "b", "c"], n)
    est = _fit(sim, joined, sessions=labels)
    ref = _fit(sim, raws)
    np.testing.assert_allclose(est.patterns_, ref.patterns_, rtol=1e-9, atol=1e-20)
    np.testing.assert_array_equal(est.sessions_, ["a", "b", "c"])
    # Everything of a session under a BAD annotation: too few samples, said clearly.
    joined.set_annotations(mne.Annotations([n / raw1.info["sfreq"]], [20.0], ["BAD_all"]))
    with pytest.raises(ValueError, match="'b' has 0 samples left after BAD_"):
        _fit(sim, joined, sessions=labels)


def test_session_crl_epochs_rejected_by_mne_are_left_out(sim):
    raw1 = sim.raws[1].copy()  # an artefact nobody annotated, inside epoch 2 of this session
    raw1._data[:, 1000:1200] += _ARTEFACT * np.random.default_rng(0).standard_normal((raw1._data.shape[0], 200))
    raws = [sim.raws[0], raw1, sim.raws[2]]
    n = raw1.n_times
    joined = mne.io.RawArray(np.hstack([r.get_data() for r in raws]), raw1.info, verbose="error")
    events = mne.make_fixed_length_events(joined, duration=2.0)
    labels = events[:, 0] // n
    clean = np.ptp(sim.raws[1].get_data(), axis=1).max()
    epochs = mne.Epochs(joined, events, tmin=0.0, tmax=2.0 - 1 / joined.info["sfreq"], baseline=None,
                        reject={"eeg": 2 * clean}, preload=False, verbose="error")
    est = _fit(sim, epochs, sessions=labels)
    # The caller's Epochs is not loaded nor checked by the fit.
    assert not epochs.preload and len(epochs.events) == len(events)
    loaded = epochs.copy().drop_bad(verbose="error")
    assert len(loaded) == len(events) - 1  # the artefact epoch
    ref = _fit(sim, loaded, sessions=labels[loaded.selection])
    np.testing.assert_allclose(est.patterns_, ref.patterns_, rtol=1e-9, atol=1e-20)
    # A list of unloaded Epochs, one per session: same fit.
    per_session = [mne.Epochs(r, mne.make_fixed_length_events(r, duration=2.0), tmin=0.0,
                              tmax=2.0 - 1 / r.info["sfreq"], baseline=None, reject={"eeg": 2 * clean},
                              preload=False, verbose="error") for r in raws]
    est_list = _fit(sim, per_session)
    np.testing.assert_allclose(est_list.patterns_, ref.patterns_, rtol=1e-9, atol=1e-20)
    assert not any(e.preload for e in per_session)


@pytest.mark.parametrize("value", ["yes", None, 1, "omit"])
def test_reject_by_annotation_must_be_bool(sim, value):
    with pytest.raises(TypeError, match="reject_by_annotation"):
        _fit(sim, sim.raws, reject_by_annotation=value)
    with pytest.raises(TypeError, match="reject_by_annotation"):
        MultiModalCRL({"a": 1, "b": 1}, reject_by_annotation=value).fit(
            {"a": np.zeros((10, 2)), "b": np.zeros((10, 2))}
        )


def _eeg_modality(n_windows, latent, sfreq=100.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(2 * sfreq)) / sfreq
    amp = np.exp(0.5 * latent)
    x = amp[:, None, None] * np.sin(2 * np.pi * 10 * t)[None, None, :] + 0.3 * rng.normal(size=(n_windows, 3, t.size))
    return x * 1e-5, mne.create_info(["C3", "Cz", "C4"], sfreq, "eeg")


def test_multimodal_drops_bad_windows_from_every_modality():
    sim = simulate_multimodal(n_samples=60, latent_dims=2, random_state=0)
    x, info = _eeg_modality(60, sim.latents["m1"][:, 0])
    # Broadband artefact over windows 10 and 11 (20 s - 24 s), annotated below.
    x[10:12] += _ARTEFACT * np.random.default_rng(1).standard_normal(x[10:12].shape)
    raw = mne.io.RawArray(x.transpose(1, 0, 2).reshape(3, -1), info, verbose="error")
    raw.set_annotations(mne.Annotations([20.5], [2.0], ["BAD_movement"]))
    keep = np.ones(60, bool)
    keep[10:12] = False
    physio = sim.data["m2"]

    def model():
        return MultiModalCRL({"eeg": 2, "physio": 2}, max_iter=2, unwarp=False, random_state=0)

    est = model().fit({"eeg": raw, "physio": physio})
    ref = model().fit({"eeg": mne.EpochsArray(x[keep], info, verbose="error"), "physio": physio[keep]})
    np.testing.assert_allclose(est.feature_mean_, ref.feature_mean_)
    out, out_ref = est.transform({"eeg": raw, "physio": physio}), ref.transform(
        {"eeg": mne.EpochsArray(x[keep], info, verbose="error"), "physio": physio[keep]})
    for m in out:
        assert out[m].shape[0] == 58
        np.testing.assert_allclose(out[m], out_ref[m], rtol=1e-5, atol=1e-6)
    # Observed variables given per window are subset the same way.
    est.discover({"eeg": raw, "physio": physio}, observed=np.arange(60.0) % 7)
    with pytest.raises(ValueError, match="one row per candidate"):
        est.transform({"eeg": raw, "physio": physio[keep]})
    # Annotations ignored: the artefact windows are rows, and move the feature statistics.
    used = model().set_params(reject_by_annotation=False).fit({"eeg": raw, "physio": physio})
    assert used.transform({"eeg": raw, "physio": physio})["eeg"].shape[0] == 60
    assert np.abs(used.feature_mean_ - est.feature_mean_).max() > 0.05


def test_multimodal_unloaded_epochs_not_modified():
    sim = simulate_multimodal(n_samples=30, latent_dims=2, random_state=0)
    x, info = _eeg_modality(30, sim.latents["m1"][:, 0])
    x[3] += _ARTEFACT * np.random.default_rng(1).standard_normal(x[3].shape)
    raw = mne.io.RawArray(x.transpose(1, 0, 2).reshape(3, -1), info, verbose="error")
    events = mne.make_fixed_length_events(raw, duration=2.0)
    epochs = mne.Epochs(raw, events, tmin=0.0, tmax=2.0 - 0.01, baseline=None,
                        reject={"eeg": 1e-4}, preload=False, verbose="error")
    est = MultiModalCRL({"eeg": 2, "physio": 2}, max_iter=2, unwarp=False, random_state=0)
    out = est.fit_transform({"eeg": epochs, "physio": sim.data["m2"]})
    assert out["physio"].shape[0] == 29
    assert not epochs.preload and len(epochs.events) == 30


def test_private_mne_api_only_in_compat(monkeypatch):
    root = pathlib.Path(crl_neuro.__file__).parent
    offenders = [
        str(p.relative_to(root)) for p in root.rglob("*.py")
        if p.name != "_mne_compat.py" and any(s in p.read_text() for s in ("mne._fiff", "mne.io.pick", "._unlock("))
    ]
    assert offenders == []
    info = mne.create_info(["a", "b", "c"], 100.0, ["eeg", "eeg", "misc"])
    np.testing.assert_array_equal(_compat.picks_to_idx(info, None), [0, 1])
    # Another MNE layout: the helper is found in the next candidate module.
    monkeypatch.setitem(_compat._LOCATIONS, "_picks_to_idx", ("mne._no_such_module", "mne._fiff.pick"))
    np.testing.assert_array_equal(_compat.picks_to_idx(info, "eeg", exclude=["b"]), [0])
    monkeypatch.setitem(_compat._LOCATIONS, "_picks_to_idx", ("mne._no_such_module",))
    with pytest.raises(ImportError, match="_picks_to_idx"):
        _compat.picks_to_idx(info, None)
