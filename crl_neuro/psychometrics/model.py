"""LatentCausalModel: latents, their indicators and the causal structure among latents."""

from __future__ import annotations

import warnings
from typing import Any, ClassVar

import numpy as np
import pandas as pd
from joblib import Parallel, delayed
from sklearn.base import TransformerMixin

from crl_neuro.core.graphs import GraphMixin
from crl_neuro.core.base import (
    ArraySpec,
    BaseCRLEstimator,
    check_is_fitted,
    fill_doc,
    logger_verbosity,
)
from crl_neuro.core.validation import (
    check_choice,
    check_data,
    check_float,
    check_int,
    check_magnitude,
    check_n_features,
    check_n_jobs,
    check_real,
    check_seed,
)
from crl_neuro.psychometrics.clustering import (
    describe_impure_items,
    fit_cluster_model,
    parallel_analysis,
    propose_clusters,
    purify,
)
from crl_neuro.psychometrics.rank_tests import RankTester, correlation_matrix
from crl_neuro.psychometrics.structure import learn_latent_structure

__all__ = ["LatentCausalModel"]


# Below this many respondents per item the rank tests lose power (a documented warning).
_MIN_ROWS_PER_ITEM = 5

def _validate_table(data: Any, name: str = "data", allow_nan: bool = True) -> tuple[np.ndarray, list[str]]:
    """Numeric copy of a DataFrame/array and its column names, with clear errors."""
    if isinstance(data, pd.DataFrame):
        bad = [c for c in data.columns if not (pd.api.types.is_numeric_dtype(data[c]) or pd.api.types.is_bool_dtype(data[c]))]
        if bad:
            raise TypeError(
                f"{name} must contain numeric item responses; non-numeric column(s) {bad[:5]} "
                "(drop them or encode them as numbers)"
            )
        names = [str(c) for c in data.columns]
        for c in data.columns:
            check_real(data[c].to_numpy(), f"{name}[{c!r}]")
        X = data.to_numpy(dtype=float, na_value=np.nan, copy=True)
    else:
        if data is None:
            raise TypeError(f"{name} must be a DataFrame or 2D array of item responses, got None")
        # the shared checks (sparse, object, complex, dimensions), NaN = missing answer
        X = check_data(data, name, ndim=2, min_samples=1, min_features=1, allow_nan=allow_nan)
        names = [f"X{i + 1}" for i in range(X.shape[1])]
    check_magnitude(X, name, allow_nan=allow_nan)
    return X, names


def _check_duplicate_items(X: np.ndarray, names: list[str], name: str = "data") -> None:
    """Refuse items that repeat another item (up to sign and scale).

    Two identical items make the correlation matrix singular, and the rank tests and
    the score weights then blow up (weights of 1e4 and more) instead of failing.
    """
    with np.errstate(invalid="ignore", divide="ignore"):
        Z = (X - np.nanmean(X, axis=0)) / np.nanstd(X, axis=0)
    for j in range(1, Z.shape[1]):
        for i in range(j):
            for sign in (1.0, -1.0):
                if np.allclose(Z[:, i], sign * Z[:, j], atol=1e-10, equal_nan=True):
                    raise ValueError(
                        f"{name} has duplicate items {names[i]!r} and {names[j]!r} (equal up to "
                        "sign and scale); drop one of them"
                    )


