"""One estimator contract, checked over every public estimator of the registry.

For each estimator of :func:`crl_neuro.core.base.all_estimators` (tiny data, a few
epochs): a matrix of bad inputs and bad hyper-parameters that must each raise
``ValueError``/``TypeError`` naming the argument, and the shared guarantees: inputs
are not modified, the same seed gives identical results, save/load round-trips,
``clone``/``get_params`` work, ``verbose`` and ``random_state`` follow one policy.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import pickle
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.base import TransformerMixin, clone
from sklearn.exceptions import NotFittedError

import crl_neuro
from crl_neuro.core import base
from crl_neuro.core.base import (
    BaseCRLEstimator,
    all_estimators,
    docdict,
    fill_doc,
    use_log_level,
)
from crl_neuro.core.validation import (
    check_data,
    check_n_jobs,
    check_random_state,
    check_seed,
)


# ----------------------------------------------------------------------------- specs
@dataclass
class Spec:
    """How to build, fit and break one estimator with tiny data."""

    make: Callable[..., BaseCRLEstimator]  # keyword overrides -> estimator
    data: Callable[[], dict[str, Any]]  # fit keyword arguments
    transform: Callable[[BaseCRLEstimator, dict], Any] | None = None
    # (id, fit-argument edit or None, parameter overrides, exception, regex naming the argument)
    bad: list[tuple] = field(default_factory=list)


def _domains_data(n_per=40, n_domains=3, p=4, seed=0):
    rng = np.random.default_rng(seed)
    X = np.concatenate([rng.normal(size=(n_per, p)) * rng.uniform(0.5, 2.0, size=p) for _ in range(n_domains)])
    return {"X": X, "domains": np.repeat(np.arange(n_domains), n_per)}


def _set(key, value):
    return lambda a: {**a, key: value(a[key]) if callable(value) else value}


def _array_cases(key="X", two_domains=True):
    """Bad-input rows shared by the estimators that take (X, domains)."""
    def with_value(v):
        def edit(a):
            X = a[key].copy()
            X[1, 1] = v
            return {**a, key: X}
        return edit

    rows = [
        ("nan", with_value(np.nan), {}, ValueError, f"{key}.*NaN"),
        ("inf", with_value(np.inf), {}, ValueError, f"{key}.*infinite"),
        ("huge", _set(key, lambda X: X * 1e200), {}, ValueError, f"{key}.*large"),
        ("complex", _set(key, lambda X: X + 1j), {}, ValueError, f"{key}.*complex"),
        ("strings", _set(key, lambda X: X.astype(str)), {}, TypeError, key),
        ("none", _set(key, None), {}, TypeError, key),
        ("1d", _set(key, lambda X: X[:, 0]), {}, ValueError, f"{key}.*2D"),
        ("3d", _set(key, lambda X: X[None]), {}, ValueError, f"{key}.*2D"),
        ("empty", _set(key, lambda X: X[:0]), {}, ValueError, key),
        ("zero_features", _set(key, lambda X: X[:, :0]), {}, ValueError, f"{key}.*feature"),
        ("too_few_samples", lambda a: {**a, key: a[key][:2], "domains": a["domains"][:2]}, {}, ValueError,
         f"{key}|domains"),
        ("labels_mismatch", _set("domains", lambda d: d[:-1]), {}, ValueError, "domains"),
        ("rank_deficient", _set(key, lambda X: np.outer(X[:, 0], np.ones(X.shape[1]))), {}, ValueError,
         "n_latents"),
        ("too_many_latents", None, {"n_latents": 50}, ValueError, "n_latents"),
        ("zero_latents", None, {"n_latents": 0}, ValueError, "n_latents"),
        ("float_latents", None, {"n_latents": 1.5}, TypeError, "n_latents"),
        ("random_state_str", None, {"random_state": "a"}, TypeError, "random_state"),
        ("random_state_negative", None, {"random_state": -1}, ValueError, "random_state"),
        ("verbose_bad", None, {"verbose": "loud"}, ValueError, "verbose"),
        ("device_bad", None, {"device": "gpu"}, ValueError, "device"),
        ("max_iter_zero", None, {"max_iter": 0}, ValueError, "max_iter"),
    ]
    if two_domains:
        rows.append(("one_domain", _set("domains", lambda d: np.zeros_like(d)), {}, ValueError, "domains"))
    return rows


def _mdcrl():
    from crl_neuro.core.multidist import MultiDistributionCRL

    return Spec(
        make=lambda **kw: MultiDistributionCRL(**{"n_latents": 2, "random_state": 0, **kw}),
        data=_domains_data,
        transform=lambda est, a: est.transform(a["X"]),
        bad=_array_cases() + [
            ("mixing_bad", None, {"mixing": "quadratic"}, ValueError, "mixing"),
            ("sparsity_negative", None, {"sparsity": -1.0}, ValueError, "sparsity"),
            ("n_init_zero", None, {"n_init": 0}, ValueError, "n_init"),
            ("nonlinear_few_samples", lambda a: {"X": a["X"][::8], "domains": a["domains"][::8]},
             {"mixing": "nonlinear"}, ValueError, "domains.*samples"),
        ],
    )


def _ivae():
    from crl_neuro.core.nonlinear import IVAE

    return Spec(
        make=lambda **kw: IVAE(**{"n_latents": 2, "hidden": 8, "max_iter": 3, "batch_size": 64,
                                  "random_state": 0, **kw}),
        data=_domains_data,
        transform=lambda est, a: est.transform(a["X"]),
        bad=_array_cases() + [
            ("hidden_zero", None, {"hidden": 0}, ValueError, "hidden"),
            ("lr_negative", None, {"lr": -1.0}, ValueError, "lr"),
        ],
    )


def _lcm():
    from crl_neuro.datasets.psychometrics import simulate_latent_questionnaire
    from crl_neuro.psychometrics import LatentCausalModel

    table = simulate_latent_questionnaire("chain", n_samples=300, random_state=0).data

    def edit(fn):
        return lambda a: {**a, "data": fn(a["data"])}

    return Spec(
        make=lambda **kw: LatentCausalModel(**{"random_state": 0, **kw}),
        data=lambda: {"data": table.copy()},
        transform=lambda est, a: est.transform(a["data"]),
        bad=[
            ("inf", edit(lambda d: d.mask(d == d.iloc[0, 0], np.inf)), {}, ValueError, "data.*infinite"),
            ("huge", edit(lambda d: d * 1e200), {}, ValueError, "data.*large"),
            ("complex", edit(lambda d: d.to_numpy() + 1j), {}, ValueError, "data.*complex"),
            ("strings", edit(lambda d: d.astype(str)), {}, TypeError, "data"),
            ("none", lambda a: {"data": None}, {}, TypeError, "data"),
            ("1d", edit(lambda d: d.to_numpy()[:, 0]), {}, ValueError, "data.*2D"),
            ("empty", edit(lambda d: d.iloc[:0]), {}, ValueError, "data"),
            ("zero_features", edit(lambda d: d.iloc[:, :0]), {}, ValueError, "data"),
            ("too_few_samples", edit(lambda d: d.iloc[:8]), {}, ValueError, "data.*rows"),
            ("duplicated_items", edit(lambda d: pd.concat([d, d.add_suffix("_copy")], axis=1)), {},
             ValueError, "data.*duplicate"),
            ("too_many_latents", None, {"n_latents": 50}, ValueError, "n_latents"),
            ("alpha_bad", None, {"alpha": 2.0}, ValueError, "alpha"),
            ("method_bad", None, {"method": "pc"}, ValueError, "method"),
            ("n_jobs_zero", None, {"n_jobs": 0, "n_bootstrap": 2}, ValueError, "n_jobs"),
            ("random_state_str", None, {"random_state": "a"}, TypeError, "random_state"),
            ("random_state_negative", None, {"random_state": -1}, ValueError, "random_state"),
            ("verbose_bad", None, {"verbose": -3}, ValueError, "verbose"),
        ],
    )


def _multimodal():
    from crl_neuro.datasets.multimodal import simulate_multimodal
    from crl_neuro.multimodal import MultiModalCRL

    sim = simulate_multimodal(n_samples=200, random_state=0)
    dims = {m: 3 for m in sim.modalities}
    first = sim.modalities[0]

    def edit(fn):
        return lambda a: {**a, "data": {**a["data"], first: fn(a["data"][first])}}

    def with_value(v):
        def fn(X):
            X = X.copy()
            X[1, 1] = v
            return X
        return edit(fn)

    return Spec(
        make=lambda **kw: MultiModalCRL(**{"latent_dims": dims, "max_iter": 3, "hidden": 8,
                                          "random_state": 0, **kw}),
        data=lambda: {"data": {m: np.array(v, copy=True) for m, v in sim.data.items()}},
        transform=lambda est, a: est.transform(a["data"]),
        bad=[
            ("nan", with_value(np.nan), {}, ValueError, f"{first}.*NaN"),
            ("inf", with_value(np.inf), {}, ValueError, f"{first}.*infinite"),
            ("huge", edit(lambda X: X * 1e200), {}, ValueError, f"{first}.*large"),
            ("complex", edit(lambda X: X + 1j), {}, ValueError, f"{first}.*complex"),
            ("strings", edit(lambda X: X.astype(str)), {}, TypeError, first),
            ("1d", edit(lambda X: X[:, 0]), {}, ValueError, first),
            ("empty", edit(lambda X: X[:0]), {}, ValueError, first),
            ("zero_features", edit(lambda X: X[:, :0]), {}, ValueError, first),
            ("rank_one", edit(lambda X: np.outer(X[:, 0], np.ones(X.shape[1]))), {}, ValueError,
             f"{first}.*rank"),
            ("not_a_dict", lambda a: {"data": list(a["data"].values())}, {}, TypeError, "data"),
            ("one_modality", lambda a: {"data": {first: a["data"][first]}}, {}, ValueError, "data|modalit"),
            ("sample_mismatch", edit(lambda X: X[:50]), {}, ValueError, "samples"),
            ("too_many_latents", None, {"latent_dims": {m: 50 for m in dims}}, ValueError, "latent_dims"),
            ("align_bad", None, {"align": "flow"}, ValueError, "align"),
            ("random_state_str", None, {"random_state": "a"}, TypeError, "random_state"),
            ("verbose_bad", None, {"verbose": "loud"}, ValueError, "verbose"),
            ("device_bad", None, {"device": "gpu"}, ValueError, "device"),
        ],
    )


def _world_model():
    pytest.importorskip("gymnasium")
    from crl_neuro.rl import (
        BLOCK_KEYS,
        FourBlockMDP,
        IFactorWorldModel,
        collect_episodes,
    )

    ep = collect_episodes(FourBlockMDP(random_state=0), n_episodes=3, n_steps=12, random_state=1)
    dims = {k: 1 for k in BLOCK_KEYS}

    def with_value(v):
        def edit(a):
            obs = a["observations"].copy()
            obs.flat[5] = v
            return {**a, "observations": obs}
        return edit

    return Spec(
        make=lambda **kw: IFactorWorldModel(**{"block_dims": dims, "hidden": 8, "max_iter": 2, "batch_size": 4,
                                               "seq_len": 5, "align_blocks": False, "random_state": 0, **kw}),
        data=lambda: {"observations": ep.observations.copy(), "actions": ep.actions.copy(),
                      "rewards": ep.rewards.copy()},
        transform=lambda est, a: est.transform(a["observations"], a["actions"]),
        bad=[
            ("nan", with_value(np.nan), {}, ValueError, "observations.*NaN"),
            ("huge", _set("observations", lambda X: X * 1e200), {}, ValueError, "observations.*large"),
            ("complex", _set("observations", lambda X: X + 1j), {}, ValueError, "observations.*complex"),
            ("strings", _set("observations", lambda X: X.astype(str)), {}, TypeError, "observations"),
            ("2d", _set("observations", lambda X: X[0]), {}, ValueError, "observations"),
            ("zero_features", _set("observations", lambda X: X[..., :0]), {}, ValueError, "observations"),
            ("actions_mismatch", _set("actions", lambda A: A[:, :-1]), {}, ValueError, "actions"),
            ("too_many_latents", None, {"block_dims": {k: 50 for k in dims}}, ValueError, "block_dims"),
            ("block_dims_list", None, {"block_dims": [1, 1, 1, 1]}, TypeError, "block_dims"),
            ("random_state_str", None, {"random_state": "a"}, TypeError, "random_state"),
            ("verbose_bad", None, {"verbose": "loud"}, ValueError, "verbose"),
        ],
    )


def _cem():
    pytest.importorskip("gymnasium")
    from crl_neuro.rl import CEMPolicy, FourBlockMDP

    return Spec(
        make=lambda **kw: CEMPolicy(**{"n_iter": 1, "population": 2, "warmup_episodes": 1,
                                       "max_episode_steps": 5, "eval_episodes": 0, "random_state": 0, **kw}),
        data=lambda: {"env": FourBlockMDP(random_state=0)},
        transform=None,
        bad=[
            ("env_array", lambda a: {"env": np.zeros((3, 3))}, {}, TypeError, "env"),
            ("env_none", lambda a: {"env": None}, {}, TypeError, "env"),
            ("population_one", None, {"population": 1}, ValueError, "population"),
            ("elite_frac_bad", None, {"elite_frac": 1.5}, ValueError, "elite_frac"),
            ("random_state_str", None, {"random_state": "a"}, TypeError, "random_state"),
            ("verbose_bad", None, {"verbose": "loud"}, ValueError, "verbose"),
        ],
    )


def _images():
    from crl_neuro.datasets.images import make_causal_images
    from crl_neuro.generative import CausalImageModel

    d = make_causal_images(40, image_size=12, random_state=0)

    def with_value(v):
        def edit(a):
            im = a["images"].copy()
            im.flat[7] = v
            return {**a, "images": im}
        return edit

    return Spec(
        make=lambda **kw: CausalImageModel(**{"max_iter": 1, "width": 4, "hidden": 16, "random_state": 0, **kw}),
        data=lambda: {"images": d.images.copy(), "attributes": d.attributes.copy()},
        transform=None,
        bad=[
            ("nan", with_value(np.nan), {}, ValueError, "images.*NaN"),
            ("huge", _set("images", lambda X: X * 1e200), {}, ValueError, "images"),
            ("complex", _set("images", lambda X: X + 1j), {}, ValueError, "images.*complex"),
            ("strings", _set("images", lambda X: X.astype(str)), {}, TypeError, "images"),
            ("2d", _set("images", lambda X: X[0]), {}, ValueError, "images"),
            ("empty", lambda a: {"images": a["images"][:0], "attributes": a["attributes"].iloc[:0]}, {},
             ValueError, "images|attributes"),
            ("attributes_array", _set("attributes", lambda A: A.to_numpy()), {}, TypeError, "attributes"),
            ("attributes_mismatch", _set("attributes", lambda A: A.iloc[:10]), {}, ValueError, "attributes"),
            ("latent_dim_zero", None, {"latent_dim": 0}, ValueError, "latent_dim"),
            ("random_state_str", None, {"random_state": "a"}, TypeError, "random_state"),
            ("verbose_bad", None, {"verbose": "loud"}, ValueError, "verbose"),
        ],
    )


def _session_crl():
    import mne

    from crl_neuro.datasets import simulate_meeg_sessions
    from crl_neuro.meeg import SessionCRL

    sim = simulate_meeg_sessions(n_sources=3, n_sessions=3, duration=10.0, random_state=0)
    other_cov = mne.make_ad_hoc_cov(mne.pick_info(sim.raws[0].info, list(range(5))), verbose=False)

    def with_value(v):
        def edit(a):
            raws = [r.copy() for r in a["insts"]]
            raws[0]._data[0, 10] = v
            return {**a, "insts": raws}
        return edit

    return Spec(
        make=lambda **kw: SessionCRL(**{"n_sources": 3, "noise_cov": sim.noise_cov, "sparsity": 0.1,
                                        "random_state": 0, **kw}),
        data=lambda: {"insts": [r.copy() for r in sim.raws]},
        transform=lambda est, a: est.transform(a["insts"][0]),
        bad=[
            ("nan", with_value(np.nan), {}, ValueError, "insts.*NaN|NaN.*insts"),
            ("one_session", lambda a: {"insts": a["insts"][:1]}, {}, ValueError, "session"),
            ("array", lambda a: {"insts": np.zeros((3, 10))}, {}, TypeError, "insts"),
            ("none", lambda a: {"insts": None}, {}, TypeError, "insts"),
            ("too_many_sources", None, {"n_sources": 500}, ValueError, "n_sources"),
            ("noise_cov_other_channels", None, {"noise_cov": other_cov}, ValueError, "noise_cov"),
            ("n_jobs_zero", None, {"n_jobs": 0}, ValueError, "n_jobs"),
            ("random_state_str", None, {"random_state": "a"}, TypeError, "random_state"),
            ("verbose_bad", None, {"verbose": "loud"}, ValueError, "verbose"),
        ],
    )


def _causal_rois():
    import nibabel as nib

    from crl_neuro.datasets.fmri import simulate_fmri_rois
    from crl_neuro.fmri import CausalROIs

    d = simulate_fmri_rois(scenario="separated", n_runs=2, n_timepoints=40, random_state=0)
    mask = np.asarray(d.mask_img.dataobj)

    def img_edit(fn, which=0):
        def edit(a):
            imgs = list(a["imgs"])
            imgs[which] = fn(imgs[which])
            return {**a, "imgs": imgs}
        return edit

    def data_of(fn):
        return lambda img: nib.Nifti1Image(fn(np.asarray(img.dataobj, dtype=float).copy()), img.affine)

    def nan_voxel(arr):
        arr[np.nonzero(mask)[0][0], np.nonzero(mask)[1][0], np.nonzero(mask)[2][0], 3] = np.nan
        return arr

    shifted = lambda img: nib.Nifti1Image(np.asarray(img.dataobj), img.affine + 1.0)
    mask_far = nib.Nifti1Image(np.zeros(mask.shape, np.int8), d.mask_img.affine)
    mask_4d = nib.Nifti1Image(np.stack([mask, mask], -1).astype(np.int8), d.mask_img.affine)
    far = d.mask_img.affine.copy()
    far[:3, 3] += 1000.0  # a metre away: no overlap with the images
    mask_elsewhere = nib.Nifti1Image(mask.astype(np.int8), far)

    return Spec(
        make=lambda **kw: CausalROIs(**{"n_rois": 3, "mask_img": d.mask_img, **kw}),
        data=lambda: {"imgs": list(d.imgs)},
        transform=lambda est, a: est.transform(a["imgs"]),
        bad=[
            ("nan_voxel", img_edit(data_of(nan_voxel)), {}, ValueError, "imgs.*NaN"),
            ("huge", img_edit(data_of(lambda x: x * 1e200)), {}, ValueError, "imgs.*large"),
            ("3d", img_edit(lambda img: nib.Nifti1Image(np.asarray(img.dataobj)[..., 0], img.affine)), {},
             ValueError, "imgs.*4D"),
            ("short", img_edit(data_of(lambda x: x[..., :5])), {}, ValueError, "imgs.*time points"),
            ("other_affine", img_edit(shifted, 1), {}, ValueError, r"imgs\[1\].*affine"),
            ("other_shape", img_edit(data_of(lambda x: x[:-1]), 1), {}, ValueError, r"imgs\[1\].*shape"),
            ("array", lambda a: {"imgs": np.zeros((4, 4, 4, 20))}, {}, TypeError, "imgs"),
            ("none", lambda a: {"imgs": None}, {}, TypeError, "imgs"),
            ("mask_empty", None, {"mask_img": mask_far}, ValueError, "mask_img"),
            ("mask_4d", None, {"mask_img": mask_4d}, ValueError, "mask_img"),
            ("mask_no_overlap", None, {"mask_img": mask_elsewhere}, ValueError, "mask_img.*overlap"),
            ("too_many_rois", None, {"n_rois": 10**6}, ValueError, "n_rois"),
            ("n_rois_zero", None, {"n_rois": 0}, ValueError, "n_rois"),
            ("t_r_negative", None, {"t_r": -2.0}, ValueError, "t_r"),
            ("smoothing_negative", None, {"smoothing_fwhm": -1.0}, ValueError, "smoothing_fwhm"),
            ("n_jobs_zero", None, {"n_jobs": 0}, ValueError, "n_jobs"),
            ("random_state_str", None, {"random_state": "a"}, TypeError, "random_state"),
            ("verbose_bad", None, {"verbose": "loud"}, ValueError, "verbose"),
        ],
    )


SPECS: dict[str, Callable[[], Spec]] = {
    "CausalImageModel": _images,
    "CausalROIs": _causal_rois,
    "CEMPolicy": _cem,
    "IFactorWorldModel": _world_model,
    "IVAE": _ivae,
    "LatentCausalModel": _lcm,
    "MultiDistributionCRL": _mdcrl,
    "MultiModalCRL": _multimodal,
    "SessionCRL": _session_crl,
}
# Estimators too slow for the default run (marked slow); none at present.
SLOW: set[str] = set()  # every estimator fits in about a second or two here
_SPEC_CACHE: dict[str, Spec] = {}
_CACHE: dict[str, tuple[Spec, BaseCRLEstimator]] = {}


def _spec(name: str) -> Spec:
    if name not in _SPEC_CACHE:  # simulating the data once per module keeps this fast
        _SPEC_CACHE[name] = SPECS[name]()
    return _SPEC_CACHE[name]


def _spec_and_fitted(name: str) -> tuple[Spec, BaseCRLEstimator]:
    if name not in _CACHE:
        spec = _spec(name)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            _CACHE[name] = spec, spec.make().fit(**spec.data())
    return _CACHE[name]


def _params(names):
    return [pytest.param(n, marks=pytest.mark.slow) if n in SLOW else n for n in names]


def _bad_params():
    out = []
    for name in sorted(SPECS):
        # Row ids only; the rows themselves are built when the test runs (data are lazy).
        for row in _row_ids(name):
            marks = [pytest.mark.slow] if name in SLOW else []
            out.append(pytest.param(name, row, id=f"{name}-{row}", marks=marks))
    return out


_ROW_IDS = {
    "CausalImageModel": ["nan", "huge", "complex", "strings", "2d", "empty", "attributes_array",
                         "attributes_mismatch", "latent_dim_zero", "random_state_str", "verbose_bad"],
    "CausalROIs": ["nan_voxel", "huge", "3d", "short", "other_affine", "other_shape", "array", "none",
                   "mask_empty", "mask_4d", "mask_no_overlap", "too_many_rois", "n_rois_zero",
                   "t_r_negative", "smoothing_negative", "n_jobs_zero", "random_state_str", "verbose_bad"],
    "CEMPolicy": ["env_array", "env_none", "population_one", "elite_frac_bad", "random_state_str",
                  "verbose_bad"],
    "IFactorWorldModel": ["nan", "huge", "complex", "strings", "2d", "zero_features", "actions_mismatch",
                          "too_many_latents", "block_dims_list", "random_state_str", "verbose_bad"],
    "LatentCausalModel": ["inf", "huge", "complex", "strings", "none", "1d", "empty", "zero_features",
                          "too_few_samples", "duplicated_items", "too_many_latents", "alpha_bad",
                          "method_bad", "n_jobs_zero", "random_state_str", "random_state_negative",
                          "verbose_bad"],
    "MultiModalCRL": ["nan", "inf", "huge", "complex", "strings", "1d", "empty", "zero_features", "rank_one",
                      "not_a_dict", "one_modality", "sample_mismatch", "too_many_latents", "align_bad",
                      "random_state_str", "verbose_bad", "device_bad"],
    "SessionCRL": ["nan", "one_session", "array", "none", "too_many_sources", "noise_cov_other_channels",
                   "n_jobs_zero", "random_state_str", "verbose_bad"],
}
_ARRAY_ROWS = [r[0] for r in _array_cases()]
_ROW_IDS["MultiDistributionCRL"] = _ARRAY_ROWS + ["mixing_bad", "sparsity_negative", "n_init_zero",
                                                  "nonlinear_few_samples"]
_ROW_IDS["IVAE"] = _ARRAY_ROWS + ["hidden_zero", "lr_negative"]


def _row_ids(name):
    return _ROW_IDS[name]


# ----------------------------------------------------------------------------- registry
def test_registry_lists_every_public_estimator():
    import importlib
    import pkgutil

    for mod in pkgutil.walk_packages(crl_neuro.__path__, "crl_neuro."):
        if mod.name.rsplit(".", 1)[-1] in ("cli", "__main__"):
            continue
        try:
            importlib.import_module(mod.name)
        except ImportError:  # optional dependency missing
            continue
    found = {
        c.__name__ for c in base._REGISTRY.values()
        if c.__module__.startswith("crl_neuro.") and not c.__name__.startswith("_")
    }
    assert found == set(all_estimators())
    assert set(SPECS) == set(all_estimators())


@pytest.mark.parametrize("name", _params(sorted(SPECS)))
def test_row_ids_match_specs(name):
    # The ids used to parametrise must list every row of the spec, in order.
    assert [r[0] for r in _spec(name).bad] == _ROW_IDS[name]


@pytest.mark.parametrize("name", sorted(SPECS))
def test_estimator_contract_classes(name):
    cls = all_estimators()[name]
    doc = cls.__doc__
    assert "%(" not in doc  # every shared entry was filled
    for key in ("random_state", "verbose"):
        assert docdict[key].splitlines()[0] in doc
    assert "verbose" in inspect.signature(cls.fit).parameters
    est = _spec(name).make()
    if hasattr(cls, "transform"):
        assert issubclass(cls, TransformerMixin)
        assert "verbose" in inspect.signature(cls.transform).parameters
        assert est.__sklearn_tags__().transformer_tags is not None
    assert not est.__sklearn_is_fitted__()
    with pytest.raises(NotFittedError):
        crl_neuro.core.check_is_fitted(est)


# ----------------------------------------------------------------------------- bad input
@pytest.mark.parametrize(("name", "row"), _bad_params())
def test_bad_input_is_rejected_clearly(name, row):
    spec = _spec(name)
    rows = {r[0]: r for r in spec.bad}
    _, edit, params, exc, match = rows[row]
    args = spec.data()
    if edit is not None:
        args = edit(args)
    est = spec.make(**params)
    with warnings.catch_warnings():
        warnings.simplefilter("error", np.exceptions.ComplexWarning)
        warnings.simplefilter("error", RuntimeWarning)  # no silent overflow either
        with pytest.raises(exc, match=match) as info:
            est.fit(**args)
    # our message, raised by our validation: not from inside numpy/torch/scipy
    tb = info.traceback
    assert "crl_neuro" in str(tb[-1].path), f"raised from {tb[-1].path}"


# ----------------------------------------------------------------------------- safety
def _hash(obj: Any) -> str:
    h = hashlib.sha256()

    def feed(o):
        if isinstance(o, np.ndarray):
            h.update(np.ascontiguousarray(o).tobytes())
            h.update(str(o.shape).encode())
        elif isinstance(o, pd.DataFrame):
            feed(o.to_numpy())
            h.update(repr(list(o.columns)).encode())
        elif isinstance(o, dict):
            for k in sorted(o, key=str):
                h.update(str(k).encode())
                feed(o[k])
        elif isinstance(o, (list, tuple)):
            for v in o:
                feed(v)
        elif hasattr(o, "get_data") and hasattr(o, "info"):  # MNE Raw/Epochs
            feed(o.get_data())
        elif hasattr(o, "dataobj"):  # nibabel image
            feed(np.asarray(o.dataobj))
            feed(np.asarray(o.affine))
        else:
            h.update(pickle.dumps(type(o).__name__))
    feed(obj)
    return h.hexdigest()


@pytest.mark.parametrize("name", _params(sorted(SPECS)))
def test_inputs_unchanged_and_same_seed_same_result(name):
    spec, fitted = _spec_and_fitted(name)
    args = spec.data()
    before = _hash(args)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        est = spec.make().fit(**args)
        out = spec.transform(est, args) if spec.transform else None
    assert _hash(args) == before
    ref = spec.transform(fitted, args) if spec.transform else None
    if out is not None:
        assert _hash(out) == _hash(ref)  # bitwise identical on CPU
    params = [k for k, v in vars(est).items() if k.endswith("_") and isinstance(v, np.ndarray)]
    for k in params:
        np.testing.assert_array_equal(getattr(est, k), getattr(fitted, k))


@pytest.mark.parametrize("name", _params(sorted(SPECS)))
def test_save_load_clone_get_params(name, tmp_path):
    spec, fitted = _spec_and_fitted(name)
    loaded = crl_neuro.load(fitted.save(tmp_path / f"{name}.crl"))
    assert type(loaded) is type(fitted)
    args = spec.data()
    if spec.transform is not None:
        assert _hash(spec.transform(loaded, args)) == _hash(spec.transform(fitted, args))
    params = fitted.get_params()
    fresh = clone(fitted)
    assert not fresh.__sklearn_is_fitted__()
    assert set(fresh.get_params()) == set(params)
    assert fresh.set_params(random_state=7).random_state == 7
    assert fitted.random_state != 7 or params["random_state"] == 7


_GRAPH_ESTIMATORS = {"CausalImageModel", "CausalROIs", "LatentCausalModel", "MultiDistributionCRL",
                     "MultiModalCRL", "SessionCRL"}


def test_graph_estimators_are_the_ones_with_graph_attributes():
    from crl_neuro.core.graphs import GraphMixin

    assert {n for n, cls in crl_neuro.core.all_estimators().items() if issubclass(cls, GraphMixin)} == _GRAPH_ESTIMATORS


@pytest.mark.parametrize("name", _params(sorted(_GRAPH_ESTIMATORS & set(SPECS))))
def test_to_graph_matches_the_documented_encoding(name):
    """Every fitted graph comes back as a Graph whose adjacency is the attribute's."""
    from crl_neuro.core.graphs import Graph

    spec, fitted = _spec_and_fitted(name)
    with pytest.raises(NotFittedError):
        spec.make().to_graph()
    kinds = fitted.graph_kinds()
    assert fitted.to_graph().to_dict() == fitted.to_graph(next(iter(kinds))).to_dict()
    for which, attr in kinds.items():
        value = getattr(fitted, attr)
        if value is None:  # e.g. no PC graph when the graph was given
            with pytest.raises(ValueError, match=which):
                fitted.to_graph(which)
            continue
        before = _hash(value if not isinstance(value, Graph) else value.to_dict())
        g = fitted.to_graph(which)
        assert isinstance(g, Graph)
        if isinstance(value, Graph):
            assert g == value and g is not value
        else:
            a = np.asarray(value.to_numpy() if isinstance(value, pd.DataFrame) else value) != 0
            expected = a | a.T if g.kind == "undirected" else a
            np.testing.assert_array_equal(g.to_adjacency() != 0, expected)
            assert len(set(g.names)) == g.n_nodes == a.shape[0]
        g.marks[...] = 0  # the estimator's graph is not a view of the returned one
        assert _hash(value if not isinstance(value, Graph) else value.to_dict()) == before
    with pytest.raises(ValueError, match="which must be one of"):
        fitted.to_graph("nope")


