"""MNE adapter: turn an ``mne.Epochs``/``mne.io.Raw`` into one modality's feature table.

A modality of :class:`~crl_neuro.multimodal.MultiModalCRL` is a table with one row per
observation unit. For M/EEG that unit is an epoch (``Epochs``) or a fixed-length window
cut from a ``Raw`` with :func:`mne.make_fixed_length_epochs`; its features are the log
band powers of each channel, from :meth:`mne.Epochs.compute_psd` (Welch).

Rows MNE leaves out are reported so the other modalities can drop the same rows:
windows of a ``Raw`` overlapping a ``BAD*`` annotation (``reject_by_annotation``,
MNE's default) and epochs rejected by ``reject``/``flat`` when loading.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["DEFAULT_BANDS", "is_mne_instance", "band_power_features"]

#: Frequency bands (Hz) used when ``bands=None``.
DEFAULT_BANDS: dict[str, tuple[float, float]] = {
    "delta": (1.0, 4.0),
    "theta": (4.0, 8.0),
    "alpha": (8.0, 13.0),
    "beta": (13.0, 30.0),
}


def is_mne_instance(obj: Any) -> bool:
    """Whether ``obj`` is an ``mne.io.Raw`` or ``mne.Epochs`` (without importing MNE needlessly)."""
    mod = type(obj).__module__ or ""
    if not mod.startswith("mne"):
        return False
    from mne import BaseEpochs
    from mne.io import BaseRaw

    return isinstance(obj, (BaseRaw, BaseEpochs))


def _check_bands(bands: Any, sfreq: float, name: str) -> dict[str, tuple[float, float]]:
    bands = DEFAULT_BANDS if bands is None else bands
    if not isinstance(bands, dict) or not bands:
        raise TypeError(f"bands must be a non-empty dict name -> (fmin, fmax) or None, got {bands!r}")
    out = {}
    for band, lim in bands.items():
        if len(lim) != 2 or not 0 <= float(lim[0]) < float(lim[1]):
            raise ValueError(f"bands[{band!r}] must be (fmin, fmax) with 0 <= fmin < fmax, got {lim!r}")
        if float(lim[1]) > sfreq / 2:
            raise ValueError(
                f"bands[{band!r}] goes up to {lim[1]} Hz, above the Nyquist frequency "
                f"({sfreq / 2} Hz) of modality {name!r}"
            )
        out[str(band)] = (float(lim[0]), float(lim[1]))
    return out


def band_power_features(
    inst: Any,
    bands: dict[str, tuple[float, float]] | None = None,
    epoch_duration: float = 2.0,
    picks: Any = "data",
    name: str = "inst",
    reject_by_annotation: bool = True,
) -> tuple[np.ndarray, list[str]]:
    """Log band power per channel and band, one row per epoch or window.

    Parameters
    ----------
    inst : mne.io.Raw | mne.Epochs
        The recording; not modified.
    bands : dict | None
        Band name -> (fmin, fmax) in Hz; default :data:`DEFAULT_BANDS`.
    epoch_duration : float
        Window length in seconds used to cut a ``Raw`` (ignored for ``Epochs``).
    picks : str | list | None
        Channels, with MNE's picking rules (default all data channels, bads excluded).
    name : str
        Modality name used in error messages.
    reject_by_annotation : bool
        Drop the windows of a ``Raw`` that overlap an annotation whose description
        starts with ``BAD`` (as :func:`mne.make_fixed_length_epochs`). Ignored for
        ``Epochs``, whose rejected epochs are always dropped.

    Returns
    -------
    features : ndarray, shape (n_epochs, n_channels * n_bands)
        ``log10`` of the mean PSD in each band.
    feature_names : list of str
        ``"{channel}_{band}"``.
    """
    X, names, _, _ = band_power_rows(inst, bands, epoch_duration, picks, name, reject_by_annotation)
    return X, names


def band_power_rows(
    inst: Any,
    bands: dict[str, tuple[float, float]] | None = None,
    epoch_duration: float = 2.0,
    picks: Any = "data",
    name: str = "inst",
    reject_by_annotation: bool = True,
) -> tuple[np.ndarray, list[str], np.ndarray, int]:
    """:func:`band_power_features` plus which candidate rows were kept.

    Returns
    -------
    features, feature_names
        As :func:`band_power_features`.
    kept : ndarray of int
        Positions of the rows of ``features`` among the candidate rows: the
        windows of the whole ``Raw``, or the rows of ``epochs.events``.
    n_candidates : int
        Number of candidate rows.
    """
    import mne

    if not is_mne_instance(inst):
        raise TypeError(f"data[{name!r}] must be an mne.io.Raw or mne.Epochs, got {type(inst).__name__}")
    if not isinstance(reject_by_annotation, (bool, np.bool_)):
        raise TypeError(f"reject_by_annotation must be True or False, got {reject_by_annotation!r}")
    sfreq = float(inst.info["sfreq"])
    bands = _check_bands(bands, sfreq, name)
    if isinstance(inst, mne.io.BaseRaw):
        if not epoch_duration > 0:
            raise ValueError(f"epoch_duration must be > 0 seconds, got {epoch_duration!r}")
        epochs = mne.make_fixed_length_epochs(
            inst, duration=float(epoch_duration), preload=True,
            reject_by_annotation=bool(reject_by_annotation), verbose="error",
        )
        # drop_log has one entry per window of the whole recording, dropped or not.
        kept, n_candidates = np.asarray(epochs.selection, int), len(epochs.drop_log)
    else:
        # Checking unloaded epochs drops the rejected ones in place: do it on a copy.
        epochs = inst if inst.preload else inst.copy().drop_bad(verbose="error")
        kept = np.searchsorted(inst.selection, epochs.selection)
        n_candidates = len(inst.events)
    if len(epochs) == 0:
        raise ValueError(f"data[{name!r}] has no epoch or window left after rejection")
    fmin = min(lo for lo, _ in bands.values())
    fmax = max(hi for _, hi in bands.values())
    n_times = len(epochs.times)
    spectrum = epochs.compute_psd(
        method="welch", fmin=fmin, fmax=fmax, picks=picks, n_fft=min(n_times, int(round(2 * sfreq))),
        verbose="error",
    )
    psd, freqs = spectrum.get_data(return_freqs=True)  # (n_epochs, n_channels, n_freqs)
    feats, names = [], []
    for band, (lo, hi) in bands.items():
        sel = (freqs >= lo) & (freqs < hi)
        if not sel.any():
            raise ValueError(
                f"bands[{band!r}] = ({lo}, {hi}) Hz holds no frequency bin for modality {name!r} "
                "(windows too short: increase epoch_duration or widen the band)"
            )
        feats.append(np.log10(psd[:, :, sel].mean(axis=2) + np.finfo(float).tiny))
        names += [f"{ch}_{band}" for ch in spectrum.ch_names]
    X = np.concatenate(feats, axis=1)
    return X, names, kept, n_candidates
