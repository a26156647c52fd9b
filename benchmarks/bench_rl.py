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
  state (the paper's graph); ``noinfo_full``: that without the information terms;
* ``noinfo_own``: block-structured sequential VAE without the information terms
  (``action_weight=0``, ``adversarial_weight=0``; reward still read from the
  relevant blocks and actions still only entering the controllable blocks);
* ``plain``: unfactorised world model (``factorized=False``; its latent is split
  into four arbitrary chunks for scoring);
* ``raw_obs``: no model, each "learned block" is the whole 16-D observation: the
  diagonal R² the scoring regression reaches from the raw data (off-diagonal
  meaningless). It is low for the ``uncontrollable_relevant`` block of some seeds
  (0.71 on seed 3, 0.77 on seed 4), whose small variance (std about 0.6 against
  1-1.5 for the other blocks) and small share of the reward make it the weakest
  signal in both the observation and the reward.

Scores: the block-identification R² matrix (true block × learned block, RBF kernel
ridge, held-out R² clipped at 0; :func:`crl_neuro.rl.block_r2_matrix`): ``diag`` mean
of the diagonal, ``diag_min``, ``off`` mean and ``off_max`` of the off-diagonal;
``time`` fit seconds. Targets of issue 9: diagonal >= 0.8, off-diagonal <= 0.2.

Part ``policy`` — :class:`crl_neuro.rl.envs.DistractorCartPole` (controlled cart-pole,
wind in the reward, a lamp toggled by the action, a second randomly pushed cart,
16-D linear mixing). Per seed, four world models, all with ``n_init`` initialisations,
are fitted on the same random-policy episodes (``POLICY_MODELS``): IFactor (``own``
transitions, defaults), ``ifactor_h1`` (the paper's one-step action adversary,
``action_horizon=1``), ``noinfo`` (the same block-structured model without
information terms; its reward adversary is not trained, so its choice among the
initialisations is arbitrary) and the plain unfactorised one. Then a linear policy is searched
by the cross-entropy method (:class:`crl_neuro.rl.CEMPolicy`, model-free, real
rollouts, same CEM seed for every representation) on:

* ``true_state``: the whole true 10-D state (oracle);
* ``true_relevant``: the true reward-relevant blocks (cart-pole + wind, oracle);
* ``ifactor_relevant``: the learned reward-relevant blocks of IFactor, as trained;
* ``ifactor_relevant+align``: the same after the block alignment of the same fit
  (``align_blocks=True``, the default);
* ``ifactor_h1_relevant(+align)``, ``noinfo_relevant(+align)``: the same for the two
  ablations;
* ``ifactor_all``: all four learned IFactor blocks (as trained);
* ``plain_latent``: the full latent of the unfactorised world model;
* ``raw_obs``: the 16-D observation.

Scores: return of the mean policy (10 fixed evaluation episodes, not counted as
training steps) after the last CEM generation with at most N training steps
(``ret@N``), final return on 20 held-out episodes (``final``), and ``wm_steps``,
the random-policy steps spent on fitting the world model (counted apart).

Current results (2026-11-29; ``action_horizon=2``, ``align_blocks=True`` by default)
------------------------------------------------------------------------------------

Part blocks, ``--seeds 8 --n-jobs 2 --models ifactor_own,noinfo_own`` (600 epochs,
one run, two jobs on 2 cores; fit about 230 s, alignment included). Mean diagonal R²
(off-diagonal mean / max), per seed:

=================  =====  ===========  ====  ====  ====  ====  ====  ====  ====  ====
model              diag   off / max    s0    s1    s2    s3    s4    s5    s6    s7
=================  =====  ===========  ====  ====  ====  ====  ====  ====  ====  ====
ifactor_own        0.70   0.06 / 0.33  0.90  0.87  0.75  0.48  0.83  0.64  0.90  0.24
ifactor_own+align  0.875  0.00 / 0.01  0.92  0.90  0.90  0.82  0.89  0.84  0.91  0.82
noinfo_own         0.72   0.05 / 0.26  0.65  0.83  0.89  0.62  0.37  0.62  0.89  0.85
noinfo_own+align   0.873  0.00 / 0.01  0.90  0.88  0.91  0.84  0.86  0.82  0.90  0.87
=================  =====  ===========  ====  ====  ====  ====  ====  ====  ====  ====

Per block (ifactor_own+align) ``[c_r u_r c_i u_i]`` = [0.93 0.82 0.94 0.81]. The
two-step action adversary changes little here (seed 4 0.76 -> 0.83 as trained, the
other seeds within 0.03 of the one-step run below, aligned identical to 0.01): the
MDP's controllable blocks react to the action at once. The information terms add
nothing over the model without them on this MDP, as trained or aligned.

With every block's transition seeing the whole previous state (``ifactor_full`` vs
``noinfo_full``, the paper's general graph), 300 epochs, seeds 0-3, one run, *one-step*
action adversary (before ``action_horizon``): as trained 0.62 vs 0.57 (per seed
0.57 / 0.34 / 0.77 / 0.78 vs 0.49 / 0.43 / 0.64 / 0.70), aligned 0.85 vs 0.83: the
information terms help a little where the transition structure helps less.

Part policy, ``--seeds 4 --n-jobs 2`` then ``--seeds 2 --first-seed 4 --n-jobs 2``
(same code and settings, two runs; world models 200 epochs, ``n_init=3``, fitted with
``is_first``; CEM 15 generations x 24 candidates). ``final`` return per seed and
mean ± std; the issue's target is the true-state return:

=========================  ====  ====  ====  ====  ====  ====  ===========
input                      s0    s1    s2    s3    s4    s5    mean ± std
=========================  ====  ====  ====  ====  ====  ====  ===========
true_state                 193   200   199   186   134   206   186 ± 27
true_relevant              205   201   200   207   207   207   204 ± 3
ifactor_relevant+align     194   182   198   187   196   179   189 ± 8
ifactor_relevant           200   198   155   201   70    202   171 ± 53
ifactor_h1_relevant+align  163   137   187   54    178   115   139 ± 49
ifactor_h1_relevant        194   196   197   122   109   198   169 ± 42
noinfo_relevant+align      188   198   195   138   152   180   175 ± 24
noinfo_relevant            158   22    12    204   202   28    104 ± 93
ifactor_all                128   110   180   42    168   98    121 ± 50
plain_latent               190   200   180   206   162   76    169 ± 48
raw_obs                    76    195   188   205   166   189   170 ± 48
=========================  ====  ====  ====  ====  ====  ====  ===========

With the defaults (two-step action adversary, alignment) the policy on the learned
reward-relevant blocks is the only learned input that never fails: at least 179 on
every seed, at least 0.91 of the true-state return (whose own search failed on seed 4,
134), 189 ± 8 against 186 ± 27. Here the information terms matter: without them the
relevant blocks as trained fail on three seeds of six (22, 12, 28), and the alignment
repairs only part of it (138 and 152 on seeds 3 and 4); with the paper's one-step action
term the cart's position can sit in an uncontrollable block (a push reaches it only
through the velocity, a step later) and the aligned policy falls to 54 on seed 3. The
alignment matters too: as trained the default model's relevant blocks fail on seed 4
(70). The world models' blocks (mean diagonal / off-diagonal R², 6 seeds): IFactor as
trained 0.47 / 0.27, aligned 0.65 / 0.14 (per block, seeds 0-3, [0.87 0.80 0.00
0.91]); one-step aligned 0.66 / 0.13; without information terms as trained 0.42 /
0.27, aligned 0.60 / 0.14; plain 0.38 / 0.29. The controllable irrelevant block stays
empty in every model: the binary lamp is packed into the 4-D controllable relevant
block with the cart-pole (R² 1.00 from it), where no linear map can take it out. The
policies on all four learned blocks (121), on the plain model's whole latent (169) and
on the raw observation (170) are worse than on the relevant blocks, mostly through
failed seeds (76 on seed 5 for the plain latent and seed 0 for the raw observation);
where they work they do as well (with a linear 16-D observation of a 10-D state a
linear policy on any faithful encoding can work). The one-step model aligned gave 181
/ 165 on seeds 0 / 1 in the earlier run below, with the same fits (as trained 193.5 /
196.2 in both runs): only the alignment's code changed in between (04e763e, b9fb0ef:
scipy eigen-solvers), so on this task its result is fragile when the model packs
factors nonlinearly. Times: IFactor fit 100-120 s (three initialisations, alignment
included), plain 35 s, CEM about 8 s per input.

