"""Causal regions of interest: a constructive causal abstraction of voxel dynamics."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import nibabel as nib
import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from scipy import sparse
from sklearn.base import TransformerMixin
from sklearn.feature_extraction.image import grid_to_graph

from crl_neuro.core.abstraction import var_abstraction_error_from_data
from crl_neuro.core.graphs import GraphMixin
from crl_neuro.core.base import (
    ArraySpec,
    BaseCRLEstimator,
    check_is_fitted,
    fill_doc,
    logger,
    logger_verbosity,
)
from crl_neuro.core.validation import (
    check_choice,
    check_float,
    check_int,
    check_magnitude,
    check_n_jobs,
    check_real,
    check_seed,
)
from crl_neuro.fmri import _parcellation as _p
from crl_neuro.fmri.roi_graph import METHODS as _GRAPH_METHODS
from crl_neuro.fmri.roi_graph import roi_causal_graph

__all__ = ["CausalROIs"]

_MIN_TIMEPOINTS = 10


@fill_doc
class CausalROIs(GraphMixin, TransformerMixin, BaseCRLEstimator):
    """Learn ROIs whose averages are valid macro causal variables, their graph and the abstraction error.

    An ROI is a good causal variable when intervening on it is well defined, i.e. when
    its voxels play one causal role: same causes, same effects, the same changes
    across runs (runs are treated as distributions). ``CausalROIs`` partitions the
    voxels into ``n_rois`` contiguous regions plus a background, learns the ROI-level
    causal graph, and measures how far the voxel -> ROI map is from an exact
    abstraction (Beckers & Halpern 2019; Beckers, Eberhardt & Halpern 2019; see
    :mod:`crl_neuro.core.abstraction`).

    What decides the partition, and what does not: the regions come from the
    correlation of PCA-denoised voxel time courses (spatially constrained Ward into
    ``oversegment * n_rois`` pieces), adjacent pieces that carry the same signal are
    merged, the ``n_rois`` most coherent regions are kept and the rest is background.
    The merge compares innovations by default (``merge_signal="innovations"``), a
    causal criterion: a driver and the region it drives have correlated time courses
    but different innovations. On 24 draws of the randomised benchmark family
    (``benchmarks/bench_fmri.py``, 2026-12-05) this criterion matters little: against
    the same pipeline on time courses (``"timecourses"``) it changes the ROI-voxel ARI
    by +0.006 overall and by +0.035 on adjacent driver/driven pairs (0.747 vs 0.712),
    while its abstraction error (0.101 vs 0.083) and ROI-graph F1 (0.430 vs 0.437,
    graph without background components; 0.459 vs 0.472 with them) are slightly worse.
    On 20 other draws (seeds 100-119, 2026-12-06) it changed the ROI-voxel ARI by
    +0.002 (0.733 vs 0.731; driver/driven pairs -0.008), the whole-mask ARI by +0.034,
    the graph F1 by +0.013 and the abstraction error by +0.009 (worse). Scored on the special pair's voxels only (draws 0-23), the
    criterion keeps apart the two halves of a region whose inputs differ in some
    runs more often (pair ARI 0.628 vs 0.468) but not an adjacent driver and the
    region it drives (0.505 vs 0.602: one of 6 draws merged). The ROIs are therefore mostly a denoised-correlation
    parcellation with a background rule; their causal validity is *measured*
    (``abstraction_error_``, ``roi_consistency_``), not guaranteed. What the pipeline
    does buy over the strongest simple baseline (Ward on correlations of PCA-denoised
    voxel time courses, keeping the ``n_rois`` best-explained clusters) is ROI-voxel
    ARI 0.808 vs 0.782 (worst draw 0.147 vs 0.082) and whole-mask ARI 0.726 vs 0.698,
    at about the cost of Nilearn's ``Parcellations("ward")`` (ARI 0.634); with the
    graph-aware selection (``roi_selection="graph"``, the default since 2026-12-06) ARI 0.834,
    whole-mask ARI 0.877 and ROI-graph F1 0.504 vs the baseline's 0.466 (same graph
    routine) and 0.469 (VAR/Granger). On 24 fresh draws checked once afterwards (seeds
    200-223, more at low SNR): ROI-voxel ARI 0.706 vs 0.673 (Nilearn ward, K+1) and
    0.647, abstraction error 0.135 vs 0.185, ROI-graph F1 0.395 vs 0.277; but on
    driver/driven draws at low SNR Nilearn's ward is better (0.548 vs 0.417). That
    ROI-voxel ARI is earned by tiling, not by finding the ROIs: Ward on the voxel
    positions alone (no data) scores 0.552 on those draws, and Nilearn's ward reaches a
    whole-mask ARI of 0.097 (CausalROIs 0.675). Below a voxel SNR of about 0.13 the
    partition often misses ROIs whose means are nonetheless reliable
    (``benchmarks/diag_fmri_lowsnr.py``): check ``roi_coherence_`` and
    ``abstraction_error_`` on such data.

    Parameters
    ----------
    n_rois : int
        Number of ROIs (>= 1).
    mask_img : Niimg-like | None
        Brain mask; ``None`` computes one with :class:`~nilearn.maskers.NiftiMasker`.
    smoothing_fwhm : float | None
        Spatial smoothing (mm) applied by the masker.
    standardize : bool | str
        Masker standardisation (``True`` means ``"zscore_sample"``). The algorithm
        z-scores voxels per run in any case; this also applies to :meth:`transform`.
    t_r : float | None
        Repetition time (s), passed to the maskers (needed by ``high_pass``/``low_pass``).
    detrend : bool
        Remove linear trends per run (masker option, as in Nilearn).
    high_pass, low_pass : float | None
        Temporal filter cut-offs in Hz (masker options, as in Nilearn; need ``t_r``).
    memory : str | joblib.Memory | None
        Cache of the masking step (Nilearn convention).
    memory_level : int
        Nilearn caching level.
    %(n_jobs)s
    %(random_state)s
        Here it seeds the randomized SVD of the abstraction-error estimate (the
        partition itself is deterministic).
    %(verbose)s
    background : bool
        ``True`` (default): the ``n_rois`` most coherent regions are the ROIs and
        voxels without a shared signal stay background (label 0). ``False``: every
        mask voxel belongs to an ROI.
    n_components : int | None
        Principal components kept to denoise the voxel time courses (default
        ``2 * n_rois + 2``).
    oversegment : int
        Contiguous pieces per ROI before merging (``oversegment * n_rois`` pieces).
    merge_threshold : float
        Noise-corrected correlation (in (0, 1]) at or above which adjacent pieces are
        the same variable and are merged; 1 effectively disables merging. The default
        (0.8) was chosen on randomised benchmark draws (seeds 100-119 of
        :func:`~crl_neuro.datasets.draw_fmri_problem`, 0.75-0.95 tried), not on the
        draws the benchmark reports. The correction assumes the two spatial halves of
        a piece share no noise; spatially smooth noise breaks that a little, so
        pieces of one region score somewhat below 1.
    merge_signal : {"innovations", "timecourses"}
        What the merge compares: innovations (the causal criterion) or time courses.
        The two give the same ROIs within benchmark noise (see above).
    merge_runs : {"every", "pooled"}
        How runs enter the merge. ``"every"``: two pieces are one variable only if
        they are in every run (the smallest per-run correlation decides), so a region
        whose parts receive different inputs in some run stays split (default,
        chosen on draws 100-119 of the benchmark family: same ROI-voxel ARI as
        ``"pooled"``, 0.762 vs 0.766, whole-mask ARI 0.714 vs 0.672, abstraction error
        0.122 vs 0.130; on the 24 reported draws: ROI-voxel ARI 0.808 vs 0.829,
        whole-mask ARI 0.726 vs 0.695, abstraction error 0.101 vs 0.114).
        ``"pooled"``: one correlation over the concatenated runs.
    n_lags : int
        Past volumes used to define the innovations.
    local_average : bool
        ``True`` (default): the principal components are computed from each voxel's
        average with its grid neighbours (a region's signal is kept, white voxel
        noise shrinks), then every voxel is projected on them unsmoothed.
    innovation_weight : float
        Weight of the innovations' geometry in the over-segmentation: each voxel's
        unit-norm denoised time-course coordinates are joined by its unit-norm
        innovation coordinates times this weight (0, the default, uses time courses
        only). Innovations separate a driver from the region it drives even when
        their time courses are strongly correlated, but they carry less signal: on
        the benchmark family ``innovation_weight=1`` raises the ARI of adjacent
        driver/driven draws from 0.747 to 0.793 and lowers it elsewhere (0.808 to
        0.786 overall), so it is not the default. Intermediate weights (0.25, 0.5, 0.75)
        were tried on 20 separate tuning draws: none had both an abstraction error
        and an ROI-graph F1 at least as good as 0's (``benchmarks/bench_fmri.py``).
    trim : bool
        With ``background=True``, return ROI voxels whose time course does not follow
        their ROI (correlation with the ROI's leave-one-out mean below the background
        voxels' median + 4 robust SDs) to the background; each ROI then keeps its
        largest connected part. Measured on the benchmark family: whole-mask ARI
        0.726 with the trim vs 0.713 without, ROI-voxel ARI 0.808 vs 0.809.
    roi_selection : {"graph", "energy"}
        How the background rule (``background=True``) picks the ``n_rois`` regions.
        ``"energy"``: the strongest denoised mean signal. ``"graph"`` (default): the
        ROIs are chosen with the graph in mind; the ``graph_background_components``
        leading principal components of the background that ``"energy"`` leaves,
        which ``roi_graph_`` regresses out of the ROI means, are regressed out of every
        region's denoised mean first, and the regions with the most signal left are
        kept, so that smooth nuisance fields shared with the background are not taken
        for ROIs (the same as ``"energy"`` when ``graph_background_components=0``).
        Adopted by a rule fixed before the tuning run (``benchmarks/diag_fmri_graph.py``):
        on draws 100-119 of the benchmark family ROI-graph F1 0.486 vs 0.436 (6 draws
        better, 2 worse), ROI-voxel ARI 0.749 vs 0.733; the gain is on low-SNR draws,
        where ``"energy"`` keeps nuisance-driven background blobs. On the reported
        draws 0-23 afterwards: graph F1 0.504 vs 0.459 (7 better, 4 worse), ROI-voxel
        ARI 0.834 vs 0.808, whole-mask ARI 0.877 vs 0.726, abstraction error 0.106 vs
        0.101. The numbers quoted elsewhere in this docstring were measured with
        ``"energy"``.
    graph_alpha : float
        Family-wise (Bonferroni) level of the Granger tests of ``roi_graph_`` (the instantaneous
        layer and CD-NOD use :func:`~crl_neuro.fmri.roi_causal_graph`'s ``alpha=0.05``,
        or ``graph_alpha`` for ``"cdnod"``).
    graph_method : {"auto", "granger", "innovations", "cdnod"}
        ``"auto"`` (default): Granger layer, plus the innovation (instantaneous) layer
        when it carries more of the dependence than the lags (Geweke decomposition),
        oriented then by the Hyvarinen-Smith pairwise likelihood ratio (tanh).
        ``"granger"``: the lagged layer only. ``"innovations"``: the instantaneous
        layer only. ``"cdnod"``: causal-learn's CD-NOD
        (:func:`crl_neuro.core.discovery.cdnod`, Fisher z at ``graph_alpha``) on
        ``y(t-1), y(t)`` with the run index as the domain node (needs >= 2 runs).
        ``roi_pvalues_`` are always the Granger p-values.
    graph_lags : "auto" | int
        VAR order of the Granger graph; ``"auto"`` picks 1-3 by BIC on the ROI series.
    graph_background_components : int
        Leading principal components of the background voxels (label 0), per run,
        regressed out of the ROI means before ``roi_graph_`` is learned (aCompCor,
        Behzadi et al. 2007: physiological and motion-related signals shared by the
        whole brain otherwise link every pair of ROIs); 0 turns it off, and so does
        ``background=False`` (no background voxels). The default, 5, is the CompCor
        convention (also Nilearn's ``high_variance_confounds``). Measured on the
        benchmark family (``benchmarks/bench_fmri.py``, 2026-12-06), ROI-graph F1 with 5
        vs 0: 0.436 vs 0.412 on the tuning draws 100-119 (8 draws better, 9 worse) and
        0.459 vs 0.430 on the reported draws 0-23 (13 better, 7 worse); on the true
        ROIs 0.602 vs 0.516. The same step helps other partitions as much (Ward on
        denoised correlations: 0.466 vs 0.416), so it improves the graph, not
        CausalROIs' lead over them.

    Attributes
    ----------
    labels_img_ : nibabel.Nifti1Image
        3D int32 image: 0 background, ROIs ``1..n_rois``.
    lut_ : pandas.DataFrame
        Look-up table (Nilearn's shape): ``index``, ``name``, ``x``, ``y``, ``z``
        (centroid in the world coordinates of the images, MNI mm for MNI-space data),
        ``n_voxels``; row 0 is the background.
    roi_graph_ : ndarray, shape (n_rois, n_rois)
        ``roi_graph_[i, j] != 0`` means ROI ``i+1`` -> ROI ``j+1``.
    roi_pvalues_ : ndarray, shape (n_rois, n_rois)
        Granger p-values (uncorrected; NaN diagonal).
    abstraction_error_ : float
        Mean relative interventional inconsistency (0 = exact abstraction).
    roi_consistency_ : ndarray, shape (n_rois,)
        ``1 - error`` of intervening on each ROI (clipped to [0, 1]; 1 = consistent).
    roi_coherence_ : ndarray, shape (n_rois,)
        Variance of each ROI's mean z-scored time course (about the mean correlation
        between its voxels; about ``1 / n_voxels`` for pure noise).
    mask_img_ : nibabel.Nifti1Image
        Mask used.
    masker_ : nilearn.maskers.NiftiMasker
        Fitted masker.
    voxel_labels_ : ndarray of int, shape (n_mask_voxels,)
        Labels in the masker's column order.
    n_runs_ : int
        Number of runs seen in ``fit``.
    graph_lags_ : int
        VAR order used for ``roi_graph_``.

    Notes
    -----
    Algorithm:

    1. **Masking** the Nilearn way (:class:`nilearn.maskers.NiftiMasker`: given or
       computed mask, smoothing, detrending, filtering, confounds, standardisation,
       caching); every voxel is then z-scored per run.
    2. **Denoising**: PCA of all voxels' time courses (runs stacked) to
       ``n_components``; each voxel's coordinates, scaled to unit norm, make Euclidean
       distance the correlation distance of denoised time courses.
    3. **Over-segmentation**: Ward clustering constrained by the voxel grid
       (:func:`sklearn.feature_extraction.image.grid_to_graph`) into
       ``oversegment * n_rois`` contiguous pieces, on the unit-norm coordinates of the
       denoised time courses (and of their innovations, weighted by
       ``innovation_weight``; the innovation of a voxel is what the past ``n_lags``
       volumes of every principal component do not predict, run by run). Pieces of fewer than 4 voxels join the
       adjacent piece they correlate with most.
    4. **Same-variable merging**: per piece, the mean time course and the means of
       the two spatial halves of its voxels (split across its longest axis, so that
       spatially smooth noise is mostly not shared), per run, turned into innovations. The
       halves give the reliability of the piece's mean (Spearman-Brown); the
       correlation of two adjacent pieces, divided by the root of their
       reliabilities, estimates the correlation of their noise-free innovations.
       Pieces are merged, most similar first, while it is at least
       ``merge_threshold``: parts of one ROI have one innovation; a driver and the
       region it drives do not.
    5. **Background rule** (``background=True``): the ``n_rois`` regions with the
       strongest denoised mean signal (energy of the mean of their voxels'
       principal-component coordinates) are the ROIs, the rest is background; noise
       that is white in time, even spatially smooth, hardly reaches the leading
       components. With ``roi_selection="graph"`` (default) only the part of that
       signal which the background's leading principal components (the ROI graph's
       confounds, step 6) do not explain counts, and the regions are reselected.
       ROI voxels that do not follow their ROI then return to the background
       (``trim``). With ``background=False`` merging continues (most
       similar adjacent pair first) down to ``n_rois`` regions. Every ROI is
       contiguous.
    6. **ROI graph** (``roi_graph_``): :func:`crl_neuro.fmri.roi_causal_graph` on the
       ROI means (see ``graph_method``), with the leading principal components of the
       background voxels as confounds (``graph_background_components``).
    7. **Abstraction error**: each ROI is split into three contiguous parts (micro
       variables, time courses denoised by projection on the ``n_rois + 2`` leading
       components of the ROI voxels);
       :func:`crl_neuro.core.abstraction.var_abstraction_error_from_data` compares
       "intervene on a whole ROI, propagate the micro VAR, average" with "average,
       intervene, propagate the ROI VAR", per run. It is exactly 0 for noise-free
       voxels of an exact abstraction; with noisy voxels it has a floor, so compare
       values across partitions of the same data (:meth:`score_abstraction`) rather
       than reading them as absolute.

    References
    ----------
    Beckers, S., & Halpern, J. Y. (2019). Abstracting causal models. AAAI.
    Beckers, S., Eberhardt, F., & Halpern, J. Y. (2019). Approximate causal
    abstraction. UAI.
    Behzadi, Y., Restom, K., Liau, J., & Liu, T. T. (2007). A component based noise
    correction method (CompCor) for BOLD and perfusion based fMRI. NeuroImage 37, 90-101.
    Rubenstein, P. K. et al. (2017). Causal consistency of structural equation models. UAI.
    Spearman, C. (1904). The proof and measurement of association between two things.
    American Journal of Psychology.
    """

    _graphs = {"roi": ("roi_graph_", "directed")}

    def _graph_node_names(self, which: str, n_nodes: int) -> list[str]:
        return [str(v) for v in self.lut_["name"].iloc[1 : n_nodes + 1]]

    _extra_attributes = ("labels_img_", "mask_img_", "masker_")

    def __init__(
        self,
        n_rois: int,
        mask_img: Any = None,
        smoothing_fwhm: float | None = None,
        standardize: bool | str = True,
        t_r: float | None = None,
        detrend: bool = False,
        high_pass: float | None = None,
        low_pass: float | None = None,
        memory: Any = None,
        memory_level: int = 1,
        n_jobs: int = 1,
        random_state: int | np.random.RandomState | None = 0,
        verbose: bool | int | str | None = 0,
        background: bool = True,
        n_components: int | None = None,
        oversegment: int = 8,
        merge_threshold: float = 0.8,
        merge_signal: str = "innovations",
        merge_runs: str = "every",
        n_lags: int = 1,
        local_average: bool = True,
        trim: bool = True,
        roi_selection: str = "graph",
        innovation_weight: float = 0.0,
        graph_alpha: float = 0.05,
        graph_method: str = "auto",
        graph_lags: int | str = "auto",
        graph_background_components: int = 5,
    ) -> None:
        self.n_rois = n_rois
        self.mask_img = mask_img
        self.smoothing_fwhm = smoothing_fwhm
        self.standardize = standardize
        self.t_r = t_r
        self.detrend = detrend
        self.high_pass = high_pass
        self.low_pass = low_pass
        self.memory = memory
        self.memory_level = memory_level
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose
        self.background = background
        self.trim = trim
        self.roi_selection = roi_selection
        self.innovation_weight = innovation_weight
        self.n_components = n_components
        self.oversegment = oversegment
        self.merge_threshold = merge_threshold
        self.merge_signal = merge_signal
        self.merge_runs = merge_runs
        self.n_lags = n_lags
        self.local_average = local_average
        self.graph_alpha = graph_alpha
        self.graph_method = graph_method
        self.graph_lags = graph_lags
        self.graph_background_components = graph_background_components

    # ------------------------------------------------------------------ fit
    # Nilearn's layout (``BaseDecomposition.fit`` -> ``_raw_fit``): ``fit`` checks the
    # parameters and the images, masks and cleans them, then hands arrays to the
    # module-level :func:`_raw_fit`, which knows nothing of Nifti images or of the
    # estimator; ``fit`` finally turns its result into the fitted attributes.
    def fit(self, imgs: Any, confounds: Any = None) -> "CausalROIs":
        """Learn the ROIs, their graph and the abstraction error.

        Parameters
        ----------
        imgs : Niimg-like | list of Niimg-like
            One 4D image or a list of 4D images (runs/sessions, treated as different
            distributions), all on the same grid.
        confounds : array-like | DataFrame | str | list | None
            Confounds for the masker: one entry per run (a single entry for a single
            image).

        Returns
        -------
        self : CausalROIs
        """
        params = self._check_params()
        runs, _ = _check_imgs(imgs, "imgs", min_timepoints=max(_MIN_TIMEPOINTS, 3 * (params.n_lags + 1)))
        _check_mask(self.mask_img, runs[0])
        if params.graph_method == "cdnod" and len(runs) < 2:
            raise ValueError("graph_method='cdnod' needs imgs with at least 2 runs (the run index is the domain)")
        conf = _check_confounds(confounds, len(runs))
        masker, Zs = self._mask_runs(runs, conf)
        mask_img = masker.mask_img_
        mask = np.asarray(mask_img.get_fdata()) > 0
        n_vox = int(mask.sum())
        if n_vox < params.n_rois:
            raise ValueError(f"n_rois={params.n_rois} exceeds the number of mask voxels ({n_vox})")

        res = _raw_fit(Zs, _grid_connectivity(mask), np.argwhere(mask).astype(float), params)

        n_rois, labels = params.n_rois, res.labels
        self.masker_ = masker
        self.mask_img_ = mask_img
        self.voxel_labels_ = labels
        self.n_runs_ = len(runs)
        self.labels_img_ = _labels_to_img(labels, mask, mask_img.affine)
        self.lut_ = _make_lut(labels, mask, mask_img.affine, n_rois)
        self.roi_coherence_ = res.roi_coherence
        self.graph_lags_ = res.graph_lags
        self.roi_graph_ = res.roi_graph
        self.roi_pvalues_ = res.roi_pvalues
        self.abstraction_error_ = res.abstraction_error
        self.roi_consistency_ = res.roi_consistency
        logger.info(
            f"[CausalROIs] {len(runs)} run(s), {n_vox} mask voxels, "
            f"{int((labels > 0).sum())} in ROIs, abstraction error {res.abstraction_error:.3f}"
        )
        return self

    def _check_params(self) -> _FitParams:
        """Validate every parameter of :meth:`fit` (nothing here reads the images)."""
        n_rois = check_int(self.n_rois, "n_rois", 1)
        method = check_choice(self.graph_method, "graph_method", list(_GRAPH_METHODS))
        g_lags = "auto" if self.graph_lags == "auto" else check_int(self.graph_lags, "graph_lags", 1, 10)
        n_bg = check_int(self.graph_background_components, "graph_background_components", 0, 50)
        n_lags = check_int(self.n_lags, "n_lags", 1, 10)
        overseg = check_int(self.oversegment, "oversegment", 1, 500)
        check_int(self.memory_level, "memory_level", 0)
        tau = check_float(self.merge_threshold, "merge_threshold", 0.0, 1.0, inclusive=True)
        if tau <= 0:
            raise ValueError(f"merge_threshold must be in (0, 1], got {tau}")
        signal = check_choice(self.merge_signal, "merge_signal", ("innovations", "timecourses"))
        merge_runs = check_choice(self.merge_runs, "merge_runs", ("every", "pooled"))
        selection = check_choice(self.roi_selection, "roi_selection", ("graph", "energy"))
        w_inn = check_float(self.innovation_weight, "innovation_weight", 0.0, 10.0, inclusive=True)
        for name in ("background", "trim", "local_average"):
            if not isinstance(getattr(self, name), (bool, np.bool_)):
                raise TypeError(f"{name} must be a bool, got {type(getattr(self, name)).__name__}")
        alpha = check_float(self.graph_alpha, "graph_alpha", 0.0, 1.0, inclusive=False)
        seed = _check_shared_params(self.random_state, self.n_jobs)
        self._check_signal_params()
        n_comp = 2 * n_rois + 2 if self.n_components is None else check_int(self.n_components, "n_components", 1)
        return _FitParams(
            n_rois=n_rois, n_components=n_comp, oversegment=overseg, merge_threshold=tau,
            merge_signal=signal, merge_runs=merge_runs, n_lags=n_lags,
            local_average=bool(self.local_average), innovation_weight=w_inn,
            background=bool(self.background), trim=bool(self.trim), roi_selection=selection,
            graph_method=method,
            graph_alpha=alpha, graph_lags=g_lags, graph_background_components=n_bg, seed=seed,
        )

    def _mask_runs(self, runs: list, conf: list) -> tuple[Any, list[np.ndarray]]:
        """Fit the masker, mask and clean every run, z-score voxels per run.

        Returns the fitted masker and the runs as (n_timepoints, n_mask_voxels) arrays.
        """
        masker = self._make_masker(self.mask_img)
        masker = masker.fit() if self.mask_img is not None else masker.fit(runs)
        Xs = Parallel(n_jobs=self.n_jobs)(
            delayed(masker.transform)(img, confounds=c) for img, c in zip(runs, conf)
        )
        Xs = [np.asarray(x) for x in Xs]
        for i, x in enumerate(Xs):
            if not np.all(np.isfinite(x)):
                raise ValueError(f"imgs[{i}] contains NaN or infinite values inside the mask")
        return masker, _p.zscore_runs(Xs, copy=False)  # the masker's fresh arrays: no second copy

    def _check_signal_params(self) -> None:
        """Validate the masker's signal-cleaning options here, with our messages."""
        if self.t_r is not None:
            check_float(self.t_r, "t_r", 0.0, inclusive=False)
        if self.smoothing_fwhm is not None:
            check_float(self.smoothing_fwhm, "smoothing_fwhm", 0.0)
        if not isinstance(self.detrend, (bool, np.bool_)):
            raise TypeError(f"detrend must be a bool, got {type(self.detrend).__name__}")
        for name in ("high_pass", "low_pass"):
            val = getattr(self, name)
            if val is not None:
                check_float(val, name, 0.0, inclusive=False)
                if self.t_r is None:
                    raise ValueError(f"{name} needs t_r (the repetition time in seconds)")
        if self.high_pass is not None and self.low_pass is not None and self.high_pass >= self.low_pass:
            raise ValueError(f"high_pass ({self.high_pass}) must be below low_pass ({self.low_pass})")

    # ------------------------------------------------------------------ transform
    def _cleaning(self) -> dict[str, Any]:
        """Signal-cleaning arguments every Nilearn masker of this estimator gets."""
        return dict(
            smoothing_fwhm=self.smoothing_fwhm,
            standardize=_standardize_arg(self.standardize),
            detrend=self.detrend,
            high_pass=self.high_pass,
            low_pass=self.low_pass,
            t_r=self.t_r,
            memory=self.memory,
            memory_level=self.memory_level,
        )

    def _make_masker(self, mask_img: Any):
        from nilearn.maskers import NiftiMasker

        return NiftiMasker(
            mask_img=mask_img,
            verbose=max(logger_verbosity() - 1, 0),  # Nilearn talks one level below us
            **self._cleaning(),
        )

    def _labels_masker(self):
        from nilearn.maskers import NiftiLabelsMasker

        return NiftiLabelsMasker(
            labels_img=self.labels_img_,
            lut=self.lut_[["index", "name"]],
            keep_masked_labels=False,
            **self._cleaning(),
        ).fit()

    def transform(self, imgs: Any, confounds: Any = None) -> np.ndarray | list[np.ndarray]:
        """Average the voxels of each ROI (like :class:`~nilearn.maskers.NiftiLabelsMasker`).

        Parameters
        ----------
        imgs : Niimg-like | list of Niimg-like
            4D image(s) on the grid of the training data.
        confounds : optional
            As in :meth:`fit`.

        Returns
        -------
        signals : ndarray, shape (n_timepoints, n_rois) | list of such arrays
            A list when ``imgs`` is a list.
        """
        check_is_fitted(self, "labels_img_")
        runs, single = _check_imgs(imgs, "imgs", min_timepoints=1)
        conf = _check_confounds(confounds, len(runs))
        lm = self._labels_masker()
        out = [np.asarray(lm.transform(img, confounds=c)) for img, c in zip(runs, conf)]
        return out[0] if single else out

    def fit_transform(self, imgs: Any, confounds: Any = None) -> np.ndarray | list[np.ndarray]:
        """Fit, then :meth:`transform` the same images."""
        return self.fit(imgs, confounds).transform(imgs, confounds)

    def inverse_transform(self, signals: Any) -> nib.Nifti1Image:
        """Paint ROI signals back into a 4D image (each ROI voxel gets its ROI's value).

        Parameters
        ----------
        signals : array-like, shape (n_timepoints, n_rois) | (n_rois,)

        Returns
        -------
        img : nibabel.Nifti1Image
            4D image (3D for a 1D input) on the mask grid.
        """
        check_is_fitted(self, "labels_img_")
        arr = _check_signals(signals)
        if arr.ndim not in (1, 2) or arr.shape[-1] != self.n_rois:
            raise ValueError(
                f"signals must have shape (n_timepoints, {self.n_rois}) or ({self.n_rois},), got {arr.shape}"
            )
        lab = np.asarray(self.labels_img_.dataobj).astype(int)
        vals = np.concatenate([np.zeros(arr.shape[:-1] + (1,)), arr], axis=-1)
        if arr.ndim == 1:
            data = vals[lab]
        else:
            data = np.moveaxis(vals[:, lab], 0, -1)
        return nib.Nifti1Image(data.astype(np.float32), self.labels_img_.affine)

    def score_abstraction(
        self, imgs: Any, labels_img: Any = None, confounds: Any = None
    ) -> tuple[float, np.ndarray]:
        """Data abstraction error of any partition (e.g. a baseline parcellation) on ``imgs``.

        Uses the fitted mask and the same preprocessing and estimator as
        ``abstraction_error_``, so partitions of the same data can be compared.

        Parameters
        ----------
        imgs : Niimg-like | list of Niimg-like
            4D run(s) on the grid of the training data.
        labels_img : Niimg-like | None
            3D integer label image on the mask grid (0 = background); ``None`` uses
            ``labels_img_``.
        confounds : optional
            As in :meth:`fit`.

        Returns
        -------
        error : float
            Mean relative interventional inconsistency over single-ROI interventions.
        per_roi : ndarray, shape (n_labels,)
            Error of intervening on each label ``1..max label``.
        """
        from nilearn.image import load_img

        check_is_fitted(self, "labels_img_")
        runs, _ = _check_imgs(imgs, "imgs", min_timepoints=_MIN_TIMEPOINTS)
        conf = _check_confounds(confounds, len(runs))
        mask = np.asarray(self.mask_img_.dataobj) > 0
        lab_img = self.labels_img_ if labels_img is None else load_img(labels_img)
        lab = np.asarray(lab_img.dataobj)
        if lab.shape != mask.shape:
            raise ValueError(f"labels_img must have the mask's shape {mask.shape}, got {lab.shape}")
        if not np.allclose(lab_img.affine, self.mask_img_.affine, atol=1e-4):
            raise ValueError("labels_img must have the affine of the fitted mask (mask_img_)")
        if not np.all(np.isfinite(lab)) or np.any(lab < 0) or np.any(lab != np.round(lab)):
            raise ValueError("labels_img must contain non-negative integer labels")
        labels = lab[mask].astype(int)
        if labels.max() < 1:
            raise ValueError("labels_img has no non-zero label inside the mask")
        Xs = [np.asarray(self.masker_.transform(img, confounds=c), dtype=float) for img, c in zip(runs, conf)]
        Zs = _p.zscore_runs(Xs, copy=False)
        return _abstraction_error(Zs, labels, _grid_connectivity(mask), int(labels.max()), seed=self._seed())

    def _seed(self) -> int:
        return check_seed(self.random_state)

    # ------------------------------------------------------------------ plots
    def plot(self, title: str | None = None):
        """Plot the ROI map and the ROI graph at the ROI centroids.

        Returns
        -------
        fig : matplotlib.figure.Figure
        """
        from crl_neuro.fmri.viz import plot_causal_rois

        check_is_fitted(self, "labels_img_")
        return plot_causal_rois(self, title=title)

    def to_report(self, report: Any, title: str = "Causal ROIs") -> Any:
        """Add the ROI map and graph figure to an :class:`mne.Report`.

        Parameters
        ----------
        report : mne.Report
        title : str

        Returns
        -------
        report : mne.Report
        """
        import matplotlib.pyplot as plt

        fig = self.plot(title=title)
        report.add_figure(fig, title=title)
        plt.close(fig)
        return report

    # ------------------------------------------------------------------ persistence
    # Checked by crl_neuro.load: v mask voxels, r ROIs.
    _fitted_arrays: ClassVar[dict[str, ArraySpec]] = {
        "voxel_labels_": ArraySpec("iu", ("v",)),
        "roi_coherence_": ArraySpec("f", ("r",)),
        "roi_graph_": ArraySpec("f", ("r", "r")),
        "roi_pvalues_": ArraySpec("f", ("r", "r")),
        "roi_consistency_": ArraySpec("f", ("r",)),
    }

    def _params_to_json(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        # Nifti and Memory parameters are not JSON: a mask image is stored as a file.
        params, files = super()._params_to_json()
        if params["mask_img"] is not None and not isinstance(params["mask_img"], str):
            from nilearn.image import load_img

            files["param_mask_img.nii"] = _nifti_bytes(load_img(params["mask_img"]))
            params["mask_img"] = None
        if params["memory"] is not None and not isinstance(params["memory"], str):
            loc = getattr(params["memory"], "location", None)
            params["memory"] = None if loc is None else str(loc)
        return params, files

    @classmethod
    def _params_from_json(cls, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        if "param_mask_img.nii" in files:
            params["mask_img"] = nib.Nifti1Image.from_bytes(files["param_mask_img.nii"])
        return params

    def _extra_state(self) -> dict[str, bytes]:
        out = {}
        if hasattr(self, "labels_img_"):
            out["labels_img.nii"] = _nifti_bytes(self.labels_img_)
            out["mask_img.nii"] = _nifti_bytes(self.mask_img_)
        return out

    def _set_extra_state(self, files: dict[str, bytes]) -> None:
        if "labels_img.nii" in files:
            self.labels_img_ = nib.Nifti1Image.from_bytes(files["labels_img.nii"])
            self.mask_img_ = nib.Nifti1Image.from_bytes(files["mask_img.nii"])
            self.masker_ = self._make_masker(self.mask_img_).fit()

    def _check_loaded(self) -> None:
        if hasattr(self, "mask_img_") and hasattr(self, "voxel_labels_"):
            n_vox = int(np.count_nonzero(np.asarray(self.mask_img_.dataobj)))
            if n_vox != self.voxel_labels_.shape[0]:
                raise ValueError(f"mask_img_ has {n_vox} voxels but voxel_labels_ has "
                                 f"{self.voxel_labels_.shape[0]}")


# ---------------------------------------------------------------------- the pure fit
@dataclass(frozen=True)
class _FitParams:
    """Validated parameters of :meth:`CausalROIs.fit` (see :meth:`CausalROIs._check_params`)."""

    n_rois: int
    n_components: int
    oversegment: int
    merge_threshold: float
    merge_signal: str
    merge_runs: str
    n_lags: int
    local_average: bool
    innovation_weight: float
    background: bool
    trim: bool
    roi_selection: str
    graph_method: str
    graph_alpha: float
    graph_lags: int | str
    graph_background_components: int
    seed: int


@dataclass(frozen=True)
class _RawFit:
    """What :func:`_raw_fit` learns, in the masker's voxel order."""

    labels: np.ndarray  # (n_voxels,) 0 background, ROIs 1..n_rois by decreasing size
    roi_timeseries: list[np.ndarray]  # per run, (n_timepoints, n_rois) ROI means
    roi_coherence: np.ndarray  # (n_rois,)
    roi_graph: np.ndarray  # (n_rois, n_rois)
    roi_pvalues: np.ndarray  # (n_rois, n_rois) Granger p-values
    graph_lags: int
    abstraction_error: float
    roi_consistency: np.ndarray  # (n_rois,)


def _raw_fit(Zs: list[np.ndarray], connectivity: sparse.csr_matrix, positions: np.ndarray,
             params: _FitParams) -> _RawFit:
    """Steps 2-7 of :class:`CausalROIs` on arrays: partition, ROI graph, abstraction error.

    Pure: no images, no masker, no estimator; the same arrays and parameters give the
    same result.

    Parameters
    ----------
    Zs : list of ndarray, shape (n_timepoints, n_voxels) each
        Masked, cleaned runs, every voxel z-scored per run.
    connectivity : scipy.sparse.csr_matrix, shape (n_voxels, n_voxels)
        Face-neighbour graph of the voxels (:func:`_grid_connectivity`).
    positions : ndarray, shape (n_voxels, 3)
        Voxel grid indices (``np.argwhere(mask)``), for the spatial halves of the merge.
    params : _FitParams
        Validated parameters.

    Returns
    -------
    result : _RawFit
    """
    n_rois = params.n_rois
    n_vox = positions.shape[0]
    labels = _p.parcellate(
        Zs, connectivity, positions, n_rois, n_components=params.n_components,
        n_pieces=int(min(n_vox, max(params.oversegment * n_rois, n_rois))),
        innovation_weight=params.innovation_weight, merge_threshold=params.merge_threshold,
        merge_signal=params.merge_signal, n_lags=params.n_lags, local_average=params.local_average,
        background=params.background, trim=params.trim, across_runs=params.merge_runs,
        selection_confounds=params.graph_background_components if params.roi_selection == "graph" else 0,
    )
    labels = _relabel_by_size(labels, n_rois)
    coh = _p.coherence(Zs, labels)
    roi_ts = [_roi_means(z, labels, n_rois) for z in Zs]
    method, alpha = params.graph_method, params.graph_alpha
    nuisance = _p.background_components(Zs, labels == 0, params.graph_background_components)
    graph, details = roi_causal_graph(
        roi_ts, method=method, alpha=alpha if method == "cdnod" else 0.05, lag_alpha=alpha,
        lags=params.graph_lags, return_details=True, confounds=nuisance,
    )
    err, per_roi = _abstraction_error(Zs, labels, connectivity, n_rois, seed=params.seed)
    return _RawFit(
        labels=labels,
        roi_timeseries=roi_ts,
        roi_coherence=np.concatenate([coh, np.zeros(n_rois - coh.size)]),
        roi_graph=graph,
        roi_pvalues=details.granger_pvalues,
        graph_lags=int(details.lags),
        abstraction_error=err,
        roi_consistency=np.clip(1.0 - per_roi, 0.0, 1.0),
    )


# ---------------------------------------------------------------------- helpers
def _standardize_arg(standardize: Any) -> Any:
    if standardize is True:
        return "zscore_sample"
    if standardize is False:
        return None
    return standardize


def _check_imgs(imgs: Any, name: str, min_timepoints: int) -> tuple[list, bool]:
    """Load 4D images, check grids and sizes; return (list of images, was_single)."""
    from nilearn.image import load_img

    single = not isinstance(imgs, (list, tuple))
    items = [imgs] if single else list(imgs)
    if not items:
        raise ValueError(f"{name} must be a 4D Niimg-like or a non-empty list of them")
    runs = []
    for i, item in enumerate(items):
        where = name if single else f"{name}[{i}]"
        if item is None:
            raise TypeError(f"{where} must be a 4D Niimg-like (image or path), got None")
        try:
            img = load_img(item)
        except Exception as err:
            raise TypeError(f"{where} must be a 4D Niimg-like (image or path): {err}") from err
        if img.ndim != 4:
            raise ValueError(f"{where} must be a 4D image (x, y, z, time), got a {img.ndim}D image of shape {img.shape}")
        if img.shape[3] < min_timepoints:
            raise ValueError(f"{where} has {img.shape[3]} time points; at least {min_timepoints} are needed")
        # Nilearn's maskers silently turn NaN into 0: check here, a few volumes at a time
        # so that a 2 mm whole-brain run is never held twice
        if np.issubdtype(img.get_data_dtype(), np.floating):
            for t0 in range(0, img.shape[3], 16):
                chunk = np.asarray(img.dataobj[..., t0 : t0 + 16])
                if not np.all(np.isfinite(chunk)):
                    raise ValueError(f"{where} contains NaN or infinite values")
                check_magnitude(chunk, where)
        if runs:
            ref = runs[0]
            if img.shape[:3] != ref.shape[:3]:
                raise ValueError(f"{where} has spatial shape {img.shape[:3]} but {name}[0] has {ref.shape[:3]}")
            if not np.allclose(img.affine, ref.affine, atol=1e-4):
                raise ValueError(f"{where} has an affine different from {name}[0]; resample the runs to one grid")
        runs.append(img)
    return runs, single


def _check_confounds(confounds: Any, n_runs: int) -> list:
    if confounds is None:
        return [None] * n_runs
    if isinstance(confounds, (list, tuple)) and len(confounds) == n_runs and not (
        n_runs == 1 and np.ndim(confounds) == 2
    ):
        return list(confounds)
    if n_runs == 1:
        return [confounds]
    raise ValueError(f"confounds must be None or a list with one entry per run ({n_runs} runs)")


def _grid_connectivity(mask: np.ndarray) -> sparse.csr_matrix:
    """Face-neighbour graph of the mask voxels (no self loops)."""
    conn = grid_to_graph(*mask.shape, mask=mask).tocsr().astype(float)
    conn.setdiag(0)
    conn.eliminate_zeros()
    return conn


def _roi_means(z: np.ndarray, labels: np.ndarray, n_rois: int) -> np.ndarray:
    """(n_times, n_rois) mean time course of each ROI (zeros for an empty label)."""
    out = np.zeros((z.shape[0], n_rois))
    for k in range(1, n_rois + 1):
        sel = labels == k
        if sel.any():
            out[:, k - 1] = z[:, sel].mean(axis=1)
    return out


def _relabel_by_size(labels: np.ndarray, n_rois: int) -> np.ndarray:
    """Make labels 1..n_rois (ordered by decreasing size), 0 stays background."""
    out = np.zeros_like(labels)
    ks = [k for k in np.unique(labels) if k > 0]
    ks.sort(key=lambda k: (-(labels == k).sum(), k))
    for new, k in enumerate(ks[:n_rois], start=1):
        out[labels == k] = new
    return out


def _labels_to_img(labels: np.ndarray, mask: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    vol = np.zeros(mask.shape, dtype=np.int32)
    vol[mask] = labels
    img = nib.Nifti1Image(vol, affine)
    img.header.set_data_dtype(np.int32)
    return img


def _make_lut(labels: np.ndarray, mask: np.ndarray, affine: np.ndarray, n_rois: int) -> pd.DataFrame:
    ijk = np.argwhere(mask)
    xyz = ijk @ affine[:3, :3].T + affine[:3, 3]
    rows = [{"index": 0, "name": "Background", "x": np.nan, "y": np.nan, "z": np.nan,
             "n_voxels": int((labels == 0).sum())}]
    for k in range(1, n_rois + 1):
        sel = labels == k
        c = xyz[sel].mean(axis=0) if sel.any() else np.full(3, np.nan)
        rows.append({"index": k, "name": f"CausalROI {k}", "x": float(c[0]), "y": float(c[1]),
                     "z": float(c[2]), "n_voxels": int(sel.sum())})
    return pd.DataFrame(rows, columns=["index", "name", "x", "y", "z", "n_voxels"])


def _abstraction_error(
    Zs: list[np.ndarray], labels: np.ndarray, conn: sparse.csr_matrix, n_rois: int,
    parts: int = 3, n_denoise: int | None = None, seed: int = 0,
) -> tuple[float, np.ndarray]:
    """Data abstraction error: ROIs split into contiguous parts (micro) vs ROIs (macro).

    The part time courses are first denoised by projecting the ROI voxels onto their
    ``n_denoise`` leading principal components (default ``n_rois + 2``): white voxel
    noise averages differently in parts of different sizes and would otherwise count
    as "micro information" that the ROI average loses.
    """
    from sklearn.utils.extmath import randomized_svd

    micro_lab = np.zeros(labels.size, dtype=int)
    macro_of = []
    for k in range(1, n_rois + 1):
        vox = np.flatnonzero(labels == k)
        if vox.size == 0:
            continue
        m = int(min(parts, max(1, vox.size // 5)))
        if m > 1:
            # split by spatially constrained Ward on the voxels' z-scored time courses
            X = np.concatenate([z[:, vox] for z in Zs]).T
            sub = _p.ward_labels(X, conn[vox][:, vox], m)
        else:
            sub = np.ones(vox.size, dtype=int)
        for s in range(1, sub.max() + 1):
            micro_lab[vox[sub == s]] = len(macro_of) + 1
            macro_of.append(k)
    roi = labels > 0
    Z = np.concatenate([z[:, roi] for z in Zs])
    q = n_rois + 2 if n_denoise is None else n_denoise
    q = int(min(q, min(Z.shape) - 1))
    if q >= 1:
        U, sv, Vt = randomized_svd(Z, q, random_state=seed, n_iter=4)
        Z = (U * sv) @ Vt
    ml = micro_lab[roi]
    micro_all = np.stack([Z[:, ml == u].mean(axis=1) for u in range(1, len(macro_of) + 1)], axis=1)
    bounds = np.cumsum([0] + [z.shape[0] for z in Zs])
    micro = [micro_all[bounds[i] : bounds[i + 1]] for i in range(len(Zs))]
    res = var_abstraction_error_from_data(micro, np.array(macro_of), ridge=1e-3, debias=False)
    per = np.full(n_rois, np.nan)
    per[: res["per_block"].size] = res["per_block"]
    per = np.where(np.isfinite(per), per, 0.0)
    return float(res["error"]), per


def _nifti_bytes(img: Any) -> bytes:
    img = nib.Nifti1Image(np.asarray(img.dataobj), img.affine, img.header)
    return img.to_bytes()


def _check_shared_params(random_state: Any, n_jobs: Any) -> int:
    """Validate ``n_jobs`` and return the fit's seed (scikit-learn ``random_state`` policy).

    An int is used as is (same ROIs on every fit); ``None`` draws a seed from numpy's
    global random state instead of silently meaning 0.
    """
    check_n_jobs(n_jobs)
    return check_seed(random_state)


def _check_mask(mask_img: Any, ref: Any) -> None:
    """Check ``mask_img``: a 3D image with voxels inside the field of view of ``ref``.

    A mask on another grid is resampled by the Nilearn masker (nearest neighbour);
    here it must at least keep some voxels once on the grid of the images.
    """
    if mask_img is None:
        return
    from nilearn.image import load_img, resample_to_img

    try:
        mask = load_img(mask_img)
    except Exception as err:
        raise TypeError(f"mask_img must be a 3D Niimg-like (image or path) or None: {err}") from err
    if mask.ndim != 3:
        raise ValueError(f"mask_img must be a 3D image, got a {mask.ndim}D image of shape {mask.shape}")
    data = np.asarray(mask.dataobj)
    if not np.any(data):
        raise ValueError("mask_img is empty (no non-zero voxel)")
    same_grid = mask.shape == ref.shape[:3] and np.allclose(mask.affine, ref.affine, atol=1e-4)
    if not same_grid:
        on_grid = resample_to_img(mask, ref.slicer[..., 0], interpolation="nearest",
                                  force_resample=True, copy_header=True)
        if not np.any(np.asarray(on_grid.dataobj)):
            raise ValueError(
                "mask_img does not overlap the images (imgs): no mask voxel falls inside their "
                "field of view; check that both are in the same space"
            )


def _check_signals(signals: Any) -> np.ndarray:
    """ROI signals as a finite float array (NaN would silently give NaN images)."""
    if signals is None or isinstance(signals, (str, bytes)):
        raise TypeError(f"signals must be an array of ROI signals, got {type(signals).__name__}")
    arr = np.asarray(signals)
    check_real(arr, "signals")
    try:
        arr = arr.astype(float)
    except (TypeError, ValueError) as err:
        raise TypeError(f"signals must contain numbers: {err}") from err
    check_magnitude(arr, "signals")
    return arr
