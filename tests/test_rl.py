"""Tests of crl_neuro.rl: four-block Gymnasium environment and IFactorWorldModel."""

import warnings

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import crl_neuro

gymnasium = pytest.importorskip("gymnasium")

from crl_neuro.rl import (  # noqa: E402  (needs gymnasium)
    BLOCK_KEYS,
    FourBlockMDP,
    IFactorWorldModel,
    block_r2_matrix,
    collect_episodes,
)

DIMS = {k: 2 for k in BLOCK_KEYS}
FAST = dict(hidden=32, max_iter=40, batch_size=16, lr=3e-3, transition_inputs="own")


@pytest.fixture(autouse=True)
def _one_thread():
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(old)


@pytest.fixture(scope="module")
def data():
    return collect_episodes(FourBlockMDP(random_state=0), n_episodes=12, n_steps=60, random_state=1)


@pytest.fixture(scope="module")
def small_data():
    return collect_episodes(FourBlockMDP(random_state=0), n_episodes=4, n_steps=20, random_state=2)


@pytest.fixture(scope="module")
def fitted(small_data):
    d = small_data
    return IFactorWorldModel(DIMS, random_state=0, **FAST).fit(d.observations, d.actions, d.rewards)


# -- environment ----------------------------------------------------------------
def test_env_passes_gymnasium_checker():
    from gymnasium.utils.env_checker import check_env

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unbounded Box / no render modes are intended
        check_env(FourBlockMDP(random_state=0), skip_render_check=True)


def test_env_info_exposes_blocks_and_reward_structure():
    env = FourBlockMDP(block_dim=3, obs_dim=20, action_dim=2, reward_noise=0.0, random_state=3)
    obs, info = env.reset(seed=0)
    assert obs.shape == (20,) and obs.dtype == np.float32
    assert set(info["blocks"]) == set(BLOCK_KEYS)
    assert all(v.shape == (3,) for v in info["blocks"].values())
    s = info["blocks"]
    expected = np.tanh(s["controllable_relevant"]).sum() + np.sin(s["uncontrollable_relevant"]).sum()
    _, reward, terminated, truncated, info2 = env.step(np.zeros(2, dtype=np.float32))
    assert reward == pytest.approx(expected)  # reward depends on the relevant blocks only
    assert not terminated and not truncated
    np.testing.assert_allclose(info2["state"], np.concatenate([info2["blocks"][k] for k in BLOCK_KEYS]))


def test_env_actions_only_move_controllable_blocks():
    env = FourBlockMDP(process_noise=0.0, random_state=0)
    ends = []
    for a in (-1.0, 1.0):
        env.reset(seed=5)
        _, _, _, _, info = env.step(np.full(4, a, dtype=np.float32))
        ends.append(info["blocks"])
    for k, controllable in zip(BLOCK_KEYS, (True, False, True, False)):
        moved = not np.allclose(ends[0][k], ends[1][k])
        assert moved == controllable, k


def test_collect_episodes_layout(small_data):
    d = small_data
    assert d.observations.shape == (4, 20, 16)
    assert d.actions.shape == (4, 20, 4)
    assert d.rewards.shape == (4, 20)
    assert all(d.blocks[k].shape == (4, 20, 2) for k in BLOCK_KEYS)
    # rewards[:, t] is the reward of the state at t
    b = d.blocks
    r = np.tanh(b["controllable_relevant"]).sum(-1) + np.sin(b["uncontrollable_relevant"]).sum(-1)
    assert np.corrcoef(r.ravel(), d.rewards.ravel())[0, 1] > 0.99


# -- model ---------------------------------------------------------------------
def test_shapes_of_transform_imagine_and_reward(fitted, small_data):
    d = small_data
    z = fitted.transform(d.observations, d.actions)
    assert set(z) == set(BLOCK_KEYS)
    assert all(z[k].shape == (4, 20, 2) for k in BLOCK_KEYS)
    roll = fitted.imagine(d.observations[:, 0], d.actions[:, :5])
    assert all(roll["blocks"][k].shape == (4, 6, 2) for k in BLOCK_KEYS)
    assert roll["rewards"].shape == (4, 6)
    assert roll["observations"].shape == (4, 6, 16)
    np.testing.assert_allclose(roll["blocks"]["controllable_relevant"][:, 0],
                               z["controllable_relevant"][:, 0], atol=1e-5)
    s1 = fitted.imagine(d.observations[:, 0], d.actions[:, :5], sample=True, random_state=1)
    s2 = fitted.imagine(d.observations[:, 0], d.actions[:, :5], sample=True, random_state=1)
    np.testing.assert_array_equal(s1["rewards"], s2["rewards"])
    assert fitted.predict_reward(d.observations).shape == (4, 20)


