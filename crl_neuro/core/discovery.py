"""Thin, typed wrappers over causal-learn's causal discovery algorithms.

Each function validates its input, runs the causal-learn algorithm quietly (no
progress bars or prints unless ``verbose``) and returns a
:class:`crl_neuro.core.graphs.Graph`. causal-learn's edge encoding is translated only
by :meth:`Graph.from_causallearn`.

==========  ======================================================  ==============
function    algorithm                                               returns kind
==========  ======================================================  ==============
``pc``      PC (Spirtes et al.), constraint-based, no confounders   ``"cpdag"``
``fci``     FCI, allows latent confounders                          ``"pag"``
``cdnod``   CD-NOD (Huang et al. 2020): PC plus a domain node       ``"cpdag"``
``ges``     Greedy equivalence search, score-based                  ``"cpdag"``
``gin``     GIN (Xie et al. 2020): latent variables, linear         ``"cpdag"``
            non-Gaussian; latent nodes are flagged in
            ``Graph.latent``
``rlcd``    RLCD (Dong et al. 2024): rank-based latent causal       ``"cpdag"``
            discovery, linear; latent nodes flagged
==========  ======================================================  ==============
"""

from __future__ import annotations

import contextlib
import io
from typing import Any, Iterator, Sequence

import numpy as np

from crl_neuro.core.graphs import Graph
from crl_neuro.core.validation import check_choice, check_data, check_domains, check_float, check_int

__all__ = ["pc", "fci", "cdnod", "ges", "gin", "rlcd", "INDEP_TESTS"]

#: Conditional independence tests of causal-learn usable by ``pc``, ``fci`` and ``cdnod``.
INDEP_TESTS = ("fisherz", "kci", "rcit", "fastkci", "chisq", "gsq", "mv_fisherz")
_MIN_SAMPLES = 10


@contextlib.contextmanager
def _quiet(verbose: bool) -> Iterator[None]:
    """Swallow causal-learn's prints unless ``verbose``."""
    if verbose:
        yield
        return
    with contextlib.redirect_stdout(io.StringIO()):
        yield


def _prepare(data: Any, names: Sequence[Any] | None, min_features: int = 2) -> tuple[np.ndarray, list[str]]:
    if names is None and hasattr(data, "columns") and hasattr(data, "to_numpy"):
        names = [str(c) for c in data.columns]
    X = check_data(data, name="data", ndim=2, min_samples=_MIN_SAMPLES, min_features=min_features)
    if names is None:
        names = [f"X{i}" for i in range(X.shape[1])]
    names = [str(v) for v in names]
    if len(names) != X.shape[1]:
        raise ValueError(f"names must have one entry per column of data ({X.shape[1]}), got {len(names)}")
    if len(set(names)) != len(names):
        raise ValueError("names must be unique")
    const = np.flatnonzero(X.std(axis=0) == 0)
    if const.size:
        raise ValueError(f"data column(s) {[names[k] for k in const]} are constant")
    return X, names


def _check_alpha(alpha: Any) -> float:
    return check_float(alpha, "alpha", min_value=0.0, max_value=1.0, inclusive=False)


def _rename_observed(graph: Graph, names: list[str]) -> Graph:
    """Map causal-learn's default observed names ``X1..Xp`` to ``names`` (latents keep theirs)."""
    default = {f"X{k + 1}": name for k, name in enumerate(names)}
    new = [n if graph.latent[k] else default.get(n, n) for k, n in enumerate(graph.names)]
    return Graph(graph.marks, names=new, kind=graph.kind, latent=graph.latent)


