"""HTML reports of fitted crl_neuro estimators (:class:`mne.Report` building blocks).

A report has up to four parts, each available on its own:

* the estimator's own figures, from its ``to_report(report, title=...)`` method
  (SessionCRL: source patterns and network; CausalROIs: ROI map and graph);
* the identifiability advisor's verdict for the estimator's setting
  (:func:`crl_neuro.core.advisor.advise`), :func:`add_advisor_section`;
* a benchmark against the ground truth when it is known (simulations),
  :func:`truth_scores` / :func:`add_truth_section`, computed with
  :mod:`crl_neuro.core.metrics`;
* a methods paragraph with citations, :func:`methods_paragraph`.

:func:`make_report` assembles them into one HTML file; ``crl-neuro report``
(:func:`crl_neuro.cli.cmd_report`) checks its inputs and calls it. The dependency goes
one way: the CLI imports this module, never the reverse.
"""

from __future__ import annotations

import html
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "methods_paragraph",
    "truth_scores",
    "add_truth_section",
    "add_advisor_section",
    "add_methods_section",
    "add_group_section",
    "make_report",
]

# ----------------------------------------------------------------------------- citations
_REFS = {
    "zhang2024": "Zhang, K., Xie, S., Ng, I., & Zheng, Y. (2024). Causal representation learning "
                 "from multiple distributions: a general setting. ICML.",
    "gramfort2013": "Gramfort, A. et al. (2013). MEG and EEG data analysis with MNE-Python. "
                    "Frontiers in Neuroscience, 7, 267.",
    "mosher1999": "Mosher, J. C., & Leahy, R. M. (1999). Source localization using recursively "
                  "applied and projected (RAP) MUSIC. IEEE Trans. Signal Processing, 47(2), 332-340.",
    "friedman2008": "Friedman, J., Hastie, T., & Tibshirani, R. (2008). Sparse inverse covariance "
                    "estimation with the graphical lasso. Biostatistics, 9(3), 432-441.",
    "pham2001": "Pham, D.-T. (2001). Joint approximate diagonalization of positive definite "
                "Hermitian matrices. SIAM J. Matrix Anal. Appl., 22(4), 1136-1152.",
    "foygel2010": "Foygel, R., & Drton, M. (2010). Extended Bayesian information criteria for "
                  "Gaussian graphical models. NeurIPS.",
    "bh1995": "Benjamini, Y., & Hochberg, Y. (1995). Controlling the false discovery rate. "
              "J. R. Stat. Soc. B, 57(1), 289-300.",
    "rubenstein2017": "Rubenstein, P. K. et al. (2017). Causal consistency of structural equation "
                      "models. UAI.",
    "beckers2019": "Beckers, S., & Halpern, J. Y. (2019). Abstracting causal models. AAAI.",
    "beckers2019b": "Beckers, S., Eberhardt, F., & Halpern, J. Y. (2019). Approximate causal "
                    "abstraction. UAI.",
    "abraham2014": "Abraham, A. et al. (2014). Machine learning for neuroimaging with "
                   "scikit-learn. Frontiers in Neuroinformatics, 8, 14.",
    "ward1963": "Ward, J. H. (1963). Hierarchical grouping to optimize an objective function. "
                "JASA, 58(301), 236-244.",
    "granger1969": "Granger, C. W. J. (1969). Investigating causal relations by econometric models "
                   "and cross-spectral methods. Econometrica, 37(3), 424-438.",
    "efron2004": "Efron, B. (2004). Large-scale simultaneous hypothesis testing: the choice of a "
                 "null hypothesis. JASA, 99(465), 96-104.",
    "dong2024": "Dong, X., Huang, B., Ng, I., Song, X., Zheng, Y., Jin, S., Legaspi, R., Spirtes, P., "
                "& Zhang, K. (2024). A versatile causal discovery framework to allow causally-related "
                "hidden variables. ICLR.",
    "zheng2024": "Zheng, Y., Huang, B., Chen, W., Ramsey, J., Gong, M., Cai, R., Shimizu, S., "
                 "Spirtes, P., & Zhang, K. (2024). Causal-learn: causal discovery in Python. JMLR, 25.",
}


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.3g}"
    return str(value)


