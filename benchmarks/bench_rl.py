"""Benchmark: IFactor world model vs ablations, and policies on chosen blocks.

Part ``blocks`` — block identification on :class:`crl_neuro.rl.envs.FourBlockMDP`
(four 2-D blocks with nonlinear dynamics, 4-D continuous action entering only the
controllable blocks, reward from the relevant blocks, 16-D leaky-ReLU mixed
observations), random exploratory policy, episodes of 100 steps. For every seed all
models see the same trajectories.

* ``ifactor_own``: :class:`IFactorWorldModel` with the information terms and each
  block's transition restricted to its own past (the true graph of this MDP);
* ``ifactor_own_n3``: the same, best of three initialisations (``n_init=3``; about
  1.5 times the fit time);
* ``ifactor_full``: the same with every block's transition seeing the whole previous
  state (the paper's graph);
* ``noinfo_own``: block-structured sequential VAE without the information terms
  (``action_weight=0``, ``adversarial_weight=0``; reward still read from the
  relevant blocks and actions still only entering the controllable blocks);
* ``plain``: unfactorised world model (``factorized=False``; its latent is split
  into four arbitrary chunks for scoring).

Scores: the block-identification R² matrix (true block × learned block, RBF kernel
ridge, held-out R² clipped at 0; :func:`crl_neuro.rl.block_r2_matrix`): ``diag`` mean
of the diagonal, ``diag_min``, ``off`` mean and ``off_max`` of the off-diagonal;
``time`` fit seconds. Targets of issue 9: diagonal >= 0.8, off-diagonal <= 0.2.

Part ``policy`` — :class:`crl_neuro.rl.envs.DistractorCartPole` (controlled cart-pole,
wind in the reward, a lamp toggled by the action, a second randomly pushed cart,
16-D linear mixing). Per seed, world models (IFactor ``own`` and the plain
unfactorised one, both with ``n_init`` initialisations) are fitted on random-policy
episodes; then a linear policy is
searched by the cross-entropy method (:class:`crl_neuro.rl.CEMPolicy`, model-free,
real rollouts, same CEM seed for every representation) on:

* ``true_state``: the whole true 10-D state (oracle);
* ``true_relevant``: the true reward-relevant blocks (cart-pole + wind, oracle);
* ``ifactor_relevant``: the learned reward-relevant blocks of IFactor;
* ``ifactor_all``: all four learned IFactor blocks;
* ``plain_latent``: the full latent of the unfactorised world model;
* ``raw_obs``: the 16-D observation.

Scores: return of the mean policy (10 fixed evaluation episodes, not counted as
training steps) after the last CEM generation with at most N training steps
(``ret@N``), final return on 20 held-out episodes (``final``), and ``wm_steps``,
the random-policy steps spent on fitting the world model (counted apart).

Usage::

    python benchmarks/bench_rl.py --quick                 # both parts, small settings
    python benchmarks/bench_rl.py --part blocks --seeds 3 --episodes 40 --max-iter 300
    python benchmarks/bench_rl.py --part policy --seeds 3
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

MODELS = {
    "ifactor_own": dict(transition_inputs="own"),
    "ifactor_own_n3": dict(transition_inputs="own", n_init=3),
    "ifactor_full": dict(transition_inputs="full"),
    "noinfo_own": dict(transition_inputs="own", action_weight=0.0, adversarial_weight=0.0),
    "plain": dict(factorized=False),
}


def _run_blocks_seed(seed: int, models: list[str], n_episodes: int, max_iter: int, device: str) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    from crl_neuro.rl import BLOCK_KEYS, FourBlockMDP, IFactorWorldModel, block_r2_matrix, collect_episodes

    data = collect_episodes(FourBlockMDP(random_state=seed), n_episodes=n_episodes, n_steps=100,
                            random_state=seed + 100)
    dims = {k: 2 for k in BLOCK_KEYS}
    rows = []
    for name in models:
        t0 = time.perf_counter()
        model = IFactorWorldModel(dims, max_iter=max_iter, device=device, random_state=seed,
                                  **MODELS[name])
        model.fit(data.observations, data.actions, data.rewards)
        elapsed = time.perf_counter() - t0
        r2 = block_r2_matrix(data.blocks, model.transform(data.observations, data.actions),
                             random_state=seed)
        off = r2[~np.eye(4, dtype=bool)]
        rows.append({"model": name, "seed": seed, "diag": float(np.diag(r2).mean()),
                     "diag_min": float(np.diag(r2).min()), "off": float(off.mean()),
                     "off_max": float(off.max()), "time": elapsed, "r2": r2})
        print(f"  done seed {seed} {name:<13} diag {rows[-1]['diag']:.2f} off_max "
              f"{rows[-1]['off_max']:.2f} time {elapsed:.0f}s", flush=True)
    return rows


POLICY_INPUTS = ("true_state", "true_relevant", "ifactor_relevant", "ifactor_all", "plain_latent",
                 "raw_obs")
BUDGETS = (2000, 5000, 10000, 20000)


def _run_policy_seed(seed: int, n_episodes: int, max_iter: int, n_iter: int, n_init: int,
                     device: str) -> list[dict]:
    import torch

    torch.set_num_threads(1)
    from crl_neuro.rl import (BLOCK_KEYS, BlockFeatures, CEMPolicy, DistractorCartPole, IFactorWorldModel,
                              TrueStateObservation, block_r2_matrix, collect_episodes)

    env = DistractorCartPole(random_state=seed)
    data = collect_episodes(env, n_episodes=n_episodes, n_steps=100, random_state=seed + 100)
    dims = dict(zip(BLOCK_KEYS, (4, 1, 1, 4)))
    models, rows = {}, []
    for name, kw in (("ifactor", dict(transition_inputs="own", n_init=n_init)),
                     ("plain", dict(factorized=False, n_init=n_init))):
        t0 = time.perf_counter()
        models[name] = IFactorWorldModel(dims, max_iter=max_iter, device=device, random_state=seed,
                                         **kw).fit(data.observations, data.actions, data.rewards)
        r2 = block_r2_matrix(data.blocks, models[name].transform(data.observations), random_state=seed)
        rows.append({"kind": "r2", "model": name, "seed": seed, "r2": r2, "time": time.perf_counter() - t0})
    relevant = ("controllable_relevant", "uncontrollable_relevant")
    setups = {
        "true_state": (TrueStateObservation(env), None, 0),
        "true_relevant": (TrueStateObservation(env, relevant), None, 0),
        "ifactor_relevant": (env, BlockFeatures(models["ifactor"], relevant), data.rewards.size),
        "ifactor_all": (env, BlockFeatures(models["ifactor"], BLOCK_KEYS), data.rewards.size),
        "plain_latent": (env, BlockFeatures(models["plain"], BLOCK_KEYS), data.rewards.size),
        "raw_obs": (env, None, 0),
    }
    for name in POLICY_INPUTS:
        policy_env, feats, wm_steps = setups[name]
        t0 = time.perf_counter()
        policy = CEMPolicy(features=feats, n_iter=n_iter, random_state=seed).fit(policy_env)
        h = policy.history_
        row = {"kind": "policy", "input": name, "seed": seed, "wm_steps": wm_steps,
               "final": float(policy.evaluate(policy_env, 20, random_state=10_000 + seed).mean()),
               "time": time.perf_counter() - t0, "curve": (h["env_steps"], h["eval_return"])}
        for b in BUDGETS:
            done = [r for st, r in zip(h["env_steps"], h["eval_return"]) if st <= b]
            row[f"ret@{b // 1000}k"] = done[-1] if done else np.nan
        rows.append(row)
        print(f"  done seed {seed} {name:<17} final {row['final']:.1f} time {row['time']:.0f}s", flush=True)
    return rows


def _print_blocks(rows: list[dict], models: list[str]) -> None:
    import pandas as pd

    df = pd.DataFrame([{k: v for k, v in r.items() if k != "r2"} for r in rows])
    cols = ["diag", "diag_min", "off", "off_max", "time"]
    agg = df.groupby("model", sort=False)[cols].agg(["mean", "std"])
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print("\nFourBlockMDP block-identification R² (mean and std over seeds; targets diag >= 0.8, "
              "off <= 0.2)")
        print(agg.to_string())
    keys = ["c_r", "u_r", "c_i", "u_i"]
    for name in models:
        mean = np.mean([r["r2"] for r in rows if r["model"] == name], axis=0)
        print(f"\n{name}: mean R² matrix (rows true block, columns learned block)")
        print(pd.DataFrame(mean, index=keys, columns=keys).round(2).to_string())


def _print_policy(rows: list[dict]) -> None:
    import pandas as pd

    keys = ["c_r", "u_r", "c_i", "u_i"]
    for name in ("ifactor", "plain"):
        r2 = [r["r2"] for r in rows if r["kind"] == "r2" and r["model"] == name]
        t = np.mean([r["time"] for r in rows if r["kind"] == "r2" and r["model"] == name])
        off = np.mean([m[~np.eye(4, dtype=bool)].mean() for m in r2])
        print(f"\nDistractorCartPole, {name} world model: mean R² matrix over {len(r2)} seed(s) "
              f"(diag {np.mean([np.diag(m).mean() for m in r2]):.2f}, off {off:.2f}, fit {t:.0f}s)")
        print(pd.DataFrame(np.mean(r2, axis=0), index=keys, columns=keys).round(2).to_string())
    pol = [{k: v for k, v in r.items() if k not in ("kind", "curve")} for r in rows if r["kind"] == "policy"]
    df = pd.DataFrame(pol)
    cols = [f"ret@{b // 1000}k" for b in BUDGETS] + ["final", "wm_steps", "time"]
    agg = df.groupby("input", sort=False)[cols].agg(["mean", "std"])
    with pd.option_context("display.width", 250, "display.float_format", "{:.1f}".format):
        print("\nDistractorCartPole: CEM linear-policy return vs CEM training steps (mean and std over "
              "seeds; ret@N: eval return of the mean policy after the last generation within N steps)")
        print(agg.to_string())


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="2 seeds; blocks: 20 episodes, 150 epochs; policy: 20 episodes, 100 epochs")
    parser.add_argument("--part", choices=["blocks", "policy", "both"], default="both")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3; quick 2)")
    parser.add_argument("--episodes", type=int, default=None,
                        help="world-model episodes of 100 steps (default 40 blocks / 30 policy; quick 20)")
    parser.add_argument("--max-iter", type=int, default=None, help="world-model epochs (default 300; quick 150)")
    parser.add_argument("--cem-iter", type=int, default=None, help="CEM generations (default 15; quick 10)")
    parser.add_argument("--n-init", type=int, default=3,
                        help="policy part: world-model initialisations (IFactorWorldModel n_init; default 3)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"blocks part: subset of {','.join(MODELS)}")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-jobs", type=int, default=1, help="joblib jobs over seeds")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    bad = set(models) - set(MODELS)
    if bad:
        parser.error(f"unknown model(s) {sorted(bad)}; choose from {list(MODELS)}")
    n_seeds = args.seeds or (2 if args.quick else 3)
    max_iter = args.max_iter or (150 if args.quick else 300)
    cem_iter = args.cem_iter or (10 if args.quick else 15)

    from joblib import Parallel, delayed

    t0 = time.perf_counter()
    rows: list[dict] = []
    if args.part in ("blocks", "both"):
        n_episodes = args.episodes or (20 if args.quick else 40)
        print(f"Part blocks: FourBlockMDP, {n_episodes} episodes x 100 steps, {n_seeds} seed(s), "
              f"{max_iter} epochs, device {args.device}, 1 torch thread per job", flush=True)
        results = Parallel(n_jobs=args.n_jobs)(
            delayed(_run_blocks_seed)(s, models, n_episodes, max_iter, args.device) for s in range(n_seeds)
        )
        block_rows = [r for res in results for r in res]
        _print_blocks(block_rows, models)
        rows += block_rows
    if args.part in ("policy", "both"):
        n_episodes = args.episodes or (20 if args.quick else 30)
        wm_iter = args.max_iter or (100 if args.quick else 200)
        print(f"\nPart policy: DistractorCartPole, world models on {n_episodes} random episodes x 100 "
              f"steps, {wm_iter} epochs, n_init {args.n_init}; CEM {cem_iter} generations x 24 "
              f"candidates; {n_seeds} seed(s)",
              flush=True)
        results = Parallel(n_jobs=args.n_jobs)(
            delayed(_run_policy_seed)(s, n_episodes, wm_iter, cem_iter, args.n_init, args.device)
            for s in range(n_seeds)
        )
        policy_rows = [r for res in results for r in res]
        _print_policy(policy_rows)
        rows += policy_rows
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")
    return rows


if __name__ == "__main__":
    main()
