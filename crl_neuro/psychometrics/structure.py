"""Causal structure among latents: PC with rank-based CI tests, hidden latents, CPDAGs.

Adjacency convention of the package: ``G[a, b] != 0 and G[b, a] == 0`` means a → b,
both non-zero an undirected edge of the equivalence class.

Conditional independence of latents is tested on the items (RLCD, Dong et al.,
ICLR 2024): with pure indicators, ``La ⫫ Lb | LS`` holds iff the cross-covariance
between {items of La, one half of the items of each latent in S} and {items of Lb,
the other half} has rank ``|S|`` (t-separation). Each side's items are collapsed
into one-factor composites per latent first (:class:`CompositeTester`): the rank
constraints are unchanged and each test has 1 degree of freedom, hence power. A
latent without items shows up as a set of >= 4 latents that PC cannot separate but
whose items' cross-covariance has rank 1 across every split of the set in two pairs
(tetrad constraints of a one-factor model). Colliders are decided with the
separating set of largest p-value (PC-MaxP) and Meek's rules complete the class.
"""

from __future__ import annotations

from itertools import combinations
from typing import Callable

import numpy as np

# DAG -> CPDAG and Meek's rules live in the core; re-exported here for backward compatibility.
from crl_neuro.core.graphs import apply_meek_rules, cpdag_from_dag
from crl_neuro.psychometrics.rank_tests import RankTester

__all__ = [
    "cpdag_from_dag",
    "apply_meek_rules",
    "pc_skeleton",
    "orient_cpdag",
    "latent_ci_test",
    "CompositeTester",
    "find_hidden_latents",
    "learn_latent_structure",
]


def pc_skeleton(
    k: int,
    ci_pvalue: Callable[[int, int, tuple[int, ...]], float],
    alpha: float,
    max_cond: int | None = None,
    can_condition: Callable[[int], bool] | None = None,
) -> tuple[np.ndarray, dict[frozenset, tuple[int, ...]]]:
    """Adjacency phase of PC-stable.

    Parameters
    ----------
    k : int
        Number of nodes.
    ci_pvalue : callable
        ``ci_pvalue(a, b, S)`` returns the p-value of a ⫫ b | S.
    alpha : float
        Significance level.
    max_cond : int | None
        Largest conditioning set.
    can_condition : callable | None
        Whether a node may be in a conditioning set.

    Returns
    -------
    skeleton : ndarray of bool
        Symmetric adjacency.
    sepsets : dict
        frozenset({a, b}) -> separating set of every removed edge.
    """
    adj = ~np.eye(k, dtype=bool)
    sepsets: dict[frozenset, tuple[int, ...]] = {}
    depth = 0
    max_cond = k - 2 if max_cond is None else max_cond
    while depth <= max_cond:
        neighbours = {i: [j for j in np.flatnonzero(adj[i])] for i in range(k)}  # PC-stable
        any_testable = False
        for a in range(k):
            for b in neighbours[a]:
                if b <= a or not adj[a, b]:
                    continue
                for x, y in ((a, b), (b, a)):
                    pool = [c for c in neighbours[x] if c != y and (can_condition is None or can_condition(c))]
                    if len(pool) < depth:
                        continue
                    any_testable = True
                    removed = False
                    for S in combinations(sorted(pool), depth):
                        if ci_pvalue(a, b, S) > alpha:
                            adj[a, b] = adj[b, a] = False
                            sepsets[frozenset((a, b))] = S
                            removed = True
                            break
                    if removed:
                        break
        if not any_testable:
            break
        depth += 1
    return adj, sepsets


def _max_p_sepset(
    a: int,
    b: int,
    skeleton: np.ndarray,
    ci_pvalue: Callable[[int, int, tuple[int, ...]], float],
    testable: Callable[[int], bool],
    max_cond: int,
) -> tuple[int, ...] | None:
    """Separating set of a and b with the largest p-value (PC-MaxP, Ramsey 2016)."""
    pool_a = [c for c in np.flatnonzero(skeleton[a]) if c != b and testable(c)]
    pool_b = [c for c in np.flatnonzero(skeleton[b]) if c != a and testable(c)]
    best, best_p = None, -1.0
    for pool in (pool_a, pool_b):
        for d in range(0, min(len(pool), max_cond) + 1):
            for S in combinations(sorted(pool), d):
                p = ci_pvalue(a, b, S)
                if p > best_p:
                    best, best_p = S, p
    return best


