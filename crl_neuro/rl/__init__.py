"""crl_neuro.rl: world models with four identifiable latent blocks (IFactor).

Blocks: controllable/uncontrollable × reward-relevant/irrelevant (Liu, Huang et al.,
NeurIPS 2023). :class:`IFactorWorldModel` learns them from trajectories;
:mod:`crl_neuro.rl.envs` provides Gymnasium environments with the true blocks;
:class:`CEMPolicy` searches linear policies on chosen (learned or true) blocks.
"""

from crl_neuro.core.validation import require_optional

require_optional("torch", "rl", "crl_neuro.rl")
require_optional("gymnasium", "rl", "crl_neuro.rl")

from crl_neuro.rl.envs import (
    BLOCK_KEYS,
    DistractorCartPole,
    FourBlockMDP,
    TrueStateObservation,
    collect_episodes,
)
from crl_neuro.rl.policy import BlockFeatures, CEMPolicy
from crl_neuro.rl.world_model import IFactorWorldModel, block_r2_matrix

__all__ = [
    "BLOCK_KEYS",
    "BlockFeatures",
    "CEMPolicy",
    "DistractorCartPole",
    "FourBlockMDP",
    "IFactorWorldModel",
    "TrueStateObservation",
    "block_r2_matrix",
    "collect_episodes",
]
