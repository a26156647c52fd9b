"""crl_neuro: causal representation learning for neuroimaging, as an MNE / Nilearn plugin."""

__version__ = "0.1.0"

from crl_neuro.core.base import CorruptModelError, load  # noqa: E402

__all__ = ["CorruptModelError", "__version__", "load"]
