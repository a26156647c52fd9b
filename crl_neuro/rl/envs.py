"""Gymnasium environments whose latent state has four known blocks (IFactor setting).

The blocks follow Liu, Huang et al. (NeurIPS 2023):

* ``"controllable_relevant"`` (s^{ar}): driven by the action, enters the reward;
* ``"uncontrollable_relevant"`` (s^{ār}): enters the reward, ignores the action;
* ``"controllable_irrelevant"`` (s^{ar̄}): driven by the action, no effect on the reward;
* ``"uncontrollable_irrelevant"`` (s^{ār̄}): neither.

Every step returns the true blocks in ``info["blocks"]`` so that learned
representations can be scored against the ground truth.
"""

from __future__ import annotations

import copy
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces
from sklearn.utils import Bunch

from crl_neuro.core.validation import check_float, check_int

__all__ = ["BLOCK_KEYS", "FourBlockMDP", "DistractorCartPole", "TrueStateObservation", "collect_episodes"]

#: Block names, in the order used throughout :mod:`crl_neuro.rl`.
BLOCK_KEYS: tuple[str, ...] = (
    "controllable_relevant",
    "uncontrollable_relevant",
    "controllable_irrelevant",
    "uncontrollable_irrelevant",
)
_CONTROLLABLE = (True, False, True, False)


def _rotation(theta: float) -> np.ndarray:
    return np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])