def pc(
    data: Any,
    alpha: float = 0.05,
    indep_test: str = "fisherz",
    names: Sequence[str] | None = None,
    stable: bool = True,
    uc_rule: int = 0,
    uc_priority: int = 2,
    verbose: bool = False,
    **kwargs: Any,
) -> Graph:
    """PC algorithm (causal-learn ``pc``): a CPDAG assuming no latent confounders.

    Parameters
    ----------
    data : array-like or DataFrame, shape (n_samples, n_variables)
        Observations; a DataFrame's columns give the node names.
    alpha : float
        Significance level of the conditional independence tests, in (0, 1).
    indep_test : str
        One of :data:`INDEP_TESTS` (``"fisherz"`` for linear-Gaussian data, ``"kci"``
        for nonlinear, ``"chisq"``/``"gsq"`` for discrete).
    names : sequence of str, optional
        Node names (default: DataFrame columns or ``X0, X1, ...``).
    stable : bool
        Order-independent skeleton search.
    uc_rule, uc_priority : int
        How unshielded colliders are found and conflicts resolved (causal-learn's
        options).
    verbose : bool
        Show causal-learn's progress bar and messages.
    **kwargs
        Passed to ``causallearn.search.ConstraintBased.PC.pc`` (e.g. ``max_k``, or
        ``background_knowledge`` built on nodes named as ``names``).

    Returns
    -------
    graph : Graph
        CPDAG (``kind="cpdag"``).
    """
    from causallearn.search.ConstraintBased.PC import pc as cl_pc

    X, names = _prepare(data, names)
    alpha = _check_alpha(alpha)
    check_choice(indep_test, "indep_test", INDEP_TESTS)
    with _quiet(verbose):
        cg = cl_pc(
            X, alpha=alpha, indep_test=indep_test, stable=stable, uc_rule=uc_rule,
            uc_priority=uc_priority, verbose=verbose, show_progress=verbose, node_names=names,
            **kwargs,
        )
    return Graph.from_causallearn(cg, names=names, kind="cpdag")


def fci(
    data: Any,
    alpha: float = 0.05,
    indep_test: str = "fisherz",
    names: Sequence[str] | None = None,
    depth: int = -1,
    max_path_length: int = -1,
    verbose: bool = False,
    **kwargs: Any,
) -> Graph:
    """FCI algorithm (causal-learn ``fci``): a PAG allowing latent confounders.

    Parameters
    ----------
    data : array-like or DataFrame, shape (n_samples, n_variables)
        Observations.
    alpha : float
        Significance level, in (0, 1).
    indep_test : str
        One of :data:`INDEP_TESTS`.
    names : sequence of str, optional
        Node names.
    depth : int
        Maximum conditioning-set size of the adjacency search (-1: unlimited).
    max_path_length : int
        Maximum length of discriminating paths (-1: unlimited).
    verbose : bool
        Show causal-learn's progress bar and messages.
    **kwargs
        Passed to ``causallearn.search.ConstraintBased.FCI.fci``.

    Returns
    -------
    graph : Graph
        PAG (``kind="pag"``): edges ``-->``, ``<->``, ``o->``, ``o-o``, ...
    """
    from causallearn.search.ConstraintBased.FCI import fci as cl_fci

    X, names = _prepare(data, names)
    alpha = _check_alpha(alpha)
    check_choice(indep_test, "indep_test", INDEP_TESTS)
    depth = check_int(depth, "depth", min_value=-1)
    max_path_length = check_int(max_path_length, "max_path_length", min_value=-1)
    with _quiet(verbose):
        G, _ = cl_fci(
            X, independence_test_method=indep_test, alpha=alpha, depth=depth,
            max_path_length=max_path_length, verbose=verbose, show_progress=verbose,
            node_names=names, **kwargs,
        )
    return Graph.from_causallearn(G, names=names, kind="pag")


