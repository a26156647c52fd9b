"""Ground-truth tests of ``crl_neuro.core.multidist.MultiDistributionCRL`` (linear mixing)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.decomposition import FastICA
from sklearn.exceptions import NotFittedError

import crl_neuro
from crl_neuro.core.metrics import graph_scores, mcc
from crl_neuro.core.changes import mechanism_changes
from crl_neuro.core.multidist import (
    MultiDistributionCRL,
    effective_n,
    pham_ajd,
)


def _simulate(k=4, n_domains=6, n=1500, p=8, seed=0):
    """Chain latents z0 -> z1 -> z2 -> z3, weights and noise scales change per domain.

    Each edge is switched off in about a quarter of the domains; x = A z + small noise.
    """
    rng = np.random.default_rng(seed)
    edges = [(i, i + 1) for i in range(k - 1)]
    A = rng.normal(size=(p, k))
    X, Z, dom = [], [], []
    for d in range(n_domains):
        B = np.zeros((k, k))
        for i, j in edges:
            if rng.random() > 0.25:
                B[j, i] = rng.uniform(0.4, 1.0) * rng.choice([-1, 1])
        scales = rng.uniform(0.5, 2.0, size=k)
        z = (rng.normal(size=(n, k)) * scales) @ np.linalg.inv(np.eye(k) - B).T
        Z.append(z)
        X.append(z @ A.T + 0.05 * rng.normal(size=(n, p)))
        dom += [d] * n
    net = np.zeros((k, k), bool)
    for i, j in edges:
        net[i, j] = net[j, i] = True
    return np.vstack(X), np.array(dom), np.vstack(Z), net


@pytest.fixture(scope="module")
def problem():
    return _simulate(seed=2)


@pytest.fixture(scope="module")
def fitted(problem):
    X, dom, _, _ = problem
    return MultiDistributionCRL(n_latents=4, random_state=0).fit(X, dom)


def test_recovers_latents_and_network(problem, fitted):
    X, dom, Z, net = problem
    est = fitted
    score, match, per_latent = mcc(Z, est.transform(X), return_details=True)
    ica = mcc(Z, FastICA(4, random_state=0, max_iter=1000).fit_transform(X))
    # Causally linked latents: ICA is misspecified; the joint-sparsity criterion is not.
    assert score >= 0.95, (score, per_latent)
    assert score >= ica + 0.1, (score, ica)
    f1 = graph_scores(net, est.markov_network_[np.ix_(match, match)])["f1"]
    assert f1 >= 0.99


def test_fitted_attributes(problem, fitted):
    X, dom, _, _ = problem
    est = fitted
    k, p = 4, X.shape[1]
    assert est.mixing_.shape == (p, k) and est.unmixing_.shape == (k, p)
    assert est.domain_precisions_.shape == (6, k, k)
    net = est.markov_network_
    assert net.dtype == bool and np.array_equal(net, net.T) and not net.diagonal().any()
    assert est.changing_edges_.shape == (k, k)
    assert np.all(est.changing_edges_ <= est.markov_network_)
    np.testing.assert_array_equal(est.domains_, np.arange(6))
    # Mixing and unmixing are inverse on the latent space.
    np.testing.assert_allclose(est.unmixing_ @ est.mixing_, np.eye(k), atol=1e-8)
    # Latents have unit pooled variance after removing domain means.
    Zh = est.transform(X)
    for d in range(6):
        Zh[dom == d] -= Zh[dom == d].mean(axis=0)
    np.testing.assert_allclose(Zh.var(axis=0), 1.0, rtol=0.05)


def test_intimate_neighbours_and_identified_latents(problem, fitted, tmp_path):
    """Derived from the estimated network; on the chain they match the truth's."""
    from crl_neuro.datasets.nonlinear import intimate_neighbours

    X, _, Z, net = problem
    est = fitted
    _, match, _ = mcc(Z, est.transform(X), return_details=True)
    true_nb = intimate_neighbours(net)  # chain 0-1-2-3: the ends have one, the inner none
    assert true_nb == [[1], [], [], [2]]
    back = np.argsort(match)  # estimated index -> true index
    got = [sorted(int(back[j]) for j in est.intimate_neighbors_[match[i]]) for i in range(4)]
    assert got == true_nb
    np.testing.assert_array_equal(est.identified_latents_[match], [False, True, True, False])
    assert est.identified_latents_.dtype == bool
    # read from the stored network after a round trip
    loaded = crl_neuro.load(fitted.save(tmp_path / "nb.crl"))
    assert [v.tolist() for v in loaded.intimate_neighbors_] == [v.tolist() for v in est.intimate_neighbors_]
    np.testing.assert_array_equal(loaded.identified_latents_, est.identified_latents_)
    # a triangle with a tail (the moral graph of a collider 0 -> 2 <- 1, then 2 - 3)
    other = MultiDistributionCRL(4)
    other.markov_network_ = np.zeros((4, 4), bool)
    for i, j in [(0, 1), (0, 2), (1, 2), (2, 3)]:
        other.markov_network_[i, j] = other.markov_network_[j, i] = True
    assert [v.tolist() for v in other.intimate_neighbors_] == [[1, 2], [0, 2], [], [2]]
    np.testing.assert_array_equal(other.identified_latents_, [False, False, True, False])
    with pytest.raises(NotFittedError):
        MultiDistributionCRL(4).identified_latents_


