"""Nilearn adapter: causal regions of interest (:class:`CausalROIs`), their graph and plots."""

from crl_neuro.fmri.causal_rois import CausalROIs
from crl_neuro.fmri.roi_graph import pairwise_lr_tanh, roi_causal_graph

__all__ = ["CausalROIs", "roi_causal_graph", "pairwise_lr_tanh"]