class FourBlockMDP(gym.Env):
    """Synthetic MDP with four latent blocks and a nonlinear observation mixing.

    Each block ``k`` of size ``block_dim`` evolves on its own past only::

        s^k_{t+1} = 0.75 R_k s^k_t + 0.35 tanh(W_k s^k_t) + B_k a_t [k controllable] + sigma_k eps

    with ``R_k`` a random rotation-like matrix, ``W_k`` random weights and ``B_k`` an
    invertible action gain (only the two controllable blocks see the action). The reward
    is a nonlinear function of the two reward-relevant blocks at time ``t``::

        r_t = sum(tanh(s^{ar}_t)) + sum(sin(s^{ār}_t)) + reward_noise * eps

    and the observation is ``o_t = g(s_t) + obs_noise * eps`` with ``g`` a random
    two-layer leaky-ReLU network of width ``obs_dim`` (injective almost surely when
    ``obs_dim >= 4 * block_dim``). The structure (matrices, mixing) is fixed by
    ``random_state``; ``reset(seed=...)`` only seeds the episode's noise.

    Parameters
    ----------
    block_dim : int
        Size of every block.
    obs_dim : int
        Observation size.
    action_dim : int
        Size of the continuous action in ``[-1, 1]^action_dim``.
    shared_action : bool
        If False (default, needs ``action_dim >= 2``), the two controllable blocks are
        driven by disjoint halves of the action vector, so that under a random policy
        the four true blocks are independent and the R² matrix of the truth against
        itself is close to the identity. If True both see the whole action, which makes
        them dependent through it (the true blocks then predict each other: compare
        learned R² matrices with ``block_r2_matrix(truth, truth)``).
    max_steps : int
        Episode length (the episode is truncated afterwards).
    process_noise : float
        Standard deviation of the transition noise of the uncontrollable blocks (the
        controllable ones get half of it: their variability comes from the action).
    reward_noise, obs_noise : float
        Noise on the reward and the observation.
    random_state : int | None
        Seed of the environment's structure.

    Notes
    -----
    ``info`` holds ``"blocks"`` (dict block name -> float array ``(block_dim,)`` at the
    returned observation's time) and ``"state"`` (their concatenation, in
    :data:`BLOCK_KEYS` order). The reward returned by ``step`` depends on the state
    *before* the step (``r_t`` of the IFactor convention, see :func:`collect_episodes`).
    """

    metadata = {"render_modes": []}

    def __init__(
        self,
        block_dim: int = 2,
        obs_dim: int = 16,
        action_dim: int = 4,
        shared_action: bool = False,
        max_steps: int = 100,
        process_noise: float = 0.4,
        reward_noise: float = 0.05,
        obs_noise: float = 0.01,
        random_state: int | None = 0,
    ) -> None:
        self.block_dim = check_int(block_dim, "block_dim", min_value=1)
        self.obs_dim = check_int(obs_dim, "obs_dim", min_value=1)
        self.action_dim = check_int(action_dim, "action_dim", min_value=1)
        self.shared_action = bool(shared_action)
        if not self.shared_action and self.action_dim < 2:
            raise ValueError("action_dim must be >= 2 when shared_action=False")
        self.max_steps = check_int(max_steps, "max_steps", min_value=1)
        self.process_noise = check_float(process_noise, "process_noise", min_value=0.0)
        self.reward_noise = check_float(reward_noise, "reward_noise", min_value=0.0)
        self.obs_noise = check_float(obs_noise, "obs_noise", min_value=0.0)
        self.random_state = random_state
        rng = np.random.default_rng(random_state)
        d = self.block_dim
        self._R, self._W, self._B = [], [], []
        for k in range(4):
            q, _ = np.linalg.qr(rng.normal(size=(d, d)))
            if d == 2:
                q = _rotation(rng.uniform(0.3, 1.2)) * rng.choice([-1, 1])
            self._R.append(q)
            self._W.append(rng.normal(scale=1.0, size=(d, d)))
            # Gain with singular values in [1, 1.5]: the action moves the block clearly.
            if self.shared_action:
                cols = np.arange(self.action_dim)
            else:  # block 0 gets the first half of the action, block 2 the second half
                cols = np.array_split(np.arange(self.action_dim), 2)[k // 2]
            u, _, vt = np.linalg.svd(rng.normal(size=(d, cols.size)), full_matrices=False)
            B = np.zeros((d, self.action_dim))
            if _CONTROLLABLE[k]:
                B[:, cols] = (u * rng.uniform(1.0, 1.5, size=u.shape[1])) @ vt
            self._B.append(B)
        n_state = 4 * d
        self._M1 = rng.normal(size=(n_state, self.obs_dim)) / np.sqrt(n_state)
        self._M2 = rng.normal(size=(self.obs_dim, self.obs_dim)) / np.sqrt(self.obs_dim)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(self.obs_dim,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(self.action_dim,), dtype=np.float32)
        self._state = np.zeros(n_state)
        self._t = 0

    # -- model --------------------------------------------------------------------
    def _blocks(self, s: np.ndarray) -> dict[str, np.ndarray]:
        d = self.block_dim
        return {k: s[i * d:(i + 1) * d].copy() for i, k in enumerate(BLOCK_KEYS)}

    def _observe(self, s: np.ndarray) -> np.ndarray:
        h = s @ self._M1
        h = np.where(h > 0, h, 0.2 * h)
        o = h @ self._M2
        o = np.where(o > 0, o, 0.2 * o)
        o = o + self.obs_noise * self.np_random.normal(size=self.obs_dim)
        return o.astype(np.float32)

    def _reward(self, s: np.ndarray) -> float:
        d = self.block_dim
        r = np.tanh(s[:d]).sum() + np.sin(s[d:2 * d]).sum()
        return float(r + self.reward_noise * self.np_random.normal())

    def _transition(self, s: np.ndarray, a: np.ndarray) -> np.ndarray:
        d = self.block_dim
        out = np.empty_like(s)
        for k in range(4):
            sk = s[k * d:(k + 1) * d]
            noise = self.process_noise * (0.5 if _CONTROLLABLE[k] else 1.0)
            out[k * d:(k + 1) * d] = (
                0.75 * self._R[k] @ sk + 0.35 * np.tanh(self._W[k] @ sk) + self._B[k] @ a
                + noise * self.np_random.normal(size=d)
            )
        return out

    def _info(self) -> dict[str, Any]:
        return {"blocks": self._blocks(self._state), "state": self._state.copy(), "t": self._t}

    # -- gymnasium API --------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start an episode from a standard normal state."""
        super().reset(seed=seed)
        self._state = self.np_random.normal(size=4 * self.block_dim)
        self._t = 0
        return self._observe(self._state), self._info()

    def step(self, action: Any):
        """Apply ``action`` (clipped to the action space)."""
        a = np.clip(np.asarray(action, dtype=float).reshape(self.action_dim), -1.0, 1.0)
        reward = self._reward(self._state)
        self._state = self._transition(self._state, a)
        self._t += 1
        truncated = self._t >= self.max_steps
        return self._observe(self._state), reward, False, truncated, self._info()


_THETA_MAX = 0.2095  # 12 degrees: the classic failure angle
_X_MAX = 2.4  # the classic track half-length


def _cartpole_step(state: np.ndarray, force: float, dt: float = 0.02) -> np.ndarray:
    """One Euler step of the classic cart-pole (Barto, Sutton & Anderson 1983) equations."""
    gravity, m_cart, m_pole, half_len = 9.8, 1.0, 0.1, 0.5
    x, x_dot, th, th_dot = state
    total = m_cart + m_pole
    cos, sin = np.cos(th), np.sin(th)
    tmp = (force + m_pole * half_len * th_dot ** 2 * sin) / total
    th_acc = (gravity * sin - cos * tmp) / (half_len * (4.0 / 3.0 - m_pole * cos ** 2 / total))
    x_acc = tmp - m_pole * half_len * th_acc * cos / total
    return np.array([x + dt * x_dot, x_dot + dt * x_acc, th + dt * th_dot, th_dot + dt * th_acc])


class DistractorCartPole(gym.Env):
    """Cart-pole with distractors whose true blocks are known.

    Blocks (see :data:`BLOCK_KEYS`):

    * ``"controllable_relevant"``: the controlled cart-pole ``(x, x_dot, theta, theta_dot)``;
    * ``"uncontrollable_relevant"``: a scalar "wind" AR(1) process that adds to the reward;
    * ``"controllable_irrelevant"``: a lamp ``i in {-1, 1}`` (1 at reset) that every
      push to the right toggles (``i_{t+1} = -i_t`` if ``a_t = 1``); it never enters the
      reward. (A lamp that integrated the pushes would be nearly a function of the
      cart's velocity, i.e. not a separate block.)
    * ``"uncontrollable_irrelevant"``: a second cart-pole pushed by random forces.

    The reward of a step is computed from the state before the step (as in
    :class:`FourBlockMDP`)::

        r_t = 1 + wind_t - pole_penalty * ((theta_t / 0.2095) ** 2 + (x_t / 2.4) ** 2)

    The episode terminates when the controlled pole leaves ±12° (0.2095 rad) or the
    cart ±2.4 (the second cart is reset when it falls). In the classic task the
    cart-pole matters for the return only through termination, which a world model
    fitted on restarted episodes never sees; the penalty (zero at the upright, centred
    state, -2 at the failure bounds) makes it reward-relevant at every step, as the
    IFactor setting requires (``pole_penalty=0`` gives the classic reward ``1 + wind``).
    Caveat: random pushes topple the pole before the cart moves far (position std about
    0.08), so in random-policy data the cart's position explains only about 0.01 % of
    the reward's variance (its penalty matters once a policy balances the pole), and the
    cart's position and velocity are barely distinguishable there from a reward-
    irrelevant factor. A position scale of 0.25 instead of 2.4 would make them relevant
    in the data (about 10 % of the variance) but made the task too hard for the linear
    policies of ``benchmarks/bench_rl.py`` (return about 40 on the true state).
    Observations are a fixed random linear mixing of the 10-dimensional state
    (``obs_dim`` features) plus noise. Actions: ``Discrete(2)`` (push left/right).

    Parameters
    ----------
    obs_dim : int
        Observation size (>= 10 to keep the mixing injective).
    max_steps : int
        Truncation length.
    obs_noise : float
        Observation noise.
    pole_penalty : float
        Weight of the pole-angle and cart-position penalty in the reward.
    random_state : int | None
        Seed of the mixing.
    """

    metadata = {"render_modes": []}
    _DIMS = (4, 1, 1, 4)

    def __init__(self, obs_dim: int = 16, max_steps: int = 200, obs_noise: float = 0.01,
                 pole_penalty: float = 1.0, random_state: int | None = 0) -> None:
        self.obs_dim = check_int(obs_dim, "obs_dim", min_value=10)
        self.max_steps = check_int(max_steps, "max_steps", min_value=1)
        self.obs_noise = check_float(obs_noise, "obs_noise", min_value=0.0)
        self.pole_penalty = check_float(pole_penalty, "pole_penalty", min_value=0.0)
        self.random_state = random_state
        rng = np.random.default_rng(random_state)
        self._M = rng.normal(size=(10, self.obs_dim)) / np.sqrt(10)
        # Per-state scaling so that, under a random policy, every variable has a standard
        # deviation of about 1 in the observation (else the VAE neglects the small ones).
        self._scale = np.array([10.0, 2.0, 10.0, 1.25, 2.5, 1.0, 10.0, 2.0, 10.0, 1.25])
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(self.obs_dim,), dtype=np.float32)
        self.action_space = spaces.Discrete(2)
        self._state = np.zeros(10)
        self._t = 0

    def _blocks(self) -> dict[str, np.ndarray]:
        off = np.cumsum((0,) + self._DIMS)
        return {k: self._state[off[i]:off[i + 1]].copy() for i, k in enumerate(BLOCK_KEYS)}

    def _observe(self) -> np.ndarray:
        o = (self._state * self._scale) @ self._M
        return (o + self.obs_noise * self.np_random.normal(size=self.obs_dim)).astype(np.float32)

    def _info(self) -> dict[str, Any]:
        return {"blocks": self._blocks(), "state": self._state.copy(), "t": self._t}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Start with both poles near upright, wind and indicator at 0."""
        super().reset(seed=seed)
        self._state = np.zeros(10)
        self._state[:4] = self.np_random.uniform(-0.05, 0.05, size=4)
        self._state[5] = 1.0
        self._state[6:] = self.np_random.uniform(-0.05, 0.05, size=4)
        self._t = 0
        return self._observe(), self._info()

    def step(self, action: Any):
        """Push the controlled cart left (0) or right (1)."""
        if not self.action_space.contains(action):
            raise ValueError(f"action must be 0 or 1, got {action!r}")
        s = self._state
        reward = 1.0 + float(s[4]) - self.pole_penalty * float(
            (s[2] / _THETA_MAX) ** 2 + (s[0] / _X_MAX) ** 2)
        push = 2.0 * int(action) - 1.0
        new = np.empty(10)
        new[:4] = _cartpole_step(s[:4], 10.0 * push)
        new[4] = 0.9 * s[4] + 0.2 * self.np_random.normal()
        new[5] = -s[5] if int(action) == 1 else s[5]  # a lamp toggled by every right push
        new[6:] = _cartpole_step(s[6:], 10.0 * self.np_random.choice([-1.0, 1.0]))
        if abs(new[6]) > 2.4 or abs(new[8]) > 0.21:  # the distractor cart restarts silently
            new[6:] = self.np_random.uniform(-0.05, 0.05, size=4)
        self._state = new
        self._t += 1
        terminated = bool(abs(new[0]) > _X_MAX or abs(new[2]) > _THETA_MAX)
        truncated = self._t >= self.max_steps
        return self._observe(), reward, terminated, truncated, self._info()


class TrueStateObservation(gym.Wrapper):
    """Replace the observation by chosen true blocks of the state (an oracle representation).

    Used as the reference for policy learning: a policy on the true state is what
    a policy on learned blocks should match.

    Parameters
    ----------
    env : gymnasium.Env
        An environment exposing ``info["blocks"]`` (:class:`FourBlockMDP`,
        :class:`DistractorCartPole`).
    blocks : sequence of str | None
        Blocks to concatenate, in this order; ``None``: all four (the whole state).
    """

    def __init__(self, env: gym.Env, blocks: Any = None) -> None:
        super().__init__(env)
        blocks = BLOCK_KEYS if blocks is None else blocks
        if isinstance(blocks, str) or not all(b in BLOCK_KEYS for b in blocks) or len(blocks) == 0:
            raise ValueError(f"blocks must be a non-empty list of names from {list(BLOCK_KEYS)}, got {blocks!r}")
        self.blocks = tuple(blocks)
        _, info = copy.deepcopy(env).reset(seed=0)
        n = sum(np.asarray(info["blocks"][b]).size for b in self.blocks)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(n,), dtype=np.float32)

    def _state(self, info: dict) -> np.ndarray:
        return np.concatenate([np.asarray(info["blocks"][b], dtype=np.float32).ravel() for b in self.blocks])

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        """Reset the wrapped env; the observation is the chosen true blocks."""
        _, info = self.env.reset(seed=seed, options=options)
        return self._state(info), info

    def step(self, action: Any):
        """Step the wrapped env; the observation is the chosen true blocks."""
        _, reward, terminated, truncated, info = self.env.step(action)
        return self._state(info), reward, terminated, truncated, info


def collect_episodes(
    env: gym.Env,
    n_episodes: int = 20,
    n_steps: int = 100,
    policy: Any = None,
    random_state: int | None = None,
) -> Bunch:
    """Roll out ``env`` and return arrays in the layout of :class:`IFactorWorldModel`.

    Parameters
    ----------
    env : gymnasium.Env
        An environment exposing ``info["blocks"]`` (e.g. :class:`FourBlockMDP`).
        Box action spaces are used as they are; Discrete actions are returned one-hot.
    n_episodes, n_steps : int
        Number and length of the episodes (episodes that end earlier are restarted
        so that every row has ``n_steps`` steps).
    policy : callable, optional
        ``policy(observation, rng) -> action``; default: uniform random actions (an
        exploratory policy, which is what identification of controllable blocks needs).
    random_state : int | None
        Seeds the resets and the default policy.

    Returns
    -------
    data : Bunch
        ``observations`` (n_episodes, n_steps, obs_dim), ``actions``
        (n_episodes, n_steps, action_dim), ``rewards`` (n_episodes, n_steps) with
        ``rewards[:, t]`` a function of the state at ``t`` and ``actions[:, t]`` taken
        after ``observations[:, t]``; ``is_first`` (n_episodes, n_steps) bool, True
        where a step starts an episode (each row's first step and the step after every
        restart; pass it to :meth:`IFactorWorldModel.fit`); ``blocks`` dict of
        (n_episodes, n_steps, dim) true blocks at each observation's time.
    """
    n_episodes = check_int(n_episodes, "n_episodes", min_value=1)
    n_steps = check_int(n_steps, "n_steps", min_value=1)
    rng = np.random.default_rng(random_state)
    discrete = isinstance(env.action_space, spaces.Discrete)
    n_act = int(env.action_space.n) if discrete else int(np.prod(env.action_space.shape))
    obs_l, act_l, rew_l, first_l = [], [], [], []
    blocks_l: dict[str, list] = {}
    for ep in range(n_episodes):
        obs, info = env.reset(seed=int(rng.integers(2**31 - 1)))
        o_ep, a_ep, r_ep, f_ep, b_ep = [], [], [], [], {}
        first = True
        for _ in range(n_steps):
            if policy is None:
                act = int(rng.integers(n_act)) if discrete else rng.uniform(
                    env.action_space.low, env.action_space.high).astype(np.float32)
            else:
                act = policy(obs, rng)
            o_ep.append(np.asarray(obs, dtype=float).ravel())
            f_ep.append(first)
            for k, v in info["blocks"].items():
                b_ep.setdefault(k, []).append(np.asarray(v, dtype=float).ravel())
            nxt, reward, terminated, truncated, info_next = env.step(act)
            a_ep.append(np.eye(n_act)[int(act)] if discrete else np.asarray(act, dtype=float).ravel())
            r_ep.append(reward)
            first = bool(terminated or truncated)
            if first:
                nxt, info_next = env.reset(seed=int(rng.integers(2**31 - 1)))
            obs, info = nxt, info_next
        obs_l.append(o_ep)
        act_l.append(a_ep)
        rew_l.append(r_ep)
        first_l.append(f_ep)
        for k, v in b_ep.items():
            blocks_l.setdefault(k, []).append(v)
    return Bunch(
        observations=np.asarray(obs_l),
        actions=np.asarray(act_l),
        rewards=np.asarray(rew_l, dtype=float),
        is_first=np.asarray(first_l, dtype=bool),
        blocks={k: np.asarray(v) for k, v in blocks_l.items()},
    )
