"""Block identification of a world model's latent state from actions and rewards (private).

The four IFactor blocks are defined by properties that can be read off a trained
world model's latent ``s`` without ground truth, through two small regressors fitted
on the latent trajectories, ``s_{t+1} - s_t = f(s_t, a_t)`` and ``r_t = rho(s_t)``.
Everything is done in whitened coordinates ``z`` of ``s``: the true blocks evolve
separately and the actions are exploratory, so the blocks are uncorrelated, i.e.
orthogonal subspaces there.

* **Uncontrollable** coordinates (rows ``W``) form a closed subsystem that the action
  never reaches: ``W z_{t+1}`` depends neither on ``a_t`` nor on the other coordinates.
  Closure is what makes a slow factor count as controllable (a push reaches the cart's
  position only through its velocity, and barely within a few steps). ``W`` solves
  ``min tr(W [Q_b + E(J P J^T)] W^T)`` against the probe's residual covariance ``N``
  (a signal-to-noise criterion), where ``Q_b`` is the second moment of one-step action
  effects ``f(z, a) - f(z, a')``, ``J`` the probe's Jacobian of ``z_{t+1}`` and ``P``
  the projector on the other coordinates; iterated from the action-effect solution.
* **Reward-irrelevant** directions ``V`` inside each part move neither the reward nor
  the next value of the other coordinates (else they would reach the reward later).
  This is scored without derivatives: the ``V`` coordinates of each state are swapped
  with those of another state and the changes of the two probes' outputs are measured
  (a permutation test). Derivatives are not used here because they are meaningless off
  the data: the probe of a binary factor (a lamp at +-1) can have any slope between the
  two values, and did. The subspace is searched by gradient descent from several
  starts (eigenvectors of the lag-1 covariance, which separate processes with
  different dynamics, and random ones).

Transitions into the first step of an episode (``is_first``) are left out of the
dynamics: a reset is not a consequence of the previous state or action.

The map is linear in ``s``: it assumes the world model has learned the state up to an
invertible map that is close to linear *across* blocks (nonlinearity inside a block is
harmless). Gradient training of the sequential VAE often leaves factors in the wrong
block; this step re-assigns them.
"""

from __future__ import annotations

import numpy as np
import scipy.linalg


def _fit_mlp(X: np.ndarray, Y: np.ndarray, epochs: int, seed: int):
    """ELU MLP regressing ``Y`` on ``X``, returned as a torch function of ``X``."""
    import torch

    from crl_neuro.core.training import fit_torch

    y_mean, y_sd = Y.mean(0), Y.std(0) + 1e-12
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        net = torch.nn.Sequential(torch.nn.Linear(X.shape[1], 64), torch.nn.ELU(), torch.nn.Linear(64, 64),
                                  torch.nn.ELU(), torch.nn.Linear(64, Y.shape[1]))
    fit_torch(net, lambda model, batch: ((model(batch[0]) - batch[1]) ** 2).mean(),
              (X.astype(np.float32), ((Y - y_mean) / y_sd).astype(np.float32)), max_iter=epochs,
              lr=3e-3, weight_decay=1e-4, patience=10, random_state=seed)
    for p in net.parameters():
        p.requires_grad_(False)
    scale = torch.as_tensor(y_sd, dtype=torch.float32)
    shift = torch.as_tensor(y_mean, dtype=torch.float32)
    return lambda x: net(x) * scale + shift


def _orth_rows(W: np.ndarray) -> np.ndarray:
    """Orthonormal rows spanning the rows of ``W``."""
    return np.linalg.qr(W.T)[0].T


def _smallest_generalized(M: np.ndarray, N: np.ndarray, k: int) -> np.ndarray:
    """Rows: the ``k`` generalised eigenvectors of ``(M, N)`` with the smallest eigenvalues."""
    return scipy.linalg.eigh(M, N, subset_by_index=[0, k - 1])[1].T


def _uncontrollable_rows(J: np.ndarray, effects: np.ndarray, residuals: np.ndarray, k: int,
                         n_iter: int = 30, floor: float = 1e-3) -> np.ndarray:
    """Orthonormal rows (k, n) of the closed subsystem that the action does not reach."""
    n = J.shape[1]
    N = np.cov(residuals, rowvar=False) + floor * np.eye(n)
    Qb = effects.T @ effects / len(effects)
    W = _orth_rows(_smallest_generalized(Qb, N, k))
    for _ in range(n_iter):
        others = np.eye(n) - W.T @ W
        M = Qb + np.einsum("tij,jk,tlk->il", J, others, J) / len(J)
        W_new = _orth_rows(_smallest_generalized(M, N, k))
        done = np.linalg.norm(W_new.T @ W_new - W.T @ W) < 1e-6
        W = W_new
        if done:
            break
    return W


