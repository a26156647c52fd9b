"""Conversion between MNE ``Raw``/``Epochs`` and arrays with session labels.

Channel selection, bad channels and projectors are handled the MNE way: channels
are picked with MNE's picking rules (``picks=None`` means all data channels),
bad channels are excluded (the union over sessions), and the projectors of the
measurement info are applied (an average-reference projector is added for EEG
when missing, as MNE requires for source modelling).

Annotated artefacts are handled the MNE way too: with ``reject_by_annotation=True``
(the default, as in :meth:`mne.preprocessing.ICA.fit`) the samples of a ``Raw``
inside annotations whose description starts with ``BAD`` are left out; for
``Epochs`` the epochs MNE rejects (``reject``/``flat``, annotations at epoching)
are left out with their session labels. The good stretches of a session are
concatenated for the covariances, and their lengths are returned so that
time-lagged statistics (autocorrelations) never run across a removed stretch or
an epoch boundary.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np

from crl_neuro import _mne_compat as _compat

__all__: list[str] = []


def _is_raw(inst: Any) -> bool:
    from mne.io import BaseRaw

    return isinstance(inst, BaseRaw)


def _is_epochs(inst: Any) -> bool:
    from mne import BaseEpochs

    return isinstance(inst, BaseEpochs)


def _kind(inst: Any, name: str) -> str:
    if _is_raw(inst):
        return "raw"
    if _is_epochs(inst):
        return "epochs"
    raise TypeError(f"{name} must be an mne.io.Raw or mne.Epochs, got {type(inst).__name__}")


def _pick_names(info: Any, picks: Any, exclude: Sequence[str]) -> list[str]:
    """Channel names selected by ``picks`` (MNE rules), without ``exclude``."""
    try:
        idx = _compat.picks_to_idx(info, picks, none="data", exclude=exclude)
    except (ValueError, TypeError, IndexError) as err:
        raise ValueError(f"picks={picks!r} could not be applied: {err}") from err
    return [info["ch_names"][i] for i in idx]


def check_reject_by_annotation(value: Any) -> bool:
    """Validate the ``reject_by_annotation`` argument (a bool)."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"reject_by_annotation must be True or False, got {value!r}")
    return bool(value)


def _n_units(inst: Any) -> int:
    """Samples of a Raw, or candidate epochs (rows of ``events``) of an Epochs."""
    return inst.n_times if _is_raw(inst) else len(inst.events)


def _split_single(inst: Any, sessions: Any) -> tuple[list[np.ndarray], np.ndarray]:
    """Split one instance into per-session index arrays using ``sessions`` labels."""
    n = _n_units(inst)
    unit = "sample" if _is_raw(inst) else "epoch (row of epochs.events)"
    if sessions is None:
        raise ValueError(
            "sessions is required with a single instance: one label per "
            f"{unit} ({n} values); or pass a list of instances, one per session"
        )
    labels = np.asarray(sessions)
    if labels.ndim != 1 or labels.shape[0] != n:
        raise ValueError(
            f"sessions must have one label per {unit} ({n}), got shape {labels.shape}"
        )
    if labels.dtype.kind == "f" and not np.all(np.isfinite(labels)):
        raise ValueError("sessions contains NaN or infinite labels")
    uniq, codes = np.unique(labels, return_inverse=True)
    return [np.nonzero(codes == s)[0] for s in range(uniq.size)], uniq


def _runs(kept: np.ndarray) -> np.ndarray:
    """Lengths of the runs of consecutive sample indices in the sorted ``kept``."""
    if kept.size == 0:
        return np.zeros(0, int)
    breaks = np.nonzero(np.diff(kept) != 1)[0] + 1
    return np.diff(np.concatenate([[0], breaks, [kept.size]]))


