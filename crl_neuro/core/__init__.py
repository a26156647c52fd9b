"""Modality-agnostic engine of crl_neuro (imports neither mne nor nilearn)."""

from crl_neuro.core.base import BaseCRLEstimator, check_is_fitted, load

__all__ = ["BaseCRLEstimator", "check_is_fitted", "load"]