def _methods_sessioncrl(est: Any) -> tuple[str, list[str]]:
    n_sess = len(getattr(est, "sessions_", [])) or "several"
    n_ch = getattr(est, "patterns_", np.zeros((0, 0))).shape[0] or "the"
    txt = (
        f"Brain sources were estimated with SessionCRL (crl_neuro) with {est.n_sources} sources "
        f"from {n_sess} sessions and {n_ch} channels. Sessions were treated as distinct "
        "distributions in which the causal relations among sources may change; under sufficient "
        "change the Markov network of the latent sources is identifiable and each source is "
        "recovered up to a function of itself and its intimate neighbours [1]. Data were whitened "
        "with the noise covariance following MNE-Python conventions [2]; candidate sources were "
        "initialised by a scan of the forward model's leadfield (RAP-MUSIC) [3] and refined under "
        "a joint sparsity penalty on the per-session source precision matrices "
        f"(graphical-lasso type [4]; sparsity={_fmt(est.sparsity)}, with the network selected by "
        "an extended BIC [5]). Edges whose partial correlation changes across sessions were "
        "tested for heterogeneity with Benjamini-Hochberg false-discovery-rate control [6]; "
        "sources were localised by fitting their sensor patterns to the leadfield."
    )
    return txt, ["zhang2024", "gramfort2013", "mosher1999", "friedman2008", "foygel2010", "bh1995"]


def _methods_causalrois(est: Any) -> tuple[str, list[str]]:
    err = getattr(est, "abstraction_error_", None)
    txt = (
        f"Regions of interest were learned with CausalROIs (crl_neuro; {est.n_rois} ROIs) as a "
        "constructive causal abstraction of the voxel-level dynamics: a partition of voxels into "
        "macro variables such that intervening then abstracting agrees with abstracting then "
        "intervening [1, 2], with the approximation error measured as in [3]. Images were masked "
        "and cleaned with Nilearn [4]; voxels without coherent signal were left as background by "
        "a robust empirical-null rule [5]. Voxels were grouped by causal-role signatures (time "
        "course and innovation directions per run) with spatially constrained Ward clustering [6] "
        "followed by abstraction-aware merging. The ROI graph was estimated by conditional "
        "Granger causality with run-specific coefficients [7]."
    )
    if err is not None:
        txt += f" The relative abstraction error of the learned partition was {float(err):.3f}."
    return txt, ["rubenstein2017", "beckers2019", "beckers2019b", "abraham2014", "efron2004",
                 "ward1963", "granger1969"]


def _methods_multidist(est: Any) -> tuple[str, list[str]]:
    n_dom = len(getattr(est, "domains_", [])) or "several"
    txt = (
        f"Latent variables ({est.n_latents}) were estimated with MultiDistributionCRL (crl_neuro) "
        f"from {n_dom} domains with a linear mixing: the unmixing under which the per-domain latent "
        "precision matrices are jointly sparse identifies the latent Markov network and each latent "
        "up to its intimate neighbours [1]. The unmixing was initialised by joint approximate "
        "diagonalisation of the domain covariances [2], the sparse precisions were estimated with a "
        "group graphical-lasso penalty [3] selected by an extended BIC [4], and changing edges were "
        "tested with false-discovery-rate control [5]."
    )
    return txt, ["zhang2024", "pham2001", "friedman2008", "foygel2010", "bh1995"]


def _methods_latentcausal(est: Any) -> tuple[str, list[str]]:
    txt = (
        f"Latent variables and their causal structure were estimated with LatentCausalModel "
        f"(crl_neuro; method={getattr(est, 'method', 'rlcd')!r}) using rank-deficiency constraints "
        "on the item covariances [1] as implemented with causal-learn [2]."
    )
    return txt, ["dong2024", "zheng2024"]


_METHODS = {
    "SessionCRL": _methods_sessioncrl,
    "CausalROIs": _methods_causalrois,
    "MultiDistributionCRL": _methods_multidist,
    "LatentCausalModel": _methods_latentcausal,
}


def methods_paragraph(estimator: Any, references: bool = True) -> str:
    """A methods paragraph with numbered citations describing a fitted estimator.

    Parameters
    ----------
    estimator : crl_neuro estimator
        Fitted (values such as the number of sessions are read from it) or not.
    references : bool
        Append the numbered reference list.

    Returns
    -------
    text : str
        Plain text, ready for a manuscript (edit to taste).
    """
    name = type(estimator).__name__
    maker = _METHODS.get(name)
    if maker is None:
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in sorted(estimator.get_params(deep=False).items())
                           if isinstance(v, (int, float, str, bool, type(None))))
        text = f"The analysis used {name} from crl_neuro ({params})."
        keys: list[str] = []
    else:
        text, keys = maker(estimator)
    from crl_neuro import __version__

    text += f" Analyses used crl_neuro {__version__}."
    if references and keys:
        text += "\n\nReferences\n" + "\n".join(f"[{i}] {_REFS[k]}" for i, k in enumerate(keys, 1))
    return text