def test_same_seed_same_result(problem):
    X, dom, _, _ = problem
    a = MultiDistributionCRL(4, random_state=3).fit(X[::2], dom[::2])
    b = MultiDistributionCRL(4, random_state=3).fit(X[::2], dom[::2])
    np.testing.assert_array_equal(a.unmixing_, b.unmixing_)
    np.testing.assert_array_equal(a.markov_network_, b.markov_network_)


def test_clone_and_params():
    est = MultiDistributionCRL(3, sparsity=0.5, max_iter=7, random_state=1)
    c = clone(est)
    assert c.get_params() == est.get_params()
    assert not hasattr(c, "unmixing_")


def test_save_load_identical_transform(problem, fitted, tmp_path):
    X, _, _, _ = problem
    path = fitted.save(tmp_path / "md.crl")
    loaded = crl_neuro.load(path)
    assert isinstance(loaded, MultiDistributionCRL)
    np.testing.assert_array_equal(loaded.transform(X[:50]), fitted.transform(X[:50]))
    np.testing.assert_array_equal(loaded.markov_network_, fitted.markov_network_)
    np.testing.assert_array_equal(loaded.domains_, fitted.domains_)


def test_not_fitted():
    with pytest.raises(NotFittedError):
        MultiDistributionCRL(2).transform(np.zeros((3, 4)))


def test_bad_input(problem):
    X, dom, _, _ = problem
    Xs, ds = X[:600], dom[:600]
    with pytest.raises(ValueError, match="domains"):
        MultiDistributionCRL(2).fit(Xs, np.zeros(len(Xs)))  # one domain
    Xn = X[:3000].copy()
    Xn[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        MultiDistributionCRL(2).fit(Xn, dom[:3000])
    with pytest.raises(ValueError, match="n_latents"):
        MultiDistributionCRL(9).fit(X[:3000], dom[:3000])  # 8 features
    low_rank = np.repeat(X[:3000, :2], 4, axis=1)
    with pytest.raises(ValueError, match="n_latents"):
        MultiDistributionCRL(3).fit(low_rank, dom[:3000])
    with pytest.raises(ValueError, match="X must be 2D"):
        MultiDistributionCRL(2).fit(X[:, 0], dom)
    with pytest.raises(ValueError, match="domains has"):
        MultiDistributionCRL(2).fit(X[:3000], dom[:100])
    with pytest.raises(ValueError, match="mixing"):
        MultiDistributionCRL(2, mixing="quadratic").fit(Xs, ds)
    with pytest.raises(TypeError, match="n_latents"):
        MultiDistributionCRL(2.5).fit(X[:3000], dom[:3000])
    with pytest.raises(ValueError, match="sparsity"):
        MultiDistributionCRL(2, sparsity="lots").fit(X[:3000], dom[:3000])
    est = MultiDistributionCRL(2, random_state=0).fit(X[::10], dom[::10])
    with pytest.raises(ValueError, match="features"):
        est.transform(X[:, :3])


def test_pham_ajd_diagonalises_exactly():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(5, 5))
    covs = np.array([A @ np.diag(rng.uniform(0.2, 3.0, 5)) @ A.T for _ in range(6)])
    B = pham_ajd(covs)
    BA = B @ A
    # B A is a scaled permutation: one dominant entry per row.
    BA = np.abs(BA) / np.abs(BA).max(axis=1, keepdims=True)
    assert np.sort(BA, axis=1)[:, -2].max() < 1e-6


