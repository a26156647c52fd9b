"""Which causal mechanisms and which causal strengths change across domains.

In a linear structural causal model ``z_j = sum_{i in pa(j)} b_ij^(d) z_i + e_j^(d)``
with innovation variances ``omega_j^(d)``, the precision matrix of ``z`` changes
whenever *any* innovation variance changes, so a change of a precision entry
cannot tell "the connection i -> j changed" from "source j got louder". The
quantities that carry the causal meaning are the regression coefficients of
each variable on its causes (its mechanism) and the innovation variances; as in
CD-NOD (Huang et al., JMLR 2020) they are read off given a causal order:

1. **Causal order from the changes.** Among the orders of the variables, keep the
   one under which the data are best explained with *shared* coefficients and
   free per-domain variances: the sum over variables of the likelihood-ratio
   statistic for equal coefficients, each variable regressed on its
   Markov-network neighbours that precede it. Under the true order a mechanism
   whose strength is fixed keeps its coefficients when variances change, while
   reversing an edge makes the coefficient depend on the variances; when
   strengths do change the true order needs the fewest changes (minimal-change
   principle). Exact dynamic programming over subsets up to
   ``_MAX_EXACT`` variables, a greedy sink-first order beyond.
2. **Per edge**, two tests that must both reject (intersection-union test, so
   the p-value is the larger of the two):

   - the per-domain coefficient of the oriented edge with its standard error
     (ordinary least squares on the domain's covariance with the effective
     sample size), heterogeneity across domains by the generalised Cochran Q of
     a random-effects model, ``H0: tau <= min_change`` (``tau`` the standard
     deviation of the strength across domains);
   - a test that does not depend on the order nor on a fixed linear misfit of
     estimated variables (an imperfect unmixing): correlations of the
     innovations of the two variables, from the approximate joint
     diagonaliser of the domain covariances, ``H0: RMS correlation <= min_change``
     (see :func:`_innovation_correlation_test`).

   Estimated variables (sources from an unmixing) carry a fixed leakage of the
   others; as powers change, that leakage alone moves regression coefficients,
   and long recordings make any such move significant. The second test is
   blind to it, and ``min_change > 0`` asks for a change of a size that matters.
   The effect size ``tau`` (Paule-Mandel estimate) is reported with a Q-profile
   confidence interval (Viechtbauer 2007), which always contains it. Coefficients
   are in the units of the variables (standardised variables give standardised
   strengths). Edges of the network
   that join two causes of a common effect (moral edges) get a coefficient near
   0 in every domain and are not flagged.
3. **Per variable** (``changing_sources``): likelihood-ratio test that the whole
   mechanism (coefficients and innovation variance) is the same in every domain.

Both families are FDR-controlled (Benjamini-Hochberg over the tested edges, and
over the variables).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import optimize, stats
from sklearn.utils import Bunch

from crl_neuro.core.validation import check_float

__all__ = ["causal_order_from_changes", "fdr_edges", "mechanism_changes"]

# Between-domain SD of a standardised coefficient above which a change counts as one
# whole change when choosing the causal order (capped-L1 surrogate of the count).
_CHANGE_SCALE = 0.1
# Largest number of variables for which the causal order is searched exactly.
_MAX_EXACT = 14


def _as_pairwise_n(n_eff: Any, shape: tuple[int, int, int]) -> np.ndarray:
    n = np.asarray(n_eff, float)
    if n.ndim == 1 and n.shape[0] == shape[0]:
        n = np.broadcast_to(n[:, None, None], shape)
    if n.shape != shape:
        raise ValueError(f"n_eff must have shape ({shape[0]},) or {shape}, got {n.shape}")
    if not np.all(np.isfinite(n)) or np.any(n <= 0):
        raise ValueError("n_eff must be finite and > 0")
    return np.ascontiguousarray(n)


def _ols(C: np.ndarray, j: int, P: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-domain regression of variable ``j`` on ``P``: coefficients, residual variances, inverse Gram."""
    if P.size == 0:
        return np.zeros((C.shape[0], 0)), C[:, j, j].copy(), np.zeros((C.shape[0], 0, 0))
    Cpp = C[:, P[:, None], P[None, :]]
    inv = np.linalg.inv(Cpp)
    beta = np.einsum("dab,db->da", inv, C[:, P, j])
    s2 = C[:, j, j] - np.einsum("da,da->d", beta, C[:, P, j])
    return beta, np.maximum(s2, 1e-12 * C[:, j, j]), inv


