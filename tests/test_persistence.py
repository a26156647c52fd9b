"""Safe persistence: atomic save, validated load, parameter hooks, roll-back of failed fits."""

from __future__ import annotations

import io
import json
import zipfile
from typing import ClassVar
from unittest import mock

import numpy as np
import pytest

import crl_neuro
from crl_neuro.core import base
from crl_neuro.core.base import (
    ArraySpec,
    BaseCRLEstimator,
    CorruptModelError,
    read_metadata,
)
from crl_neuro.core.multidist import MultiDistributionCRL


class SpecEstimator(BaseCRLEstimator):
    """Declares its fitted arrays; ``fail_after`` makes ``fit`` raise half-way."""

    _fitted_arrays: ClassVar[dict[str, ArraySpec]] = {
        "components_": ArraySpec("f", ("n_features_in_", "k")),
        "mean_": ArraySpec("f", ("n_features_in_",)),
        "network_": ArraySpec("b", ("k", "k")),
        "extra_": ArraySpec("f", (2, None), optional=True),
    }

    def __init__(self, n_components=2, fail_after=False):
        self.n_components = n_components
        self.fail_after = fail_after

    def fit(self, X):
        X = np.asarray(X, dtype=float)
        self.n_features_in_ = X.shape[1]
        self.mean_ = X.mean(axis=0)
        if self.fail_after:
            raise RuntimeError("failure after the first fitted attributes")
        self.components_ = np.linalg.svd(X - self.mean_, full_matrices=False)[2][: self.n_components].T
        self.network_ = np.eye(self.n_components, dtype=bool)
        return self

    def transform(self, X):
        return (np.asarray(X, dtype=float) - self.mean_) @ self.components_


@pytest.fixture
def X():
    return np.random.default_rng(0).normal(size=(40, 5))


@pytest.fixture
def saved(X, tmp_path):
    return SpecEstimator(n_components=3).fit(X).save(tmp_path / "m.crl")


def _members(path):
    with zipfile.ZipFile(path) as zf:
        return {n: zf.read(n) for n in zf.namelist()}


def _rewrite(path, members):
    with zipfile.ZipFile(path, "w") as zf:
        for n, b in members.items():
            zf.writestr(n, b)


def _arrays(members):
    with np.load(io.BytesIO(members["arrays.npz"]), allow_pickle=False) as npz:
        return {k: npz[k] for k in npz.files}


def _set_arrays(members, arrays):
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    members["arrays.npz"] = buf.getvalue()


def _key_of(members, name):
    return json.loads(members["meta.json"])["fitted"][name]["key"]


