"""Ground-truth checks of ``crl_neuro.datasets.simulate_meeg_sessions``."""

from __future__ import annotations

import mne
import numpy as np
import pytest
from scipy.stats import kurtosis

from crl_neuro.datasets import simulate_meeg_sessions


def _moralize(adj: np.ndarray) -> np.ndarray:
    """Independent moralisation used to check the simulator's truth."""
    a = adj != 0
    k = a.shape[0]
    m = a | a.T
    for i in range(k):
        for j in range(k):
            if i != j and np.any(a[i] & a[j]):  # common child
                m[i, j] = True
    np.fill_diagonal(m, False)
    return m


@pytest.fixture(scope="module")
def clean_sim():
    return simulate_meeg_sessions(
        n_sources=4, n_sessions=3, duration=10.0, snr=np.inf, perturb_head=False, off_grid=False,
        random_state=0,
    )


@pytest.fixture(scope="module")
def noisy_sim():
    return simulate_meeg_sessions(n_sources=4, n_sessions=4, duration=60.0, snr=0.0, random_state=3)


def test_bunch_fields_and_types(clean_sim):
    sim = clean_sim
    assert {"raws", "forward", "noise_cov", "info", "truth"} <= set(sim)
    assert len(sim.raws) == 3 and all(isinstance(r, mne.io.BaseRaw) for r in sim.raws)
    assert isinstance(sim.forward, mne.Forward) and isinstance(sim.noise_cov, mne.Covariance)
    assert sim.forward["coord_frame"] == mne.io.constants.FIFF.FIFFV_COORD_HEAD
    assert sim.forward["source_ori"] == mne.io.constants.FIFF.FIFFV_MNE_FIXED_ORI
    assert sim.forward["src"].kind == "surface"
    assert 500 < sim.forward["nsource"] <= 3000
    t = sim.truth
    k, n_ch = 4, len(sim.info["ch_names"])
    assert t.vertices.shape == (k,) and t.pos.shape == (k, 3) and t.ori.shape == (k, 3)
    assert t.patterns.shape == (n_ch, k)
    assert t.graphs.shape == (3, k, k)
    assert t.markov_network.shape == (k, k) and t.markov_network.dtype == bool
    assert t.changing_edges.shape == (k, k) and t.changing_edges.dtype == bool
    assert all(s.shape == (k, sim.raws[0].n_times) for s in t.sources)
    # Off the grid by default, next to the reported grid vertex.
    assert np.all(np.linalg.norm(t.pos - sim.forward["source_rr"][t.vertices], axis=1) < 0.01)
    np.testing.assert_allclose(np.linalg.norm(t.ori, axis=1), 1.0, rtol=1e-6)
    # Average-reference projector present but not applied (data stay reference-free).
    assert any("Average" in p["desc"] for p in sim.info["projs"])


def test_noise_free_data_equal_leadfield_times_sources(clean_sim):
    sim = clean_sim
    gain = sim.forward["sol"]["data"]
    np.testing.assert_allclose(sim.truth.patterns, gain[:, sim.truth.vertices])
    for raw, src in zip(sim.raws, sim.truth.sources):
        expected = gain[:, sim.truth.vertices] @ src
        np.testing.assert_allclose(raw.get_data(), expected, rtol=1e-10, atol=1e-20)


def test_sources_stc_consistent_with_forward(clean_sim):
    """A SourceEstimate on the forward's source space reproduces the sensor data."""
    sim = clean_sim
    fwd, t = sim.forward, sim.truth
    vertno = [s["vertno"] for s in fwd["src"]]
    data = np.zeros((fwd["nsource"], 50))
    data[t.vertices] = t.sources[0][:, :50]
    stc = mne.SourceEstimate(data, vertno, tmin=0.0, tstep=1.0 / sim.info["sfreq"])
    evoked = mne.apply_forward(fwd, stc, sim.info, verbose=False)
    np.testing.assert_allclose(evoked.data, sim.raws[0].get_data()[:, :50], rtol=1e-8, atol=1e-20)