def cdnod(
    data: Any,
    domain_index: Any,
    alpha: float = 0.05,
    indep_test: str = "fisherz",
    names: Sequence[str] | None = None,
    domain_name: str = "domain",
    stable: bool = True,
    uc_rule: int = 0,
    uc_priority: int = 2,
    verbose: bool = False,
    **kwargs: Any,
) -> Graph:
    """CD-NOD (causal-learn ``cdnod``): causal discovery from heterogeneous data.

    The domain (or time) index is added as an extra variable ``C``; an edge
    ``C --> X_i`` means that the causal mechanism of ``X_i`` changes across domains,
    and these changes help orient edges among the variables.

    Parameters
    ----------
    data : array-like or DataFrame, shape (n_samples, n_variables)
        Observations pooled over domains.
    domain_index : array-like, shape (n_samples,)
        Domain label of each sample (at least 2 distinct values; any labels, coded
        0..n_domains-1 in sorted order; for a time index pass it numerically).
    alpha : float
        Significance level, in (0, 1).
    indep_test : str
        One of :data:`INDEP_TESTS` (``"kci"`` recommended for a time index).
    names : sequence of str, optional
        Node names of the variables.
    domain_name : str
        Name of the domain node (the last node of the returned graph).
    stable, uc_rule, uc_priority : see :func:`pc`.
    verbose : bool
        Show causal-learn's progress bar and messages.
    **kwargs
        Passed to ``causallearn.search.ConstraintBased.CDNOD.cdnod``.

    Returns
    -------
    graph : Graph
        CPDAG over the variables plus the domain node (last, ``n_variables + 1`` nodes).
    """
    from causallearn.search.ConstraintBased.CDNOD import cdnod as cl_cdnod

    X, names = _prepare(data, names)
    _, codes = check_domains(domain_index, X.shape[0], name="domain_index")
    alpha = _check_alpha(alpha)
    check_choice(indep_test, "indep_test", INDEP_TESTS)
    if str(domain_name) in names:
        raise ValueError(f"domain_name {domain_name!r} clashes with a variable name")
    c = codes.astype(float)[:, None]
    with _quiet(verbose):
        cg = cl_cdnod(
            X, c, alpha=alpha, indep_test=indep_test, stable=stable, uc_rule=uc_rule,
            uc_priority=uc_priority, verbose=verbose, show_progress=verbose, **kwargs,
        )
    return Graph.from_causallearn(cg, names=names + [str(domain_name)], kind="cpdag")


def ges(
    data: Any,
    score_func: str = "local_score_BIC",
    max_parents: int | None = None,
    lambda_value: float | None = None,
    names: Sequence[str] | None = None,
    parameters: dict[str, Any] | None = None,
    verbose: bool = False,
) -> Graph:
    """Greedy equivalence search (causal-learn ``ges``).

    Parameters
    ----------
    data : array-like or DataFrame, shape (n_samples, n_variables)
        Observations.
    score_func : str
        causal-learn score: ``"local_score_BIC"`` (linear-Gaussian), ``"local_score_BDeu"``
        (discrete), ``"local_score_CV_general"``, ``"local_score_marginal_general"``, ...
    max_parents : int, optional
        Maximum number of parents per node.
    lambda_value : float, optional
        BIC penalty weight (larger: sparser; causal-learn's default 0.5).
    names : sequence of str, optional
        Node names.
    parameters : dict, optional
        Extra score parameters (causal-learn's ``parameters``).
    verbose : bool
        Let causal-learn print.

    Returns
    -------
    graph : Graph
        CPDAG (``kind="cpdag"``).
    """
    from causallearn.search.ScoreBased.GES import ges as cl_ges

    X, names = _prepare(data, names)
    if max_parents is not None:
        max_parents = check_int(max_parents, "max_parents", min_value=0)
    if lambda_value is not None:
        lambda_value = check_float(lambda_value, "lambda_value", min_value=0.0)
    with _quiet(verbose):
        record = cl_ges(
            X, score_func=score_func, maxP=max_parents, parameters=parameters,
            lambda_value=lambda_value, node_names=names,
        )
    return Graph.from_causallearn(record, names=names, kind="cpdag")


