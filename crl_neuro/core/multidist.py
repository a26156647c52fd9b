"""Causal representation learning from several distributions (linear mixing).

Zhang, Xie, Ng & Zheng (ICML 2024) show that when the causal relations among
latent variables change across distributions (domains: sessions, runs,
conditions), the Markov network of the latents is identifiable as the sparsest
one consistent with the data, and each latent is recovered up to a function of
itself and its *intimate neighbours*. With linear mixing this becomes a concrete
estimator: find an unmixing ``W`` under which the per-domain latent precision
matrices are *jointly* sparse.

Model and objective (per-sample, domains weighted by their sample share
``pi_d``)::

    min_{W, Theta_d}  sum_d pi_d [tr(Theta_d W C_d W^T) - log det Theta_d] - 2 log|det W|
                      + lam * sum_{i != j} || (Theta_d[i, j])_d ||_2

where ``C_d`` are the domain covariances in the whitened ``k``-dimensional
signal subspace. The group penalty over domains makes every domain share one
support (one Markov network) while edge strengths change freely.

Algorithm (:class:`MultiDistributionCRL`):

1. whitening and reduction to the ``k``-dimensional signal subspace of the
   pooled (domain-centred) covariance;
2. initialisation by approximate joint diagonalisation of the domain
   covariances (Pham's 2001 likelihood criterion, :func:`pham_ajd`), i.e. the
   best unmixing under an *empty* network;
3. global search (:func:`sparsity_search`): because a free precision per domain
   makes the Gaussian likelihood the same for every unmixing, the unmixing is
   chosen to minimise a smooth L0 proxy of the number of edges (log penalty on
   the domain-pooled squared partial correlations) plus the pooled total
   correlation of the latents (rules out degenerate mixtures), by L-BFGS from
   the joint diagonaliser and random restarts (``random_state``);
4. network: the group graphical lasso across domains (ADMM) at fixed unmixing,
   iteratively reweighted (local linear approximation of a log penalty, an
   L0-like criterion - the theory asks for the *sparsest* network, and plain L1
   prefers many small edges), with
   ``lam = c * sqrt(sum_d pi_d^2 / n_d) * (sqrt(D) + sqrt(2 log(k(k-1)/2)))``,
   the universal threshold of the group score under the null (``n_d`` the
   effective sample size, corrected for autocorrelation with Bartlett's
   formula). With ``sparsity="auto"``, ``c`` is chosen on a path by the extended
   BIC (gamma = 0.5) of the multi-domain Gaussian likelihood.

:func:`fit_joint_sparse` can also refine the unmixing by alternating the
Theta-step with exact block-coordinate steps on the rows of ``W`` (closed form:
quadratic plus ``log|det W|``; rows renormalised to unit pooled variance), with
an optional quadratic prior per row: :class:`crl_neuro.meeg.SessionCRL` uses it
to add the leadfield (physics) prior.

Assumptions: latents are (approximately) Gaussian within each domain and their
covariance changes across domains (at least two domains, more is better);
non-Gaussianity is not used. Domain means are removed (mean shifts are not used).
The result is identified up to permutation, sign and scale of the latents; the
intimate-neighbour limit of the theory applies (a latent may absorb part of a
neighbour that is adjacent to all its other neighbours). ``mixing="nonlinear"``
is the VAE estimator of the paper followed by this linear criterion applied to
its encoded latents (:mod:`crl_neuro.core.nonlinear`).
"""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
from sklearn.base import TransformerMixin

from crl_neuro.core.graphs import GraphMixin, intimate_neighbors
from crl_neuro.core.base import (
    ArraySpec,
    BaseCRLEstimator,
    check_is_fitted,
    fill_doc,
    logger,
    logger_verbosity,
)
from crl_neuro.core.changes import mechanism_changes
from crl_neuro.core.joint_sparse import (  # noqa: F401  (re-exported; session_crl uses them)
    _lambda_theory,
    effective_n,
    fit_joint_sparse,
    fit_linear_multidomain,
    pham_ajd,
    sparsity_search,
)
from crl_neuro.core.validation import (
    check_choice,
    check_data,
    check_domains,
    check_float,
    check_int,
    check_n_features,
    check_n_latents,
    check_random_state,
)

__all__ = [
    "MultiDistributionCRL",
    "IdentifiabilityWarning",
    "check_change_condition",
    "check_domain_condition",
    "min_domains_condition",
    "pham_ajd",
    "sparsity_search",
    "fit_joint_sparse",
    "effective_n",
]

