"""Benchmark: IFactor world model vs the same model without information terms vs a plain one.

Data: :class:`crl_neuro.rl.envs.FourBlockMDP` (four 2-D blocks with nonlinear
dynamics, 4-D continuous action entering only the controllable blocks, reward from
the relevant blocks, 16-D leaky-ReLU mixed observations), random exploratory policy,
episodes of 100 steps. For every seed all models see the same trajectories.

Models:

* ``ifactor_own``: :class:`IFactorWorldModel` with the information terms and each
  block's transition restricted to its own past (the true graph of this MDP);
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

Usage::

    python benchmarks/bench_rl.py --quick        # 2 seeds, ~5 min on one core
    python benchmarks/bench_rl.py --seeds 3 --episodes 40 --max-iter 400
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

MODELS = {
    "ifactor_own": dict(transition_inputs="own"),
    "ifactor_full": dict(transition_inputs="full"),
    "noinfo_own": dict(transition_inputs="own", action_weight=0.0, adversarial_weight=0.0),
    "plain": dict(factorized=False),
}


def _run_seed(seed: int, models: list[str], n_episodes: int, max_iter: int, device: str) -> list[dict]:
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


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="2 seeds, 20 episodes, 150 epochs")
    parser.add_argument("--seeds", type=int, default=None, help="number of seeds (default 3; quick 2)")
    parser.add_argument("--episodes", type=int, default=None, help="episodes of 100 steps (default 40; quick 20)")
    parser.add_argument("--max-iter", type=int, default=None, help="epochs (default 300; quick 150)")
    parser.add_argument("--models", default=",".join(MODELS), help=f"subset of {','.join(MODELS)}")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--n-jobs", type=int, default=1, help="joblib jobs over seeds")
    args = parser.parse_args(argv)
    models = [m for m in args.models.split(",") if m]
    bad = set(models) - set(MODELS)
    if bad:
        parser.error(f"unknown model(s) {sorted(bad)}; choose from {list(MODELS)}")
    n_seeds = args.seeds or (2 if args.quick else 3)
    n_episodes = args.episodes or (20 if args.quick else 40)
    max_iter = args.max_iter or (150 if args.quick else 300)
    print(f"crl_neuro RL benchmark: FourBlockMDP, {n_episodes} episodes x 100 steps, "
          f"{n_seeds} seed(s), {max_iter} epochs, device {args.device}, 1 torch thread per job")

    from joblib import Parallel, delayed

    t0 = time.perf_counter()
    results = Parallel(n_jobs=args.n_jobs)(
        delayed(_run_seed)(s, models, n_episodes, max_iter, args.device) for s in range(n_seeds)
    )
    rows = [r for res in results for r in res]

    import pandas as pd

    df = pd.DataFrame([{k: v for k, v in r.items() if k != "r2"} for r in rows])
    cols = ["diag", "diag_min", "off", "off_max", "time"]
    agg = df.groupby("model", sort=False)[cols].agg(["mean", "std"])
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print("\nBlock-identification R² (mean and std over seeds; targets diag >= 0.8, off <= 0.2)")
        print(agg.to_string())
    keys = ["c_r", "u_r", "c_i", "u_i"]
    for name in models:
        mean = np.mean([r["r2"] for r in rows if r["model"] == name], axis=0)
        print(f"\n{name}: mean R² matrix (rows true block, columns learned block)")
        print(pd.DataFrame(mean, index=keys, columns=keys).round(2).to_string())
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")
    return rows


if __name__ == "__main__":
    main()