def add_methods_section(report: Any, estimator: Any, title: str = "Methods") -> Any:
    """Add :func:`methods_paragraph` to an :class:`mne.Report`; returns the report."""
    _check_report(report)
    text = methods_paragraph(estimator)
    body, _, refs = text.partition("\n\nReferences\n")
    out = f"<p>{html.escape(body)}</p>"
    if refs:
        out += "<h5>References</h5><ol>" + "".join(
            f"<li>{html.escape(r.split('] ', 1)[-1])}</li>" for r in refs.splitlines()) + "</ol>"
    report.add_html(out, title=title, section=title, tags=("methods",))
    return report


# ----------------------------------------------------------------------------- advisor
# Traits of the setting each heart estimator addresses (what the advisor is asked).
_TRAITS = {
    "SessionCRL": dict(iid=False, multi_domain=True, temporal=False, linear=True,
                       latent_confounders=False, latent_variables=True),
    "MultiDistributionCRL": dict(iid=False, multi_domain=True, linear=True, latent_variables=True),
    "CausalROIs": dict(iid=False, multi_domain=True, temporal=True, micro_macro=True),
    "LatentCausalModel": dict(iid=True, linear=True, latent_variables=True),
}


def add_advisor_section(report: Any, estimator: Any = None, traits: dict | None = None,
                        title: str = "Identifiability") -> Any:
    """Add the identifiability advisor's verdict to an :class:`mne.Report`.

    Parameters
    ----------
    report : mne.Report
    estimator : crl_neuro estimator | None
        Its setting's traits are used when ``traits`` is None.
    traits : dict | None
        Keyword arguments of :func:`crl_neuro.core.advisor.advise`.
    title : str

    Returns
    -------
    report : mne.Report
    """
    from crl_neuro.core.advisor import advise

    _check_report(report)
    if traits is None:
        name = type(estimator).__name__
        if name not in _TRAITS:
            raise ValueError(f"no default traits for {name}; pass traits=dict(...) of advise()")
        traits = _TRAITS[name]
    res = advise(**traits)
    report.add_html(f"<pre>{html.escape(str(res))}</pre>", title=title, section=title,
                    tags=("advisor",))
    return report


# ----------------------------------------------------------------------------- truth
def _get(truth: Any, key: str) -> Any:
    """Look ``key`` up in a simulator Bunch, its ``truth`` sub-Bunch or an npz mapping."""
    if isinstance(truth, Mapping):
        if key in truth:
            return truth[key]
        inner = truth.get("truth")
        if isinstance(inner, Mapping) and key in inner:
            return inner[key]
    return None


def _permuted(adj: np.ndarray, matching: np.ndarray) -> np.ndarray:
    """Estimated adjacency in the truth's order (``matching[i]``: estimate matched to truth i)."""
    return np.asarray(adj)[np.ix_(matching, matching)]


