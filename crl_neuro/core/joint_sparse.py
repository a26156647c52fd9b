"""Linear engine of :class:`~crl_neuro.core.multidist.MultiDistributionCRL` (numpy only).

Pham's approximate joint diagonalisation of the domain covariances, the sparsity search
over the unmixing, the joint-sparse (group graphical lasso) alternation that estimates
the latent Markov network, effective sample sizes, and :func:`fit_linear_multidomain`,
which chains them. :mod:`crl_neuro.core.multidist` (the estimator),
:mod:`crl_neuro.core.nonlinear` (the refinement of the VAE's latents) and
:mod:`crl_neuro.core.changes` import from here, so none of them imports another's
estimator (no import cycle). The method is described in
:mod:`crl_neuro.core.multidist`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crl_neuro.core.validation import check_data

__all__ = [
    "pham_ajd",
    "sparsity_search",
    "fit_joint_sparse",
    "effective_n",
    "fit_linear_multidomain",
    "signal_subspace",
    "change_subspace",
    "theory_penalty_level",
]

_REWEIGHT = True
_EPS_FACTOR = 3.0


# --------------------------------------------------------------------------- #
# Approximate joint diagonalisation
# --------------------------------------------------------------------------- #
def pham_ajd(
    covs: np.ndarray,
    weights: np.ndarray | None = None,
    max_iter: int = 200,
    tol: float = 1e-8,
) -> np.ndarray:
    """Approximate joint diagonalisation of SPD matrices (Pham's criterion).

    Minimises ``sum_d w_d [log det diag(B C_d B^T) - log det(B C_d B^T)]`` over
    non-orthogonal ``B`` by successive 2x2 (pairwise) Newton-like transforms,
    following D.-T. Pham, "Joint approximate diagonalization of positive definite
    Hermitian matrices", SIAM J. Matrix Anal. Appl. 22 (2001).

    Parameters
    ----------
    covs : ndarray, shape (n_matrices, k, k)
        Symmetric positive definite matrices.
    weights : ndarray, shape (n_matrices,) | None
        Non-negative weights (normalised internally); uniform by default.
    max_iter : int
        Maximum number of sweeps over all pairs.
    tol : float
        Stop when the decrease of the criterion in a sweep is below ``tol``.

    Returns
    -------
    B : ndarray, shape (k, k)
        Joint diagonaliser; rows scaled so that the weighted mean of
        ``diag(B C_d B^T)`` is one.
    """
    C = np.array(covs, dtype=float, copy=True)
    D, k, _ = C.shape
    w = np.ones(D) if weights is None else np.asarray(weights, float)
    w = w / w.sum()
    B = np.eye(k)
    for _sweep in range(max_iter):
        decr = 0.0
        for i in range(1, k):
            for j in range(i):
                ci = C[:, i, i]
                cj = C[:, j, j]
                g12 = np.sum(w * C[:, i, j] / ci)
                g21 = np.sum(w * C[:, i, j] / cj)
                o21 = np.sum(w * ci / cj)
                o12 = np.sum(w * cj / ci)
                omega = np.sqrt(o12 * o21)
                t = np.sqrt(o21 / o12)
                t1 = (t * g12 + g21) / (omega + 1.0)
                t2 = (t * g12 - g21) / max(omega - 1.0, 1e-9)
                h12 = t1 + t2
                h21 = (t1 - t2) / t
                decr += (g12 * h12 + g21 * h21) / 2.0
                s = 1.0 + np.sqrt(max(1.0 - h12 * h21, 0.0))
                T = np.array([[1.0, -h12 / s], [-h21 / s, 1.0]])
                idx = [i, j]
                C[:, idx, :] = np.einsum("ab,dbk->dak", T, C[:, idx, :])
                C[:, :, idx] = np.einsum("dkb,ab->dka", C[:, :, idx], T)
                B[idx, :] = T @ B[idx, :]
        if decr < tol:
            break
    scale = np.sqrt(np.einsum("d,dii->i", w, C))
    return B / scale[:, None]


# --------------------------------------------------------------------------- #
# Group graphical lasso across domains
# --------------------------------------------------------------------------- #
def _group_glasso(
    S: np.ndarray,
    pi: np.ndarray,
    lam: Any,
    init: tuple[np.ndarray, np.ndarray] | None = None,
    max_iter: int = 300,
    tol: float = 1e-5,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """ADMM for ``sum_d pi_d [tr(S_d T_d) - logdet T_d] + lam sum_{i!=j} ||T_.ij||_2``.

    Returns the sparse precisions ``Z``, the dual ``U`` (for warm starts) and the
    support (k, k) bool.
    """
    D, k, _ = S.shape
    rho = 1.0 / D
    off = ~np.eye(k, dtype=bool)
    if init is None:
        Z = np.array([np.diag(1.0 / np.diag(s)) for s in S])
        U = np.zeros_like(S)
    else:
        Z, U = (a.copy() for a in init)
    for _ in range(max_iter):
        M = rho * (Z - U) - pi[:, None, None] * S
        e, Q = np.linalg.eigh(M)
        th = (e + np.sqrt(e**2 + 4.0 * rho * pi[:, None])) / (2.0 * rho)
        Theta = np.einsum("dik,dk,djk->dij", Q, th, Q)
        A = Theta + U
        nrm = np.sqrt(np.sum(A**2, axis=0))
        shrink = np.where(off, np.maximum(0.0, 1.0 - (lam / rho) / np.maximum(nrm, 1e-300)), 1.0)
        Z_old = Z
        Z = A * shrink[None]
        U = A - Z
        r = np.linalg.norm(Theta - Z) / max(np.linalg.norm(Z), 1e-12)
        s = np.linalg.norm(Z - Z_old) / max(np.linalg.norm(Z), 1e-12)
        if r < tol and s < tol:
            break
    support = np.sqrt(np.sum(Z**2, axis=0)) > 0
    np.fill_diagonal(support, False)
    return Z, U, support


def _w_step(
    W: np.ndarray, C: np.ndarray, Theta: np.ndarray, pi: np.ndarray, prior: np.ndarray | None
) -> np.ndarray:
    """One exact block-coordinate sweep over the rows of ``W``.

    For row ``i`` the objective is ``w^T M w + 2 b^T w - 2 log|a^T w|`` (``a`` the
    cofactor direction of ``det W``), minimised in closed form: ``w = M^{-1}(a/t - b)``
    with ``t`` a root of ``t^2 + beta t - alpha = 0``.
    """
    W = W.copy()
    k = W.shape[0]
    for i in range(k):
        M = np.einsum("d,d,dab->ab", pi, Theta[:, i, i], C)
        if prior is not None:
            M = M + prior[i]
        others = np.delete(np.arange(k), i)
        # v_d = sum_{j != i} Theta_d[i, j] w_j
        V = np.einsum("dj,jb->db", Theta[:, i, others], W[others])
        b = np.einsum("d,dab,db->a", pi, C, V)
        a = np.linalg.inv(W)[:, i]
        Mi_a = np.linalg.solve(M, a)
        Mi_b = np.linalg.solve(M, b)
        alpha = float(a @ Mi_a)
        beta = float(a @ Mi_b)
        disc = np.sqrt(beta**2 + 4.0 * alpha)
        best, best_val = None, np.inf
        for t in ((-beta + disc) / 2.0, (-beta - disc) / 2.0):
            w = Mi_a / t - Mi_b
            val = w @ M @ w + 2.0 * b @ w - 2.0 * np.log(max(abs(a @ w), 1e-300))
            if val < best_val:
                best, best_val = w, val
        W[i] = best
    return W


def sparsity_search(
    covs: np.ndarray,
    n_eff: np.ndarray,
    W0: np.ndarray,
    n_restarts: int = 8,
    random_state: Any = None,
    barrier: float = 3.0,
    eps_factor: float = 2.0,
) -> np.ndarray:
    """Global search for the unmixing with the sparsest per-domain partial correlations.

    With a free precision per domain the Gaussian likelihood does not depend on
    the unmixing, so the criterion of Zhang et al. (2024) is the sparsity of the
    latent Markov network. This minimises, over the mixing ``M = W^{-1}``::

        sum_{i<j} log(1 + g_ij^2 / eps^2) - barrier * log|det(M normalised)|

    where ``g_ij^2 = sum_d pi_d r_d[i, j]^2`` pools the squared partial
    correlations ``r_d`` of latents ``i, j`` over domains (a smooth L0 proxy:
    an edge costs about the same whatever its strength), ``eps`` is
    ``eps_factor / sqrt(mean n_eff)`` (the null scale of a partial correlation)
    and the second term is the pooled Gaussian total correlation of the
    latents, which rules out degenerate (collinear) mixtures. L-BFGS (torch
    autograd) from ``W0`` and ``n_restarts - 1`` random starts (rotations of
    ``W0`` and random orthogonal matrices); the lowest objective wins.

    Returns
    -------
    W : ndarray, shape (k, k)
    """
    from crl_neuro.core.validation import require_optional

    torch = require_optional("torch", "deep", "The global sparsity search (linear MultiDistributionCRL, "
                             "SessionCRL without a forward model)")
    from scipy.linalg import expm
    from sklearn.utils import check_random_state

    rng = check_random_state(random_state)
    C = np.asarray(covs, float)
    k = C.shape[1]
    if k < 2:
        return np.asarray(W0, float)
    n_eff = np.asarray(n_eff, float)
    P = torch.tensor(np.linalg.inv(C), dtype=torch.float64)
    pi = torch.tensor(n_eff / n_eff.sum(), dtype=torch.float64)
    eps2 = (eps_factor / np.sqrt(n_eff.mean())) ** 2
    iu = np.triu_indices(k, 1)

    def objective(M: "torch.Tensor") -> "torch.Tensor":
        Th = M.T @ P @ M
        d = torch.sqrt(torch.diagonal(Th, dim1=1, dim2=2))
        R = Th / (d[:, :, None] * d[:, None, :])
        g2 = torch.einsum("d,dij->ij", pi, R**2)
        Mn = M / torch.linalg.norm(M, dim=0, keepdim=True)
        return torch.log1p(g2[iu] / eps2).sum() - barrier * torch.linalg.slogdet(Mn)[1]

    M_init = np.linalg.inv(np.asarray(W0, float))
    best_val, best_M = np.inf, M_init
    for r in range(max(1, int(n_restarts))):
        if r == 0:
            M0 = M_init
        elif r % 2:
            K = rng.normal(size=(k, k)) * 0.5
            M0 = M_init @ expm(K - K.T)
        else:
            M0 = np.linalg.qr(rng.normal(size=(k, k)))[0]
        M = torch.tensor(M0, dtype=torch.float64, requires_grad=True)
        opt = torch.optim.LBFGS([M], max_iter=200, line_search_fn="strong_wolfe")

        def closure() -> "torch.Tensor":
            opt.zero_grad()
            val = objective(M)
            val.backward()
            return val

        try:
            opt.step(closure)
        except RuntimeError:  # singular start; skip it
            continue
        with torch.no_grad():
            val = float(objective(M))
        if np.isfinite(val) and val < best_val:
            best_val, best_M = val, M.detach().numpy().copy()
    return np.linalg.inv(best_M)


def signal_subspace(pooled: np.ndarray, k: int, rtol: float, message: str
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Whitening onto the ``k`` leading eigenvectors of a pooled (domain-centred) covariance.

    The reduction shared by the linear multi-domain fit and :class:`~crl_neuro.meeg.SessionCRL`.

    Parameters
    ----------
    pooled : ndarray, shape (p, p)
        Symmetric pooled covariance (each domain centred on its own mean).
    k : int
        Dimension of the signal subspace.
    rtol : float
        The ``k``-th eigenvalue must exceed ``rtol`` times the first.
    message : str
        Text of the ValueError raised otherwise (names the caller's argument).

    Returns
    -------
    reduce : ndarray, shape (k, p)
        Maps data to the subspace with unit pooled covariance.
    expand : ndarray, shape (p, k)
        Back to the data space (``reduce @ expand`` is the identity).
    eigvecs : ndarray, shape (p, k)
        The leading eigenvectors, largest first.
    eigvals : ndarray, shape (k,)
    """
    ev, E = np.linalg.eigh(pooled)
    order = np.argsort(ev)[::-1][:k]
    ev, E = ev[order], E[:, order]
    if ev[-1] <= rtol * ev[0]:
        raise ValueError(message)
    return E.T / np.sqrt(ev)[:, None], E * np.sqrt(ev)[None, :], E, ev


def change_subspace(covs: np.ndarray, weights: np.ndarray, k: int, max_dims: int, message: str
                    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Whitening onto the ``k`` directions whose power changes most across domains.

    The alternative to :func:`signal_subspace` used by
    :class:`~crl_neuro.meeg.SessionCRL`: latents are identified by how their
    distributions change across domains (Zhang et al., 2024), so the subspace worth
    keeping is the one where the domain covariances differ, not the one with the
    most variance (on EEG, stationary rhythms and deep smooth fields dominate the
    variance). In the coordinates where the pooled covariance is the identity
    (its ``max_dims`` leading eigenvectors), each domain covariance ``C_d`` has a
    matrix logarithm ``L_d`` (zero where nothing changes, and symmetric in
    increases and decreases of power); the subspace is spanned by the ``k``
    leading eigenvectors of ``sum_d w_d L_d^2``, a multi-domain version of common
    spatial patterns (CSP).

    Parameters
    ----------
    covs : ndarray, shape (n_domains, p, p)
        Domain covariances.
    weights : ndarray, shape (n_domains,)
        Domain weights (summing to one); the pooled covariance is their weighted mean.
    k : int
        Dimension of the subspace.
    max_dims : int
        Number of leading principal directions of the pooled covariance searched
        (at least ``k``; capped at ``p``). Directions a domain's covariance cannot
        estimate (few samples) must be left out here.
    message : str
        Text of the ValueError raised when the pooled covariance has rank < ``k``.

    Returns
    -------
    reduce, expand, basis, change : ndarray
        ``reduce`` (k, p) maps data to the subspace with unit pooled covariance,
        ``expand`` (p, k) maps back (``reduce @ expand`` is the identity; its columns
        are the patterns of the reduced coordinates, ``pooled @ reduce.T``), ``basis``
        (p, k) is an orthonormal basis of the subspace (columns of ``expand``
        orthonormalised) and ``change`` (k,) the change scores, largest first.
    """
    covs = np.asarray(covs, dtype=float)
    weights = np.asarray(weights, dtype=float)
    pooled = np.einsum("d,dab->ab", weights, covs)
    ev, E = np.linalg.eigh(pooled)
    order = np.argsort(ev)[::-1]
    ev, E = ev[order], E[:, order]
    if ev[k - 1] <= 1e-10 * ev[0]:
        raise ValueError(message)
    m = int(min(max(k, max_dims), np.count_nonzero(ev > 1e-10 * ev[0])))
    if m == k:  # nothing to choose from
        V, Vpinv, E, _ = signal_subspace(pooled, k, 1e-10, message)
        return V, Vpinv, E, np.full(k, np.nan)
    V_m = E[:, :m].T / np.sqrt(ev[:m])[:, None]
    C = np.einsum("ia,dab,jb->dij", V_m, covs, V_m)
    score = np.zeros((m, m))
    for w, c in zip(weights, C):
        ev, U = np.linalg.eigh(c)
        L = (U * np.log(np.maximum(ev, 1e-12 * ev.max()))) @ U.T
        score += w * (L @ L)
    ev, U = np.linalg.eigh(score)
    order = np.argsort(ev)[::-1][:k]
    V = U[:, order].T @ V_m  # unit pooled covariance: U is orthonormal
    # Back to the data space through the pooled covariance (patterns of the reduced
    # coordinates), not the pseudo-inverse: V @ pooled @ V.T is the identity.
    Vpinv = pooled @ V.T
    basis, _ = np.linalg.qr(Vpinv)
    return V, Vpinv, basis, ev[order]


def theory_penalty_level(pi: np.ndarray, n_eff: np.ndarray, k: int) -> float:
    """Universal threshold of the group score ``(pi_d (S_d - Sigma_d)_ij)_d`` under the null.

    Parameters
    ----------
    pi : ndarray, shape (n_domains,)
        Domain weights (sample shares).
    n_eff : ndarray, shape (n_domains,) or (n_domains, k, k)
        Effective sample sizes.
    k : int
        Number of latents.

    Returns
    -------
    level : float
        The penalty level the sparsity term is expressed in.
    """
    return _lambda_theory(pi, n_eff, k)


def _lambda_theory(pi: np.ndarray, n_eff: np.ndarray, k: int) -> float:
    """Universal threshold of the group score ``(pi_d (S_d - Sigma_d)_ij)_d`` under the null."""
    D = len(pi)
    n_pairs = max(k * (k - 1) / 2.0, 1.0)
    return float(np.sqrt(np.sum(pi**2 / n_eff)) * (np.sqrt(D) + np.sqrt(2.0 * np.log(max(n_pairs, 2.0)))))


def _normalise_rows(W: np.ndarray, C: np.ndarray, pi: np.ndarray) -> np.ndarray:
    var = np.einsum("d,ia,dab,ib->i", pi, W, C, W)
    return W / np.sqrt(var)[:, None]


def _ebic(S: np.ndarray, Theta: np.ndarray, n: np.ndarray, support: np.ndarray, gamma: float = 0.5) -> float:
    D, k, _ = S.shape
    nll = 0.0
    for d in range(D):
        sign, logdet = np.linalg.slogdet(Theta[d])
        nll += n[d] * (np.trace(S[d] @ Theta[d]) - logdet)
    n_edges = int(support.sum() // 2)
    return float(nll + n_edges * D * (np.log(n.sum()) + 4.0 * gamma * np.log(k)))


def fit_joint_sparse(
    covs: np.ndarray,
    n_eff: np.ndarray,
    W0: np.ndarray,
    sparsity: Any = "auto",
    max_iter: int = 100,
    tol: float = 1e-4,
    prior: Any = None,
    weights: np.ndarray | None = None,
    update_W: bool = True,
) -> dict[str, Any]:
    """Refine an unmixing so that the per-domain precisions are jointly sparse.

    This is the engine of :class:`MultiDistributionCRL` and
    :class:`crl_neuro.meeg.SessionCRL` (which adds a physics prior).

    Parameters
    ----------
    covs : ndarray, shape (n_domains, k, k)
        Domain covariances in a whitened k-dimensional space.
    n_eff : ndarray, shape (n_domains,)
        Effective sample sizes (used for the penalty level and EBIC).
    W0 : ndarray, shape (k, k)
        Initial unmixing (e.g. :func:`pham_ajd`).
    sparsity : "auto" | float
        ``"auto"``: theory penalty for refinement and EBIC over a path for the
        network; a float multiplies the theory penalty (0 = no penalty).
    max_iter : int
        Maximum number of alternations.
    tol : float
        Stop when the relative change of ``W`` is below ``tol``.
    prior : callable | None
        ``prior(W)`` returns an array (k, k, k) of positive semi-definite
        quadratic forms, one per row of ``W``, added to the row objective
        (used for the leadfield prior of SessionCRL). It is called before every
        W-step so it can depend on the current estimate.
    weights : ndarray, shape (n_domains,) | None
        Domain weights ``pi_d``; default proportional to ``n_eff``.
    update_W : bool
        If False, ``W0`` is kept (rows renormalised) and only the reweighted
        network estimate is iterated.

    Returns
    -------
    result : dict
        ``W`` (k, k), ``precisions`` (n_domains, k, k), ``network`` (k, k) bool,
        ``lam`` the final penalty, ``n_iter``, ``converged`` (the unmixing
        changed by less than ``tol`` before ``max_iter``), ``covariances`` (n_domains, k, k)
        of the latents, ``objective``.
    """
    C = np.asarray(covs, float)
    D, k, _ = C.shape
    n_eff = np.asarray(n_eff, float)
    pi = n_eff / n_eff.sum() if weights is None else np.asarray(weights, float) / np.sum(weights)
    lam0 = _lambda_theory(pi, n_eff, k)
    c = 1.0 if sparsity == "auto" else float(sparsity)
    lam = c * lam0
    W = _normalise_rows(np.asarray(W0, float), C, pi)
    converged = not update_W
    # Scale of a null group norm of precision entries: the log-penalty's epsilon.
    eps = _EPS_FACTOR * np.sqrt(np.sum(1.0 / n_eff))
    state = None
    lam_w = lam
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        S = np.einsum("ia,dab,jb->dij", W, C, W)
        Theta, U, support = _group_glasso(S, pi, lam_w, init=state, max_iter=30)
        state = (Theta, U)
        if _REWEIGHT:
            # Local linear approximation of sum log(||Theta_ij|| + eps): an L0-like
            # penalty (the theory's criterion is the sparsest network, not the smallest).
            nrm = np.sqrt(np.sum(Theta**2, axis=0))
            lam_w = lam * eps / (nrm + eps)
        if not update_W:
            if n_iter >= 20:
                break
            continue
        W_new = _w_step(W, C, Theta, pi, None if prior is None else prior(W))
        W_new = _normalise_rows(W_new, C, pi)
        # Sign-invariant relative change.
        sgn = np.sign(np.sum(W_new * W, axis=1))
        delta = np.linalg.norm(W_new * sgn[:, None] - W) / np.linalg.norm(W)
        W = W_new
        if delta < tol:
            converged = True
            break
    S = np.einsum("ia,dab,jb->dij", W, C, W)
    nrm = np.sqrt(np.sum(state[0] ** 2, axis=0)) if _REWEIGHT else np.full((k, k), eps)
    adapt = eps / (nrm + eps)
    if sparsity == "auto":
        best = None
        for cc in (0.25, 0.5, 1.0, 2.0, 4.0):
            Th, _, sup = _group_glasso(S, pi, cc * lam0 * adapt, init=state, max_iter=100)
            score = _ebic(S, Th, n_eff, sup)
            if best is None or score < best[0]:
                best = (score, Th, sup, cc * lam0)
        _, Theta, support, lam = best
    else:
        Theta, _, support = _group_glasso(S, pi, lam * adapt, init=state, max_iter=100)
    support = support | support.T
    # Penalised objective (log penalty) to compare restarts.
    nll = sum(pi[d] * (np.trace(S[d] @ Theta[d]) - np.linalg.slogdet(Theta[d])[1]) for d in range(D))
    nrm = np.sqrt(np.sum(Theta**2, axis=0))
    off = ~np.eye(k, dtype=bool)
    objective = float(nll - 2.0 * np.linalg.slogdet(W)[1] + lam0 * eps * np.sum(np.log1p(nrm[off] / eps)))
    return {"W": W, "precisions": Theta, "network": support, "lam": lam, "n_iter": n_iter,
            "covariances": S, "converged": converged,
            "objective": objective}


def effective_n(
    Z: np.ndarray, max_lag: int = 100, pairwise: bool = False, segments: Any = None
) -> Any:
    """Effective sample size of correlations between the columns of ``Z``.

    Bartlett's formula ``n / (1 + 2 sum_tau rho_i(tau) rho_j(tau))`` with the
    empirical autocorrelations up to ``max_lag`` (or ``n // 10``). Rows are
    assumed in time order; for shuffled i.i.d. rows it returns about ``n``.

    Parameters
    ----------
    Z : ndarray, shape (n_samples, k)
    max_lag : int
        Largest lag summed.
    pairwise : bool
        If True return the (k, k) matrix of pairwise sizes; otherwise the size
        of the most dependent pair (a conservative scalar).
    segments : array-like of int | None
        Lengths of the contiguous stretches that ``Z`` concatenates (epochs,
        or the parts of a recording left between rejected artefacts), summing
        to ``n_samples``. Lagged products are pooled within stretches only, so
        no autocorrelation is computed across a join. ``None``: one stretch.

    Returns
    -------
    n_eff : float | ndarray, shape (k, k)
    """
    Z = np.asarray(Z, float)
    n, k = Z.shape
    L = int(min(max_lag, n // 10))
    if L < 1:
        return np.full((k, k), float(n)) if pairwise else float(n)
    lengths = np.array([n] if segments is None else segments, dtype=int)
    if lengths.ndim != 1 or np.any(lengths < 0) or lengths.sum() != n:
        raise ValueError(f"segments must be lengths summing to the {n} rows of Z, got {segments!r}")
    Zc = Z - Z.mean(axis=0)
    acf = np.zeros((L + 1, k))
    for stop, m in zip(np.cumsum(lengths), lengths):
        if m == 0:
            continue
        nfft = 1 << int(np.ceil(np.log2(2 * m)))  # zero padding: no circular wrap-around
        F = np.fft.rfft(Zc[stop - m : stop], nfft, axis=0)
        part = np.fft.irfft(np.abs(F) ** 2, nfft, axis=0)[: L + 1]
        acf[: part.shape[0]] += part
    acf = acf / np.maximum(acf[0], 1e-300)
    rho = acf[1:]  # (L, k)
    factor = np.maximum(1.0 + 2.0 * (rho.T @ rho), 1.0)  # (k, k)
    if pairwise:
        return np.clip(n / factor, 4.0, n)
    return float(np.clip(n / float(factor.max()), 4.0, n))


def fit_linear_multidomain(
    X: np.ndarray,
    codes: np.ndarray,
    n_domains: int,
    k: int,
    sparsity: Any = "auto",
    max_iter: int = 100,
    random_state: Any = None,
    init_unmixing: Any = None,
) -> dict[str, Any]:
    """Joint-sparse linear unmixing and latent Markov network of multi-domain data.

    Domain-centred whitening onto the ``k``-dimensional signal subspace, a sparsity
    search started from Pham's joint diagonaliser (or ``init_unmixing``), then the
    joint-sparse alternation with the unmixing fixed (:func:`fit_joint_sparse`).

    Parameters
    ----------
    X : ndarray, shape (n_samples, n_features)
        Validated observations.
    codes : ndarray of int, shape (n_samples,)
        Domain index ``0 .. n_domains - 1`` of every sample.
    n_domains : int
        Number of domains.
    k : int
        Number of latents.
    sparsity : "auto" or float
        Passed to :func:`fit_joint_sparse`.
    max_iter : int
        Alternations of :func:`fit_joint_sparse`.
    random_state : int | RandomState | None
        Seed of the sparsity search.
    init_unmixing : array-like, shape (k, n_features) | None
        Optional first start of the search.

    Returns
    -------
    result : dict
        The entries of :func:`fit_joint_sparse` (``W`` in whitened coordinates,
        ``precisions``, ``network``, ``covariances``, ``lam``, ``n_iter``...) plus
        ``mean`` (n_features,), ``unmixing`` (k, n_features) with latents
        ``(X - mean) @ unmixing.T``, ``n_eff`` (n_domains,) effective sizes of the
        whitened data and ``n_eff_latents`` (n_domains, k, k) pairwise effective sizes
        of the latents (for :func:`crl_neuro.core.changes.mechanism_changes`).
    """
    mean = X.mean(axis=0)
    # Domain-centred pooled covariance -> k-dim whitening (signal subspace).
    Xc = np.empty_like(X)
    for d in range(n_domains):
        m = codes == d
        Xc[m] = X[m] - X[m].mean(axis=0)
    V, _, _, _ = signal_subspace(
        Xc.T @ Xc / Xc.shape[0], k, 1e-12,
        f"n_latents={k} exceeds the rank of the domain-centred data; reduce n_latents",
    )
    Y = Xc @ V.T
    covs, n_eff = [], []
    for d in range(n_domains):
        Yd = Y[codes == d]
        covs.append(Yd.T @ Yd / Yd.shape[0])
        n_eff.append(effective_n(Yd))
    covs = np.array(covs)
    n_eff = np.array(n_eff)
    if init_unmixing is None:
        W0 = sparsity_search(
            covs, n_eff, pham_ajd(covs, weights=n_eff), random_state=random_state
        )
    else:
        U0 = check_data(init_unmixing, "init_unmixing", ndim=2, min_samples=k)
        if U0.shape != (k, X.shape[1]):
            raise ValueError(f"init_unmixing must have shape ({k}, {X.shape[1]}), got {U0.shape}")
        W0 = sparsity_search(covs, n_eff, U0 @ np.linalg.pinv(V), random_state=random_state)
    # The search optimises the unmixing; the alternation then estimates the network.
    res = fit_joint_sparse(
        covs, n_eff, W0, sparsity=sparsity, max_iter=max_iter, update_W=False
    )
    W = res["W"]
    out = dict(res)
    out["mean"] = mean
    out["unmixing"] = W @ V
    out["n_eff"] = n_eff
    # Effective sizes of the latents themselves for the heterogeneity test.
    out["n_eff_latents"] = np.array(
        [effective_n(Y[codes == d] @ W.T, pairwise=True) for d in range(n_domains)]
    )
    return out
