"""The one place where crl_neuro touches MNE's private API.

MNE moved its FIF helpers from ``mne.io`` to the private ``mne._fiff`` package
(1.6) and locks ``Info`` objects (1.0). Everything private that crl_neuro uses is
imported here, with a fallback for the other layout, so an MNE release that
moves them again breaks one module, not many.

It sits at the top of the package (not in :mod:`crl_neuro.meeg`) and imports nothing
of crl_neuro, so that both the M/EEG adapter and the simulators in
:mod:`crl_neuro.datasets` use it without the simulators loading the estimators.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "bad_annotation_mask",
    "info_unlocked",
    "make_eeg_average_ref_proj",
    "make_projector",
    "picks_to_idx",
]

# Candidate modules of each private helper, newest layout first.
_LOCATIONS: dict[str, tuple[str, ...]] = {
    "_picks_to_idx": ("mne._fiff.pick", "mne.io.pick"),
    "make_eeg_average_ref_proj": ("mne._fiff.proj", "mne.io.proj"),
    "make_projector": ("mne._fiff.proj", "mne.io.proj"),
}


def _private(name: str) -> Callable[..., Any]:
    """Return MNE's private helper ``name`` from whichever module holds it."""
    for module in _LOCATIONS[name]:
        try:
            return getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
    import mne

    raise ImportError(
        f"crl_neuro could not find mne's {name} (looked in {', '.join(_LOCATIONS[name])}) "
        f"in mne {mne.__version__}; please report this MNE version"
    )


def picks_to_idx(info: Any, picks: Any, none: str = "data", exclude: Sequence[str] = ()) -> np.ndarray:
    """Channel indices selected by ``picks`` with MNE's picking rules.

    Parameters
    ----------
    info : mne.Info
    picks : str | list | slice | None
        As everywhere in MNE.
    none : str
        What ``picks=None`` selects (``"data"``: all data channels).
    exclude : sequence of str
        Channel names left out.

    Returns
    -------
    idx : ndarray of int
    """
    return _private("_picks_to_idx")(info, picks, none=none, exclude=list(exclude))


def make_eeg_average_ref_proj(info: Any, activate: bool = False) -> Any:
    """EEG average-reference projector of ``info`` (:class:`mne.Projection`)."""
    return _private("make_eeg_average_ref_proj")(info, activate=activate, verbose=False)


def make_projector(projs: list, ch_names: list[str]) -> np.ndarray:
    """Projection matrix (n_channels, n_channels) applying all ``projs`` on ``ch_names``."""
    P, _, _ = _private("make_projector")(projs, ch_names)
    return P


def info_unlocked(info: Any) -> contextlib.AbstractContextManager:
    """Context in which the locked fields of ``info`` (``projs``, ``chs``, ...) may be set."""
    unlock = getattr(info, "_unlock", None)
    # MNE < 1.0 did not lock Info at all.
    return unlock() if unlock is not None else contextlib.nullcontext()


def bad_annotation_mask(raw: Any) -> np.ndarray:
    """Samples of ``raw`` inside annotations whose description starts with ``BAD`` (any case).

    Uses MNE's own rule through its public API (``get_data`` with
    ``reject_by_annotation="NaN"`` on one channel), so onsets, ``orig_time``,
    ``first_samp`` and rounding are handled exactly as MNE handles them.
    Samples that are NaN in the recording itself are not counted as annotated
    (the caller reports them as invalid data).

    Parameters
    ----------
    raw : mne.io.Raw

    Returns
    -------
    mask : ndarray of bool, shape (n_times,)
        True where the sample is annotated bad.
    """
    if raw.annotations is None or not any(
        str(d).upper().startswith("BAD") for d in raw.annotations.description
    ):
        return np.zeros(raw.n_times, bool)
    with np.errstate(invalid="ignore"):
        marked = raw.get_data(picks=[0], reject_by_annotation="NaN", verbose=False)[0]
        plain = raw.get_data(picks=[0])[0]
    return np.isnan(marked) & ~np.isnan(plain)
