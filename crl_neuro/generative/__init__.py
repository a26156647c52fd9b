"""crl_neuro.generative: image generation and editing that respects causal relations among attributes."""

from crl_neuro.core.validation import require_optional

require_optional("torch", "deep", "crl_neuro.generative")

from crl_neuro.generative.model import CausalImageModel

__all__ = ["CausalImageModel"]
