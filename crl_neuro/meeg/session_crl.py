"""SessionCRL: causally linked brain sources, their network and locations, across sessions.

Model: in session ``s`` the (noise-whitened) sensor data are ``y = A z + n`` with
``A`` fixed across sessions (one head, one montage) and latent sources ``z``
following a linear structural causal model whose edges and strengths change
across sessions. Zhang, Xie, Ng & Zheng (ICML 2024) show the latents' Markov
network is then identified as the sparsest network consistent with all sessions;
the M/EEG physics adds that each column of ``A`` is (close to) one column of the
leadfield. SessionCRL combines both:

1. **Whitening and reduction** - MNE conventions: picks, bad channels excluded,
   ``BAD*``-annotated stretches of a Raw left out (``reject_by_annotation``),
   projectors applied (an EEG average reference is added when missing), rank-aware
   noise whitening (:func:`mne.cov.compute_whitener`). The sources are sought in the
   ``n_sources`` directions whose power changes most across sessions
   (``subspace="change"``, :func:`crl_neuro.core.joint_sparse.change_subspace`,
   searched among the leading principal directions a session's covariance can
   estimate: at most one per 100 samples of the shortest session), since the
   model is identified by those changes; ``subspace="variance"`` takes the
   ``n_sources`` leading eigenvectors of the pooled, session-centred covariance.
   On the randomised family both give the same localisation, the change subspace a
   higher MCC (tuning draws: 0.86 vs 0.85, worst 0.62 vs 0.50; without a forward
   the same, 0.69 vs 0.70, worst 0.40 vs 0.39); with a strong
   stationary rhythm in the data (alpha) the variance subspace holds the rhythm and
   loses sources (``benchmarks/bench_meeg_changes.py --stationary-rhythm``), and on
   the motor EEG only the change subspace finds the hand areas
   (``benchmarks/bench_meeg_real.py``).
2. **Physics start** (when a forward is given) - recursively applied MUSIC
   scan of the whitened leadfield in the signal subspace gives ``n_sources``
   single-dipole patterns, hence a starting unmixing; a location whose pattern,
   within the signal subspace, correlates above 0.8 with a source already found
   is skipped (it would be the same generator split in two). Without a forward the
   unmixing comes from the core's sparsity search started at the approximate
   joint diagonaliser of the session covariances (``random_state`` seeds its
   restarts), as in :class:`crl_neuro.core.multidist.MultiDistributionCRL`.
3. **Causal refinement** - the unmixing is refined so that the per-session
   precision matrices of the sources are jointly sparse (group graphical lasso
   across sessions with a log-type, L0-like penalty; see
   :func:`crl_neuro.core.multidist.fit_joint_sparse`), while each unmixing row
   is penalised for picking up the patterns of the other sources' current
   best-fitting dipoles (weight 100 x the theory penalty; each dipole re-fitted
   at every step within 2 cm of its RAP-MUSIC location). The physics prior
   removes the ambiguities a free per-session precision leaves (sparser-than-truth
   mixtures, the intimate-neighbour limit); the sparsity criterion corrects the
   dipole patterns for head-model error. A refinement that makes two whitened
   source patterns alike (absolute correlation above 0.8) although the physics
   start kept them apart has split one generator in two (seen on real evoked
   MEG, where the signal subspace is dominated by a few strong directions); it
   is then rejected, the start unmixing is kept and ``refined_`` is False.
4. **Re-localisation** - each refined pattern is localised by scanning the
   leadfield (:func:`crl_neuro.meeg.scan_leadfield`), goodness of fit in %. When
   the refinement was rejected, the sources are the start's dipoles and keep
   their locations (orientation, goodness of fit and moment fitted there); a
   later :meth:`SessionCRL.localize` scans the patterns.

Noise handling: with a given ``noise_cov`` the whitened sensor noise is the
identity, so its share is subtracted from the session covariances in the source
subspace before the network is estimated (noise on estimated sources would
otherwise create spurious edges: errors in variables).

What changes across sessions (:func:`crl_neuro.core.changes.mechanism_changes`):
the network is oriented by the causal order under which the fewest mechanisms
change; ``changing_edges_`` are edges whose causal strength (the regression
coefficient of the effect on the cause, given the effect's other causes) differs
across sessions, tested by a random-effects heterogeneity test that leaves every
source's own power free, so a change of power alone is not a changing edge.
``changing_sources_`` are sources whose mechanism (incoming strengths or
innovation power) changes. Effective sample sizes are corrected for
autocorrelation (Bartlett); both families are Benjamini-Hochberg FDR controlled
at ``alpha``. Each edge also gets an effect size, the between-session standard
deviation of its strength (standardised sources), with a confidence interval.

Assumptions: linear instantaneous mixing fixed across sessions; per session the
sources are approximately Gaussian at zero lag (non-Gaussianity is not used);
the causal relations (or source variances) change across at least two sessions.
"""

from __future__ import annotations

import os
import tempfile
from typing import Any, ClassVar

import numpy as np
from sklearn.base import TransformerMixin

from crl_neuro.core.graphs import GraphMixin
from crl_neuro.core.base import (
    ArraySpec,
    BaseCRLEstimator,
    check_is_fitted,
    fill_doc,
    logger,
    use_log_level,
)
from crl_neuro.core.changes import mechanism_changes
from crl_neuro.core.joint_sparse import change_subspace, signal_subspace, theory_penalty_level
from crl_neuro.core.multidist import (
    effective_n,
    fit_joint_sparse,
    pham_ajd,
    sparsity_search,
)
from crl_neuro.core.validation import (
    check_float,
    check_int,
    check_n_jobs,
    check_random_state,
)
from crl_neuro.meeg import _io
from crl_neuro.meeg.priors import LeadfieldPrior, PriorContext, check_prior
from crl_neuro.meeg.localization import (
    _check_forward,
    _dipoles_at,
    _forward_gain,
    _n_ori,
    _rap_music,
    _result,
    _scan,
    _source_pos_head,
)

__all__ = ["SessionCRL"]



_DENOISE = True
# Sources closer than this (m), or with whitened patterns more correlated, are flagged.
_MIN_SOURCE_DISTANCE = 0.01
_MAX_PATTERN_CORR = 0.8
# subspace="change" searches the pooled principal directions a session's covariance
# estimates well: at most (fewest samples in a session) / this many.
_CHANGE_SAMPLES_PER_DIM = 100
# A bootstrap source "reappears" when its whitened pattern matches the fitted one this well.
_BOOT_MATCH_R = 0.9


def _subtract_noise(covs: np.ndarray, noise: np.ndarray) -> np.ndarray:
    """Session source-space covariances minus the (known) sensor-noise part, kept positive definite.

    Noise on the estimated sources breaks conditional independences (errors in
    variables: a chain 0 - 1 - 2 seen through noisy copies looks fully connected),
    so the network is estimated on the noise-free part of the covariance. The
    whitened noise is the identity, i.e. ``noise = V V^T`` in the reduced space.
    """
    out = np.empty_like(covs)
    for d, c in enumerate(covs):
        e, Q = np.linalg.eigh(c - noise)
        floor = 0.05 * max(float(e.max()), 1e-12)
        out[d] = (Q * np.maximum(e, floor)) @ Q.T
    return out