def truth_scores(estimator: Any, truth: Any, inst: Any = None) -> dict[str, float]:
    """Scores of a fitted estimator against a known ground truth.

    Parameters
    ----------
    estimator : fitted crl_neuro estimator
    truth : mapping
        The simulator's Bunch (e.g. from :func:`crl_neuro.datasets.simulate_meeg_sessions`
        or :func:`~crl_neuro.datasets.simulate_fmri_rois`), its ``truth`` sub-Bunch, or a
        mapping of arrays (e.g. an ``.npz``) with any of the keys ``pos``, ``patterns``,
        ``sources``, ``markov_network``, ``changing_edges`` (M/EEG / latents),
        ``labels_img``, ``roi_graph`` (fMRI).
    inst : list of mne.io.Raw | list of mne.Epochs | None
        Data the estimator can transform (SessionCRL ``get_sources``/``transform``), to
        score source time courses against ``sources``.

    Returns
    -------
    scores : dict
        What could be computed: ``localization_error_mm``, ``pattern_mcc``,
        ``source_mcc``, ``network_f1``, ``network_shd``, ``changing_edges_f1``
        (latents matched by patterns, else by positions); ``ari_roi_voxels``,
        ``ari_mask``, ``roi_graph_f1``, ``roi_graph_f1_skeleton``,
        ``abstraction_error`` (ROIs matched by maximum overlap).
    """
    from crl_neuro.core import metrics

    if not isinstance(truth, Mapping):
        raise TypeError(f"truth must be a mapping (simulator Bunch or dict of arrays), got "
                        f"{type(truth).__name__}")
    scores: dict[str, float] = {}
    matching = None
    pats = getattr(estimator, "patterns_", getattr(estimator, "mixing_", None))
    tp = _get(truth, "patterns")
    if pats is not None and tp is not None and np.shape(tp)[0] == np.shape(pats)[0]:
        score, matching, _ = metrics.mcc(np.asarray(tp), np.asarray(pats), return_details=True)
        scores["pattern_mcc"] = float(score)
    tpos = _get(truth, "pos")
    if hasattr(estimator, "source_pos_") and tpos is not None:
        err, m_pos, _ = metrics.localization_error(np.asarray(tpos), estimator.source_pos_,
                                                   return_details=True)
        scores["localization_error_mm"] = float(err)
        if matching is None:
            matching = np.asarray(m_pos)
    srcs = _get(truth, "sources")
    if inst is not None and srcs is not None and hasattr(estimator, "transform"):
        insts = inst if isinstance(inst, (list, tuple)) else [inst]
        # M/EEG convention (SessionCRL.transform and truth.sources): (n_sources, n_times) per
        # session; epochs (n_epochs, n_sources, n_times) are concatenated over time.
        def _flat(a: Any) -> np.ndarray:
            a = np.asarray(a)
            return np.concatenate(list(a), axis=-1) if a.ndim == 3 else a

        try:
            est_cat = np.concatenate([_flat(estimator.transform(i)) for i in insts], axis=1).T
            true_cat = np.concatenate([_flat(s) for s in srcs], axis=1).T
            if est_cat.shape[0] == true_cat.shape[0]:
                scores["source_mcc"] = float(metrics.mcc(true_cat, est_cat))
        except (TypeError, ValueError):
            pass  # data not of the estimator's kind: skip the time-course score
    tnet = _get(truth, "markov_network")
    if hasattr(estimator, "markov_network_") and tnet is not None and matching is not None:
        m = np.asarray(matching)
        if m.size == np.shape(tnet)[0] and np.all(m >= 0):
            g = metrics.graph_scores(np.asarray(tnet), _permuted(estimator.markov_network_, m))
            scores["network_f1"] = g["f1"]
            scores["network_shd"] = g["shd"]
            tchg = _get(truth, "changing_edges")
            if tchg is not None and hasattr(estimator, "changing_edges_"):
                scores["changing_edges_f1"] = metrics.graph_f1(
                    np.asarray(tchg), _permuted(estimator.changing_edges_, m))
    tlab = _get(truth, "labels_img")
    if hasattr(estimator, "labels_img_") and tlab is not None:
        true_data = _label_data(tlab)
        est_data = _label_data(estimator.labels_img_)
        if true_data.shape == est_data.shape:
            scores["ari_roi_voxels"] = float(metrics.labels_ari(true_data, est_data, mask=true_data > 0))
            if hasattr(estimator, "mask_img_"):
                mask = _label_data(estimator.mask_img_) > 0
                scores["ari_mask"] = float(metrics.labels_ari(true_data, est_data, mask=mask))
            tgraph = _get(truth, "roi_graph")
            if tgraph is not None and hasattr(estimator, "roi_graph_"):
                m = _match_labels(true_data, est_data)
                if m is not None:
                    est_g = np.asarray(estimator.roi_graph_)
                    eg = np.zeros_like(np.asarray(tgraph, dtype=float))
                    for i, a in enumerate(m):
                        for j, b in enumerate(m):
                            if a >= 0 and b >= 0:
                                eg[i, j] = est_g[a, b]
                    tg = np.asarray(tgraph) != 0
                    scores["roi_graph_f1"] = metrics.graph_f1(tg, eg != 0, directed=True)
                    scores["roi_graph_f1_skeleton"] = metrics.graph_f1(tg, eg != 0, directed=False)
    if hasattr(estimator, "abstraction_error_"):
        scores["abstraction_error"] = float(estimator.abstraction_error_)
    return scores