_MIN_PER_DOMAIN_NONLINEAR = 20


class IdentifiabilityWarning(UserWarning):
    """The data violate a condition of the identifiability theory; results may not be identified."""


def min_domains_condition(markov_network: Any) -> int:
    """Number of domains the identifiability theory asks for: ``2 n + |M| + 1``.

    Zhang, Xie, Ng & Zheng (ICML 2024) identify the latent Markov network ``M`` (and
    each latent up to its intimate neighbours) when the latent distribution changes
    across at least ``2 n + |M| + 1`` domains in sufficiently different ways, with
    ``n`` latents and ``|M|`` undirected edges in ``M``.

    Parameters
    ----------
    markov_network : ndarray of bool, shape (n, n)
        Symmetric adjacency of the latent Markov network.

    Returns
    -------
    n_domains : int
        ``2 n + |M| + 1``.
    """
    m = np.asarray(markov_network) != 0
    if m.ndim != 2 or m.shape[0] != m.shape[1]:
        raise ValueError(f"markov_network must be a square matrix, got shape {m.shape}")
    m = m | m.T
    np.fill_diagonal(m, False)
    return int(2 * m.shape[0] + m.sum() // 2 + 1)


def check_domain_condition(
    n_domains: int, n_latents: int, markov_network: Any = None, stacklevel: int = 2
) -> bool:
    """Warn when there are fewer domains than the theory's ``2 n + |M| + 1``.

    Zhang, Xie, Ng & Zheng (ICML 2024) identify the latent Markov network ``M`` and
    each latent up to its intimate neighbours from at least ``2 n + |M| + 1``
    sufficiently different domains (``n`` latents, ``|M|`` edges). Before a fit
    ``M`` is unknown and the bound with an empty network, ``2 n + 1``, is checked;
    after a fit the estimated network gives ``|M|``.

    Parameters
    ----------
    n_domains : int
        Number of distinct domains in the data.
    n_latents : int
        Number of latents ``n``.
    markov_network : array-like of bool, shape (n_latents, n_latents) | None
        (Estimated) Markov network; ``None`` counts no edge.
    stacklevel : int
        Passed to :func:`warnings.warn`.

    Returns
    -------
    ok : bool
        Whether the condition holds (False: an :class:`IdentifiabilityWarning` was issued).
    """
    needed = 2 * n_latents + 1
    if markov_network is not None:
        if np.shape(markov_network) != (n_latents, n_latents):
            raise ValueError(f"markov_network must have shape ({n_latents}, {n_latents}), "
                             f"got {np.shape(markov_network)}")
        needed = min_domains_condition(markov_network)
    n_edges = needed - 2 * n_latents - 1
    if n_domains >= needed:
        return True
    which = (f"|M| = {n_edges} edges of the estimated Markov network" if markov_network is not None
             else "|M| >= 0 before the network is known")
    warnings.warn(
        f"{n_domains} domains are fewer than the identifiability condition "
        f"n_domains >= 2 * n_latents + |M| + 1 = {needed} (n_latents = {n_latents}, {which}; "
        "Zhang et al., ICML 2024): the latents and their Markov network may not be "
        "identified. Use more domains (sessions, runs, conditions) or fewer latents.",
        IdentifiabilityWarning, stacklevel=stacklevel,
    )
    return False


def check_change_condition(markov_network: Any, changing_edges: Any, stacklevel: int = 2) -> bool:
    """Warn when no edge of the estimated Markov network changes across domains.

    The theory (Zhang, Xie, Ng & Zheng, ICML 2024) needs the causal relations of the
    latents to change sufficiently across domains. When the causal weights are the
    same in every domain, the innovations (a linear function of the latents) are an
    equally valid and sparser set of latents with an empty Markov network, so no
    method can recover the causal latents. This cannot be checked before a fit; after
    it, an estimated network without edges, or without any edge whose strength changes
    across domains (``changing_edges_``), is the symptom. Latents that are truly
    independent also give an empty network: then the warning is a false alarm.

    Parameters
    ----------
    markov_network : array-like of bool, shape (n_latents, n_latents)
        Estimated Markov network.
    changing_edges : array-like of bool, shape (n_latents, n_latents) | None
        Network edges whose strength changes across domains; ``None`` when unknown
        (then only an empty network warns).
    stacklevel : int
        Passed to :func:`warnings.warn`.

    Returns
    -------
    ok : bool
        False when an :class:`IdentifiabilityWarning` was issued.
    """
    net = np.asarray(markov_network) != 0
    if net.ndim != 2 or net.shape[0] != net.shape[1]:
        raise ValueError(f"markov_network must be a square matrix, got shape {net.shape}")
    net = np.triu(net | net.T, 1)
    n_edges = int(net.sum())
    if n_edges and changing_edges is not None:
        ch = np.asarray(changing_edges) != 0
        if ch.shape != net.shape:
            raise ValueError(f"changing_edges must have shape {net.shape}, got {ch.shape}")
        if (np.triu(ch | ch.T, 1) & net).any():
            return True
    elif n_edges:
        return True
    what = ("the estimated Markov network of the latents has no edge" if not n_edges else
            f"none of the {n_edges} edges of the estimated Markov network changes its strength "
            "across domains")
    warnings.warn(
        f"{what}: the identifiability condition of sufficient change (causal weights that "
        "change across domains; Zhang et al., ICML 2024) may be violated. When the causal "
        "weights are the same in every domain, the innovations are an equally valid, sparser "
        "set of latents, and the estimates may be those innovations rather than the causal "
        "latents (latents that are truly independent also give an empty network).",
        IdentifiabilityWarning, stacklevel=stacklevel,
    )
    return False


# --------------------------------------------------------------------------- #
# Estimator
# --------------------------------------------------------------------------- #
@fill_doc
class MultiDistributionCRL(GraphMixin, TransformerMixin, BaseCRLEstimator):
    """Latent variables with changing causal relations, learned across domains.

    Linear mixing ``x = A z + noise``: finds the unmixing under which the latent
    precision matrices of all domains are jointly sparse (one shared Markov
    network, edge strengths free per domain). See the module docstring for the
    objective, the algorithm and the assumptions.

    Parameters
    ----------
    n_latents : int
        Number of latent variables ``k``.
    mixing : {"linear", "nonlinear"}
        Mixing model. ``"linear"``: the joint-sparse unmixing described in the
        module docstring (numpy). ``"nonlinear"``: ``x = g(z)`` with ``g``
        injective and smooth, fitted by the VAE of Zhang et al. (2024) whose prior
        is a domain-conditioned flow per latent given its predecessors through a
        learnable adjacency with an L1 penalty, then the sparsest-Markov-network
        criterion applied to the encoded latents (torch; see
        :func:`crl_neuro.core.nonlinear.fit_nonlinear` and
        :func:`crl_neuro.core.nonlinear.refine_latents`). It needs at least 20
        samples per domain (the linear path 3), at least 2 domains and
        ``n_features >= n_latents`` (errors otherwise), and warns
        (:class:`IdentifiabilityWarning`) when there are fewer domains than the
        theory's ``2 * n_latents + |M| + 1`` (``|M|`` edges of the Markov network:
        checked with ``|M| = 0`` before the fit and with the estimated network after)
        and, when there are enough, also when the estimated network has no edge whose
        strength changes across domains (the theory's sufficient-change condition,
        :func:`check_change_condition`).
    sparsity : "auto" | float
        Penalty on the latent Markov network. Linear: ``"auto"`` uses the theory
        penalty (universal threshold of the group score, see
        :func:`fit_joint_sparse`) during refinement and extended BIC over a
        penalty path for the network; a float ``c >= 0`` uses ``c`` times the
        theory penalty throughout. Nonlinear: final weight of the L1 penalty on
        the adjacency (``"auto"`` = 1.0, reached after a warm-up and a ramp).
    max_iter : int | "auto" | None
        Linear: maximum number of alternations (default 100). Nonlinear: maximum
        number of epochs (default 200); ``"auto"`` (nonlinear only) sets it from
        the data size, about 4000 optimiser steps within 100-800 epochs
        (:func:`crl_neuro.core.nonlinear.auto_epochs`); not the default: on the
        benchmark family it lowered the network F1 (0.417 vs 0.441) and the worst
        draw, while it helped on small data sets and halved the time of 20 domains
        x 1000 samples (``benchmarks/bench_nonlinear.py``).
    %(device)s
    %(random_state)s
    %(verbose)s
    n_init : int
        Nonlinear mixing only: number of VAE trainings from different seeds; the
        one with the best validation objective is kept (a full training of 6
        latents x 20 domains x 1000 samples took 38 s on 2 CPU threads; with 1
        training the benchmark's Y and dense problems were not reliably
        recovered; see ``restart_fraction`` for their cost). The linear path
        always runs its own restarts (:func:`sparsity_search`).
    restart_fraction : float | None
        Nonlinear mixing with ``n_init > 1`` only: successive halving of the
        restarts. Every restart is trained for the first
        ``ceil(restart_fraction * max_iter)`` epochs, the one with the best
        validation objective at that epoch is continued to the end (the same
        schedule, as if it had not paused) and the others are dropped, so the
        restarts cost ``n_init * restart_fraction`` trainings instead of
        ``n_init``. ``None``: every restart is trained to the end and the best
        final validation objective is kept. Default 0.2, the end of the warm-up:
        on the benchmark family (draws 0-19) as accurate as training every
        restart to the end (free-latent MCC 0.715 vs 0.720 mean, network F1
        0.441 vs 0.439, same worst draws) in 0.44 of the time
        (``benchmarks/bench_nonlinear.py``).

    Attributes
    ----------
    unmixing_ : ndarray, shape (n_latents, n_features)
        ``transform(X) = (X - mean_) @ unmixing_.T`` (linear mixing only; so are
        ``mixing_``, ``mean_``, ``n_eff_`` and ``penalty_``).
    module_ : torch.nn.Module
        Trained VAE (nonlinear mixing only; ``config_`` rebuilds it, ``adjacency_``
        is its learned latent adjacency ``[j, i]``: ``j -> i``, ``history_`` the
        per-epoch losses, ``edge_strength_`` the root-mean-square over domains of
        the partial correlations of the refined latents; see
        :func:`crl_neuro.core.nonlinear.refine_latents`).
    mixing_ : ndarray, shape (n_features, n_latents)
        Pseudo-inverse of the unmixing (sensor patterns of the latents).
    mean_ : ndarray, shape (n_features,)
        Mean removed before unmixing.
    markov_network_ : ndarray, shape (n_latents, n_latents) bool
        Estimated Markov network of the latents (symmetric, False diagonal).
    intimate_neighbors_ : list of ndarray of int
        ``intimate_neighbors_[i]``: the intimate neighbours of latent ``i`` in
        ``markov_network_`` (neighbours adjacent to all of ``i``'s other
        neighbours; :func:`crl_neuro.core.graphs.intimate_neighbors`). Under the
        theory a latent is recovered only up to a mixture with these. Derived from
        ``markov_network_`` whenever read (so also after :func:`crl_neuro.load`).
    identified_latents_ : ndarray, shape (n_latents,) bool
        Latents identified component-wise according to the estimated network:
        those without intimate neighbours (e.g. the inner latents of a chain, not
        its ends). As the network is itself an estimate, so is this.
    domain_precisions_ : ndarray, shape (n_domains, n_latents, n_latents)
        Sparse per-domain latent precision matrices.
    changing_edges_ : ndarray, shape (n_latents, n_latents) bool
        Network edges whose causal strength differs across domains, a change of
        a latent's own variance alone not counting
        (:func:`crl_neuro.core.changes.mechanism_changes`, BH-FDR 0.05).
    domains_ : ndarray, shape (n_domains,)
        Domain labels in the order of ``domain_precisions_``.
    n_eff_ : ndarray, shape (n_domains,)
        Effective sample sizes used for the penalty and the tests.
    penalty_ : float
        Penalty of the selected network.
    n_iter_ : int
        Number of alternations run.

    Examples
    --------
    >>> est = MultiDistributionCRL(n_latents=4).fit(X, domains)  # doctest: +SKIP
    >>> Z = est.transform(X)  # doctest: +SKIP
    """

    _graphs = {"markov": ("markov_network_", "undirected"), "changing": ("changing_edges_", "cpdag")}

    def _graph_node_names(self, which: str, n_nodes: int) -> list[str]:
        return [f"z{i}" for i in range(n_nodes)]

    # Checked by crl_neuro.load: k latents, d domains. The linear arrays are absent
    # with mixing="nonlinear", the precision/change arrays without the refinement.
    _fitted_arrays: ClassVar[dict[str, ArraySpec]] = {
        "mean_": ArraySpec("f", ("n_features_in_",), optional=True),
        "unmixing_": ArraySpec("f", ("k", "n_features_in_"), optional=True),
        "mixing_": ArraySpec("f", ("n_features_in_", "k"), optional=True),
        "markov_network_": ArraySpec("b", ("k", "k")),
        "changing_edges_": ArraySpec("b", ("k", "k"), optional=True),
        "domain_precisions_": ArraySpec("f", ("d", "k", "k"), optional=True),
        "adjacency_": ArraySpec("f", ("k", "k"), optional=True),
        "domains_": ArraySpec("", ("d",)),
        "n_eff_": ArraySpec("f", ("d",), optional=True),
    }

    def __init__(
        self,
        n_latents: int,
        mixing: str = "linear",
        sparsity: Any = "auto",
        max_iter: int | str | None = None,
        device: str = "cpu",
        random_state: int | np.random.RandomState | None = None,
        verbose: bool | int | str | None = 0,
        n_init: int = 3,
        restart_fraction: float | None = 0.2,
    ) -> None:
        self.n_latents = n_latents
        self.mixing = mixing
        self.sparsity = sparsity
        self.max_iter = max_iter
        self.n_init = n_init
        self.restart_fraction = restart_fraction
        self.device = device
        self.random_state = random_state
        self.verbose = verbose

    @property
    def intimate_neighbors_(self) -> list[np.ndarray]:
        """Intimate neighbours of every latent in the estimated Markov network."""
        check_is_fitted(self, "markov_network_")
        return intimate_neighbors(self.markov_network_)

    @property
    def identified_latents_(self) -> np.ndarray:
        """Latents without intimate neighbours (identified component-wise)."""
        return np.array([nb.size == 0 for nb in self.intimate_neighbors_], dtype=bool)

    def _check_params(self) -> None:
        check_choice(self.mixing, "mixing", ["linear", "nonlinear"])
        if not (isinstance(self.sparsity, str) and self.sparsity == "auto"):
            if isinstance(self.sparsity, str):
                raise ValueError(f"sparsity must be 'auto' or a number >= 0, got {self.sparsity!r}")
            check_float(self.sparsity, "sparsity", min_value=0.0)
        if isinstance(self.max_iter, str):
            if self.max_iter != "auto" or self.mixing != "nonlinear":
                raise ValueError(f"max_iter must be None, an int >= 1 or (mixing='nonlinear') "
                                 f"'auto', got {self.max_iter!r} with mixing={self.mixing!r}")
        elif self.max_iter is not None:
            check_int(self.max_iter, "max_iter", min_value=1)
        check_choice(self.device, "device", ["cpu", "cuda", "auto"])
        check_int(self.n_init, "n_init", min_value=1)
        if self.restart_fraction is not None:
            check_float(self.restart_fraction, "restart_fraction", min_value=0.0, max_value=1.0,
                        inclusive=False)
        check_random_state(self.random_state)

    def fit(self, X: Any, domains: Any, init_unmixing: Any = None) -> "MultiDistributionCRL":
        """Fit the unmixing and the latent Markov network.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)
            Observations, rows in time order within each domain if temporal
            (used only for the effective-sample-size correction).
        domains : array-like, shape (n_samples,)
            Domain label of each sample; at least two distinct labels.
        init_unmixing : array-like, shape (n_latents, n_features) | None
            Optional first start of the search (e.g. from physics); by default
            the approximate joint diagonaliser of the domain covariances.

        Returns
        -------
        self : MultiDistributionCRL
        """
        self._check_params()
        X = check_data(X, "X", ndim=2, min_samples=3)
        # The VAE of the nonlinear path needs far more samples than the covariances of the
        # linear one: with a handful per domain it would train, silently, on noise.
        min_per = _MIN_PER_DOMAIN_NONLINEAR if self.mixing == "nonlinear" else 3
        if self.mixing == "nonlinear":
            labels, codes = check_domains(domains, X.shape[0], min_domains=1, min_per_domain=min_per)
            if labels.size < 2:
                raise ValueError(
                    f"domains has a single distinct value ({labels[0]!r}); mixing='nonlinear' "
                    "identifies the latents only from changes of their distribution across "
                    "domains and needs at least 2 (the theory asks for 2 * n_latents + |M| + 1, "
                    "|M| the number of Markov-network edges; Zhang et al., ICML 2024)"
                )
            check_int(self.n_latents, "n_latents", min_value=1)
            if self.n_latents > X.shape[1]:
                raise ValueError(
                    f"n_latents={self.n_latents} exceeds the number of observed features "
                    f"({X.shape[1]}): mixing='nonlinear' assumes an injective mixing x = g(z), "
                    "which needs n_features >= n_latents; reduce n_latents or provide more features"
                )
        else:
            labels, codes = check_domains(domains, X.shape[0], min_per_domain=min_per)
        k = check_n_latents(self.n_latents, X, "n_latents")
        if self.mixing == "nonlinear":
            if init_unmixing is not None:
                raise ValueError("init_unmixing is only used with mixing='linear'")
            # (stacklevel 5: past the verbose and roll-back wrappers of fit, to the caller)
            # the empty-network bound first (cheap, before training); the estimated
            # network's bound after the fit, only if this one held
            if check_domain_condition(labels.size, k, stacklevel=5):
                self._fit_nonlinear(X, labels, codes, k)
                if check_domain_condition(labels.size, k, self.markov_network_, stacklevel=5):
                    # the other condition, sufficient change, shows only after the fit
                    check_change_condition(self.markov_network_,
                                           getattr(self, "changing_edges_", None), stacklevel=5)
                return self
            return self._fit_nonlinear(X, labels, codes, k)
        res = fit_linear_multidomain(
            X, codes, labels.size, k, sparsity=self.sparsity,
            max_iter=100 if self.max_iter is None else self.max_iter,
            random_state=self.random_state, init_unmixing=init_unmixing,
        )
        self.mean_ = res["mean"]
        self.n_features_in_ = X.shape[1]
        self.unmixing_ = res["unmixing"]
        self.mixing_ = np.linalg.pinv(self.unmixing_)
        self.domain_precisions_ = res["precisions"]
        self.markov_network_ = res["network"]
        self.changing_edges_ = mechanism_changes(
            res["covariances"], res["n_eff_latents"], res["network"]
        ).changing_edges
        self.domains_ = labels
        self.n_eff_ = res["n_eff"]
        self.penalty_ = float(res["lam"])
        self.n_iter_ = int(res["n_iter"])
        logger.info(
            "MultiDistributionCRL: %d iterations, %d edges, penalty %.3g",
            self.n_iter_, int(self.markov_network_.sum() // 2), self.penalty_,
        )
        return self

    def transform(self, X: Any) -> np.ndarray:
        """Latent estimates ``(X - mean_) @ unmixing_.T``.

        Parameters
        ----------
        X : array-like, shape (n_samples, n_features)

        Returns
        -------
        Z : ndarray, shape (n_samples, n_latents)
        """
        check_is_fitted(self, "markov_network_")
        X = check_data(X, "X", ndim=2, min_samples=1)
        check_n_features(X, self.n_features_in_, self)
        if self.mixing == "nonlinear":
            from crl_neuro.core.nonlinear import encode

            return encode(self.module_, X, "cpu")
        return (X - self.mean_) @ self.unmixing_.T

    def _fit_nonlinear(
        self, X: np.ndarray, labels: np.ndarray, codes: np.ndarray, k: int
    ) -> "MultiDistributionCRL":
        from crl_neuro.core.nonlinear import fit_nonlinear

        module, info = fit_nonlinear(
            X, codes, k,
            sparsity=1.0 if isinstance(self.sparsity, str) else float(self.sparsity),
            max_iter=200 if self.max_iter is None else self.max_iter,
            device=self.device, random_state=self.random_state, verbose=logger_verbosity(),
            n_init=self.n_init, restart_fraction=self.restart_fraction,
        )
        self.module_ = module.cpu().eval()
        self.config_ = dict(info["config"])
        self.adjacency_ = np.asarray(info["adjacency"], float)
        self.markov_network_ = np.asarray(info["markov_network"], bool)
        if "domain_precisions" in info:  # the sparsity refinement ran (default)
            self.domain_precisions_ = np.asarray(info["domain_precisions"], float)
            self.changing_edges_ = np.asarray(info["changing_edges"], bool)
            self.edge_strength_ = np.asarray(info["edge_strength"], float)
        self.history_ = {key: list(v) for key, v in info["history"].items()}
        self.n_iter_ = int(info["n_iter"])
        self.domains_ = labels
        self.n_features_in_ = X.shape[1]
        return self

    def _build_modules(self, meta: dict[str, Any]) -> dict[str, Any]:
        from crl_neuro.core.nonlinear import build_module

        return {"module_": build_module(self.config_)}

    def fit_transform(self, X: Any, domains: Any) -> np.ndarray:
        """Fit and return the latents of ``X``."""
        return self.fit(X, domains).transform(X)
