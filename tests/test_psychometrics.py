"""LatentCausalModel: recovery on simulated ground truth, API contract, real data."""

import time

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError
from sklearn.metrics import adjusted_rand_score

import crl_neuro
from crl_neuro.core.metrics import mcc
from crl_neuro.datasets import simulate_latent_questionnaire
from crl_neuro.psychometrics import LatentCausalModel
from crl_neuro.psychometrics.evaluation import score_model
from crl_neuro.psychometrics.rank_tests import RankTester, correlation_matrix, rank_test_pvalue
from crl_neuro.psychometrics.structure import cpdag_from_dag, learn_latent_structure

STRUCTURES = ["chain", "fork", "collider", "diamond", "hidden", "impure"]


def _fit(structure, seed, **kw):
    b = simulate_latent_questionnaire(structure, n_samples=2000, random_state=seed)
    return b, LatentCausalModel(**kw).fit(b.data)


# -- recovery of the equivalence class -----------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize("structure", STRUCTURES)
def test_recovers_equivalence_class(structure, seed):
    b, m = _fit(structure, seed)
    sc = score_model(m, b.truth)
    assert sc["cluster_ari"] == pytest.approx(1.0)
    assert sc["n_latents_error"] == 0
    assert sc["shd"] == 0, (m.structure_, b.truth.cpdag)


@pytest.mark.slow
@pytest.mark.parametrize("structure", STRUCTURES)
def test_equivalence_class_rate_over_seeds(structure):
    ok = [score_model(m, b.truth)["correct_class"] for b, m in (_fit(structure, s) for s in range(20))]
    assert np.mean(ok) >= 0.9


def test_collider_and_diamond_are_oriented_correctly():
    # causal-learn's RLCD port returns wrong latent-latent edges for these two.
    for structure in ("collider", "diamond"):
        b, m = _fit(structure, 3)
        S = m.structure_
        if structure == "collider":
            assert S.loc["L1", "L3"] and not S.loc["L3", "L1"]
            assert S.loc["L2", "L3"] and not S.loc["L3", "L2"]
            assert not S.loc["L1", "L2"] and not S.loc["L2", "L1"]
        else:
            assert score_model(m, b.truth)["shd"] == 0


def test_output_is_an_equivalence_class_not_a_dag():
    # a chain is only identified up to its class: every edge must stay undirected
    b, m = _fit("chain", 0)
    A = m.structure_.to_numpy() != 0
    assert A.sum() == 4 and np.array_equal(A, A.T)


def test_latent_without_indicators_is_found():
    b, m = _fit("hidden", 2)
    hidden = [d for d in m.latents_ if d["hidden"]]
    assert len(hidden) == 1 and hidden[0]["indicators"] == []
    assert sorted(hidden[0]["children"]) == ["L1", "L2", "L3", "L4"]
    h = hidden[0]["name"]
    assert h in m.structure_.index and h not in m.measurement_.columns
    # no spurious edges among the children once the hidden cause is in the graph
    kids = m.structure_.loc[["L1", "L2", "L3", "L4"], ["L1", "L2", "L3", "L4"]]
    assert (kids.to_numpy() == 0).all()


def test_no_hidden_latent_for_a_measured_fork():
    # four children of a *measured* latent satisfy the same tetrads: no H then
    b, m = _fit("fork", 0)
    assert not any(d["hidden"] for d in m.latents_)


@pytest.mark.parametrize("structure", STRUCTURES)
def test_exact_rank_tests_give_the_class(structure):
    # with (nearly) population covariances the latent search is exact
    b = simulate_latent_questionnaire(structure, n_samples=100_000, random_state=0)
    R, n = correlation_matrix(b.data.to_numpy())
    items = list(b.data.columns)
    measured = [c for c in b.truth.cpdag.index if c not in b.truth.hidden_latents]
    pure = [[items.index(i) for i in items if b.truth.clusters[i] == nm and i not in b.truth.impure_items]
            for nm in measured]
    cp, h, groups = learn_latent_structure(RankTester(R, n), pure, alpha=1e-6)
    order = measured + b.truth.hidden_latents
    np.testing.assert_array_equal(cp != 0, b.truth.cpdag.loc[order, order].to_numpy() != 0)


def test_impure_items_are_flagged():
    b, m = _fit("impure", 1)
    assert "L1_1" in m.impure_items_
    # the cross-loading is described with a non-zero loading on both latents
    row = m.measurement_.loc["L1_1"]
    assert row["L1"] != 0 and row["L2"] != 0
    # the item-item effect (L3_1 -> L3_2) is found as a tie between those items
    assert any(set(p) == {"L3_1", "L3_2"} for p in m.item_effects_)
    pure = [i for d in m.latents_ for i in d["pure_indicators"]]
    assert "L1_1" not in pure


