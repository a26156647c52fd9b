"""Ground-truth tests of the causal-learn wrappers in crl_neuro.core.discovery."""

import numpy as np
import pytest

from crl_neuro.core import discovery
from crl_neuro.core.graphs import ARROW, CIRCLE, TAIL, Graph
from crl_neuro.core.metrics import graph_scores


def _collider_data(n=2000, seed=0):
    """Linear-Gaussian X0 -> X2 <- X1, X2 -> X3. Returns data and the true CPDAG adjacency."""
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=n)
    x1 = rng.normal(size=n)
    x2 = 0.8 * x0 - 0.7 * x1 + rng.normal(size=n)
    x3 = 0.9 * x2 + rng.normal(size=n)
    truth = np.zeros((4, 4))
    truth[0, 2] = truth[1, 2] = truth[2, 3] = 1  # all edges compelled (v-structure + Meek)
    return np.column_stack([x0, x1, x2, x3]), truth


def _chain_data(n=2000, seed=0):
    rng = np.random.default_rng(seed)
    x0 = rng.normal(size=n)
    x1 = 0.8 * x0 + rng.normal(size=n)
    x2 = 0.8 * x1 + rng.normal(size=n)
    truth = np.zeros((3, 3))
    truth[0, 1] = truth[1, 0] = truth[1, 2] = truth[2, 1] = 1  # chain: CPDAG fully undirected
    return np.column_stack([x0, x1, x2]), truth


def test_pc_recovers_collider_cpdag():
    X, truth = _collider_data()
    g = discovery.pc(X, alpha=0.01)
    assert isinstance(g, Graph) and g.kind == "cpdag"
    s = graph_scores(truth, g.to_adjacency(), directed=True)
    assert s["shd"] == 0 and s["f1"] == 1.0


def test_pc_chain_is_undirected_and_names_from_dataframe():
    pd = pytest.importorskip("pandas")
    X, truth = _chain_data()
    df = pd.DataFrame(X, columns=["a", "b", "c"])
    g = discovery.pc(df, alpha=0.01)
    assert g.names == ["a", "b", "c"]
    assert sorted(g.edges()) == [("a", "b", "---"), ("b", "c", "---")]
    assert graph_scores(truth, g, directed=True)["shd"] == 0


def test_ges_recovers_collider_cpdag():
    X, truth = _collider_data()
    g = discovery.ges(X, names=list("abcd"))
    assert g.kind == "cpdag" and g.names == list("abcd")
    assert graph_scores(truth, g, directed=True)["shd"] == 0


def _edge_sets_from_causallearn(G):
    return {
        frozenset({(e.get_node1().get_name(), str(e.get_endpoint1())), (e.get_node2().get_name(), str(e.get_endpoint2()))})
        for e in G.get_graph_edges()
    }


def _edge_sets_from_graph(g):
    name = {TAIL: "TAIL", ARROW: "ARROW", CIRCLE: "CIRCLE"}
    out = set()
    for i, j in zip(*np.nonzero(np.triu(g.marks))):
        out.add(frozenset({(g.names[i], name[int(g.marks[j, i])]), (g.names[j], name[int(g.marks[i, j])])}))
    return out


def test_fci_pag_and_encoding_matches_causallearn_edges():
    from causallearn.search.ConstraintBased.FCI import fci as cl_fci

    X, _ = _collider_data()
    g = discovery.fci(X, alpha=0.01)
    assert g.kind == "pag"
    # Collider X0 o-> X2 <-o X1 and X2 --> X3 (visible, no confounding).
    assert sorted(g.edges()) == [("X0", "X2", "o->"), ("X1", "X2", "o->"), ("X2", "X3", "-->")]
    # Translation check against causal-learn's own Edge objects (names X1..X4 there).
    G, _ = cl_fci(X, alpha=0.01, show_progress=False)
    g_cl = Graph.from_causallearn(G)
    assert _edge_sets_from_graph(g_cl) == _edge_sets_from_causallearn(G)
    assert np.array_equal(g_cl.marks, g.marks)
    # and back: our -> causal-learn reproduces causal-learn's matrix exactly
    np.testing.assert_array_equal(g_cl.to_causallearn().graph, G.graph)


