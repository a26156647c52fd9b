"""A small policy learner on chosen latent blocks: linear policies found by the cross-entropy method.

What it is, exactly: a *model-free* direct policy search. A linear policy maps a
feature vector (the raw observation, the true state, or chosen blocks of a fitted
:class:`~crl_neuro.rl.IFactorWorldModel` through :class:`BlockFeatures`) to an
action; its weights are searched with the cross-entropy method (Rubinstein 1999;
for policies, Szita & Lőrincz 2006) on returns of **real environment rollouts**.
The world model is used only as the state encoder. This is enough to compare
state representations at equal budget (episode return vs environment steps): a
representation that drops the distractors leaves fewer weights to search and
less noise in the actions.

Every candidate of a generation is evaluated on the same episode seeds (common
random numbers), and all rollouts of a generation are stepped in lockstep so the
feature map sees one batch per time step.
"""

from __future__ import annotations

import copy
from typing import Any, Callable, ClassVar, Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from crl_neuro.core.base import (
    ArraySpec,
    BaseCRLEstimator,
    check_is_fitted,
    fill_doc,
    logger,
)
from crl_neuro.core.validation import (
    check_float,
    check_generator,
    check_int,
    check_seed,
)
from crl_neuro.rl.envs import BLOCK_KEYS

__all__ = ["BlockFeatures", "CEMPolicy"]


class BlockFeatures:
    """Feature map: observations -> concatenated posterior means of chosen learned blocks.

    Parameters
    ----------
    model : IFactorWorldModel
        A fitted world model.
    blocks : sequence of str
        Blocks to keep, among :data:`~crl_neuro.rl.BLOCK_KEYS`; the default, the two
        reward-relevant blocks, is what IFactor says a policy needs.

    Examples
    --------
    >>> feats = BlockFeatures(model)                       # doctest: +SKIP
    >>> policy = CEMPolicy(features=feats).fit(env)        # doctest: +SKIP
    """

    def __init__(self, model: Any,
                 blocks: Sequence[str] = ("controllable_relevant", "uncontrollable_relevant")) -> None:
        check_is_fitted(model, "module_")
        if isinstance(blocks, str) or not isinstance(blocks, Sequence) or len(blocks) == 0:
            raise TypeError(f"blocks must be a non-empty list of block names from {list(BLOCK_KEYS)}, "
                            f"got {blocks!r}")
        unknown = [b for b in blocks if b not in BLOCK_KEYS]
        if unknown:
            raise ValueError(f"blocks has unknown name(s) {unknown}; choose from {list(BLOCK_KEYS)}")
        self.model = model
        self.blocks = tuple(blocks)

    def __call__(self, observations: Any) -> np.ndarray:
        """Encode observations ``(n, obs_dim)`` into features ``(n, sum of block sizes)``."""
        O = np.asarray(observations, dtype=float)
        if O.ndim != 2:
            raise ValueError(f"observations must be 2D (n, obs_dim), got shape {O.shape}")
        z = self.model.transform(O[:, None, :])
        return np.concatenate([z[b][:, 0] for b in self.blocks], axis=-1)


def _space_info(space: spaces.Space) -> tuple[bool, int, np.ndarray | None, np.ndarray | None]:
    if isinstance(space, spaces.Discrete):
        return True, int(space.n), None, None
    if isinstance(space, spaces.Box) and len(space.shape) == 1 and np.all(np.isfinite(space.low)) \
            and np.all(np.isfinite(space.high)):
        return False, int(space.shape[0]), space.low.astype(float), space.high.astype(float)
    raise TypeError(
        "env.action_space must be Discrete or a bounded 1D Box, got " f"{space!r}"
    )