def _label_data(img: Any) -> np.ndarray:
    if isinstance(img, (str, os.PathLike)):
        import nibabel as nib

        img = nib.load(img)
    data = img.get_fdata() if hasattr(img, "get_fdata") else np.asarray(img)
    return np.rint(data).astype(int)


def _match_labels(true: np.ndarray, est: np.ndarray) -> np.ndarray | None:
    """``m[i]``: index (label - 1) of the estimated ROI matched to true ROI ``i + 1`` (-1 if none)."""
    from scipy.optimize import linear_sum_assignment

    n_t, n_e = int(true.max()), int(est.max())
    if n_t < 1 or n_e < 1:
        return None
    t, e = true.ravel(), est.ravel()
    keep = (t > 0) & (e > 0)
    overlap = np.zeros((n_t + 1, n_e + 1))
    np.add.at(overlap, (t[keep], e[keep]), 1)
    rows, cols = linear_sum_assignment(-overlap[1:, 1:])
    m = -np.ones(n_t, dtype=int)
    m[rows] = cols
    return m


def add_truth_section(report: Any, estimator: Any, truth: Any, inst: Any = None,
                      title: str = "Benchmark against the truth") -> Any:
    """Add :func:`truth_scores` as a table to an :class:`mne.Report`; returns the report."""
    _check_report(report)
    scores = truth_scores(estimator, truth, inst=inst)
    rows = "".join(f"<tr><td>{html.escape(k)}</td><td>{_fmt(float(v))}</td></tr>"
                   for k, v in scores.items())
    body = ("<p>Scores against the known ground truth (latents/ROIs matched by the Hungarian "
            "algorithm; errors in mm).</p>"
            f"<table class='table table-sm'><tr><th>metric</th><th>value</th></tr>{rows}</table>"
            if scores else "<p>No truth field matched this estimator's outputs.</p>")
    report.add_html(body, title=title, section=title, tags=("truth",))
    return report


# ----------------------------------------------------------------------------- group
def add_group_section(report: Any, estimators: Any, title: str = "Group consistency") -> Any:
    """Add group summaries (:func:`crl_neuro.group.network_consistency` or
    :func:`~crl_neuro.group.roi_overlap`) of several fitted estimators to a report.

    Parameters
    ----------
    report : mne.Report
    estimators : GroupResult | mapping | list
        At least two fitted estimators of one kind.
    title : str

    Returns
    -------
    report : mne.Report
    """
    import matplotlib.pyplot as plt

    from crl_neuro.group import network_consistency, roi_overlap
    from crl_neuro.group._summaries import _as_estimator_dict

    _check_report(report)
    ests = _as_estimator_dict(estimators)
    first = next(iter(ests.values()))
    if hasattr(first, "labels_img_"):
        out = roi_overlap(ests)
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
        im = axes[0].imshow(out.dice, vmin=0, vmax=1, aspect="auto", cmap="viridis")
        axes[0].set(xlabel=f"ROI of {out.reference}", ylabel="subject", title="matched Dice",
                    yticks=range(len(out.subjects)), yticklabels=out.subjects)
        fig.colorbar(im, ax=axes[0], label="Dice")
        im = axes[1].imshow(out.ari, vmin=0, vmax=1, cmap="viridis")
        axes[1].set(title="pairwise ARI", xticks=range(len(out.subjects)), xticklabels=out.subjects,
                    yticks=range(len(out.subjects)), yticklabels=out.subjects)
        fig.colorbar(im, ax=axes[1], label="ARI")
        caption = (f"{len(out.subjects)} subjects; mean matched Dice "
                   f"{np.mean(out.dice):.2f}, mean pairwise ARI "
                   f"{np.mean(out.ari[np.triu_indices(len(out.subjects), 1)]):.2f}")
    else:
        out = network_consistency(ests)
        fig, axes = plt.subplots(1, 2, figsize=(9, 3.5), layout="constrained")
        im = axes[0].imshow(out.edge_frequency, vmin=0, vmax=1, cmap="viridis")
        k = out.edge_frequency.shape[0]
        # The reference's own latent names: CRL000... for SessionCRL (its get_sources channels).
        names = [f"CRL{i:03d}" if hasattr(first, "patterns_") else str(i) for i in range(k)]
        axes[0].set(title="edge frequency", xlabel=f"latent ({out.reference})",
                    ylabel=f"latent ({out.reference})", xticks=range(k), yticks=range(k),
                    xticklabels=names, yticklabels=names)
        axes[0].tick_params(axis="x", labelrotation=90)
        fig.colorbar(im, ax=axes[0], label="fraction of subjects with the edge")
        im = axes[1].imshow(out.pairwise_f1, vmin=0, vmax=1, cmap="viridis")
        axes[1].set(title="pairwise network F1", xticks=range(len(out.subjects)),
                    xticklabels=out.subjects, yticks=range(len(out.subjects)),
                    yticklabels=out.subjects)
        fig.colorbar(im, ax=axes[1], label="F1")
        unit = "mm" if out.match == "positions" else "|r|"
        caption = (f"{len(out.subjects)} subjects, latents matched by {out.match} (mean "
                   f"{np.mean(list(out.match_quality.values())):.2f} {unit}); "
                   f"{int(out.consensus.sum() // 2)} consensus edges")
    report.add_figure(fig, title=title, caption=caption, section=title)
    plt.close(fig)
    return report