def _change_cost(C: np.ndarray, n: np.ndarray, j: int, P: np.ndarray) -> float:
    """How much the mechanism of ``j`` given ``P`` changes: summed between-domain SDs of its coefficients.

    An effect size, not a test statistic: it does not grow with the sample size,
    so small misfits of estimated variables (which make every statistic
    significant in long recordings) do not outweigh real changes.
    """
    if P.size == 0:
        return 0.0
    beta, s2, inv = _ols(C, j, P)
    cost = 0.0
    for a, i in enumerate(P):
        tau = np.sqrt(_tau2_dl(beta[:, a], s2 * inv[:, a, a] / n[:, i, j]))
        # Capped L1: a count of changing coefficients (minimal change) whose
        # small, sub-threshold part is an effect size (robust to misfit).
        cost += min(tau, _CHANGE_SCALE) / _CHANGE_SCALE + 1e-3 * tau
    return float(cost)


def causal_order_from_changes(
    covs: np.ndarray, n_eff: Any, network: np.ndarray
) -> np.ndarray:
    """Causal order of the variables chosen by the minimal-change principle.

    Parameters
    ----------
    covs : ndarray, shape (n_domains, k, k)
        Per-domain covariances of the variables.
    n_eff : ndarray, shape (n_domains,) or (n_domains, k, k)
        Effective sample sizes (per domain, or per domain and pair).
    network : ndarray, shape (k, k) bool
        Markov network; each variable is regressed on its neighbours that
        precede it.

    Returns
    -------
    order : ndarray, shape (k,)
        Variables from first (causes) to last (effects).
    """
    C = np.asarray(covs, float)
    D, k, _ = C.shape
    n = _as_pairwise_n(n_eff, C.shape)
    # Unit pooled variances: change sizes comparable between the two directions of an edge.
    sd = np.sqrt(np.einsum("dii->i", C) / D)
    C = C / (sd[:, None] * sd[None, :])
    net = np.asarray(network, bool)
    nbrs = [np.flatnonzero(net[j]) for j in range(k)]
    cache: dict[tuple[int, int], float] = {}

    def score(j: int, before_mask: int) -> float:
        pa_mask = before_mask & sum(1 << int(i) for i in nbrs[j])
        key = (j, pa_mask)
        if key not in cache:
            P = np.array([i for i in nbrs[j] if pa_mask >> int(i) & 1], int)
            cache[key] = _change_cost(C, n, j, P)
        return cache[key]

    if k <= _MAX_EXACT:
        full = (1 << k) - 1
        best = np.full(1 << k, np.inf)
        prev = np.full(1 << k, -1, int)
        best[0] = 0.0
        for S in range(1 << k):
            if not np.isfinite(best[S]):
                continue
            for j in range(k):
                if S >> j & 1:
                    continue
                T = S | (1 << j)
                val = best[S] + score(j, S)
                if val < best[T] - 1e-12:
                    best[T], prev[T] = val, j
        order, S = [], full
        while S:
            j = int(prev[S])
            order.append(j)
            S &= ~(1 << j)
        return np.array(order[::-1], int)
    # Greedy: repeatedly place last the variable best explained by all the others left.
    left = list(range(k))
    order_rev = []
    while left:
        mask = sum(1 << i for i in left)
        costs = [score(j, mask & ~(1 << j)) for j in left]
        j = left[int(np.argmin(costs))]
        order_rev.append(j)
        left.remove(j)
    return np.array(order_rev[::-1], int)


def _q_generalised(beta: np.ndarray, se2: np.ndarray, tau2: float) -> float:
    w = 1.0 / (se2 + tau2)
    mean = np.sum(w * beta) / np.sum(w)
    return float(np.sum(w * (beta - mean) ** 2))


def _tau2_dl(beta: np.ndarray, se2: np.ndarray) -> float:
    """DerSimonian-Laird estimate of the between-domain variance of ``beta`` (closed form)."""
    w = 1.0 / se2
    q0 = _q_generalised(beta, se2, 0.0)
    return max(0.0, (q0 - (beta.size - 1)) / (w.sum() - np.sum(w**2) / w.sum()))


def _tau_interval(beta: np.ndarray, se2: np.ndarray, level: float) -> tuple[float, float, float]:
    """Paule-Mandel estimate of the between-domain SD and its Q-profile interval.

    Both solve ``Q(tau^2) = target`` for the generalised Q statistic (decreasing in
    ``tau^2``): the estimate at its expectation ``df``, the bounds at the chi-square
    quantiles, so the estimate always lies inside its interval (a
    DerSimonian-Laird estimate need not).
    """
    df = beta.size - 1
    q0 = _q_generalised(beta, se2, 0.0)
    hi_q, lo_q = stats.chi2.ppf((1 + level) / 2, df), stats.chi2.ppf((1 - level) / 2, df)
    top = 10.0 * (np.var(beta) + se2.max()) + 1e-12

    def root(target: float) -> float:
        if q0 <= target:
            return 0.0
        if _q_generalised(beta, se2, top) >= target:
            return top
        return float(optimize.brentq(lambda t: _q_generalised(beta, se2, t) - target, 0.0, top))

    return float(np.sqrt(root(df))), float(np.sqrt(root(hi_q))), float(np.sqrt(root(lo_q)))


