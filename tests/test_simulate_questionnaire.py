"""Ground truth of simulate_latent_questionnaire."""

import numpy as np
import pandas as pd
import pytest

from crl_neuro.datasets import simulate_latent_questionnaire
from crl_neuro.datasets.psychometrics import STRUCTURES


@pytest.mark.parametrize("structure", sorted(STRUCTURES))
def test_truth_is_consistent(structure):
    b = simulate_latent_questionnaire(structure, n_samples=300, random_state=0)
    t = b.truth
    assert isinstance(b.data, pd.DataFrame)
    names = list(t.latent_graph.index)
    assert list(t.cpdag.index) == names == list(t.loadings.columns)
    assert list(t.loadings.index) == list(b.data.columns) == list(t.clusters.index)
    # the DAG is acyclic and the CPDAG has the same skeleton
    G = t.latent_graph.to_numpy() != 0
    assert not np.any(np.linalg.matrix_power(G.astype(int), len(names)))
    C = t.cpdag.to_numpy() != 0
    np.testing.assert_array_equal(G | G.T, C | C.T)
    # hidden latents have no items
    for h in t.hidden_latents:
        assert not (t.loadings[h] != 0).any()
    # latents have unit variance and follow the graph (parents explain part of them)
    assert np.allclose(t.latent_scores.std(), 1.0, atol=0.15)


def test_equivalence_classes_of_named_structures():
    cp = {s: simulate_latent_questionnaire(s, n_samples=50, random_state=1).truth.cpdag for s in STRUCTURES}
    # collider: both edges compelled
    c = cp["collider"]
    assert c.loc["L1", "L3"] and not c.loc["L3", "L1"] and c.loc["L2", "L3"] and not c.loc["L3", "L2"]
    # chain and fork: undirected (same class)
    for s in ("chain", "fork"):
        m = cp[s].to_numpy()
        assert np.array_equal(m, m.T) and m.sum() == 4
    # diamond: the v-structure into L4 is compelled, the edges out of L1 are not
    d = cp["diamond"]
    assert d.loc["L2", "L4"] and not d.loc["L4", "L2"] and d.loc["L1", "L2"] and d.loc["L2", "L1"]
    # hidden common cause: an undirected star
    h = cp["hidden"]
    assert (h.loc["H1", ["L1", "L2", "L3", "L4"]] != 0).all() and (h.loc[["L1", "L2", "L3", "L4"], "H1"] != 0).all()


def test_impure_items_and_options():
    b = simulate_latent_questionnaire("impure_items", n_samples=400, n_levels=5, missing_rate=0.1,
                                      noise="exponential", random_state=2)
    t = b.truth
    assert t.structure == "impure"
    assert ("L1_1", "L2") in t.cross_loadings and t.loadings.loc["L1_1", "L2"] != 0
    assert t.item_effects == [("L3_1", "L3_2")]
    vals = b.data.to_numpy()
    assert 0.05 < np.isnan(vals).mean() < 0.15
    assert set(np.unique(vals[~np.isnan(vals)])) <= {1.0, 2.0, 3.0, 4.0, 5.0}


def test_reproducible_and_validated():
    a = simulate_latent_questionnaire("chain", n_samples=100, random_state=3)
    b = simulate_latent_questionnaire("chain", n_samples=100, random_state=3)
    pd.testing.assert_frame_equal(a.data, b.data)
    with pytest.raises(ValueError, match="structure"):
        simulate_latent_questionnaire("spiral")
    with pytest.raises(ValueError, match="n_items_per_latent"):
        simulate_latent_questionnaire(n_items_per_latent=2)
    with pytest.raises(ValueError, match="noise"):
        simulate_latent_questionnaire(noise="cauchy")
