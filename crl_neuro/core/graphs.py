"""One graph type for Markov networks, DAGs, CPDAGs and PAGs / mixed graphs.

Edge encoding
-------------
A :class:`Graph` over ``n`` named nodes stores one integer matrix of **endpoint marks**
``marks`` of shape ``(n, n)``:

    ``marks[i, j]`` is the mark **at node j** on the edge between ``i`` and ``j``.

with the marks ``NONE = 0`` (no edge), ``TAIL = 1``, ``ARROW = 2``, ``CIRCLE = 3``.
An edge exists iff ``marks[i, j] != 0`` (and then ``marks[j, i] != 0`` too); the
diagonal is 0. Reading ``marks[i, j]`` as "how the edge from i ends at j":

==============  ===================  ===================
edge            ``marks[i, j]``      ``marks[j, i]``
==============  ===================  ===================
``i --> j``     ARROW                TAIL
``i --- j``     TAIL                 TAIL
``i <-> j``     ARROW                ARROW
``i o-> j``     ARROW                CIRCLE
``i o-o j``     CIRCLE               CIRCLE
``i --o j``     CIRCLE               TAIL
==============  ===================  ===================

Optional ``weights`` (same shape, float) hold edge strengths: ``weights[i, j]`` for
``i --> j``; both entries (usually equal) for other edges.

``kind`` says which edges are allowed: ``"undirected"`` (Markov networks: ``---`` only),
``"directed"`` (``-->`` only; DAGs, possibly cyclic), ``"cpdag"`` (``-->`` and ``---``)
and ``"pag"`` (any marks; alias ``"mixed"``).

Numpy adjacency convention of the package: ``adj[i, j] != 0`` means ``i -> j``; an
undirected edge appears both ways. :meth:`Graph.to_adjacency` is lossless for
undirected graphs, DAGs and CPDAGs. For PAGs it returns the "possible direction"
adjacency: ``adj[i, j] == 0`` only where the edge certainly points into ``i`` (arrow at
``i``, none at ``j``), so bidirected and circle edges appear both ways.

causal-learn's ``GeneralGraph.graph`` uses the transposed view, ``graph[i, j]`` = mark
at ``i`` with ``-1`` tail, ``1`` arrow, ``2`` circle; :meth:`Graph.from_causallearn` and
:meth:`Graph.to_causallearn` are the only places that translate it.
"""

from __future__ import annotations

from itertools import combinations
from typing import Any, Sequence

import numpy as np

__all__ = [
    "Graph",
    "GraphMixin",
    "apply_meek_rules",
    "cpdag_from_dag",
    "intimate_neighbors",
    "is_dag",
    "moral_graph",
    "topological_order",
    "NONE",
    "TAIL",
    "ARROW",
    "CIRCLE",
    "GRAPH_KINDS",
]

NONE, TAIL, ARROW, CIRCLE = 0, 1, 2, 3
_MARK_NAMES = {NONE: "none", TAIL: "tail", ARROW: "arrow", CIRCLE: "circle"}
_MARK_CODES = {v: k for k, v in _MARK_NAMES.items()}
_LEFT = {TAIL: "-", ARROW: "<", CIRCLE: "o"}
_RIGHT = {TAIL: "-", ARROW: ">", CIRCLE: "o"}
GRAPH_KINDS = ("undirected", "directed", "cpdag", "pag")
# Allowed (mark at i, mark at j) pairs per kind, unordered.
_ALLOWED = {
    "undirected": {(TAIL, TAIL)},
    "directed": {(TAIL, ARROW)},
    "cpdag": {(TAIL, ARROW), (TAIL, TAIL)},
    "pag": {(a, b) for a in (TAIL, ARROW, CIRCLE) for b in (TAIL, ARROW, CIRCLE)},
}
# causal-learn Endpoint values <-> crl_neuro marks (translated here only).
_CL_TO_MARK = {0: NONE, -1: TAIL, 1: ARROW, 2: CIRCLE}
_MARK_TO_CL = {v: k for k, v in _CL_TO_MARK.items()}


def _check_kind(kind: str) -> str:
    if kind == "mixed":
        return "pag"
    if kind not in GRAPH_KINDS:
        raise ValueError(f"kind must be one of {list(GRAPH_KINDS) + ['mixed']}, got {kind!r}")
    return kind