@fill_doc
class LatentCausalModel(GraphMixin, TransformerMixin, BaseCRLEstimator):
    """Latent variables behind questionnaire items and the causal structure among them.

    A linear latent-variable model is assumed (RLCD setting, Dong et al. ICLR 2024):
    latents form a DAG, items are linear in the latents. The fit has three steps:

    1. **Clusters** — an exploratory factor analysis on the item correlations
       (parallel analysis, oblimin) proposes which items measure which latent; then
       items that break the rank-1 constraints of pure clusters (cross-loadings,
       item-to-item effects) are removed from the pure set and described.
    2. **Latent conditional independences** from rank deficiencies of item
       cross-covariances (t-separation; Bartlett's χ² test on canonical
       correlations of one-factor composites of each latent's pure items, 1 degree
       of freedom per constraint), fed to PC-stable over latents. Sets of >= 4
       latents that PC cannot separate but whose items satisfy one-factor (tetrad)
       rank constraints get a hidden common cause without items.
    3. **Equivalence class** — v-structures (decided with the max-p separating
       set) and Meek's rules; edges the data cannot orient stay undirected.

    Parameters
    ----------
    method : {"rlcd", "causallearn-rlcd", "gin"}
        ``"rlcd"``: the algorithm above. ``"causallearn-rlcd"`` and ``"gin"`` run
        causal-learn's implementations (for comparison; slower, fully directed
        output, see the benchmark).
    alpha : float
        Significance level of the rank tests.
    n_latents : int | None
        Number of measured latents; ``None`` chooses it by parallel analysis.
    missing : {"pairwise", "listwise"}
        Handling of NaN answers. Pairwise deletion (default) keeps every answer.
    min_loading : float
        Smallest absolute loading that assigns an item to a latent.
    min_residual : float
        Smallest residual correlation treated as impurity (real samples reject any
        exact model; this is the effect-size floor).
    max_cond : int
        Largest conditioning set of the PC search over latents.
    detect_hidden : bool
        Whether to search for latents without items.
    n_bootstrap : int
        Bootstrap resamples for edge stability (0 disables it).
    %(n_jobs)s
    %(random_state)s
    %(verbose)s

    Attributes
    ----------
    latents_ : list of dict
        ``{"name", "indicators", "pure_indicators", "hidden"}`` per latent; hidden
        latents (no items) have ``"children"`` instead of indicators.
    measurement_ : DataFrame, shape (n_items, n_measured_latents)
        Loadings (standardised items); 0 where a latent is not measured by an item.
    structure_ : DataFrame
        Equivalence class over measured then hidden latents:
        ``[a, b] != 0 and [b, a] == 0`` ⇒ a → b; both non-zero ⇒ undirected.
    latent_correlation_ : DataFrame
        Correlations of the measured latents, corrected for measurement error.
    clusters_ : dict
        Item -> the latent it mainly measures (its factor in the exploratory
        step; for items no factor claimed, the largest absolute loading; None if none).
    impure_items_ : list of str
        Items removed from the pure indicators.
    item_effects_ : list of list of str
        Pairs of items with a direct tie (cause not identified).
    edge_stability_ : DataFrame | None
        Bootstrap frequency of each latent pair being adjacent, a → b, b → a, or
        undirected (clusters fixed to the fitted ones).
    n_samples_used_ : int
        Effective sample size of the tests.
    """

    _graphs = {"structure": ("structure_", "cpdag")}

    # Checked by crl_neuro.load.
    _fitted_arrays: ClassVar[dict[str, ArraySpec]] = {
        "item_means_": ArraySpec("f", ("n_features_in_",)),
        "item_scales_": ArraySpec("f", ("n_features_in_",)),
        "score_weights_": ArraySpec("f", ("n_features_in_", None)),
    }

    def __init__(
        self,
        method: str = "rlcd",
        alpha: float = 0.01,
        n_latents: int | None = None,
        missing: str = "pairwise",
        min_loading: float = 0.3,
        min_residual: float = 0.1,
        max_cond: int = 3,
        detect_hidden: bool = True,
        n_bootstrap: int = 0,
        n_jobs: int | None = None,
        random_state: int | np.random.RandomState | None = 0,
        verbose: bool | int | str | None = 0,
    ) -> None:
        self.method = method
        self.alpha = alpha
        self.n_latents = n_latents
        self.missing = missing
        self.min_loading = min_loading
        self.min_residual = min_residual
        self.max_cond = max_cond
        self.detect_hidden = detect_hidden
        self.n_bootstrap = n_bootstrap
        self.n_jobs = n_jobs
        self.random_state = random_state
        self.verbose = verbose

    def __sklearn_tags__(self) -> Any:
        tags = super().__sklearn_tags__()
        tags.input_tags.allow_nan = True  # NaN is a missing answer (see ``missing``)
        return tags

    # ------------------------------------------------------------------ fit
    def _check_params(self) -> None:
        check_choice(self.method, "method", ["rlcd", "causallearn-rlcd", "gin"])
        check_float(self.alpha, "alpha", 0.0, 1.0, inclusive=False)
        if self.n_latents is not None:
            check_int(self.n_latents, "n_latents", min_value=1)
        check_choice(self.missing, "missing", ["pairwise", "listwise"])
        check_float(self.min_loading, "min_loading", 0.0, 1.0)
        check_float(self.min_residual, "min_residual", 0.0, 1.0)
        check_int(self.max_cond, "max_cond", min_value=0)
        check_int(self.n_bootstrap, "n_bootstrap", min_value=0)
        check_n_jobs(self.n_jobs)

    def _check_data(self, data: Any) -> tuple[np.ndarray, list[str]]:
        X, names = _validate_table(data, "data")
        n, p = X.shape
        if p < 4:
            raise ValueError(f"data needs at least 4 items (columns), got {p}")
        if n <= p:
            raise ValueError(
                f"data has {n} rows (respondents) for {p} items; need more respondents than items (n_samples={n})"
            )
        if n < _MIN_ROWS_PER_ITEM * p:
            warnings.warn(
                f"data has {n} respondents for {p} items (fewer than {_MIN_ROWS_PER_ITEM} per item): "
                "the rank tests have little power, so distinct latents may be merged into one",
                UserWarning, stacklevel=5,  # _check_data < fit < two wrappers < caller
            )
        if np.isnan(X).all(axis=0).any():
            bad = [names[i] for i in np.flatnonzero(np.isnan(X).all(axis=0))]
            raise ValueError(f"data has item(s) with no answers: {bad[:5]}")
        sd = np.nanstd(X, axis=0)
        if np.any(~(sd > 0)):
            bad = [names[i] for i in np.flatnonzero(~(sd > 0))]
            raise ValueError(f"data has constant item(s) {bad[:5]}; drop them (they carry no information)")
        _check_duplicate_items(X, names)
        if self.n_latents is not None and self.n_latents > p // 2:
            raise ValueError(
                f"n_latents={self.n_latents} is more than {p} items can measure: each latent "
                f"needs at least 2 items, so n_latents <= {p // 2}"
            )
        if self.missing == "listwise":
            n_complete = int((~np.isnan(X).any(axis=1)).sum())
            if n_complete <= p:
                raise ValueError(
                    f"missing='listwise' leaves {n_complete} complete rows for {p} items; "
                    "use missing='pairwise'"
                )
        return X, names

    def fit(self, data: Any, y: Any = None) -> "LatentCausalModel":
        """Find the latents, their indicators and the causal structure among them.

        Parameters
        ----------
        data : DataFrame or array, shape (n_respondents, n_items)
            Item responses (Likert or continuous; NaN = missing answer). Column
            names are kept as item names. Reverse-keyed items need no recoding.
        y : None
            Ignored.

        Returns
        -------
        self : LatentCausalModel

        Warns
        -----
        UserWarning
            If ``data`` has fewer than 5 respondents per item: the rank tests then
            lack power and distinct latents may be merged.
        """
        self._check_params()
        # One draw per fit: an int is kept as is (deterministic), None/RandomState draw.
        seed = check_seed(self.random_state)
        X, names = self._check_data(data)
        self.feature_names_in_ = names
        self.n_features_in_ = len(names)
        self.item_means_ = np.nanmean(X, axis=0)
        self.item_scales_ = np.nanstd(X, axis=0)
        if self.method != "rlcd":
            return self._fit_causallearn(X, names)
        R, n_eff = correlation_matrix(X, self.missing)
        self.n_samples_used_ = int(n_eff)
        labels, pure, removed, ties = _select_clusters(
            R, n_eff, self.n_latents, self.min_loading, self.alpha, self.min_residual, seed
        )
        k = len(pure)
        if k < 1:
            raise ValueError("no latent found: no item loads on a common factor (check the data)")
        main = {int(i): int(labels[i]) for i in range(len(names))}
        imp_load, effects = describe_impure_items(
            R, n_eff, pure, removed, main, min_loading=max(self.min_loading - 0.1, 0.1),
            alpha=self.alpha, min_residual=self.min_residual,
        )
        # an item removed for a rank-test tie has its tie as evidence; its
        # residual-based pairs are biased by that very tie, so they are dropped
        tied = {i for t in ties for i in t}
        effects = sorted(set(ties) | {e for e in effects if not (set(e) & tied)})
        lams, Phi = fit_cluster_model(R, pure)
        lat_names = [f"L{a + 1}" for a in range(k)]
        Lam = np.zeros((len(names), k))
        for a, (c, lam) in enumerate(zip(pure, lams)):
            Lam[c, a] = lam
        for r, i in enumerate(removed):
            Lam[i] = imp_load[r]
        tester = RankTester(R, n_eff)
        cpdag, h, groups = learn_latent_structure(
            tester, pure, alpha=self.alpha, max_cond=self.max_cond, detect_hidden=self.detect_hidden
        )
        all_names = lat_names + [f"H{g + 1}" for g in range(h)]
        self.measurement_ = pd.DataFrame(Lam, index=names, columns=lat_names)
        self.structure_ = pd.DataFrame(cpdag.astype(int), index=all_names, columns=all_names)
        self.latent_correlation_ = pd.DataFrame(Phi, index=lat_names, columns=lat_names)
        latents = []
        for a in range(k):
            latents.append({
                "name": lat_names[a],
                "indicators": [names[i] for i in np.flatnonzero(Lam[:, a] != 0)],
                "pure_indicators": [names[i] for i in pure[a]],
                "hidden": False,
            })
        for g, group in enumerate(groups):
            latents.append({"name": f"H{g + 1}", "indicators": [], "pure_indicators": [],
                            "hidden": True, "children": [lat_names[a] for a in group]})
        self.latents_ = latents
        # main latent: the EFA cluster when the item has one, else its largest loading
        assign = _main_assignment(self.measurement_)
        self.clusters_ = {nm: (lat_names[labels[i]] if labels[i] >= 0 else assign[nm]) for i, nm in enumerate(names)}
        self.impure_items_ = [names[i] for i in removed]
        self.item_effects_ = [[names[i], names[j]] for i, j in effects]
        self.n_rank_tests_ = int(tester.n_tests)
        self._set_score_weights(R, Lam, Phi)
        self.edge_stability_ = self._bootstrap(X, pure, all_names, groups, seed) if self.n_bootstrap else None
        return self

    def _set_score_weights(self, R: np.ndarray, Lam: np.ndarray, Phi: np.ndarray) -> None:
        # Regression (Thurstone) scores: E[L | x] = Phi Lam^T R^{-1} x on standardised items.
        self.score_weights_ = np.linalg.solve(R, Lam @ Phi)

    # ------------------------------------------------------------ bootstrap
    def _bootstrap(self, X, pure, all_names, groups, seed: int) -> pd.DataFrame:
        k_all = len(all_names)
        seeds = np.random.default_rng(seed).integers(0, 2 ** 31 - 1, self.n_bootstrap)
        # joblib's own messages follow the crl_neuro logger's level
        results = Parallel(n_jobs=self.n_jobs, verbose=5 * logger_verbosity())(
            delayed(_bootstrap_once)(X, pure, groups, k_all, self.alpha, self.max_cond,
                                     self.detect_hidden, self.missing, int(s))
            for s in seeds
        )
        acc = np.mean(np.stack(results), axis=0)  # (4, k, k): adj, fwd, bwd, undirected
        rows = []
        for a in range(k_all):
            for b in range(a + 1, k_all):
                rows.append({"source": all_names[a], "target": all_names[b],
                             "p_edge": acc[0, a, b], "p_forward": acc[1, a, b],
                             "p_backward": acc[2, a, b], "p_undirected": acc[3, a, b]})
        return pd.DataFrame(rows, columns=["source", "target", "p_edge", "p_forward", "p_backward", "p_undirected"])

    # ------------------------------------------------------ causal-learn path
    def _fit_causallearn(self, X: np.ndarray, names: list[str]) -> "LatentCausalModel":
        from crl_neuro.psychometrics.baselines import run_causallearn

        Xc = X[~np.isnan(X).any(axis=1)]  # causal-learn needs complete rows
        Xc = (Xc - Xc.mean(axis=0)) / Xc.std(axis=0)
        self.n_samples_used_ = int(Xc.shape[0])
        res = run_causallearn(Xc, names, method=self.method, alpha=self.alpha)
        lat_names = res["latents"]
        measured = [nm for nm in lat_names if res["indicators"][nm]]
        Lam = np.zeros((len(names), len(measured)))
        # causal-learn gives no loadings: use item-latent correlations via the clusters
        R, _ = correlation_matrix(Xc, "listwise")
        clusters = [[names.index(i) for i in res["indicators"][nm]] for nm in measured]
        if measured:
            lams, Phi = fit_cluster_model(R, clusters)
            for a, (c, lam) in enumerate(zip(clusters, lams)):
                Lam[c, a] = lam
        else:
            Phi = np.eye(0)
        self.measurement_ = pd.DataFrame(Lam, index=names, columns=measured)
        order = measured + [nm for nm in lat_names if nm not in measured]
        S = res["structure"].loc[order, order]
        self.structure_ = S.astype(int)
        self.latent_correlation_ = pd.DataFrame(Phi, index=measured, columns=measured)
        self.latents_ = [
            {"name": nm, "indicators": list(res["indicators"][nm]), "pure_indicators": list(res["indicators"][nm]),
             "hidden": not res["indicators"][nm]}
            for nm in order
        ]
        self.clusters_ = _main_assignment(self.measurement_)
        self.impure_items_ = []
        self.item_effects_ = []
        self.n_rank_tests_ = 0
        if measured:
            self._set_score_weights(R, Lam, Phi)
        else:
            self.score_weights_ = np.zeros((len(names), 0))
        self.edge_stability_ = None
        return self

    # ------------------------------------------------------------ transform
    def transform(self, data: Any) -> pd.DataFrame:
        """Latent scores (regression method) of the measured latents.

        Parameters
        ----------
        data : DataFrame or array, shape (n_respondents, n_items)
            Same items as in ``fit`` (DataFrame columns are matched by name).
            Missing answers are replaced by the item mean.

        Returns
        -------
        scores : DataFrame, shape (n_respondents, n_measured_latents)
        """
        check_is_fitted(self, "measurement_")
        if isinstance(data, pd.DataFrame):
            missing_cols = [c for c in self.feature_names_in_ if c not in set(map(str, data.columns))]
            if missing_cols:
                raise ValueError(f"data lacks item column(s) seen in fit: {missing_cols[:5]}")
            data = data.rename(columns=str)[self.feature_names_in_]
            index = data.index
        else:
            index = None
        X, _ = _validate_table(data, "data")
        check_n_features(X, self.n_features_in_, self, "data")
        Z = (X - self.item_means_) / self.item_scales_
        Z = np.where(np.isnan(Z), 0.0, Z)
        scores = Z @ self.score_weights_
        return pd.DataFrame(scores, index=index, columns=list(self.measurement_.columns))

    def fit_transform(self, data: Any, y: Any = None) -> pd.DataFrame:
        """Fit, then return the latent scores of ``data``."""
        return self.fit(data).transform(data)

    # ----------------------------------------------------------------- plot
    def plot(self, ax=None, show_items: bool = True, show_stability: bool = True):
        """Path diagram: latents (ellipses), items (boxes), loadings and latent edges.

        Parameters
        ----------
        ax : matplotlib Axes | None
            Axes to draw on (a new figure otherwise).
        show_items : bool
            Whether to draw the items and their loadings.
        show_stability : bool
            Whether to annotate latent edges with their bootstrap frequency.

        Returns
        -------
        fig : matplotlib Figure
        """
        check_is_fitted(self, "structure_")
        from crl_neuro.psychometrics.viz import plot_path_diagram

        return plot_path_diagram(self, ax=ax, show_items=show_items, show_stability=show_stability)


