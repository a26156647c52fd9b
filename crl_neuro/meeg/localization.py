"""Localise sensor patterns by scanning the leadfield of an ``mne.Forward``.

A source recovered with its sensor pattern ``a`` (one column of a mixing matrix,
like ``ICA.get_components()``) is localised as the source-space location whose
leadfield best explains ``a``: the location maximising the subspace correlation
between ``a`` and the location's leadfield columns (one column for fixed, three
for free orientation), both noise-whitened. The goodness of fit is the fraction
of the whitened pattern's energy explained by that dipole, in percent.

:func:`scan_leadfield` is used by :class:`crl_neuro.meeg.SessionCRL` and by the
ICA baseline of the benchmarks, so all methods are localised the same way.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
from sklearn.utils import Bunch

__all__ = ["scan_leadfield"]

# Orientations whose leadfield singular value is below this fraction of a location's
# largest are treated as silent (MNE's rap_music uses the same 1e-6).
_ORI_RTOL = 1e-6


def _check_forward(forward: Any, name: str = "forward") -> None:
    import mne

    if not isinstance(forward, mne.Forward):
        raise TypeError(f"{name} must be an mne.Forward, got {type(forward).__name__}")


def _n_ori(forward: Any) -> int:
    from mne.io.constants import FIFF

    return 1 if forward["source_ori"] == FIFF.FIFFV_MNE_FIXED_ORI else 3


def _mri_to_head(forward: Any) -> Any:
    """The MRI -> head transform when the forward's sources are in MRI coordinates, else None."""
    from mne.io.constants import FIFF
    from mne.transforms import invert_transform

    if forward["coord_frame"] != FIFF.FIFFV_COORD_MRI:
        return None
    trans = forward["mri_head_t"]
    return trans if trans["from"] == FIFF.FIFFV_COORD_MRI else invert_transform(trans)


def _source_pos_head(forward: Any) -> np.ndarray:
    """Source positions in head coordinates (metres)."""
    from mne.transforms import apply_trans

    rr = np.asarray(forward["source_rr"], float)
    trans = _mri_to_head(forward)
    return rr if trans is None else apply_trans(trans, rr)


def _source_nn_head(forward: Any) -> np.ndarray:
    """Orientation basis per source in head coordinates, shape (n_src, n_ori, 3)."""
    nn = np.asarray(forward["source_nn"], float)
    trans = _mri_to_head(forward)
    if trans is not None:
        nn = nn @ trans["trans"][:3, :3].T
    n_src = forward["nsource"]
    return nn.reshape(n_src, _n_ori(forward), 3)


def _forward_gain(forward: Any, ch_names: Sequence[str], name: str = "forward") -> np.ndarray:
    """Gain matrix of ``forward`` restricted to ``ch_names`` in that order."""
    fwd_names = list(forward["sol"]["row_names"])
    missing = [c for c in ch_names if c not in fwd_names]
    if missing:
        raise ValueError(
            f"{name} lacks {len(missing)} channel(s) of the data: {missing[:10]}"
            f"{' ...' if len(missing) > 10 else ''}"
        )
    idx = [fwd_names.index(c) for c in ch_names]
    return np.asarray(forward["sol"]["data"], float)[idx]


def _whitener_for(info: Any, ch_names: Sequence[str], noise_cov: Any) -> np.ndarray:
    """Rank-aware noise whitener (with the projectors of ``info``) for ``ch_names``."""
    import mne
    from mne.cov import compute_whitener

    info = mne.pick_info(info, [info["ch_names"].index(c) for c in ch_names])
    if noise_cov is None:
        noise_cov = mne.make_ad_hoc_cov(info, verbose=False)
    W, _ = compute_whitener(noise_cov, info, pca=True, verbose=False)
    return W


