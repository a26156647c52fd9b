"""Tests of crl_neuro.core.graphs.Graph: encoding, conversions, round trips."""

import json

import networkx as nx
import numpy as np
import pytest

from crl_neuro.core.graphs import ARROW, CIRCLE, NONE, TAIL, Graph, intimate_neighbors


def _chain_weights():
    # 0 -> 1 -> 2, 3 -> 2 with weights
    w = np.zeros((4, 4))
    w[0, 1], w[1, 2], w[3, 2] = 0.8, -0.5, 1.2
    return w


def test_from_adjacency_directed_marks_and_roundtrip():
    w = _chain_weights()
    g = Graph.from_adjacency(w, kind="directed", names=list("abcd"))
    assert g.marks[0, 1] == ARROW and g.marks[1, 0] == TAIL
    assert g.marks[0, 2] == NONE
    assert g.n_nodes == 4 and g.n_edges == 3 and g.names == list("abcd")
    np.testing.assert_array_equal(g.to_adjacency(), w)
    assert sorted(g.edges()) == [("a", "b", "-->"), ("b", "c", "-->"), ("d", "c", "-->")]
    assert g.is_dag()
    sk = g.skeleton()
    assert sk.dtype == bool and sk[1, 0] and sk[0, 1] and not sk[0, 3]
    assert "directed" in repr(g) and "a --> b" in repr(g)


def test_from_adjacency_binary_has_no_weights_and_default_names():
    adj = (_chain_weights() != 0).astype(int)
    g = Graph.from_adjacency(adj)
    assert g.weights is None and g.names == ["X0", "X1", "X2", "X3"]
    np.testing.assert_array_equal(g.to_adjacency(), adj)


def test_from_adjacency_cpdag_and_undirected():
    adj = np.zeros((3, 3))
    adj[0, 1] = adj[1, 0] = 1  # 0 --- 1
    adj[1, 2] = 1  # 1 --> 2
    c = Graph.from_adjacency(adj, kind="cpdag")
    assert sorted(c.edges()) == [("X0", "X1", "---"), ("X1", "X2", "-->")]
    np.testing.assert_array_equal(c.to_adjacency(), adj)
    assert not c.is_dag()
    u = Graph.from_adjacency(adj, kind="undirected")
    np.testing.assert_array_equal(u.to_adjacency(), (adj + adj.T) > 0)
    # one-sided weight of an undirected edge is mirrored
    w = np.array([[0, 0.3], [0, 0]])
    np.testing.assert_allclose(Graph.from_adjacency(w, kind="undirected").to_adjacency(), [[0, 0.3], [0.3, 0]])


def test_from_adjacency_errors_name_argument():
    with pytest.raises(ValueError, match="adj"):
        Graph.from_adjacency(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="2-cycles"):
        Graph.from_adjacency(np.ones((2, 2)) - np.eye(2), kind="directed")
    with pytest.raises(ValueError, match="diagonal"):
        Graph.from_adjacency(np.eye(2))
    with pytest.raises(ValueError, match="kind"):
        Graph.from_adjacency(np.zeros((2, 2)), kind="tree")
    with pytest.raises(ValueError, match="names"):
        Graph.from_adjacency(np.zeros((2, 2)), names=["a"])
    with pytest.raises(ValueError, match="names"):
        Graph.from_adjacency(np.zeros((2, 2)), names=["a", "a"])
    with pytest.raises(ValueError, match="NaN"):
        Graph.from_adjacency(np.array([[0, np.nan], [0, 0]]))


def test_constructor_validates_marks_against_kind():
    m = np.zeros((2, 2), int)
    m[0, 1], m[1, 0] = ARROW, ARROW  # bidirected
    Graph(m, kind="pag")
    with pytest.raises(ValueError, match="not allowed"):
        Graph(m, kind="cpdag")
    with pytest.raises(ValueError, match="both zero or both non-zero"):
        Graph(np.array([[0, 2], [0, 0]]))
    with pytest.raises(ValueError, match="marks"):
        Graph(np.array([[0, 7], [7, 0]]))


def test_is_dag_detects_cycle():
    adj = np.zeros((3, 3))
    adj[0, 1] = adj[1, 2] = adj[2, 0] = 1
    assert not Graph.from_adjacency(adj).is_dag()


