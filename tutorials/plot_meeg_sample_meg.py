"""
SessionCRL with a real MEG forward model (MNE sample subject)
=============================================================

The MNE "sample" subject comes with a real MEG sensor array (Elekta Neuromag
306: magnetometers and planar gradiometers), a head-MRI co-registration, a BEM
and a volume source space built from the BEM. We compute the MEG forward model
(free orientation) from them, simulate
a few sessions in which three cortical sources drive each other with strengths
that change from session to session, and let :class:`crl_neuro.meeg.SessionCRL`
recover the sources, their locations and their network from the sensor data
alone, with MNE's noise covariance of the same recording for whitening
(magnetometers and gradiometers are combined the MNE way).

Needs ``../shared/data/meg_eeg/`` (MNE testing data); the tutorial says so and
stops when it is absent. ``CRL_NEURO_TUTORIAL_QUICK=1`` shortens the sessions.
"""

# %%
import os
from pathlib import Path

import mne
import numpy as np

from crl_neuro.core.metrics import graph_scores, localization_error, mcc
from crl_neuro.meeg import SessionCRL
from crl_neuro.viz import show_or_save

QUICK = os.environ.get("CRL_NEURO_TUTORIAL_QUICK", "0") == "1"
try:
    HERE = Path(__file__).resolve().parent
except NameError:  # sphinx-gallery / interactive
    HERE = Path.cwd()
DATA = HERE.parents[1] / "shared" / "data" / "meg_eeg"
TESTING = DATA / "mne_testing_data"
HAVE_DATA = (TESTING / "subjects" / "sample" / "bem").is_dir() and (
    DATA / "mne_python_testdata" / "test-ave.fif.gz"
).is_file()
if not HAVE_DATA:
    print(f"MNE sample geometry not found under {DATA}; nothing to show.")

# %%
# Geometry: sensors, co-registration, BEM, source space
# -----------------------------------------------------
if HAVE_DATA:
    # Measurement info (sensor array, digitisation) of a sample-subject recording.
    raw_info = mne.io.read_info(DATA / "mne_python_testdata" / "test-ave.fif.gz", verbose=False)
    info = mne.pick_info(raw_info, mne.pick_types(raw_info, meg=True, exclude="bads"))
    trans = TESTING / "MEG" / "sample" / "sample_audvis_trunc-trans.fif"
    bem = mne.read_bem_solution(TESTING / "subjects" / "sample" / "bem" / "sample-1280-bem-sol.fif",
                                verbose=False)
    # A volume source space inside the inner skull (the testing data carry no
    # cortical surfaces): free-orientation dipoles every 12 mm.
    src = mne.setup_volume_source_space(pos=12.0, bem=bem, verbose=False)
    fwd = mne.make_forward_solution(info, trans, src, bem, meg=True, eeg=False, verbose=False)
    noise_cov = mne.read_cov(TESTING / "MEG" / "sample" / "sample_audvis-cov.fif", verbose=False)
    noise_cov = noise_cov.copy().pick_channels(info["ch_names"], ordered=True)
    print(fwd)

# %%
# Simulate sessions with causally linked sources
# ----------------------------------------------
# Source 0 drives source 1, which drives source 2; the strengths and the noise
# levels change across sessions (the 1 -> 2 link is switched off in one). The
# sensors see the leadfield times the sources plus noise drawn from the real
# noise covariance.

