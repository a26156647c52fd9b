"""Constructive causal abstraction of linear models: tau maps, omega maps and abstraction error.

A *micro* model over variables ``x`` (e.g. voxels) is abstracted into a *macro* model
over variables ``y`` (e.g. regions of interest) by a map ``tau``. Following Rubenstein
et al. (2017) and Beckers & Halpern (2019), the abstraction is *exact* when
"intervene, then abstract" and "abstract, then intervene" agree for every allowed
intervention; interventions are mapped from micro to macro by ``omega``, the map
induced by ``tau``. A **constructive** abstraction (Beckers & Halpern 2019, Def. 3.13)
partitions the micro variables into blocks, one per macro variable, and ``tau``
acts block-wise: ``y_k = tau_k(x_{S_k})``. Here every ``tau_k`` is linear, so
``tau`` is a matrix.

Conventions (the package's; the same as ``roi_graph_`` and the simulators)
----------------------------------------------------------------------------
* Row vectors. A micro **VAR(1)** is ``x_t = x_{t-1} @ B + e_t``, ``B[i, j] != 0``
  meaning ``x_i -> x_j``; a micro **linear-Gaussian SCM** is ``x = x @ B + e``.
* ``tau(x) = x @ T`` with ``T`` of shape ``(n_micro, n_macro)``; column ``k`` of a
  constructive ``T`` is non-zero only on block ``S_k``.
* A macro VAR is ``y_t = y_{t-1} @ A + f_t``. One-step exactness is
  ``B @ T == T @ A`` (the transpose of the column-vector form ``T B = A T``).

Abstraction error (Beckers, Eberhardt & Halpern 2019, approximate abstraction)
------------------------------------------------------------------------------
For the VAR, write ``D = B @ T - T @ A``. Under a micro state ``x`` with covariance
``C`` the one-step discrepancy between "propagate then abstract" (``x B T``) and
"abstract then propagate" (``x T A``) has mean squared norm ``tr(D' C D)``; the
*relative* inconsistency is ``sqrt(tr(D' C D) / tr((BT)' C (BT)))``. It is ``0``
exactly when the abstraction commutes on the support of ``C`` and scale-free
otherwise. The interventional version intervenes on one whole block ``S_k``
(``do(x_{S_k} = v)``, which ``omega`` maps to ``do(y_k = v @ T[S_k, k])``): the
intervened state keeps ``x_{-S_k}`` from the stationary distribution and draws ``v``
from the block's stationary marginal, independently (the intervention cuts the
block from its causes), i.e. ``C_k`` equals the stationary covariance ``Sigma``
with the cross-covariances between ``S_k`` and the rest set to zero. The error of the
abstraction is the mean (or worst) of the per-block relative inconsistencies.
Interventions on part of a block are not in the domain of ``omega`` (Beckers &
Halpern 2019): :func:`omega` raises for them.

For given ``B`` and ``T`` the macro ``A`` minimising ``tr(D' Sigma D)`` is the
covariance-weighted least-squares solution
``A = (T' Sigma T)^{-1} T' Sigma B T``; it is also what a VAR fitted to the macro
series ``y = x T`` converges to, because ``E[x_{t-1}' x_t] = Sigma B``.

References
----------
Rubenstein, P. K., Weichwald, S., Bongers, S., Mooij, J. M., Janzing, D.,
Grosse-Wentrup, M., & Schölkopf, B. (2017). Causal consistency of structural
equation models. UAI.
Beckers, S., & Halpern, J. Y. (2019). Abstracting causal models. AAAI.
Beckers, S., Eberhardt, F., & Halpern, J. Y. (2019). Approximate causal abstraction. UAI.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import linalg

from crl_neuro.core.validation import check_data, check_float, check_int, check_square

__all__ = [
    "constructive_tau",
    "partition_from_tau",
    "omega",
    "stationary_covariance",
    "best_macro_var",
    "var_abstraction_error",
    "best_macro_scm",
    "scm_abstraction_error",
    "fit_var",
    "var_abstraction_error_from_data",
]


# --------------------------------------------------------------------------- tau / omega
def constructive_tau(labels: Any, weights: Any = None, n_macro: int | None = None) -> np.ndarray:
    """Build the linear constructive tau map of a partition of micro variables.

    Parameters
    ----------
    labels : array-like of int, shape (n_micro,)
        Block of each micro variable: ``1..n_macro`` (``0`` = not abstracted, e.g.
        background voxels; such variables get a zero row). Labels ``0..n_macro-1``
        without any zero-free convention are not guessed: ``0`` always means "none".
    weights : array-like, shape (n_micro,) | None
        Non-negative weight of each micro variable inside its block. Every block's
        map is the weighted average ``y_k = sum_{i in S_k} w_i x_i / sum_{i in S_k} w_i``.
        ``None`` gives plain averages (what ``NiftiLabelsMasker`` computes).
    n_macro : int | None
        Number of macro variables (default: the largest label). Blocks without
        micro variables give zero columns.

    Returns
    -------
    T : ndarray, shape (n_micro, n_macro)
        ``y = x @ T``.
    """
    labels = np.asarray(labels)
    if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
        if labels.ndim == 1 and labels.dtype.kind == "f" and np.all(labels == np.round(labels)):
            labels = labels.astype(int)
        else:
            raise ValueError("labels must be a 1D array of non-negative integers")
    if labels.size == 0 or labels.min() < 0:
        raise ValueError("labels must be a non-empty 1D array of non-negative integers")
    n_macro = int(labels.max()) if n_macro is None else check_int(n_macro, "n_macro", 1)
    if labels.max() > n_macro:
        raise ValueError(f"labels contain {labels.max()} but n_macro={n_macro}")
    if weights is None:
        w = np.ones(labels.size)
    else:
        w = check_data(weights, "weights", ndim=1, min_samples=labels.size)
        if w.size != labels.size:
            raise ValueError(f"weights has {w.size} entries but labels has {labels.size}")
        if np.any(w < 0):
            raise ValueError("weights must be non-negative")
    T = np.zeros((labels.size, n_macro))
    for k in range(1, n_macro + 1):
        idx = labels == k
        s = w[idx].sum()
        if s > 0:
            T[idx, k - 1] = w[idx] / s
    return T


def partition_from_tau(T: Any) -> np.ndarray:
    """Return the block labels (``1..n_macro``, ``0`` = unused) of a constructive ``T``.

    Raises ``ValueError`` when a micro variable feeds several macro variables, i.e.
    when ``T`` is not constructive.
    """
    T = check_data(T, "T", ndim=2, min_samples=1)
    nz = np.abs(T) > 0
    if np.any(nz.sum(axis=1) > 1):
        raise ValueError("T is not constructive: a micro variable maps to several macro variables")
    labels = np.zeros(T.shape[0], dtype=int)
    rows, cols = np.nonzero(nz)
    labels[rows] = cols + 1
    return labels


def omega(T: Any, intervention: dict[int, float]) -> dict[int, float]:
    """Map a micro intervention to the macro intervention induced by a constructive tau.

    Parameters
    ----------
    T : array-like, shape (n_micro, n_macro)
        Constructive linear tau (see :func:`constructive_tau`).
    intervention : dict
        ``{micro index: value}``, the micro intervention ``do(X_S = x)``.

    Returns
    -------
    macro : dict
        ``{macro index: value}``: the intervention ``do(Y_k = tau_k(x_{S_k}))`` for
        every block fully set by ``intervention``.

    Raises
    ------
    ValueError
        If the intervention sets only part of a block (such interventions are not
        in the domain of omega: the macro value would depend on unset variables),
        or sets micro variables that no macro variable uses.
    """
    T = check_data(T, "T", ndim=2, min_samples=1)
    labels = partition_from_tau(T)
    if not isinstance(intervention, dict) or not intervention:
        raise TypeError("intervention must be a non-empty dict {micro index: value}")
    idx = np.array([int(i) for i in intervention], dtype=int)
    if idx.min() < 0 or idx.max() >= T.shape[0]:
        raise ValueError(f"intervention indices must be in [0, {T.shape[0] - 1}]")
    if np.any(labels[idx] == 0):
        raise ValueError("intervention sets micro variables outside every block (not in omega's domain)")
    out: dict[int, float] = {}
    for k in np.unique(labels[idx]):
        block = np.flatnonzero(labels == k)
        if not set(block.tolist()) <= set(idx.tolist()):
            raise ValueError(
                f"intervention sets only part of block {k - 1} (macro variable {k - 1}); "
                "partial-block interventions are not in the domain of omega"
            )
        out[int(k - 1)] = float(sum(intervention[int(i)] * T[i, k - 1] for i in block))
    return out


# --------------------------------------------------------------------------- VAR models
def stationary_covariance(B: Any, noise_cov: Any = None) -> np.ndarray:
    """Stationary covariance ``Sigma = B' Sigma B + Q`` of ``x_t = x_{t-1} B + e_t``.

    Parameters
    ----------
    B : array-like, shape (n, n)
        Transition matrix (row convention); its spectral radius must be < 1.
    noise_cov : array-like, shape (n, n) | (n,) | None
        Innovation covariance ``Q`` (a vector means a diagonal). ``None`` = identity.
    """
    B = check_square(B, "B")
    n = B.shape[0]
    Q = _as_cov(noise_cov, n, "noise_cov")
    if np.max(np.abs(np.linalg.eigvals(B))) >= 1:
        raise ValueError("B must be stable (spectral radius < 1) to have a stationary covariance")
    S = linalg.solve_discrete_lyapunov(B.T, Q)
    return (S + S.T) / 2


def best_macro_var(B: Any, T: Any, cov: Any = None) -> np.ndarray:
    """Macro transition ``A`` closest to commuting with ``B`` through ``T``.

    Minimises ``tr(D' C D)`` with ``D = B T - T A``:
    ``A = (T' C T)^+ T' C B T``. With ``C = None`` the identity is used, giving the
    unweighted ``A = T^+ B T``.

    Parameters
    ----------
    B : array-like, shape (n_micro, n_micro)
    T : array-like, shape (n_micro, n_macro)
    cov : array-like, shape (n_micro, n_micro) | None
        Weighting covariance (usually the micro stationary covariance).

    Returns
    -------
    A : ndarray, shape (n_macro, n_macro)
    """
    B = check_square(B, "B")
    T = _check_T(T, B.shape[0])
    C = np.eye(B.shape[0]) if cov is None else check_square(cov, "cov", B.shape[0])
    return np.linalg.pinv(T.T @ C @ T) @ (T.T @ C @ B @ T)


def var_abstraction_error(
    B: Any,
    T: Any,
    A: Any = None,
    noise_cov: Any = None,
    cov: Any = None,
    reduce: str = "mean",
) -> dict[str, Any]:
    """Relative interventional inconsistency of a linear abstraction of a VAR(1).

    See the module docstring for the definitions. ``T`` must be constructive for the
    block interventions; the observational error is defined for any ``T``.

    Parameters
    ----------
    B : array-like, shape (n_micro, n_micro)
        Micro transition (``x_t = x_{t-1} B + e_t``).
    T : array-like, shape (n_micro, n_macro)
        Linear tau.
    A : array-like, shape (n_macro, n_macro) | None
        Macro transition; ``None`` uses :func:`best_macro_var` under ``cov``.
    noise_cov : array-like | None
        Micro innovation covariance, used to compute the stationary covariance when
        ``cov`` is None.
    cov : array-like, shape (n_micro, n_micro) | None
        Micro state covariance (e.g. an empirical one); overrides ``noise_cov``.
    reduce : {"mean", "max"}
        How ``error`` summarises the per-block errors.

    Returns
    -------
    result : dict
        ``error`` (float, mean or max over single-block interventions),
        ``per_block`` (n_macro,) relative errors of ``do(block k)``,
        ``observational`` (float) the error under the stationary distribution,
        ``A`` the macro transition used.
    """
    B = check_square(B, "B")
    n = B.shape[0]
    T = _check_T(T, n)
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    C = stationary_covariance(B, noise_cov) if cov is None else check_square(cov, "cov", n)
    if A is None:
        A = best_macro_var(B, T, C)
    else:
        A = check_square(A, "A", T.shape[1])
    BT = B @ T
    D = BT - T @ A
    obs = _rel(D, BT, C)
    try:
        labels = partition_from_tau(T)
    except ValueError:
        labels = None
    per_block = np.full(T.shape[1], np.nan)
    if labels is not None:
        for k in range(T.shape[1]):
            S = labels == k + 1
            if not S.any():
                continue
            Ck = C.copy()
            Ck[np.ix_(S, ~S)] = 0.0
            Ck[np.ix_(~S, S)] = 0.0
            per_block[k] = _rel(D, BT, Ck)
    valid = per_block[np.isfinite(per_block)]
    if valid.size:
        err = float(valid.mean() if reduce == "mean" else valid.max())
    else:
        err = obs
    return {"error": err, "per_block": per_block, "observational": obs, "A": A}


# --------------------------------------------------------------------------- SCMs
def _scm_effects(B: np.ndarray, T: np.ndarray, labels: np.ndarray, C: np.ndarray):
    """Per block: micro interventional mean map ``G_k`` (|S_k| x n_macro)."""
    n = B.shape[0]
    out = []
    for k in range(T.shape[1]):
        S = labels == k + 1
        Bp = B.copy()
        Bp[:, S] = 0.0  # do(x_S) cuts the edges into S
        M = np.linalg.inv(np.eye(n) - Bp)
        out.append((S, M[S] @ T))
    return out


def best_macro_scm(B: Any, T: Any, noise_cov: Any = None) -> np.ndarray:
    """Macro SCM coefficients ``A`` (``y = y A + f``) implied by block interventions.

    For each block ``k``, the macro total effect of ``y_k`` on ``y_l`` is the least-squares
    slope of the micro interventional mean of ``y_l`` on ``y_k = v T[S_k, k]`` with
    ``v`` drawn from the block's observational marginal. For an acyclic macro model the
    total-effect matrix ``E`` satisfies ``E = (I - A)^{-1}``, so ``A = I - E^{-1}``.
    Exact when the abstraction is exact.
    """
    B = check_square(B, "B")
    n = B.shape[0]
    T = _check_T(T, n)
    labels = partition_from_tau(T)
    Q = _as_cov(noise_cov, n, "noise_cov")
    M = np.linalg.inv(np.eye(n) - B)
    C = M.T @ Q @ M
    K = T.shape[1]
    E = np.eye(K)
    for k, (S, G) in enumerate(_scm_effects(B, T, labels, C)):
        if not S.any():
            continue
        t = T[S, k]
        CS = C[np.ix_(S, S)]
        denom = t @ CS @ t
        if denom > 0:
            E[k] = (t @ CS @ G) / denom
        E[k, k] = 1.0
    return np.eye(K) - np.linalg.inv(E)


def scm_abstraction_error(
    B: Any, T: Any, A: Any = None, noise_cov: Any = None, reduce: str = "mean"
) -> dict[str, Any]:
    """Relative interventional inconsistency of a constructive abstraction of a linear SCM.

    Micro ``x = x B + e`` (``e ~ N(0, noise_cov)``), macro ``y = y A + f``. For each block
    ``k``, a hard intervention ``do(x_{S_k} = v)`` with ``v`` drawn from the block's
    observational marginal gives the micro interventional mean of ``y`` = ``v G_k``;
    ``omega`` maps it to ``do(y_k = v T[S_k, k])`` whose macro mean is
    ``v T[S_k, k] H_k`` (``H_k`` row ``k`` of ``(I - A_k)^{-1}``, ``A_k`` = ``A`` with
    column ``k`` cut). The per-block error is
    ``sqrt(E||v (G_k - t_k H_k)||^2 / E||v G_k||^2)``.

    Parameters
    ----------
    B, T, A, noise_cov, reduce
        As in :func:`var_abstraction_error` (``A=None`` uses :func:`best_macro_scm`).

    Returns
    -------
    result : dict
        ``error``, ``per_block``, ``A``.
    """
    B = check_square(B, "B")
    n = B.shape[0]
    T = _check_T(T, n)
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    labels = partition_from_tau(T)
    Q = _as_cov(noise_cov, n, "noise_cov")
    M = np.linalg.inv(np.eye(n) - B)
    C = M.T @ Q @ M
    K = T.shape[1]
    A = best_macro_scm(B, T, Q) if A is None else check_square(A, "A", K)
    per_block = np.full(K, np.nan)
    for k, (S, G) in enumerate(_scm_effects(B, T, labels, C)):
        if not S.any():
            continue
        Ak = A.copy()
        Ak[:, k] = 0.0
        H = np.linalg.inv(np.eye(K) - Ak)[k]
        D = G - np.outer(T[S, k], H)
        per_block[k] = _rel(D, G, C[np.ix_(S, S)])
    valid = per_block[np.isfinite(per_block)]
    err = float(valid.mean() if reduce == "mean" else valid.max()) if valid.size else 0.0
    return {"error": err, "per_block": per_block, "A": A}


# --------------------------------------------------------------------------- data version
def fit_var(X: Any, ridge: float = 0.0, runs: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares VAR(1) ``x_t = x_{t-1} B + e_t`` on one or several runs.

    Parameters
    ----------
    X : array-like, shape (n_times, n) | list of such arrays
        Time series; a list is one run per entry (lags never cross runs).
    ridge : float
        Ridge penalty, relative to the mean variance of the lagged data.
    runs : None
        Reserved.

    Returns
    -------
    B : ndarray, shape (n, n)
    cov : ndarray, shape (n, n)
        Covariance of the lagged states ``x_{t-1}``.
    """
    Xs = _as_runs(X, "X")
    ridge = check_float(ridge, "ridge", 0.0)
    P = np.concatenate([x[:-1] for x in Xs])
    F = np.concatenate([x[1:] for x in Xs])
    G = P.T @ P
    lam = ridge * np.trace(G) / G.shape[0]
    B = np.linalg.solve(G + lam * np.eye(G.shape[0]), P.T @ F)
    return B, G / P.shape[0]


def var_abstraction_error_from_data(
    X: Any, labels: Any, weights: Any = None, ridge: float = 1e-6, reduce: str = "mean",
    debias: bool = True,
) -> dict[str, Any]:
    """Estimate the VAR abstraction error of a partition from micro time series.

    For each run (distribution) separately, with ``P`` the lagged micro states
    ``x_{t-1}`` and ``y_t = x_t T`` the macro series:

    * "intervene then abstract": the one-step macro prediction from the micro past,
      ``x_{t-1} G`` with ``G`` (an estimate of ``B T``) the least-squares regression of
      ``y_t`` on ``x_{t-1}``;
    * "abstract then intervene": the prediction of a VAR fitted on the macro series,
      ``x_{t-1} T A`` (``A`` regresses ``y_t`` on ``y_{t-1}``; its limit is the
      covariance-weighted :func:`best_macro_var`).

    ``D = G - T A`` is the data version of ``B T - T A``; the per-block relative
    errors use the covariance ``C_k`` of the block-intervened state as in
    :func:`var_abstraction_error`, ``C`` being the sample covariance of ``x_{t-1}``.
    Regressing directly on ``x_{t-1}`` estimates only ``n_micro x n_macro``
    coefficients (not the whole micro ``B``). With ``debias=True`` the expected
    contribution of estimation noise to ``tr(D' C_k D)`` and ``tr(G' C_k G)``
    (ordinary least-squares noise, residual variances estimated from the fit) is
    subtracted, so an exact abstraction scores about 0 rather than
    ``O(sqrt(n_micro / n_times))``. Runs are averaged, so a partition that is exact in
    some runs but not in others (e.g. two parts that receive different inputs only in
    some runs) gets a non-zero error.

    Parameters
    ----------
    X : array-like, shape (n_times, n_micro) | list of such arrays (one per run)
        Micro time series (e.g. small contiguous supervoxels).
    labels : array-like of int, shape (n_micro,)
        Partition, ``1..n_macro`` (``0`` = ignored).
    weights : array-like | None
        Within-block weights of the tau map (default plain averages).
    ridge : float
        Relative ridge penalty of the regressions (numerical safety only).
    reduce : {"mean", "max"}
        Summary over single-block interventions.
    debias : bool
        Subtract the expected estimation-noise part (see above).

    Returns
    -------
    result : dict
        ``error`` (float), ``per_block`` (n_macro,), ``observational`` (float),
        ``per_run`` (n_runs,), ``A`` (n_runs, n_macro, n_macro) macro transitions.
    """
    Xs = _as_runs(X, "X")
    labels = np.asarray(labels)
    if labels.ndim != 1 or labels.size != Xs[0].shape[1]:
        raise ValueError(f"labels must have one entry per column of X ({Xs[0].shape[1]})")
    if reduce not in ("mean", "max"):
        raise ValueError(f"reduce must be 'mean' or 'max', got {reduce!r}")
    ridge = check_float(ridge, "ridge", 0.0)
    keep = labels > 0
    T = constructive_tau(labels, weights)[keep]
    blocks = partition_from_tau(T)
    K = T.shape[1]
    errs, per_blocks, obs, As = [], [], [], []
    for x in Xs:
        x = x[:, keep] - x[:, keep].mean(axis=0)
        P, Xn = x[:-1], x[1:]
        Y = Xn @ T
        N = P.shape[0]
        Gram = P.T @ P
        Ginv = np.linalg.pinv(Gram + ridge * np.trace(Gram) / Gram.shape[0] * np.eye(Gram.shape[0]))
        G = Ginv @ P.T @ Y
        PT = P @ T
        A = np.linalg.pinv(PT.T @ PT) @ PT.T @ Y
        D = G - T @ A
        resid = Y - P @ G
        dof = max(N - np.linalg.matrix_rank(P), 1)
        s2 = (resid**2).sum(axis=0) / dof  # residual variance per macro output
        C = Gram / N
        # D = M G with M the C-weighted projection residual; OLS noise of G: s2 * Ginv
        M = np.eye(T.shape[0]) - T @ np.linalg.pinv(T.T @ C @ T) @ T.T @ C

        def quad(M_: np.ndarray, S: np.ndarray | None) -> float:
            # tr(M' C_S M) computed from the data, C_S = C with the S/rest cross terms cut;
            # working with P @ M keeps it stable when P is (nearly) collinear
            if S is None:
                return float(((P @ M_) ** 2).sum() / N)
            return float((((P[:, S] @ M_[S]) ** 2).sum() + ((P[:, ~S] @ M_[~S]) ** 2).sum()) / N)

        def rel(S: np.ndarray | None) -> float:
            num = quad(D, S)
            den = quad(G, S)
            if debias:
                Ck = C.copy()
                if S is not None:
                    Ck[np.ix_(S, ~S)] = 0.0
                    Ck[np.ix_(~S, S)] = 0.0
                num -= float(s2.sum() * np.trace(M.T @ Ck @ M @ Ginv))
                den -= float(s2.sum() * np.trace(Ck @ Ginv))
            if den <= 1e-12 * max(float((Y**2).sum() / N), 1e-300):
                return 0.0
            return float(np.sqrt(max(num, 0.0) / den))

        pb = np.full(K, np.nan)
        for k in range(K):
            S = blocks == k + 1
            if S.any():
                pb[k] = rel(S)
        valid = pb[np.isfinite(pb)]
        o = rel(None)
        errs.append(float(valid.mean() if reduce == "mean" else valid.max()) if valid.size else o)
        per_blocks.append(pb)
        obs.append(o)
        As.append(A)
    return {
        "error": float(np.mean(errs)),
        "per_block": np.nanmean(np.array(per_blocks), axis=0),
        "observational": float(np.mean(obs)),
        "per_run": np.array(errs),
        "A": np.array(As),
    }


# --------------------------------------------------------------------------- helpers
def _rel(D: np.ndarray, ref: np.ndarray, C: np.ndarray) -> float:
    num = float(np.trace(D.T @ C @ D))
    den = float(np.trace(ref.T @ C @ ref))
    if den <= 1e-300:
        return 0.0 if num <= 1e-300 else float("inf")
    return float(np.sqrt(max(num, 0.0) / den))


def _check_T(T: Any, n_micro: int) -> np.ndarray:
    T = check_data(T, "T", ndim=2, min_samples=1)
    if T.shape[0] != n_micro:
        raise ValueError(f"T must have {n_micro} rows (one per micro variable), got {T.shape[0]}")
    return T


def _as_cov(cov: Any, n: int, name: str) -> np.ndarray:
    if cov is None:
        return np.eye(n)
    arr = np.asarray(cov, dtype=float)
    if arr.ndim == 1:
        if arr.size != n or np.any(arr < 0):
            raise ValueError(f"{name} as a vector must have {n} non-negative entries")
        return np.diag(arr)
    return check_square(arr, name, n)


def _as_runs(X: Any, name: str) -> list[np.ndarray]:
    if isinstance(X, (list, tuple)):
        if not X:
            raise ValueError(f"{name} must not be an empty list")
        Xs = [check_data(x, f"{name}[{i}]", ndim=2, min_samples=3) for i, x in enumerate(X)]
        if len({x.shape[1] for x in Xs}) != 1:
            raise ValueError(f"all runs in {name} must have the same number of columns")
        return Xs
    return [check_data(X, name, ndim=2, min_samples=3)]
