"""Known-value tests of crl_neuro.core.metrics."""

import numpy as np
import pytest

from crl_neuro.core.metrics import (
    correlation_matrix,
    graph_f1,
    graph_scores,
    labels_ari,
    localization_error,
    mcc,
    shd,
)


@pytest.fixture
def latents():
    return np.random.default_rng(0).laplace(size=(500, 4))


def test_mcc_permutation_sign_scale_is_one(latents):
    est = latents[:, [2, 0, 3, 1]] * np.array([-1.0, 3.0, -0.5, 2.0]) + 7.0
    score, matching, per = mcc(latents, est, return_details=True)
    assert score == pytest.approx(1.0)
    np.testing.assert_array_equal(matching, [1, 3, 0, 2])
    np.testing.assert_allclose(per, 1.0)


def test_mcc_spearman_invariant_to_monotone_maps(latents):
    est = np.column_stack([np.exp(latents[:, 1]), latents[:, 0] ** 3, np.tanh(latents[:, 3]), -latents[:, 2]])
    assert mcc(latents, est, method="spearman") == pytest.approx(1.0)
    assert mcc(latents, est, method="pearson") < 0.99


def test_mcc_known_value_and_independent_noise():
    rng = np.random.default_rng(1)
    z = rng.normal(size=(20000, 2))
    n = rng.normal(size=(20000, 2))
    # corr(z, z + n) = 1 / sqrt(2) for unit-variance z, n
    assert mcc(z, z + n) == pytest.approx(1 / np.sqrt(2), abs=0.02)
    assert mcc(z, n) < 0.05


def test_mcc_hungarian_beats_greedy():
    # |corr| matrix [[0.9, 0.8], [0.8, 0.1]]: greedy picks 0.9 + 0.1, optimum 0.8 + 0.8.
    c = np.array([[0.9, 0.8], [0.8, 0.1]])
    rng = np.random.default_rng(0)
    # Build data whose correlation matrix with the true latents is close to c.
    z = rng.normal(size=(200000, 2))
    z = (z - z.mean(0)) / z.std(0)
    e = np.empty_like(z)
    noise = rng.normal(size=(200000, 2))
    for j in range(2):
        w = c[:, j]
        e[:, j] = z @ w + np.sqrt(max(1e-3, 1 - w @ w + 0.7)) * noise[:, j]
    corr = correlation_matrix(z, e)
    rows_opt = corr[0, 1] + corr[1, 0]
    score, matching, _ = mcc(z, e, return_details=True)
    assert score == pytest.approx(rows_opt / 2)
    np.testing.assert_array_equal(matching, [1, 0])


def test_mcc_rectangular_and_errors(latents):
    score, matching, per = mcc(latents, latents[:, :2], return_details=True)
    assert score == pytest.approx(1.0)
    assert (matching == -1).sum() == 2 and np.isnan(per).sum() == 2
    assert mcc(latents[:, :2], latents) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="method"):
        mcc(latents, latents, method="kendall")
    with pytest.raises(ValueError, match="same number of samples"):
        mcc(latents, latents[:10])
    bad = latents.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="estimated"):
        mcc(latents, bad)


def test_mcc_constant_column_scores_zero(latents):
    est = latents.copy()
    est[:, 0] = 1.0
    _, _, per = mcc(latents, est, return_details=True)
    assert per[0] == pytest.approx(0.0, abs=0.1)


def test_graph_scores_undirected_hand_worked():
    # true: 0-1, 1-2, 2-3 ; est: 0-1, 1-3, 2-3 (given one-sided, must be symmetrised)
    true = np.zeros((4, 4))
    for i, j in [(0, 1), (1, 2), (2, 3)]:
        true[i, j] = true[j, i] = 1
    est = np.zeros((4, 4))
    for i, j in [(1, 0), (1, 3), (3, 2)]:
        est[i, j] = 0.3
    est[2, 2] = 5.0  # diagonal is ignored
    s = graph_scores(true, est)
    assert s == {"precision": 2 / 3, "recall": 2 / 3, "f1": pytest.approx(2 / 3), "shd": 2.0}
    assert graph_f1(true, est) == pytest.approx(2 / 3)
    assert shd(true, est) == 2