def _check_names(names: Sequence[Any] | None, n: int) -> list[str]:
    if names is None:
        return [f"X{i}" for i in range(n)]
    names = [str(v) for v in names]
    if len(names) != n:
        raise ValueError(f"names must have one entry per node ({n}), got {len(names)}")
    if len(set(names)) != n:
        raise ValueError("names must be unique")
    return names


class Graph:
    """A graph with named nodes and endpoint marks (see the module docstring).

    Parameters
    ----------
    marks : array-like of int, shape (n, n)
        ``marks[i, j]`` is the mark at ``j`` on the edge ``i``–``j``: 0 none, 1 tail,
        2 arrow, 3 circle.
    names : sequence of str, optional
        Node names (default ``"X0"``, ``"X1"``, ...).
    kind : {"undirected", "directed", "cpdag", "pag", "mixed"}
        Which edges are allowed; checked.
    weights : array-like of float, shape (n, n), optional
        Edge strengths (``weights[i, j]`` for ``i --> j``); entries off the edges or
        against an arrow (``weights[j, i]`` for ``i --> j``) are set to 0.
    latent : array-like of bool, shape (n,), optional
        Which nodes are latent (e.g. in GIN/RLCD output); default none.

    Attributes
    ----------
    marks : ndarray of int8, shape (n, n)
    names : list of str
    kind : str
    weights : ndarray of float, shape (n, n), or None
    latent : ndarray of bool, shape (n,)
    """

    NONE, TAIL, ARROW, CIRCLE = NONE, TAIL, ARROW, CIRCLE

    def __init__(
        self,
        marks: Any,
        names: Sequence[Any] | None = None,
        kind: str = "pag",
        weights: Any = None,
        latent: Any = None,
    ) -> None:
        m = np.asarray(marks)
        if m.ndim != 2 or m.shape[0] != m.shape[1]:
            raise ValueError(f"marks must be a square matrix, got shape {m.shape}")
        if m.size and (m.dtype.kind not in "iub" or m.min() < 0 or m.max() > 3):
            raise ValueError("marks must contain integers in {0: none, 1: tail, 2: arrow, 3: circle}")
        m = m.astype(np.int8)
        n = m.shape[0]
        if np.any(np.diag(m)):
            raise ValueError("marks must have a zero diagonal (no self-loops)")
        if np.any((m != 0) != (m.T != 0)):
            raise ValueError("marks[i, j] and marks[j, i] must be both zero or both non-zero")
        self.kind = _check_kind(kind)
        allowed = _ALLOWED[self.kind]
        for i, j in zip(*np.nonzero(np.triu(m))):
            pair = (int(m[j, i]), int(m[i, j]))
            if pair not in allowed and pair[::-1] not in allowed:
                raise ValueError(
                    f"edge {self._symbol(pair[0], pair[1])} between nodes {i} and {j} is not "
                    f"allowed in a graph of kind {self.kind!r}"
                )
        self.marks = m
        self.names = _check_names(names, n)
        if weights is not None:
            w = np.array(weights, dtype=float)
            if w.shape != m.shape:
                raise ValueError(f"weights must have shape {m.shape}, got {w.shape}")
            # keep weights only where to_adjacency has an entry (not against an arrow)
            w[(m == 0) | ((m.T == ARROW) & (m != ARROW))] = 0.0
            weights = w
        self.weights = weights
        lat = np.zeros(n, bool) if latent is None else np.asarray(latent, dtype=bool).copy()
        if lat.shape != (n,):
            raise ValueError(f"latent must have shape ({n},), got {lat.shape}")
        self.latent = lat

    # -- basic properties -------------------------------------------------------------
    @property
    def n_nodes(self) -> int:
        """Number of nodes."""
        return self.marks.shape[0]

    @property
    def n_edges(self) -> int:
        """Number of edges (each unordered pair counted once)."""
        return int(np.count_nonzero(np.triu(self.marks)))

    @staticmethod
    def _symbol(mark_i: int, mark_j: int) -> str:
        return _LEFT[mark_i] + "-" + _RIGHT[mark_j]

    def edges(self) -> list[tuple[str, str, str]]:
        """List the edges as ``(name_a, name_b, symbol)``.

        ``symbol`` is one of ``"-->"``, ``"---"``, ``"<->"``, ``"o->"``, ``"o-o"``,
        ``"--o"``; directed edges are listed cause first.
        """
        rank = {TAIL: 0, CIRCLE: 1, ARROW: 2}
        out = []
        for i, j in zip(*np.nonzero(np.triu(self.marks))):
            a, b = int(i), int(j)
            mark_a, mark_b = int(self.marks[b, a]), int(self.marks[a, b])
            if rank[mark_a] > rank[mark_b]:
                a, b, mark_a, mark_b = b, a, mark_b, mark_a
            out.append((self.names[a], self.names[b], self._symbol(mark_a, mark_b)))
        return out

    def skeleton(self) -> np.ndarray:
        """Boolean symmetric adjacency of the skeleton (any edge), False diagonal."""
        return self.marks != 0

    def is_dag(self) -> bool:
        """Whether every edge is directed and there is no directed cycle."""
        m = self.marks
        edge = m != 0
        directed = (m == ARROW) & (m.T == TAIL)
        if np.any(edge & ~(directed | directed.T)):
            return False
        return is_dag(directed)

    # -- numpy adjacency ------------------------------------------------------------------
    @classmethod
    def from_adjacency(
        cls, adj: Any, kind: str = "directed", names: Sequence[Any] | None = None
    ) -> "Graph":
        """Build a graph from an adjacency matrix (``adj[i, j] != 0`` means ``i -> j``).

        Parameters
        ----------
        adj : array-like, shape (n, n), or pandas.DataFrame
            Adjacency or weight matrix; the diagonal must be zero. A DataFrame's columns
            give the default names.
        kind : {"directed", "undirected", "cpdag"}
            ``"directed"``: every non-zero entry is an edge ``i -> j`` (a pair non-zero
            both ways is an error; use ``"cpdag"``). ``"undirected"``: the matrix is
            symmetrised. ``"cpdag"``: pairs non-zero both ways are undirected edges,
            one-way pairs directed edges.
        names : sequence of str, optional
            Node names.

        Returns
        -------
        graph : Graph
            Non-binary weights are kept in ``graph.weights``.
        """
        if names is None and hasattr(adj, "columns") and hasattr(adj, "to_numpy"):
            names = list(adj.columns)
            adj = adj.to_numpy()
        a = np.asarray(adj)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"adj must be a square matrix, got shape {a.shape}")
        if a.dtype == object or not (np.issubdtype(a.dtype, np.number) or a.dtype == bool):
            raise TypeError(f"adj must be a numeric or boolean matrix, got dtype {a.dtype}")
        a = a.astype(float)
        if not np.all(np.isfinite(a)):
            raise ValueError("adj contains NaN or infinite values")
        if np.any(np.diag(a) != 0):
            raise ValueError("adj must have a zero diagonal (no self-loops)")
        kind = _check_kind(kind)
        if kind == "pag":
            raise ValueError(
                "kind='pag' cannot be read from an adjacency matrix (it has no circle marks); "
                "build Graph(marks, kind='pag') instead"
            )
        nz = a != 0
        both = nz & nz.T
        marks = np.zeros(a.shape, np.int8)
        if kind == "directed":
            if both.any():
                i, j = np.argwhere(both)[0]
                raise ValueError(
                    f"adj has edges both ways between nodes {i} and {j}; a 'directed' graph "
                    "cannot hold 2-cycles (use kind='cpdag' to read them as undirected edges)"
                )
            marks[nz] = ARROW
            marks[nz.T] = TAIL
        elif kind == "undirected":
            marks[nz | nz.T] = TAIL
        else:  # cpdag
            one = nz & ~both
            marks[both] = TAIL
            marks[one] = ARROW
            marks[one.T] = TAIL
        weights = None
        values = a[nz]
        if values.size and not np.all(values == 1):
            weights = a.copy()
            if kind in ("undirected", "cpdag"):
                # a one-sided entry of an undirected edge gives the weight of both sides
                sym = (marks == TAIL) & (marks.T == TAIL)
                weights = np.where(sym & (weights == 0), weights.T, weights)
        return cls(marks, names=names, kind=kind, weights=weights)

    def to_adjacency(self) -> np.ndarray:
        """Adjacency matrix: ``adj[i, j] != 0`` means ``i -> j`` (undirected: both ways).

        Returns
        -------
        adj : ndarray of float, shape (n, n)
            The stored weights where available (and non-zero), else 1. For PAGs see the
            module docstring ("possible direction" adjacency).
        """
        m = self.marks
        edge = m != 0
        # zero only where the edge certainly points into i: arrow at i, no arrow at j
        into_i = (m.T == ARROW) & (m != ARROW)
        keep = edge & ~into_i
        adj = np.zeros(m.shape, float)
        if self.weights is not None:
            adj[keep] = np.where(self.weights[keep] != 0, self.weights[keep], 1.0)
        else:
            adj[keep] = 1.0
        return adj

    # -- networkx ---------------------------------------------------------------------------
    def to_networkx(self) -> Any:
        """Convert to networkx.

        Returns
        -------
        graph : networkx.Graph or networkx.DiGraph
            ``Graph`` for undirected graphs, else ``DiGraph`` following
            :meth:`to_adjacency` (undirected edges both ways). Each edge carries
            ``weight`` and, for CPDAGs and PAGs, ``marks`` = (mark at source, mark at
            target) as strings, so that :meth:`from_networkx` restores the graph exactly.
        """
        import networkx as nx

        g = nx.Graph() if self.kind == "undirected" else nx.DiGraph()
        g.graph["kind"] = self.kind
        for k, name in enumerate(self.names):
            g.add_node(name, latent=bool(self.latent[k]))
        adj = self.to_adjacency()
        for i, j in zip(*np.nonzero(adj)):
            attrs = {"weight": float(adj[i, j])}
            if self.kind in ("cpdag", "pag"):
                attrs["marks"] = (_MARK_NAMES[int(self.marks[j, i])], _MARK_NAMES[int(self.marks[i, j])])
            g.add_edge(self.names[i], self.names[j], **attrs)
        return g

    @classmethod
    def from_networkx(cls, graph: Any, kind: str | None = None) -> "Graph":
        """Build from a networkx ``Graph`` (undirected) or ``DiGraph``.

        Parameters
        ----------
        graph : networkx.Graph or networkx.DiGraph
            Node labels become names (as strings). Edge ``weight`` attributes are kept;
            ``marks`` attributes (as written by :meth:`to_networkx`) are honoured.
        kind : str, optional
            Default: ``graph.graph["kind"]`` if present, else ``"undirected"`` for a
            ``Graph`` and ``"directed"`` for a ``DiGraph`` (use ``"cpdag"`` to read
            edges present both ways as undirected).

        Returns
        -------
        graph : Graph
        """
        import networkx as nx

        if not isinstance(graph, nx.Graph):
            raise TypeError(f"graph must be a networkx Graph or DiGraph, got {type(graph).__name__}")
        nodes = list(graph.nodes)
        names = _check_names(nodes, len(nodes))
        index = {v: k for k, v in enumerate(nodes)}
        directed = graph.is_directed()
        if kind is None:
            kind = graph.graph.get("kind", "directed" if directed else "undirected")
        kind = _check_kind(kind)
        latent = [bool(graph.nodes[v].get("latent", False)) for v in nodes]
        n = len(nodes)
        has_marks = any("marks" in d for _, _, d in graph.edges(data=True))
        weight = np.zeros((n, n))
        weighted = False
        for u, v, d in graph.edges(data=True):
            if u == v:
                raise ValueError(f"graph has a self-loop on node {u!r}")
            w = float(d.get("weight", 1.0))
            weighted |= w != 1.0
            weight[index[u], index[v]] = w if w != 0 else 1.0
            if not directed:
                weight[index[v], index[u]] = weight[index[u], index[v]]
        if has_marks:
            marks = np.zeros((n, n), np.int8)
            for u, v, d in graph.edges(data=True):
                if "marks" not in d:
                    raise ValueError("graph mixes edges with and without a 'marks' attribute")
                mu, mv = (_MARK_CODES[str(s)] for s in d["marks"])
                marks[index[u], index[v]] = mv
                marks[index[v], index[u]] = mu
            w = weight if weighted else None
            return cls(marks, names=names, kind=kind, weights=w, latent=latent)
        if kind == "pag":
            raise ValueError("kind='pag' needs 'marks' edge attributes (see Graph.to_networkx)")
        out = cls.from_adjacency(weight if weighted else (weight != 0), kind=kind, names=names)
        out.latent = np.asarray(latent, bool)
        return out

    # -- causal-learn -----------------------------------------------------------------------
    def to_causallearn(self) -> Any:
        """Convert to a causal-learn ``GeneralGraph`` (nodes named as here).

        Returns
        -------
        graph : causallearn.graph.GeneralGraph.GeneralGraph
        """
        from causallearn.graph.Edge import Edge
        from causallearn.graph.Endpoint import Endpoint
        from causallearn.graph.GeneralGraph import GeneralGraph
        from causallearn.graph.GraphNode import GraphNode
        from causallearn.graph.NodeType import NodeType

        nodes = []
        for k, name in enumerate(self.names):
            node = GraphNode(name)
            if self.latent[k]:
                node.set_node_type(NodeType.LATENT)
            nodes.append(node)
        g = GeneralGraph(nodes)
        endpoint = {TAIL: Endpoint.TAIL, ARROW: Endpoint.ARROW, CIRCLE: Endpoint.CIRCLE}
        for i, j in zip(*np.nonzero(np.triu(self.marks))):
            at_i, at_j = int(self.marks[j, i]), int(self.marks[i, j])
            g.add_edge(Edge(nodes[i], nodes[j], endpoint[at_i], endpoint[at_j]))
        return g

    @classmethod
    def from_causallearn(
        cls, graph: Any, names: Sequence[Any] | None = None, kind: str | None = None
    ) -> "Graph":
        """Build from causal-learn output.

        Parameters
        ----------
        graph : GeneralGraph, CausalGraph or dict
            A ``GeneralGraph``, an object with a ``G`` attribute (``CausalGraph`` from PC,
            CD-NOD, RLCD) or a dict with key ``"G"`` (GES record).
        names : sequence of str, optional
            Node names; default: causal-learn's node names.
        kind : str, optional
            Default ``"pag"`` if the graph has circle or bidirected edges, else ``"cpdag"``.

        Returns
        -------
        graph : Graph
        """
        if isinstance(graph, dict) and "G" in graph:
            graph = graph["G"]
        elif not hasattr(graph, "get_nodes") and hasattr(graph, "G"):
            graph = graph.G
        if not (hasattr(graph, "graph") and hasattr(graph, "get_nodes")):
            raise TypeError(
                f"graph must be a causal-learn GeneralGraph or CausalGraph, got {type(graph).__name__}"
            )
        cl = np.asarray(graph.graph)
        bad = ~np.isin(cl, list(_CL_TO_MARK))
        if bad.any():
            i, j = np.argwhere(bad)[0]
            raise ValueError(
                f"causal-learn endpoint code {int(cl[i, j])} between nodes {i} and {j} (several "
                "edges between one pair, or a '*' mark) has no crl_neuro equivalent"
            )
        # causal-learn graph[i, j] is the mark at i; ours marks[i, j] is the mark at j.
        marks = np.vectorize(_CL_TO_MARK.get, otypes=[np.int8])(cl.T) if cl.size else cl.astype(np.int8)
        nodes = graph.get_nodes()
        if names is None:
            names = [node.get_name() for node in nodes]
        latent = [getattr(node.get_node_type(), "name", "") == "LATENT" for node in nodes]
        if kind is None:
            other = (marks == CIRCLE) | ((marks == ARROW) & (marks.T == ARROW))
            kind = "pag" if other.any() else "cpdag"
        return cls(marks, names=names, kind=kind, latent=latent)

    # -- persistence ----------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """JSON-able representation (inverse: :meth:`from_dict`)."""
        return {
            "kind": self.kind,
            "names": list(self.names),
            "marks": self.marks.astype(int).tolist(),
            "weights": None if self.weights is None else self.weights.tolist(),
            "latent": self.latent.astype(bool).tolist(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Graph":
        """Rebuild a graph written by :meth:`to_dict`."""
        if not isinstance(data, dict) or "marks" not in data:
            raise ValueError("data must be a dict written by Graph.to_dict (with a 'marks' entry)")
        marks = np.asarray(data["marks"], dtype=np.int64).reshape(
            len(data["marks"]), len(data["marks"])
        )
        return cls(
            marks,
            names=data.get("names"),
            kind=data.get("kind", "pag"),
            weights=data.get("weights"),
            latent=data.get("latent"),
        )

    # -- dunder -----------------------------------------------------------------------------------
    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Graph):
            return NotImplemented
        if self.weights is None or other.weights is None:
            same_w = self.weights is None and other.weights is None
        else:
            same_w = np.array_equal(self.weights, other.weights, equal_nan=True)
        return (
            self.kind == other.kind
            and self.names == other.names
            and np.array_equal(self.marks, other.marks)
            and np.array_equal(self.latent, other.latent)
            and same_w
        )

    __hash__ = None  # mutable arrays inside

    def __repr__(self) -> str:
        shown = ", ".join(f"{a} {s} {b}" for a, b, s in self.edges()[:6])
        more = ", ..." if self.n_edges > 6 else ""
        return f"<Graph {self.kind}, {self.n_nodes} nodes, {self.n_edges} edges: {shown}{more}>"

    def copy(self) -> "Graph":
        """Deep copy."""
        return Graph.from_dict(self.to_dict())


# -- algorithms on numpy adjacency matrices ---------------------------------------------------
class GraphMixin:
    """Mixin of the estimators that learn graphs: one way to get them as :class:`Graph`.

    Estimators keep their graphs in fitted attributes with the documented numpy
    encoding (``attr[i, j] != 0`` means ``i -> j``; symmetric for Markov networks), a
    :class:`pandas.DataFrame` with that encoding, or a :class:`Graph`.
    :meth:`to_graph` turns any of them into a :class:`Graph` with named nodes, which
    converts to numpy, networkx and causal-learn.

    Subclasses declare ``_graphs = {which: (attribute, kind)}`` (the first entry is
    the default; ``kind`` is ignored when the attribute already holds a
    :class:`Graph`) and may override :meth:`_graph_node_names`.
    """

    _graphs: dict[str, tuple[str, str]] = {}

    def _graph_node_names(self, which: str, n_nodes: int) -> list[str] | None:
        """Node names of graph ``which`` (None: DataFrame columns or ``X0, X1, ...``)."""
        return None

    def to_graph(self, which: str | None = None) -> Graph:
        """A fitted graph as a :class:`Graph` with named nodes.

        Parameters
        ----------
        which : str or None
            Which graph (the keys of ``graph_kinds()``); None: the estimator's main
            graph, the first of ``graph_kinds()``.

        Returns
        -------
        graph : Graph
            A new object (changing it does not change the estimator). Weighted
            attributes keep their values in ``graph.weights``.
        """
        from sklearn.utils.validation import check_is_fitted

        check_is_fitted(self)
        kinds = self.graph_kinds()
        if which is None:
            which = next(iter(kinds))
        if not isinstance(which, str) or which not in kinds:
            raise ValueError(f"which must be one of {sorted(kinds)} or None, got {which!r}")
        attr, kind = self._graphs[which]
        value = getattr(self, attr, None)
        if value is None:
            raise ValueError(f"{type(self).__name__} has no {which!r} graph for this fit ({attr} is None)")
        if isinstance(value, Graph):
            return value.copy()
        n = value.shape[0]
        names = self._graph_node_names(which, n)
        if hasattr(value, "columns") and hasattr(value, "to_numpy"):
            names = names if names is not None else [str(c) for c in value.columns]
            value = value.to_numpy()
        return Graph.from_adjacency(np.array(value, copy=True), kind=kind, names=names)

    @classmethod
    def graph_kinds(cls) -> dict[str, str]:
        """The graphs :meth:`to_graph` returns: ``{which: fitted attribute}``, main one first."""
        return {which: attr for which, (attr, _) in cls._graphs.items()}


def _square_bool(adj: Any, name: str) -> np.ndarray:
    a = np.asarray(adj)
    if a.ndim != 2 or a.shape[0] != a.shape[1]:
        raise ValueError(f"{name} must be a square matrix, got shape {a.shape}")
    return a != 0


def topological_order(adj: Any) -> list[int]:
    """Order the nodes of a DAG so that every parent comes before its children.

    Kahn's algorithm; among the nodes ready at a step the one with the smallest index
    comes first, so the order is unique (the lexicographically smallest topological
    order).

    Parameters
    ----------
    adj : array-like, shape (n, n)
        Adjacency, ``adj[i, j] != 0`` means ``i -> j``.

    Returns
    -------
    order : list of int
        The node indices in topological order.

    Raises
    ------
    ValueError
        If the graph has a directed cycle (a non-zero diagonal entry is a cycle).

    Examples
    --------
    >>> import numpy as np
    >>> topological_order(np.array([[0, 0, 0], [1, 0, 1], [1, 0, 0]]))
    [1, 2, 0]
    """
    order = _kahn(_square_bool(adj, "adj"))
    if order is None:
        raise ValueError("graph must be acyclic (a DAG)")
    return order


def _kahn(a: np.ndarray) -> list[int] | None:
    """Kahn's order of a boolean adjacency, smallest ready index first; None if cyclic."""
    indeg = a.sum(axis=0).astype(int)
    ready = [i for i in range(a.shape[0]) if indeg[i] == 0]
    order: list[int] = []
    while ready:
        i = ready.pop(0)
        order.append(i)
        for j in np.flatnonzero(a[i]):
            indeg[j] -= 1
            if indeg[j] == 0:
                ready.append(int(j))
        ready.sort()
    return order if len(order) == a.shape[0] else None


def is_dag(adj: Any) -> bool:
    """Whether an adjacency matrix has no directed cycle.

    Parameters
    ----------
    adj : array-like, shape (n, n)
        Adjacency, ``adj[i, j] != 0`` means ``i -> j``. A non-zero diagonal entry (a
        self-loop) is a cycle; an entry non-zero both ways is a 2-cycle.

    Returns
    -------
    acyclic : bool
    """
    return _kahn(_square_bool(adj, "adj")) is not None


def moral_graph(dag: Any) -> np.ndarray:
    """Moral graph (Markov network) of a DAG.

    Parameters
    ----------
    dag : array-like, shape (n, n)
        Adjacency, ``dag[i, j] != 0`` means ``i -> j``.

    Returns
    -------
    markov_network : ndarray of bool, shape (n, n)
        Symmetric, False diagonal: the skeleton plus an edge between every pair of
        parents of a common child ("married" parents).

    Examples
    --------
    >>> import numpy as np
    >>> collider = np.array([[0, 0, 1], [0, 0, 1], [0, 0, 0]])
    >>> moral_graph(collider).astype(int).tolist()
    [[0, 1, 1], [1, 0, 1], [1, 1, 0]]
    """
    a = _square_bool(dag, "dag")
    m = a | a.T
    for child in range(a.shape[0]):
        parents = np.flatnonzero(a[:, child])
        m[np.ix_(parents, parents)] = True
    np.fill_diagonal(m, False)
    return m


# -- equivalence classes --------------------------------------------------------------------
def _directed(G: np.ndarray, a: int, b: int) -> bool:
    return G[a, b] != 0 and G[b, a] == 0


def _undirected(G: np.ndarray, a: int, b: int) -> bool:
    return G[a, b] != 0 and G[b, a] != 0


def _adjacent(G: np.ndarray, a: int, b: int) -> bool:
    return G[a, b] != 0 or G[b, a] != 0


def apply_meek_rules(G: np.ndarray) -> np.ndarray:
    """Apply Meek's rules R1–R4 until nothing changes (orients undirected edges only).

    Parameters
    ----------
    G : ndarray, shape (k, k)
        Partially directed graph in the package's adjacency convention: ``G[a, b] != 0``
        and ``G[b, a] == 0`` means ``a -> b``, both non-zero an undirected edge.

    Returns
    -------
    G : ndarray
        A copy with every edge orientation the rules imply.
    """
    G = (np.asarray(G) != 0).astype(int)
    k = G.shape[0]
    changed = True
    while changed:
        changed = False
        for a in range(k):
            for b in range(k):
                if a == b or not _undirected(G, a, b):
                    continue
                orient = False
                for c in range(k):
                    if c in (a, b):
                        continue
                    # R1: c -> a - b, c and b not adjacent  =>  a -> b
                    if _directed(G, c, a) and not _adjacent(G, c, b):
                        orient = True
                    # R2: a -> c -> b and a - b  =>  a -> b
                    elif _directed(G, a, c) and _directed(G, c, b):
                        orient = True
                    if orient:
                        break
                if not orient:
                    # R3: a - c -> b, a - d -> b, c and d not adjacent  =>  a -> b
                    cs = [c for c in range(k) if c not in (a, b) and _undirected(G, a, c) and _directed(G, c, b)]
                    for c, d in combinations(cs, 2):
                        if not _adjacent(G, c, d):
                            orient = True
                            break
                if not orient:
                    # R4: a - c -> d -> b, a adjacent to d, c and b not adjacent  =>  a -> b
                    for c in range(k):
                        if c in (a, b) or not _undirected(G, a, c) or _adjacent(G, c, b):
                            continue
                        for d in range(k):
                            if d in (a, b, c):
                                continue
                            if _directed(G, c, d) and _directed(G, d, b) and _adjacent(G, a, d):
                                orient = True
                                break
                        if orient:
                            break
                if orient:
                    G[b, a] = 0
                    changed = True
    return G


def cpdag_from_dag(dag: np.ndarray) -> np.ndarray:
    """CPDAG (Markov equivalence class) of a DAG.

    Parameters
    ----------
    dag : ndarray, shape (k, k)
        ``dag[a, b] != 0`` means a → b.

    Returns
    -------
    cpdag : ndarray of int, shape (k, k)
        Compelled edges directed, reversible edges undirected.
    """
    D = np.asarray(dag) != 0
    k = D.shape[0]
    G = (D | D.T).astype(int)
    for c in range(k):
        parents = np.flatnonzero(D[:, c])
        for a, b in combinations(parents, 2):
            if not (D[a, b] or D[b, a]):
                G[c, a] = 0
                G[c, b] = 0
    return apply_meek_rules(G)


def intimate_neighbors(markov_network: Any) -> list[np.ndarray]:
    """Intimate neighbours of every node of a Markov network.

    A neighbour ``j`` of ``i`` is *intimate* when it is adjacent to all of ``i``'s other
    neighbours (Zhang, Xie, Ng & Zheng, ICML 2024). Under changing causal relations a
    latent is identified up to a function of itself and its intimate neighbours, so the
    latents with none are identified component-wise. The condition holds vacuously when
    ``j`` is the only neighbour of ``i`` (e.g. the ends of a chain).

    crl_neuro spells the function ``intimate_neighbors``, like scikit-learn's
    ``neighbors``; the simulators' ground-truth field ``truth.intimate_neighbours`` and
    :func:`crl_neuro.datasets.nonlinear.intimate_neighbours` (lists of int) keep the
    earlier spelling for backward compatibility.

    Parameters
    ----------
    markov_network : array-like of bool, shape (n, n), or Graph
        Adjacency of the Markov network (symmetrised; diagonal ignored).

    Returns
    -------
    intimate : list of ndarray of int
        ``intimate[i]`` lists the intimate neighbours of node ``i`` (sorted).

    Examples
    --------
    In the chain ``0 - 1 - 2`` node 1 has none, while 1 is intimate to the ends:

    >>> import numpy as np
    >>> chain = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]])
    >>> [v.tolist() for v in intimate_neighbors(chain)]
    [[1], [], [1]]
    """
    if isinstance(markov_network, Graph):
        a = markov_network.skeleton()
    else:
        a = np.asarray(markov_network)
        if a.ndim != 2 or a.shape[0] != a.shape[1]:
            raise ValueError(f"markov_network must be a square matrix, got shape {a.shape}")
        a = a != 0
        a = a | a.T
    a = a.copy()
    np.fill_diagonal(a, False)
    out = []
    for i in range(a.shape[0]):
        nb = np.flatnonzero(a[i])
        out.append(np.array(
            [j for j in nb if all(a[j, k] for k in nb if k != j)], dtype=int
        ))
    return out
