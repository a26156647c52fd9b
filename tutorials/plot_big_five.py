"""
The causal structure behind the Big Five: latents, impure items, equivalence class
==================================================================================

Personality questionnaires are well designed, but the traits behind the answers are
hidden, and they may cause one another. :class:`~crl_neuro.psychometrics.LatentCausalModel`
finds, from a table of item responses,

* the latent variables and which items measure which latent (reverse-keyed items
  need no recoding: their loadings are simply negative),
* the *impure* items — an item that also loads on a second latent, or that is tied
  directly to another item — which break the rank constraints of a pure cluster,
* the causal structure among the latents as a Markov equivalence class: arrows
  only where the data determine the direction, undirected edges elsewhere, and
  latents without any item of their own when rank constraints call for one.

The method reads conditional independences between latents off rank deficiencies
of the items' cross-covariances (Dong et al., ICLR 2024, "RLCD"). We first check it
on simulated questionnaires with a known answer, then run it on the 25-item ``bfi``
(2800 people) and the 50-item IPIP Big-Five data when ``../shared/data`` holds
them. Set ``CRL_NEURO_TUTORIAL_QUICK=1`` for a fast run.
"""

# %%
# A simulated questionnaire with a known answer
# ---------------------------------------------
# Four traits, where L1 causes L2 and L3, and both cause L4 (a "diamond"). The
# equivalence class of this DAG orients only the v-structure L2 → L4 ← L3; the
# edges out of L1 could point either way without changing any independence.
import os
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import adjusted_rand_score

from crl_neuro.datasets import simulate_latent_questionnaire
from crl_neuro.psychometrics import LatentCausalModel
from crl_neuro.psychometrics.evaluation import score_model
from crl_neuro.viz import show_or_save

QUICK = os.environ.get("CRL_NEURO_TUTORIAL_QUICK", "0") == "1"
n_boot = 10 if QUICK else 50

sim = simulate_latent_questionnaire("diamond", n_samples=2000, n_levels=5, random_state=0)
print(sim.data.head())
model = LatentCausalModel(n_bootstrap=n_boot, random_state=0).fit(sim.data)
print("true equivalence class:\n", sim.truth.cpdag)
print("estimated:\n", model.structure_)
print("scores against the truth:", score_model(model, sim.truth))

# %%
# A latent without items and an impure item
# -----------------------------------------
# Here a hidden trait H1 (no item measures it) causes four measured traits. Without
# it the four look fully connected; the tetrad (rank-1) constraints among their items
# reveal a single common cause and the model adds it.
sim_h = simulate_latent_questionnaire("hidden", n_samples=2000, random_state=1)
model_h = LatentCausalModel().fit(sim_h.data)
print([d for d in model_h.latents_ if d["hidden"]])
print(model_h.structure_)

sim_i = simulate_latent_questionnaire("impure", n_samples=2000, random_state=2)
model_i = LatentCausalModel().fit(sim_i.data)
print("true impure items:", sim_i.truth.impure_items, "| found:", model_i.impure_items_)
print("item-item ties found:", model_i.item_effects_)
model_i.plot()

# %%
# The 25-item bfi: which latents, how well they match the keyed traits
# ---------------------------------------------------------------------
# The data are read from ``../shared/data`` beside the checkout when present, else
# downloaded through the manifest, else we fall back to simulated data. Gender,
# education and age are not items: we drop them. Missing answers are left as NaN
# (pairwise deletion, the default).
try:
    HERE = Path(__file__).resolve().parent
except NameError:  # sphinx-gallery (runs the script in tutorials/) / interactive
    HERE = Path.cwd()
shared = HERE.parents[1] / "shared" / "data" / "psychometric"


def load_bfi() -> pd.DataFrame | None:
    path = shared / "psych_R_pkg" / "bfi.csv"
    if not path.is_file():
        try:
            from crl_neuro.datasets import fetch

            path = Path(fetch("psych_bfi"))
        except Exception as err:  # offline: say so and go on with simulated data
            print(f"bfi not available ({type(err).__name__}); using simulated data")
            return None
    df = pd.read_csv(path)
    df = df.drop(columns=[c for c in ("id", "rownames", "Unnamed: 0", "gender", "education", "age")
                          if c in df.columns])
    return df


bfi = load_bfi()
if bfi is None:
    bfi = simulate_latent_questionnaire("impure", n_samples=2800, n_levels=6, missing_rate=0.01,
                                        random_state=3).data
    keys = [c.split("_")[0] for c in bfi.columns]
else:
    keys = [c[0] for c in bfi.columns]  # A, C, E, N, O: the keyed trait of each item

t0 = time.perf_counter()
big5 = LatentCausalModel(n_bootstrap=n_boot, random_state=0).fit(bfi)
elapsed = time.perf_counter() - t0
labels = [big5.clusters_[c] or "none" for c in bfi.columns]
ari = adjusted_rand_score(keys, labels)
print(f"{big5.measurement_.shape[1]} latents found in {elapsed:.1f} s; "
      f"ARI between item clusters and trait keys: {ari:.2f}")
for d in big5.latents_:
    traits = sorted({k for k, lab in zip(keys, labels) if lab == d["name"]})
    print(d["name"], "<- keyed trait(s)", traits, "| pure indicators:", d["pure_indicators"])

# %%
# Loadings: reverse-keyed items load negatively, impure items are described
# --------------------------------------------------------------------------
print(big5.measurement_.round(2))
print("impure items:", big5.impure_items_)
print("item-item ties:", big5.item_effects_[:10], "..." if len(big5.item_effects_) > 10 else "")

# %%
# The latent causal structure, with bootstrap stability
# -----------------------------------------------------
# ``structure_[a, b] != 0 and structure_[b, a] == 0`` means a → b; both non-zero is an
# undirected edge of the equivalence class. With thousands of respondents every
# latent pair tends to test dependent, so expect a dense class with few arrows:
# that is what the data support, not a failure to pick directions.
print(big5.structure_)
print(big5.edge_stability_.sort_values("p_edge", ascending=False).head(10).round(2))
fig = big5.plot()
fig.suptitle(f"bfi: latent causal structure (trait ARI {ari:.2f})")

# %%
# The 50-item IPIP Big-Five (19 719 people), when present
# -------------------------------------------------------
# Answers coded 0 are missed answers: we turn them into NaN.
ipip_path = shared / "ipip_ffm_big5" / "data.csv"
if ipip_path.is_file() and not QUICK:
    ipip = pd.read_csv(ipip_path, sep="\t")
    items = [c for c in ipip.columns if c[:1] in "ENACO" and c[1:].isdigit()]
    Xi = ipip[items].replace(0, np.nan).astype(float)
    t0 = time.perf_counter()
    m50 = LatentCausalModel().fit(Xi)
    lab50 = [m50.clusters_[c] or "none" for c in items]
    print(f"IPIP: {m50.measurement_.shape[1]} latents in {time.perf_counter() - t0:.1f} s, "
          f"trait ARI {adjusted_rand_score([c[0] for c in items], lab50):.2f}, "
          f"{len(m50.impure_items_)} impure items")
    print(m50.structure_)
else:
    print("IPIP data skipped (absent, or quick mode)")

# On a display this is ``plt.show()``; without one (``MPLBACKEND=Agg``, a cluster node)
# it saves the figures to ``./crl_neuro_figures`` or ``$CRL_NEURO_FIGURES_DIR``.
show_or_save()
