"""Group summaries of fitted estimators, one per kind of result.

- latent networks (M/EEG ``SessionCRL``, ``MultiDistributionCRL``):
  :func:`network_consistency`, how often each edge recurs across subjects once the
  latents are matched by location or sensor pattern;
- ROI maps (fMRI ``CausalROIs``): :func:`roi_overlap`, Dice/ARI agreement and a
  probabilistic group atlas;
- source estimates (M/EEG): :func:`grand_average_stc`, the average of per-subject
  ``mne.SourceEstimate`` objects, morphed to a common subject if needed.

They read what :func:`~crl_neuro.group.fit_group` returns or writes (a
:class:`~crl_neuro.group.GroupResult`, a mapping/list of estimators, or ``.crl``
files). The public names are documented and imported from :mod:`crl_neuro.group`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from sklearn.utils import Bunch

from crl_neuro.group._runner import _SUFFIX, _is_pathlike


# ----------------------------------------------------------------------------- inputs
def _as_estimator_dict(estimators: Any, name: str = "estimators") -> dict[str, Any]:
    if isinstance(estimators, Mapping):
        out = {str(k): v for k, v in estimators.items()}
    elif isinstance(estimators, (list, tuple)):
        out = {str(i): v for i, v in enumerate(estimators)}
    else:
        raise TypeError(f"{name} must be a GroupResult, a mapping or a list, got "
                        f"{type(estimators).__name__}")
    if len(out) < 2:
        raise ValueError(f"{name} needs at least 2 fitted estimators, got {len(out)}")
    out = {k: (_load_if_path(v)) for k, v in out.items()}
    return out


def _load_if_path(v: Any) -> Any:
    if _is_pathlike(v):
        from crl_neuro.core.base import load

        return load(v)
    return v


def _patterns_of(est: Any) -> np.ndarray | None:
    for attr in ("patterns_", "mixing_"):
        if hasattr(est, attr):
            return np.asarray(getattr(est, attr), dtype=float)
    return None


def _abs_corr_cols(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    a = a - a.mean(axis=0)
    b = b - b.mean(axis=0)
    a = a / np.maximum(np.linalg.norm(a, axis=0), 1e-300)
    b = b / np.maximum(np.linalg.norm(b, axis=0), 1e-300)
    return np.abs(a.T @ b)


# ----------------------------------------------------------------------------- latent networks
def network_consistency(
    estimators: Any,
    match: str = "auto",
    reference: str | None = None,
    threshold: float = 0.5,
) -> Bunch:
    """How consistently each latent network edge appears across subjects.

    Latents are only identified up to order (and sign/scale), so each subject's
    latents are first matched to a reference subject's by the Hungarian algorithm
    (:func:`scipy.optimize.linear_sum_assignment`) on either the distances between
    localized sources (``source_pos_``, M/EEG) or the absolute correlation of the
    sensor patterns (``patterns_``/``mixing_``; needs the same sensors in every
    subject). The permuted ``markov_network_`` (and ``changing_edges_`` when present)
    are then averaged into per-edge frequencies.

    Parameters
    ----------
    estimators : GroupResult | mapping | list
        Fitted estimators (or paths to ``.crl`` files) with ``markov_network_`` of the
        same size.
    match : {"auto", "positions", "patterns"}
        Matching criterion. ``"auto"`` uses positions when every estimator has
        ``source_pos_``, else patterns.
    reference : str | None
        Subject whose latent order is used; default the first.
    threshold : float
        Frequency at or above which an edge enters ``consensus``.

    Returns
    -------
    summary : sklearn.utils.Bunch
        ``edge_frequency`` (k, k) fraction of subjects with each edge;
        ``changing_frequency`` (k, k) or ``None``; ``consensus`` (k, k) bool;
        ``matchings`` dict subject -> permutation (``perm[i]`` is the subject's latent
        matched to reference latent ``i``); ``match_quality`` dict subject -> mean
        matched distance in mm (positions) or mean absolute correlation (patterns);
        ``pairwise_f1`` (n_subjects, n_subjects) graph F1 between matched networks;
        ``subjects``, ``reference``, ``match``.
    """
    from scipy.optimize import linear_sum_assignment

    from crl_neuro.core.metrics import graph_f1
    from crl_neuro.core.validation import check_choice, check_float

    ests = _as_estimator_dict(estimators)
    check_choice(match, "match", ["auto", "positions", "patterns"])
    check_float(threshold, "threshold", min_value=0.0, max_value=1.0)
    for sid, e in ests.items():
        if not hasattr(e, "markov_network_"):
            raise ValueError(f"estimators: subject {sid!r} has no markov_network_ (not fitted, or "
                             "not a network estimator)")
    ks = {sid: np.asarray(e.markov_network_).shape[0] for sid, e in ests.items()}
    if len(set(ks.values())) != 1:
        raise ValueError(f"estimators must have the same number of latents, got {ks}")
    k = next(iter(ks.values()))
    subjects = list(ests)
    ref = subjects[0] if reference is None else str(reference)
    if ref not in ests:
        raise ValueError(f"reference {reference!r} is not one of the subjects {subjects}")
    if match == "auto":
        match = "positions" if all(hasattr(e, "source_pos_") for e in ests.values()) else "patterns"
    if match == "positions":
        missing = [s for s, e in ests.items() if not hasattr(e, "source_pos_")]
        if missing:
            raise ValueError(f"match='positions' needs source_pos_ (localize first); missing for {missing}")
    else:
        pats = {s: _patterns_of(e) for s, e in ests.items()}
        bad = [s for s, p in pats.items() if p is None]
        if bad:
            raise ValueError(f"match='patterns' needs patterns_ or mixing_; missing for {bad}")
        shapes = {s: p.shape for s, p in pats.items()}
        if len(set(shapes.values())) != 1:
            raise ValueError(f"match='patterns' needs the same sensors in every subject, got shapes {shapes}")

    matchings, quality, nets, chgs = {}, {}, {}, {}
    for sid, e in ests.items():
        if match == "positions":
            d = np.linalg.norm(np.asarray(ests[ref].source_pos_)[:, None, :]
                               - np.asarray(e.source_pos_)[None, :, :], axis=-1)
            rows, perm = linear_sum_assignment(d)
            quality[sid] = float(d[rows, perm].mean() * 1e3)
        else:
            c = _abs_corr_cols(pats[ref], pats[sid])
            rows, perm = linear_sum_assignment(-c)
            quality[sid] = float(c[rows, perm].mean())
        matchings[sid] = perm
        net = np.asarray(e.markov_network_, dtype=bool)
        nets[sid] = net[np.ix_(perm, perm)]
        if hasattr(e, "changing_edges_"):
            chgs[sid] = np.asarray(e.changing_edges_, dtype=bool)[np.ix_(perm, perm)]
    freq = np.mean([nets[s] for s in subjects], axis=0)
    chg = np.mean([chgs[s] for s in subjects], axis=0) if len(chgs) == len(subjects) else None
    n = len(subjects)
    f1 = np.ones((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            f1[i, j] = f1[j, i] = graph_f1(nets[subjects[i]], nets[subjects[j]])
    return Bunch(edge_frequency=freq, changing_frequency=chg, consensus=(freq >= threshold) & ~np.eye(k, dtype=bool),
                 matchings=matchings, match_quality=quality, pairwise_f1=f1, subjects=subjects,
                 reference=ref, match=match)


# ----------------------------------------------------------------------------- ROI maps (fMRI)
def _labels_data(x: Any, name: str):
    import nibabel as nib

    if hasattr(x, "labels_img_"):
        x = x.labels_img_
    if _is_pathlike(x):
        x = nib.load(x)
    if not hasattr(x, "get_fdata"):
        raise TypeError(f"{name} must be a fitted CausalROIs, a labels image or a path, got {type(x).__name__}")
    return x


def roi_overlap(estimators: Any, reference: str | None = None) -> Bunch:
    """Agreement of ROI maps (``labels_img_``) across subjects.

    ROIs carry arbitrary numbers, so every subject's ROIs are matched to the
    reference subject's by maximum overlap (Hungarian on the Dice matrix). Maps on
    another grid than the reference are resampled to it (nearest neighbour), which
    assumes they are in the same (e.g. MNI) space.

    Parameters
    ----------
    estimators : GroupResult | mapping | list
        Fitted :class:`~crl_neuro.fmri.CausalROIs` (or their labels images, or paths
        to ``.crl`` / NIfTI files).
    reference : str | None
        Subject whose ROI numbering is used; default the first.

    Returns
    -------
    summary : sklearn.utils.Bunch
        ``dice`` (n_subjects, n_ref_rois) Dice of each reference ROI with its match
        (0 when unmatched); ``mean_dice`` per subject; ``ari`` (n_subjects, n_subjects)
        adjusted Rand index between maps over voxels labelled in either
        (:func:`crl_neuro.core.metrics.labels_ari`); ``matchings`` dict subject ->
        array, ``m[i]`` the subject's label matched to reference label ``i + 1``
        (0 if none); ``probability_img`` 4D image, volume ``i`` the fraction of
        subjects whose matched ROI covers each voxel (a probabilistic group atlas
        of reference ROI ``i + 1``); ``roi_graph_frequency`` (n_ref, n_ref) fraction of
        subjects with each directed matched ``roi_graph_`` edge (``None`` unless all
        inputs are fitted estimators); ``subjects``, ``reference``.
    """
    import nibabel as nib
    from nilearn.image import resample_to_img
    from scipy.optimize import linear_sum_assignment

    from crl_neuro.core.metrics import labels_ari

    raw = estimators
    if isinstance(raw, Mapping):
        items = {str(k): v for k, v in raw.items()}
    elif isinstance(raw, (list, tuple)):
        items = {str(i): v for i, v in enumerate(raw)}
    else:
        raise TypeError(f"estimators must be a GroupResult, a mapping or a list, got {type(raw).__name__}")
    if len(items) < 2:
        raise ValueError(f"estimators needs at least 2 ROI maps, got {len(items)}")
    items = {k: (_load_if_path(v) if _is_pathlike(v) and str(v).endswith(_SUFFIX) else v)
             for k, v in items.items()}
    imgs = {k: _labels_data(v, f"estimators[{k!r}]") for k, v in items.items()}
    subjects = list(imgs)
    ref = subjects[0] if reference is None else str(reference)
    if ref not in imgs:
        raise ValueError(f"reference {reference!r} is not one of the subjects {subjects}")
    ref_img = imgs[ref]
    labels = {}
    for s, img in imgs.items():
        if img.shape[:3] != ref_img.shape[:3] or not np.allclose(img.affine, ref_img.affine):
            img = resample_to_img(img, ref_img, interpolation="nearest", force_resample=True,
                                  copy_header=True)
        labels[s] = np.rint(np.asarray(img.get_fdata())).astype(int).reshape(ref_img.shape[:3])
    ref_lab = labels[ref]
    ref_ids = np.unique(ref_lab[ref_lab > 0])
    n_ref = ref_ids.size
    dice = np.zeros((len(subjects), n_ref))
    matchings = {}
    prob = np.zeros(ref_lab.shape + (n_ref,))
    for si, s in enumerate(subjects):
        lab = labels[s]
        ids = np.unique(lab[lab > 0])
        d = np.zeros((n_ref, ids.size))
        for i, a in enumerate(ref_ids):
            ma = ref_lab == a
            for j, b in enumerate(ids):
                mb = lab == b
                d[i, j] = 2.0 * np.sum(ma & mb) / (ma.sum() + mb.sum())
        m = np.zeros(n_ref, dtype=int)
        if ids.size:
            rows, cols = linear_sum_assignment(-d)
            for r, c in zip(rows, cols):
                m[r] = ids[c]
                dice[si, r] = d[r, c]
                prob[..., r] += lab == ids[c]
        matchings[s] = m
    prob /= len(subjects)
    n = len(subjects)
    ari = np.ones((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            ari[i, j] = ari[j, i] = labels_ari(labels[subjects[i]], labels[subjects[j]])
    graph_freq = None
    if all(hasattr(v, "roi_graph_") for v in items.values()):
        acc = np.zeros((n_ref, n_ref))
        for s in subjects:
            g = np.asarray(items[s].roi_graph_) != 0
            m = matchings[s]
            for i in range(n_ref):
                for j in range(n_ref):
                    if m[i] > 0 and m[j] > 0 and m[i] - 1 < g.shape[0] and m[j] - 1 < g.shape[0]:
                        acc[i, j] += g[m[i] - 1, m[j] - 1]
        graph_freq = acc / n
    prob_img = nib.Nifti1Image(prob.astype(np.float32), ref_img.affine)
    return Bunch(dice=dice, mean_dice=dict(zip(subjects, dice.mean(axis=1) if n_ref else np.zeros(n))),
                 ari=ari, matchings=matchings, probability_img=prob_img,
                 roi_graph_frequency=graph_freq, subjects=subjects, reference=ref)


# ----------------------------------------------------------------------------- source estimates (M/EEG)
def grand_average_stc(stcs: Any, subject_to: str | None = None, subjects_dir: Any = None,
                      src_to: Any = None, smooth: int | str | None = None,
                      sparse: bool = True) -> Any:
    """Average per-subject :class:`mne.SourceEstimate` objects (e.g. from ``SessionCRL.to_stc``).

    Sparse CRL estimates only carry the vertices of their sources; the average is
    taken over the union of the vertices, a subject contributing zero where it has no
    source, so the result shows where (and how strongly) the subjects agree.

    Parameters
    ----------
    stcs : list of mne.SourceEstimate
        One per subject, same times (e.g. source power, or evoked time courses).
    subject_to : str | None
        Common subject (e.g. ``"fsaverage"``). ``None``: the estimates must already live
        on one source space (same ``subject``; e.g. simulated subjects on the fsaverage5
        template of :func:`crl_neuro.datasets.simulate_meeg_sessions`, whose vertex
        numbers are also fsaverage's) and are averaged directly. Otherwise each is
        morphed from its ``stc.subject`` with :func:`mne.compute_source_morph`, which
        reads the FreeSurfer spheres (``surf/?h.sphere.reg``) of both subjects from
        ``subjects_dir`` (fsaverage itself comes from
        :func:`mne.datasets.fetch_fsaverage`, a one-time download).
    subjects_dir : path-like | None
        FreeSurfer subjects directory (``None``: MNE's ``SUBJECTS_DIR``).
    src_to : mne.SourceSpaces | None
        Target source space of a dense morph (``sparse=False`` only; default the
        ico-5 grid of ``subject_to``).
    smooth : int | "nearest" | None
        Smoothing steps of a dense morph (``sparse=False`` only; MNE's default fills
        the surface).
    sparse : bool
        ``True`` (default): each vertex moves to the nearest vertex of ``subject_to``
        on the registered spheres and the estimate stays sparse — right for the few
        dipoles of ``SessionCRL.to_stc``, which a smoothing morph would smear over
        the cortex. ``False``: MNE's smoothing morph, for dense estimates (e.g.
        minimum-norm inverse solutions).

    Returns
    -------
    stc : mne.SourceEstimate
        The grand average on the union of the (morphed) vertices, ``subject`` set to
        ``subject_to`` (or the common subject).
    """
    import mne

    if not isinstance(stcs, (list, tuple)) or not stcs:
        raise TypeError("stcs must be a non-empty list of mne.SourceEstimate")
    for i, s in enumerate(stcs):
        if not isinstance(s, mne.SourceEstimate):
            raise TypeError(f"stcs[{i}] must be an mne.SourceEstimate, got {type(s).__name__}")
    if not isinstance(sparse, bool):
        raise TypeError(f"sparse must be True or False, got {sparse!r}")
    if subject_to is not None:
        if not isinstance(subject_to, str):
            raise TypeError(f"subject_to must be a subject name (str) or None, got "
                            f"{type(subject_to).__name__}")
        if sparse and (src_to is not None or smooth is not None):
            raise ValueError("src_to and smooth apply to the smoothing morph only; pass "
                             "sparse=False to use them")
        for i, s in enumerate(stcs):
            if s.subject is None:
                raise ValueError(f"stcs[{i}] has no subject (stc.subject is None); set it to the "
                                 "FreeSurfer subject the estimate lives on, to morph it")
        if sparse:
            kw = dict(spacing=None, sparse=True)
        else:
            kw = dict(src_to=src_to, smooth=smooth)
        stcs = [
            mne.compute_source_morph(s, subject_from=s.subject, subject_to=subject_to,
                                     subjects_dir=subjects_dir, verbose=False, **kw).apply(s)
            for s in stcs
        ]
    ref = stcs[0]
    for i, s in enumerate(stcs[1:], 1):
        if s.subject != ref.subject:
            raise ValueError(f"stcs[{i}] is on subject {s.subject!r}, stcs[0] on {ref.subject!r}; "
                             "pass subject_to (and subjects_dir) to morph them to a common subject")
        if s.data.shape[1] != ref.data.shape[1] or not np.isclose(s.tmin, ref.tmin):
            raise ValueError(f"stcs[{i}] has other times than stcs[0] ({s.data.shape[1]} samples "
                             f"from {s.tmin} vs {ref.data.shape[1]} from {ref.tmin}); crop them")
    n_hemi = len(ref.vertices)
    union = [np.unique(np.concatenate([s.vertices[h] for s in stcs])) for h in range(n_hemi)]
    offsets = np.cumsum([0] + [u.size for u in union])
    data = np.zeros((offsets[-1], ref.data.shape[1]), dtype=np.result_type(*[s.data for s in stcs]))
    for s in stcs:
        row = 0
        for h in range(n_hemi):
            idx = offsets[h] + np.searchsorted(union[h], s.vertices[h])
            # add.at: a morph may send two sources to one vertex; their sum is kept.
            np.add.at(data, idx, s.data[row:row + s.vertices[h].size])
            row += s.vertices[h].size
    data /= len(stcs)
    return mne.SourceEstimate(data, vertices=union, tmin=ref.tmin, tstep=ref.tstep,
                              subject=subject_to or ref.subject)