def test_sources_follow_the_declared_sem(clean_sim):
    t = clean_sim.truth
    k = t.graphs.shape[1]
    for s, (z, e) in enumerate(zip(t.sources, t.innovations)):
        np.testing.assert_allclose(z, t.graphs[s].T @ z + e, atol=1e-12 * np.abs(z).max())
        # Innovation scales per session are exactly the declared ones.
        amp = t.innovations[s].std(axis=1)
        np.testing.assert_allclose(amp / amp.sum(), t.noise_scales[s] / t.noise_scales[s].sum(), rtol=1e-8)
    assert k == 4


def test_graph_truth_is_consistent(clean_sim):
    t = clean_sim.truth
    graphs = t.graphs
    k = graphs.shape[1]
    union_moral = np.zeros((k, k), bool)
    for s, g in enumerate(graphs):
        assert np.all(np.diag(g) == 0)
        m = _moralize(g)
        np.testing.assert_array_equal(t.moral_graphs[s], m)
        union_moral |= m
    np.testing.assert_array_equal(t.markov_network, union_moral)
    for a in (t.markov_network, t.changing_edges):
        np.testing.assert_array_equal(a, a.T)
        assert not np.any(np.diag(a))
    assert not np.any(t.changing_edges & ~t.markov_network)
    # Every directed edge whose weight differs across sessions is a changing edge.
    differs = np.ptp(graphs, axis=0) > 0
    assert np.all(t.changing_edges[differs | differs.T])
    # The default chain has changing *and* constant edges, and sessions really differ.
    assert t.changing_edges.any() and (t.markov_network & ~t.changing_edges).any()
    assert any(not np.allclose(graphs[0], g) for g in graphs[1:])
    # Changing edges are changes of causal strength: weights of non-changing pairs are fixed.
    for i, j in zip(*np.nonzero(t.markov_network & ~t.changing_edges)):
        np.testing.assert_array_equal(graphs[:, i, j], graphs[0, i, j])
    # Every source's power changes by default, so every mechanism changes.
    assert np.all(np.ptp(t.noise_scales, axis=0) > 0) and t.changing_sources.all()


def test_power_only_changes():
    """n_changing_edges=0: strengths fixed, only the sources' power changes (precisions still move)."""
    sim = simulate_meeg_sessions(n_sources=4, n_sessions=3, duration=5.0, n_changing_edges=0,
                                 n_power_changes=2, spacing="ico3", random_state=1)
    t = sim.truth
    assert np.all(t.graphs == t.graphs[0]) and not t.changing_edges.any()
    assert np.sum(np.ptp(t.noise_scales, axis=0) > 0) == 2
    np.testing.assert_array_equal(t.changing_sources, np.ptp(t.noise_scales, axis=0) > 0)
    assert np.ptp(t.precisions[:, t.markov_network], axis=0).max() > 0


def test_precision_sparse_on_moral_graph():
    # v-structure 0 -> 2 <- 1 (moral edge 0 - 1) then 2 -> 3; 4 isolated.
    g = np.zeros((5, 5))
    g[0, 2], g[1, 2], g[2, 3] = 0.7, -0.6, 0.8
    sim = simulate_meeg_sessions(
        n_sources=5, n_sessions=2, duration=200.0, sfreq=100.0, graph=g, snr=np.inf,
        perturb_head=False, spacing="ico3", min_distance=0.02, random_state=5,
    )
    t = sim.truth
    assert t.markov_network[0, 1]
    for s, z in enumerate(t.sources):
        prec = np.linalg.inv(np.cov(z))
        d = np.sqrt(np.diag(prec))
        pcorr = prec / np.outer(d, d)
        true_prec = t.precisions[s]
        td = np.sqrt(np.diag(true_prec))
        true_pcorr = true_prec / np.outer(td, td)
        off = ~t.moral_graphs[s] & ~np.eye(5, dtype=bool)
        assert off.any()
        on = t.moral_graphs[s]
        assert np.abs(pcorr[off]).max() < 0.1
        np.testing.assert_allclose(pcorr[on], true_pcorr[on], atol=0.1)
        assert np.abs(true_pcorr[on]).min() > 0.15