Earlier runs
------------

Measured (part blocks, 40 episodes x 100 steps, 300 epochs, CPU, 1 torch thread per
job, two jobs at once on a 2-core machine shared with another engineer; seeds 0-7,
run as ``--first-seed``/``--seeds`` slices of the same settings; seeds 0-2 were the
ones looked at while tuning earlier, 3-7 are fresh). Mean diagonal R², per block
``[c_r u_r c_i u_i]`` in brackets:

====  ===============================  ===============================  ===================
seed  ifactor_own                      noinfo_own                       raw_obs (reference)
====  ===============================  ===============================  ===================
0     0.86 [0.90 0.94 0.83 0.76]       0.62 [0.36 0.50 0.84 0.77]       [0.90 0.95 0.93 0.87]
1     0.83 [0.75 0.85 0.87 0.84]       0.73 [0.71 0.75 0.76 0.70]       [0.85 0.89 0.93 0.89]
2     0.66 [0.82 0.37 0.94 0.49]       0.85 [0.81 0.78 0.92 0.89]       [0.89 0.86 0.96 0.93]
3     0.49 [0.27 0.33 0.93 0.42]       0.62 [0.91 0.14 0.92 0.50]       [0.95 0.71 0.95 0.87]
4     0.68 [0.85 0.46 0.81 0.62]       0.30 [0.74 0.27 0.20 0.00]       [0.96 0.77 0.94 0.89]
5     0.60 [0.76 0.30 0.94 0.40]       0.59 [0.73 0.29 0.93 0.42]       [0.92 0.85 0.96 0.77]
6     0.88 [0.94 0.93 0.91 0.72]       0.88 [0.94 0.94 0.91 0.75]       not run
7     0.27 [0.00 0.28 0.38 0.41]       0.72 [0.96 0.55 0.95 0.43]       not run
mean  0.66 (seeds 0-7)                 0.66 (seeds 0-7)
====  ===============================  ===============================  ===================

