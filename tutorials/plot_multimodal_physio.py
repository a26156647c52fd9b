"""
Latent causal variables across physiological modalities
=======================================================

Heart (ECG), peripheral pulse (photoplethysmography, PPG) and breathing (RSP) are three
views of one body. :class:`crl_neuro.multimodal.MultiModalCRL` learns a few latent
variables per modality and the sparse causal links among them across modalities
(Sun et al., ICLR 2025), then PC (causal-learn) runs over the estimated latents.

We use NeuroKit's 5-minute resting recording (ECG, PPG, RSP at 100 Hz) when
``../shared/data/physio_multimodal/neurokit/`` is present, cut into 10-s windows
sliding by 1 s, and compute simple features per window with numpy/scipy. Without the
data, we fall back on :func:`crl_neuro.datasets.simulate_multimodal` (where the true
graph is known). Set ``CRL_NEURO_TUTORIAL_QUICK=1`` for a fast run.
"""

# %%
import os
from pathlib import Path

import matplotlib.pyplot as plt
from matplotlib.patches import Patch
import numpy as np
import pandas as pd
from scipy.signal import find_peaks, welch

from crl_neuro.datasets.multimodal import simulate_multimodal
from crl_neuro.multimodal import MultiModalCRL
from crl_neuro.viz import show_or_save

QUICK = os.environ.get("CRL_NEURO_TUTORIAL_QUICK", "0") == "1"
try:
    HERE = Path(__file__).resolve().parent
except NameError:  # sphinx-gallery / interactive
    HERE = Path.cwd()
DATA = HERE.parents[1] / "shared" / "data" / "physio_multimodal" / "neurokit"
SFREQ = 100.0

# %%
# Features per window
# -------------------
# Beats and breaths are found as peaks of the (standardised) signals with a minimal
# distance between them; rates come from the peak intervals.


def peak_features(x, min_interval_s, prominence):
    """Rate (per min), interval variability (s) and mean peak amplitude of a window."""
    x = (x - x.mean()) / (x.std() + 1e-12)
    peaks, _ = find_peaks(x, distance=int(min_interval_s * SFREQ), prominence=prominence)
    if len(peaks) < 3:
        return np.nan, np.nan, np.nan
    ibi = np.diff(peaks) / SFREQ
    return 60.0 / ibi.mean(), np.sqrt(np.mean(np.diff(ibi) ** 2)), x[peaks].mean()


def breathing_features(x):
    """Breathing rate (dominant frequency, per min), amplitude and amplitude variability."""
    f, p = welch(x - x.mean(), fs=SFREQ, nperseg=len(x))
    band = (f >= 0.1) & (f <= 0.7)
    rate = 60.0 * f[band][np.argmax(p[band])]
    seg = x.reshape(5, -1)
    amp = seg.max(1) - seg.min(1)
    return rate, amp.mean(), amp.std()


def window_features(df, win_s=10.0, step_s=1.0):
    win, step = int(win_s * SFREQ), int(step_s * SFREQ)
    rows = {"ecg": [], "ppg": [], "rsp": []}
    for start in range(0, len(df) - win + 1, step):
        w = df.iloc[start:start + win]
        rows["ecg"].append(peak_features(w["ECG"].to_numpy(), 0.33, 1.5))
        rows["ppg"].append(peak_features(w["PPG"].to_numpy(), 0.33, 0.5))
        rows["rsp"].append(breathing_features(w["RSP"].to_numpy()))
    cols = {"ecg": ["heart_rate", "rmssd", "r_amplitude"],
            "ppg": ["pulse_rate", "pulse_rmssd", "pulse_amplitude"],
            "rsp": ["breathing_rate", "breath_amplitude", "amplitude_sd"]}
    feats = {m: pd.DataFrame(v, columns=cols[m]) for m, v in rows.items()}
    ok = np.all([f.notna().all(axis=1).to_numpy() for f in feats.values()], axis=0)
    return {m: f[ok].reset_index(drop=True) for m, f in feats.items()}


# %%
# Load the data (or simulate)
# ---------------------------
truth = None
if (DATA / "bio_resting_5min_100hz.csv").is_file():
    signals = pd.read_csv(DATA / "bio_resting_5min_100hz.csv")
    if QUICK:
        signals = signals.iloc[: int(120 * SFREQ)]
    data = window_features(signals)
    latent_dims = {"ecg": 2, "ppg": 2, "rsp": 2}
    print({m: f.shape for m, f in data.items()})
    print(data["ecg"].describe().round(3))
else:
    sim = simulate_multimodal(n_samples=600 if QUICK else 2000, n_modalities=3, latent_dims=2,
                              within_edges=0, random_state=0)
    data, truth = sim.data, sim.truth
    latent_dims = {m: 2 for m in sim.modalities}

# %%
# Fit the model
# -------------
est = MultiModalCRL(latent_dims, max_iter=30 if QUICK else 150, random_state=0)
est.fit(data)
latents = est.transform(data)
print("latent index:", est.latent_index_)
print("cross-modal edges:")
for i, j in zip(*np.nonzero(est.cross_modal_graph_)):
    print(f"  {est.node_names_[i]} -> {est.node_names_[j]}  (weight {est.cross_modal_graph_[i, j]:+.2f})")

# %%
# Which observed features does each latent summarise? Correlations per modality.
for m in est.modalities_:
    if hasattr(data[m], "columns"):
        corr = pd.DataFrame(
            [[np.corrcoef(latents[m][:, k], data[m].iloc[:, j])[0, 1] for j in range(data[m].shape[1])]
             for k in range(latents[m].shape[1])],
            index=[f"{m}:z{k}" for k in range(latents[m].shape[1])], columns=data[m].columns,
        )
        print(corr.round(2))

# %%
# The cross-modal graph (colour: sign; grey: within-modality edges) and, beside it, the
# CPDAG that PC finds over the estimated latents.
fig, axes = plt.subplots(1, 2, figsize=(11, 4))
est.plot(ax=axes[0])
pc_adj = est.pc_graph_.to_adjacency()
axes[1].imshow(pc_adj != 0, cmap="Greys")
axes[1].set_xticks(range(len(est.node_names_)), est.node_names_, rotation=90)
axes[1].set_yticks(range(len(est.node_names_)), est.node_names_)
axes[1].set_title("PC over estimated latents (row -> column)")
axes[1].legend(handles=[Patch(facecolor="black", label="edge row -> column\n(both cells: undirected)"),
                        Patch(facecolor="white", edgecolor="0.5", label="no edge")],
               loc="upper left", bbox_to_anchor=(1.02, 1.0), fontsize=8)
fig.tight_layout()
# On a display this is ``plt.show()``; without one (``MPLBACKEND=Agg``, a cluster node)
# it saves the figures to ``./crl_neuro_figures`` or ``$CRL_NEURO_FIGURES_DIR``.
show_or_save()

# %%
# With simulated data the truth is known: score the recovered latents.
if truth is not None:
    from crl_neuro.core.metrics import mcc

    for m in est.modalities_:
        print(m, "MCC", round(mcc(sim.latents[m], latents[m]), 3))