@fill_doc
class CEMPolicy(BaseCRLEstimator):
    """Linear policy on a feature map, trained by the cross-entropy method on real rollouts.

    The policy is ``a = argmax_k W [f(o); 1]`` for a ``Discrete`` action space (with
    two actions, one score: ``a = 1`` if ``w . [f(o); 1] > 0``) and
    ``a = low + (tanh(W [f(o); 1]) + 1) (high - low) / 2`` for a bounded ``Box``, with
    ``f`` the feature map standardised by statistics of a short random-action warm-up.
    Each generation samples ``population`` weight matrices from a diagonal Gaussian,
    runs each for ``n_episodes`` episodes, and refits the Gaussian to the best
    ``elite_frac`` of them; ``extra_std`` (decaying to 0) keeps it from collapsing early.

    Parameters
    ----------
    features : callable or None
        ``features(observations (n, obs_dim)) -> (n, n_features)``, e.g.
        :class:`BlockFeatures`; ``None`` uses the observation itself. (Wrap the env in
        :class:`~crl_neuro.rl.TrueStateObservation` for a true-state policy.) A
        callable cannot be saved with :meth:`save`.
    n_iter : int
        Number of generations.
    population : int
        Candidates per generation.
    elite_frac : float
        Fraction of candidates the Gaussian is refitted to.
    n_episodes : int
        Episodes per candidate per generation (same seeds for all candidates).
    init_std, extra_std : float
        Initial standard deviation of the weights and extra exploration noise
        (linearly decayed to 0 over the generations).
    warmup_episodes : int
        Random-action episodes used to standardise the features (their steps count
        in ``history_["env_steps"]``). Too few give a biased centre, which acts as a
        large random bias on the policy's scores (3 episodes failed 1 seed in 6 on
        :class:`~crl_neuro.rl.DistractorCartPole`, 10 none).
    max_episode_steps : int | None
        Cut episodes after this many steps (``None``: rely on the environment's own
        truncation; needed for environments that never end).
    eval_episodes : int
        After each generation the mean policy is evaluated on this many episodes with
        fixed seeds (``history_["eval_return"]``; these steps are *not* counted as
        training steps). 0 disables it.
    %(random_state)s
    %(verbose)s

    Attributes
    ----------
    weights_ : ndarray, shape (n_outputs, n_features + 1)
        Mean of the final search distribution (the policy's weights; last column bias).
    feature_mean_, feature_scale_ : ndarray, shape (n_features,)
        Standardisation of the features.
    history_ : dict of lists
        Per generation: ``"env_steps"`` (cumulative training steps including the
        warm-up), ``"mean_return"`` (population), ``"elite_return"``,
        ``"eval_return"`` (mean policy; present when ``eval_episodes > 0``).
    n_features_ : int
        Number of features.
    discrete_ : bool
        Whether the action space is ``Discrete``.
    action_low_, action_high_ : ndarray or None
        Bounds of a ``Box`` action space (``None`` for ``Discrete``).
    """

    # Checked by crl_neuro.load.
    _fitted_arrays: ClassVar[dict[str, ArraySpec]] = {
        "feature_mean_": ArraySpec("f", ("n_features_",)),
        "feature_scale_": ArraySpec("f", ("n_features_",)),
        "weights_": ArraySpec("f", (None, None)),
    }

    def __init__(
        self,
        features: Callable[[np.ndarray], np.ndarray] | None = None,
        n_iter: int = 10,
        population: int = 24,
        elite_frac: float = 0.25,
        n_episodes: int = 1,
        init_std: float = 1.0,
        extra_std: float = 0.2,
        warmup_episodes: int = 10,
        max_episode_steps: int | None = None,
        eval_episodes: int = 5,
        random_state: int | np.random.RandomState | None = None,
        verbose: bool | int | str | None = 0,
    ) -> None:
        self.features = features
        self.n_iter = n_iter
        self.population = population
        self.elite_frac = elite_frac
        self.n_episodes = n_episodes
        self.init_std = init_std
        self.extra_std = extra_std
        self.warmup_episodes = warmup_episodes
        self.max_episode_steps = max_episode_steps
        self.eval_episodes = eval_episodes
        self.random_state = random_state
        self.verbose = verbose

    # -- internals ------------------------------------------------------------------
    def _featurize(self, observations: np.ndarray) -> np.ndarray:
        O = np.asarray(observations, dtype=float).reshape(len(observations), -1)
        F = O if self.features is None else np.asarray(self.features(O), dtype=float)
        if F.ndim != 2 or F.shape[0] != O.shape[0]:
            raise ValueError(f"features must map (n, obs_dim) to (n, n_features), got shape {F.shape}")
        return F

    def _act(self, weights: np.ndarray, F: np.ndarray) -> list:
        """Actions for rows of standardised features ``F`` under per-row ``weights``."""
        X = np.concatenate([F, np.ones((F.shape[0], 1))], axis=1)
        out = np.einsum("nok,nk->no", weights, X)
        if self.discrete_:
            if out.shape[1] == 1:  # two actions: the sign of one score
                return [int(o > 0) for o in out[:, 0]]
            return [int(i) for i in out.argmax(axis=1)]
        lo, hi = np.asarray(self.action_low_), np.asarray(self.action_high_)
        return [(lo + (np.tanh(o) + 1.0) * 0.5 * (hi - lo)).astype(np.float32) for o in out]

    def _rollouts(self, env: gym.Env, weights: np.ndarray | None, seeds: np.ndarray,
                  rng: np.random.Generator, max_steps: int | None) -> tuple[np.ndarray, int, list]:
        """Run one episode per row of ``weights`` (None: random actions) with ``seeds``.

        Returns the returns, the total number of steps and the raw observations seen.
        """
        n = len(seeds)
        envs = [copy.deepcopy(env) for _ in range(n)]
        obs = [e.reset(seed=int(s))[0] for e, s in zip(envs, seeds)]
        returns, alive, t, steps, seen = np.zeros(n), np.ones(n, bool), 0, 0, []
        while alive.any() and (max_steps is None or t < max_steps):
            idx = np.flatnonzero(alive)
            O = np.stack([np.asarray(obs[i], dtype=float).ravel() for i in idx])
            seen.append(O)
            if weights is None:  # random actions from our own generator (copies share the env's)
                space = env.action_space
                acts = ([int(rng.integers(space.n)) for _ in idx] if self.discrete_ else
                        [rng.uniform(space.low, space.high).astype(np.float32) for _ in idx])
            else:
                F = (self._featurize(O) - self.feature_mean_) / self.feature_scale_
                acts = self._act(weights[idx], F)
            for i, a in zip(idx, acts):
                o, r, term, trunc, _ = envs[i].step(a)
                obs[i] = o
                returns[i] += float(r)
                steps += 1
                if term or trunc:
                    alive[i] = False
            t += 1
        return returns, steps, seen

    # -- API ------------------------------------------------------------------------
    def fit(self, env: gym.Env) -> "CEMPolicy":
        """Search the policy's weights on rollouts of ``env``.

        Parameters
        ----------
        env : gymnasium.Env
            The environment (copied for the rollouts, never stepped itself); its
            observations are what ``features`` receives.

        Returns
        -------
        self : CEMPolicy
        """
        if not isinstance(env, gym.Env):
            raise TypeError(f"env must be a gymnasium.Env, got {type(env).__name__}")
        if self.features is not None and not callable(self.features):
            raise TypeError(f"features must be a callable or None, got {type(self.features).__name__}")
        n_iter = check_int(self.n_iter, "n_iter", min_value=1)
        population = check_int(self.population, "population", min_value=2)
        elite_frac = check_float(self.elite_frac, "elite_frac", min_value=0.0, max_value=1.0, inclusive=False)
        n_episodes = check_int(self.n_episodes, "n_episodes", min_value=1)
        init_std = check_float(self.init_std, "init_std", min_value=0.0, inclusive=False)
        extra_std = check_float(self.extra_std, "extra_std", min_value=0.0)
        warmup = check_int(self.warmup_episodes, "warmup_episodes", min_value=1)
        max_steps = (None if self.max_episode_steps is None
                     else check_int(self.max_episode_steps, "max_episode_steps", min_value=1))
        eval_episodes = check_int(self.eval_episodes, "eval_episodes", min_value=0)
        # the shared policy: an int seeds as before, None draws from numpy's global state
        rng = check_generator(check_seed(self.random_state))
        self.discrete_, n_out, low, high = _space_info(env.action_space)
        if self.discrete_ and n_out == 2:
            n_out = 1  # two actions need one score, not two redundant ones
        self.action_low_ = None if low is None else low
        self.action_high_ = None if high is None else high

        # Warm-up with random actions: standardise the features.
        _, steps, seen = self._rollouts(env, None, rng.integers(2**31 - 1, size=warmup), rng, max_steps)
        F = self._featurize(np.concatenate(seen))
        self.feature_mean_ = F.mean(axis=0)
        self.feature_scale_ = F.std(axis=0) + 1e-8
        self.n_features_ = int(F.shape[1])
        shape = (n_out, self.n_features_ + 1)
        mean, std = np.zeros(shape), np.full(shape, init_std)
        n_elite = max(1, int(round(elite_frac * population)))
        eval_seeds = rng.integers(2**31 - 1, size=max(eval_episodes, 1))
        history: dict[str, list] = {"env_steps": [], "mean_return": [], "elite_return": []}
        if eval_episodes:
            history["eval_return"] = []
        total = steps
        for it in range(n_iter):
            W = mean + std * rng.normal(size=(population,) + shape)
            seeds = rng.integers(2**31 - 1, size=n_episodes)
            # Candidate-major order: rows c * n_episodes + e.
            ret, steps, _ = self._rollouts(env, np.repeat(W, n_episodes, axis=0),
                                           np.tile(seeds, population), rng, max_steps)
            total += steps
            score = ret.reshape(population, n_episodes).mean(axis=1)
            elite = np.argsort(score)[::-1][:n_elite]
            mean = W[elite].mean(axis=0)
            std = W[elite].std(axis=0) + extra_std * max(0.0, 1.0 - it / n_iter)
            history["env_steps"].append(int(total))
            history["mean_return"].append(float(score.mean()))
            history["elite_return"].append(float(score[elite].mean()))
            if eval_episodes:
                r, _, _ = self._rollouts(env, np.repeat(mean[None], eval_episodes, axis=0),
                                         eval_seeds[:eval_episodes], rng, max_steps)
                history["eval_return"].append(float(r.mean()))
            extra = f" eval {history['eval_return'][-1]:.1f}" if eval_episodes else ""
            logger.info(f"CEM generation {it + 1}/{n_iter}: steps {total}, mean return "
                        f"{score.mean():.1f}, elite {score[elite].mean():.1f}{extra}")
        self.weights_ = mean
        self.history_ = history
        return self

    def predict(self, observations: Any) -> np.ndarray:
        """Greedy actions for a batch of observations.

        Parameters
        ----------
        observations : array-like, shape (n, obs_dim)

        Returns
        -------
        actions : ndarray
            ``(n,)`` integers (Discrete) or ``(n, action_dim)`` floats (Box).
        """
        check_is_fitted(self, "weights_")
        O = np.asarray(observations, dtype=float)
        if O.ndim != 2:
            raise ValueError(f"observations must be 2D (n, obs_dim), got shape {O.shape}")
        F = (self._featurize(O) - self.feature_mean_) / self.feature_scale_
        if F.shape[1] != self.n_features_:
            raise ValueError(f"features have {F.shape[1]} columns; the policy was fitted on {self.n_features_}")
        acts = self._act(np.repeat(self.weights_[None], len(F), axis=0), F)
        return np.asarray(acts)

    def evaluate(self, env: gym.Env, n_episodes: int = 10, max_episode_steps: int | None = None,
                 random_state: int | None = None) -> np.ndarray:
        """Returns of the fitted policy on ``n_episodes`` episodes of ``env``.

        Parameters
        ----------
        env : gymnasium.Env
            Environment (copied, never stepped itself).
        n_episodes : int
            Number of episodes.
        max_episode_steps : int | None
            Cut episodes after this many steps (default: the value used in ``fit``).
        random_state : int | None
            Seeds the episodes (same seed, same episodes, whatever the policy).

        Returns
        -------
        returns : ndarray, shape (n_episodes,)
        """
        check_is_fitted(self, "weights_")
        if not isinstance(env, gym.Env):
            raise TypeError(f"env must be a gymnasium.Env, got {type(env).__name__}")
        n_episodes = check_int(n_episodes, "n_episodes", min_value=1)
        if max_episode_steps is None:
            max_episode_steps = self.max_episode_steps
        else:
            max_episode_steps = check_int(max_episode_steps, "max_episode_steps", min_value=1)
        discrete, n_out, _, _ = _space_info(env.action_space)
        n_out = 1 if discrete and n_out == 2 else n_out
        if discrete != self.discrete_ or n_out != self.weights_.shape[0]:
            raise ValueError(f"env.action_space {env.action_space!r} differs from the one the policy "
                             "was fitted on")
        rng = check_generator(random_state)
        seeds = rng.integers(2**31 - 1, size=n_episodes)
        ret, _, _ = self._rollouts(env, np.repeat(self.weights_[None], n_episodes, axis=0), seeds,
                                   rng, max_episode_steps)
        return ret
