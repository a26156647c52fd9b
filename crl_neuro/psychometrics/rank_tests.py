"""Rank tests of cross-covariance submatrices (canonical correlations, Bartlett's χ²).

In a linear latent-variable model the rank of the cross-covariance between two
sets of items equals the size of the smallest set of (latent) variables that
t-separates them (Sullivant, Talaska & Draisma 2010). RLCD (Dong et al., ICLR 2024)
reads the latent structure off such rank deficiencies. Everything here works on a
correlation matrix, so pairwise deletion of missing answers is supported.
"""

from __future__ import annotations

import numpy as np
from scipy import stats

__all__ = ["correlation_matrix", "canonical_correlations", "rank_test_pvalue", "RankTester"]


def correlation_matrix(X: np.ndarray, missing: str = "pairwise") -> tuple[np.ndarray, int]:
    """Item correlation matrix and the effective sample size.

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_items)
        Responses; NaN marks a missing answer.
    missing : {"pairwise", "listwise"}
        Pairwise deletion uses every pair of answers available (the effective
        sample size is then the smallest pairwise count); listwise deletion drops
        respondents with any missing answer.

    Returns
    -------
    R : ndarray, shape (n_items, n_items)
        Correlation matrix, projected to be positive definite.
    n_eff : int
        Sample size to use in tests.
    """
    obs = ~np.isnan(X)
    if missing == "listwise" or obs.all():
        Xc = X[obs.all(axis=1)]
        n_eff = Xc.shape[0]
        R = np.corrcoef(Xc, rowvar=False)
    else:
        M = obs.astype(float)
        Z = np.where(obs, X, 0.0)
        counts = M.T @ M
        s1 = Z.T @ M  # sum of x_i over rows where both observed
        s2 = (Z ** 2).T @ M
        sxy = Z.T @ Z
        with np.errstate(invalid="ignore", divide="ignore"):
            mx = s1 / counts
            my = s1.T / counts
            cov = sxy / counts - mx * my
            vx = s2 / counts - mx ** 2
            vy = s2.T / counts - my ** 2
            R = cov / np.sqrt(vx * vy)
        np.fill_diagonal(R, 1.0)
        n_eff = int(counts.min())
    R = np.nan_to_num(R, nan=0.0)
    R = (R + R.T) / 2
    w, V = np.linalg.eigh(R)
    if w.min() < 1e-6:
        # pairwise deletion can give an indefinite matrix: clip the spectrum
        w = np.clip(w, 1e-6, None)
        R = (V * w) @ V.T
        d = np.sqrt(np.diag(R))
        R = R / np.outer(d, d)
    return R, n_eff


def canonical_correlations(R: np.ndarray, a: list[int] | np.ndarray, b: list[int] | np.ndarray) -> np.ndarray:
    """Canonical correlations between item sets ``a`` and ``b`` from a correlation matrix.

    Items in both sets are allowed (they contribute a canonical correlation of 1,
    i.e. one unit of rank, as conditioning on them should).
    """
    a = np.asarray(a, dtype=int)
    b = np.asarray(b, dtype=int)
    Raa = R[np.ix_(a, a)]
    Rbb = R[np.ix_(b, b)]
    Rab = R[np.ix_(a, b)]
    La = np.linalg.cholesky(Raa + 1e-10 * np.eye(len(a)))
    Lb = np.linalg.cholesky(Rbb + 1e-10 * np.eye(len(b)))
    K = np.linalg.solve(La, Rab)
    K = np.linalg.solve(Lb, K.T).T
    s = np.linalg.svd(K, compute_uv=False)
    return np.clip(s, 0.0, 1.0 - 1e-12)


def rank_test_pvalue(R: np.ndarray, a, b, rank: int, n: int) -> float:
    """p-value of H0: rank(Cov[a, b]) <= ``rank`` (Bartlett's χ² on canonical correlations).

    Parameters
    ----------
    R : ndarray
        Correlation matrix.
    a, b : sequence of int
        Item indices of the two sides.
    rank : int
        Rank under the null hypothesis.
    n : int
        Sample size.

    Returns
    -------
    p : float
        Small values reject the rank deficiency.
    """
    p, q = len(a), len(b)
    if rank >= min(p, q):
        return 1.0
    rho = canonical_correlations(R, a, b)
    stat = -(n - 1 - 0.5 * (p + q + 1)) * np.sum(np.log1p(-rho[rank:] ** 2))
    df = (p - rank) * (q - rank)
    return float(stats.chi2.sf(max(stat, 0.0), df))


class RankTester:
    """Cached rank tests on one correlation matrix.

    Parameters
    ----------
    R : ndarray
        Item correlation matrix.
    n : int
        Effective sample size.
    """

    def __init__(self, R: np.ndarray, n: int) -> None:
        self.R = R
        self.n = int(n)
        self._cache: dict[tuple, float] = {}
        self.n_tests = 0

    def pvalue(self, a, b, rank: int) -> float:
        """p-value of rank(Cov[a, b]) <= ``rank``."""
        key = (tuple(sorted(a)), tuple(sorted(b)), rank)
        if key not in self._cache:
            self.n_tests += 1
            self._cache[key] = rank_test_pvalue(self.R, sorted(a), sorted(b), rank, self.n)
        return self._cache[key]