def _pag():
    # 0 o-> 1, 1 <-> 2, 2 --> 3, 3 o-o 4, 0 --o 4 (tail at 0, circle at 4)
    m = np.zeros((5, 5), int)

    def put(i, j, at_i, at_j):
        m[j, i], m[i, j] = at_i, at_j

    put(0, 1, CIRCLE, ARROW)
    put(1, 2, ARROW, ARROW)
    put(2, 3, TAIL, ARROW)
    put(3, 4, CIRCLE, CIRCLE)
    put(0, 4, TAIL, CIRCLE)
    return Graph(m, names=list("ABCDE"), kind="mixed")


def test_pag_edges_and_possible_direction_adjacency():
    g = _pag()
    assert g.kind == "pag"
    assert sorted(g.edges()) == sorted(
        [("A", "B", "o->"), ("B", "C", "<->"), ("C", "D", "-->"), ("D", "E", "o-o"), ("A", "E", "--o")]
    )
    adj = g.to_adjacency()
    assert adj[0, 1] == 1 and adj[1, 0] == 0  # o-> : possible only A -> B
    assert adj[1, 2] == 1 and adj[2, 1] == 1  # <-> : both
    assert adj[2, 3] == 1 and adj[3, 2] == 0
    assert adj[3, 4] == 1 and adj[4, 3] == 1
    assert adj[0, 4] == 1 and adj[4, 0] == 1


@pytest.mark.parametrize("make", ["dag", "cpdag", "undirected", "pag"])
def test_dict_networkx_causallearn_roundtrips(make):
    if make == "pag":
        g = _pag()
    else:
        adj = _chain_weights()
        if make == "cpdag":
            adj[1, 0] = adj[0, 1]
        g = Graph.from_adjacency(adj, kind={"dag": "directed"}.get(make, make), names=list("abcd"))
    d = g.to_dict()
    assert Graph.from_dict(json.loads(json.dumps(d))) == g
    h = Graph.from_networkx(g.to_networkx())
    assert h == g
    assert isinstance(g.to_networkx(), nx.DiGraph) == (g.kind != "undirected")
    cl = g.to_causallearn()
    back = Graph.from_causallearn(cl, kind=g.kind)
    assert back.names == g.names and np.array_equal(back.marks, g.marks)
    assert g.copy() == g and g.copy() is not g


def test_causallearn_encoding_matches_causallearn_semantics():
    """Check our translation against causal-learn's own queries, not our own code."""
    g = _pag()
    cl = g.to_causallearn()
    nodes = {n.get_name(): n for n in cl.get_nodes()}
    # causal-learn: graph[j, i] = 1 and graph[i, j] = -1 means i --> j
    i, j = cl.node_map[nodes["C"]], cl.node_map[nodes["D"]]
    assert cl.graph[j, i] == 1 and cl.graph[i, j] == -1
    assert cl.is_parent_of(nodes["C"], nodes["D"])
    assert not cl.is_parent_of(nodes["D"], nodes["C"])
    # A o-> B : circle at A (2), arrow at B (1)
    a, b = cl.node_map[nodes["A"]], cl.node_map[nodes["B"]]
    assert cl.graph[a, b] == 2 and cl.graph[b, a] == 1
    # the edge strings causal-learn prints
    printed = {str(e) for e in cl.get_graph_edges()}
    assert {"A o-> B", "B <-> C", "C --> D", "D o-o E"} <= printed


def test_from_causallearn_accepts_causalgraph_and_ges_record():
    from causallearn.graph.GraphClass import CausalGraph

    cg = CausalGraph(3, ["p", "q", "r"])
    cg.G = Graph.from_adjacency(np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]]), names=["p", "q", "r"]).to_causallearn()
    g1 = Graph.from_causallearn(cg)
    g2 = Graph.from_causallearn({"G": cg.G}, kind="directed")
    assert g1.kind == "cpdag" and g2.kind == "directed"
    assert g1.edges() == [("p", "q", "-->"), ("q", "r", "-->")]
    with pytest.raises(TypeError, match="graph"):
        Graph.from_causallearn(np.zeros((2, 2)))


