"""Scores of a fitted latent structure against a simulator's ground truth."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import linear_sum_assignment
from sklearn.metrics import adjusted_rand_score

from crl_neuro.core.metrics import graph_scores

__all__ = ["match_latents", "score_structure", "score_model"]


def match_latents(
    est_indicators: dict[str, list[str]],
    est_children: dict[str, list[str]],
    true_clusters: pd.Series,
    true_children: dict[str, list[str]],
) -> dict[str, str]:
    """Match estimated latents to true ones (Hungarian on shared indicators/children).

    Parameters
    ----------
    est_indicators : dict
        Estimated measured latent -> its items.
    est_children : dict
        Estimated hidden latent -> its (estimated) latent children.
    true_clusters : Series
        Item -> true latent it measures.
    true_children : dict
        True hidden latent -> its true latent children.

    Returns
    -------
    mapping : dict
        Estimated latent name -> true latent name (unmatched latents are absent).
    """
    mapping: dict[str, str] = {}
    true_meas = sorted(set(true_clusters.values))
    est_meas = list(est_indicators)
    if est_meas and true_meas:
        C = np.zeros((len(est_meas), len(true_meas)))
        for a, nm in enumerate(est_meas):
            for item in est_indicators[nm]:
                if item in true_clusters.index:
                    C[a, true_meas.index(true_clusters[item])] += 1
        r, c = linear_sum_assignment(-C)
        mapping.update({est_meas[i]: true_meas[j] for i, j in zip(r, c) if C[i, j] > 0})
    est_h, true_h = list(est_children), list(true_children)
    if est_h and true_h:
        C = np.zeros((len(est_h), len(true_h)))
        for a, nm in enumerate(est_h):
            kids = {mapping.get(x) for x in est_children[nm]}
            for b, tn in enumerate(true_h):
                C[a, b] = len(kids & set(true_children[tn]))
        r, c = linear_sum_assignment(-C)
        mapping.update({est_h[i]: true_h[j] for i, j in zip(r, c) if C[i, j] > 0})
    return mapping


def score_structure(
    structure: pd.DataFrame,
    indicators: dict[str, list[str]],
    truth: Any,
    children: dict[str, list[str]] | None = None,
) -> dict[str, float]:
    """Compare an estimated latent equivalence class and clusters with the truth.

    Parameters
    ----------
    structure : DataFrame
        Estimated latent graph (package convention, CPDAG or DAG).
    indicators : dict
        Estimated measured latent -> its items (main indicators).
    truth : Bunch
        ``truth`` of :func:`crl_neuro.datasets.simulate_latent_questionnaire`.
    children : dict | None
        Estimated hidden latent -> its latent children.

    Returns
    -------
    scores : dict
        ``cluster_ari`` (items of every true cluster; unassigned items form their
        own label), ``skeleton_f1``, ``shd`` (on the equivalence class: a pair
        counts once if its edge is missing, extra or differently marked),
        ``n_latents_error`` (estimated minus true number of latents),
        ``correct_class`` (1.0 when clusters match and SHD is 0).
    """
    children = children or {}
    true_cp = truth.cpdag
    true_names = list(true_cp.index)
    true_children = {h: [c for c in true_names if truth.latent_graph.loc[h, c] != 0] for h in truth.hidden_latents}
    mapping = match_latents(indicators, children, truth.clusters, true_children)
    items = list(truth.clusters.index)
    est_label = {it: nm for nm, its in indicators.items() for it in its}
    labels = [est_label.get(it, f"__none_{it}") for it in items]
    ari = adjusted_rand_score(truth.clusters.values, labels)
    # graph over the union of true latents and unmatched estimated latents
    extra = [nm for nm in structure.index if nm not in mapping]
    nodes = true_names + [f"est:{nm}" for nm in extra]
    pos = {nm: i for i, nm in enumerate(nodes)}
    T = np.zeros((len(nodes), len(nodes)), dtype=int)
    T[: len(true_names), : len(true_names)] = (true_cp.to_numpy() != 0).astype(int)
    E = np.zeros_like(T)
    where = {nm: pos[mapping[nm]] if nm in mapping else pos[f"est:{nm}"] for nm in structure.index}
    S = structure.to_numpy() != 0
    for a, na in enumerate(structure.index):
        for b, nb in enumerate(structure.columns):
            if S[a, b]:
                E[where[na], where[nb]] = 1
    und = graph_scores(T, E, directed=False)
    dire = graph_scores(T, E, directed=True)
    n_err = len(structure.index) - len(true_names)
    correct = float(ari > 0.999 and dire["shd"] == 0 and n_err == 0)
    return {
        "cluster_ari": float(ari),
        "skeleton_f1": float(und["f1"]),
        "shd": float(dire["shd"]),
        "n_latents_error": float(n_err),
        "correct_class": correct,
    }


def score_model(model: Any, truth: Any) -> dict[str, float]:
    """:func:`score_structure` of a fitted :class:`~crl_neuro.psychometrics.LatentCausalModel`.

    Parameters
    ----------
    model : LatentCausalModel
        Fitted model.
    truth : Bunch
        ``truth`` of :func:`crl_neuro.datasets.simulate_latent_questionnaire`.

    Returns
    -------
    scores : dict
        See :func:`score_structure`.
    """
    indicators: dict[str, list[str]] = {}
    for item, lat in model.clusters_.items():
        if lat is not None:
            indicators.setdefault(lat, []).append(item)
    children = {d["name"]: list(d.get("children", [])) for d in model.latents_ if d.get("hidden")}
    return score_structure(model.structure_, indicators, truth, children)
