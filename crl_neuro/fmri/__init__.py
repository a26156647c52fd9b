"""Nilearn adapter: causal regions of interest (:class:`CausalROIs`) and their plots."""

from crl_neuro.fmri.causal_rois import CausalROIs

__all__ = ["CausalROIs"]