def test_reverse_keyed_items_and_latent_scores():
    b, m = _fit("chain", 4)
    truth = b.truth.loadings[["L1", "L2", "L3"]]
    est = m.measurement_[["L1", "L2", "L3"]]
    for nm in ["L1", "L2", "L3"]:
        s = np.sign(est[nm].to_numpy() @ truth[nm].to_numpy())
        nz = truth[nm] != 0
        assert np.all(np.sign(est.loc[nz, nm]) * s == np.sign(truth.loc[nz, nm]))
    scores = m.transform(b.data)
    assert list(scores.columns) == list(m.measurement_.columns)
    assert mcc(b.truth.latent_scores.to_numpy(), scores.to_numpy()) > 0.9


# -- input handling --------------------------------------------------------------------
def test_dataframe_and_array_input_agree():
    b = simulate_latent_questionnaire("collider", n_samples=1500, random_state=5)
    m_df = LatentCausalModel().fit(b.data)
    m_arr = LatentCausalModel().fit(b.data.to_numpy())
    assert list(m_df.measurement_.index) == list(b.data.columns)
    assert list(m_arr.measurement_.index) == [f"X{i + 1}" for i in range(b.data.shape[1])]
    np.testing.assert_array_equal(m_df.structure_.to_numpy(), m_arr.structure_.to_numpy())
    np.testing.assert_allclose(m_df.measurement_.to_numpy(), m_arr.measurement_.to_numpy())


@pytest.mark.parametrize("missing", ["pairwise", "listwise"])
def test_missing_answers_and_likert(missing):
    b = simulate_latent_questionnaire("collider", n_samples=3000, n_levels=5, missing_rate=0.05, random_state=6)
    m = LatentCausalModel(missing=missing).fit(b.data)
    sc = score_model(m, b.truth)
    assert sc["cluster_ari"] == pytest.approx(1.0) and sc["shd"] == 0
    scores = m.transform(b.data)
    assert not scores.isna().any().any()
    if missing == "listwise":
        assert m.n_samples_used_ < 3000 * 0.6
    else:
        assert m.n_samples_used_ > 3000 * 0.85


def test_bad_input_messages():
    b = simulate_latent_questionnaire("chain", n_samples=300, random_state=0)
    df = b.data.copy()
    df["country"] = "FR"
    with pytest.raises(TypeError, match="non-numeric column.*country"):
        LatentCausalModel().fit(df)
    df = b.data.copy()
    df["L1_1"] = 3.0
    with pytest.raises(ValueError, match="constant item.*L1_1"):
        LatentCausalModel().fit(df)
    with pytest.raises(ValueError, match="more respondents than items"):
        LatentCausalModel().fit(b.data.iloc[:10])
    df = b.data.copy()
    df["L2_2"] = np.nan
    with pytest.raises(ValueError, match="no answers.*L2_2"):
        LatentCausalModel().fit(df)
    with pytest.raises(ValueError, match="data must be 2D"):
        LatentCausalModel().fit(b.data.to_numpy()[:, 0])
    with pytest.raises(ValueError, match="method"):
        LatentCausalModel(method="magic").fit(b.data)
    with pytest.raises(ValueError, match="missing"):
        LatentCausalModel(missing="mean").fit(b.data)
    with pytest.raises(ValueError, match="alpha"):
        LatentCausalModel(alpha=2.0).fit(b.data)
    with pytest.raises(NotFittedError):
        LatentCausalModel().transform(b.data)
    m = LatentCausalModel().fit(b.data)
    with pytest.raises(ValueError, match="lacks item column"):
        m.transform(b.data.drop(columns=["L1_2"]))


def test_inputs_unchanged_and_reproducible():
    b = simulate_latent_questionnaire("diamond", n_samples=1200, missing_rate=0.02, random_state=7)
    before = b.data.copy()
    arr = b.data.to_numpy().copy()
    m1 = LatentCausalModel(n_bootstrap=4, random_state=1).fit(b.data)
    m2 = LatentCausalModel(n_bootstrap=4, random_state=1).fit(b.data)
    LatentCausalModel().fit(arr)
    pd.testing.assert_frame_equal(b.data, before)
    np.testing.assert_array_equal(np.isnan(arr), np.isnan(before.to_numpy()))
    pd.testing.assert_frame_equal(m1.structure_, m2.structure_)
    pd.testing.assert_frame_equal(m1.measurement_, m2.measurement_)
    pd.testing.assert_frame_equal(m1.edge_stability_, m2.edge_stability_)


def test_bootstrap_stability_parallel_equals_serial():
    b = simulate_latent_questionnaire("collider", n_samples=1500, random_state=8)
    m1 = LatentCausalModel(n_bootstrap=6, n_jobs=1).fit(b.data)
    m2 = LatentCausalModel(n_bootstrap=6, n_jobs=2).fit(b.data)
    pd.testing.assert_frame_equal(m1.edge_stability_, m2.edge_stability_)
    es = m1.edge_stability_
    row = es[(es.source == "L1") & (es.target == "L3")].iloc[0]
    assert row.p_edge >= 0.8 and row.p_forward >= 0.8
    none = es[(es.source == "L1") & (es.target == "L2")].iloc[0]
    assert none.p_edge <= 0.2


