"""
A group study: one SessionCRL per visit, consistency across visits, a report
============================================================================

A study rarely stops at one recording. This tutorial simulates a small longitudinal
study — one participant seen at several visits, each visit made of several runs in
which the causal relations between brain sources change — fits one
:class:`~crl_neuro.meeg.SessionCRL` per visit with :func:`crl_neuro.group.fit_group`
from files on disk, checks how consistent the recovered sources and networks are
across visits, and writes an HTML report. The same calls fit one estimator per
subject in a multi-subject study.

Everything runs offline on simulated data. Set ``CRL_NEURO_TUTORIAL_QUICK=1`` for a
fast run (fewer visits, shorter runs).
"""

# %%
# Simulate the visits and write them as FIF files
# -----------------------------------------------
# One simulation with ``3 * n_visits`` sessions gives one head and one set of sources;
# every three consecutive sessions form a visit. Real studies keep their files in a
# BIDS tree; here we write plain FIF files into a temporary directory.
import os
import tempfile
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import mne
import numpy as np

from crl_neuro.datasets import simulate_meeg_sessions
from crl_neuro.group import default_loader, fit_group, network_consistency
from crl_neuro.meeg import SessionCRL
from crl_neuro.report import make_report, methods_paragraph, truth_scores
from crl_neuro.viz import show_or_save

QUICK = os.environ.get("CRL_NEURO_TUTORIAL_QUICK", "0") == "1"
n_visits = 3 if QUICK else 6
runs_per_visit = 3
duration = 20.0 if QUICK else 60.0
workdir = Path(tempfile.mkdtemp(prefix="crl_group_"))

sim = simulate_meeg_sessions(n_sources=3, n_sessions=n_visits * runs_per_visit,
                             duration=duration, random_state=7)
fwd_fname = workdir / "sub-01-fwd.fif"
# MNE stores forwards in free orientation (and warns that the fixed orientation of
# the simulator's forward is not kept); the loader below restores it on reading.
with warnings.catch_warnings():
    warnings.simplefilter("ignore", RuntimeWarning)
    mne.write_forward_solution(fwd_fname, sim.forward, overwrite=True, verbose=False)
visits, truths = {}, {}
for v in range(n_visits):
    runs = range(v * runs_per_visit, (v + 1) * runs_per_visit)
    paths = []
    for r in runs:
        fname = workdir / f"sub-01_ses-{v:02d}_run-{r % runs_per_visit}_raw.fif"
        sim.raws[r].save(fname, overwrite=True, verbose=False)
        paths.append(fname)
    visit = f"ses-{v:02d}"
    visits[visit] = {"insts": paths}
    # The truth of a visit: its runs' moralised graphs united (what is identifiable).
    truths[visit] = dict(pos=sim.truth.pos, patterns=sim.truth.patterns,
                         markov_network=np.any(sim.truth.moral_graphs[list(runs)] != 0, axis=0))
print(f"{n_visits} visits x {runs_per_visit} runs written to {workdir}")

# %%
# Fit one estimator per visit
# ---------------------------
# ``fit_group`` clones the template for each visit, loads the files inside the
# worker, fits, and saves ``<visit>.crl`` as soon as each one is done. The forward
# model is shared, so it goes to every ``fit`` through ``fit_params`` (a file name:
# it is read in the worker too). With ``n_jobs=2`` two visits run at a time (joblib's
# default backend; wrap the call in ``joblib.parallel_config(backend="dask")`` to use
# a Dask cluster instead).
#
# ``loader`` turns each file name into what ``fit`` takes. The default reads FIF raw,
# epochs, forward and covariance files, NIfTI images and BIDS paths; here we wrap it
# to give the forward its fixed (surface-normal) orientation back.


def load_fixed(path):
    obj = default_loader(path)
    if isinstance(obj, mne.Forward):
        obj = mne.convert_forward_solution(obj, surf_ori=True, force_fixed=True,
                                           use_cps=True, verbose=False)
    return obj


template = SessionCRL(n_sources=3, noise_cov=sim.noise_cov, verbose=False)
out_dir = workdir / "derivatives"
result = fit_group(template, visits, loader=load_fixed, out_dir=out_dir, n_jobs=2,
                   random_state=0, fit_params={"forward": fwd_fname})
print(result)
# ``peak_rss_mb``: the worker's peak memory while it fitted that visit (Linux), the
# figure to size a cluster job's memory by.
print(result.summary()[["status", "seed", "fit_seconds", "peak_rss_mb"]])