def _innovation_correlation_test(
    C: np.ndarray, n: np.ndarray, network: np.ndarray, min_change: float
) -> np.ndarray:
    """Edge-change p-values that are invariant to a fixed misfit of the variables.

    When no causal strength changes, every domain covariance is ``M Omega_d M^T``
    with one ``M`` (the innovations are a fixed linear map of the variables), and
    so is the covariance of *any* fixed linear transform of the variables: a
    joint diagonaliser exists whatever the estimation error of an unmixing. If
    the strength of i -> j changes in domain d, the innovation of j picks up
    ``Delta_d z_i`` there and its correlation with the innovation of i departs
    from 0. The test: innovations from the approximate joint diagonaliser, matched
    to the variables, Fisher-z of their per-domain correlations,
    ``Q = sum_d n_d z_d^2`` against chi-square with ``n_domains - 2`` degrees of
    freedom (two mixing coefficients per pair are fitted). ``min_change`` shifts
    the null to RMS correlations of that size (non-central chi-square).

    Returns the p-values (1 off the network, and everywhere with 2 domains,
    where a joint diagonaliser always exists).
    """
    from scipy.optimize import linear_sum_assignment

    from crl_neuro.core.joint_sparse import pham_ajd

    D, k, _ = C.shape
    w = np.exp(np.mean(np.log(n), axis=(1, 2)))
    U = pham_ajd(C, weights=w)
    sd = np.sqrt(np.einsum("dii->i", C) / D)
    rows, cols = linear_sum_assignment(-np.abs(U * sd[None, :]))
    U = U[rows[np.argsort(cols)]]  # row j: innovation of variable j
    Ci = np.einsum("ia,dab,jb->dij", U, C, U)
    dg = np.sqrt(np.einsum("dii->di", Ci))
    R = np.clip(Ci / (dg[:, :, None] * dg[:, None, :]), -0.999999, 0.999999)
    z = np.arctanh(R)
    Q = np.sum(n * z**2, axis=0)
    df = D - 2
    if df < 1:
        return np.ones((k, k))
    nc = np.sum(n, axis=0) * np.arctanh(min(min_change, 0.999)) ** 2
    p = stats.ncx2.sf(Q, df, nc) if min_change > 0 else stats.chi2.sf(Q, df)
    p = np.where(network, p, 1.0)
    np.fill_diagonal(p, 1.0)
    return p


def _bh(p: np.ndarray, alpha: float) -> np.ndarray:
    if p.size == 0:
        return np.zeros(0, bool)
    return stats.false_discovery_control(p, method="bh") <= alpha


def fdr_edges(pvalues: np.ndarray, network: np.ndarray, alpha: float = 0.05) -> np.ndarray:
    """Edges of ``network`` whose p-value passes Benjamini-Hochberg at ``alpha``.

    Parameters
    ----------
    pvalues : ndarray, shape (k, k)
        Symmetric p-values (the upper triangle is read).
    network : ndarray, shape (k, k) bool
        Edges tested; the FDR is controlled over them.
    alpha : float
        FDR level.

    Returns
    -------
    flags : ndarray, shape (k, k) bool
        Symmetric mask of the edges declared.
    """
    k = pvalues.shape[0]
    iu = np.triu_indices(k, 1)
    tested = np.asarray(network, bool)[iu]
    flags = np.zeros(iu[0].size, bool)
    flags[tested] = _bh(np.asarray(pvalues)[iu][tested], alpha)
    out = np.zeros((k, k), bool)
    out[iu] = flags
    return out | out.T


