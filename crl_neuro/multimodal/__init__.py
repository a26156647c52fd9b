"""Causal representation learning from several modalities (Sun et al., ICLR 2025).

:class:`MultiModalCRL` learns per-modality latent variables and the sparse causal links
among them across modalities; a modality may be an array, a DataFrame or an MNE
``Epochs``/``Raw`` (log band-power features).
"""

from crl_neuro.core.validation import require_optional

require_optional("torch", "deep", "crl_neuro.multimodal")

from crl_neuro.multimodal.model import MultiModalCRL
from crl_neuro.multimodal.viz import plot_multimodal_graph

__all__ = ["MultiModalCRL", "plot_multimodal_graph"]