# %%
# Running the same call again fits nothing: every visit is already on disk.
# This is how an interrupted study is resumed.
again = fit_group(template, visits, loader=load_fixed, out_dir=out_dir, n_jobs=2,
                  random_state=0, fit_params={"forward": fwd_fname})
print(f"second run: fitted {again.fitted}, skipped {len(again.skipped)} visits")

# %%
# How consistent are the visits?
# ------------------------------
# Sources come out in arbitrary order in each fit. ``network_consistency`` matches
# them to the first visit's by their dipole positions (Hungarian algorithm) and
# counts how often each network edge appears. Edges may legitimately differ between
# visits: each visit's network is the union of its own runs' graphs.
summary = network_consistency(result)
print("matching distance to the reference visit (mm):",
      {s: round(d, 1) for s, d in summary.match_quality.items()})

fig, axes = plt.subplots(1, 2, figsize=(8, 3.5), layout="constrained")
im = axes[0].imshow(summary.edge_frequency, vmin=0, vmax=1, cmap="viridis")
names = [f"CRL{i:03d}" for i in range(summary.edge_frequency.shape[0])]  # the reference visit's
axes[0].set(title="edge frequency across visits", xlabel=f"source ({summary.reference})",
            ylabel=f"source ({summary.reference})", xticks=range(len(names)), yticks=range(len(names)),
            xticklabels=names, yticklabels=names)
axes[0].tick_params(axis="x", labelrotation=90)
fig.colorbar(im, ax=axes[0], label="fraction of visits with the edge")
im = axes[1].imshow(summary.pairwise_f1, vmin=0, vmax=1, cmap="viridis")
axes[1].set(title="pairwise network F1", xticks=range(n_visits), yticks=range(n_visits),
            xticklabels=summary.subjects, yticklabels=summary.subjects)
fig.colorbar(im, ax=axes[1], label="F1")

# %%
# A grand-average source map
# --------------------------
# ``SessionCRL.to_stc`` puts each source's time course at its dipole's vertex. Here
# we turn each visit's first run into a source **power** map and average the visits
# with :func:`~crl_neuro.group.grand_average_stc`. The simulated head uses the
# fsaverage5 template for every visit, so no morphing is needed; for real subjects,
# pass ``subject_to="fsaverage"`` and a FreeSurfer ``subjects_dir`` holding both the
# subjects and fsaverage (:func:`mne.datasets.fetch_fsaverage`): each source then
# moves to the nearest fsaverage vertex on the registered spheres, and the map stays
# sparse (``sparse=False`` gives MNE's smoothing morph, for dense inverse solutions).
from crl_neuro.group import grand_average_stc  # noqa: E402

power_maps = []
for visit in result:
    stc = result[visit].to_stc(mne.io.read_raw_fif(visits[visit]["insts"][0], verbose=False),
                               sim.forward)
    power = (stc.data ** 2).mean(axis=1, keepdims=True)
    power_maps.append(mne.SourceEstimate(power / power.max(), stc.vertices, tmin=0.0, tstep=1.0,
                                         subject=stc.subject))
grand = grand_average_stc(power_maps)
for hemi, verts in zip(("lh", "rh"), grand.vertices):
    print(f"{hemi}: source vertices {verts.tolist()}")
print("mean normalised power per vertex:", np.round(grand.data[:, 0], 2))

# %%
# Because the data are simulated we can also compare each visit with its truth.
# The true sources are matched to the estimated ones by the Hungarian algorithm.
for visit in result:
    scores = truth_scores(result[visit], truths[visit])
    print(visit, {k: round(v, 2) for k, v in scores.items()})

# %%
# A report for sharing
# --------------------
# ``make_report`` assembles the estimator's figures, the identifiability advisor's
# verdict, the benchmark against the truth, the group consistency section and a
# methods paragraph with citations into one HTML file. ``crl-neuro report`` does the
# same from the shell.
html = make_report(out_dir, workdir / "group_report.html")
print(f"report: {html}")
print(methods_paragraph(result["ses-00"]).split("\n\nReferences")[0])

# %%
# Figures
# -------
# On a display this is ``plt.show()``; without one (``MPLBACKEND=Agg``, a cluster node)
# it saves the figures to ``./crl_neuro_figures`` or ``$CRL_NEURO_FIGURES_DIR``.
show_or_save()