def _ori_basis(G: np.ndarray, rtol: float = _ORI_RTOL) -> tuple[np.ndarray, np.ndarray]:
    """Orthonormal basis of each location's leadfield, without its silent orientations.

    ``G`` (src, ch, n_ori). Returns ``Q`` (src, ch, n_ori), whose columns for
    singular values below ``rtol`` times the location's largest are zero, and
    ``to_coef`` (src, n_ori, n_ori) mapping coordinates ``v`` in ``Q`` to
    orientation coefficients ``c`` with ``G[s] @ c = Q[s] @ v``. In a spherical
    head the radial dipole is silent in MEG: its leadfield direction is rounding
    noise, and a QR basis would give that noise full weight in the subspace
    correlation (as :func:`mne.beamformer.rap_music` does, the rank is truncated).
    """
    # Through the n_ori x n_ori Gram matrices rather than an SVD of every (ch, n_ori)
    # leadfield: the same basis, several times faster on a cortical grid.
    # rtol applies to singular values, i.e. rtol**2 to the Gram's eigenvalues
    # (1e-12 for the default, far above double-precision rounding).
    ev, V = np.linalg.eigh(np.matmul(np.swapaxes(G, 1, 2), G))
    sv = np.sqrt(np.clip(ev, 0.0, None))
    keep = sv > rtol * np.maximum(sv[:, -1:], 1e-300)
    inv_sv = np.where(keep, 1.0 / np.where(keep, sv, 1.0), 0.0)
    to_coef = V * inv_sv[:, None, :]
    Q = np.matmul(G, to_coef)
    return Q, to_coef


def _scan(gain_w: np.ndarray, patterns_w: np.ndarray, n_ori: int,
          basis: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, ...]:
    """Best location for each whitened pattern.

    Returns the location index, the subspace correlation, the orientation
    coefficients in the location's orientation basis and the dipole amplitude.
    ``basis``: :func:`_ori_basis` of these locations, when the caller scans the same
    leadfield many times (free orientation only).
    """
    n_src = gain_w.shape[1] // n_ori
    G = gain_w.reshape(gain_w.shape[0], n_src, n_ori).transpose(1, 0, 2)  # (src, ch, ori)
    A = patterns_w / np.maximum(np.linalg.norm(patterns_w, axis=0, keepdims=True), 1e-300)
    if n_ori == 1:
        g = G[:, :, 0]
        gn = np.linalg.norm(g, axis=1)
        gn[gn == 0] = np.inf
        corr = np.abs(g @ A) / gn[:, None]  # (src, n_patterns)
        best = corr.argmax(axis=0)
        coef = np.ones((A.shape[1], 1))
    else:
        # Orthonormal basis per location (the orientations the sensors see); subspace
        # correlation = norm of the projection.
        Q, to_coef = _ori_basis(G) if basis is None else basis  # (src, ch, 3), (src, 3, 3)
        proj = np.matmul(A.T, Q)  # (src, n_patterns, 3)
        corr = np.linalg.norm(proj, axis=2)
        best = corr.argmax(axis=0)
        coef = np.empty((A.shape[1], 3))
        for j, s in enumerate(best):
            c = to_coef[s] @ proj[s, j]  # least-squares orientation within the visible ones
            coef[j] = c / max(np.linalg.norm(c), 1e-300)
    sc = corr[best, np.arange(A.shape[1])]
    amp = np.empty(A.shape[1])
    for j, s in enumerate(best):
        g = G[s] @ coef[j]
        amp[j] = float(g @ patterns_w[:, j]) / max(float(g @ g), 1e-300)
    return best, np.clip(sc, 0.0, 1.0), coef, amp


def _dipoles_at(gain_w: np.ndarray, patterns_w: np.ndarray, locs: np.ndarray,
                n_ori: int) -> tuple[np.ndarray, ...]:
    """As :func:`_scan`, but pattern ``j`` is placed at location ``locs[j]`` (its orientation,
    subspace correlation and amplitude are fitted there)."""
    locs = np.asarray(locs, int)
    sc, amp = np.empty(len(locs)), np.empty(len(locs))
    coef = np.empty((len(locs), n_ori))
    for j, s in enumerate(locs):
        g = gain_w[:, s * n_ori:(s + 1) * n_ori]
        _, sc_j, coef_j, amp_j = _scan(g, patterns_w[:, [j]], n_ori)
        sc[j], coef[j], amp[j] = sc_j[0], coef_j[0], amp_j[0]
    return locs, sc, coef, amp