def test_latent_causal_model_warns_on_few_respondents():
    spec = _spec("LatentCausalModel")
    small = spec.data()["data"].iloc[:40]  # 12 items, 40 respondents
    with pytest.warns(UserWarning, match="respondents"):
        spec.make().fit(small)


def test_causal_rois_inverse_transform_refuses_nan():
    _, est = _spec_and_fitted("CausalROIs")
    signals = np.zeros((4, est.n_rois))
    signals[1, 1] = np.nan
    with pytest.raises(ValueError, match="signals.*NaN"):
        est.inverse_transform(signals)
    with pytest.raises(ValueError, match="signals.*complex"):
        est.inverse_transform(signals[:1] * 0 + 1j)


# ----------------------------------------------------------------------------- logging
def test_verbose_prints_through_the_one_logger(capsys):
    spec, _ = _spec_and_fitted("MultiDistributionCRL")
    args = spec.data()
    spec.make(verbose=1).fit(**args)
    assert "MultiDistributionCRL:" in capsys.readouterr().err
    spec.make(verbose=0).fit(**args)
    assert capsys.readouterr().err == ""
    est = spec.make(verbose=False).fit(**args, verbose="INFO")  # method overrides __init__
    assert "MultiDistributionCRL:" in capsys.readouterr().err
    est.transform(args["X"], verbose=True)
    assert base.logger.level == logging.WARNING  # restored after each call