def test_reproducible_and_clone(small_data, fitted):
    d = small_data
    other = clone(fitted).fit(d.observations, d.actions, d.rewards)
    a = fitted.transform(d.observations)
    b = other.transform(d.observations)
    for k in BLOCK_KEYS:
        np.testing.assert_array_equal(a[k], b[k])


def test_save_load_roundtrip(tmp_path, fitted, small_data):
    d = small_data
    path = fitted.save(tmp_path / "wm.crl")
    loaded = crl_neuro.load(path)
    assert isinstance(loaded, IFactorWorldModel)
    a, b = fitted.transform(d.observations), loaded.transform(d.observations)
    for k in BLOCK_KEYS:
        np.testing.assert_allclose(a[k], b[k], rtol=1e-6, atol=1e-6)


def test_not_fitted_and_bad_input(small_data, fitted):
    d = small_data
    with pytest.raises(NotFittedError):
        IFactorWorldModel(DIMS).transform(d.observations)
    with pytest.raises(ValueError, match="block_dims"):
        IFactorWorldModel({"controllable_relevant": 2}).fit(d.observations, d.actions, d.rewards)
    with pytest.raises(TypeError, match="block_dims"):
        IFactorWorldModel([2, 2, 2, 2]).fit(d.observations, d.actions, d.rewards)
    with pytest.raises(ValueError, match="observations"):
        IFactorWorldModel(DIMS).fit(d.observations[0], d.actions, d.rewards)
    with pytest.raises(ValueError, match="actions"):
        IFactorWorldModel(DIMS).fit(d.observations, d.actions[:, :-1], d.rewards)
    with pytest.raises(ValueError, match="rewards"):
        IFactorWorldModel(DIMS).fit(d.observations, d.actions, d.rewards[:, :-1])
    bad = d.observations.copy()
    bad[0, 3, 1] = np.nan
    with pytest.raises(ValueError, match="observations.*NaN"):
        IFactorWorldModel(DIMS).fit(bad, d.actions, d.rewards)
    with pytest.raises(ValueError, match="transition_inputs"):
        IFactorWorldModel(DIMS, transition_inputs="x").fit(d.observations, d.actions, d.rewards)
    with pytest.raises(ValueError, match="features"):
        fitted.transform(d.observations[..., :5])
    with pytest.raises(ValueError, match="actions"):
        fitted.imagine(d.observations[:, 0], d.actions[:2, :3])
    # the caller's arrays are not modified
    before = d.observations.copy()
    fitted.transform(d.observations)
    np.testing.assert_array_equal(before, d.observations)


def test_block_r2_matrix_on_truth_is_identity_like(data):
    # A block-wise invertible map of the truth must give a high diagonal, low off-diagonal.
    learned = {k: np.tanh(v) + 0.3 * v ** 3 for k, v in data.blocks.items()}
    r2 = block_r2_matrix(data.blocks, learned)
    assert r2.shape == (4, 4)
    assert np.diag(r2).min() > 0.9
    assert r2[~np.eye(4, dtype=bool)].max() < 0.15


def test_explained_variance_game_routes_gradients():
    # adversary loss trains only the adversary; encoder loss trains only the features
    from crl_neuro.rl.world_model import _explained_variance_game

    torch.manual_seed(0)
    adversary = torch.nn.Linear(3, 1)
    x = torch.randn(50, 3, requires_grad=True)
    y = x[:, :1].detach() * 2.0
    adv, enc = _explained_variance_game(adversary, x, y, scale=1.0)
    gx, = torch.autograd.grad(adv, x, allow_unused=True)
    assert gx is None
    g_enc = torch.autograd.grad(enc, [x] + list(adversary.parameters()), allow_unused=True)
    assert g_enc[0] is not None and float(g_enc[0].abs().sum()) > 0
    assert all(g is None for g in g_enc[1:])