def test_pham_ajd_matches_pyriemann_reference():
    """Cross-check against pyRiemann's Pham AJD on covariances that are not exactly diagonalisable."""
    pytest.importorskip("pyriemann")
    try:
        from pyriemann.geometry.ajd import ajd_pham
    except ImportError:  # pyriemann < 0.13
        from pyriemann.utils.ajd import ajd_pham
    from scipy.optimize import linear_sum_assignment

    rng = np.random.default_rng(0)
    k = 5
    A = rng.normal(size=(k, k))
    covs = []
    for _ in range(10):
        N = rng.normal(size=(k, 3 * k))
        covs.append(A @ np.diag(rng.uniform(0.2, 3.0, k)) @ A.T + 0.05 * N @ N.T / (3 * k))
    covs = np.array(covs)

    def criterion(B):
        M = np.einsum("ia,dab,jb->dij", B, covs, B)
        return np.mean([np.log(np.diag(m)).sum() - np.linalg.slogdet(m)[1] for m in M])

    B = pham_ajd(covs, tol=1e-12, max_iter=500)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        V, _ = ajd_pham(covs, eps=1e-12, n_iter_max=500)
    assert criterion(B) > 1e-3  # not exactly diagonalisable: the criterion has work to do
    np.testing.assert_allclose(criterion(B), criterion(V), rtol=1e-6)
    # same rows up to order, sign and scale
    nb = B / np.linalg.norm(B, axis=1, keepdims=True)
    nv = V / np.linalg.norm(V, axis=1, keepdims=True)
    C = np.abs(nb @ nv.T)
    rows, cols = linear_sum_assignment(-C)
    assert C[rows, cols].min() > 0.999


def _sem_covariances(seed, change_weight, change_power, k=4, D=5, n=3000):
    """Sample covariances of a linear SEM (0->1->2->3, 0->3; moral edge 0-2... per permutation).

    Returns covariances, the Markov network, the true changing pairs, and the weights.
    """
    rng = np.random.default_rng(seed)
    B0 = np.zeros((k, k))  # B0[i, j]: strength of i -> j
    B0[0, 1], B0[1, 2], B0[0, 3], B0[2, 3] = 0.7, -0.6, 0.5, 0.6
    perm = rng.permutation(k)
    B0 = B0[np.ix_(perm, perm)]
    i, j = np.argwhere(B0 != 0)[rng.integers(4)]
    covs = []
    for d in range(D):
        B = B0.copy()
        if change_weight:
            B[i, j] = [0.0, 0.8, 0.0, 0.4, 0.8][d]
        scale = np.exp(rng.uniform(np.log(0.5), np.log(2.0), k)) if change_power else np.ones(k)
        z = (rng.standard_normal((n, k)) * scale) @ np.linalg.inv(np.eye(k) - B)
        covs.append(np.cov(z.T))
    net = (B0 != 0) | (B0 != 0).T
    for c in range(k):  # moralise
        pa = np.flatnonzero(B0[:, c])
        net[np.ix_(pa, pa)] = True
    np.fill_diagonal(net, False)
    changing = np.zeros((k, k), bool)
    if change_weight:
        changing[i, j] = changing[j, i] = True
    return np.array(covs), net, changing, B0