def test_from_networkx_plain_graphs():
    dg = nx.DiGraph()
    dg.add_edge("x", "y", weight=2.0)
    dg.add_node("z")
    g = Graph.from_networkx(dg)
    assert g.kind == "directed" and g.names == ["x", "y", "z"]
    assert g.to_adjacency()[0, 1] == 2.0
    ug = nx.path_graph(3)
    u = Graph.from_networkx(ug)
    assert u.kind == "undirected" and u.n_edges == 2 and u.names == ["0", "1", "2"]
    with pytest.raises(TypeError, match="graph"):
        Graph.from_networkx(np.zeros((2, 2)))


def test_from_adjacency_dataframe_names_and_no_inplace_change():
    pd = pytest.importorskip("pandas")
    w = _chain_weights()
    df = pd.DataFrame(w, columns=list("pqrs"), index=list("pqrs"))
    g = Graph.from_adjacency(df)
    assert g.names == list("pqrs")
    g.weights[0, 1] = 99
    assert df.iloc[0, 1] == 0.8


def test_intimate_neighbors_hand_worked():
    # triangle 0-1-2 plus a pendant 3 attached to 2, and an isolated node 4
    a = np.zeros((5, 5), bool)
    for i, j in [(0, 1), (1, 2), (0, 2), (2, 3)]:
        a[i, j] = True  # one-sided on purpose: symmetrised
    got = [sorted(v.tolist()) for v in intimate_neighbors(a)]
    # 0: neighbours {1, 2}, adjacent to each other -> both intimate; 2: neighbours {0, 1, 3},
    # 0 and 1 are not adjacent to 3 and 3 not to 0 -> none; 3: single neighbour 2 -> intimate
    assert got == [[1, 2], [0, 2], [], [2], []]
    g = Graph.from_adjacency(a, kind="undirected")
    assert [sorted(v.tolist()) for v in intimate_neighbors(g)] == got
    with pytest.raises(ValueError, match="markov_network"):
        intimate_neighbors(np.zeros((2, 3)))


def test_topological_order_smallest_ready_first_and_cycle():
    from crl_neuro.core.graphs import topological_order

    adj = np.zeros((4, 4))
    adj[3, 0] = adj[0, 2] = adj[1, 2] = 1  # 3 -> 0 -> 2 <- 1
    # ready at start: {1, 3}; 1 first, then 3, then 0 (freed by 3), then 2
    assert topological_order(adj) == [1, 3, 0, 2]
    assert topological_order(np.zeros((3, 3))) == [0, 1, 2]
    adj[2, 3] = 1  # closes 3 -> 0 -> 2 -> 3
    with pytest.raises(ValueError, match="acyclic"):
        topological_order(adj)
    with pytest.raises(ValueError, match="square"):
        topological_order(np.zeros((2, 3)))


def test_is_dag_matrix_and_graph_agree():
    from crl_neuro.core.graphs import is_dag

    adj = np.zeros((3, 3))
    adj[0, 1] = adj[1, 2] = 1
    assert is_dag(adj) and Graph.from_adjacency(adj).is_dag()
    adj[2, 0] = 1
    assert not is_dag(adj) and not Graph.from_adjacency(adj).is_dag()
    assert not is_dag(np.eye(2))  # a self-loop is a cycle
    two_cycle = np.array([[0, 1], [1, 0]])
    assert not is_dag(two_cycle)
    assert not Graph.from_adjacency(two_cycle, kind="cpdag").is_dag()  # undirected edge


def test_moral_graph_marries_parents():
    from crl_neuro.core.graphs import moral_graph

    dag = np.zeros((5, 5))
    dag[0, 2] = dag[1, 2] = dag[2, 3] = 1  # collider 0 -> 2 <- 1, then 2 -> 3; 4 isolated
    m = moral_graph(dag)
    expected = np.zeros((5, 5), bool)
    for i, j in [(0, 2), (1, 2), (2, 3), (0, 1)]:
        expected[i, j] = expected[j, i] = True
    np.testing.assert_array_equal(m, expected)
    assert m.dtype == bool


def test_graph_algorithms_have_one_home():
    """The simulators and estimators use the core's graph algorithms (no private copies)."""
    from crl_neuro.core import graphs
    from crl_neuro.datasets import nonlinear
    from crl_neuro.psychometrics import structure

    assert nonlinear.moral_graph is graphs.moral_graph
    assert structure.cpdag_from_dag is graphs.cpdag_from_dag
    assert structure.apply_meek_rules is graphs.apply_meek_rules
    chain = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    assert nonlinear.intimate_neighbours(chain) == [v.tolist() for v in intimate_neighbors(chain)]