if HAVE_DATA:
    rng = np.random.default_rng(0)
    sfreq, n_times = info["sfreq"], (3000 if QUICK else 9000)
    # Three sources at least 4 cm apart, random orientations.
    rr = fwd["source_rr"]
    chosen = [int(rng.integers(len(rr)))]
    while len(chosen) < 3:
        c = int(rng.integers(len(rr)))
        if np.min(np.linalg.norm(rr[chosen] - rr[c], axis=1)) > 0.04:
            chosen.append(c)
    # The true sources sit 3-6 mm off the scan grid's points (not on them), so the
    # localisation error below includes the grid's own discretisation: their
    # leadfields come from a forward computed at those positions.
    assert fwd["coord_frame"] == mne.io.constants.FIFF.FIFFV_COORD_HEAD  # source_rr in head frame
    head_to_mri = mne.transforms.invert_transform(fwd["mri_head_t"])
    while True:
        step = rng.normal(size=(3, 3))
        step *= rng.uniform(3e-3, 6e-3, size=(3, 1)) / np.linalg.norm(step, axis=1, keepdims=True)
        true_pos = rr[chosen] + step  # head coordinates (m)
        pos_mri = mne.transforms.apply_trans(head_to_mri, true_pos)
        src_true = mne.setup_volume_source_space(
            pos=dict(rr=pos_mri, nn=np.tile([0.0, 0.0, 1.0], (3, 1))), verbose=False)
        fwd_true = mne.make_forward_solution(info, trans, src_true, bem, meg=True, eeg=False,
                                             verbose=False)
        if fwd_true["nsource"] == 3:  # all three inside the inner skull
            break
    gain_true = fwd_true["sol"]["data"].reshape(len(info["ch_names"]), 3, 3)
    ori = rng.normal(size=(3, 3))
    ori /= np.linalg.norm(ori, axis=1, keepdims=True)
    patterns = np.stack([gain_true[:, i] @ o for i, o in enumerate(ori)], axis=1)
    weights = [(0.8, 0.6), (-0.5, 0.9), (0.9, 0.0), (0.3, -0.7)]
    C = noise_cov.data
    L_noise = np.linalg.cholesky(C + 1e-6 * np.trace(C) / len(C) * np.eye(len(C)))
    raws, sources = [], []
    for w01, w12 in weights:
        e = rng.laplace(size=(3, n_times)) * rng.uniform(0.5, 2.0, size=(3, 1))
        z = np.empty_like(e)
        z[0] = e[0]
        z[1] = w01 * z[0] + e[1]
        z[2] = w12 * z[1] + e[2]
        s = 15e-9 * z
        data = patterns @ s + L_noise @ rng.normal(size=(len(C), n_times))
        raw = mne.io.RawArray(data, info, verbose=False)
        # The simulation has no environmental noise for the recording's SSP
        # projectors to remove: drop them (public API, the caller's info untouched).
        raws.append(raw.del_proj("all"))
        sources.append(z)
    true_net = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], bool)

# %%
# Fit and compare with the truth
# ------------------------------
if HAVE_DATA:
    crl = SessionCRL(n_sources=3, noise_cov=noise_cov, random_state=0, verbose=False)
    crl.fit(raws, forward=fwd)
    Z = np.hstack([crl.transform(r) for r in raws]).T
    score, match, _ = mcc(np.hstack(sources).T, Z, return_details=True)
    err = localization_error(true_pos, crl.source_pos_)
    f1 = graph_scores(true_net, crl.markov_network_[np.ix_(match, match)])["f1"]
    print(f"MCC {score:.2f}, localisation error {err:.1f} mm, network F1 {f1:.2f}")
    print(crl.dipoles_)

# %%
# Positions between the grid points
# ---------------------------------
# The scan can only answer with points of the 12 mm grid. Given the BEM, each
# pattern's position is also fitted continuously (:func:`mne.fit_dipole` of the
# pattern, the estimator's noise covariance, trans from the forward).
if HAVE_DATA:
    crl.localize(fwd, bem=bem)
    err_fit = localization_error(true_pos, crl.source_pos_)
    print(f"localisation error: grid scan {err:.1f} mm, continuous dipole fit {err_fit:.1f} mm")

# %%
# Topographies (magnetometers) and the network
# --------------------------------------------
if HAVE_DATA:
    fig = crl.plot_components()
    fig = crl.plot_network()

# %%
# Figures
# -------
# On a display this is ``plt.show()``; without one (``MPLBACKEND=Agg``, a cluster node)
# it saves the figures to ``./crl_neuro_figures`` or ``$CRL_NEURO_FIGURES_DIR``.
show_or_save()
