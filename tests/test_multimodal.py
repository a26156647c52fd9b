"""Tests of crl_neuro.multimodal.MultiModalCRL and crl_neuro.datasets.simulate_multimodal."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import crl_neuro
from crl_neuro.core.graphs import Graph
from crl_neuro.core.metrics import graph_scores, mcc
from crl_neuro.datasets.multimodal import simulate_multimodal
from crl_neuro.multimodal import MultiModalCRL

# Small problem used by the recovery tests; one fitted model per simulator seed is shared
# (module scope). Two simulator seeds so that no test relies on one lucky draw.
SIM_KW = dict(n_samples=1000, n_modalities=2, latent_dims=2, n_layers=1, within_edges=0)
FIT_KW = dict(max_iter=100, random_state=0)


def align_to_truth(sim, latents, adjacency):
    """Permute an estimated (n_total, n_total) graph into the true latent order (MCC matching)."""
    perm, offset = [], 0
    for m in sim.modalities:
        _, match, _ = mcc(sim.latents[m], latents[m], return_details=True)
        perm += list(offset + match)
        offset += latents[m].shape[1]
    perm = np.asarray(perm)
    return np.asarray(adjacency)[np.ix_(perm, perm)]


@pytest.fixture(scope="module", params=[0, 2], ids=lambda s: f"sim{s}")
def fitted(request):
    sim = simulate_multimodal(random_state=request.param, **SIM_KW)
    dims = {m: sim.latents[m].shape[1] for m in sim.modalities}
    est = MultiModalCRL(dims, **FIT_KW).fit(sim.data)
    return sim, est


# -- simulator ------------------------------------------------------------------------
def test_simulate_multimodal_truth():
    sim = simulate_multimodal(n_samples=300, n_modalities=3, latent_dims=[3, 4, 3], n_features=[5, 4, 3],
                              n_layers=2, within_edges=1, random_state=1)
    assert sim.modalities == ["m1", "m2", "m3"]
    assert [sim.data[m].shape for m in sim.modalities] == [(300, 5), (300, 4), (300, 3)]
    assert [sim.latents[m].shape[1] for m in sim.modalities] == [3, 4, 3]
    t = sim.truth
    assert len(t.latent_index) == 10 and t.dag.shape == (10, 10)
    block = np.array([m for m, _ in t.latent_index])
    same = block[:, None] == block[None, :]
    assert np.all(t.cross_modal_graph[same] == 0)
    np.testing.assert_allclose(t.cross_modal_graph + t.within_modality_graph, t.dag)
    # a DAG along the returned causal order
    rank = np.empty(10, int)
    rank[t.order] = np.arange(10)
    src, dst = np.nonzero(t.dag)
    assert np.all(rank[src] < rank[dst])
    # every latent has a cross-modal neighbour (structural sparsity condition of the design)
    assert np.all((t.cross_modal_graph != 0).any(0) | (t.cross_modal_graph != 0).any(1))
    # reproducible, and the mixing is invertible: latents are a function of the data
    again = simulate_multimodal(n_samples=300, n_modalities=3, latent_dims=[3, 4, 3], n_features=[5, 4, 3],
                                n_layers=2, within_edges=1, random_state=1)
    np.testing.assert_array_equal(again.data["m2"], sim.data["m2"])


def test_simulate_multimodal_bad_input():
    with pytest.raises(ValueError, match="n_features"):
        simulate_multimodal(latent_dims=3, n_features=2)
    with pytest.raises(ValueError, match="latent_dims"):
        simulate_multimodal(n_modalities=2, latent_dims=[2, 2, 2])
    with pytest.raises(ValueError, match="slope"):
        simulate_multimodal(slope=0.0)
    with pytest.raises(ValueError, match="innovations"):
        simulate_multimodal(innovations="cauchy")


def test_structurally_identifiable():
    from crl_neuro.datasets.multimodal import structurally_identifiable

    # modality a = latents 0, 1; modality b = latents 2, 3; a0 -> b0 (2) in both graphs
    block = np.array([0, 0, 1, 1])
    dag = np.zeros((4, 4))
    dag[0, 2] = dag[0, 1] = 1.0  # a0 -> b0, a0 -> a1 (inside modality a)
    dag[1, 3] = 1.0  # a1 -> b1: the effect a1 has a child in modality b
    assert structurally_identifiable(dag, block).all()
    # b1 -> a1 instead: a1 - w a0 is as good a latent (its only cross-modal link is b1),
    # and b0 + c b1 too (a0 is now a neighbour of both b0 and b1 through the collider a1)
    dag[1, 3], dag[3, 1] = 0.0, 1.0
    np.testing.assert_array_equal(structurally_identifiable(dag, block), [True, False, False, True])
    # the simulator reports it; Laplace innovations are heavy-tailed
    sim = simulate_multimodal(n_samples=4000, latent_dims=3, within_edges=1, innovations="laplace",
                              nonlinearity=0.0, random_state=0)
    np.testing.assert_array_equal(sim.truth.identifiable,
                                  structurally_identifiable(sim.truth.dag, np.repeat([0, 1], 3)))
    roots = np.flatnonzero(~(sim.truth.dag != 0).any(0))
    z = sim.truth.latents[:, roots]
    assert np.all(((z - z.mean(0)) ** 4).mean(0) / z.var(0) ** 2 > 4.5)  # Laplace kurtosis 6



# -- randomised problem family ------------------------------------------------------------
def _flagged_by_definition(dag: np.ndarray, block: np.ndarray) -> np.ndarray:
    """Latents that fail structural sparsity, written out pair by pair (an independent check).

    Latent i fails when it has no cross-modal neighbour in the moral graph, or when
    another latent j of its modality is a moral neighbour (or equal) of every one of
    i's cross-modal neighbours: then i mixed with j keeps the cross-modal graph as sparse.
    """
    n = dag.shape[0]
    adj = [[bool(dag[i, j] or dag[j, i]) for j in range(n)] for i in range(n)]
    for c in range(n):  # marry the parents of every child
        parents = [i for i in range(n) if dag[i, c]]
        for a in parents:
            for b in parents:
                if a != b:
                    adj[a][b] = True
    fails = np.zeros(n, bool)
    for i in range(n):
        cross = [c for c in range(n) if adj[i][c] and block[c] != block[i]]
        if not cross:
            fails[i] = True
            continue
        for j in range(n):
            if j != i and block[j] == block[i] and all(adj[j][c] for c in cross):
                fails[i] = True
    return fails


def test_draw_multimodal_problem_reproducible():
    from crl_neuro.datasets import draw_multimodal_problem

    a, b = draw_multimodal_problem(random_state=3), draw_multimodal_problem(random_state=3)
    assert a.keys() == b.keys()
    for key in a:
        np.testing.assert_array_equal(a[key], b[key])
    other = draw_multimodal_problem(random_state=4)
    assert a["random_state"] != other["random_state"]
    small = dict(a, n_samples=200)
    s1, s2 = simulate_multimodal(**small), simulate_multimodal(**small)
    for m in s1.modalities:
        np.testing.assert_array_equal(s1.data[m], s2.data[m])
    # the caller's DAG is not modified by the simulator
    dag = a["dag"].copy()
    simulate_multimodal(**dict(a, n_samples=100))
    np.testing.assert_array_equal(a["dag"], dag)


@pytest.mark.parametrize("kind", ["identifiable", "violating"])
def test_draw_multimodal_problem_truth(kind):
    from crl_neuro.datasets import draw_multimodal_problem

    for seed in range(8):
        kw = draw_multimodal_problem(random_state=seed, kind=kind)
        M, dims = kw["n_modalities"], kw["latent_dims"]
        assert 2 <= M <= 4 and len(dims) == M and all(2 <= k <= 6 for k in dims)
        assert all(k <= p <= min(3 * k, 16) for k, p in zip(dims, kw["n_features"]))
        assert 1000 <= kw["n_samples"] <= 5000 and 1 <= kw["n_layers"] <= 3 and 0.1 <= kw["slope"] <= 0.5
        sim = simulate_multimodal(**dict(kw, n_samples=200))
        t = sim.truth
        np.testing.assert_array_equal(t.dag, kw["dag"])
        assert [sim.data[m].shape for m in sim.modalities] == [(200, p) for p in kw["n_features"]]
        block = np.repeat(np.arange(M), dims)
        same = block[:, None] == block[None, :]
        assert np.all(t.cross_modal_graph[same] == 0) and (t.cross_modal_graph != 0).any()
        np.testing.assert_allclose(t.cross_modal_graph + t.within_modality_graph, t.dag)
        rank = np.empty(len(block), int)
        rank[t.order] = np.arange(len(block))
        src, dst = np.nonzero(t.dag)
        assert np.all(rank[src] < rank[dst])  # acyclic, generated along the order
        np.testing.assert_allclose(t.latents.std(0), 1.0)
        # the kind asked for, flagged as the definition says
        np.testing.assert_array_equal(~t.identifiable, _flagged_by_definition(t.dag, block))
        assert t.identifiable.all() == (kind == "identifiable")


def test_draw_multimodal_problem_kinds_reachable():
    from crl_neuro.datasets import draw_multimodal_problem

    draws = [draw_multimodal_problem(random_state=seed) for seed in range(10)]
    sims = [simulate_multimodal(**dict(kw, n_samples=100)) for kw in draws]
    kinds = {bool(s.truth.identifiable.all()) for s in sims}
    assert kinds == {True, False}
    assert {kw["n_modalities"] for kw in draws} == {2, 3, 4}
    assert {kw["n_layers"] for kw in draws} == {1, 2, 3}
    assert "gaussian" in {kw["innovations"] for kw in draws} and len({kw["innovations"] for kw in draws}) >= 3
    assert {bool(s.truth.monotone_links.all()) for s in sims} == {True, False}
    assert any((s.truth.within_modality_graph != 0).any() for s in sims)
    assert any(not (s.truth.within_modality_graph != 0).any() for s in sims)
    with pytest.raises(ValueError, match="kind"):
        draw_multimodal_problem(random_state=0, kind="easy")
    with pytest.raises(ValueError, match="max_samples"):
        draw_multimodal_problem(random_state=0, max_samples=500)
    assert draw_multimodal_problem(random_state=1, max_samples=20000)["n_samples"] <= 20000


def test_simulate_multimodal_links_noises_and_dag():
    from crl_neuro.datasets.multimodal import LINKS, _link, link_is_monotone

    u = np.linspace(-4, 4, 4001)
    for link in LINKS:
        for a in (0.0, 0.5, 1.0, 1.4):
            increasing = bool(np.all(np.diff(_link(u, link, a)) > 0))
            assert increasing == link_is_monotone(link, a), (link, a)
    for law in ("student", "bimodal"):
        sim = simulate_multimodal(n_samples=3000, latent_dims=2, within_edges=0, innovations=law,
                                  link=["sine", "quadratic", "tanh", "signed_square"], random_state=0)
        assert np.all(np.isfinite(sim.truth.latents))
        assert sim.truth.links == ["sine", "quadratic", "tanh", "signed_square"]
    # an explicit DAG is used as given; a cycle or a wrong shape is refused, naming dag
    dag = np.zeros((4, 4))
    dag[0, 2], dag[3, 1] = 1.0, -0.8
    sim = simulate_multimodal(n_samples=200, latent_dims=2, dag=dag, random_state=0)
    np.testing.assert_array_equal(sim.truth.dag, dag)
    dag[2, 0] = 0.5
    with pytest.raises(ValueError, match="dag must be acyclic"):
        simulate_multimodal(n_samples=200, latent_dims=2, dag=dag)
    with pytest.raises(ValueError, match=r"dag must have shape \(4, 4\)"):
        simulate_multimodal(n_samples=200, latent_dims=2, dag=np.zeros((3, 3)))
    with pytest.raises(ValueError, match="link"):
        simulate_multimodal(n_samples=200, latent_dims=2, link=["tanh"] * 3)
    with pytest.raises(ValueError, match="link"):
        simulate_multimodal(n_samples=200, latent_dims=2, link="cubic")


# -- recovery on ground truth -----------------------------------------------------------
def test_recovers_latents_and_cross_modal_links(fitted):
    sim, est = fitted
    Z = est.transform(sim.data)
    for m in sim.modalities:
        assert Z[m].shape == sim.latents[m].shape
        assert mcc(sim.latents[m], Z[m]) >= 0.9, m
    est_graph = align_to_truth(sim, Z, est.cross_modal_graph_)
    scores = graph_scores(sim.truth.cross_modal_graph, est_graph)
    assert scores["f1"] >= 0.8, scores


def test_sparsity_alignment_unmixes_latents():
    """The alignment step alone undoes a linear mixing inside each modality."""
    from crl_neuro.multimodal._align import sparsity_alignment

    sim = simulate_multimodal(n_samples=2000, n_modalities=3, latent_dims=2, within_edges=0, random_state=4)
    rng = np.random.default_rng(0)
    mixed = {m: sim.latents[m] @ rng.normal(size=(2, 2)) for m in sim.modalities}
    assert min(mcc(sim.latents[m], mixed[m]) for m in sim.modalities) < 0.9  # really mixed
    mats, value = sparsity_alignment(np.concatenate([mixed[m] for m in sim.modalities], axis=1), [2, 2, 2])
    for m, A in zip(sim.modalities, mats):
        assert mcc(sim.latents[m], mixed[m] @ A.T) >= 0.95, m
    assert np.isfinite(value)


def test_sparsity_alignment_rejects_collinear_latents():
    """Nearly collinear latents make partial correlations sparse without being a solution.

    On this family draw (true latents, mixed per modality: perfect encoders) the
    unconstrained search returns two almost identical latents in one modality; with
    ``max_condition`` it cannot, and recovers that modality's latents better without
    losing on average. (Measured with search seeds 0-4 in one environment: that
    modality +0.09 to +0.29 MCC, the mean +0.03 to +0.19; the search's starts are
    optimised by Adam, so other modalities move by a few hundredths between numerical
    library builds, which is why the mean is not asked to rise by a margin.)
    """
    from crl_neuro.datasets import draw_multimodal_problem
    from crl_neuro.multimodal._align import sparsity_alignment

    sim = simulate_multimodal(**draw_multimodal_problem(random_state=5))
    dims = [sim.latents[m].shape[1] for m in sim.modalities]
    rng = np.random.default_rng(5)
    mixed = [sim.latents[m] @ rng.normal(size=(k, k)) for m, k in zip(sim.modalities, dims)]
    Z = np.concatenate(mixed, axis=1)
    out = {}
    for limit in (None, 100.0):
        mats, _ = sparsity_alignment(Z, dims, max_condition=limit)
        est = [X @ A.T for X, A in zip(mixed, mats)]
        conds = [np.linalg.cond(np.corrcoef(E, rowvar=False)) for E in est]
        out[limit] = (np.array([mcc(sim.latents[m], E) for m, E in zip(sim.modalities, est)]), np.array(conds))
    bad = int(np.argmax(out[None][1]))  # the modality made collinear without the limit
    assert out[None][1][bad] > 1e4, out  # the failure the limit is for
    assert out[100.0][1].max() <= 100.0 + 1e-6, out
    assert out[100.0][0][bad] >= out[None][0][bad] + 0.05, out
    assert out[100.0][0].mean() >= out[None][0].mean(), out


def test_ica_alignment_recovers_causally_linked_latents():
    """With non-Gaussian noises, latents linked inside a modality are recovered wherever
    the cross-modal structure identifies them; the second-order search is not enough."""
    from crl_neuro.multimodal._align import ica_alignment, sparsity_alignment

    scores = {"ica": [], "pcor": []}
    for seed in (0, 3):
        sim = simulate_multimodal(n_samples=3000, latent_dims=3, within_edges=1, innovations="laplace",
                                  nonlinearity=0.0, random_state=seed)
        assert (sim.truth.within_modality_graph != 0).sum() == 2
        rng = np.random.default_rng(seed)
        mixed = {m: sim.latents[m] @ rng.normal(size=(3, 3)) for m in sim.modalities}
        Z = np.concatenate([mixed[m] for m in sim.modalities], axis=1)
        ok = sim.truth.identifiable
        for name, search in (("ica", ica_alignment), ("pcor", sparsity_alignment)):
            mats, value = search(Z, [3, 3])
            assert np.isfinite(value)
            per = np.concatenate([mcc(sim.latents[m], mixed[m] @ A.T, return_details=True)[2]
                                  for m, A in zip(sim.modalities, mats)])
            scores[name].append(per[ok])
    ica, pcor = np.concatenate(scores["ica"]), np.concatenate(scores["pcor"])
    assert ica.mean() >= 0.95 and ica.min() >= 0.9, ica
    assert ica.mean() >= pcor.mean() + 0.1, (ica.mean(), pcor.mean())


def test_latent_maps_undo_a_smooth_warp():
    """Ground truth for the unwarping step: latents of a linear-Gaussian SEM seen through
    an unknown smooth invertible warp per modality come back as a linear image of the truth."""
    import torch
    from sklearn.linear_model import LinearRegression
    from torch import nn

    from crl_neuro.multimodal._module import LatentMap
    from crl_neuro.multimodal._unwarp import fit_latent_maps

    sim = simulate_multimodal(n_samples=1500, n_modalities=3, latent_dims=2, within_edges=0, nonlinearity=0.0,
                              random_state=0)
    rng = np.random.default_rng(0)
    warped = []
    for m in sim.modalities:
        u = sim.latents[m] @ rng.normal(size=(2, 2))
        warped.append((u + 0.15 * u ** 3) @ rng.normal(size=(2, 2)))
    Z = np.concatenate(warped, axis=1)
    Z = (Z - Z.mean(0)) / Z.std(0)

    def linear_r2(blocks):
        return np.array([LinearRegression().fit(b, sim.latents[m]).score(b, sim.latents[m])
                         for b, m in zip(blocks, sim.modalities)])

    torch.manual_seed(0)
    maps = nn.ModuleList(LatentMap(2, 16) for _ in sim.modalities)
    fit_latent_maps(maps, Z, seed=0)
    with torch.no_grad():
        Y = [lm(zm) for lm, zm in zip(maps, torch.split(torch.as_tensor(Z, dtype=torch.float32), 2, 1))]
        dets = [torch.linalg.det(lm.residual(torch.randn(500, 2) * 3)[1]) for lm in maps]
    before, after = linear_r2(np.split(Z, 3, axis=1)), linear_r2([y.numpy() for y in Y])
    assert before.min() < 0.92, before  # really warped
    assert after.min() >= 0.96 and after.mean() >= before.mean() + 0.03, (before, after)
    np.testing.assert_allclose(np.concatenate(Y).mean(0), 0.0, atol=1e-4)  # centred for the SEM prior
    assert all(bool((d > 0).all()) for d in dets)  # invertible far outside the data too


def test_reparametrize_latents_keeps_reconstructions():
    import torch

    from crl_neuro.multimodal._module import build_module

    torch.manual_seed(0)
    module = build_module({"n_features": [3, 2], "latent_dims": [2, 2], "hidden": 8, "n_hidden": 1}).eval()
    module.running_mean.normal_()
    module.running_var.uniform_(0.5, 2.0)
    x = torch.randn(20, 5)

    def recon(mod):
        with torch.no_grad():
            z = mod.encode(x)[0]
            return torch.cat([dec(zm) for dec, zm in zip(mod.decoders, torch.split(z, [2, 2], 1))], 1), z

    before, z0 = recon(module)
    T = [np.array([[1.0, 0.5], [-0.3, 2.0]]), np.array([[0.0, 1.0], [1.0, 0.0]])]
    module.reparametrize_latents(T)
    after, z1 = recon(module)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(z1[:, :2], z0[:, :2] @ torch.as_tensor(T[0], dtype=torch.float32).T,
                               rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(z1[:, 2:], z0[:, [3, 2]], rtol=1e-4, atol=1e-4)

    # with (non-trivial) latent maps the re-expression is folded into their output
    module = build_module({"n_features": [3, 2], "latent_dims": [2, 2], "hidden": 8, "n_hidden": 1,
                           "unwarp": 4}).eval()
    with torch.no_grad():
        for p in module.latent_maps.parameters():
            p.normal_()
    before, z0 = recon(module)
    module.reparametrize_latents(T)
    after, z1 = recon(module)
    torch.testing.assert_close(after, before, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(z1[:, :2], z0[:, :2] @ torch.as_tensor(T[0], dtype=torch.float32).T,
                               rtol=1e-4, atol=1e-4)


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recovers_three_modalities(seed):
    """Issue target (MCC >= 0.9, cross-modal F1 >= 0.8) on 3 modalities x 3 latents, any seed.

    2-layer mixing is in the benchmark: it meets the target on most but not all seeds.
    """
    sim = simulate_multimodal(n_samples=2000, n_modalities=3, latent_dims=3, n_layers=1, within_edges=0,
                              random_state=seed)
    est = MultiModalCRL({m: 3 for m in sim.modalities}, max_iter=200, random_state=seed).fit(sim.data)
    Z = est.transform(sim.data)
    for m in sim.modalities:
        assert mcc(sim.latents[m], Z[m]) >= 0.9, m
    scores = graph_scores(sim.truth.cross_modal_graph, align_to_truth(sim, Z, est.cross_modal_graph_))
    assert scores["f1"] >= 0.8, scores


def test_fitted_attributes(fitted):
    sim, est = fitted
    n = sum(sim.latents[m].shape[1] for m in sim.modalities)
    assert est.latent_index_ == [(m, i) for m in sim.modalities for i in range(2)]
    assert est.cross_modal_graph_.shape == (n, n)
    block = np.array([m for m, _ in est.latent_index_])
    assert np.all(est.cross_modal_graph_[block[:, None] == block[None, :]] == 0)
    assert isinstance(est.latent_graph_, Graph) and est.latent_graph_.n_nodes == n
    assert isinstance(est.pc_graph_, Graph)
    g = est.discover(sim.data, observed=pd.DataFrame({"age": sim.latents["m1"][:, 0] + 1.0}))
    assert g.names[-1] == "age" and g.n_nodes == n + 1
    fig = est.plot()
    assert fig is not None


def test_beats_per_modality_ica_on_dependent_latents(fitted):
    """FastICA per modality assumes independent latents; the cross-modal model does not."""
    from sklearn.decomposition import FastICA

    sim, est = fitted
    Z = est.transform(sim.data)
    ours = np.mean([mcc(sim.latents[m], Z[m]) for m in sim.modalities])
    ica = np.mean([
        mcc(sim.latents[m], FastICA(2, random_state=0, max_iter=1000).fit_transform(sim.data[m]))
        for m in sim.modalities
    ])
    assert ours > ica


# -- API contract ------------------------------------------------------------------------
def test_bad_input():
    rng = np.random.default_rng(0)
    good = {"a": rng.normal(size=(50, 3)), "b": rng.normal(size=(50, 2))}
    est = MultiModalCRL({"a": 2, "b": 2}, max_iter=2)
    with pytest.raises(ValueError, match="same number of rows"):
        est.fit({"a": good["a"], "b": good["b"][:40]})
    bad = good["b"].copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match=r"data\['b'\].*NaN"):
        est.fit({"a": good["a"], "b": bad})
    with pytest.raises(ValueError, match="missing"):
        est.fit({"a": good["a"]})
    with pytest.raises(TypeError, match="data must be a dict"):
        est.fit([good["a"], good["b"]])
    with pytest.raises(TypeError, match="latent_dims"):
        MultiModalCRL([2, 2]).fit(good)
    with pytest.raises(ValueError, match=r"latent_dims\['b'\]"):
        MultiModalCRL({"a": 2, "b": 3}).fit(good)
    with pytest.raises(ValueError, match="align"):
        MultiModalCRL({"a": 2, "b": 2}, align="flow").fit(good)
    with pytest.raises(ValueError, match="sparsity"):
        MultiModalCRL({"a": 2, "b": 2}, sparsity=-1.0).fit(good)
    with pytest.raises(TypeError, match="unwarp"):
        MultiModalCRL({"a": 2, "b": 2}, unwarp="yes").fit(good)
    with pytest.raises(NotFittedError):
        MultiModalCRL({"a": 2, "b": 2}).transform(good)
    # the caller's arrays are untouched
    assert not np.isnan(good["b"]).any()


def test_bad_input_named_and_inputs_untouched():
    rng = np.random.default_rng(1)
    good = {"a": rng.normal(size=(60, 4)), "b": rng.normal(size=(60, 3))}
    # a modality with fewer features than latents: the error names both arguments
    with pytest.raises(ValueError, match=r"latent_dims\['b'\]=4 exceeds the number of features of data\['b'\] \(3\)"):
        MultiModalCRL({"a": 2, "b": 4}, max_iter=2).fit(good)
    bad = good["a"].copy()
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match=r"data\['a'\].*infinite"):
        MultiModalCRL({"a": 2, "b": 2}, max_iter=2).fit({"a": bad, "b": good["b"]})
    copies = {m: x.copy() for m, x in good.items()}
    est = MultiModalCRL({"a": 2, "b": 2}, max_iter=2, unwarp=False, random_state=0).fit(good)
    est.transform(good)
    for m in good:  # fit and transform leave the caller's arrays as they were
        np.testing.assert_array_equal(good[m], copies[m])
    nan = good["b"].copy()
    nan[5, 2] = np.nan
    with pytest.raises(ValueError, match=r"data\['b'\].*NaN"):
        est.transform({"a": good["a"], "b": nan})
    with pytest.raises(ValueError, match="same number of rows"):
        est.transform({"a": good["a"][:50], "b": good["b"]})
    with pytest.raises(ValueError, match=r"data\['b'\] has 2 features"):
        est.transform({"a": good["a"], "b": good["b"][:, :2]})


def test_dataframes_reproducible_save_load(tmp_path):
    sim = simulate_multimodal(n_samples=300, latent_dims=2, random_state=3)
    data = {m: pd.DataFrame(x, columns=[f"{m}_f{j}" for j in range(x.shape[1])]) for m, x in sim.data.items()}
    before = {m: df.copy() for m, df in data.items()}
    kw = dict(latent_dims={"m1": 2, "m2": 2}, max_iter=6, random_state=7)
    est1 = MultiModalCRL(**kw).fit(data)
    est2 = MultiModalCRL(**kw).fit(data)
    for m in data:
        pd.testing.assert_frame_equal(data[m], before[m])
        np.testing.assert_allclose(est1.transform(data)[m], est2.transform(data)[m])
    np.testing.assert_allclose(est1.adjacency_, est2.adjacency_)
    assert est1.feature_names_["m1"] == ["m1_f0", "m1_f1"]
    path = est1.save(tmp_path / "mm.crl")
    loaded = crl_neuro.load(path)
    for m in data:
        np.testing.assert_allclose(loaded.transform(data)[m], est1.transform(data)[m], rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(loaded.cross_modal_graph_, est1.cross_modal_graph_)
    assert loaded.latent_index_ == est1.latent_index_
    assert clone(est1).get_params() == est1.get_params()
    # align="ica" learns a Laplace-noise prior; the reloaded model keeps it
    import torch

    est3 = MultiModalCRL(**kw, align="ica").fit(data)
    loaded3 = crl_neuro.load(est3.save(tmp_path / "mm_ica.crl"))
    assert loaded3.module_.config["noise"] == "laplace"
    z = torch.randn(5, 4, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        np.testing.assert_allclose(loaded3.module_.prior_log_prob(z).numpy(), est3.module_.prior_log_prob(z).numpy(),
                                   rtol=1e-6)
    for m in data:
        np.testing.assert_allclose(loaded3.transform(data)[m], est3.transform(data)[m], rtol=1e-6, atol=1e-6)


def test_mne_modality():
    mne = pytest.importorskip("mne")
    sim = simulate_multimodal(n_samples=60, latent_dims=2, random_state=0)
    rng = np.random.default_rng(0)
    sfreq, n_times = 100.0, 200
    t = np.arange(n_times) / sfreq
    # EEG epochs whose alpha amplitude follows a latent of modality m1
    amp = np.exp(0.5 * sim.latents["m1"][:, 0])
    x = amp[:, None, None] * np.sin(2 * np.pi * 10 * t)[None, None, :] + 0.3 * rng.normal(size=(60, 3, n_times))
    info = mne.create_info(["C3", "Cz", "C4"], sfreq, "eeg")
    epochs = mne.EpochsArray(x * 1e-5, info, verbose="error")
    data = {"eeg": epochs, "physio": sim.data["m2"]}
    est = MultiModalCRL({"eeg": 2, "physio": 2}, max_iter=4, random_state=0).fit(data)
    assert len(est.feature_names_["eeg"]) == 3 * 4
    assert est.transform(data)["eeg"].shape == (60, 2)
    raw = mne.io.RawArray(x.transpose(1, 0, 2).reshape(3, -1) * 1e-5, info, verbose="error")
    est_raw = MultiModalCRL({"eeg": 2, "physio": 2}, max_iter=2, random_state=0)
    est_raw.fit({"eeg": raw, "physio": sim.data["m2"]})  # 2 s windows: 60 rows
    with pytest.raises(ValueError, match="same number of rows"):
        est_raw.fit({"eeg": raw, "physio": sim.data["m2"][:30]})
