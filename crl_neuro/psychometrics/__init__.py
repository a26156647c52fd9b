"""Latent causal structure behind questionnaire items (RLCD-style rank constraints).

:class:`LatentCausalModel` finds the latent variables measured by a table of item
responses, which items measure which latent (including impure items), and the
Markov equivalence class of the causal structure among the latents, including
latents that have no items of their own.
"""

from crl_neuro.psychometrics.model import LatentCausalModel

__all__ = ["LatentCausalModel"]