def _irrelevant_rows(part: np.ndarray, k: int, z, a, lag1: np.ndarray, step, reward, seed: int,
                     n_random: int = 6, n_steps: int = 150) -> tuple[np.ndarray, np.ndarray]:
    """Split the orthonormal rows ``part`` into ``k`` irrelevant rows and the relevant rest."""
    import torch

    d, n = part.shape
    if k == 0 or k == d:
        empty = np.zeros((0, n))
        return (empty, part) if k == 0 else (part, empty)
    gen = torch.Generator().manual_seed(seed)
    swapped = z[torch.randperm(len(z), generator=gen)]
    basis = torch.as_tensor(part, dtype=torch.float32)
    r0 = reward(z)
    f0 = step(torch.cat([z, a], 1))

    def score(Q):
        rows = torch.linalg.qr(Q)[0].T @ basis
        proj = rows.T @ rows
        z_swap = z + (swapped - z) @ proj
        d_r = reward(z_swap) - r0
        d_f = (step(torch.cat([z_swap, a], 1)) - f0) @ (torch.eye(n) - proj)
        return (d_r ** 2).mean() + (d_f ** 2).sum(1).mean(), rows

    # starts: consecutive eigenvectors of the part's symmetrised lag-1 covariance (blocks
    # with different dynamics separate there; a rotating block stays together) and random
    within = part @ lag1 @ part.T
    vecs = np.linalg.eigh(within + within.T)[1]
    starts = [torch.as_tensor(vecs[:, i:i + k].copy(), dtype=torch.float32) for i in range(d - k + 1)]
    starts += [torch.randn(d, k, generator=gen) for _ in range(n_random)]
    best, best_rows = np.inf, None
    for Q0 in starts:
        Q = Q0.clone().requires_grad_(True)
        opt = torch.optim.Adam([Q], lr=0.05)
        for _ in range(n_steps):
            opt.zero_grad()
            score(Q)[0].backward()
            opt.step()
        with torch.no_grad():
            value, rows = score(Q)
        if float(value) < best:
            best, best_rows = float(value), rows.double().numpy()
    irrelevant = _orth_rows(best_rows)
    relevant = scipy.linalg.null_space(irrelevant @ part.T).T @ part  # the rest of the part
    return irrelevant, relevant


def block_alignment(
    S: np.ndarray,
    A: np.ndarray,
    R: np.ndarray,
    block_dims: list[int],
    is_first: np.ndarray | None = None,
    seed: int = 0,
    epochs: int = 100,
    max_samples: int = 4000,
) -> tuple[np.ndarray, np.ndarray]:
    """Linear map from a world model's latent state to the four IFactor blocks.

    Parameters
    ----------
    S : ndarray, shape (n_episodes, n_steps, n)
        Latent states (posterior means).
    A : ndarray, shape (n_episodes, n_steps, action_dim)
        Actions; ``A[:, t]`` drives step ``t + 1``.
    R : ndarray, shape (n_episodes, n_steps)
        Rewards; ``R[:, t]`` depends on the state at ``t``.
    block_dims : list of int
        Sizes of the blocks in :data:`crl_neuro.rl.BLOCK_KEYS` order (controllable
        relevant, uncontrollable relevant, controllable irrelevant, uncontrollable
        irrelevant); they must sum to ``n``.
    is_first : ndarray of bool, shape (n_episodes, n_steps), optional
        True where a step starts a new episode; the transitions into those steps are
        left out.
    seed : int
        Seed of the probe regressors and of the subspace search.
    epochs : int
        Training epochs of each probe regressor.
    max_samples : int
        Transitions used for the Jacobians and the permutation scores.

    Returns
    -------
    P : ndarray, shape (n, n)
        Rows grouped by block; the blocks are ``(s - mean) @ P.T`` split by ``block_dims``,
        each coordinate with unit variance.
    mean : ndarray, shape (n,)
        Mean latent state.
    """
    import torch

    d_cr, d_ur, d_ci, d_ui = (int(d) for d in block_dims)
    n = S.shape[-1]
    if d_cr + d_ur + d_ci + d_ui != n:
        raise ValueError(f"block_dims {block_dims} do not sum to the latent size {n}")
    mean = S.reshape(-1, n).mean(0)
    Sc = S - mean
    evals, evecs = np.linalg.eigh(np.cov(Sc.reshape(-1, n), rowvar=False))
    whiten = evecs @ np.diag(1.0 / np.sqrt(np.maximum(evals, 1e-12 * evals.max()))) @ evecs.T
    Z = Sc @ whiten
    A = A - A.reshape(-1, A.shape[-1]).mean(0)
    m = A.shape[-1]
    valid = np.ones(S.shape[:2], bool)[:, 1:] if is_first is None else ~np.asarray(is_first, bool)[:, 1:]
    valid = valid.reshape(-1)
    z_t, z_next = Z[:, :-1].reshape(-1, n)[valid], Z[:, 1:].reshape(-1, n)[valid]
    a_t = A[:, :-1].reshape(-1, m)[valid]
    step = _fit_mlp(np.concatenate([z_t, a_t], 1), z_next - z_t, epochs, seed)
    reward = _fit_mlp(Z.reshape(-1, n), R.reshape(-1, 1), epochs, seed + 1)
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(z_t))[:max_samples]
    z = torch.as_tensor(z_t[idx], dtype=torch.float32)
    a = torch.as_tensor(a_t[idx], dtype=torch.float32)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        with torch.no_grad():
            pred = step(torch.cat([z, a], 1))
            residuals = (torch.as_tensor(z_next[idx] - z_t[idx], dtype=torch.float32) - pred).double().numpy()
            other = a[torch.randperm(len(a))]
            effects = (pred - step(torch.cat([z, other], 1))).double().numpy()
        jac = torch.func.vmap(torch.func.jacrev(lambda zz, aa: zz + step(torch.cat([zz, aa])[None])[0]))
        J = jac(z, a).double().numpy()
        d_u = d_ur + d_ui
        U = _uncontrollable_rows(J, effects, residuals, d_u)
        C = scipy.linalg.null_space(U).T
        lag1 = z_next.T @ z_t / len(z_t)
        rows_ci, rows_cr = _irrelevant_rows(C, d_ci, z, a, lag1, step, reward, seed)
        rows_ui, rows_ur = _irrelevant_rows(U, d_ui, z, a, lag1, step, reward, seed + 1)
    P = np.concatenate([rows_cr, rows_ur, rows_ci, rows_ui]) @ whiten
    P = P / (Sc.reshape(-1, n) @ P.T).std(0)[:, None]
    return P, mean