def test_reward_information_lives_in_relevant_blocks():
    from sklearn.kernel_ridge import KernelRidge
    from sklearn.model_selection import cross_val_score

    d = collect_episodes(FourBlockMDP(random_state=0), n_episodes=12, n_steps=60, random_state=1)
    model = IFactorWorldModel(DIMS, hidden=32, max_iter=60, transition_inputs="own", random_state=0)
    z = model.fit(d.observations, d.actions, d.rewards).transform(d.observations, d.actions)

    def r2(keys):
        X = np.concatenate([z[k] for k in keys], -1).reshape(-1, 4)
        X = (X - X.mean(0)) / X.std(0)
        y = (d.rewards.ravel() - d.rewards.mean()) / d.rewards.std()
        krr = KernelRidge(alpha=1e-2, kernel="rbf", gamma=1 / 8)
        return cross_val_score(krr, X, y, cv=3, scoring="r2").mean()

    # Sanity check of the wiring on a short fit (measured: relevant 0.80, irrelevant 0.22);
    # the discriminating recovery test is test_information_terms_separate_the_blocks (slow).
    assert r2(["controllable_relevant", "uncontrollable_relevant"]) > 0.6
    assert r2(["controllable_irrelevant", "uncontrollable_irrelevant"]) < 0.35


def test_distractor_cartpole_conforms_and_exposes_blocks():
    from gymnasium.utils.env_checker import check_env

    from crl_neuro.rl import DistractorCartPole

    env = DistractorCartPole(random_state=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env, skip_render_check=True)
    obs, info = env.reset(seed=0)
    assert obs.shape == (16,)
    assert [info["blocks"][k].size for k in BLOCK_KEYS] == [4, 1, 1, 4]
    wind = info["blocks"]["uncontrollable_relevant"][0]
    _, reward, _, _, info = env.step(1)
    assert reward == pytest.approx(1.0 + wind)  # reward = alive bonus + wind
    ind = info["blocks"]["controllable_irrelevant"][0]
    _, _, _, _, info = env.step(0)
    assert info["blocks"]["controllable_irrelevant"][0] == pytest.approx(0.8 * ind - 0.5)
    d = collect_episodes(env, n_episodes=2, n_steps=30, random_state=0)
    assert d.actions.shape == (2, 30, 2)  # discrete actions one-hot
    np.testing.assert_array_equal(d.actions.sum(-1), 1.0)


@pytest.mark.slow
def test_information_terms_separate_the_blocks():
    # Measured (seed 0, 20 episodes x 100 steps, 150 epochs): with the information terms
    # diagonal R² [0.72 0.80 0.68 0.36], off-diagonal mean 0.05 (max 0.12); without them
    # diagonal mean 0.32, off-diagonal mean 0.15 (max 0.46).
    d = collect_episodes(FourBlockMDP(random_state=0), n_episodes=20, n_steps=100, random_state=100)

    def scores(**kw):
        model = IFactorWorldModel(DIMS, max_iter=150, transition_inputs="own", random_state=0, **kw)
        z = model.fit(d.observations, d.actions, d.rewards).transform(d.observations, d.actions)
        r2 = block_r2_matrix(d.blocks, z, random_state=0)
        off = r2[~np.eye(4, dtype=bool)]
        return np.diag(r2).mean(), off.mean(), off.max()

    diag, off, off_max = scores()
    assert diag > 0.55 and off < 0.1 and off_max < 0.25
    diag0, off0, _ = scores(action_weight=0.0, adversarial_weight=0.0)
    assert diag - off > (diag0 - off0) + 0.2


def test_plain_baseline_fits_and_roundtrips(tmp_path, small_data):
    d = small_data
    model = IFactorWorldModel(DIMS, factorized=False, random_state=0, **FAST)
    z = model.fit(d.observations, d.actions, d.rewards).transform(d.observations)
    loaded = crl_neuro.load(model.save(tmp_path / "plain.crl"))
    z2 = loaded.transform(d.observations)
    for k in BLOCK_KEYS:
        np.testing.assert_allclose(z[k], z2[k], rtol=1e-6, atol=1e-6)
    assert loaded.imagine(d.observations[:, 0], d.actions[:, :3])["rewards"].shape == (4, 4)