Fit time about 40-100 s per model (load-dependent). Neither reaches the issue's
target (diagonal >= 0.8) on average; ``ifactor_own`` does on 3 of 8 seeds, and the
information terms give no gain on average over 8 seeds (the +0.05 seen earlier on
seeds 0-2 was seed luck). The largest off-diagonal entries show how it fails: on
seeds 2 and 5 the two uncontrollable blocks share their factors; on seed 3 the
controllable reward-relevant factor sits in the learned *uncontrollable*
reward-relevant block (R² 0.65) and on seed 7 the two controllable factors are
exchanged (true ``c_i`` read at 0.93 from the learned ``c_r`` block), i.e. the action
and reward information terms did not prevent assignments they are meant to forbid,
while the model without them placed ``c_r`` correctly on both seeds. Earlier run
(same settings, seeds 0-2): ``ifactor_full`` 0.56, ``plain`` 0.15,
``ifactor_own_n3`` 0.71.

Block alignment (``IFactorWorldModel(align_blocks=True)``; each fit is scored as
trained and after the alignment, ``+align``). Measured 2026-11-29 with the current
alignment (closure under the dynamics + permutation tests, see
``crl_neuro/rl/_block_align.py``), same settings, seeds 0-7 in one run, two jobs on 2
cores (fit times 130-215 s for IFactor, 80 s for the plain model, alignment included);
mean diagonal R² (off-diagonal mean / max, mean over seeds), per seed. The fits as
trained are the same as in the table above (identical numbers: ``is_first`` changes
nothing on an MDP without restarts).

