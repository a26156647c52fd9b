"""Tests of the randomised multi-domain problem family and of the theory checks of
``MultiDistributionCRL(mixing="nonlinear")``."""

import warnings

import numpy as np
import pytest

from crl_neuro.core.graphs import intimate_neighbors, is_dag, moral_graph
from crl_neuro.core.multidist import (
    IdentifiabilityWarning,
    MultiDistributionCRL,
    check_change_condition,
    check_domain_condition,
)
from crl_neuro.datasets import draw_multidomain_problem
from crl_neuro.datasets.nonlinear import (
    FAMILY_KINDS,
    FAMILY_MAX_SAMPLES,
    min_domains_condition,
    simulate_multidomain_latents,
    theory_violations,
)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


# ----------------------------------------------------------------------------- simulator
def test_simulator_defaults_unchanged():
    """Values of the default simulation, recorded before the family options existed."""
    b = simulate_multidomain_latents()
    assert b.X.shape == (20000, 12)
    np.testing.assert_allclose(
        b.X[0, :4], [-0.8196538981774972, -0.37906550761069574, 0.8849763981892071, 1.6151678021241787],
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        b.latents[-1, :3], [0.5007840293240222, 0.26047788233337155, 1.3030872137277245], rtol=1e-10
    )
    b = simulate_multidomain_latents(graph="dense", noise="gaussian", n_mixing_layers=3,
                                     sem="nonlinear", random_state=5)
    np.testing.assert_allclose(
        b.X[5, :3], [0.0691591736219395, -0.34449628306940344, 0.15755972668263232], rtol=1e-10
    )


def test_simulator_new_options():
    kw = dict(n_latents=5, n_domains=6, n_samples_per_domain=200, random_state=3)
    b = simulate_multidomain_latents(graph="fork", noise="uniform", changes=("noise_scales",), **kw)
    # what does not change is shared by every domain; the noise scales change
    assert np.allclose(b.truth.weights, b.truth.weights[:1])
    assert np.allclose(b.truth.shifts, b.truth.shifts[:1])
    assert not np.allclose(b.truth.noise_scales, b.truth.noise_scales[:1])
    # fork: root 0 with two children, a tree (no node with two parents)
    assert b.truth.dag[0, 1] and b.truth.dag[0, 2]
    assert b.truth.dag.sum(axis=0).max() == 1
    assert b.truth.changes == ("noise_scales",)
    # per-domain sample sizes
    sizes = [50, 60, 70, 80, 90, 100]
    b = simulate_multidomain_latents(n_samples_per_domain=sizes, n_latents=5, n_domains=6,
                                     noise="student_t", activation="smooth", random_state=1)
    assert np.array_equal(np.bincount(b.domains), sizes)
    assert b.X.shape == (sum(sizes), 10) and np.isfinite(b.X).all()
    assert b.truth.mixing.activation == "smooth"
    # observation noise changes X, not the latents
    clean = simulate_multidomain_latents(random_state=2, n_domains=3, n_samples_per_domain=100)
    noisy = simulate_multidomain_latents(random_state=2, n_domains=3, n_samples_per_domain=100,
                                         obs_noise=0.1)
    np.testing.assert_array_equal(clean.latents, noisy.latents)
    err = np.abs(clean.X - noisy.X).mean()
    assert 0.01 < err < 0.3, err
    with pytest.raises(ValueError, match="changes"):
        simulate_multidomain_latents(changes=("weights", "slopes"))
    with pytest.raises(ValueError, match="obs_noise"):
        simulate_multidomain_latents(obs_noise=-1.0)
    with pytest.raises(ValueError, match="noise_df"):
        simulate_multidomain_latents(noise="student_t", noise_df=2.0)
    with pytest.raises(ValueError, match="n_samples_per_domain"):
        simulate_multidomain_latents(n_domains=3, n_samples_per_domain=[10, 10])