def _domain_data(n_per=700, seed=0):
    """X0 -> X1; the mechanism of X0 (mean and scale) changes across 3 domains, X1's does not."""
    rng = np.random.default_rng(seed)
    xs, dom = [], []
    for d, (mu, sd) in enumerate([(0.0, 1.0), (1.5, 1.5), (3.0, 0.7)]):
        x0 = mu + sd * rng.normal(size=n_per)
        x1 = 0.8 * x0 + rng.normal(size=n_per)
        xs.append(np.column_stack([x0, x1]))
        dom += [f"session{d}"] * n_per
    return np.vstack(xs), np.array(dom)


def test_cdnod_uses_domain_index_to_orient():
    X, dom = _domain_data()
    g = discovery.cdnod(X, dom, alpha=0.01, names=["x0", "x1"])
    assert g.names == ["x0", "x1", "domain"]
    assert sorted(g.edges()) == [("domain", "x0", "-->"), ("x0", "x1", "-->")]
    # pooled PC cannot orient a single edge: the domain index is what helped
    assert discovery.pc(X, alpha=0.01).edges() == [("X0", "X1", "---")]


def test_rlcd_finds_two_latents_with_their_indicators():
    rng = np.random.default_rng(1)
    n = 2000

    def e():
        return 2 * rng.uniform(-1, 1, n) ** 3

    l1 = e()
    l2 = 0.9 * l1 + e()
    X = np.column_stack(
        [l1 * rng.uniform(0.7, 1.3) + 0.3 * e() for _ in range(3)]
        + [l2 * rng.uniform(0.7, 1.3) + 0.3 * e() for _ in range(3)]
    )
    g = discovery.rlcd(X, names=[f"item{k}" for k in range(6)])
    latents = [g.names[k] for k in np.flatnonzero(g.latent)]
    assert len(latents) == 2
    sk = g.skeleton()
    idx = {n_: k for k, n_ in enumerate(g.names)}
    clusters = sorted(
        sorted(g.names[c] for c in np.flatnonzero(sk[idx[lat]]) if not g.latent[c]) for lat in latents
    )
    assert clusters == [["item0", "item1", "item2"], ["item3", "item4", "item5"]]
    assert sk[idx[latents[0]], idx[latents[1]]]  # the latents are adjacent
    # no direct edges among observed items
    obs = np.flatnonzero(~g.latent)
    assert not sk[np.ix_(obs, obs)].any()


def test_gin_finds_latent_clusters_and_order():
    rng = np.random.default_rng(0)
    n = 1000

    def e():
        return 2 * rng.uniform(-1, 1, n) ** 3

    l1 = e()
    l2 = 0.9 * l1 + e()
    X = np.column_stack(
        [l1 * rng.uniform(0.7, 1.3) + 0.3 * e() for _ in range(4)]
        + [l2 * rng.uniform(0.7, 1.3) + 0.3 * e() for _ in range(4)]
    )
    g = discovery.gin(X[:500])
    assert g.latent.sum() == 2
    edges = set(g.edges())
    assert ("L1", "L2", "-->") in edges
    assert {("L1", f"X{k}", "-->") for k in range(4)} <= edges
    assert {("L2", f"X{k}", "-->") for k in range(4, 8)} <= edges


def test_bad_input_names_the_argument():
    X, _ = _collider_data(n=100)
    bad = X.copy()
    bad[3, 1] = np.nan
    with pytest.raises(ValueError, match="data"):
        discovery.pc(bad)
    with pytest.raises(ValueError, match="data"):
        discovery.pc(X[:, 0])
    with pytest.raises(ValueError, match="data"):
        discovery.pc(X[:5])
    with pytest.raises(ValueError, match="indep_test"):
        discovery.pc(X, indep_test="pearson")
    with pytest.raises(ValueError, match="alpha"):
        discovery.fci(X, alpha=1.5)
    with pytest.raises(ValueError, match="names"):
        discovery.ges(X, names=["a"])
    with pytest.raises(ValueError, match="domain_index"):
        discovery.cdnod(X, np.zeros(100))
    with pytest.raises(ValueError, match="domain_index"):
        discovery.cdnod(X, np.zeros(99))
    const = X.copy()
    const[:, 2] = 1.0
    with pytest.raises(ValueError, match="constant"):
        discovery.pc(const)


def test_quiet_by_default(capsys):
    X, _ = _chain_data(n=300)
    discovery.pc(X)
    discovery.fci(X)
    out = capsys.readouterr()
    assert out.out == "" and "%" not in out.err
