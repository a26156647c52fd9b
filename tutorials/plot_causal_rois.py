"""
Causal regions of interest inside a Nilearn workflow
=====================================================

An ROI is a useful causal variable only if its voxels play one causal role: intervening
on "the ROI" must mean the same thing whichever of its voxels we set. In the language of
causal abstraction (Beckers & Halpern 2019), the voxel -> ROI averaging map must be a
*constructive abstraction* of the voxel-level dynamics.
:class:`crl_neuro.fmri.CausalROIs` partitions the voxels into contiguous ROIs plus a
background from one or several runs (runs are different distributions), learns the
ROI-level causal graph, and measures how far the voxel -> ROI map is from an exact
abstraction. Be clear about what decides the ROIs: denoised voxel correlations, merging
and a background rule. On the package's randomised benchmark its causal merge criterion
(innovations) does little better than merging on time courses (+0.035 ARI on adjacent
driver/driven pairs, nothing overall), so the abstraction error is a measurement to read,
not a guarantee (see the class docstring for the numbers).

We first use simulated runs with ground truth, in the hardest case for correlation
parcellations: an adjacent driver/driven pair of regions. We then fit the real two-run
BOLD data shipped with nitime (when available), and finish by feeding ``labels_img_``
to :class:`~nilearn.maskers.NiftiLabelsMasker` and
:class:`~nilearn.connectome.ConnectivityMeasure`.

Set ``CRL_NEURO_TUTORIAL_QUICK=1`` for a fast run (shorter simulated runs).
"""

# %%
import os
from pathlib import Path

import numpy as np
from nilearn import plotting
from nilearn.connectome import ConnectivityMeasure
from nilearn.image import index_img
from nilearn.maskers import NiftiLabelsMasker, NiftiMasker
from sklearn.cluster import AgglomerativeClustering
from sklearn.covariance import EmpiricalCovariance
from sklearn.feature_extraction.image import grid_to_graph

from crl_neuro.core.metrics import labels_ari
from crl_neuro.datasets import simulate_fmri_rois
from crl_neuro.fmri import CausalROIs
from crl_neuro.viz import show_or_save

quick = os.environ.get("CRL_NEURO_TUTORIAL_QUICK", "0") == "1"

# %%
# Simulated runs with ground truth
# --------------------------------
# Five ROIs on an 8 mm MNI grid; ROI 1 drives its neighbour ROI 2 strongly (one TR
# later), so their time courses are highly correlated. Voxels carry noise and a
# smooth physiological-like nuisance; most of the brain mask is background.
data = simulate_fmri_rois(scenario="coupled", n_runs=3, n_timepoints=120 if quick else 200, random_state=0)
print(f"{len(data.imgs)} runs of shape {data.imgs[0].shape}")

est = CausalROIs(n_rois=5, mask_img=data.mask_img, t_r=2.0, random_state=0)
est.fit(data.imgs)
print(est.lut_)

# %%
# How good is the partition? The adjusted Rand index against the true ROIs, on the
# true ROI voxels and on the whole mask (background included):
true = data.truth.voxel_labels
print("ARI on ROI voxels :", round(labels_ari(true, est.voxel_labels_, mask=true > 0), 3))
print("ARI on whole mask :", round(labels_ari(true, est.voxel_labels_, mask=np.ones_like(true)), 3))
print("abstraction error (data estimate):", round(est.abstraction_error_, 3))
print("per-ROI consistency:", np.round(est.roi_consistency_, 2))

# %%
# The strong correlation baseline a careful user would try: spatially constrained Ward
# clustering of z-scored voxel time courses (one extra cluster for the background).
masker = NiftiMasker(data.mask_img, standardize="zscore_sample").fit()
X = np.concatenate([masker.transform(img) for img in data.imgs])
mask = np.asarray(data.mask_img.dataobj) > 0
ward = AgglomerativeClustering(6, connectivity=grid_to_graph(*mask.shape, mask=mask), linkage="ward")
ward_labels = ward.fit(X.T).labels_ + 1
print("Ward ARI on ROI voxels:", round(labels_ari(true, ward_labels, mask=true > 0), 3))

# %%
# ROI map and ROI graph (``roi_graph_[i, j] != 0`` means ROI i+1 -> ROI j+1; edges are
# found by Granger tests with run-specific coefficients, so edges that switch on or off
# across runs are kept).
fig = est.plot(title="Causal ROIs (simulation)")
print("estimated graph:\n", np.round(est.roi_graph_, 2))
print("true graph (ROI numbering of the simulator):\n", np.round(data.roi_graph, 2))

# %%
# Real BOLD: two runs from the nitime package data
# ------------------------------------------------
# ``../shared/data/fmri/nitime`` holds two short runs (10x10x18 voxels, 40 volumes,
# TR 1.35 s). The first volumes are not at steady state, so we drop three with
# :func:`nilearn.image.index_img`. With so few volumes the numbers are only
# illustrative (an ROI graph from 37 volumes per run is mostly empty).
here = Path(globals().get("__file__", Path.cwd() / "plot_causal_rois.py")).resolve().parent
candidates = [base / "shared" / "data" / "fmri" / "nitime" for base in (here.parent.parent, Path.cwd().parent, Path.cwd().parent.parent)]
nitime_dir = next((c for c in candidates if c.is_dir()), candidates[0])
runs = [nitime_dir / "fmri1.nii.gz", nitime_dir / "fmri2.nii.gz"]
if all(p.is_file() for p in runs):
    real_imgs = [index_img(str(p), slice(3, None)) for p in runs]
    real = CausalROIs(n_rois=4, t_r=1.35, random_state=0).fit(real_imgs)
    print(real.lut_)
    print("ROI graph:\n", np.round(real.roi_graph_, 2))
    real.plot(title="Causal ROIs (nitime BOLD)")
else:
    print("nitime runs not found; skipping the real-data part")
    real = None

# %%
# Back to Nilearn: ``labels_img_`` is a standard atlas
# ----------------------------------------------------
# ``labels_img_`` (3D int32, 0 = background) and ``lut_`` plug into Nilearn's
# ``NiftiLabelsMasker``; the ROI signals feed ``ConnectivityMeasure`` as usual.
fitted, imgs = (real, real_imgs) if real is not None else (est, data.imgs)
labels_masker = NiftiLabelsMasker(fitted.labels_img_, lut=fitted.lut_[["index", "name"]], standardize="zscore_sample")
signals = [labels_masker.fit_transform(img) for img in imgs]
# (the empirical covariance: Ledoit-Wolf shrinks weak correlations from few volumes to 0)
conn = ConnectivityMeasure(kind="correlation", cov_estimator=EmpiricalCovariance()).fit_transform(signals)
print("correlations of run 1:\n", np.round(conn[0], 2))
plotting.plot_matrix(conn.mean(axis=0), labels=list(fitted.lut_["name"][1:]), vmin=-1, vmax=1)
# On a display this is ``plt.show()``; without one (``MPLBACKEND=Agg``, a cluster node)
# it saves the figures to ``./crl_neuro_figures`` or ``$CRL_NEURO_FIGURES_DIR``.
show_or_save()