def test_shd_directed_hand_worked():
    # true DAG: 0->1, 1->2, 3->2.  est: 1->0 (reversed), 1->2 (correct),
    # 2-3 undirected (wrong type), 0->3 (extra).
    true = np.zeros((4, 4), int)
    true[0, 1] = true[1, 2] = true[3, 2] = 1
    est = np.zeros((4, 4), int)
    est[1, 0] = est[1, 2] = 1
    est[2, 3] = est[3, 2] = 1
    est[0, 3] = 1
    s = graph_scores(true, est, directed=True)
    assert s["shd"] == 3.0  # reversed (1) + wrong type (1) + extra (1)
    assert s["precision"] == pytest.approx(1 / 4)
    assert s["recall"] == pytest.approx(1 / 3)
    assert shd(true, est, directed=True) == 3
    # skeletons: true {01, 12, 23}, est {01, 12, 23, 03}: one extra edge
    assert shd(true, est) == 1


def test_graph_scores_empty_and_errors():
    z = np.zeros((3, 3))
    assert graph_scores(z, z) == {"precision": 1.0, "recall": 1.0, "f1": 1.0, "shd": 0.0}
    full = np.ones((3, 3))
    assert graph_scores(z, full)["precision"] == 0.0
    assert graph_scores(full, z)["recall"] == 0.0
    with pytest.raises(ValueError, match="same shape"):
        graph_scores(z, np.zeros((4, 4)))
    with pytest.raises(ValueError, match="est_adj"):
        graph_scores(z, np.zeros((3, 2)))


def test_localization_error_hand_computed():
    true = np.array([[0.0, 0.0, 0.0], [0.05, 0.0, 0.0], [0.0, 0.05, 0.0]])
    # shuffled estimates, off by 3 mm, 4 mm and 5 mm (3-4-5 triangle)
    est = np.array([[0.0, 0.05, 0.004], [0.003, 0.0, 0.0], [0.053, 0.004, 0.0]])
    err, matching, per = localization_error(true, est, return_details=True)
    np.testing.assert_array_equal(matching, [1, 2, 0])
    np.testing.assert_allclose(per, [3.0, 5.0, 4.0])
    assert err == pytest.approx(4.0)
    assert localization_error(true, true[::-1]) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="est_pos"):
        localization_error(true, est[:, :2])


def test_labels_ari_images_and_mask():
    nib = pytest.importorskip("nibabel")
    lab = np.zeros((4, 4, 2), dtype=np.int32)
    lab[:2] = 1
    lab[2:, :2] = 2
    relabeled = np.where(lab == 1, 7, np.where(lab == 2, 3, 0)).astype(np.int32)
    img_t = nib.Nifti1Image(lab, np.eye(4))
    img_e = nib.Nifti1Image(relabeled, np.eye(4))
    assert labels_ari(img_t, img_e) == pytest.approx(1.0)
    # merging two ROIs: hand-computed ARI over the 24 labelled voxels
    merged = np.where(lab > 0, 1, 0)
    assert labels_ari(lab, merged) == pytest.approx(0.0)
    # estimated leaves voxels as background: default mask counts them
    partial = lab.copy()
    partial[0, 0, 0] = 0
    assert labels_ari(lab, partial) < 1.0
    assert labels_ari(lab, partial, mask=partial > 0) == pytest.approx(1.0)
    with pytest.raises(ValueError, match="same shape"):
        labels_ari(lab, lab[:2])
    with pytest.raises(ValueError, match="mask"):
        labels_ari(np.zeros(3), np.zeros(3))


def test_metrics_accept_graph_objects():
    from crl_neuro.core.graphs import Graph

    adj = np.array([[0, 1, 0], [0, 0, 1], [0, 0, 0]])
    g = Graph.from_adjacency(adj, kind="directed")
    assert shd(g, adj, directed=True) == 0