def test_perturbed_head_model():
    # On the grid, so that only the head model differs from the nominal forward.
    sim = simulate_meeg_sessions(n_sources=4, n_sessions=2, duration=5.0, snr=0.0, off_grid=False,
                                 random_state=3)
    t = sim.truth
    nominal = sim.forward["sol"]["data"][:, t.vertices]
    # Patterns come from another head model: close to, but not equal to, the nominal ones.
    corr = np.abs(np.sum(nominal * t.patterns, 0)) / (
        np.linalg.norm(nominal, axis=0) * np.linalg.norm(t.patterns, axis=0)
    )
    assert np.all(corr > 0.8) and np.all(corr < 0.9999)
    assert t.head_model is not None and t.forward_true is not sim.forward
    chs_true = np.array([c["loc"][:3] for c in t.forward_true["info"]["chs"]])
    chs_nom = np.array([c["loc"][:3] for c in sim.info["chs"]])
    moved = np.linalg.norm(chs_true - chs_nom, axis=1)
    assert np.all(moved > 0.0005) and 0.003 < moved.mean() < 0.012  # jitter + co-registration error
    hm = t.head_model
    assert hm.sigmas[2] > 0.0055  # skull conductivity differs from MNE's nominal 0.004 S/m


def test_snr_and_noise_covariance(noisy_sim):
    sim = noisy_sim
    t = sim.truth
    n_ch = len(sim.info["ch_names"])
    center = np.eye(n_ch) - 1.0 / n_ch
    sig = np.concatenate([t.patterns @ s for s in t.sources], axis=1)
    noise = np.concatenate([r.get_data() for r in sim.raws], axis=1) - sig
    snr = 10 * np.log10(np.mean((center @ sig) ** 2) / np.mean((center @ noise) ** 2))
    assert abs(snr - 0.0) < 0.5
    emp = np.cov(noise)
    cov = sim.noise_cov.data
    assert sim.noise_cov.ch_names == sim.info["ch_names"]
    assert np.linalg.norm(emp - cov) / np.linalg.norm(cov) < 0.15


def test_noise_cov_from_baseline(noisy_sim):
    kw = dict(n_sources=4, n_sessions=4, duration=60.0, snr=0.0, random_state=3)
    sim = simulate_meeg_sessions(noise_cov_duration=30.0, **kw)
    exact = noisy_sim.noise_cov.data
    est = sim.noise_cov.data
    assert sim.noise_cov["nfree"] == int(30.0 * sim.info["sfreq"]) - 1
    rel = np.linalg.norm(est - exact) / np.linalg.norm(exact)
    assert 0.0 < rel < 0.2  # an estimate, close to the exact covariance
    # the data and truth do not depend on how the covariance is obtained
    np.testing.assert_array_equal(sim.truth.patterns, noisy_sim.truth.patterns)
    np.testing.assert_array_equal(sim.raws[0].get_data(), noisy_sim.raws[0].get_data())


def test_sources_geometry_and_non_gaussianity(noisy_sim):
    t = noisy_sim.truth
    dist = np.linalg.norm(t.pos[:, None] - t.pos[None], axis=-1)
    assert dist[np.triu_indices(4, 1)].min() >= 0.03
    assert np.all(kurtosis(np.concatenate(t.innovations, axis=1), axis=1) > 1.0)


def test_reproducible_with_random_state():
    kw = dict(n_sources=3, n_sessions=2, duration=5.0, spacing="ico3")
    a = simulate_meeg_sessions(random_state=7, **kw)
    b = simulate_meeg_sessions(random_state=7, **kw)
    c = simulate_meeg_sessions(random_state=8, **kw)
    for ra, rb in zip(a.raws, b.raws):
        np.testing.assert_array_equal(ra.get_data(), rb.get_data())
    np.testing.assert_array_equal(a.truth.vertices, b.truth.vertices)
    np.testing.assert_array_equal(a.truth.graphs, b.truth.graphs)
    np.testing.assert_array_equal(a.truth.patterns, b.truth.patterns)
    np.testing.assert_array_equal(a.noise_cov.data, b.noise_cov.data)
    assert not np.allclose(a.raws[0].get_data(), c.raws[0].get_data())