# ----------------------------------------------------------------------------- family
def test_draw_is_reproducible():
    a, b = draw_multidomain_problem(7), draw_multidomain_problem(7)
    np.testing.assert_array_equal(a["X"], b["X"])
    np.testing.assert_array_equal(a["domains"], b["domains"])
    np.testing.assert_array_equal(a["truth"].dag, b["truth"].dag)
    assert {k: v for k, v in a["params"].items() if k != "graph"} == {
        k: v for k, v in b["params"].items() if k != "graph"
    }
    c = draw_multidomain_problem(8)
    assert c["X"].shape != a["X"].shape or not np.array_equal(c["X"], a["X"])
    # the draw's parameters regenerate its data
    params = {k: v for k, v in a["params"].items() if k != "capped"}
    np.testing.assert_array_equal(simulate_multidomain_latents(**params).X, a["X"])


@pytest.mark.parametrize("seed", range(8))
def test_draw_truth_is_consistent(seed):
    p = draw_multidomain_problem(seed)
    par, truth = p["params"], p["truth"]
    n, d, k = par["n_latents"], par["n_features"], par["n_domains"]
    assert 4 <= n <= 10 and n <= d <= 3 * n and 5 <= k <= 40
    assert 1 <= par["n_mixing_layers"] <= 3
    assert 300 <= par["n_samples_per_domain"] <= 3000
    assert p["X"].shape == (k * par["n_samples_per_domain"], d) <= (FAMILY_MAX_SAMPLES, d)
    assert p["latents"].shape == (p["X"].shape[0], n)
    assert np.array_equal(np.unique(p["domains"]), np.arange(k))
    dag = truth.dag
    assert dag.shape == (n, n) and is_dag(dag) and dag.any()
    mn = truth.markov_network
    np.testing.assert_array_equal(mn, moral_graph(dag))
    assert np.array_equal(mn, mn.T) and not mn.diagonal().any()
    assert not (((dag | dag.T)) & ~mn).any()  # every DAG edge is in the moral graph
    nbs = intimate_neighbors(mn)
    assert [list(map(int, v)) for v in nbs] == truth.intimate_neighbours
    np.testing.assert_array_equal(truth.identifiable, [len(v) == 0 for v in nbs])
    assert p["min_domains"] == 2 * n + int(mn.sum()) // 2 + 1 == min_domains_condition(mn)
    assert ("n_domains" in p["violations"]) == (k < p["min_domains"])
    assert p["theory_ok"] == (not p["violations"])
    assert p["noise_free"] == (par["obs_noise"] == 0.0)


def test_draw_kinds_reachable_and_shaped():
    seen = {draw_multidomain_problem(s)["kind"] for s in range(12)}
    assert seen == set(FAMILY_KINDS)
    for kind in FAMILY_KINDS:
        p = draw_multidomain_problem(0, kind=kind)
        dag = p["truth"].dag
        n = dag.shape[0]
        indeg, outdeg = dag.sum(axis=0), dag.sum(axis=1)
        assert p["kind"] == kind
        if kind == "chain":
            assert dag.sum() == n - 1 and indeg.max() == 1 and outdeg.max() == 1
        elif kind == "fork":
            assert dag.sum() == n - 1 and indeg.max() == 1 and outdeg.max() == 2
        elif kind == "collider":
            assert dag.sum() == n - 1 and indeg.max() == 2
    with pytest.raises(ValueError, match="kind"):
        draw_multidomain_problem(0, kind="star")


def test_draw_flags_theory_violations():
    draws = [draw_multidomain_problem(s) for s in range(12)]
    flags = [p["violations"] for p in draws]
    assert any("n_domains" in f for f in flags) and any(not f for f in flags)
    for p in draws:  # every draw has edges: fixed weights violate the sufficient change
        assert ("sufficient_change" in p["violations"]) == ("weights" not in p["params"]["changes"])
    assert any("sufficient_change" in f for f in flags)


def test_theory_violations():
    assert theory_violations(20, 15, ("weights",), "laplace", 4) == []
    assert theory_violations(10, 15, "weights+shifts", "laplace", 4) == ["n_domains"]
    assert theory_violations(20, 15, "noise_scales+shifts", "laplace", 4) == ["sufficient_change"]
    assert theory_violations(20, 9, ("noise_scales",), "gaussian", 0) == []  # no edge to lose
    assert theory_violations(20, 9, ("shifts",), "gaussian", 0) == ["sufficient_change"]
    assert theory_violations(20, 9, ("shifts",), "laplace", 0) == []