def _clusters_for(R, n, n_factors, min_loading, alpha, min_residual, random_state):
    labels, _ = propose_clusters(R, n, n_factors=n_factors, min_loading=min_loading, random_state=random_state)
    k = int(labels.max()) + 1 if (labels >= 0).any() else 0
    clusters = [list(map(int, np.flatnonzero(labels == a))) for a in range(k)]
    pure, removed, ties = purify(R, n, clusters, alpha=alpha, min_residual=min_residual)
    # items no factor claimed are described like impure ones (they may load on a
    # latent but also on something else, e.g. through another item)
    removed = removed + [int(i) for i in np.flatnonzero(labels < 0)]
    return labels, pure, removed, ties


def _select_clusters(R, n, n_latents, min_loading, alpha, min_residual, random_state, min_indicators=3):
    """Clusters from EFA with the number of factors chosen from the data.

    Parallel analysis gives an upper bound (it over-factors on large Likert
    samples, and an item-to-item effect creates a "doublet" factor); starting
    there, the number of factors decreases until every factor has at least
    ``min_indicators`` primary items, the smallest cluster whose purity can be
    tested on its own.
    """
    if n_latents is not None:
        return _clusters_for(R, n, n_latents, min_loading, alpha, min_residual, random_state)
    k_pa = max(1, parallel_analysis(R, n, random_state=random_state))
    for k in range(min(k_pa, R.shape[0] // 2), 0, -1):
        labels, _ = propose_clusters(R, n, n_factors=k, min_loading=min_loading, random_state=random_state)
        sizes = np.bincount(labels[labels >= 0], minlength=k)
        if int(labels.max()) + 1 == k and sizes.min() >= min_indicators:
            break
    return _clusters_for(R, n, k, min_loading, alpha, min_residual, random_state)


def _main_assignment(measurement: pd.DataFrame) -> dict[str, str | None]:
    """Item -> latent with its largest |loading| (None for items of no latent)."""
    out: dict[str, str | None] = {}
    A = measurement.to_numpy()
    for i, item in enumerate(measurement.index):
        out[str(item)] = str(measurement.columns[int(np.argmax(np.abs(A[i])))]) if np.any(A[i] != 0) else None
    return out


def _bootstrap_once(X, pure, groups, k_all, alpha, max_cond, detect_hidden, missing, seed) -> np.ndarray:
    """Structure on one bootstrap resample with the clusters fixed; returns edge indicators."""
    rng = np.random.default_rng(seed)
    Xb = X[rng.integers(0, X.shape[0], X.shape[0])]
    R, n_eff = correlation_matrix(Xb, missing)
    cpdag, h, bgroups = learn_latent_structure(
        RankTester(R, n_eff), pure, alpha=alpha, max_cond=max_cond, detect_hidden=detect_hidden
    )
    k = len(pure)
    # map bootstrap hidden latents onto the fitted ones by their children
    idx = list(range(k))
    for g in bgroups:
        match = [j for j, fg in enumerate(groups) if len(set(g) & set(fg)) * 2 > max(len(g), len(fg))]
        idx.append(k + match[0] if match else -1)
    G = np.zeros((k_all, k_all), dtype=int)
    for a in range(cpdag.shape[0]):
        for b in range(cpdag.shape[0]):
            if cpdag[a, b] and idx[a] >= 0 and idx[b] >= 0:
                G[idx[a], idx[b]] = 1
    adj = (G | G.T).astype(float)
    fwd = ((G == 1) & (G.T == 0)).astype(float)
    und = ((G == 1) & (G.T == 1)).astype(float)
    return np.stack([adj, fwd, fwd.T, und])
