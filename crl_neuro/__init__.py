"""crl_neuro: causal representation learning for neuroimaging, as an MNE / Nilearn plugin.

Submodules are imported on first access, as in MNE: ``import crl_neuro`` is fast and
loads neither torch, gymnasium, MNE nor Nilearn, and ``crl_neuro.fmri`` (or
``crl_neuro.meeg``, ``crl_neuro.datasets``...) works right after it.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

from crl_neuro.core.base import CorruptModelError, load  # noqa: E402

#: Submodules reachable as attributes of the package (imported on first access).
_SUBMODULES = (
    "cli",
    "core",
    "datasets",
    "fmri",
    "generative",
    "group",
    "meeg",
    "multimodal",
    "psychometrics",
    "report",
    "rl",
    "viz",
)

__all__ = ["CorruptModelError", "__version__", "load", *_SUBMODULES]


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f"{__name__}.{name}")
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