=================  ====  ===========  ====  ====  ====  ====  ====  ====  ====  ====
model              diag  off / max    s0    s1    s2    s3    s4    s5    s6    s7
=================  ====  ===========  ====  ====  ====  ====  ====  ====  ====  ====
ifactor_own        0.66  0.07 / 0.39  0.86  0.83  0.66  0.49  0.68  0.60  0.88  0.27
ifactor_own+align  0.84  0.00 / 0.02  0.90  0.88  0.89  0.77  0.83  0.78  0.88  0.77
noinfo_own         0.66  0.07 / 0.30  0.62  0.73  0.85  0.62  0.30  0.59  0.88  0.72
noinfo_own+align   0.84  0.00 / 0.02  0.89  0.85  0.89  0.79  0.83  0.79  0.90  0.79
plain              0.20  0.21 / 0.48  0.17  0.13  0.14  0.29  0.29  0.17  0.23  0.18
plain+align        0.83  0.01 / 0.03  0.83  0.85  0.87  0.78  0.83  0.80  0.84  0.80
=================  ====  ===========  ====  ====  ====  ====  ====  ====  ====  ====

With 600 epochs (the model's default since 2026-11-29; same run settings otherwise,
seeds 0-7 in one run, fit 200-300 s):

=================  ====  ===========  ====  ====  ====  ====  ====  ====  ====  ====
model              diag  off / max    s0    s1    s2    s3    s4    s5    s6    s7
=================  ====  ===========  ====  ====  ====  ====  ====  ====  ====  ====
ifactor_own        0.70  0.06 / 0.36  0.90  0.87  0.76  0.48  0.76  0.64  0.90  0.27
ifactor_own+align  0.87  0.00 / 0.01  0.92  0.90  0.90  0.82  0.89  0.84  0.91  0.82
noinfo_own         0.72  0.05 / 0.26  0.65  0.83  0.89  0.62  0.37  0.62  0.89  0.85
noinfo_own+align   0.87  0.00 / 0.01  0.90  0.88  0.91  0.84  0.86  0.82  0.90  0.87
=================  ====  ===========  ====  ====  ====  ====  ====  ====  ====  ====

Per block (ifactor_own+align) [0.93 0.82 0.94 0.80]: the target is met on average for
every block and on every seed's mean; the smallest single entries are the
uncontrollable irrelevant block on seeds 5 and 7 (0.68, 0.61). The information terms
still add nothing over the same model without them.

The first alignment (per-direction action effects and reward gradients over three
rolled-out probe steps), 2026-11-28, same settings and fits: 0.83 / 0.82 / 0.81
(ifactor / noinfo / plain, off-diagonal max 0.03 / 0.06 / 0.06); on the saved latents
of the same eight ``ifactor_own`` fits, first vs current alignment 0.829 vs 0.836.
Per block after alignment (ifactor_own+align) ``[c_r u_r c_i u_i]`` = [0.90 0.77 0.93
0.74]. The mean target (diagonal >= 0.8, off-diagonal <= 0.2) is met by all three;
the uncontrollable blocks are not, and seeds 3, 5 and 7 stay below 0.8. On those
seeds the trained latent holds the weak uncontrollable block only partly (kernel R²
of the true block from the *whole* latent 0.61-0.69), which no re-reading can recover.
Earlier versions of the first alignment, same run settings: probes without early
stopping 0.81 / 0.82 / 0.81; one global ranking of reward relevance over the whole
state (instead of inside the controllable and the uncontrollable parts) 0.75 / 0.73 /
0.73; linear least-squares probes 0.72 / 0.78 / 0.67.

Policy part (2026-11-29, seeds 0-1, default settings, one run; world models fitted
with ``is_first``; ``final`` return, mean over seeds; R² of the world models' blocks,
mean diagonal / off-diagonal):