@pytest.mark.parametrize(("value", "level"), [
    (None, None), (True, logging.INFO), (False, logging.WARNING), (0, logging.WARNING),
    (1, logging.INFO), (2, logging.DEBUG), (30, 30), ("debug", logging.DEBUG), ("ERROR", logging.ERROR),
])
def test_verbose_levels(value, level):
    assert base._verbose_level(value) == level


@pytest.mark.parametrize(("value", "exc"), [("loud", ValueError), (-1, ValueError), (1.5, TypeError),
                                            ([1], TypeError)])
def test_verbose_bad_values(value, exc):
    with pytest.raises(exc, match="verbose"):
        base._verbose_level(value)


def test_use_log_level_restores_and_logger_has_one_handler():
    assert base.logger.level == logging.WARNING
    with use_log_level("DEBUG"):
        assert base.logger_verbosity() == 2
    assert base.logger.level == logging.WARNING
    assert sum(getattr(h, "_crl_neuro", False) for h in base.logger.handlers) == 1


def test_no_print_in_library_code():
    import ast
    from pathlib import Path

    root = Path(crl_neuro.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.name in ("cli.py", "report.py", "__main__.py"):  # the CLI's product is its output
            continue
        if path.relative_to(root).as_posix() == "viz.py":
            # show_or_save ends scripts: telling where the figures went is its output
            # (verbose=False silences it).
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print":
                offenders.append(f"{path.relative_to(root)}:{node.lineno}")
    assert offenders == []


# ----------------------------------------------------------------------------- docs
def test_fill_doc_indents_and_leaves_other_percent_signs():
    @fill_doc
    def f():
        """Do it at 50%.

        Parameters
        ----------
        %(random_state)s
        """

    assert "50%." in f.__doc__
    assert "\n        random_state : int | RandomState | None\n            Randomness" in f.__doc__

    def g():
        """%(nope)s"""

    with pytest.raises(KeyError, match="nope"):
        fill_doc(g)


# ----------------------------------------------------------------------------- random_state
def test_random_state_policy():
    assert check_seed(5) == 5  # ints stay as given: deterministic
    rs = np.random.RandomState(0)
    a = check_seed(rs)
    assert a != check_seed(rs)  # a RandomState is drawn from
    np.random.seed(3)
    first = check_seed(None)
    np.random.seed(3)
    assert check_seed(None) == first  # None follows numpy's global state ...
    assert {check_seed(None) for _ in range(5)} != {0}  # ... and never silently means 0
    assert isinstance(check_random_state(np.int64(4)), np.random.RandomState)
    for bad, exc in [("a", TypeError), (-1, ValueError), (2**32, ValueError), (1.5, TypeError),
                     (True, TypeError)]:
        with pytest.raises(exc, match="random_state"):
            check_seed(bad)
    with pytest.raises(ValueError, match="n_jobs"):
        check_n_jobs(0)
    assert check_n_jobs(None) is None and check_n_jobs(-1) == -1


def test_random_state_instance_accepted_by_estimators():
    spec, _ = _spec_and_fitted("MultiDistributionCRL")
    est = spec.make(random_state=np.random.RandomState(0)).fit(**spec.data())
    assert est.transform(spec.data()["X"]).shape[1] == 2


def test_causal_rois_none_seed_is_not_zero():
    from crl_neuro.fmri.causal_rois import _check_shared_params

    np.random.seed(0)
    draws = {_check_shared_params(None, 1) for _ in range(4)}
    assert len(draws) > 1 and _check_shared_params(3, None) == 3


# ----------------------------------------------------------------------------- validators
@pytest.mark.parametrize(("X", "exc", "match"), [
    (np.ones((4, 2)) + 1j, ValueError, "complex"),
    (np.full((4, 2), 1e200), ValueError, "large"),
    (np.array([["a", "b"]] * 3), TypeError, "numbers"),
    (np.ones((4, 0)), ValueError, "features"),
])
def test_check_data_rejects(X, exc, match):
    with pytest.raises(exc, match=f"X.*{match}|{match}.*X"):
        check_data(X, "X")


try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
    from hypothesis.extra.numpy import array_shapes, arrays
except ImportError:  # pragma: no cover - hypothesis is optional
    given = None

if given is not None:
    @settings(max_examples=60, deadline=None)
    @given(arrays(dtype=st.sampled_from([np.float64, np.float32, np.int64, np.complex128]),
                  shape=array_shapes(min_dims=0, max_dims=3, min_side=0, max_side=5)))
    def test_check_data_never_fails_obscurely(X):
        """Any array either validates into a finite float copy or fails with our message."""
        before = X.copy()
        try:
            out = check_data(X, "X")
        except (TypeError, ValueError) as err:
            assert "X" in str(err)
        else:
            assert out.dtype == np.float64 and np.all(np.isfinite(out)) and out.ndim == 2
            assert np.all(np.abs(out) < 1e100)
        np.testing.assert_array_equal(X, before)