# ----------------------------------------------------------------------------- input checks
def _small(n_domains=3, n_per=40, p=6, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n_domains * n_per, p)) * np.repeat(rng.uniform(0.5, 2, (n_domains, p)),
                                                            n_per, axis=0)
    return X, np.repeat(np.arange(n_domains), n_per)


def test_nonlinear_single_domain_is_an_error():
    X, _ = _small()
    with pytest.raises(ValueError, match="single distinct value.*at least 2"):
        MultiDistributionCRL(2, mixing="nonlinear").fit(X, np.zeros(X.shape[0]))


def test_nonlinear_more_latents_than_features_is_an_error():
    X, dom = _small(p=3)
    with pytest.raises(ValueError, match=r"n_latents=4 exceeds the number of observed features \(3\)"):
        MultiDistributionCRL(4, mixing="nonlinear").fit(X, dom)


def test_nonlinear_too_few_domains_warns():
    X, dom = _small(n_domains=3)
    est = MultiDistributionCRL(2, mixing="nonlinear", max_iter=1, n_init=1, random_state=0)
    with pytest.warns(IdentifiabilityWarning, match=r"2 \* n_latents \+ \|M\| \+ 1 = 5") as rec:
        est.fit(X, dom)
    assert est.markov_network_.shape == (2, 2)
    # reported at the caller's line, not inside the package
    assert [r.filename for r in rec if r.category is IdentifiabilityWarning] == [__file__]


def test_check_domain_condition():
    net = np.zeros((3, 3), bool)
    net[0, 1] = net[1, 0] = net[1, 2] = net[2, 1] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_domain_condition(7, 3)  # 2*3 + 0 + 1 = 7
        assert check_domain_condition(9, 3, net)  # 2*3 + 2 + 1 = 9
    with pytest.warns(IdentifiabilityWarning, match="= 9.*2 edges of the estimated"):
        assert not check_domain_condition(8, 3, net)
    with pytest.warns(IdentifiabilityWarning, match="= 7"):
        assert not check_domain_condition(6, 3)
    with pytest.raises(ValueError, match="markov_network"):
        check_domain_condition(8, 3, np.zeros((2, 2)))


def test_check_change_condition():
    net = np.zeros((3, 3), bool)
    net[0, 1] = net[1, 0] = net[1, 2] = net[2, 1] = True
    changing = np.zeros((3, 3), bool)
    changing[1, 2] = changing[2, 1] = True
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_change_condition(net, changing)
        assert check_change_condition(net, None)  # changes unknown: only an empty network warns
    with pytest.warns(IdentifiabilityWarning, match="none of the 2 edges.*sufficient change"):
        assert not check_change_condition(net, np.zeros((3, 3), bool))
    with pytest.warns(IdentifiabilityWarning, match="has no edge.*sufficient change"):
        assert not check_change_condition(np.zeros((3, 3), bool), None)
    # a changing "edge" outside the network does not count
    off = np.zeros((3, 3), bool)
    off[0, 2] = off[2, 0] = True
    with pytest.warns(IdentifiabilityWarning, match="none of the 2 edges"):
        check_change_condition(net, off)
    with pytest.raises(ValueError, match="changing_edges"):
        check_change_condition(net, np.zeros((2, 2), bool))


def test_nonlinear_no_changing_edge_warns_at_caller():
    """Independent latents whose scales change (no causal weight to change): the fitted
    network has no changing edge and the fit warns, at the caller's line."""
    X, dom = _small(n_domains=6)
    est = MultiDistributionCRL(2, mixing="nonlinear", max_iter=2, n_init=1, random_state=0)
    with pytest.warns(IdentifiabilityWarning, match="sufficient change") as rec:
        est.fit(X, dom)
    assert not (est.markov_network_ & est.changing_edges_).any()
    assert [r.filename for r in rec if r.category is IdentifiabilityWarning] == [__file__]