def mechanism_changes(
    covs: np.ndarray,
    n_eff: Any,
    network: np.ndarray,
    alpha: float = 0.05,
    min_change: float = 0.0,
    ci_level: float = 0.95,
    order: Any = None,
) -> Bunch:
    """Test which causal strengths and which mechanisms change across domains.

    See the module docstring for the model and the tests.

    Parameters
    ----------
    covs : ndarray, shape (n_domains, k, k)
        Per-domain covariances of the (noise-free) variables.
    n_eff : ndarray, shape (n_domains,) or (n_domains, k, k)
        Effective sample sizes (autocorrelation-corrected), per domain or per
        domain and pair.
    network : ndarray, shape (k, k) bool
        Markov network of the variables; its edges are tested.
    alpha : float
        FDR level of both families of tests.
    min_change : float
        Smallest change that counts: between-domain standard deviation of a
        strength (``H0: tau <= min_change``) and RMS correlation of the two
        innovations; 0 tests for any change.
    ci_level : float
        Coverage of the confidence intervals.
    order : array-like | None
        Causal order to use; ``None`` chooses it with
        :func:`causal_order_from_changes`.

    Returns
    -------
    result : sklearn.utils.Bunch
        ``order`` (k,); ``dag`` (k, k) bool, ``[i, j]`` means i -> j (the network
        oriented by the order); ``strengths`` (n_domains, k, k) coefficient of i in
        the mechanism of j (0 off the DAG) and ``strengths_se``; ``changing_edges``
        (k, k) bool symmetric; ``edge_pvalues`` (k, k) (1 off the network), the
        larger of ``edge_pvalues_strength`` and ``edge_pvalues_innovation``;
        ``edge_change`` (k, k) between-domain SD of the strength and
        ``edge_change_ci`` (2, k, k); ``changing_sources`` (k,) bool and
        ``source_pvalues`` (k,); ``innovation_variances`` (n_domains, k).
    """
    check_float(alpha, "alpha", min_value=0.0, max_value=1.0, inclusive=False)
    check_float(min_change, "min_change", min_value=0.0, max_value=1.0)
    check_float(ci_level, "ci_level", min_value=0.0, max_value=1.0, inclusive=False)
    C = np.asarray(covs, float)
    if C.ndim != 3 or C.shape[1] != C.shape[2]:
        raise ValueError(f"covs must have shape (n_domains, k, k), got {C.shape}")
    if not np.all(np.isfinite(C)):
        raise ValueError("covs must be finite")
    D, k, _ = C.shape
    if D < 2:
        raise ValueError(f"covs must hold at least 2 domains to test changes, got {D}")
    n = _as_pairwise_n(n_eff, C.shape)
    net = np.asarray(network, bool)
    if net.shape != (k, k):
        raise ValueError(f"network must have shape ({k}, {k}), got {net.shape}")
    net = (net | net.T) & ~np.eye(k, dtype=bool)
    if order is None:
        order = causal_order_from_changes(C, n, net)
    order = np.asarray(order, int)
    if sorted(order.tolist()) != list(range(k)):
        raise ValueError(f"order must be a permutation of 0..{k - 1}, got {order.tolist()}")
    rank = np.empty(k, int)
    rank[order] = np.arange(k)
    dag = net & (rank[:, None] < rank[None, :])

    strengths = np.zeros((D, k, k))
    se = np.zeros((D, k, k))
    omega = np.zeros((D, k))
    edge_p = np.ones((k, k))
    tau = np.zeros((k, k))
    tau_ci = np.zeros((2, k, k))
    src_p = np.ones(k)
    pooled_w = n[:, np.arange(k), np.arange(k)]  # variance-effective sizes
    for j in range(k):
        P = np.flatnonzero(dag[:, j])
        beta, s2, inv = _ols(C, j, P)
        omega[:, j] = s2
        for a, i in enumerate(P):
            strengths[:, i, j] = beta[:, a]
            se2 = s2 * inv[:, a, a] / n[:, i, j]
            se[:, i, j] = np.sqrt(se2)
            q = _q_generalised(beta[:, a], se2, min_change**2)
            edge_p[i, j] = edge_p[j, i] = stats.chi2.sf(q, D - 1)
            t, lo, hi = _tau_interval(beta[:, a], se2, ci_level)
            tau[i, j] = tau[j, i] = t
            tau_ci[:, i, j] = tau_ci[:, j, i] = (lo, hi)
        # Whole-mechanism test: common coefficients and variance vs free per domain.
        nj = pooled_w[:, j]
        Cbar = np.einsum("d,dab->ab", nj, C) / nj.sum()
        _, s2_common, _ = _ols(Cbar[None], j, P)
        lr = float(nj.sum() * np.log(s2_common[0]) - np.sum(nj * np.log(s2)))
        src_p[j] = stats.chi2.sf(max(lr, 0.0), (D - 1) * (P.size + 1))

    # Intersection-union test: a change is declared only when both the strength
    # given the order and the misfit-invariant innovation test see it.
    p_strength = edge_p
    p_innov = _innovation_correlation_test(C, n, net, min_change)
    edge_p = np.maximum(p_strength, p_innov)
    return Bunch(
        order=order, dag=dag, strengths=strengths, strengths_se=se,
        changing_edges=fdr_edges(edge_p, net, alpha), edge_pvalues=edge_p,
        edge_pvalues_strength=p_strength, edge_pvalues_innovation=p_innov, edge_change=tau, edge_change_ci=tau_ci,
        changing_sources=_bh(src_p, alpha), source_pvalues=src_p, innovation_variances=omega,
    )
