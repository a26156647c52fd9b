"""Identifiability advisor: what causal (representation) learning theory says can be learned.

Given a few traits of a data set (i.i.d. or not, several distributions, temporal,
linear/parametric or not, hidden confounders, latent variables, ...) :func:`advise`
returns the settings of the causal-discovery / CRL literature that apply, what each
one identifies, under which conditions, the reference, and which crl_neuro estimator
or causal-learn function implements it.

The table only states what the cited papers prove; the *conditions* column must be
read before trusting an estimate. A trait left at ``None`` means "unknown": settings
that need it are kept and flagged as depending on it, so an unknown trait widens the
answer instead of narrowing it.

Examples
--------
>>> from crl_neuro.core.advisor import advise
>>> res = advise(iid=False, multi_domain=True, latent_variables=True)
>>> "Markov network" in res.to_frame()["identifiable"].iloc[0]
True
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["advise", "AdvisorResult", "SETTINGS", "TRAITS"]

#: Traits understood by :func:`advise`, with their meaning (used in docs and the CLI).
TRAITS: dict[str, str] = {
    "iid": "samples are independent draws from one distribution",
    "multi_domain": "data come from several distributions (sessions, runs, sites, conditions) "
    "whose causal mechanisms may change, with the domain label known",
    "temporal": "samples form time series whose latent/observed processes influence each other "
    "over time (time-delayed effects are to be used)",
    "linear": "causal relations (and, for latent-variable models, the measurement/mixing) are linear",
    "parametric": "a restricted functional causal model may be assumed (linear, additive noise, "
    "post-nonlinear, exponential family); False = fully nonparametric",
    "non_gaussian": "noise terms / innovations are non-Gaussian",
    "latent_confounders": "unobserved common causes of the observed variables may exist",
    "latent_variables": "the causal variables of interest are unobserved and only seen through a "
    "mixing or measurement (sensors, questionnaire items, voxels, pixels)",
    "auxiliary": "an auxiliary variable that modulates the latents is observed (segment, label, "
    "domain index)",
    "actions": "an agent's actions and rewards are observed (reinforcement learning)",
    "multimodal": "several modalities measure related latent processes",
    "micro_macro": "a fine-grained (micro, e.g. voxel) model is to be summarised by coarse "
    "(macro, e.g. ROI) variables",
}

_YES_NO = {True: "yes", False: "no", None: "unknown"}


@dataclass(frozen=True)
class _Setting:
    key: str
    setting: str
    requires: dict[str, bool]
    identifiable: str
    conditions: str
    reference: str
    estimator: str


# The table of the literature. ``requires`` lists the traits a setting needs; a setting
# is excluded as soon as a *known* trait contradicts one of them.
SETTINGS: tuple[_Setting, ...] = (
    _Setting(
        key="multimodal",
        setting="Several modalities with sparse cross-modal causal links",
        requires={"latent_variables": True, "multimodal": True},
        identifiable="Latent variables of each modality and the causal links between modalities",
        conditions="Per-modality invertible generating functions; sparse cross-modal causal "
        "connections and sufficient variability as stated in the paper",
        reference="Sun, Kong et al., ICLR 2025 (Causal representation learning from multimodal biological "
        "observations)",
        estimator="crl_neuro.multimodal.MultiModalCRL",
    ),
    _Setting(
        key="abstraction",
        setting="Micro variables (voxels) summarised by macro variables (ROIs)",
        requires={"micro_macro": True},
        identifiable="Not an identifiability result: whether a macro model is a constructive "
        "tau-abstraction of the micro model (it commutes with interventions); the error of an "
        "approximate abstraction is measurable",
        conditions="A partition of micro variables into macro variables and a map between "
        "interventions at both levels",
        reference="Beckers & Halpern, AAAI 2019 (Abstracting causal models); Beckers, Eberhardt & "
        "Halpern, UAI 2019 (Approximate causal abstraction)",
        estimator="crl_neuro.fmri.CausalROIs; crl_neuro.core.abstraction",
    ),
    _Setting(
        key="multi_distribution_latent",
        setting="Several distributions; latent variables with changing causal relations "
        "(nonparametric)",
        requires={"multi_domain": True, "latent_variables": True},
        identifiable="Markov network of the latent variables; each latent up to a function of "
        "itself and its intimate neighbours (component-wise when it has none)",
        conditions="Invertible smooth mixing; latent causal mechanisms change sufficiently across "
        "domains (sufficient variability); the estimated Markov network is the sparsest "
        "consistent with the data. Linear mixing (e.g. the M/EEG leadfield) is a special case. "
        "No method can make causally linked latents independent in every domain.",
        reference="Zhang, Xie, Ng & Zheng, ICML 2024 (Causal representation learning from "
        "multiple distributions: a general setting)",
        estimator="crl_neuro.core.MultiDistributionCRL; crl_neuro.meeg.SessionCRL (M/EEG, "
        "linear mixing = leadfield)",
    ),
    _Setting(
        key="changing_subspace",
        setting="Several distributions; only part of the latent space changes across domains",
        requires={"multi_domain": True, "latent_variables": True},
        identifiable="Partial identifiability: the changing latent components component-wise; "
        "the invariant part only as a block (subspace)",
        conditions="Invertible mixing; enough domains with sufficient variability of the changing "
        "components' distributions (the paper's count of domains grows with their number)",
        reference="Kong, Xie, Yao, Zheng, Chen, Stojanov, Akinwande & Zhang, ICML 2022 (Partial "
        "disentanglement for domain adaptation)",
        estimator="crl_neuro.core.MultiDistributionCRL (changing part via per-domain precisions); "
        "no dedicated estimator",
    ),
    _Setting(
        key="ivae",
        setting="Auxiliary variable observed; latents conditionally independent given it",
        requires={"latent_variables": True, "auxiliary": True, "parametric": True},
        identifiable="Latent variables up to permutation and component-wise transformations "
        "(sufficient statistics up to an affine map in the general exponential-family case)",
        conditions="Latents conditionally independent given the auxiliary variable u, with a "
        "conditionally factorial exponential-family prior; enough distinct values of u "
        "(sufficient variability); injective mixing. Does not cover causally related latents.",
        reference="Khemakhem, Kingma, Monti & Hyvärinen, AISTATS 2020 (Variational autoencoders "
        "and nonlinear ICA: a unifying framework, iVAE)",
        estimator="no crl_neuro estimator (causally related latents: "
        "crl_neuro.core.MultiDistributionCRL)",
    ),
    _Setting(
        key="cdnod",
        setting="Several distributions / nonstationary data; observed variables",
        requires={"multi_domain": True, "latent_variables": False, "latent_confounders": False},
        identifiable="Causal skeleton plus orientations beyond the Markov equivalence class, "
        "obtained from which causal modules change; the changing modules themselves",
        conditions="Observed variables; confounders only as functions of the domain/time index "
        "(pseudo-confounders); Markov and faithfulness w.r.t. the graph augmented with the "
        "domain index; a nonparametric (e.g. KCI) or suitable CI test",
        reference="Huang, Zhang, Zhang, Ramsey, Sanchez-Romero, Glymour & Schölkopf, JMLR 2020 "
        "(Causal discovery from heterogeneous/nonstationary data, CD-NOD)",
        estimator="crl_neuro.core.discovery.cdnod (causal-learn "
        "causallearn.search.ConstraintBased.CDNOD.cdnod)",
    ),
    _Setting(
        key="ifactor",
        setting="Temporal data with actions and rewards (reinforcement learning)",
        requires={"temporal": True, "latent_variables": True, "actions": True},
        identifiable="Four latent blocks: controllable/uncontrollable x reward-relevant/"
        "irrelevant, each identified block-wise",
        conditions="Invertible mixing; latent transitions as in the paper (blocks defined by "
        "their relations to actions and rewards); sufficient variability",
        reference="Liu, Huang, Zhu, Tian, Gong, Yu & Zhang, NeurIPS 2023 (Learning world "
        "models with identifiable factorization, IFactor)",
        estimator="crl_neuro.rl.IFactorWorldModel",
    ),
    _Setting(
        key="temporal_latent",
        setting="Latent temporal processes with time-delayed causal influences",
        requires={"temporal": True, "latent_variables": True},
        identifiable="Latent processes component-wise (up to permutation and invertible "
        "component-wise transformations) and their time-delayed causal relations",
        conditions="Invertible mixing; latents interact only through time-delayed influences (no "
        "instantaneous relations); conditionally independent noise with sufficient "
        "variability, provided by nonstationary noise/changing dynamics across regimes or by "
        "the functional form (TDRL covers fixed and changing dynamics)",
        reference="Yao, Sun, Ho, Sun & Zhang, ICLR 2022 (LEAP); Yao, Chen & Zhang, NeurIPS 2022 "
        "(TDRL)",
        estimator="no dedicated crl_neuro estimator (with actions/rewards: "
        "crl_neuro.rl.IFactorWorldModel)",
    ),
    _Setting(
        key="rlcd",
        setting="i.i.d.; linear latent-variable model, latents causally related",
        requires={"iid": True, "linear": True, "latent_variables": True},
        identifiable="Latent variables, their indicators and the causal structure among latent "
        "and observed variables up to a Markov equivalence class",
        conditions="Linear model; the paper's graphical conditions on latent covers (enough pure "
        "children/neighbours); rank faithfulness; Gaussian noise allowed",
        reference="Dong, Huang, Ng, Song, Zheng, Jin, Legaspi, Spirtes & Zhang, ICLR 2024 (A "
        "versatile causal discovery framework to allow causally-related hidden variables, RLCD)",
        estimator='crl_neuro.psychometrics.LatentCausalModel(method="rlcd"); '
        "crl_neuro.core.discovery.rlcd (causal-learn RLCD)",
    ),
    _Setting(
        key="gin",
        setting="i.i.d.; linear non-Gaussian latent-variable model with measurement structure",
        requires={"iid": True, "linear": True, "non_gaussian": True, "latent_variables": True},
        identifiable="Latent clusters (which observed variables measure which latent) and the "
        "causal order of the latent variables",
        conditions="Linear non-Gaussian latent variable model; observed variables do not cause "
        "latents; each latent has at least two pure measured indicators",
        reference="Xie, Cai, Huang, Glymour, Hao & Zhang, NeurIPS 2020 (Generalized independent "
        "noise condition for estimating latent variable causal graphs, GIN)",
        estimator='crl_neuro.psychometrics.LatentCausalModel(method="gin"); '
        "crl_neuro.core.discovery.gin (causal-learn causallearn.search.HiddenCausal.GIN.GIN.GIN)",
    ),
    _Setting(
        key="lingam",
        setting="i.i.d.; linear non-Gaussian acyclic model of observed variables",
        requires={
            "iid": True,
            "linear": True,
            "non_gaussian": True,
            "latent_variables": False,
            "latent_confounders": False,
        },
        identifiable="The unique DAG (full causal order and connection strengths)",
        conditions="Linear acyclic relations; independent non-Gaussian noise (at most one "
        "Gaussian); no hidden confounders",
        reference="Shimizu, Hoyer, Hyvärinen & Kerminen, JMLR 2006 (LiNGAM); Shimizu et al., "
        "JMLR 2011 (DirectLiNGAM)",
        estimator="causal-learn causallearn.search.FCMBased.lingam.DirectLiNGAM / ICALiNGAM",
    ),
    _Setting(
        key="anm",
        setting="i.i.d.; nonlinear additive-noise model of observed variables",
        requires={
            "iid": True,
            "linear": False,
            "parametric": True,
            "latent_variables": False,
            "latent_confounders": False,
        },
        identifiable="The unique DAG, except for non-generic cases (e.g. linear functions with "
        "Gaussian noise)",
        conditions="Effect = f(causes) + independent noise with nonlinear f; no hidden "
        "confounders; acyclic",
        reference="Hoyer, Janzing, Mooij, Peters & Schölkopf, NeurIPS 2008; Peters, Mooij, "
        "Janzing & Schölkopf, JMLR 2014",
        estimator="causal-learn causallearn.search.FCMBased.ANM.ANM.ANM (pairwise)",
    ),
    _Setting(
        key="pnl",
        setting="i.i.d.; post-nonlinear causal model of observed variables",
        requires={
            "iid": True,
            "linear": False,
            "parametric": True,
            "latent_variables": False,
            "latent_confounders": False,
        },
        identifiable="The causal direction, except for a few specific combinations of functions "
        "and noise distributions listed in the paper",
        conditions="Effect = f2(f1(cause) + noise) with invertible f2 and noise independent of "
        "the cause; no hidden confounders",
        reference="Zhang & Hyvärinen, UAI 2009 (On the identifiability of the post-nonlinear "
        "causal model)",
        estimator="causal-learn causallearn.search.FCMBased.PNL.PNL.PNL (pairwise)",
    ),
    _Setting(
        key="pc_ges",
        setting="i.i.d.; observed variables, no hidden confounders",
        requires={"iid": True, "latent_variables": False, "latent_confounders": False},
        identifiable="The Markov equivalence class (CPDAG): skeleton and v-structures",
        conditions="Causal Markov condition and faithfulness; causal sufficiency; a CI test (PC) "
        "or a consistent score (GES) suited to the data (Fisher-z/BIC for linear Gaussian; "
        "KCI/generalized score when nonparametric)",
        reference="Spirtes, Glymour & Scheines 2000 (PC); Chickering, JMLR 2002 (GES)",
        estimator="crl_neuro.core.discovery.pc / crl_neuro.core.discovery.ges (causal-learn "
        "causallearn.search.ConstraintBased.PC.pc / causallearn.search.ScoreBased.GES.ges)",
    ),
    _Setting(
        key="fci",
        setting="i.i.d.; observed variables with possible hidden confounders",
        requires={"iid": True, "latent_variables": False, "latent_confounders": True},
        identifiable="A PAG: the equivalence class of maximal ancestral graphs (ancestral "
        "relations, possible hidden confounding)",
        conditions="Causal Markov condition and faithfulness; acyclic; a suitable CI test",
        reference="Spirtes, Glymour & Scheines 2000; Zhang, Artificial Intelligence 2008 "
        "(completeness of FCI orientation rules)",
        estimator="crl_neuro.core.discovery.fci (causal-learn "
        "causallearn.search.ConstraintBased.FCI.fci)",
    ),
)


@dataclass
class AdvisorResult:
    """Answer of :func:`advise`.

    Attributes
    ----------
    traits : dict
        The traits used after inference (``True``/``False``/``None``).
    rows : list of dict
        One dict per applicable setting (keys as in :meth:`to_frame`).
    notes : list of str
        Traits that were inferred from others, and other remarks.
    """

    traits: dict[str, bool | None]
    rows: list[dict[str, str]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    columns = (
        "setting",
        "identifiable",
        "conditions",
        "reference",
        "estimator",
        "depends_on_unknown",
    )

    def to_frame(self):
        """Return the applicable settings as a :class:`pandas.DataFrame`.

        Returns
        -------
        df : pandas.DataFrame
            One row per applicable setting, best-matching first, with the columns
            ``setting``, ``identifiable``, ``conditions``, ``reference``, ``estimator``
            (crl_neuro estimator or causal-learn function) and ``depends_on_unknown``
            (the traits left unknown that the setting needs, as ``"trait=yes/no"``; empty
            when all are known).
            The index holds the setting keys.
        """
        import pandas as pd

        df = pd.DataFrame([{c: r[c] for c in self.columns} for r in self.rows], columns=list(self.columns))
        df.index = pd.Index([r["key"] for r in self.rows], name="key")
        return df

    @property
    def best(self) -> dict[str, str] | None:
        """The first (best-matching) applicable setting, or ``None`` when none applies."""
        return self.rows[0] if self.rows else None

    def __len__(self) -> int:
        return len(self.rows)

    def __str__(self) -> str:
        import textwrap

        known = ", ".join(f"{k}={_YES_NO[v]}" for k, v in self.traits.items() if v is not None)
        width = 96
        lines = textwrap.wrap(
            f"Identifiability advisor ({known or 'no traits given'})", width=width, subsequent_indent="  "
        )
        for note in self.notes:
            lines += textwrap.wrap(f"note: {note}", width=width, initial_indent="  ", subsequent_indent="    ")
        if not self.rows:
            lines.append("No setting of the table applies to these traits.")
            return "\n".join(lines)
        label_w = 14
        for i, row in enumerate(self.rows, 1):
            lines.append("")
            lines.append(f"[{i}] {row['setting']}")
            fields = [
                ("identifiable", row["identifiable"]),
                ("conditions", row["conditions"]),
                ("reference", row["reference"]),
                ("use", row["estimator"]),
            ]
            if row["depends_on_unknown"]:
                fields.append(("assumes", f"{row['depends_on_unknown']} (unknown here)"))
            for label, text in fields:
                wrapped = textwrap.wrap(text, width=width - label_w - 4) or [""]
                lines.append(f"    {label:<{label_w}}{wrapped[0]}")
                lines += [f"    {'':<{label_w}}{w}" for w in wrapped[1:]]
        return "\n".join(lines)

    def __repr__(self) -> str:
        keys = ", ".join(r["key"] for r in self.rows)
        return f"AdvisorResult({len(self.rows)} setting(s): {keys})"

    def _repr_html_(self) -> str:
        return self.to_frame().to_html()


def _check_trait(value: Any, name: str) -> bool | None:
    if value is None:
        return None
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    raise TypeError(f"{name} must be True, False or None (unknown), got {type(value).__name__} ({value!r})")


def advise(
    iid: bool | None = None,
    multi_domain: bool | None = None,
    temporal: bool | None = None,
    linear: bool | None = None,
    parametric: bool | None = None,
    latent_confounders: bool | None = None,
    *,
    latent_variables: bool | None = None,
    non_gaussian: bool | None = None,
    auxiliary: bool | None = None,
    actions: bool = False,
    multimodal: bool = False,
    micro_macro: bool = False,
) -> AdvisorResult:
    """Say what can be identified from data with the given traits, and with which tool.

    Each trait is ``True``, ``False`` or ``None`` (unknown). A setting of the literature
    is returned when no *known* trait contradicts what it requires; settings whose
    requirements are all known come first, then those that depend on unknown traits.

    Parameters
    ----------
    iid : bool or None
        Samples are independent draws from one distribution.
    multi_domain : bool or None
        Several distributions (sessions, runs, conditions, sites) with known domain labels.
    temporal : bool or None
        Time series whose time-delayed influences are to be used.
    linear : bool or None
        Linear causal relations (and linear mixing/measurement for latent-variable models).
    parametric : bool or None
        A restricted functional model may be assumed (linear, additive noise,
        post-nonlinear, exponential family). ``False`` means fully nonparametric.
    latent_confounders : bool or None
        Hidden common causes of the *observed* variables may exist.
    latent_variables : bool or None
        The causal variables of interest are latent, seen through a mixing or
        measurement (M/EEG sources behind sensors, traits behind questionnaire items).
    non_gaussian : bool or None
        Noise terms are non-Gaussian.
    auxiliary : bool or None
        An auxiliary variable modulating the latents is observed. Inferred ``True`` when
        ``multi_domain`` is ``True`` (the domain label is one).
    actions : bool
        Actions and rewards are observed (reinforcement learning).
    multimodal : bool
        Several modalities measure related latent processes.
    micro_macro : bool
        A micro-level model (voxels) is to be abstracted by macro variables (ROIs).

    Returns
    -------
    result : AdvisorResult
        ``str(result)`` is a readable table, ``result.to_frame()`` a DataFrame.

    Raises
    ------
    TypeError
        If a trait is not a bool or None.
    ValueError
        If traits contradict each other (e.g. ``iid=True`` with ``temporal=True``, or
        ``linear=True`` with ``parametric=False``).

    Notes
    -----
    Inference rules: ``multi_domain=True`` or ``temporal=True`` implies ``iid=False``;
    ``iid=True`` implies ``multi_domain=False`` and ``temporal=False``; ``linear=True``
    implies ``parametric=True``; ``multi_domain=True`` implies ``auxiliary=True``.
    """
    given = {
        "iid": iid,
        "multi_domain": multi_domain,
        "temporal": temporal,
        "linear": linear,
        "parametric": parametric,
        "non_gaussian": non_gaussian,
        "latent_confounders": latent_confounders,
        "latent_variables": latent_variables,
        "auxiliary": auxiliary,
        "actions": actions,
        "multimodal": multimodal,
        "micro_macro": micro_macro,
    }
    traits = {name: _check_trait(value, name) for name, value in given.items()}
    for name in ("actions", "multimodal", "micro_macro"):
        if traits[name] is None:
            raise TypeError(f"{name} must be True or False, got None")

    if traits["iid"] is True:
        for name in ("multi_domain", "temporal"):
            if traits[name] is True:
                raise ValueError(
                    f"iid=True contradicts {name}=True: i.i.d. data come from one distribution "
                    "without temporal dependence; set iid=False (or None)"
                )
    if traits["linear"] is True and traits["parametric"] is False:
        raise ValueError("linear=True contradicts parametric=False: a linear model is parametric")
    if traits["actions"] and traits["temporal"] is False:
        raise ValueError("actions=True needs temporal data: temporal=False contradicts it")

    notes: list[str] = []

    def infer(name: str, value: bool, why: str) -> None:
        if traits[name] is None:
            traits[name] = value
            notes.append(f"{name}={_YES_NO[value]} inferred from {why}")

    if traits["multi_domain"] or traits["temporal"]:
        infer("iid", False, "multi_domain=yes" if traits["multi_domain"] else "temporal=yes")
    if traits["iid"] is True:
        infer("multi_domain", False, "iid=yes")
        infer("temporal", False, "iid=yes")
    if traits["linear"] is True:
        infer("parametric", True, "linear=yes")
    if traits["multi_domain"] is True:
        infer("auxiliary", True, "multi_domain=yes (the domain label is an auxiliary variable)")
    if traits["actions"]:
        infer("temporal", True, "actions=yes")

    rows: list[tuple[int, int, dict[str, str]]] = []
    for order, s in enumerate(SETTINGS):
        if any(traits[t] is not None and traits[t] != v for t, v in s.requires.items()):
            continue
        unknown = [f"{t}={_YES_NO[v]}" for t, v in s.requires.items() if traits[t] is None]
        row = {
            "key": s.key,
            "setting": s.setting,
            "identifiable": s.identifiable,
            "conditions": s.conditions,
            "reference": s.reference,
            "estimator": s.estimator,
            "depends_on_unknown": ", ".join(unknown),
        }
        rows.append((len(unknown), order, row))
    rows.sort(key=lambda r: (r[0], r[1]))
    return AdvisorResult(traits=traits, rows=[r[2] for r in rows], notes=notes)