# ----------------------------------------------------------------------------- assembly
def _check_report(report: Any) -> None:
    import mne

    if not isinstance(report, mne.Report):
        raise TypeError(f"report must be an mne.Report, got {type(report).__name__}")


def _load_truth(truth: Any) -> Any:
    if truth is None or isinstance(truth, Mapping):
        return truth
    if isinstance(truth, (str, os.PathLike)):
        p = Path(truth)
        if p.suffix != ".npz":
            raise ValueError(f"truth file must be an .npz of arrays, got {str(p)!r}")
        with np.load(p, allow_pickle=False) as npz:
            return {k: npz[k] for k in npz.files}
    raise TypeError(f"truth must be a mapping, an .npz path or None, got {type(truth).__name__}")


def make_report(estimator: Any, out_html: str | os.PathLike, truth: Any = None, inst: Any = None,
                title: str | None = None, advisor: bool = True, overwrite: bool = True) -> Path:
    """Write an HTML report of a fitted estimator (or of a group of them).

    Parameters
    ----------
    estimator : estimator | path-like | GroupResult | mapping | list
        A fitted crl_neuro estimator, a ``.crl`` file written by ``save``, or several
        of them (a :class:`~crl_neuro.group.GroupResult`, a mapping/list of
        estimators or files, or a directory of ``.crl`` files): a group report has the
        first subject's sections and the group consistency section.
    out_html : path-like
        Output HTML file.
    truth : mapping | path-like | None
        Ground truth for :func:`add_truth_section` (simulator Bunch, dict or ``.npz``).
    inst : list of mne.io.Raw | None
        Data for source time-course scores (see :func:`truth_scores`).
    title : str | None
        Report title; default the estimator's class name.
    advisor : bool
        Include the identifiability advisor's verdict.
    overwrite : bool
        Replace an existing ``out_html``.

    Returns
    -------
    path : Path
        The written HTML file.
    """
    import mne

    from crl_neuro.core.base import load

    group = None
    if isinstance(estimator, (str, os.PathLike)) and Path(estimator).is_dir():
        files = sorted(Path(estimator).glob("*.crl"))
        if not files:
            raise ValueError(f"estimator: directory {str(estimator)!r} has no .crl files")
        group = {f.stem: f for f in files}
    elif isinstance(estimator, Mapping):
        group = {str(k): v for k, v in estimator.items()}
    elif isinstance(estimator, (list, tuple)):
        group = {str(i): v for i, v in enumerate(estimator)}
    if group is not None:
        if not group:
            raise ValueError("estimator: the group is empty")
        first = next(iter(group.values()))
        est = load(first) if isinstance(first, (str, os.PathLike)) else first
    elif isinstance(estimator, (str, os.PathLike)):
        est = load(estimator)
    else:
        est = estimator
    name = type(est).__name__
    title = title or f"crl_neuro: {name}"
    report = mne.Report(title=title, verbose=False)
    if hasattr(est, "to_report"):
        est.to_report(report, title=name)
    if advisor and name in _TRAITS:
        add_advisor_section(report, est)
    truth = _load_truth(truth)
    if truth is not None:
        add_truth_section(report, est, truth, inst=inst)
    if group is not None and len(group) > 1:
        add_group_section(report, group)
    add_methods_section(report, est)
    out = Path(out_html)
    if out.suffix not in (".html", ".htm"):
        raise ValueError(f"out_html must end with .html, got {str(out)!r}")
    report.save(out, open_browser=False, overwrite=overwrite, verbose=False)
    return out