def orient_cpdag(
    skeleton: np.ndarray,
    sepsets: dict[frozenset, tuple[int, ...]],
    ci_pvalue: Callable[[int, int, tuple[int, ...]], float] | None = None,
    testable: Callable[[int], bool] | None = None,
    max_cond: int = 3,
) -> np.ndarray:
    """Orient v-structures, then apply Meek's rules.

    With ``ci_pvalue`` the collider decision for an unshielded triple a - c - b uses
    the separating set of (a, b) with the largest p-value among the subsets of the
    neighbours of a or b (PC-MaxP), which is far less sensitive to one
    low-powered test than the first set PC happened to accept. Conflicting
    v-structures (an edge oriented both ways) leave the edge undirected rather than
    pick one at random: only what the tests support is oriented.
    """
    k = skeleton.shape[0]
    G = skeleton.astype(int)
    arrow = np.zeros((k, k), dtype=bool)  # arrow[a, c]: a → c implied by a v-structure
    cache: dict[frozenset, tuple[int, ...] | None] = {}
    for c in range(k):
        nb = np.flatnonzero(skeleton[c])
        for a, b in combinations(nb, 2):
            if skeleton[a, b]:
                continue
            key = frozenset((a, b))
            S = sepsets.get(key)
            if ci_pvalue is not None and testable is not None and testable(a) and testable(b) and testable(c):
                if key not in cache:
                    cache[key] = _max_p_sepset(a, b, skeleton, ci_pvalue, testable, max_cond)
                S = cache[key] if cache[key] is not None else S
            if S is not None and c not in S:
                arrow[a, c] = arrow[b, c] = True
    for a in range(k):
        for c in range(k):
            if arrow[a, c] and not arrow[c, a]:
                G[c, a] = 0
    return apply_meek_rules(G)


def _halves(items: list[int]) -> tuple[list[int], list[int]]:
    return items[0::2], items[1::2]


def _composite_weights(R: np.ndarray, items: list[int]) -> np.ndarray:
    """Bartlett weights (Psi^-1 lambda) of a one-factor composite of ``items``."""
    from crl_neuro.psychometrics.clustering import _one_factor

    if len(items) == 1:
        return np.ones(1)
    lam = _one_factor(R[np.ix_(items, items)])
    psi = np.clip(1 - lam ** 2, 0.05, None)
    return lam / psi


class CompositeTester:
    """Rank tests on one-factor composites of each latent's items.

    A weighted sum of pure indicators of one latent is itself a pure indicator of
    that latent, so every t-separation rank constraint among items holds among
    composites too; but the test has 1 degree of freedom per constraint instead
    of ``(p - r)(q - r)``, which gives far more power with several items per
    latent. For latent ``a`` the composites are: all its items (index ``a``), and
    two disjoint halves (``k + 2a`` and ``k + 2a + 1``) used when ``a`` is
    conditioned on (one half on each side of the cross-covariance).

    Parameters
    ----------
    R : ndarray
        Item correlation matrix.
    n : int
        Sample size.
    clusters : list of list of int
        Pure items of each latent.
    """

    def __init__(self, R: np.ndarray, n: int, clusters: list[list[int]]) -> None:
        k = len(clusters)
        W = np.zeros((R.shape[0], 3 * k))
        for a, items in enumerate(clusters):
            items = list(items)
            W[items, a] = _composite_weights(R, items)
            if len(items) >= 2:
                h1, h2 = _halves(items)
                W[h1, k + 2 * a] = _composite_weights(R, h1)
                W[h2, k + 2 * a + 1] = _composite_weights(R, h2)
        C = W.T @ R @ W
        d = np.sqrt(np.clip(np.diag(C), 1e-12, None))
        C = C / np.outer(d, d)
        self.k = k
        self.clusters = clusters
        self.tester = RankTester(C, n)

    @property
    def n_tests(self) -> int:
        """Number of distinct rank tests run."""
        return self.tester.n_tests

    def ci_pvalue(self, a: int, b: int, S: tuple[int, ...]) -> float:
        """p-value of La ⫫ Lb | LS (rank of the composites' cross-covariance <= |S|)."""
        left = [a] + [self.k + 2 * s for s in S]
        right = [b] + [self.k + 2 * s + 1 for s in S]
        return self.tester.pvalue(left, right, len(S))

    def rank_pvalue(self, left_latents, right_latents, rank: int) -> float:
        """p-value of rank(Cov[composites(left), composites(right)]) <= ``rank``."""
        return self.tester.pvalue(list(left_latents), list(right_latents), rank)


def latent_ci_test(tester: RankTester, clusters: list[list[int]]) -> Callable[[int, int, tuple[int, ...]], float]:
    """CI test among measured latents from rank constraints on their items.

    ``La ⫫ Lb | LS`` ⇔ rank Cov[items(a) ∪ half(S), items(b) ∪ other half(S)] <= |S|
    (items collapsed into one-factor composites, see :class:`CompositeTester`).
    """
    return CompositeTester(tester.R, tester.n, clusters).ci_pvalue


