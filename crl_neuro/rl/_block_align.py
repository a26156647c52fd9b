"""Block identification of a world model's latent state from actions and rewards (private).

The four IFactor blocks are defined by two properties that can be read off a trained
world model's latent ``s`` without ground truth, by probing two small regressors fitted
on the latent trajectories, ``s_{t+1} - s_t = f(s_t, a_t)`` and ``r_t = rho(s_t)``:

* **controllable**: the action moves it. Rolling ``f`` forward a few steps from the same
  state, once with the action taken and once with another action from the data, gives
  difference vectors; the leading eigenvectors of their second-moment matrix are the
  controllable coordinates, the others the uncontrollable ones. Several steps are
  needed because an action may reach a factor only through another one.
* **reward-relevant**: the reward depends on it, now or a few steps later. The outer
  product of gradients ``E[grad g grad g^T]``, summed over ``g = rho(s_t)``,
  ``rho(s_{t+1})``, ... (rolled out with ``f`` and the actions taken), measures how
  much the reward depends on each coordinate.

Everything is done in whitened coordinates of ``s``: the true blocks evolve separately
and the actions are exploratory, so the blocks are uncorrelated, i.e. orthogonal
subspaces there. The controllable and the uncontrollable coordinates are each split
by relevance (eigenvectors of the relevance matrix restricted to them). Ranking
relevance inside each part, rather than over the whole state, matters: a factor with a
small share of the reward is still far above the irrelevant ones of its own part.

The map is linear in ``s``: it assumes the world model has learned the state up to an
invertible map that is close to linear *across* blocks (nonlinearity inside a block is
harmless). Gradient training of the sequential VAE often leaves factors in the wrong
block; this step re-assigns them.
"""

from __future__ import annotations

import numpy as np


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
    scale = torch.as_tensor(y_sd, dtype=torch.float32)
    shift = torch.as_tensor(y_mean, dtype=torch.float32)
    return lambda x: net(x) * scale + shift


def _probes(S: np.ndarray, A: np.ndarray, R: np.ndarray, steps: int, seed: int,
            epochs: int) -> tuple[np.ndarray, np.ndarray]:
    """Second-moment matrices (n, n) of the action effects and of the reward gradients."""
    import torch

    _, T, n = S.shape
    m = A.shape[-1]
    step = _fit_mlp(np.concatenate([S[:, :-1].reshape(-1, n), A[:, :-1].reshape(-1, m)], 1),
                    (S[:, 1:] - S[:, :-1]).reshape(-1, n), epochs, seed)
    reward = _fit_mlp(S.reshape(-1, n), R.reshape(-1, 1), epochs, seed + 1)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # start states that have ``steps`` further actions inside their episode
        s0 = torch.as_tensor(S[:, :T - steps].reshape(-1, n), dtype=torch.float32)
        acts = torch.as_tensor(np.stack([A[:, k:T - steps + k] for k in range(steps)], 2)
                               .reshape(-1, steps, m), dtype=torch.float32)
        other = acts[torch.randperm(len(acts)), 0]
        control, relevance = torch.zeros(n, n), torch.zeros(n, n)
        start = s0.clone().requires_grad_(True)
        s, s_other = start, s0
        for k in range(steps + 1):
            g = torch.autograd.grad(reward(s).sum(), start, retain_graph=True)[0]
            relevance += g.T @ g / len(g)
            if k == steps:
                break
            s_other = (s_other + step(torch.cat([s_other, other if k == 0 else acts[:, k]], 1))).detach()
            s = s + step(torch.cat([s, acts[:, k]], 1))
            d = s.detach() - s_other
            control += d.T @ d / len(d)
    return control.double().numpy(), relevance.double().numpy()


def _by_relevance(rows: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    """Orthonormal rows spanning ``rows``, sorted by decreasing ``c^T relevance c``."""
    vecs = np.linalg.eigh(rows @ relevance @ rows.T)[1][:, ::-1]
    return vecs.T @ rows


def block_alignment(
    S: np.ndarray,
    A: np.ndarray,
    R: np.ndarray,
    block_dims: list[int],
    steps: int = 3,
    seed: int = 0,
    epochs: int = 100,
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
    steps : int
        Steps the probes roll the fitted dynamics forward.
    seed : int
        Seed of the probe regressors.
    epochs : int
        Training epochs of each probe regressor.

    Returns
    -------
    P : ndarray, shape (n, n)
        Rows grouped by block; the blocks are ``(s - mean) @ P.T`` split by ``block_dims``,
        each coordinate with unit variance.
    mean : ndarray, shape (n,)
        Mean latent state.
    """
    d_cr, d_ur, d_ci, d_ui = (int(d) for d in block_dims)
    n = S.shape[-1]
    if d_cr + d_ur + d_ci + d_ui != n:
        raise ValueError(f"block_dims {block_dims} do not sum to the latent size {n}")
    mean = S.reshape(-1, n).mean(0)
    Sc = S - mean
    evals, evecs = np.linalg.eigh(np.cov(Sc.reshape(-1, n), rowvar=False))
    whiten = evecs @ np.diag(1.0 / np.sqrt(np.maximum(evals, 1e-12 * evals.max()))) @ evecs.T
    A = A - A.reshape(-1, A.shape[-1]).mean(0)
    control, relevance = _probes(Sc @ whiten, A, R, min(steps, S.shape[1] - 1), seed, epochs)
    # the action splits the state into controllable / uncontrollable coordinates ...
    by_control = np.linalg.eigh(control)[1][:, ::-1].T
    controllable, uncontrollable = by_control[:d_cr + d_ci], by_control[d_cr + d_ci:]
    # ... and the reward splits each of them: its most relevant coordinates first
    rows_cr, rows_ci = np.split(_by_relevance(controllable, relevance), [d_cr])
    rows_ur, rows_ui = np.split(_by_relevance(uncontrollable, relevance), [d_ur])
    P = np.concatenate([rows_cr, rows_ur, rows_ci, rows_ui]) @ whiten
    P = P / (Sc.reshape(-1, n) @ P.T).std(0)[:, None]
    return P, mean