def _rap_music(gain_w: np.ndarray, signal_basis: np.ndarray, n_sources: int, n_ori: int,
               max_corr: float | None = None, compare: np.ndarray | None = None) -> tuple:
    """Recursively applied MUSIC on an orthonormal signal subspace (whitened space).

    At each step the location with the highest subspace correlation with the
    (projected) signal subspace is taken, then it is projected out of both the
    leadfield and the subspace, so that correlated sources are found one by one;
    the projected subspace is truncated to its remaining dimension (as in
    TRAP-MUSIC, Makela et al. 2018). With ``max_corr``, a location whose
    leadfield, projected on the signal subspace, correlates above ``max_corr`` with
    a pattern already found (so projected) is not taken: two such sources would be
    one generator split in two. With free orientation the location's leadfield is
    taken in the orientation it would be given. ``compare`` (k, ch) maps a whitened
    leadfield to the coordinates in which patterns are compared (default
    ``signal_basis.T``, the orthogonal projection; a caller whose reduction projects
    obliquely passes its own, so that the check matches the patterns it will use).

    Returns the location indices and the whitened dipole patterns (ch, n_sources).
    """
    n_ch = gain_w.shape[0]
    n_src = gain_w.shape[1] // n_ori
    G0 = gain_w.reshape(n_ch, n_src, n_ori).transpose(1, 0, 2)
    if compare is None:
        compare = signal_basis.T
    if max_corr is not None and n_ori == 1:
        # Orthonormal basis of each location's leadfield in signal-subspace
        # coordinates (SVD: directions it does not reach are dropped).
        U_, sv_, _ = np.linalg.svd(np.einsum("kc,sco->sko", compare, G0), full_matrices=False)
        Qs = U_ * (sv_ > 1e-6 * np.maximum(sv_[:, :1], 1e-300))[:, None, :]
    P = np.eye(n_ch)
    locs, pats = [], []
    for i_found in range(n_sources):
        G = np.matmul(P, G0)
        # After projecting out i sources the signal subspace has n_sources - i
        # dimensions (TRAP-MUSIC truncation): keeping the residual directions at
        # full weight would let noise drive the next pick.
        U, _s, _vt = np.linalg.svd(P @ signal_basis, full_matrices=False)
        U = U[:, : max(n_sources - i_found, 1)]
        if n_ori == 1:
            g = G[:, :, 0]
            gn = np.linalg.norm(g, axis=1)
            gn[gn < 1e-12 * gn.max()] = np.inf
            corr = np.linalg.norm(g @ U, axis=1) / gn
        else:
            Q, to_coef = _ori_basis(G)
            # Largest singular value of Q_s^T U = best subspace correlation over
            # orientations; its left singular vector from the (3, 3) M M^T.
            M = np.matmul(np.swapaxes(Q, 1, 2), U)
            ev, vec = np.linalg.eigh(np.matmul(M, np.swapaxes(M, 1, 2)))
            corr = np.sqrt(np.clip(ev[:, -1], 0.0, None))
            vecs = vec[:, :, -1]
            # Locations projected out entirely (a found source) have no basis left.
            gmax = np.linalg.norm(G, axis=(1, 2))
            corr[gmax < 1e-12 * gmax.max()] = -np.inf
        corr[locs] = -np.inf
        if max_corr is not None and pats:
            if n_ori == 1:
                alike = _too_alike(Qs, compare, pats, max_corr)
            else:
                # The pattern a location would be given (its best orientation for the
                # remaining subspace), not the best over all orientations: in a small
                # signal subspace a location's 2-3 dimensional leadfield nearly always
                # contains some direction close to a found pattern, which would exclude
                # almost every location.
                C = np.einsum("sop,sp->so", to_coef, vecs)
                cand = np.einsum("kc,sco,so->sk", compare, G0, C)[:, :, None]
                cand /= np.maximum(np.linalg.norm(cand, axis=1, keepdims=True), 1e-300)
                alike = _too_alike(cand, compare, pats, max_corr)
            if np.isfinite(corr[~alike]).any():  # else keep the best, alike or not
                corr[alike] = -np.inf
        s = int(corr.argmax())
        if n_ori == 1:
            pat = G0[s, :, 0]
        else:
            # Orientation: Q_s v = G_s c with c = to_coef_s v (projected leadfield).
            c = to_coef[s] @ vecs[s]
            c /= max(np.linalg.norm(c), 1e-300)
            pat = G0[s] @ c
        locs.append(s)
        pats.append(pat)
        B = np.array(pats).T
        # Project out the leadfield of the sources found so far.
        P = np.eye(n_ch) - B @ np.linalg.pinv(B)
    return np.array(locs), np.array(pats).T


def _too_alike(Qs: np.ndarray, compare: np.ndarray, pats: list, max_corr: float) -> np.ndarray:
    """Locations whose projected leadfield correlates above ``max_corr`` with a found pattern."""
    B = compare @ np.array(pats).T  # found patterns in subspace coordinates (k, n_found)
    B = B / np.maximum(np.linalg.norm(B, axis=0, keepdims=True), 1e-300)
    corr = np.linalg.norm(np.einsum("sko,kf->sof", Qs, B), axis=1)  # (src, n_found)
    return (corr > max_corr).any(axis=1)