# -- atomic save ------------------------------------------------------------------------------
def test_failed_save_keeps_old_file_and_leaves_no_temporary(X, tmp_path, saved):
    good = saved.read_bytes()
    est = SpecEstimator(n_components=2).fit(X)
    real_savez = np.savez

    def savez_then_crash(file, *args, **kwargs):  # meta.json is in the archive already
        real_savez(file, *args, **kwargs)
        raise OSError("disk full")

    with mock.patch.object(base.np, "savez", savez_then_crash), pytest.raises(OSError, match="disk full"):
        est.save(saved, overwrite=True)
    assert saved.read_bytes() == good
    assert crl_neuro.load(saved).components_.shape == (5, 3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.crl"]

    def half_written(f, *args):  # the writer dies after part of the bytes
        f.write(b"PK\x03\x04 partial")
        raise KeyboardInterrupt

    with mock.patch.object(base, "_write_archive", half_written), pytest.raises(KeyboardInterrupt):
        est.save(saved, overwrite=True)
    assert saved.read_bytes() == good
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.crl"]
    # A successful overwrite replaces the file and leaves nothing else.
    est.save(saved, overwrite=True)
    assert crl_neuro.load(saved).components_.shape == (5, 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.crl"]


def test_save_metadata_and_read_metadata(X, tmp_path):
    est = SpecEstimator().fit(X)
    path = est.save(tmp_path / "meta.crl", metadata={"run": {"fingerprint": "abc", "n": 3}})
    assert read_metadata(path) == {"run": {"fingerprint": "abc", "n": 3}}
    assert read_metadata(est.save(tmp_path / "none.crl")) == {}
    data = bytearray(path.read_bytes())
    with pytest.raises(CorruptModelError):
        (tmp_path / "cut.crl").write_bytes(bytes(data[: len(data) // 2]))
        read_metadata(tmp_path / "cut.crl")


# -- validated load ---------------------------------------------------------------------------
def test_load_checks_declared_shapes_and_dtypes(saved, X):
    est = crl_neuro.load(saved)
    assert est.transform(X).shape == (40, 3)
    members = _members(saved)
    arrays = _arrays(members)
    key = _key_of(members, "components_")
    cases = {
        "one column less": (key, arrays[key][:, :2]),  # k disagrees with network_
        "one feature less": (key, arrays[key][:4]),  # disagrees with n_features_in_
        "1-D": (key, arrays[key].ravel()),
        "integer dtype": (key, arrays[key].astype(np.int64)),
        "float network": (_key_of(members, "network_"), np.eye(3)),
    }
    for why, (k, value) in cases.items():
        bad = dict(members)
        _set_arrays(bad, {**arrays, k: value})
        _rewrite(saved, bad)
        with pytest.raises(CorruptModelError, match="fitted attribute"):
            crl_neuro.load(saved)
            pytest.fail(why)
    # A declared attribute stored as something else than an array, or missing.
    meta = json.loads(members["meta.json"])
    for change in ({"mean_": {"__kind__": "json", "value": [0.0] * 5}}, {"mean_": None}):
        m2 = json.loads(json.dumps(meta))
        m2["fitted"].update(change)
        if change["mean_"] is None:
            del m2["fitted"]["mean_"]
        _rewrite(saved, {**members, "meta.json": json.dumps(m2).encode()})
        with pytest.raises(CorruptModelError, match="mean_"):
            crl_neuro.load(saved)
    # n_features_in_ that disagrees with the arrays
    m3 = json.loads(json.dumps(meta))
    m3["fitted"]["n_features_in_"] = {"__kind__": "json", "value": 6}
    _rewrite(saved, {**members, "meta.json": json.dumps(m3).encode()})
    with pytest.raises(CorruptModelError, match="n_features_in_"):
        crl_neuro.load(saved)


def test_load_gives_one_error_class_for_damaged_files(saved, tmp_path):
    members = _members(saved)
    data = saved.read_bytes()
    damaged = {}
    damaged["truncated"] = data[: len(data) - 40]
    damaged["half"] = data[: len(data) // 2]
    flipped = bytearray(data)
    i = data.index(b"arrays.npz") + 200  # inside the compressed array data
    flipped[i] ^= 0xFF
    damaged["bit flip"] = bytes(flipped)
    for name, content in damaged.items():
        p = tmp_path / f"{name}.crl"
        p.write_bytes(content)
        with pytest.raises(CorruptModelError):
            crl_neuro.load(p)
    variants = {
        "bad json": {**members, "meta.json": b"{not json"},
        "meta not a dict": {**members, "meta.json": b"[1, 2]"},
        "no arrays": {k: v for k, v in members.items() if k != "arrays.npz"},
        "npz garbage": {**members, "arrays.npz": b"garbage"},
        "no fitted entry": {**members, "meta.json": json.dumps(
            {**json.loads(members["meta.json"]), "fitted": None}).encode()},
        "unknown kind": {**members, "meta.json": json.dumps(
            {**json.loads(members["meta.json"]),
             "fitted": {"mean_": {"__kind__": "pickle"}}}).encode()},
        "missing array key": {**members, "meta.json": json.dumps(
            {**json.loads(members["meta.json"]),
             "fitted": {"mean_": {"__kind__": "array", "key": "a99"}}}).encode()},
        "object json array": {**members, "meta.json": json.dumps(
            {**json.loads(members["meta.json"]), "fitted": {
                "extra_": {"__kind__": "json", "value": {"__array__": [1], "dtype": "object"}}}}).encode()},
    }
    for name, content in variants.items():
        p = tmp_path / "variant.crl"
        _rewrite(p, content)
        with pytest.raises(CorruptModelError):
            crl_neuro.load(p)
            pytest.fail(name)
    assert issubclass(CorruptModelError, ValueError)
    assert crl_neuro.CorruptModelError is CorruptModelError


def test_tampered_real_estimator_fails_at_load(tmp_path):
    """A MultiDistributionCRL whose unmixing matrix gained a row loads no more (it used to
    load and give 5 latents from a 4-latent model)."""
    rng = np.random.default_rng(0)
    A = rng.normal(size=(6, 3))
    X = np.vstack([(rng.normal(size=(150, 3)) * rng.uniform(0.5, 2, 3)) @ A.T for _ in range(4)])
    dom = np.repeat(np.arange(4), 150)
    est = MultiDistributionCRL(n_latents=3, random_state=0).fit(X, dom)
    path = est.save(tmp_path / "md.crl")
    members = _members(path)
    arrays = _arrays(members)
    key = _key_of(members, "unmixing_")
    _set_arrays(members, {**arrays, key: np.vstack([arrays[key], arrays[key][:1]])})
    _rewrite(path, members)
    with pytest.raises(CorruptModelError, match="unmixing_"):
        crl_neuro.load(path)


# -- parameter hooks ----------------------------------------------------------------------------
def _no_setattr(self, name, value):
    raise AssertionError(f"save modified the estimator ({name})")


def test_non_json_parameters_round_trip_without_touching_the_estimator(tmp_path):
    """Nifti mask, Memory, Covariance and DataFrame parameters go through the hooks."""
    import mne
    import nibabel as nib
    import pandas as pd
    from joblib import Memory

    from crl_neuro.fmri import CausalROIs
    from crl_neuro.generative import CausalImageModel
    from crl_neuro.meeg import SessionCRL

    mask = nib.Nifti1Image(np.ones((3, 3, 2), np.uint8), np.diag([2.0, 2.0, 2.0, 1.0]))
    rois = CausalROIs(n_rois=2, mask_img=mask, memory=Memory(str(tmp_path / "cache"), verbose=0))
    cov = mne.Covariance(np.eye(2), ["a", "b"], [], [], 10)
    meeg = SessionCRL(n_sources=2, noise_cov=cov)
    graph = pd.DataFrame([[0.0, 1.0], [0.0, 0.0]], index=["a", "b"], columns=["a", "b"])
    gen = CausalImageModel(graph=graph)
    for est in (rois, meeg, gen):
        before = dict(vars(est))
        with mock.patch.object(type(est), "__setattr__", _no_setattr):
            path = est.save(tmp_path / f"{type(est).__name__}.crl")
        assert vars(est).keys() == before.keys() and all(vars(est)[k] is v for k, v in before.items())
    loaded = crl_neuro.load(tmp_path / "CausalROIs.crl")
    np.testing.assert_array_equal(np.asarray(loaded.mask_img.dataobj), np.asarray(mask.dataobj))
    np.testing.assert_array_equal(loaded.mask_img.affine, mask.affine)
    assert loaded.memory == str(tmp_path / "cache")
    loaded = crl_neuro.load(tmp_path / "SessionCRL.crl")
    assert loaded.noise_cov.ch_names == ["a", "b"]
    np.testing.assert_array_equal(loaded.noise_cov.data, np.eye(2))
    loaded = crl_neuro.load(path)
    pd.testing.assert_frame_equal(loaded.graph, graph)


# -- failed refits ------------------------------------------------------------------------------
def test_failed_fit_restores_previous_state_or_none(X):
    est = SpecEstimator(n_components=2).fit(X)
    before = dict(vars(est))
    est.set_params(fail_after=True)
    with pytest.raises(RuntimeError, match="half|first fitted"):
        est.fit(X[:, :4] + 10.0)  # new n_features_in_/mean_ are set before the failure
    after = dict(vars(est))
    after["fail_after"] = False
    assert after.keys() == before.keys() and all(after[k] is before[k] for k in before)
    assert est.transform(X).shape == (40, 2)
    fresh = SpecEstimator(fail_after=True)
    with pytest.raises(RuntimeError):
        fresh.fit(X)
    assert not [k for k in vars(fresh) if k.endswith("_")]
    # the wrappers keep the signature (plus the keyword-only verbose=) and docstring of fit
    import inspect

    assert list(inspect.signature(SpecEstimator.fit).parameters) == ["self", "X", "verbose"]
    assert MultiDistributionCRL.fit.__doc__ == MultiDistributionCRL.fit.__wrapped__.__doc__


def test_multimodal_failed_refit_keeps_old_feature_statistics():
    """The issue's case: a refit failing on a constant feature used to leave the new
    feature statistics beside the old network, so transform of the old data failed."""
    from crl_neuro.datasets.multimodal import simulate_multimodal
    from crl_neuro.multimodal import MultiModalCRL

    sim = simulate_multimodal(n_samples=200, latent_dims=2, random_state=3)
    est = MultiModalCRL(latent_dims={"m1": 2, "m2": 2}, max_iter=3, random_state=0).fit(sim.data)
    Z = est.transform(sim.data)
    mean = est.feature_mean_
    bad = {m: np.hstack([x, np.ones((x.shape[0], 1))]) for m, x in sim.data.items()}
    with pytest.raises(ValueError, match="constant"):
        est.fit(bad)
    assert est.feature_mean_ is mean
    out = est.transform(sim.data)
    for m in Z:
        np.testing.assert_array_equal(out[m], Z[m])


def test_causal_rois_failed_refit_keeps_labels_and_graph_together(monkeypatch):
    """A refit that fails after the new labels are set (here in the abstraction error)
    must not leave them beside the old graph."""
    from crl_neuro.datasets import simulate_fmri_rois
    from crl_neuro.fmri import CausalROIs
    from crl_neuro.fmri import causal_rois as mod

    data = simulate_fmri_rois(scenario="separated", n_runs=2, n_timepoints=60, random_state=0)
    est = CausalROIs(n_rois=5, mask_img=data.mask_img).fit(data.imgs)
    state = dict(vars(est))
    other = simulate_fmri_rois(scenario="coupled", n_runs=2, n_timepoints=60, random_state=1)

    def boom(*args, **kwargs):
        raise FloatingPointError("abstraction failed")

    monkeypatch.setattr(mod, "_abstraction_error", boom)
    with pytest.raises(FloatingPointError):
        est.fit(other.imgs)
    assert vars(est).keys() == state.keys()
    assert all(vars(est)[k] is v for k, v in state.items())