def _max_corr(mix_w: np.ndarray) -> float:
    """Largest absolute correlation between two columns of a (whitened) mixing matrix."""
    P = mix_w / np.maximum(np.linalg.norm(mix_w, axis=0, keepdims=True), 1e-300)
    R = np.abs(P.T @ P)
    np.fill_diagonal(R, 0.0)
    return float(R.max()) if R.size else 0.0


def _log_context(verbose: Any):
    # crl_neuro's verbose semantics; MNE's logger follows the same level inside.
    return use_log_level(verbose)


def _session_cov(x: np.ndarray, Wn: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Whitened, centred session data and its covariance."""
    y = Wn @ (x - x.mean(axis=1, keepdims=True))
    return y, y @ y.T / y.shape[1], x.mean(axis=1)


def _resampling_units(segments: np.ndarray, block: int | None) -> list[tuple[int, int]]:
    """(start, length) of the units a block bootstrap draws from one session.

    ``block=None`` (Epochs): each stretch (epoch) is a unit. Otherwise every
    stretch is cut into nearly equal blocks of about ``block`` samples.
    """
    units, start = [], 0
    for length in np.asarray(segments, int):
        n_parts = 1 if block is None else max(1, int(round(length / block)))
        for part in np.array_split(np.arange(start, start + length), n_parts):
            units.append((int(part[0]), int(part.size)))
        start += int(length)
    return units


def _bootstrap_once(est: "SessionCRL", data: list, units: list, info: Any, labels: np.ndarray,
                    kind: str, forward: Any, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Refit ``est`` (a fresh clone) on one block-bootstrap resample of every session."""
    import warnings

    rng = np.random.RandomState(seed)
    res_data, res_segments, res_counts = [], [], []
    for x, u in zip(data, units):
        drawn = [u[i] for i in rng.randint(len(u), size=len(u))]
        idx = np.concatenate([np.arange(a, a + n) for a, n in drawn])
        res_data.append(x[:, idx])
        res_segments.append(np.array([n for _, n in drawn]))
        res_counts.append(int(idx.size))
    with warnings.catch_warnings(), _log_context(False):
        warnings.simplefilter("ignore")  # the fitted estimator already warned about these data
        est._fit_data(res_data, info, labels, kind, res_counts, res_segments, forward)
    return est.patterns_, est.source_pos_, est.markov_network_


@fill_doc
class SessionCRL(GraphMixin, TransformerMixin, BaseCRLEstimator):
    """Causal representation learning of brain sources across M/EEG sessions.

    Learns ``n_sources`` source time courses whose causal relations change
    across sessions, their sensor patterns and dipole locations, their Markov
    network and which of its edges change. See the module docstring for the
    algorithm and assumptions.

    Parameters
    ----------
    n_sources : int
        Number of sources.
    noise_cov : mne.Covariance | None
        Noise covariance used for whitening. ``None`` uses
        :func:`mne.make_ad_hoc_cov` and warns.
    picks : str | list | slice | None
        Channels to use (MNE picking rules); ``None`` means all data channels.
        Bad channels (union over sessions) are always excluded.
    sparsity : "auto" | float
        Penalty on the source Markov network: ``"auto"`` uses the theory level
        and an extended BIC to select the network; a float ``c >= 0`` uses ``c``
        times the theory level.
    alpha : float
        FDR level of the tests of changing edges and changing sources.
    min_change : float
        Smallest change that counts: between-session standard deviation of a
        causal strength, and RMS correlation of the two sources' innovations
        (standardised sources); 0 flags any significant change. Estimated
        sources leak into each other a little, and with long recordings that
        leakage alone is significant when powers change. The default 0.07 was
        chosen on the randomised family of :func:`crl_neuro.datasets.draw_meeg_problem`
        (see ``benchmarks/bench_meeg_changes.py``). With two sessions no edge is
        flagged: two covariances can always be diagonalised jointly, so a change
        of strength cannot be told from estimation error of the sources.
    prior : "leadfield" | None | object
        How the leadfield shapes the refinement when ``fit`` gets a forward (see
        :mod:`crl_neuro.meeg.priors`): ``"leadfield"`` (default) is
        :class:`~crl_neuro.meeg.priors.LeadfieldPrior` with its defaults (each filter is
        kept off the other sources' dipole patterns, re-fitted within 2 cm of the
        RAP-MUSIC start); ``None`` refines without a physics penalty; a
        ``LeadfieldPrior(weight=..., radius=...)`` or any object with a
        ``penalty(context)`` method is used as given. Ignored without a forward.
    subspace : "change" | "variance"
        Which ``n_sources``-dimensional subspace of the whitened data the sources
        are sought in. ``"change"`` (default): the directions whose power changes
        most across sessions (a multi-session common-spatial-patterns criterion,
        :func:`crl_neuro.core.joint_sparse.change_subspace`): the model is
        identified by those changes, and on EEG the directions of largest variance
        are often stationary rhythms and deep, smooth fields rather than the
        sources that respond to the task. ``"variance"``: the leading principal
        components of the pooled, session-centred covariance (the former default).
        Choose sessions whose differences are the ones of interest (e.g. task
        conditions pooled over runs): changes between runs that are artefacts
        (electrodes, muscles) are changes too.
    %(random_state)s
    %(n_jobs)s
    %(verbose)s

    Attributes
    ----------
    patterns_ : ndarray, shape (n_channels, n_sources)
        Sensor patterns in the original (unwhitened) channel space.
    filters_ : ndarray, shape (n_sources, n_channels)
        Unmixing filters: sources = ``filters_ @ (data - mean_[:, None])``.
    markov_network_ : ndarray, shape (n_sources, n_sources) bool
        Markov network of the sources.
    session_precisions_ : ndarray, shape (n_sessions, n_sources, n_sources)
        Per-session source precision matrices (sparse).
    source_covariances_ : ndarray, shape (n_sessions, n_sources, n_sources)
        Per-session covariances of the sources (unit pooled variance), the
        sensor-noise share removed when ``noise_cov`` is given; the change
        tests are computed from them.
    causal_order_ : ndarray, shape (n_sources,)
        Order of the sources (causes first) chosen by the minimal-change
        principle; it orients the network into ``source_dag_``.
    source_dag_ : ndarray, shape (n_sources, n_sources) bool
        ``[i, j]`` means source i -> source j (the network oriented by
        ``causal_order_``; moral edges between co-causes keep a strength near 0).
    edge_strengths_ : ndarray, shape (n_sessions, n_sources, n_sources)
        Per-session causal strength of i -> j (0 off ``source_dag_``), with
        standard errors ``edge_strengths_se_``.
    changing_edges_ : ndarray, shape (n_sources, n_sources) bool
        Edges whose causal strength changes across sessions (a change of a
        source's power alone does not count).
    changing_edges_pvalues_ : ndarray, shape (n_sources, n_sources)
        Heterogeneity p-values (1 for pairs not in the network).
    changing_edges_effect_ : ndarray, shape (n_sources, n_sources)
        Between-session standard deviation of each edge's strength, with its
        confidence interval ``changing_edges_effect_ci_`` (2, n_sources, n_sources).
    changing_sources_ : ndarray, shape (n_sources,) bool
        Sources whose mechanism (incoming strengths or own power) changes.
    changing_sources_pvalues_ : ndarray, shape (n_sources,)
    sessions_ : ndarray, shape (n_sessions,)
        Session labels.
    info_ : mne.Info
        Info of the channels used (bads excluded, projectors included).
    mean_ : ndarray, shape (n_channels,)
        Channel mean removed before unmixing.
    whitener_ : ndarray, shape (rank, n_channels)
        Noise whitener (projectors included).
    pattern_correlation_ : ndarray, shape (n_sources, n_sources)
        Absolute correlations of the noise-whitened sensor patterns (0 on the
        diagonal); a warning is issued above 0.8, or for sources within 1 cm.
    source_confidence_ : pandas.DataFrame
        Set by :meth:`bootstrap`: per source, how often it reappears in block-bootstrap
        refits and how far its location moves (see :meth:`bootstrap`).
    network_frequency_ : ndarray, shape (n_sources, n_sources)
        Set by :meth:`bootstrap`: share of bootstrap refits with each edge.
    refined_ : bool
        False when the causal refinement was rejected because it made two
        source patterns alike that the leadfield start kept apart (see the
        module docstring); the sources are then the leadfield start's dipoles,
        and ``source_pos_`` their locations. Always True without a forward.
    n_eff_ : ndarray, shape (n_sessions, n_sources, n_sources)
        Effective sample sizes (per session and source pair, Bartlett).
    source_pos_, source_ori_, source_vertices_, source_gof_, source_amplitude_ : ndarray
        Dipole fit of each pattern (set when a forward is given to ``fit`` or by
        :meth:`localize`): positions (m, head coordinates), orientations,
        indices into ``forward["source_rr"]``, goodness of fit (%), moment.
    dipoles_ : mne.Dipole
        The same as an :class:`mne.Dipole` (one entry per source).

    Examples
    --------
    >>> crl = SessionCRL(n_sources=4).fit(raws, forward=fwd)  # doctest: +SKIP
    >>> sources = crl.get_sources(raws[0])  # doctest: +SKIP
    """

    _graphs = {"markov": ("markov_network_", "undirected"), "dag": ("source_dag_", "directed"),
               "changing": ("changing_edges_", "cpdag")}

    def _graph_node_names(self, which: str, n_nodes: int) -> list[str]:
        return [f"CRL{i:03d}" for i in range(n_nodes)]

    _extra_attributes = ("info_", "dipoles_")
    # Checked by crl_neuro.load: k sources, c channels, s sessions, r whitener rank.
    _fitted_arrays: ClassVar[dict[str, ArraySpec]] = {
        "filters_": ArraySpec("f", ("k", "c")),
        "patterns_": ArraySpec("f", ("c", "k")),
        "mean_": ArraySpec("f", ("c",)),
        "whitener_": ArraySpec("f", (None, "c")),
        "session_precisions_": ArraySpec("f", ("s", "k", "k")),
        "source_covariances_": ArraySpec("f", ("s", "k", "k")),
        "markov_network_": ArraySpec("b", ("k", "k")),
        "causal_order_": ArraySpec("iu", ("k",)),
        "source_dag_": ArraySpec("b", ("k", "k")),
        "edge_strengths_": ArraySpec("f", ("s", "k", "k")),
        "edge_strengths_se_": ArraySpec("f", ("s", "k", "k")),
        "changing_edges_": ArraySpec("b", ("k", "k")),
        "changing_edges_pvalues_": ArraySpec("f", ("k", "k")),
        "changing_edges_effect_": ArraySpec("f", ("k", "k")),
        "changing_edges_effect_ci_": ArraySpec("f", (2, "k", "k")),
        "changing_sources_": ArraySpec("b", ("k",)),
        "changing_sources_pvalues_": ArraySpec("f", ("k",)),
        "sessions_": ArraySpec("", ("s",)),
        "n_eff_": ArraySpec("f", ("s", "k", "k")),
        "pattern_correlation_": ArraySpec("f", ("k", "k"), optional=True),
        "source_pos_": ArraySpec("f", ("k", 3), optional=True),
        "source_ori_": ArraySpec("f", ("k", 3), optional=True),
        "source_vertices_": ArraySpec("iu", ("k",), optional=True),
        "source_gof_": ArraySpec("f", ("k",), optional=True),
        "source_amplitude_": ArraySpec("f", ("k",), optional=True),
        "network_frequency_": ArraySpec("f", ("k", "k"), optional=True),
    }

    def __init__(
        self,
        n_sources: int,
        noise_cov: Any = None,
        picks: Any = None,
        sparsity: Any = "auto",
        alpha: float = 0.05,
        min_change: float = 0.07,
        prior: Any = "leadfield",
        subspace: str = "change",
        random_state: Any = None,
        n_jobs: Any = None,
        verbose: Any = None,
    ) -> None:
        self.n_sources = n_sources
        self.noise_cov = noise_cov
        self.picks = picks
        self.sparsity = sparsity
        self.alpha = alpha
        self.min_change = min_change
        self.prior = prior
        self.subspace = subspace
        self.random_state = random_state
        self.n_jobs = n_jobs
        self.verbose = verbose

    # ------------------------------------------------------------------ fit
    def _check_params(self) -> None:
        import mne

        check_int(self.n_sources, "n_sources", min_value=1)
        if self.noise_cov is not None and not isinstance(self.noise_cov, mne.Covariance):
            raise TypeError(
                f"noise_cov must be an mne.Covariance or None, got {type(self.noise_cov).__name__}"
            )
        if not (isinstance(self.sparsity, str) and self.sparsity == "auto"):
            if isinstance(self.sparsity, str):
                raise ValueError(f"sparsity must be 'auto' or a number >= 0, got {self.sparsity!r}")
            check_float(self.sparsity, "sparsity", min_value=0.0)
        check_float(self.alpha, "alpha", min_value=0.0, max_value=1.0, inclusive=False)
        check_float(self.min_change, "min_change", min_value=0.0, max_value=1.0)
        check_prior(self.prior)
        if not isinstance(self.subspace, str) or self.subspace not in ("change", "variance"):
            raise ValueError(f"subspace must be 'change' or 'variance', got {self.subspace!r}")
        check_n_jobs(self.n_jobs)
        check_random_state(self.random_state)

    def fit(
        self, insts: Any, sessions: Any = None, forward: Any = None, reject_by_annotation: bool = True
    ) -> "SessionCRL":
        """Fit sources, their network and (with ``forward``) their locations.

        Parameters
        ----------
        insts : list of mne.io.Raw | list of mne.Epochs | mne.io.Raw | mne.Epochs
            One instance per session (same channels), or one instance with
            ``sessions``.
        sessions : array-like | None
            With one instance: one label per sample (Raw) or per epoch (Epochs:
            per row of ``epochs.events``; epochs that MNE rejects when loading
            are dropped with their labels). With a list: optional labels, one
            per instance.
        forward : mne.Forward | None
            Forward model (fixed or free orientation) giving the physics start
            and prior and the source locations (a grid scan; for positions off
            the grid, call :meth:`localize` with the head model afterwards:
            ``est.localize(forward, bem=...)``). With free orientation (what
            :func:`mne.make_forward_solution` returns) each source's orientation
            is fitted; a fixed one imposes the grid's normals, which miss the
            orientation of sources between grid vertices: on the randomised
            EEG family, localisation 7.6 / 13.4 mm (mean / worst) with the free
            forward against 10.5 / 19.8 mm with its fixed version, network F1
            0.92 against 0.83 (``benchmarks/bench_meeg_changes.py
            --orientation``).
        reject_by_annotation : bool
            If True (default, as :meth:`mne.preprocessing.ICA.fit`), samples of a
            Raw inside annotations whose description starts with ``BAD`` (e.g.
            ``BAD_muscle``) are left out of everything estimated (mean,
            whitening, covariances, effective sample sizes). The good stretches
            of a session are joined for the covariances; autocorrelations are
            computed within stretches only, never across a removed one. If
            False, annotations are ignored. Epochs are unaffected (MNE applies
            annotations when epoching).

        Returns
        -------
        self : SessionCRL
        """
        with _log_context(self.verbose):
            return self._fit(insts, sessions, forward, reject_by_annotation)

    def _fit(self, insts: Any, sessions: Any, forward: Any, reject_by_annotation: bool) -> "SessionCRL":
        self._check_params()
        if forward is not None:
            _check_forward(forward)
        data, info, labels, kind, counts, segments = _io.prepare_sessions(
            insts, sessions, self.picks, reject_by_annotation
        )
        return self._fit_data(data, info, labels, kind, counts, segments, forward,
                              reject_by_annotation)

    def _fit_data(self, data: list, info: Any, labels: np.ndarray, kind: str, counts: list,
                  segments: list, forward: Any, reject_by_annotation: bool = True) -> "SessionCRL":
        """Fit on per-session arrays (channels x samples) as returned by ``prepare_sessions``."""
        import mne
        from joblib import Parallel, delayed
        from mne.cov import compute_whitener
        from mne.utils import warn

        k = self.n_sources
        prior_obj = check_prior(self.prior)
        noise_cov = self.noise_cov
        if noise_cov is None:
            warn("noise_cov is None: using an ad-hoc diagonal noise covariance (mne.make_ad_hoc_cov)")
            noise_cov = mne.make_ad_hoc_cov(info, verbose=False)
        _check_noise_cov_channels(noise_cov, info)
        Wn, _, rank = compute_whitener(
            noise_cov, info, pca=True, return_rank=True, verbose=False
        )
        Wn = Wn @ _io.projector(info)
        if k > rank:
            raise ValueError(
                f"n_sources={k} exceeds the rank of the data ({rank} after projections "
                "and whitening); reduce n_sources"
            )
        for lab, n in zip(labels.tolist(), counts):  # tolist: plain labels in the message
            if n < max(10, 2 * k):
                left_out = " left after BAD_ annotations and rejected epochs" if reject_by_annotation else ""
                raise ValueError(
                    f"session {lab!r} has {n} samples{left_out}; too few for n_sources={k} "
                    f"(need at least {max(10, 2 * k)})"
                )
        logger.info(
            "SessionCRL: %d sessions, %d channels (rank %d), %d sources",
            len(data), len(info["ch_names"]), rank, k,
        )
        stats = Parallel(n_jobs=self.n_jobs)(delayed(_session_cov)(x, Wn) for x in data)
        Ys = [s[0] for s in stats]
        covs_w = np.array([s[1] for s in stats])
        counts = np.asarray(counts, float)
        pi = counts / counts.sum()
        pooled = np.einsum("d,dab->ab", pi, covs_w)
        # whitened channels -> reduced space with unit pooled covariance (V), and back (Vpinv)
        rank_msg = f"n_sources={k} exceeds the rank of the data; reduce n_sources"
        if self.subspace == "change":
            V, Vpinv, E, _ = change_subspace(
                covs_w, pi, k, int(counts.min()) // _CHANGE_SAMPLES_PER_DIM, rank_msg)
        else:
            V, Vpinv, E, _ = signal_subspace(pooled, k, 1e-10, rank_msg)
        covs = np.einsum("ia,dab,jb->dij", V, covs_w, V)
        n_eff = np.array([effective_n((V @ y).T, segments=seg) for y, seg in zip(Ys, segments)])
        prior = None
        if forward is not None:
            gain_w = Wn @ _forward_gain(forward, info["ch_names"])
            n_ori = _n_ori(forward)
            logger.info(
                "SessionCRL: RAP-MUSIC scan of %d leadfield locations", gain_w.shape[1] // n_ori
            )
            # Patterns are compared as the start will give them (Vpinv @ V @ pattern):
            # in coordinates R @ V where Vpinv = Q R (the orthogonal projection on E
            # for subspace="variance", an oblique one for "change").
            compare = np.linalg.qr(Vpinv)[1] @ V
            locs0, pats0 = _rap_music(gain_w, E, k, n_ori, max_corr=_MAX_PATTERN_CORR,
                                      compare=compare)
            M0 = V @ pats0
            W0 = np.linalg.pinv(M0)
            if prior_obj is not None:
                prior = prior_obj.penalty(PriorContext(
                    gain=gain_w, n_ori=n_ori, positions=_source_pos_head(forward),
                    start_locations=np.asarray(locs0), reduce=V, expand=Vpinv,
                    penalty_scale=theory_penalty_level(pi, n_eff, k),
                ))
        if _DENOISE and self.noise_cov is not None:
            covs = _subtract_noise(covs, V @ V.T)
        if forward is None:
            # No physics: the core's global sparsity search, as MultiDistributionCRL.
            W0 = sparsity_search(covs, n_eff, pham_ajd(covs, weights=n_eff),
                                 random_state=self.random_state)
        res = fit_joint_sparse(covs, n_eff, W0, sparsity=self.sparsity, prior=prior,
                               update_W=forward is not None)
        refined = True
        if forward is not None:
            # The refinement corrects dipole patterns; it must not merge two of them.
            # If it makes two whitened patterns alike (|r| > _MAX_PATTERN_CORR) that
            # the physics start kept apart, one generator has been split in two:
            # keep the start unmixing and estimate the network on it.
            r_ref = _max_corr(Vpinv @ np.linalg.inv(res["W"]))
            r_0 = _max_corr(Vpinv @ np.linalg.inv(W0))
            if r_ref > _MAX_PATTERN_CORR >= r_0:
                logger.info(
                    "SessionCRL: the refinement made two source patterns alike (|r| %.2f -> "
                    "%.2f); keeping the leadfield start", r_0, r_ref,
                )
                refined = False
                res = fit_joint_sparse(covs, n_eff, W0, sparsity=self.sparsity, update_W=False)
        W = res["W"]
        logger.info(
            "SessionCRL: %d refinement iterations, %d edges",
            res["n_iter"], int(res["network"].sum() // 2),
        )
        if not res["converged"]:
            warn(f"SessionCRL: the refinement stopped at max_iter={res['n_iter']} iterations "
                 "before converging; the sources may be inaccurate (more data or fewer "
                 "n_sources usually help)")
        filters = W @ V @ Wn
        mix_w = Vpinv @ np.linalg.inv(W)  # whitened channel patterns
        colorer = np.linalg.pinv(Wn)
        patterns = colorer @ mix_w
        # Sign convention: largest-magnitude channel positive (refined by localisation).
        sign = np.sign(patterns[np.abs(patterns).argmax(axis=0), np.arange(k)])
        sign[sign == 0] = 1.0
        self.filters_ = filters * sign[:, None]
        self.patterns_ = patterns * sign[None, :]
        D = np.diag(sign)
        self.session_precisions_ = D @ res["precisions"] @ D
        self.markov_network_ = np.asarray(res["network"], bool)
        n_eff_z = np.array([effective_n((W @ V @ y).T, pairwise=True, segments=seg)
                            for y, seg in zip(Ys, segments)])
        # Unpenalised (noise-corrected) source covariances: strengths and their changes.
        self.source_covariances_ = D @ res["covariances"] @ D
        chg = mechanism_changes(self.source_covariances_, n_eff_z, self.markov_network_,
                                alpha=self.alpha, min_change=self.min_change)
        self.causal_order_ = chg.order
        self.source_dag_ = chg.dag
        self.edge_strengths_ = chg.strengths
        self.edge_strengths_se_ = chg.strengths_se
        self.changing_edges_ = chg.changing_edges
        self.changing_edges_pvalues_ = chg.edge_pvalues
        self.changing_edges_effect_ = chg.edge_change
        self.changing_edges_effect_ci_ = chg.edge_change_ci
        self.changing_sources_ = chg.changing_sources
        self.changing_sources_pvalues_ = chg.source_pvalues
        self.sessions_ = labels
        self.info_ = info
        self.mean_ = np.einsum("d,dc->c", pi, np.array([s[2] for s in stats]))
        self.whitener_ = Wn
        self.n_eff_ = n_eff_z
        self.penalty_ = float(res["lam"])
        self.n_iter_ = int(res["n_iter"])
        self.refined_ = bool(refined)
        self.input_kind_ = kind
        stale = ("source_pos_", "source_ori_", "source_vertices_", "source_gof_",
                 "source_amplitude_", "dipoles_", "source_confidence_", "network_frequency_")
        for name in stale:  # a refit without forward must not keep old locations
            if hasattr(self, name):
                delattr(self, name)
        if forward is not None:
            if refined:
                self.localize(forward)
            else:
                # The sources are the leadfield start's dipoles, their patterns restricted
                # to the signal subspace: their locations are those dipoles'. A scan of the
                # restricted pattern would favour locations whose leadfield lies more
                # inside the subspace (its correlation is bounded by their MUSIC score).
                mix_w = Wn @ self.patterns_
                self._set_locations(_result(forward, *_dipoles_at(gain_w, mix_w, locs0, n_ori)))
        self._warn_duplicates()
        return self

    def _warn_duplicates(self) -> None:
        """Warn when two sources look like one: alike sensor patterns or the same location.

        Patterns are compared after noise whitening (what the data can tell apart).
        """
        from mne.utils import warn

        P = self.whitener_ @ self.patterns_
        P = P / np.maximum(np.linalg.norm(P, axis=0, keepdims=True), 1e-300)
        R = np.abs(P.T @ P)
        np.fill_diagonal(R, 0.0)
        self.pattern_correlation_ = R
        close = [(i, j) for i, j in zip(*np.nonzero(np.triu(R > _MAX_PATTERN_CORR, 1)))]
        if hasattr(self, "source_pos_"):
            d = np.linalg.norm(self.source_pos_[:, None] - self.source_pos_[None], axis=-1)
            close += [(i, j) for i, j in zip(*np.nonzero(np.triu(d < _MIN_SOURCE_DISTANCE, 1)))
                      if (i, j) not in close]
        if close:
            pairs = ", ".join(f"{i}-{j}" for i, j in close)
            warn(f"SessionCRL: sources {pairs} have whitened sensor patterns correlated above "
                 f"{_MAX_PATTERN_CORR} or lie within {1000 * _MIN_SOURCE_DISTANCE:.0f} mm of each "
                 "other: one generator may be split in two (try fewer n_sources)")

    # ------------------------------------------------------------ localize
    def localize(self, forward: Any, bem: Any = None, trans: Any = "auto") -> Any:
        """Localise each source pattern by scanning the leadfield of ``forward``.

        A grid scan is only as fine as the source space: a location can be off by
        about half the grid spacing, more in a coarse volume grid. With ``bem``,
        each pattern's position is then fitted continuously (a free-orientation,
        free-position dipole fit of the pattern, :func:`mne.fit_dipole`, with the
        estimator's noise covariance, MNE's own guess grid and simplex search), as
        MNE users do for ICA topographies; a source whose continuous fit explains
        less of its pattern than the scan's dipole (a local optimum of the fit)
        keeps the scan's. On the synthetic MEG helmet (sources off the grid) it
        lowers the localisation error, mean and worst, with fixed and with free
        orientation (``benchmarks/bench_meeg.py``, "SessionCRL+dipole fit"), and on
        the randomised EEG family with a perturbed head model (mean 10.5 -> 8.3 mm,
        worst 24.8 -> 18.9 mm over 48 problems, ``bench_meeg_changes.py
        --dipole-fit``). It
        ignores the forward's orientation constraint and source space (a dipole
        anywhere inside the inner skull, at least 5 mm from it), and it takes
        seconds per source with a BEM.

        Parameters
        ----------
        forward : mne.Forward
            Forward model on (at least) the channels used at fit time; fixed or
            free orientation.
        bem : str | path-like | mne.bem.ConductorModel | None
            Head model for the continuous fit (the BEM solution or sphere model the
            forward was computed with). ``None`` (default) keeps the grid scan.
        trans : str | path-like | mne.transforms.Transform | None
            Head<->MRI transform for the continuous fit; ``"auto"`` (default) takes
            the forward's ``mri_head_t``. Ignored without ``bem``.

        Returns
        -------
        dipole : mne.Dipole
            One entry per source (``times`` index the sources), positions in
            head coordinates (m), goodness of fit in %. Also sets
            ``source_pos_``, ``source_ori_``, ``source_vertices_``,
            ``source_gof_``, ``source_amplitude_`` and ``dipoles_``. After a
            continuous fit, ``source_vertices_`` is the forward location nearest
            to each fitted position.
        """
        import mne

        check_is_fitted(self, "filters_")
        _check_forward(forward)
        if bem is not None:
            if not isinstance(bem, (str, os.PathLike, mne.bem.ConductorModel)):
                raise TypeError(f"bem must be a file name, an mne.bem.ConductorModel or None, "
                                f"got {type(bem).__name__}")
            if trans is not None and not isinstance(trans, (str, os.PathLike, mne.transforms.Transform)):
                raise TypeError(f"trans must be 'auto', a file name, an mne.transforms.Transform or "
                                f"None, got {type(trans).__name__}")
        gain_w = self.whitener_ @ _forward_gain(forward, self.info_["ch_names"])
        mix_w = self.whitener_ @ self.patterns_
        best, sc, coef, amp = _scan(gain_w, mix_w, _n_ori(forward))
        res = _result(forward, best, sc, coef, amp)
        if bem is not None:
            res = self._fit_dipoles(res, forward, bem, forward["mri_head_t"] if
                                    isinstance(trans, str) and trans == "auto" else trans)
        self._set_locations(res)
        return res.dipole

    def _set_locations(self, res: Any) -> None:
        self.source_pos_ = res.pos
        self.source_ori_ = res.ori
        self.source_vertices_ = res.vertices
        self.source_gof_ = res.gof
        self.source_amplitude_ = res.amplitude
        self.dipoles_ = res.dipole
        for name in ("source_confidence_", "network_frequency_"):  # about the old locations
            if hasattr(self, name):
                delattr(self, name)

    def _fit_dipoles(self, scan: Any, forward: Any, bem: Any, trans: Any) -> Any:
        """Continuous dipole fit of every pattern (see :meth:`localize`).

        MNE's fit starts from its own 2 cm guess grid and can stop in a local
        optimum (seen with a noise-free pattern: 65 % goodness of fit, 2 cm off,
        where the grid scan explained 90 %); a source whose continuous fit explains
        less of its pattern than the grid scan's dipole keeps the scan's.
        """
        import warnings

        import mne
        from sklearn.utils import Bunch

        noise_cov = self.noise_cov
        if noise_cov is None:
            noise_cov = mne.make_ad_hoc_cov(self.info_, verbose=False)
        evoked = mne.EvokedArray(self.patterns_, self.info_, tmin=0.0, nave=1, verbose=False)
        with warnings.catch_warnings():
            # e.g. "projection vectors do not match": the patterns carry the fit's projectors
            warnings.simplefilter("ignore", RuntimeWarning)
            dip, _ = mne.fit_dipole(evoked, noise_cov, bem, trans, n_jobs=self.n_jobs,
                                    verbose=False)
        better = dip.gof > scan.gof
        pos = np.where(better[:, None], dip.pos, scan.pos)
        ori = np.where(better[:, None], dip.ori, scan.ori)
        gof = np.where(better, dip.gof, scan.gof)
        amp = np.where(better, dip.amplitude, scan.amplitude)
        dip = mne.Dipole(times=np.arange(len(pos), dtype=float), pos=pos, amplitude=amp, ori=ori,
                         gof=gof, name="crl_neuro dipole fit", verbose=False)
        grid = _source_pos_head(forward)
        vertices = np.linalg.norm(grid[None] - pos[:, None], axis=-1).argmin(axis=1)
        vertices = np.where(better, vertices, scan.vertices)
        return Bunch(vertices=vertices, pos=pos, ori=ori, gof=gof, amplitude=amp, dipole=dip)

    def bootstrap(
        self,
        insts: Any,
        forward: Any,
        sessions: Any = None,
        n_boot: int = 50,
        block_duration: float = 2.0,
        reject_by_annotation: bool = True,
        random_state: Any = None,
    ) -> Any:
        """How stable each source and edge is: refit on block-bootstrap resamples.

        Every session is cut into blocks (epochs for Epochs, contiguous stretches
        of about ``block_duration`` seconds for Raw, never across a ``BAD``
        annotation); each replicate draws as many blocks with replacement in every
        session and refits with the same parameters. Replicate sources are matched
        to the fitted ones by their noise-whitened sensor patterns (Hungarian, on
        absolute correlation). The spread measures sampling variability only: it
        does not include the error of the forward model, which on simulated heads
        with a realistic mismatch is of the order of 1 cm.

        Parameters
        ----------
        insts, sessions, reject_by_annotation
            The data the estimator was fitted on, as passed to :meth:`fit`.
        forward : mne.Forward
            The forward model of the fit.
        n_boot : int
            Number of bootstrap replicates (>= 2; 50-200 for stable percentiles).
        block_duration : float
            Block length in seconds for Raw input (> 0). Blocks should be longer than
            the sources' autocorrelation; ignored for Epochs.
        random_state : int | RandomState | None
            Seeds the resampling; ``None`` uses the estimator's ``random_state``.

        Returns
        -------
        confidence : pandas.DataFrame
            One row per source (``CRL000``...): ``stability`` (share of replicates
            in which a source with whitened-pattern correlation >= 0.9 reappears),
            ``pattern_r_median``, ``shift_median_mm`` and ``radius95_mm`` (median
            and 95th percentile of the distance between the replicate's location and
            ``source_pos_``, over the replicates where the source reappears) and
            ``vol_m3`` (volume of the 95 % ellipsoid of those locations, as the
            ``conf["vol"]`` of :func:`mne.fit_dipole`). Also stored as
            ``source_confidence_``; ``network_frequency_`` (n_sources, n_sources) is
            the share of replicates with each edge, and ``dipoles_.conf["vol"]`` is
            set.
        """
        import pandas as pd
        from joblib import Parallel, delayed
        from scipy import stats
        from scipy.optimize import linear_sum_assignment
        from sklearn.base import clone

        check_is_fitted(self, "patterns_")
        if not hasattr(self, "source_pos_"):
            raise ValueError("bootstrap needs a fit with a forward model: call "
                             "fit(insts, forward=forward) first")
        _check_forward(forward)
        n_boot = check_int(n_boot, "n_boot", min_value=2)
        block_duration = check_float(block_duration, "block_duration", min_value=0.0, inclusive=False)
        rng = check_random_state(self.random_state if random_state is None else random_state)
        data, info, labels, kind, _counts, segments = _io.prepare_sessions(
            insts, sessions, self.picks, reject_by_annotation
        )
        if list(info["ch_names"]) != list(self.info_["ch_names"]) or not np.array_equal(
            np.asarray(labels).astype(str), np.asarray(self.sessions_).astype(str)
        ):
            raise ValueError("insts (with sessions) must be the data the estimator was fitted on: "
                             "same channels and session labels")
        block = None if kind == "epochs" else max(1, int(round(block_duration * info["sfreq"])))
        units = [_resampling_units(seg, block) for seg in segments]
        for lab, u in zip(labels.tolist(), units):
            if len(u) < 2:
                raise ValueError(
                    f"session {lab!r} has a single bootstrap block; use a shorter block_duration "
                    f"(now {block_duration} s) or more epochs"
                )
        seeds = rng.randint(2**31 - 1, size=n_boot)
        logger.info("SessionCRL: %d bootstrap refits", n_boot)
        reps = Parallel(n_jobs=self.n_jobs)(
            delayed(_bootstrap_once)(clone(self).set_params(n_jobs=1), data, units, info, labels,
                                     kind, forward, int(seed))
            for seed in seeds
        )
        k = self.n_sources
        ref = self.whitener_ @ self.patterns_
        ref = ref / np.linalg.norm(ref, axis=0, keepdims=True)
        r = np.zeros((n_boot, k))
        pos = np.zeros((n_boot, k, 3))
        edges = np.zeros((k, k))
        for b, (pat, loc, net) in enumerate(reps):
            pw = self.whitener_ @ pat
            pw = pw / np.linalg.norm(pw, axis=0, keepdims=True)
            R = np.abs(ref.T @ pw)
            rows, cols = linear_sum_assignment(-R)
            r[b, rows] = R[rows, cols]
            pos[b, rows] = loc[cols]
            edges += net[np.ix_(cols, cols)]
        ok = r >= _BOOT_MATCH_R
        dist = np.linalg.norm(pos - self.source_pos_[None], axis=2) * 1e3
        chi = stats.chi2.ppf(0.95, 3) ** 1.5 * 4.0 / 3.0 * np.pi
        vol = np.full(k, np.nan)
        for i in range(k):
            if ok[:, i].sum() >= 4:
                vol[i] = chi * np.sqrt(max(np.linalg.det(np.cov(pos[ok[:, i], i].T)), 0.0))
        with np.errstate(all="ignore"):
            conf = pd.DataFrame({
                "stability": ok.mean(axis=0),
                "pattern_r_median": np.median(r, axis=0),
                "shift_median_mm": [np.median(dist[ok[:, i], i]) if ok[:, i].any() else np.nan
                                    for i in range(k)],
                "radius95_mm": [np.percentile(dist[ok[:, i], i], 95) if ok[:, i].any() else np.nan
                                for i in range(k)],
                "vol_m3": vol,
            }, index=pd.Index([f"CRL{i:03d}" for i in range(k)], name="source"))
        self.source_confidence_ = conf
        self.network_frequency_ = edges / n_boot
        self.dipoles_.conf["vol"] = conf["vol_m3"].to_numpy()
        return conf

    # ----------------------------------------------------------- transform
    def _sources_array(self, inst: Any) -> np.ndarray:
        x = _io.instance_data(inst, list(self.info_["ch_names"]))
        if x.ndim == 2:
            return self.filters_ @ (x - self.mean_[:, None])
        return np.einsum("kc,ect->ekt", self.filters_, x - self.mean_[None, :, None])

    def transform(self, inst: Any) -> np.ndarray:
        """Source time courses as an array.

        Every sample is transformed, those under ``BAD`` annotations included (as
        :meth:`mne.preprocessing.ICA.get_sources`), so the output stays aligned with
        ``inst``; annotations only decide what :meth:`fit` learns from.

        Parameters
        ----------
        inst : mne.io.Raw | mne.Epochs
            Data with (at least) the channels used at fit time.

        Returns
        -------
        sources : ndarray, shape (n_sources, n_times) or (n_epochs, n_sources, n_times)
        """
        check_is_fitted(self, "filters_")
        _io._kind(inst, "inst")
        return self._sources_array(inst)

    def get_sources(self, inst: Any) -> Any:
        """Source time courses as an instance of the same type, one ``misc`` channel per source.

        Every sample is transformed (see :meth:`transform`); a Raw's annotations
        are copied to the output.

        Parameters
        ----------
        inst : mne.io.Raw | mne.Epochs
            Data with (at least) the channels used at fit time.

        Returns
        -------
        sources : mne.io.RawArray | mne.EpochsArray
            Channels ``CRL000``, ``CRL001``, ... (type ``misc``), same timing.
        """
        import mne

        check_is_fitted(self, "filters_")
        kind = _io._kind(inst, "inst")
        data = self._sources_array(inst)
        names = [f"CRL{i:03d}" for i in range(self.filters_.shape[0])]
        info = mne.create_info(names, inst.info["sfreq"], ch_types="misc")
        if kind == "raw":
            out = mne.io.RawArray(data, info, first_samp=inst.first_samp, verbose=False)
            # Same measurement date first: annotations with an orig_time need it.
            out.set_meas_date(inst.info["meas_date"])
            if inst.annotations is not None and len(inst.annotations):
                out.set_annotations(inst.annotations.copy())
            return out
        return mne.EpochsArray(
            data, info, events=inst.events.copy(), tmin=inst.tmin,
            event_id=dict(inst.event_id), metadata=inst.metadata, verbose=False,
        )

    def to_stc(self, inst: Any, forward: Any) -> Any:
        """Source estimate with the source time courses at their localised vertices.

        Parameters
        ----------
        inst : mne.io.Raw | mne.Epochs
            Data with the channels used at fit time.
        forward : mne.Forward
            Surface-source-space forward used to localise the sources.

        Returns
        -------
        stc : mne.SourceEstimate | list of mne.SourceEstimate
            Dipole moment time courses (A·m) at the vertices of the localised
            sources (sources at the same vertex are summed); a list (one per
            epoch) for Epochs.
        """
        import mne

        check_is_fitted(self, "filters_")
        kind = _io._kind(inst, "inst")
        self.localize(forward)
        src = forward["src"]
        if len(src) != 2 or any(s["type"] != "surf" for s in src):
            raise ValueError("forward must have a two-hemisphere surface source space for to_stc")
        n_lh = len(src[0]["vertno"])
        hemi = (self.source_vertices_ >= n_lh).astype(int)
        vert = np.where(hemi == 0, src[0]["vertno"][np.minimum(self.source_vertices_, n_lh - 1)],
                        src[1]["vertno"][np.maximum(self.source_vertices_ - n_lh, 0)])
        keys = sorted(set(zip(hemi.tolist(), vert.tolist())))
        rows = np.array([keys.index((h, v)) for h, v in zip(hemi, vert)])
        vertices = [np.array([v for h, v in keys if h == 0], int), np.array([v for h, v in keys if h == 1], int)]
        data = self._sources_array(inst)
        scale = self.source_amplitude_

        def one(d: np.ndarray) -> Any:
            out = np.zeros((len(keys), d.shape[-1]))
            np.add.at(out, rows, d * scale[:, None])
            return mne.SourceEstimate(out, vertices, tmin=tmin, tstep=1.0 / inst.info["sfreq"],
                                      subject=src[0].get("subject_his_id"))

        if kind == "raw":
            tmin = inst.times[0] + inst.first_samp / inst.info["sfreq"]
            return one(data)
        tmin = inst.tmin
        return [one(d) for d in data]

    # ---------------------------------------------------------------- plots
    def plot_components(self, show: bool = False) -> Any:
        """Topographic maps of the source patterns (``patterns_``).

        Returns
        -------
        fig : matplotlib.figure.Figure
        """
        from crl_neuro.meeg.viz import plot_patterns

        check_is_fitted(self, "patterns_")
        return plot_patterns(self.patterns_, self.info_, gof=getattr(self, "source_gof_", None), show=show)

    def plot_network(self, show: bool = False) -> Any:
        """Markov network of the sources; changing edges highlighted.

        Returns
        -------
        fig : matplotlib.figure.Figure
        """
        from crl_neuro.meeg.viz import plot_source_network

        check_is_fitted(self, "markov_network_")
        return plot_source_network(self.markov_network_, self.changing_edges_, self.session_precisions_,
                                   session_labels=self.sessions_, show=show)

    def to_report(self, report: Any, title: str = "SessionCRL") -> Any:
        """Add the component topographies, the network (and, after :meth:`bootstrap`, the
        sources' stability table) to an :class:`mne.Report`.

        Parameters
        ----------
        report : mne.Report
        title : str
            Section title prefix.

        Returns
        -------
        report : mne.Report
            The same report (modified in place, as MNE does).
        """
        import matplotlib.pyplot as plt
        import mne

        check_is_fitted(self, "patterns_")
        if not isinstance(report, mne.Report):
            raise TypeError(f"report must be an mne.Report, got {type(report).__name__}")
        fig = self.plot_components()
        report.add_figure(fig, title=f"{title}: source patterns", section=title)
        plt.close(fig)
        fig = self.plot_network()
        n_edges = int(self.markov_network_.sum() // 2)
        n_chg = int(self.changing_edges_.sum() // 2)
        report.add_figure(fig, title=f"{title}: source network", section=title,
                          caption=f"{n_edges} edges, {n_chg} changing across {len(self.sessions_)} sessions")
        plt.close(fig)
        if hasattr(self, "source_confidence_"):
            report.add_html(self.source_confidence_.round(3).to_html(),
                            title=f"{title}: source stability (bootstrap)", section=title)
        return report

    # ---------------------------------------------------------- persistence
    def _params_to_json(self) -> tuple[dict[str, Any], dict[str, bytes]]:
        # The noise_cov parameter (an mne.Covariance) is stored as a FIF file.
        params, files = super()._params_to_json()
        cov = params.get("noise_cov")
        if cov is not None:
            with tempfile.TemporaryDirectory() as tmp:
                fname = os.path.join(tmp, "noise-cov.fif")
                cov.save(fname, verbose=False)
                with open(fname, "rb") as f:
                    files["noise-cov.fif"] = f.read()
            params["noise_cov"] = None
        prior = params.get("prior")
        if isinstance(prior, LeadfieldPrior):
            params["prior"] = {"LeadfieldPrior": {"weight": prior.weight, "radius": prior.radius}}
        elif prior is not None and not isinstance(prior, str):
            raise TypeError(f"SessionCRL.save: prior={prior!r} cannot be saved (only 'leadfield', None "
                            "and LeadfieldPrior objects are); refit after loading with your prior")
        return params, files

    @classmethod
    def _params_from_json(cls, params: dict[str, Any], files: dict[str, bytes]) -> dict[str, Any]:
        import mne

        if "noise-cov.fif" in files:
            with tempfile.TemporaryDirectory() as tmp:
                fname = os.path.join(tmp, "noise-cov.fif")
                with open(fname, "wb") as f:
                    f.write(files["noise-cov.fif"])
                params["noise_cov"] = mne.read_cov(fname, verbose=False)
        prior = params.get("prior")
        if isinstance(prior, dict):
            if set(prior) != {"LeadfieldPrior"} or not isinstance(prior["LeadfieldPrior"], dict):
                raise ValueError(f"stored prior {prior!r} is not a LeadfieldPrior")
            kw = prior["LeadfieldPrior"]
            if set(kw) != {"weight", "radius"}:
                raise ValueError(f"stored LeadfieldPrior has fields {sorted(kw)}, expected weight and radius")
            params["prior"] = LeadfieldPrior(**kw)
        return params

    def _extra_state(self) -> dict[str, bytes]:
        # info_ is stored as a FIF file inside the archive.
        from mne.io import write_info

        out = {}
        if hasattr(self, "info_"):
            with tempfile.TemporaryDirectory() as tmp:
                fname = os.path.join(tmp, "info.fif")
                write_info(fname, self.info_)
                with open(fname, "rb") as f:
                    out["info.fif"] = f.read()
        return out

    def _set_extra_state(self, files: dict[str, bytes]) -> None:
        import mne
        from mne.io import read_info

        if "info.fif" in files:
            with tempfile.TemporaryDirectory() as tmp:
                fname = os.path.join(tmp, "info.fif")
                with open(fname, "wb") as f:
                    f.write(files["info.fif"])
                self.info_ = read_info(fname, verbose=False)
        if hasattr(self, "source_pos_"):
            self.dipoles_ = mne.Dipole(
                times=np.arange(len(self.source_pos_), dtype=float), pos=self.source_pos_,
                amplitude=self.source_amplitude_, ori=self.source_ori_, gof=self.source_gof_,
                name="crl_neuro leadfield scan", verbose=False,
            )
            if hasattr(self, "source_confidence_"):
                self.dipoles_.conf["vol"] = self.source_confidence_["vol_m3"].to_numpy()

    def _check_loaded(self) -> None:
        if hasattr(self, "info_") and hasattr(self, "patterns_"):
            n_ch = len(self.info_["ch_names"])
            if n_ch != self.patterns_.shape[0]:
                raise ValueError(f"info_ has {n_ch} channels but patterns_ has "
                                 f"{self.patterns_.shape[0]} rows")


def _check_noise_cov_channels(noise_cov: Any, info: Any) -> None:
    """Refuse a noise covariance that lacks some of the data's good channels (our message)."""
    missing = [ch for ch in info["ch_names"] if ch not in info["bads"] and ch not in noise_cov.ch_names]
    if missing:
        raise ValueError(
            f"noise_cov lacks {len(missing)} of the data's channels (e.g. {missing[:5]}); "
            "compute it on the same channels as insts (mne.compute_raw_covariance)"
        )
