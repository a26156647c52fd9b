"""
Four latent blocks of a world model, and a policy on the ones that matter
=========================================================================

A cart-pole must be balanced while the observation also carries distractors: a
"wind" that adds to the reward but that no action changes, a lamp that the pushes
toggle but that never matters for the reward, and a second cart-pole pushed at
random. The agent sees none of them directly, only a 16-D linear mixing of all ten
state variables (:class:`crl_neuro.rl.DistractorCartPole`).

:class:`crl_neuro.rl.IFactorWorldModel` (after IFactor, Liu, Huang et al., NeurIPS
2023) learns a latent state split into four blocks — controllable or not ×
reward-relevant or not — from random-policy trajectories. Because the simulator
knows the true blocks, we can check which true block each learned block holds, and
whether a policy that reads only the two learned *reward-relevant* blocks does as
well as one that reads the true state.
"""

# %%
import os

import matplotlib.pyplot as plt
import numpy as np
import torch

from crl_neuro.rl import (
    BLOCK_KEYS,
    BlockFeatures,
    CEMPolicy,
    DistractorCartPole,
    IFactorWorldModel,
    TrueStateObservation,
    block_r2_matrix,
    collect_episodes,
)
from crl_neuro.viz import show_or_save

quick = os.environ.get("CRL_NEURO_TUTORIAL_QUICK") == "1"
torch.set_num_threads(1)  # small networks: threads cost more than they bring

env = DistractorCartPole(random_state=0)
data = collect_episodes(env, n_episodes=20 if quick else 30, n_steps=100, random_state=1)
print("observations", data.observations.shape, "actions (one-hot)", data.actions.shape,
      "rewards", data.rewards.shape)
print("true block sizes:", {k: v.shape[-1] for k, v in data.blocks.items()})

# %%
# Fit the world model
# -------------------
# The block sizes are those of the simulator: the controlled cart-pole (4), the wind
# (1), the lamp (1), the second cart-pole (4). Actions enter only the two
# controllable blocks, the reward is read only from the two relevant ones, and the
# information terms keep the action information in the controllable blocks, remove
# it from the others (over the last two actions: a push reaches the cart's position
# only through its velocity, a step later), and remove the reward information from
# the irrelevant ones. After training, the blocks are re-read by a linear map that
# makes them follow their definitions (``align_blocks=True``, the default): the
# uncontrollable coordinates are the closed subsystem the action never reaches, and
# the irrelevant ones move neither the reward nor the rest of the state.
dims = dict(zip(BLOCK_KEYS, (4, 1, 1, 4)))
# A row of ``data`` holds several episodes (random pushes topple the pole within about
# 30 steps, and the environment restarts); ``data.is_first`` marks the restarts so that
# the jumps there are not learned as dynamics.
# Which block ends up holding which factor is decided early in training, so the full
# run starts from three initialisations and keeps the one that best explains
# observations and rewards (``n_init``).
model = IFactorWorldModel(dims, max_iter=40 if quick else 200, n_init=1 if quick else 3,
                          transition_inputs="own", random_state=0)
model.fit(data.observations, data.actions, data.rewards, is_first=data.is_first)
learned = model.transform(data.observations, data.actions)

# %%
# Which true block does each learned block hold?
# ----------------------------------------------
# Entry ``[i, j]`` is the held-out R² of a kernel regression of true block ``i`` on
# learned block ``j``: identification up to block-wise invertible maps gives a bright
# diagonal and a dark off-diagonal.
r2 = block_r2_matrix(data.blocks, learned)
names = ["controllable\nrelevant", "uncontrollable\nrelevant", "controllable\nirrelevant",
         "uncontrollable\nirrelevant"]
fig, ax = plt.subplots(figsize=(6, 5), constrained_layout=True)
im = ax.imshow(r2, vmin=0, vmax=1, cmap="viridis")
for i in range(4):
    for j in range(4):
        ax.text(j, i, f"{r2[i, j]:.2f}", ha="center", va="center",
                color="w" if r2[i, j] < 0.6 else "k")
ax.set_xticks(range(4), names, fontsize=8)
ax.set_yticks(range(4), names, fontsize=8)
ax.set_xlabel("learned block")
ax.set_ylabel("true block")
ax.set_title("Block-identification R²")
fig.colorbar(im, ax=ax, shrink=0.8)
print(np.round(r2, 2))

# %%
# Policies on different representations
# -------------------------------------
# :class:`~crl_neuro.rl.CEMPolicy` searches a linear policy by the cross-entropy
# method on real rollouts (model-free; the world model is only the encoder). The
# same search, with the same seed and budget, reads either the true state (oracle),
# the two learned reward-relevant blocks, all four learned blocks, or the raw
# observation. Fewer, cleaner inputs leave fewer weights to find.
relevant = ("controllable_relevant", "uncontrollable_relevant")
setups = {
    "true state (oracle)": (TrueStateObservation(env), None),
    "learned reward-relevant blocks": (env, BlockFeatures(model, relevant)),
    "all learned blocks": (env, BlockFeatures(model, BLOCK_KEYS)),
    "raw observation": (env, None),
}
fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
for label, (policy_env, features) in setups.items():
    policy = CEMPolicy(features=features, n_iter=6 if quick else 15, random_state=0).fit(policy_env)
    h = policy.history_
    final = policy.evaluate(policy_env, n_episodes=10, random_state=123).mean()
    print(f"{label:<32} return {final:6.1f} after {h['env_steps'][-1]} environment steps")
    ax.plot(h["env_steps"], h["eval_return"], marker="o", label=label)
ax.set_xlabel("environment steps (policy search)")
ax.set_ylabel("return (10 evaluation episodes)")
ax.set_title("Linear policies found by the cross-entropy method")
ax.legend(fontsize=8)
# On a display this is ``plt.show()``; without one (``MPLBACKEND=Agg``, a cluster node)
# it saves the figures to ``./crl_neuro_figures`` or ``$CRL_NEURO_FIGURES_DIR``.
show_or_save()

# %%
# The world model also used 3000 random-policy steps (2000 in quick mode), not
# counted on the x-axis. A single run says little: the search and the world model
# both depend on their seeds, and quick mode trains far too briefly to show the
# difference. ``benchmarks/bench_rl.py`` repeats this over seeds and adds the
# unfactorised world model.
