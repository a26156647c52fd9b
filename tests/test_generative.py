"""Tests of make_causal_images (ground-truth renderer) and CausalImageModel."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

import crl_neuro
from crl_neuro.datasets.images import ATTRIBUTES, FACE_ATTRIBUTES, make_causal_images
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


# -- faces scene ---------------------------------------------------------------------------
def test_faces_renderer_ground_truth():
    d = make_causal_images(300, image_size=16, random_state=0, scene="faces")
    assert d.images.shape == (300, 16, 16, 3) and d.scene == "faces"
    assert d.images.min() >= 0 and d.images.max() <= 1
    assert list(d.attributes.columns) == list(FACE_ATTRIBUTES)
    assert set(np.unique(d.attributes["eyeglasses"])) == {0.0, 1.0}
    edges = {(a, b) for a in FACE_ATTRIBUTES for b in FACE_ATTRIBUTES if d.graph.loc[a, b]}
    assert edges == {("age", "eyeglasses"), ("age", "hair_grey")}
    # age causes eyeglasses and grey hair
    old, young = d.attributes["age"] > 65, d.attributes["age"] < 35
    assert d.attributes["eyeglasses"][old].mean() > 0.85 and d.attributes["eyeglasses"][young].mean() < 0.15
    assert np.corrcoef(d.attributes["age"], d.attributes["hair_grey"])[0, 1] > 0.9
    np.testing.assert_array_equal(d.render(d.attributes), d.images)
    pd.testing.assert_frame_equal(d.scm(d.noise), d.attributes)
    np.testing.assert_array_equal(make_causal_images(300, 16, random_state=0, scene="faces").images, d.images)


def test_faces_counterfactuals_follow_the_graph():
    d = make_causal_images(200, image_size=16, random_state=0, scene="faces")
    # effect edit: putting glasses on everybody changes no other attribute
    imgs, attrs = d.counterfactual({"eyeglasses": 1.0})
    for col in ("age", "hair_grey", "smile", "face_width"):
        np.testing.assert_array_equal(attrs[col], d.attributes[col])
    changed = d.attributes["eyeglasses"].to_numpy() == 0
    assert np.all(np.abs(imgs - d.images)[changed].mean(axis=(1, 2, 3)) > 0.005)
    np.testing.assert_array_equal(imgs[~changed], d.images[~changed])
    # cause edit: ageing to 75 greys the hair (same residual) and adds glasses, nothing else
    imgs, attrs = d.counterfactual({"age": 75.0})
    np.testing.assert_allclose(attrs["hair_grey"] - 0.76 * (75.0 - d.attributes["age"]) / 60.0,
                               d.attributes["hair_grey"])
    assert np.all(attrs["eyeglasses"] >= d.attributes["eyeglasses"])  # monotone in age: none lost
    assert attrs["eyeglasses"].mean() > 0.9
    for col in ("smile", "face_width"):
        np.testing.assert_array_equal(attrs[col], d.attributes[col])
    with pytest.raises(ValueError, match="scene"):
        make_causal_images(10, scene="cats")
    with pytest.raises(ValueError, match="columns"):
        d.render(d.attributes.drop(columns="age"))


@pytest.fixture(scope="module")
def fitted_faces():
    # 32x32: at 24x24 the glasses' rims are a pixel wide and the decoder may not draw them
    train = make_causal_images(600, image_size=32, random_state=0, scene="faces")
    model = CausalImageModel(max_iter=25, random_state=0).fit(train.images, train.attributes)
    test = make_causal_images(150, image_size=32, random_state=1, scene="faces")
    return model, train, test


def test_faces_graph_learned_by_pc(fitted_faces):
    model, train, _ = fitted_faces
    assert model.binary_ == [False, True, False, False, False]
    # PC finds the skeleton; the fork's directions are not identifiable from
    # observational data and follow the (causal) column order
    np.testing.assert_array_equal(model.graph_.to_numpy() != 0, train.graph.to_numpy() != 0)


def test_faces_cause_edit_beats_graph_ignoring_model(fitted_faces):
    model, train, test = fitted_faces
    no_graph = model.with_graph(train.attributes, 0 * train.graph)
    assert model.graph_.to_numpy().sum() == 2  # with_graph left the model alone
    rng = np.random.default_rng(123)
    age = rng.uniform(20, 80, len(test.images))
    true_imgs, true_attrs = test.counterfactual({"age": age})
    cf, cf_attrs = model.counterfactual(test.images, test.attributes, {"age": age}, return_attributes=True)
    base = no_graph.counterfactual(test.images, test.attributes, {"age": age})
    err, err_base = np.mean((cf - true_imgs) ** 2), np.mean((base - true_imgs) ** 2)
    assert err < 0.6 * err_base  # about 0.35 when working, 1 when the SCM is ignored
    # the effects follow the true counterfactual: hair exactly (additive noise); glasses as
    # far as a binary noise can be abducted (sampling it from its posterior under the true
    # mechanism agrees ~0.82 of the time here; keeping the observed glasses ~0.55)
    assert np.corrcoef(cf_attrs["hair_grey"], true_attrs["hair_grey"])[0, 1] > 0.97
    kept = np.mean(test.attributes["eyeglasses"] == true_attrs["eyeglasses"])
    assert np.mean(cf_attrs["eyeglasses"] == true_attrs["eyeglasses"]) > kept + 0.15
    np.testing.assert_allclose(cf_attrs["smile"], test.attributes["smile"])


def test_faces_effect_edit_keeps_the_cause(fitted_faces):
    model, _, test = fitted_faces
    flip = 1.0 - test.attributes["eyeglasses"].to_numpy()
    true_imgs, _ = test.counterfactual({"eyeglasses": flip})
    cf, cf_attrs = model.counterfactual(test.images, test.attributes, {"eyeglasses": flip},
                                        return_attributes=True)
    np.testing.assert_allclose(cf_attrs["age"], test.attributes["age"])
    np.testing.assert_allclose(cf_attrs["hair_grey"], test.attributes["hair_grey"])
    rec = model.reconstruct(test.images, test.attributes)
    moved = np.abs(true_imgs - test.images).max(axis=-1, keepdims=True) > 0.05
    moved = np.broadcast_to(moved, cf.shape)
    # effective: where the true edit changes pixels (the glasses), the edit gets most of
    # the way from the reconstruction to the truth
    assert np.abs(cf - true_imgs)[moved].mean() < 0.5 * np.abs(rec - true_imgs)[moved].mean()
    # minimal: elsewhere, the edited image stays close to the reconstruction
    change = np.abs(cf - rec)
    assert change[~moved].mean() < 0.2 * change[moved].mean()  # ~0.12
    # closer to the true counterfactual than the unedited reconstruction
    assert np.mean((cf - true_imgs) ** 2) < 0.7 * np.mean((rec - true_imgs) ** 2)  # ~0.5
    with pytest.raises(ValueError, match="binary"):
        model.counterfactual(test.images, test.attributes, {"eyeglasses": 0.5})


def test_with_graph_equals_refit_and_checks_input():
    d = make_causal_images(80, image_size=12, random_state=0, scene="faces")
    kw = dict(max_iter=2, width=4, hidden=16, random_state=3)
    empty = 0 * d.graph
    m = CausalImageModel(**kw).fit(d.images, d.attributes)
    direct = CausalImageModel(graph=empty, **kw).fit(d.images, d.attributes)
    via = m.with_graph(d.attributes, empty)
    x, a = d.images[:6], d.attributes.iloc[:6]
    for edit in ("counterfactual", "intervene"):
        np.testing.assert_array_equal(getattr(via, edit)(x, a, {"age": 70.0}),
                                      getattr(direct, edit)(x, a, {"age": 70.0}))
    assert via.graph is not None and m.graph is None
    with pytest.raises(ValueError, match="acyclic"):
        m.with_graph(d.attributes, d.graph + d.graph.T)
    with pytest.raises(ValueError, match="0/1"):
        m.with_graph(d.attributes.assign(eyeglasses=0.5), None)
    with pytest.raises(NotFittedError):
        CausalImageModel().with_graph(d.attributes, None)