def test_mechanism_changes_power_is_not_an_edge_change():
    """Sources' power changing alone flags (almost) no edge; the causal order is recovered."""
    flagged = tested = oriented = 0
    for seed in range(20):
        covs, net, _, B0 = _sem_covariances(seed, change_weight=False, change_power=True)
        res = mechanism_changes(covs, np.full(len(covs), 3000.0), net)
        flagged += int(res.changing_edges.sum() // 2)
        tested += int(net.sum() // 2)
        oriented += bool(np.all(res.dag[B0 != 0]))
        assert res.changing_sources.all()  # every source's power changes
        # The old reading, a change of precision entries, is there all the same.
        prec = np.linalg.inv(covs)
        assert np.ptp(prec[:, net], axis=0).max() > 0.2
    assert flagged <= 0.05 * tested, (flagged, tested)
    assert oriented >= 19


def test_strength_change_estimate_lies_in_its_interval():
    """The reported between-domain SD is inside its Q-profile interval, always.

    Unequal standard errors (domains of different sizes) are where a
    DerSimonian-Laird estimate falls outside the interval; the Paule-Mandel
    estimate solves the same equation as the bounds and cannot.
    """
    from crl_neuro.core.changes import _tau2_dl, _tau_interval

    rng = np.random.default_rng(0)
    outside_dl = 0
    for _ in range(300):
        d = int(rng.integers(3, 12))
        se2 = rng.uniform(0.001, 0.2, d) ** 2 * rng.choice([1.0, 30.0], d)
        beta = rng.normal(0.0, rng.uniform(0.0, 0.3), d) + rng.normal(0.0, np.sqrt(se2))
        t, lo, hi = _tau_interval(beta, se2, 0.95)
        assert lo - 1e-9 <= t <= hi + 1e-9, (t, lo, hi)
        dl = np.sqrt(_tau2_dl(beta, se2))
        outside_dl += not (lo - 1e-9 <= dl <= hi + 1e-9)
    assert outside_dl > 0  # the case this guards against does occur


def test_mechanism_changes_finds_changed_strengths():
    tp = fp = 0
    for seed in range(20):
        covs, net, changing, _ = _sem_covariances(seed, change_weight=True, change_power=True)
        res = mechanism_changes(covs, np.full(len(covs), 3000.0), net)
        tp += int((res.changing_edges & changing).sum() // 2)
        fp += int((res.changing_edges & ~changing).sum() // 2)
        i, j = np.argwhere(np.triu(changing))[0]
        assert res.edge_pvalues[i, j] < 1e-6
        lo, hi = res.edge_change_ci[:, i, j]
        assert lo <= res.edge_change[i, j] <= hi and lo > 0.15  # true SD of the strength: 0.35
    assert tp == 20 and fp <= 6, (tp, fp)
    # Nothing changes at all: calibrated (FDR 0.05 over 20 problems).
    flagged = 0
    for seed in range(20):
        covs, net, _, _ = _sem_covariances(seed, change_weight=False, change_power=False)
        res = mechanism_changes(covs, np.full(len(covs), 3000.0), net)
        flagged += int(res.changing_edges.any())
        assert not res.changing_sources.any() or res.source_pvalues.min() < 0.05
    assert flagged <= 3


def test_mechanism_changes_bad_input():
    covs, net, _, _ = _sem_covariances(0, True, True)
    with pytest.raises(ValueError, match="covs"):
        mechanism_changes(covs[:1], np.ones(1), net)
    with pytest.raises(ValueError, match="network"):
        mechanism_changes(covs, np.full(5, 100.0), net[:2])
    with pytest.raises(ValueError, match="n_eff"):
        mechanism_changes(covs, np.full(3, 100.0), net)
    with pytest.raises(ValueError, match="order"):
        mechanism_changes(covs, np.full(5, 100.0), net, order=[0, 0, 1, 2])
    with pytest.raises(ValueError, match="min_change"):
        mechanism_changes(covs, np.full(5, 100.0), net, min_change=-0.1)
    with pytest.raises(ValueError, match="alpha"):
        mechanism_changes(covs, np.full(5, 100.0), net, alpha=0.0)
    bad = covs.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(ValueError, match="covs"):
        mechanism_changes(bad, np.full(5, 100.0), net)
    before = covs.copy()
    mechanism_changes(covs, np.full(5, 100.0), net)
    np.testing.assert_array_equal(covs, before)  # the caller's arrays are not modified


def test_effective_n_autocorrelation():
    rng = np.random.default_rng(0)
    white = rng.normal(size=(5000, 2))
    assert effective_n(white) > 4000
    ar = np.zeros_like(white)
    for t in range(1, len(ar)):
        ar[t] = 0.9 * ar[t - 1] + white[t]
    assert effective_n(ar) < 1500


def test_fdr_edges_matches_mne_fdr_correction():
    """The BH step of the change tests agrees with ``mne.stats.fdr_correction``."""
    from mne.stats import fdr_correction

    from crl_neuro.core.changes import fdr_edges

    rng = np.random.default_rng(0)
    k = 9
    for trial in range(20):
        p = rng.uniform(size=(k, k)) ** rng.uniform(1, 6)  # mixes tiny and large p-values
        p = np.triu(p, 1) + np.triu(p, 1).T
        net = rng.uniform(size=(k, k)) < 0.6
        net = np.triu(net, 1) | np.triu(net, 1).T
        for alpha in (0.01, 0.05, 0.2):
            got = fdr_edges(p, net, alpha)
            iu = np.triu_indices(k, 1)
            tested = net[iu]
            reject, _ = fdr_correction(p[iu][tested], alpha=alpha, method="indep")
            want = np.zeros((k, k), bool)
            want[iu[0][tested], iu[1][tested]] = reject
            np.testing.assert_array_equal(got, want | want.T, err_msg=f"trial {trial}, alpha {alpha}")


def test_no_import_cycle_between_multidist_nonlinear_changes():
    """The linear engine sits below the estimators: no core module imports one above it."""
    import ast
    import pathlib

    core = pathlib.Path(crl_neuro.__file__).parent / "core"

    def imports(name):
        tree = ast.parse((core / f"{name}.py").read_text())
        return {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}

    assert "crl_neuro.core.multidist" not in imports("nonlinear")
    assert "crl_neuro.core.multidist" not in imports("changes")
    assert not {"crl_neuro.core.multidist", "crl_neuro.core.nonlinear", "crl_neuro.core.changes"} & imports(
        "joint_sparse"
    )


def test_change_subspace_finds_changing_directions_not_the_strongest():
    """Population covariances: two strong stationary latents, two weak ones whose power
    changes, two weak stationary ones. The change subspace is the changing latents'
    span; the principal subspace is the strong latents' span."""
    from crl_neuro.core.joint_sparse import change_subspace, signal_subspace

    rng = np.random.default_rng(0)
    p, D = 6, 5
    A = rng.standard_normal((p, p))
    var = np.tile([100.0, 80.0, 1.0, 1.0, 0.5, 0.5], (D, 1))
    var[:, 2:4] = np.exp(rng.uniform(-1.5, 1.5, (D, 2)))
    covs = np.array([A @ np.diag(v) @ A.T for v in var])
    pi = np.full(D, 1.0 / D)

    def angle_cos(basis, cols):  # smallest cosine of the principal angles
        Q, _ = np.linalg.qr(A[:, cols])
        return np.linalg.svd(basis.T @ Q, compute_uv=False).min()

    V, Vpinv, E, score = change_subspace(covs, pi, 2, p, "rank")
    assert angle_cos(E, [2, 3]) > 0.999
    pooled = np.einsum("d,dab->ab", pi, covs)
    np.testing.assert_allclose(V @ pooled @ V.T, np.eye(2), atol=1e-8)
    np.testing.assert_allclose(V @ Vpinv, np.eye(2), atol=1e-8)
    np.testing.assert_allclose(E.T @ E, np.eye(2), atol=1e-10)
    assert score[0] >= score[1] > 0
    _, _, E_var, _ = signal_subspace(pooled, 2, 1e-10, "rank")
    assert angle_cos(E_var, [2, 3]) < 0.5
    # Searching only the two leading principal directions cannot find them.
    _, _, E2, _ = change_subspace(covs, pi, 2, 2, "rank")
    assert angle_cos(E2, [2, 3]) < 0.5
    with pytest.raises(ValueError, match="rank"):
        change_subspace(np.array([np.outer(A[:, 0], A[:, 0])] * D), pi, 2, p, "rank")
