"""Simulators with ground truth and fetchers of public datasets.

Names are imported lazily so that ``import crl_neuro.datasets`` stays fast and
does not pull in MNE or Nilearn until a simulator is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "simulate_meeg_sessions": "crl_neuro.datasets.meeg",
    "draw_meeg_problem": "crl_neuro.datasets.meeg",
    "simulate_fmri_rois": "crl_neuro.datasets.fmri",
    "draw_fmri_problem": "crl_neuro.datasets.fmri",
    "simulate_latent_questionnaire": "crl_neuro.datasets.psychometrics",
    "simulate_multidomain_latents": "crl_neuro.datasets.nonlinear",
    "draw_multidomain_problem": "crl_neuro.datasets.nonlinear",
    "simulate_multimodal": "crl_neuro.datasets.multimodal",
    "draw_multimodal_problem": "crl_neuro.datasets.multimodal",
    "make_causal_images": "crl_neuro.datasets.images",
    "fetch": "crl_neuro.datasets.fetch",
    "load_manifest": "crl_neuro.datasets.fetch",
    "DatasetIntegrityError": "crl_neuro.datasets.fetch",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        # Cache it: importing the submodule ``fetch`` would otherwise shadow the function.
        globals()[name] = value
        return value
    raise AttributeError(f"module 'crl_neuro.datasets' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