======================  =====  ==========================================
input                   final  world model blocks (diag / off, per block)
======================  =====  ==========================================
true_state              197
true_relevant           203
ifactor_relevant        195    as trained: 0.54 / 0.24 [0.85 0.48 0.00 0.83]
ifactor_relevant+align  173    aligned:    0.65 / 0.13 [0.89 0.76 0.01 0.92]
ifactor_all             130
plain_latent            195    plain:      0.40 / 0.29
raw_obs                 136
======================  =====  ==========================================

The same run before this session's changes (2026-11-28, old alignment, no
``is_first``): true_state 197, true_relevant 203, ifactor_relevant 198,
ifactor_relevant+align 35, ifactor_all 145, plain_latent 182, raw_obs 136.

Why the first alignment failed on cart-pole, and what changed. Applied to the *true*
10-D state under a random invertible linear mixing (30 random episodes, seeds 0 / 1,
reward standardised), the first alignment (per-direction action effects and reward
gradients over three rolled-out steps of the probes) read the true cart-pole from
the aligned ``c_r`` block at 0.76 / 0.81 and the lamp at 1.00. Three causes, each
measured on that test: (1) episode restarts inside the rows: about one transition in
30 is a jump back to the start, which the dynamics probe fits as noise (residual
variance 0.08-0.34 of whitened coordinates that are deterministic between restarts),
so the true effect of a push on the cart's position after three steps (0.07) was
smaller than a spurious effect on the randomly pushed second cart (0.11); (2) a push
reaches the cart's position only through its velocity, which a three-step measure
misses; (3) the lamp is binary, and the probes' gradients along it are meaningless
between -1 and 1 (reward-gradient energy of the lamp 32, as large as the pole's angular
velocity, 34, although the reward ignores the lamp). The alignment now (a) drops the
transitions into restarts (``collect_episodes`` returns ``is_first``), (b) takes as
uncontrollable the closed subsystem the action never reaches (an iterated generalised
eigenproblem on one-step action effects and probe Jacobians against the probe's
residual covariance) and (c) scores irrelevance without derivatives, by swapping the
candidate coordinates between states and measuring the change of the two probes'
outputs. Truth test, seeds 0 / 1, per block ``[c_r u_r c_i u_i]``: old alignment
without / with ``is_first`` [0.76-0.81 .. lamp in c_r] / [0.71-0.74, lamp in c_r];
closure + gradients with ``is_first`` 0.96-0.97 for ``c_r`` but the lamp still in
``c_r``; closure + permutation without ``is_first`` 0.75 (lamp in ``c_r`` on seed 1);
with ``is_first`` **[0.98 0.96 1.00 0.98] / [0.99 0.99 1.00 0.97]**, off-diagonal max
0.18. On the mixed true state of FourBlockMDP (seeds 0-3) it gives 0.99-1.00.

What remains on cart-pole is the world model's: as trained, its 4-D ``c_r`` block
holds the cart-pole, the lamp (R² 1.00) and much of the wind (0.56), and its 1-D
``c_i`` block part of the cart. The alignment moves the wind to ``u_r`` (0.48 ->
0.76) but cannot take the lamp out of ``c_r``: the lamp is entangled nonlinearly with
the cart-pole there (swapping the lamp coordinate of the aligned latent changes the
probes' prediction of the other coordinates by 0.30 in mean square, against 0.02 on
the true state). A reason the training allows this: in random-policy data the cart's
position explains about 0.01 % of the reward's variance (position std 0.08 against
the penalty's scale 2.4), so the cart's position and velocity look as reward-irrelevant
as the lamp, and nothing in the objective prefers the true split. Making the position
matter (scale 0.25, about 10 % of the variance) did not move the lamp out of ``c_r``
(2 seeds) and made the task too hard for the linear policies (true_state 37).

