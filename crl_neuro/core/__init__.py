"""Modality-agnostic engine of crl_neuro (imports neither mne nor nilearn).

Submodules: :mod:`~crl_neuro.core.base` (estimator base, persistence),
:mod:`~crl_neuro.core.validation`, :mod:`~crl_neuro.core.graphs` (the graph type),
:mod:`~crl_neuro.core.metrics`, :mod:`~crl_neuro.core.multidist`
(:class:`MultiDistributionCRL`; its linear engine in :mod:`~crl_neuro.core.joint_sparse`),
:mod:`~crl_neuro.core.nonlinear` (nonlinear engine,
:class:`IVAE`), :mod:`~crl_neuro.core.abstraction` (causal abstraction),
:mod:`~crl_neuro.core.discovery` (causal-learn wrappers), :mod:`~crl_neuro.core.training`
(torch loop) and :mod:`~crl_neuro.core.advisor` (identifiability advisor).
"""

from __future__ import annotations

import importlib
from typing import Any

from crl_neuro.core.base import (
    ArraySpec,
    BaseCRLEstimator,
    CorruptModelError,
    all_estimators,
    check_is_fitted,
    fill_doc,
    load,
    read_metadata,
    set_log_level,
    use_log_level,
)
from crl_neuro.core.graphs import Graph
from crl_neuro.core.metrics import (
    graph_f1,
    graph_scores,
    labels_ari,
    localization_error,
    mcc,
    shd,
)

# Heavier names (torch, causal-learn) load on first use.
_LAZY = {
    "MultiDistributionCRL": "crl_neuro.core.multidist",
    "IVAE": "crl_neuro.core.nonlinear",
    "advise": "crl_neuro.core.advisor",
}

__all__ = [
    "ArraySpec",
    "BaseCRLEstimator",
    "CorruptModelError",
    "Graph",
    "all_estimators",
    "check_is_fitted",
    "fill_doc",
    "graph_f1",
    "graph_scores",
    "labels_ari",
    "load",
    "localization_error",
    "mcc",
    "read_metadata",
    "set_log_level",
    "shd",
    "use_log_level",
    *sorted(_LAZY),
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        # Cache it: importing the submodule ``fetch`` would otherwise shadow the function.
        globals()[name] = value
        return value
    raise AttributeError(f"module 'crl_neuro.core' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