def test_clone_save_load(tmp_path):
    b = simulate_latent_questionnaire("hidden", n_samples=2000, random_state=0)
    m = LatentCausalModel(alpha=0.005, n_bootstrap=3).fit(b.data)
    c = clone(m)
    assert c.get_params() == m.get_params() and not hasattr(c, "structure_")
    path = m.save(tmp_path / "lcm.crl")
    r = crl_neuro.load(path)
    assert isinstance(r, LatentCausalModel)
    pd.testing.assert_frame_equal(r.structure_, m.structure_, check_dtype=False)
    pd.testing.assert_frame_equal(r.measurement_, m.measurement_, check_dtype=False)
    assert r.latents_ == m.latents_ and r.clusters_ == m.clusters_
    pd.testing.assert_frame_equal(r.transform(b.data), m.transform(b.data))


def test_plot_path_diagram():
    import matplotlib.pyplot as plt

    b, m = _fit("impure", 2, n_bootstrap=3)
    fig = m.plot()
    assert fig.axes and len(fig.axes[0].patches) >= len(m.structure_)
    fig2, ax = plt.subplots()
    assert m.plot(ax=ax, show_items=False) is fig2


def test_rank_test_is_calibrated_and_powerful():
    rng = np.random.default_rng(0)
    n, p_null, p_alt = 1000, [], []
    for _ in range(100):
        L = rng.standard_normal((n, 2))
        X = np.c_[L[:, [0]] * [0.8, 0.7, 0.6] + 0.6 * rng.standard_normal((n, 3)),
                  L[:, [1]] * [0.8, 0.7, 0.6] + 0.6 * rng.standard_normal((n, 3))]
        R = np.corrcoef(X, rowvar=False)
        # {x0, x3} vs {x1, x4}: rank 2 (two latents); {x0, x1} vs {x2}: rank 1
        p_null.append(rank_test_pvalue(R, [0, 1], [2, 5], 1, n))
        p_alt.append(rank_test_pvalue(R, [0, 3], [1, 4], 1, n))
    assert 0.0 <= np.mean(np.array(p_null) < 0.05) <= 0.12
    assert np.mean(np.array(p_alt) < 0.01) == 1.0


def test_cpdag_from_dag_meek():
    # a -> b <- c, b -> d: the v-structure compels b -> d too (Meek R1)
    D = np.zeros((4, 4))
    D[0, 1] = D[2, 1] = D[1, 3] = 1
    cp = cpdag_from_dag(D)
    assert cp[0, 1] and not cp[1, 0] and cp[1, 3] and not cp[3, 1]


# -- real data ---------------------------------------------------------------------------
@pytest.mark.shared_data
def test_bfi_aligns_with_keyed_traits_fast(shared_data):
    path = shared_data / "psychometric" / "psych_R_pkg" / "bfi.csv"
    if not path.is_file():
        pytest.skip("bfi.csv not available")
    df = pd.read_csv(path).drop(columns=["id", "gender", "education", "age"], errors="ignore")
    t0 = time.perf_counter()
    m = LatentCausalModel().fit(df)
    elapsed = time.perf_counter() - t0
    keys = [c[0] for c in df.columns]
    labels = [m.clusters_[c] or "none" for c in df.columns]
    assert adjusted_rand_score(keys, labels) >= 0.7
    assert m.measurement_.shape[1] == 5
    assert elapsed < 15.0


@pytest.mark.slow
def test_causallearn_methods_run_through_the_same_api():
    b = simulate_latent_questionnaire("collider", n_samples=600, noise="exponential", random_state=0)
    m = LatentCausalModel(method="causallearn-rlcd").fit(b.data)
    assert m.measurement_.shape[0] == b.data.shape[1]
    assert set(m.structure_.index) >= set(m.measurement_.columns)
    assert m.transform(b.data).shape == (600, m.measurement_.shape[1])


@pytest.mark.slow
@pytest.mark.shared_data
def test_ipip_50_items_align_with_keyed_traits(shared_data):
    path = shared_data / "psychometric" / "ipip_ffm_big5" / "data.csv"
    if not path.is_file():
        pytest.skip("IPIP data.csv not available")
    df = pd.read_csv(path, sep="\t")
    items = [c for c in df.columns if c[:1] in "ENACO" and c[1:].isdigit()]
    X = df[items].replace(0, np.nan).astype(float)  # 0 = missed answer
    m = LatentCausalModel().fit(X)
    labels = [m.clusters_[c] or "none" for c in items]
    assert adjusted_rand_score([c[0] for c in items], labels) >= 0.7