def test_epochs_match_raw_continuous():
    kw = dict(n_sources=3, n_sessions=2, duration=9.0, spacing="ico3", snr=np.inf, perturb_head=False)
    sim = simulate_meeg_sessions(kind="epochs", epoch_duration=2.0, random_state=1, **kw)
    assert "raws" not in sim and len(sim.epochs) == 2
    ep = sim.epochs[0]
    assert isinstance(ep, mne.BaseEpochs)
    n_ep, n_ch, n_t = ep.get_data().shape
    assert n_ep == 4 and n_t == int(2.0 * sim.info["sfreq"])
    assert sim.truth.sources[0].shape[1] == n_ep * n_t
    concat = ep.get_data().transpose(1, 0, 2).reshape(n_ch, -1)
    np.testing.assert_allclose(concat, sim.truth.patterns @ sim.truth.sources[0], rtol=1e-10, atol=1e-20)
    assert not ep.proj  # projector present but not applied


def test_explicit_graphs():
    g = np.zeros((3, 3))
    g[0, 1], g[0, 2] = 0.8, -0.6
    sim = simulate_meeg_sessions(n_sources=3, n_sessions=3, duration=5.0, graph=g, n_changing_edges=1,
                                 spacing="ico3", random_state=0)
    nz = sim.truth.graphs != 0
    assert not np.any(nz & (g == 0)[None])  # no edge outside the given skeleton
    assert np.sum(np.ptp(sim.truth.graphs, axis=0) > 0) == 1
    full = np.stack([g, 0.5 * g, np.zeros((3, 3))])
    sim = simulate_meeg_sessions(n_sources=3, n_sessions=3, duration=5.0, graph=full, spacing="ico3",
                                 random_state=0)
    np.testing.assert_array_equal(sim.truth.graphs, full)
    assert sim.truth.changing_edges[0, 1] and sim.truth.changing_edges[0, 2]
    assert not sim.truth.markov_network[1, 2]  # siblings, not co-parents: no moral edge


def test_random_graph_is_acyclic():
    sim = simulate_meeg_sessions(n_sources=5, n_sessions=3, duration=5.0, graph="random", edge_prob=0.8,
                                 spacing="ico3", min_distance=0.02, random_state=2)
    for g in sim.truth.graphs:
        # a DAG's adjacency matrix is nilpotent
        assert np.allclose(np.linalg.matrix_power((g != 0).astype(float), 5), 0)


@pytest.mark.parametrize(
    "kwargs, err, match",
    [
        (dict(n_sources=0), ValueError, "n_sources"),
        (dict(n_sources=2.5), TypeError, "n_sources"),
        (dict(n_sessions=0), ValueError, "n_sessions"),
        (dict(kind="evoked"), ValueError, "kind"),
        (dict(sfreq=-1.0), ValueError, "sfreq"),
        (dict(duration=0.0), ValueError, "duration"),
        (dict(graph="star"), ValueError, "graph"),
        (dict(graph=np.ones((4, 4))), ValueError, "graph"),
        (dict(graph=np.triu(np.ones((3, 3)), 1)), ValueError, "graph"),
        (dict(graph=3), TypeError, "graph"),
        (dict(innovations="cauchy"), ValueError, "innovations"),
        (dict(snr=np.nan), ValueError, "snr"),
        (dict(snr="high"), TypeError, "snr"),
        (dict(brain_noise_ratio=1.5), ValueError, "brain_noise_ratio"),
        (dict(spacing="ico9"), ValueError, "spacing"),
        (dict(montage="no_such_montage"), ValueError, "montage"),
        (dict(montage=42), TypeError, "montage"),
        (dict(weight_range=(0.9, 0.1)), ValueError, "weight_range"),
        (dict(noise_scale_range="wide"), TypeError, "noise_scale_range"),
        (dict(n_power_changes=-1), ValueError, "n_power_changes"),
        (dict(n_sources=30, min_distance=0.08), ValueError, "min_distance"),
        (dict(kind="epochs", duration=1.0, epoch_duration=2.0), ValueError, "epoch_duration"),
        (dict(random_state="seed"), TypeError, "random_state"),
        (dict(perturb_head="yes"), TypeError, "perturb_head"),
        (dict(coregistration_error=0.5), ValueError, "coregistration_error"),
        (dict(sensors="fnirs"), ValueError, "sensors"),
        (dict(noise_cov_duration=-1.0), ValueError, "noise_cov_duration"),
    ],
)
def test_bad_arguments(kwargs, err, match):
    kw = dict(duration=2.0, spacing="ico3")
    kw.update(kwargs)
    with pytest.raises(err, match=match):
        simulate_meeg_sessions(**kw)