def gin(
    data: Any,
    indep_test: str = "kci",
    alpha: float = 0.05,
    names: Sequence[str] | None = None,
    verbose: bool = False,
) -> Graph:
    """GIN (causal-learn ``GIN``): latent variables and their causal order.

    Linear non-Gaussian latent variable model where every observed variable is an
    indicator of latent variables (pure measurement model).

    Parameters
    ----------
    data : array-like or DataFrame, shape (n_samples, n_variables)
        Observed indicators.
    indep_test : {"kci", "hsic"}
        Independence test used for the GIN condition.
    alpha : float
        Significance level, in (0, 1).
    names : sequence of str, optional
        Names of the observed variables. Latent nodes are named ``L1, L2, ...``.
    verbose : bool
        Let causal-learn print.

    Returns
    -------
    graph : Graph
        Graph over the observed and latent nodes (``graph.latent`` flags the latents);
        latents are ordered causally (``L_a --> L_b``) where GIN found an order, and
        joined by ``---`` otherwise.
    """
    from causallearn.search.HiddenCausal.GIN.GIN import GIN as cl_gin

    X, names = _prepare(data, names, min_features=3)
    check_choice(indep_test, "indep_test", ["kci", "hsic"])
    alpha = _check_alpha(alpha)
    with _quiet(verbose):
        G, _ = cl_gin(X, indep_test_method=indep_test, alpha=alpha)
    return _rename_observed(Graph.from_causallearn(G, kind="cpdag"), names)


def rlcd(
    data: Any,
    alpha: float = 0.01,
    max_rank: int = 3,
    stage1_ges_sparsity: float = 0.5,
    names: Sequence[str] | None = None,
    verbose: bool = False,
    pass_names: bool = False,
    **kwargs: Any,
) -> Graph:
    """RLCD (causal-learn ``RLCD``): rank-based latent causal discovery (linear models).

    Finds latent variables, which observed variables they cause, and the causal
    structure among latents (and observed variables), up to an equivalence class.

    Parameters
    ----------
    data : array-like or DataFrame, shape (n_samples, n_variables)
        Observations.
    alpha : float
        Significance level of the rank tests at every rank, in (0, 1).
    max_rank : int
        Largest rank (cluster cardinality) searched (causal-learn's ``maxk``).
    stage1_ges_sparsity : float
        BIC penalty of the first (GES) stage; larger gives a sparser first stage.
    names : sequence of str, optional
        Names of the observed variables. Latent nodes are named as causal-learn names them
        (``L...``) and flagged in ``graph.latent``.
    verbose : bool
        Let causal-learn print.
    pass_names : bool
        Give ``names`` to causal-learn (its ``node_names``) instead of its default
        ``X1, X2, ...``. RLCD orders variables by name in its search, so the result may
        depend on the names; :func:`crl_neuro.psychometrics.baselines.run_causallearn`
        passes them (as causal-learn's RLCD is used as shipped there). Either way the
        observed nodes are the first ``n_variables`` nodes of the returned graph and
        only the nodes after them are flagged latent (causal-learn flags any node whose
        name starts with ``"L"``).
    **kwargs
        Passed to ``causallearn.search.HiddenCausal.RLCD``.

    Returns
    -------
    graph : Graph
        ``kind="cpdag"`` graph over observed and latent nodes.

    Notes
    -----
    causal-learn's RLCD runs its rank tests in parallel on all cores (joblib, loky).
    """
    from causallearn.search.HiddenCausal.RLCD import RLCD as cl_rlcd

    X, names = _prepare(data, names, min_features=3)
    alpha = _check_alpha(alpha)
    max_rank = check_int(max_rank, "max_rank", min_value=1)
    stage1_ges_sparsity = check_float(stage1_ges_sparsity, "stage1_ges_sparsity", min_value=0.0)
    alpha_dict = {k: alpha for k in range(max_rank + 1)}
    if pass_names:
        kwargs["node_names"] = list(names)
    with _quiet(verbose):
        cg = cl_rlcd(
            X, alpha_dict=alpha_dict, maxk=max_rank, stage1_ges_sparsity=stage1_ges_sparsity, **kwargs
        )
    graph = Graph.from_causallearn(cg, kind="cpdag")
    graph.latent = np.arange(graph.n_nodes) >= X.shape[1]  # observed variables come first
    return graph if pass_names else _rename_observed(graph, names)