def _raw_part(
    raw: Any, names: list[str], idx: np.ndarray | None, reject: bool, bad: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Data (n_ch, n_kept) of one session of a Raw and the lengths of its contiguous stretches."""
    keep = np.ones(raw.n_times, bool) if idx is None else np.isin(np.arange(raw.n_times), idx)
    if reject:
        keep &= ~bad
    kept = np.nonzero(keep)[0]
    x = raw.get_data(picks=names)
    if kept.size < raw.n_times:
        x = x[:, kept]
    return x, _runs(kept)


def _epochs_part(
    epochs: Any, names: list[str], idx: np.ndarray | None
) -> tuple[np.ndarray, np.ndarray]:
    """Data (n_ch, n_epochs * n_times) of the kept epochs among ``idx`` and the epoch lengths.

    Epochs not yet checked (``preload=False``) are checked on a copy, so the
    caller's instance keeps its state; the epochs MNE rejects are dropped with
    their labels.
    """
    ep = epochs
    if not epochs.preload:
        ep = epochs.copy().drop_bad(verbose=False)
    if idx is not None:
        # Positions among the candidate epochs of those MNE kept, restricted to this session.
        pos = np.searchsorted(epochs.selection, ep.selection)
        ep = ep[np.nonzero(np.isin(pos, idx))[0]]
    x = ep.get_data(picks=names)  # (n_epochs, n_ch, n_times)
    n_ep, _, n_t = x.shape
    x = np.concatenate(list(x), axis=1) if n_ep else np.zeros((len(names), 0))
    return x, np.full(n_ep, n_t, int)


def prepare_sessions(
    insts: Any, sessions: Any, picks: Any, reject_by_annotation: bool = True
) -> tuple[list[np.ndarray], Any, np.ndarray, str, list[int], list[np.ndarray]]:
    """Per-session data, picked info, labels, kind, sample counts and stretch lengths.

    Parameters
    ----------
    insts : mne.io.Raw | mne.Epochs | list of them
        One instance per session, or one instance with ``sessions``.
    sessions : array-like | None
        Labels: one per instance, or per sample (Raw) / row of ``events`` (Epochs).
    picks : str | list | slice | None
        Channels (MNE rules).
    reject_by_annotation : bool
        Leave out the samples of a Raw inside ``BAD*`` annotations.

    Returns
    -------
    data : list of ndarray, shape (n_channels, n_samples)
    info : mne.Info
    labels : ndarray
    kind : {"raw", "epochs"}
    counts : list of int
        Samples per session.
    segments : list of ndarray of int
        Per session, the lengths of its contiguous stretches (epochs, or the
        good parts of a Raw) in the order they are concatenated in ``data``.

    Notes
    -----
    The caller's instances are never modified (data are read with ``get_data``).
    """
    import mne

    reject = check_reject_by_annotation(reject_by_annotation)

    if isinstance(insts, (list, tuple)):
        if len(insts) == 0:
            raise ValueError("insts is an empty list; pass one Raw/Epochs per session")
        kinds = [_kind(inst, f"insts[{i}]") for i, inst in enumerate(insts)]
        if len(set(kinds)) > 1:
            raise TypeError("insts must all be Raw or all be Epochs, got a mix")
        if sessions is not None:
            sessions = np.asarray(sessions)
            if sessions.shape != (len(insts),):
                raise ValueError(
                    f"with a list of instances, sessions must give one label per instance "
                    f"({len(insts)}), got shape {sessions.shape}"
                )
            if len(np.unique(sessions)) != len(insts):
                raise ValueError("sessions labels for a list of instances must be distinct")
            labels = sessions
        else:
            labels = np.arange(len(insts))
        parts = [(inst, None) for inst in insts]
    else:
        kind = _kind(insts, "insts")
        idx_list, labels = _split_single(insts, sessions)
        parts = [(insts, idx) for idx in idx_list]
        kinds = [kind]
    kind = kinds[0]
    if len(parts) < 2:
        raise ValueError(
            f"at least 2 sessions are needed (the network is identified from changes across "
            f"sessions), got {len(parts)}"
        )
    # Bad channels: union over sessions.
    bads = sorted({b for inst, _ in parts for b in inst.info["bads"]})
    first = parts[0][0]
    names = _pick_names(first.info, picks, bads)
    for i, (inst, _) in enumerate(parts[1:], start=1):
        other = _pick_names(inst.info, picks, bads)
        if other != names:
            missing = sorted(set(names) - set(other))
            extra = sorted(set(other) - set(names))
            detail = []
            if missing:
                detail.append(f"missing {missing[:10]}")
            if extra:
                detail.append(f"extra {extra[:10]}")
            if not detail:
                detail.append("same channels in a different order")
            raise ValueError(
                f"insts[{i}] does not have the same channels as insts[0]: " + "; ".join(detail)
            )
    if len(names) < 2:
        raise ValueError(f"picks={picks!r} selects {len(names)} channel(s); need at least 2")
    info = mne.pick_info(first.info, [first.info["ch_names"].index(c) for c in names])
    info["bads"] = []  # a settable field: no unlocking needed
    info = _ensure_average_reference(info)
    data, segments = [], []
    bad_masks: dict[int, np.ndarray] = {}
    for i, (inst, idx) in enumerate(parts):
        if _is_raw(inst):
            if reject and id(inst) not in bad_masks:  # once per Raw, not per session label
                bad_masks[id(inst)] = _compat.bad_annotation_mask(inst)
            x, seg = _raw_part(inst, names, idx, reject, bad_masks.get(id(inst)))
        else:
            x, seg = _epochs_part(inst, names, idx)
        if not np.all(np.isfinite(x)):
            raise ValueError(f"insts: session {_plain(labels[i])!r} contains NaN or infinite values")
        data.append(x)
        segments.append(seg)
    counts = [x.shape[1] for x in data]
    return data, info, np.asarray(labels), kind, counts, segments


def _ensure_average_reference(info: Any) -> Any:
    """Add an (inactive) EEG average-reference projector when none is present."""
    has_eeg = any(t == "eeg" for t in info.get_channel_types())
    if not has_eeg:
        return info
    if any("Average EEG reference" in p["desc"] for p in info["projs"]):
        return info
    proj = _compat.make_eeg_average_ref_proj(info, activate=False)
    info = info.copy()
    with _compat.info_unlocked(info):
        info["projs"] = list(info["projs"]) + [proj]
    return info


def projector(info: Any) -> np.ndarray:
    """Projection matrix of all projectors in ``info`` (identity when none)."""
    if not info["projs"]:
        return np.eye(len(info["ch_names"]))
    return _compat.make_projector(info["projs"], info["ch_names"])


def instance_data(inst: Any, ch_names: list[str]) -> np.ndarray:
    """Data of ``inst`` on ``ch_names``: (n_ch, n_times) for Raw, (n_epochs, n_ch, n_times) for Epochs."""
    missing = [c for c in ch_names if c not in inst.ch_names]
    if missing:
        raise ValueError(f"inst lacks channel(s) used at fit time: {missing[:10]}")
    x = inst.get_data(picks=ch_names)
    if not np.all(np.isfinite(x)):
        raise ValueError("inst contains NaN or infinite values")
    return x


def _plain(label: Any) -> Any:
    """A numpy scalar label as a Python value, so messages read ``0``, not ``np.int64(0)``."""
    return label.item() if hasattr(label, "item") else label
