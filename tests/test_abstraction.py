"""Tests of crl_neuro.core.abstraction (tau/omega maps and abstraction error)."""

import numpy as np
import pytest

from crl_neuro.core.abstraction import (
    best_macro_scm,
    best_macro_var,
    constructive_tau,
    omega,
    partition_from_tau,
    scm_abstraction_error,
    stationary_covariance,
    var_abstraction_error,
    var_abstraction_error_from_data,
)


def _lumpable(A, labels, rng=None):
    """Micro B for which averaging within ``labels`` blocks is an exact abstraction.

    Row ``i`` spreads ``A[b(i), k] / |S_b(i)|`` over block ``k`` with weights whose
    block mean is 1, so ``(B T)[i, k] = A[b(i), k] / |S_b(i)| = (T A)[i, k]``.
    """
    labels = np.asarray(labels)
    n = labels.size
    sizes = np.bincount(labels)[1:]
    B = np.zeros((n, n))
    for i in range(n):
        for k in range(1, labels.max() + 1):
            cols = np.flatnonzero(labels == k)
            w = np.ones(cols.size) if rng is None else rng.uniform(0.2, 1.0, cols.size)
            w = w / w.sum() * cols.size  # average of w over the block is 1
            B[i, cols] = w * A[labels[i] - 1, k - 1] / sizes[labels[i] - 1]
    return B


@pytest.fixture
def exact_var():
    A = np.array([[0.5, 0.4, 0.0], [0.0, 0.6, -0.3], [0.0, 0.0, 0.4]])
    labels = np.array([1, 1, 1, 2, 2, 3, 3, 3, 3])
    return A, labels


def test_constructive_tau_and_partition():
    labels = np.array([0, 1, 1, 2, 2, 2])
    T = constructive_tau(labels)
    assert T.shape == (6, 2)
    np.testing.assert_allclose(T.sum(axis=0), 1.0)
    np.testing.assert_allclose(T[0], 0.0)
    np.testing.assert_array_equal(partition_from_tau(T), labels)
    Tw = constructive_tau(labels, weights=[1, 1, 3, 1, 1, 2])
    np.testing.assert_allclose(Tw[:, 0], [0, 0.25, 0.75, 0, 0, 0])
    with pytest.raises(ValueError, match="constructive"):
        partition_from_tau(np.ones((3, 2)))
    with pytest.raises(ValueError, match="labels"):
        constructive_tau([-1, 1])


def test_omega_maps_whole_blocks_only():
    T = constructive_tau(np.array([1, 1, 2, 2, 2]), weights=[1, 3, 1, 1, 1])
    macro = omega(T, {0: 2.0, 1: 4.0})
    assert macro == {0: pytest.approx(0.25 * 2 + 0.75 * 4)}
    macro = omega(T, {0: 1.0, 1: 1.0, 2: 3.0, 3: 3.0, 4: 0.0})
    assert macro[1] == pytest.approx(2.0)
    with pytest.raises(ValueError, match="part of block"):
        omega(T, {2: 1.0})


def test_var_error_zero_for_exact_abstraction(exact_var):
    A, labels = exact_var
    rng = np.random.default_rng(0)
    B = _lumpable(A, labels, rng)
    T = constructive_tau(labels)
    np.testing.assert_allclose(B @ T, T @ A, atol=1e-12)
    res = var_abstraction_error(B, T)
    assert res["error"] < 1e-10
    assert res["observational"] < 1e-10
    np.testing.assert_allclose(res["A"], A, atol=1e-8)
    # the same for the unweighted least-squares macro model
    np.testing.assert_allclose(best_macro_var(B, T), A, atol=1e-8)


def test_var_error_grows_for_wrong_partition(exact_var):
    A, labels = exact_var
    B = _lumpable(A, labels, np.random.default_rng(1))
    wrong = np.array([1, 1, 2, 2, 2, 3, 3, 3, 3])  # one voxel of block 1 moved to block 2
    merged = np.array([1, 1, 1, 1, 1, 2, 2, 2, 2])  # blocks 1 and 2 merged
    e_wrong = var_abstraction_error(B, constructive_tau(wrong))
    e_merged = var_abstraction_error(B, constructive_tau(merged))
    assert e_wrong["error"] > 0.05
    assert e_merged["error"] > 0.05
    assert e_merged["per_block"].shape == (2,)
    assert var_abstraction_error(B, constructive_tau(wrong), reduce="max")["error"] >= e_wrong["error"]


def test_stationary_covariance_solves_lyapunov():
    B = np.array([[0.5, 0.3], [0.0, 0.7]])
    Q = np.array([1.0, 2.0])
    S = stationary_covariance(B, Q)
    np.testing.assert_allclose(S, B.T @ S @ B + np.diag(Q), atol=1e-10)
    with pytest.raises(ValueError, match="stable"):
        stationary_covariance(np.eye(2) * 1.1)


def test_scm_error_exact_and_wrong():
    # chain of blocks 1 -> 2 -> 3 with a lumpable micro SCM
    A = np.array([[0.0, 0.8, 0.0], [0.0, 0.0, -0.6], [0.0, 0.0, 0.0]])
    labels = np.array([1, 1, 2, 2, 3, 3])
    B = _lumpable(A, labels)
    T = constructive_tau(labels)
    res = scm_abstraction_error(B, T)
    assert res["error"] < 1e-10
    np.testing.assert_allclose(best_macro_scm(B, T), A, atol=1e-10)
    # a micro SCM whose two block-1 variables have opposite effects is not abstracted
    # exactly by averaging them when they have unequal variances
    B2 = np.zeros((6, 6))
    B2[0, 2:4] = 1.0
    B2[1, 2:4] = -0.5
    B2[2:4, 4:6] = 0.3
    res2 = scm_abstraction_error(B2, T, noise_cov=[1.0, 4.0, 1, 1, 1, 1])
    assert res2["error"] > 0.1


def test_data_version_agrees_with_closed_form(exact_var):
    A, labels = exact_var
    B = _lumpable(A, labels, np.random.default_rng(2))
    rng = np.random.default_rng(3)
    n = 20000
    x = np.zeros((n, labels.size))
    e = rng.standard_normal((n, labels.size))
    for t in range(1, n):
        x[t] = x[t - 1] @ B + e[t]
    runs = [x[: n // 2], x[n // 2 :]]
    exact = var_abstraction_error_from_data(runs, labels)
    assert exact["error"] < 0.03
    assert exact["per_run"].shape == (2,)
    wrong = np.array([1, 1, 2, 2, 2, 3, 3, 3, 3])
    closed = var_abstraction_error(B, constructive_tau(wrong))["error"]
    data = var_abstraction_error_from_data(runs, wrong)["error"]
    assert closed > 0.05
    assert abs(data - closed) < 0.25 * closed + 0.02
    np.testing.assert_allclose(exact["A"][0], A, atol=0.05)


def test_bad_inputs():
    with pytest.raises(ValueError, match="T must have"):
        var_abstraction_error(np.eye(3) * 0.5, np.ones((2, 1)))
    with pytest.raises(ValueError, match="square"):
        var_abstraction_error(np.ones((2, 3)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="NaN"):
        var_abstraction_error_from_data(np.full((10, 2), np.nan), [1, 1])
    with pytest.raises(ValueError, match="labels"):
        var_abstraction_error_from_data(np.zeros((10, 2)), [1, 1, 2])