def scan_leadfield(
    forward: Any,
    patterns: Any,
    ch_names: Sequence[str] | None = None,
    info: Any = None,
    noise_cov: Any = None,
) -> Bunch:
    """Localise sensor patterns by scanning the leadfield of a forward model.

    Each pattern (a column of a mixing matrix in channel space, e.g.
    ``ICA.get_components()`` or ``SessionCRL.patterns_``) is assigned the
    source-space location (and orientation) whose leadfield is most collinear with
    it, after noise whitening. For free-orientation forwards the best orientation
    is chosen per location (maximum subspace correlation).

    Parameters
    ----------
    forward : mne.Forward
        Forward solution, fixed or free orientation.
    patterns : array-like, shape (n_channels, n_patterns)
        Sensor patterns in the (unwhitened) channel space of ``ch_names``.
    ch_names : list of str | None
        Channel names of the rows of ``patterns``. Defaults to the channels of
        ``info`` (or, without ``info``, of the forward, in its order).
    info : mne.Info | None
        Measurement info of the data the patterns come from. Used for whitening
        (with ``noise_cov``) and for its projectors (e.g. an average reference),
        which are applied to the leadfield too. Without it, the patterns and
        leadfield are compared unwhitened (fine for a single channel type).
    noise_cov : mne.Covariance | None
        Noise covariance for whitening (needs ``info``). ``None`` with ``info``
        uses :func:`mne.make_ad_hoc_cov`.

    Returns
    -------
    result : sklearn.utils.Bunch
        ``vertices`` (n_patterns,) indices into ``forward["source_rr"]``;
        ``pos`` (n_patterns, 3) positions in head coordinates (m);
        ``ori`` (n_patterns, 3) unit orientations in head coordinates;
        ``gof`` (n_patterns,) goodness of fit in percent;
        ``amplitude`` (n_patterns,) dipole moment (A·m) reproducing the pattern;
        ``dipole`` an :class:`mne.Dipole` with one entry per pattern
        (``times`` = 0, 1, ... indexes the patterns).
    """
    import mne

    _check_forward(forward)
    A = np.asarray(patterns, dtype=float)
    if A.ndim == 1:
        A = A[:, None]
    if A.ndim != 2:
        raise ValueError(f"patterns must be 2D (n_channels, n_patterns), got shape {A.shape}")
    if not np.all(np.isfinite(A)):
        raise ValueError("patterns contains NaN or infinite values")
    if info is not None and not isinstance(info, mne.Info):
        raise TypeError(f"info must be an mne.Info or None, got {type(info).__name__}")
    if ch_names is None:
        ch_names = list(info["ch_names"]) if info is not None else list(forward["sol"]["row_names"])
    ch_names = list(ch_names)
    if len(ch_names) != A.shape[0]:
        raise ValueError(
            f"patterns has {A.shape[0]} rows but ch_names lists {len(ch_names)} channels"
        )
    if info is not None:
        missing = [c for c in ch_names if c not in info["ch_names"]]
        if missing:
            raise ValueError(f"info lacks channel(s) {missing[:10]} named in ch_names")
    gain = _forward_gain(forward, ch_names)
    if info is not None:
        W = _whitener_for(info, ch_names, noise_cov)
    else:
        if noise_cov is not None:
            raise ValueError("noise_cov needs info (the measurement info of the patterns)")
        W = np.eye(len(ch_names))
    best, sc, coef, amp = _scan(W @ gain, W @ A, _n_ori(forward))
    return _result(forward, best, sc, coef, amp)


def _result(forward: Any, best: np.ndarray, sc: np.ndarray, coef: np.ndarray, amp: np.ndarray) -> Bunch:
    import mne

    pos = _source_pos_head(forward)[best]
    nn = _source_nn_head(forward)[best]  # (n, n_ori, 3)
    ori = np.einsum("no,nod->nd", coef, nn)
    ori /= np.maximum(np.linalg.norm(ori, axis=1, keepdims=True), 1e-300)
    # Sign convention: positive amplitude.
    sign = np.where(amp < 0, -1.0, 1.0)
    ori *= sign[:, None]
    amp = np.abs(amp)
    gof = 100.0 * sc**2
    dip = mne.Dipole(
        times=np.arange(len(best), dtype=float),
        pos=pos,
        amplitude=amp,
        ori=ori,
        gof=gof,
        name="crl_neuro leadfield scan",
        verbose=False,
    )
    return Bunch(vertices=np.asarray(best, int), pos=pos, ori=ori, gof=gof, amplitude=amp, dipole=dip)