def test_meg_helmet():
    sim = simulate_meeg_sessions(n_sources=3, n_sessions=2, duration=5.0, sensors="meg", spacing="ico3",
                                 snr=np.inf, perturb_head=False, off_grid=False, random_state=0)
    assert sim.info.get_channel_types(unique=True) == ["mag"] and len(sim.info["ch_names"]) == 102
    assert not sim.info["projs"]
    gain = sim.forward["sol"]["data"]
    np.testing.assert_allclose(sim.raws[0].get_data(), gain[:, sim.truth.vertices] @ sim.truth.sources[0],
                               rtol=1e-10, atol=1e-30)
    # Sensors outside the head (scalp radius ~95 mm), on the upper part of the head.
    eeg_info = mne.create_info(mne.channels.make_standard_montage("biosemi64").ch_names, 100.0, "eeg")
    eeg_info.set_montage("biosemi64")
    r0 = mne.make_sphere_model("auto", "auto", eeg_info, verbose=False)["r0"]
    locs = np.array([c["loc"][:3] for c in sim.info["chs"]])
    np.testing.assert_allclose(np.linalg.norm(locs - r0, axis=1), 0.12, rtol=1e-6)
    # Perturbed MEG: patterns differ from the nominal leadfield, sources stay visible.
    pert = simulate_meeg_sessions(n_sources=3, n_sessions=2, duration=5.0, sensors="meg", spacing="ico3",
                                  random_state=0)
    nominal = pert.forward["sol"]["data"][:, pert.truth.vertices]
    assert not np.allclose(nominal, pert.truth.patterns)
    assert np.all(np.linalg.norm(pert.truth.patterns, axis=0) > 0)


def test_sources_off_the_grid():
    """By default true sources sit between the forward's grid points, a few mm away."""
    from crl_neuro.datasets.meeg import _fixed_gain

    on = simulate_meeg_sessions(n_sources=3, duration=5.0, off_grid=False, perturb_head=False, random_state=4)
    off = simulate_meeg_sessions(n_sources=3, duration=5.0, perturb_head=False, random_state=4)
    fwd = off.forward
    np.testing.assert_array_equal(on.truth.vertices, off.truth.vertices)
    np.testing.assert_allclose(on.truth.pos, fwd["source_rr"][on.truth.vertices])
    dist = np.linalg.norm(off.truth.pos - fwd["source_rr"][off.truth.vertices], axis=1)
    assert np.all((dist > 0.001) & (dist < 0.01)), dist
    # Nearest grid point of each off-grid source is the vertex reported.
    nearest = np.argmin(np.linalg.norm(fwd["source_rr"][None] - off.truth.pos[:, None], axis=-1), axis=1)
    np.testing.assert_array_equal(nearest, off.truth.vertices)
    # The leadfield helper reproduces MNE's fixed-orientation forward on the grid ...
    cols = _fixed_gain(on.info, on.truth.nominal_sphere, on.truth.pos, on.truth.ori)
    np.testing.assert_allclose(cols, fwd["sol"]["data"][:, on.truth.vertices], rtol=1e-6, atol=1e-12)
    # ... and the off-grid patterns are not a grid column.
    assert not np.allclose(off.truth.patterns, on.truth.patterns)
