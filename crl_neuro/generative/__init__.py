"""crl_neuro.generative: image generation and editing that respects causal relations among attributes."""

from crl_neuro.generative.model import CausalImageModel

__all__ = ["CausalImageModel"]