def find_hidden_latents(
    skeleton: np.ndarray,
    tester: "RankTester | CompositeTester",
    clusters: list[list[int]],
    alpha: float,
    max_size: int = 8,
) -> list[list[int]]:
    """Groups of measured latents that share a hidden common cause without items.

    A set of >= 4 latents is explained by one latent when, for every 4-subset and
    each of its 3 splits into two pairs, the items' cross-covariance between the
    pairs has rank 1 (not rejected at ``alpha``) while rank 0 is rejected
    (tetrad constraints of a one-factor model). The common cause is *hidden* when
    no measured latent accounts for it, i.e. when PC could not separate every
    pair of the set by measured latents (some pair stays adjacent in
    ``skeleton``). 4-sets are grown greedily into maximal groups; a latent joins
    at most one group.
    """
    k = len(clusters)
    comp = tester if isinstance(tester, CompositeTester) else CompositeTester(tester.R, tester.n, clusters)

    def quad_ok(quad) -> bool:
        # The one-factor null is the conjunction of the 3 tetrad constraints:
        # Bonferroni over them keeps its level at alpha.
        for j in (1, 2, 3):
            s1 = [quad[0], quad[j]]
            s2 = [q for q in quad[1:] if q != quad[j]]
            if comp.rank_pvalue(s1, s2, 1) <= alpha / 3 or comp.rank_pvalue(s1, s2, 0) > alpha:
                return False
        return True

    used: set[int] = set()
    groups: list[list[int]] = []
    for quad in combinations(range(k), 4):
        if used & set(quad) or not quad_ok(quad):
            continue
        group = list(quad)
        for c in range(k):
            if c in group or c in used or len(group) >= max_size:
                continue
            if all(quad_ok(tuple(sorted(q + (c,)))) for q in combinations(group, 3)):
                group.append(c)
        sub = skeleton[np.ix_(group, group)]
        if not sub.any():
            continue  # a measured latent already separates them (e.g. a measured fork)
        groups.append(sorted(group))
        used.update(group)
    return groups


def learn_latent_structure(
    tester: RankTester,
    clusters: list[list[int]],
    alpha: float = 0.01,
    max_cond: int | None = 3,
    detect_hidden: bool = True,
) -> tuple[np.ndarray, int, list[list[int]]]:
    """Equivalence class of the latent structure (measured latents then hidden ones).

    Parameters
    ----------
    tester : RankTester
        Rank tests on the item correlation matrix.
    clusters : list of list of int
        Pure item indices of each measured latent (>= 2 each).
    alpha : float
        Significance level of every rank test.
    max_cond : int | None
        Largest conditioning set in PC.
    detect_hidden : bool
        Whether to look for latents without items.

    Returns
    -------
    cpdag : ndarray of int, shape (k + h, k + h)
        Package convention; the last ``h`` nodes are hidden latents.
    h : int
        Number of hidden latents found.
    groups : list of list of int
        Measured latents caused by each hidden latent.
    """
    k = len(clusters)
    comp = CompositeTester(tester.R, tester.n, clusters)
    ci = comp.ci_pvalue
    skel, sepsets = pc_skeleton(
        k, ci, alpha, max_cond=max_cond, can_condition=lambda c: len(clusters[c]) >= 2
    )
    groups = find_hidden_latents(skel, comp, clusters, alpha) if detect_hidden else []
    tester.n_tests += comp.n_tests
    h = len(groups)
    full = np.zeros((k + h, k + h), dtype=bool)
    full[:k, :k] = skel
    for g_i, group in enumerate(groups):
        hnode = k + g_i
        for a, b in combinations(group, 2):
            full[a, b] = full[b, a] = False
            sepsets[frozenset((a, b))] = (hnode,)
        for a in group:
            full[a, hnode] = full[hnode, a] = True
        # A hidden latent's separation from an outside latent y is read off its
        # children: take the separating set of y with a child not adjacent to y.
        for y in range(k):
            if y in group:
                continue
            for a in group:
                key = frozenset((a, y))
                if not full[a, y] and key in sepsets:
                    sepsets[frozenset((hnode, y))] = sepsets[key]
                    break
    in_group = {a for g in groups for a in g}
    # max-P sepsets only among measured latents outside hidden groups, whose
    # separation the item-level test can express
    testable = lambda c: c < k and c not in in_group and len(clusters[c]) >= 2  # noqa: E731
    cpdag = orient_cpdag(full, sepsets, ci_pvalue=ci, testable=testable,
                         max_cond=k if max_cond is None else max_cond)
    return cpdag, h, groups
