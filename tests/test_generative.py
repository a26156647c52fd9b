"""Tests of make_causal_images (ground-truth renderer) and CausalImageModel."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import crl_neuro
from crl_neuro.datasets.images import ATTRIBUTES, make_causal_images
from crl_neuro.generative import CausalImageModel


# -- renderer ----------------------------------------------------------------------------
def test_renderer_ground_truth():
    d = make_causal_images(50, image_size=16, random_state=0)
    assert d.images.shape == (50, 16, 16)
    assert d.images.min() >= 0 and d.images.max() <= 1
    assert list(d.attributes.columns) == list(ATTRIBUTES)
    assert d.graph.loc["angle", "shadow_position"] == 1 and d.graph.loc["shadow_position", "angle"] == 0
    assert d.graph.to_numpy().sum() == 4
    # re-rendering from the same attributes and noise reproduces the images exactly
    np.testing.assert_array_equal(d.render(d.attributes), d.images)
    # the SCM on the stored noise gives back the attributes, and a null do changes nothing
    pd.testing.assert_frame_equal(d.scm(d.noise), d.attributes)
    imgs, _ = d.counterfactual({"angle": d.attributes["angle"].to_numpy()})
    np.testing.assert_array_equal(imgs, d.images)
    # same seed, same data; other seed, other data
    np.testing.assert_array_equal(make_causal_images(50, 16, random_state=0).images, d.images)
    assert not np.array_equal(make_causal_images(50, 16, random_state=1).images, d.images)


def test_renderer_counterfactual_changes_descendants_only():
    d = make_causal_images(40, image_size=16, random_state=0)
    imgs, attrs = d.counterfactual({"shadow_position": 0.7})
    for col in ("angle", "light", "shadow_length"):
        np.testing.assert_array_equal(attrs[col], d.attributes[col])
    assert np.all(attrs["shadow_position"] == 0.7)
    imgs, attrs = d.counterfactual({"angle": 0.1})
    np.testing.assert_array_equal(attrs["light"], d.attributes["light"])
    assert np.mean(attrs["shadow_position"] != d.attributes["shadow_position"]) > 0.9
    assert np.mean(attrs["shadow_length"] != d.attributes["shadow_length"]) > 0.9
    assert np.mean(np.abs(imgs - d.images)) > 0.005
    # the exogenous noise of the shadow is kept: residual of the counterfactual is unchanged
    from crl_neuro.datasets.images import _shadow

    c_new, _ = _shadow(attrs["angle"].to_numpy(), attrs["light"].to_numpy())
    c_old, _ = _shadow(d.attributes["angle"].to_numpy(), d.attributes["light"].to_numpy())
    np.testing.assert_allclose(attrs["shadow_position"] - c_new, d.attributes["shadow_position"] - c_old)
    with pytest.raises(ValueError, match="unknown attribute"):
        d.counterfactual({"age": 1.0})
    # the style noise matters, and must match the rows
    other = d.noise.assign(background=d.noise["background"] + 0.05)
    assert not np.array_equal(d.render(d.attributes, noise=other), d.images)
    with pytest.raises(ValueError, match="rows"):
        d.render(d.attributes.iloc[:5])
    with pytest.raises(ValueError, match="image_size"):
        make_causal_images(10, image_size=4)
    with pytest.raises(ValueError, match="n_samples"):
        make_causal_images(0)


# -- model ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def fitted():
    train = make_causal_images(600, image_size=24, random_state=0)
    model = CausalImageModel(max_iter=25, random_state=0).fit(train.images, train.attributes)
    test = make_causal_images(150, image_size=24, random_state=1)
    return model, train, test


def test_learns_graph_with_pc(fitted):
    model, train, _ = fitted
    assert list(model.graph_.index) == list(ATTRIBUTES)
    np.testing.assert_array_equal(model.graph_.to_numpy() != 0, train.graph.to_numpy() != 0)


def test_effect_edit_keeps_causes_and_changes_effect(fitted):
    model, _, test = fitted
    rng = np.random.default_rng(321)
    target = rng.uniform(0.55, 0.85, len(test.images))
    before = model.predict_attributes(test.images)
    # the attribute head is accurate on real images
    assert np.corrcoef(before["angle"], test.attributes["angle"])[0, 1] > 0.95
    cf, cf_attrs = model.counterfactual(test.images, test.attributes, {"shadow_position": target},
                                        return_attributes=True)
    assert cf.shape == test.images.shape
    np.testing.assert_allclose(cf_attrs["angle"], test.attributes["angle"])
    after = model.predict_attributes(cf)
    # causes stay put (within a few % of their range), the effect follows the do-value
    assert np.mean(np.abs(after["angle"] - before["angle"])) < 0.06
    assert np.mean(np.abs(after["light"] - before["light"])) < 0.03
    assert np.corrcoef(after["shadow_position"], target)[0, 1] > 0.75


def test_cause_edit_propagates_and_beats_graph_ignoring_edit(fitted):
    model, _, test = fitted
    rng = np.random.default_rng(123)  # not the data seed: its draws would equal the angles
    target = rng.uniform(0.0, 0.9, len(test.images))
    true_imgs, true_attrs = test.counterfactual({"angle": target})
    cf, cf_attrs = model.counterfactual(test.images, test.attributes, {"angle": target}, return_attributes=True)
    # the SCM moves the effects close to the true counterfactual attributes
    assert np.corrcoef(cf_attrs["shadow_position"], true_attrs["shadow_position"])[0, 1] > 0.95
    # edit of the named attribute only (what a graph-ignoring model does)
    naive = model.counterfactual(
        test.images, test.attributes,
        {"angle": target, "shadow_position": test.attributes["shadow_position"].to_numpy(),
         "shadow_length": test.attributes["shadow_length"].to_numpy()},
    )
    err = np.mean((cf - true_imgs) ** 2)
    err_naive = np.mean((naive - true_imgs) ** 2)
    assert err < 0.7 * err_naive  # about 0.5 when working, 1 when the SCM is ignored
    pred = model.predict_attributes(cf)
    assert np.corrcoef(pred["shadow_position"], true_attrs["shadow_position"])[0, 1] > 0.8


def test_intervene_generate_and_reconstruct(fitted):
    model, _, test = fitted
    x, a = test.images[:20], test.attributes.iloc[:20]
    iv, iv_attrs = model.intervene(x, a, {"angle": 0.5}, random_state=0, return_attributes=True)
    assert iv.shape == x.shape
    np.testing.assert_allclose(iv_attrs["light"], a["light"])  # non-descendant kept
    np.testing.assert_allclose(iv_attrs["angle"], 0.5)
    # resampled noise: the effects differ from the counterfactual's
    _, cf_attrs = model.counterfactual(x, a, {"angle": 0.5}, return_attributes=True)
    assert not np.allclose(iv_attrs["shadow_position"], cf_attrs["shadow_position"])
    np.testing.assert_array_equal(iv, model.intervene(x, a, {"angle": 0.5}, random_state=0))
    imgs, attrs = model.generate(30, do={"light": 0.3}, random_state=0)
    assert imgs.shape == (30, 24, 24) and np.all(attrs["light"] == 0.3)
    assert imgs.min() >= 0 and imgs.max() <= 1
    rec = model.reconstruct(x, a)
    assert np.mean((rec - x) ** 2) < 0.5 * np.mean((x - x.mean(axis=0)) ** 2)
    fig = model.plot_edits(x, a, {"angle": 0.8, "shadow_position": 0.6}, n_images=2)
    plt.close(fig)


def test_save_load(fitted, tmp_path):
    model, _, test = fitted
    path = model.save(tmp_path / "gen.crl")
    loaded = crl_neuro.load(path)
    pd.testing.assert_frame_equal(loaded.graph_, model.graph_)
    x, a = test.images[:10], test.attributes.iloc[:10]
    np.testing.assert_allclose(loaded.counterfactual(x, a, {"angle": 0.2}),
                               model.counterfactual(x, a, {"angle": 0.2}), atol=1e-6)
    pd.testing.assert_frame_equal(loaded.predict_attributes(x), model.predict_attributes(x))


def test_reproducible_and_given_graph(tmp_path):
    d = make_causal_images(60, image_size=12, random_state=0)
    empty = pd.DataFrame(0, index=d.attributes.columns, columns=d.attributes.columns)
    kw = dict(graph=empty, max_iter=2, width=4, hidden=16, random_state=3)
    m1 = CausalImageModel(**kw).fit(d.images, d.attributes)
    m2 = clone(CausalImageModel(**kw)).fit(d.images, d.attributes)
    x, a = d.images[:5], d.attributes.iloc[:5]
    np.testing.assert_array_equal(m1.counterfactual(x, a, {"angle": 0.3}), m2.counterfactual(x, a, {"angle": 0.3}))
    assert (m1.graph_.to_numpy() == 0).all()
    loaded = crl_neuro.load(m1.save(tmp_path / "given.crl"))  # a DataFrame parameter round-trips
    pd.testing.assert_frame_equal(loaded.graph, empty.astype(float))
    np.testing.assert_array_equal(loaded.counterfactual(x, a, {"angle": 0.3}), m1.counterfactual(x, a, {"angle": 0.3}))
    # no edges: editing a would-be cause leaves the other attributes as observed
    _, attrs = m1.counterfactual(x, a, {"angle": 0.3}, return_attributes=True)
    np.testing.assert_allclose(attrs["shadow_position"], a["shadow_position"])
    # colour images and binary attributes are accepted
    rgb = np.repeat(d.images[..., None], 3, axis=3)
    attrs_b = d.attributes.assign(big=(d.attributes["angle"] > 0.45).astype(int))
    m3 = CausalImageModel(max_iter=2, width=4, hidden=16, random_state=0).fit(rgb, attrs_b)
    out = m3.counterfactual(rgb[:4], attrs_b.iloc[:4], {"big": 1})
    assert out.shape == (4, 12, 12, 3)
    assert set(np.unique(m3.predict_attributes(rgb[:4])["big"])) <= {0.0, 1.0}


def test_bad_input():
    d = make_causal_images(40, image_size=12, random_state=0)
    m = CausalImageModel(max_iter=1, width=4, hidden=16, random_state=0)
    with pytest.raises(NotFittedError):
        m.predict_attributes(d.images)
    with pytest.raises(ValueError, match="images"):
        m.fit(d.images[0], d.attributes)
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        m.fit(d.images * 2, d.attributes)
    bad = d.images.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        m.fit(bad, d.attributes)
    with pytest.raises(TypeError, match="attributes"):
        m.fit(d.images, d.attributes.to_numpy())
    with pytest.raises(ValueError, match="rows"):
        m.fit(d.images, d.attributes.iloc[:10])
    nan_attrs = d.attributes.copy()
    nan_attrs.iloc[0, 0] = np.nan
    with pytest.raises(ValueError, match="attributes contains NaN"):
        m.fit(d.images, nan_attrs)
    cyclic = pd.DataFrame(np.roll(np.eye(4), 1, axis=1), index=d.attributes.columns, columns=d.attributes.columns)
    with pytest.raises(ValueError, match="acyclic"):
        CausalImageModel(graph=cyclic, max_iter=1).fit(d.images, d.attributes)
    with pytest.raises(ValueError, match="graph"):
        CausalImageModel(graph=cyclic.iloc[:2, :2], max_iter=1).fit(d.images, d.attributes)
    m.fit(d.images, d.attributes)
    assert d.images.max() <= 1  # caller's data untouched
    with pytest.raises(ValueError, match="unknown attribute"):
        m.counterfactual(d.images, d.attributes, {"age": 1.0})
    with pytest.raises(ValueError, match="length"):
        m.intervene(d.images, d.attributes, {"angle": np.zeros(3)})
    with pytest.raises(ValueError, match="image shape"):
        m.counterfactual(d.images[:, :8, :8], d.attributes, {"angle": 0.1})
    with pytest.raises(TypeError, match="do"):
        m.counterfactual(d.images, d.attributes, do=None)