Tried on the failing cases without success (same data; ``random_state`` 2001 /
3001, i.e. seeds 2 / 3 with other initialisations, base 0.68 / 0.65): multi-step
(overshooting, 5 steps) KL 0.56 / 0.73 at twice the fit time; ``reward_weight=50``
0.84 / 0.64 but 0.48 / 0.67 where the default gave 0.86 / 0.86 (seeds 0 / 2,
``random_state`` 0 / 2000); ``adversarial_weight=10`` 0.74 / 0.65; reward read from the
posterior mean 0.63 / 0.63 (with ``reward_weight=50`` 0.74 / 0.72). Keeping the best
of three fully trained initialisations by lowest transition KL (the block-factorised
prior fits a mixed block worse) looked promising on seeds 0-3 (held-out KL picked
mean 0.81 against 0.73 for a random initialisation) but on the benchmark picked a
worse run on seed 0 (0.60 vs 0.86) and the same one on seeds 1, 4, 5, at 3x the
time, so it was not kept.

Usage::

    python benchmarks/bench_rl.py --quick                 # both parts, small settings
    python benchmarks/bench_rl.py --part blocks --seeds 8 --n-jobs 2   # 600 epochs
    python benchmarks/bench_rl.py --part policy --seeds 3
"""

from __future__ import annotations

import argparse
import copy
import time
from typing import Any

import numpy as np

MODELS = {
    "ifactor_own": dict(transition_inputs="own"),
    "ifactor_own_n3": dict(transition_inputs="own", n_init=3),
    "ifactor_full": dict(transition_inputs="full"),
    "noinfo_own": dict(transition_inputs="own", action_weight=0.0, adversarial_weight=0.0),
    "noinfo_full": dict(transition_inputs="full", action_weight=0.0, adversarial_weight=0.0),
    "plain": dict(factorized=False),
    "raw_obs": None,
}


def _as_trained(model: Any) -> Any:
    """Shallow copy of a fitted world model that reads its blocks without the alignment."""
    plain = copy.copy(model).set_params(align_blocks=False)
    plain.block_map_ = plain.block_offset_ = None
    return plain


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
        variants = {}
        if name == "raw_obs":  # reference: every "learned block" is the whole observation
            variants[name] = {k: data.observations for k in BLOCK_KEYS}
        else:
            model = IFactorWorldModel(dims, max_iter=max_iter, device=device, random_state=seed,
                                      align_blocks=True, **MODELS[name])
            model.fit(data.observations, data.actions, data.rewards, is_first=data.is_first)
            # one fit, scored as trained (the default) and after the block alignment
            variants[name] = _as_trained(model).transform(data.observations)
            variants[name + "+align"] = model.transform(data.observations)
        elapsed = time.perf_counter() - t0
        for label, learned in variants.items():
            r2 = block_r2_matrix(data.blocks, learned, random_state=seed)
            off = r2[~np.eye(4, dtype=bool)]
            rows.append({"model": label, "seed": seed, "diag": float(np.diag(r2).mean()),
                         "diag_min": float(np.diag(r2).min()), "off": float(off.mean()),
                         "off_max": float(off.max()), "time": elapsed, "r2": r2})
            print(f"  done seed {seed} {label:<21} diag {rows[-1]['diag']:.2f} per block "
                  f"{np.round(np.diag(r2), 2)} off_max "
                  f"{rows[-1]['off_max']:.2f} time {elapsed:.0f}s", flush=True)
    return rows


#: world models of the policy part: IFactor, IFactor with the paper's one-step action
#: adversary, the same block-structured model without information terms, the plain one
POLICY_MODELS = {
    "ifactor": dict(transition_inputs="own"),
    "ifactor_h1": dict(transition_inputs="own", action_horizon=1),
    "noinfo": dict(transition_inputs="own", action_weight=0.0, adversarial_weight=0.0),
    "plain": dict(factorized=False, align_blocks=False),
}
POLICY_INPUTS = ("true_state", "true_relevant", "ifactor_relevant", "ifactor_relevant+align",
                 "ifactor_h1_relevant", "ifactor_h1_relevant+align", "noinfo_relevant",
                 "noinfo_relevant+align", "ifactor_all", "plain_latent", "raw_obs")
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
    for name, kw in POLICY_MODELS.items():
        t0 = time.perf_counter()
        models[name] = IFactorWorldModel(dims, max_iter=max_iter, n_init=n_init, device=device,
                                         random_state=seed, **kw).fit(
            data.observations, data.actions, data.rewards, is_first=data.is_first)
        elapsed = time.perf_counter() - t0
        if models[name].align_blocks:  # the same networks read with and without the alignment
            models[name + "+align"] = models[name]
            models[name] = _as_trained(models[name])
        for label in (name, name + "+align"):
            if label in models:
                r2 = block_r2_matrix(data.blocks, models[label].transform(data.observations), random_state=seed)
                rows.append({"kind": "r2", "model": label, "seed": seed, "r2": r2, "time": elapsed})
    relevant = ("controllable_relevant", "uncontrollable_relevant")
    setups = {
        "true_state": (TrueStateObservation(env), None, 0),
        "true_relevant": (TrueStateObservation(env, relevant), None, 0),
        **{f"{m}_relevant{a}": (env, BlockFeatures(models[m + a], relevant), data.rewards.size)
           for m in ("ifactor", "ifactor_h1", "noinfo") for a in ("", "+align")},
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
    models = list(dict.fromkeys(df["model"]))  # with the "+align" variants
    cols = ["diag", "diag_min", "off", "off_max", "time"]
    agg = df.groupby("model", sort=False)[cols].agg(["mean", "std"])
    with pd.option_context("display.width", 200, "display.float_format", "{:.3f}".format):
        print("\nFourBlockMDP block-identification R² (mean and std over seeds; targets diag >= 0.8, "
              "off <= 0.2)")
        print(agg.to_string())
        print("\nper-seed mean diagonal R² (rows model, columns seed)")
        print(df.pivot(index="model", columns="seed", values="diag").loc[models].to_string())
    keys = ["c_r", "u_r", "c_i", "u_i"]
    for name in models:
        mean = np.mean([r["r2"] for r in rows if r["model"] == name], axis=0)
        print(f"\n{name}: mean R² matrix (rows true block, columns learned block)")
        print(pd.DataFrame(mean, index=keys, columns=keys).round(2).to_string())


def _print_policy(rows: list[dict]) -> None:
    import pandas as pd

    keys = ["c_r", "u_r", "c_i", "u_i"]
    for name in dict.fromkeys(r["model"] for r in rows if r["kind"] == "r2"):
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
    parser.add_argument("--first-seed", type=int, default=0,
                        help="seeds are first_seed .. first_seed + seeds - 1 (default 0)")
    parser.add_argument("--episodes", type=int, default=None,
                        help="world-model episodes of 100 steps (default 40 blocks / 30 policy; quick 20)")
    parser.add_argument("--max-iter", type=int, default=None, help="world-model epochs (blocks default 600, policy 200; quick 150 / 100)")
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
    max_iter = args.max_iter or (150 if args.quick else 600)
    cem_iter = args.cem_iter or (10 if args.quick else 15)
    seeds = list(range(args.first_seed, args.first_seed + n_seeds))

    from joblib import Parallel, delayed

    t0 = time.perf_counter()
    rows: list[dict] = []
    if args.part in ("blocks", "both"):
        n_episodes = args.episodes or (20 if args.quick else 40)
        print(f"Part blocks: FourBlockMDP, {n_episodes} episodes x 100 steps, {n_seeds} seed(s), "
              f"{max_iter} epochs, device {args.device}, 1 torch thread per job", flush=True)
        results = Parallel(n_jobs=args.n_jobs)(
            delayed(_run_blocks_seed)(s, models, n_episodes, max_iter, args.device) for s in seeds
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
            for s in seeds
        )
        policy_rows = [r for res in results for r in res]
        _print_policy(policy_rows)
        rows += policy_rows
    print(f"\ntotal wall time {time.perf_counter() - t0:.0f} s")
    return rows


if __name__ == "__main__":
    main()
