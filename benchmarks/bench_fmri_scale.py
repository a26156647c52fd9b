"""Benchmark: CausalROIs fit time and peak memory at whole-brain 2 mm size.

Data: the MNI152 brain mask at 2 mm that ships with Nilearn (about 228,000 voxels),
``--n-runs`` runs of ``--n-timepoints`` volumes (default 2 x 150 = 300 volumes), float32
images. ``--n-rois`` (default 16) ROIs are grown around random mask voxels (spheres of
``--radius`` mm, clipped to the mask); each carries an AR(1) latent signal with lagged
links along a random chain, and every voxel adds Gaussian noise (voxel SNR ``--snr``).
The numbers that matter here are cost, not accuracy (the accuracy benchmark is
``bench_fmri.py``); ARI on the ROI voxels is printed as a sanity check that the fit
did its job at this size.

Methods: ``CausalROIs(n_rois=K)`` with defaults, and Nilearn
``Parcellations("ward", n_parcels=K + 1)`` (the issue's reference for time), both
given the same images and mask. Each fit runs in a forked process; ``peak_MB`` is
the increase of the resident-set high-water mark over the process's size before
the fit (the images are already in memory), compared with the masked data size
(``n_voxels x n_volumes`` in float32 and float64).

Measured (2026-12-06, CPU, 1 BLAS thread, the machine shared with two other jobs,
so both times are about 1.7x those of an idle machine; defaults: 235,375 voxels x 2
runs x 150 volumes, float32 images)::

    method                          fit_s   peak_MB  x float32  x float64  ari_roi
    CausalROIs                       64.7       961       3.57       1.78    1.000
    Parcellations ward K+1          124.8      4682      17.38       8.69    0.997

Rerun with ``roi_selection="graph"`` (the default since; 2026-12-06, machine shared with
two other jobs): CausalROIs 65.4 s / 961 MB / ARI 1.000, Parcellations ward K+1 129.7 s /
4679 MB / 0.997.

scikit-learn's connectivity-constrained ``ward_tree`` holds about 3 kB per voxel
(700 MB at 235,000 voxels, whatever the number of volumes), so above 60,000 mask
voxels CausalROIs over-segments slabs of the grid separately and lets the merge
step join the pieces cut at slab borders (``_parcellation.WARD_MAX_VOXELS``). The
data themselves are held once, in the masker's float type (the Gram matrix of the
denoising and every per-ROI sum are computed in blocks). Before the slabs the same
problem peaked at 1157 MB (43.4 s idle; ward 74.1 s, 4681 MB), and before the
blockwise sums at 1580 MB.

Usage::

    python benchmarks/bench_fmri_scale.py                   # 2 mm whole brain, 2 x 150 volumes
    python benchmarks/bench_fmri_scale.py --n-timepoints 75 # quicker
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

for _v in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):
    os.environ.setdefault(_v, "1")

import numpy as np  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bench_fmri import _run_isolated  # noqa: E402

warnings.filterwarnings("ignore")


def make_problem(n_rois, n_runs, n_timepoints, radius, snr, seed):
    """Whole-brain 2 mm runs with ``n_rois`` spherical ROIs; returns imgs, mask, labels."""
    import nibabel as nib
    from nilearn.datasets import load_mni152_brain_mask

    rng = np.random.default_rng(seed)
    mask_img = load_mni152_brain_mask(resolution=2)
    mask = np.asarray(mask_img.get_fdata()) > 0
    ijk = np.argwhere(mask)
    xyz = nib.affines.apply_affine(mask_img.affine, ijk)
    labels = np.zeros(len(ijk), dtype=int)
    centres = xyz[rng.choice(len(ijk), n_rois * 20, replace=False)]
    k = 0
    for c in centres:  # non-overlapping spheres
        inside = (np.linalg.norm(xyz - c, axis=1) <= radius) & (labels == 0)
        if inside.sum() < 0.8 * (4 / 3 * np.pi * radius**3) / 8 or np.any(
            labels[np.linalg.norm(xyz - c, axis=1) <= radius + 4] > 0
        ):
            continue
        k += 1
        labels[inside] = k
        if k == n_rois:
            break
    A = 0.5 * np.eye(k) + np.diag(np.full(k - 1, 0.4), -1)  # a chain of lagged links
    imgs = []
    for _ in range(n_runs):
        z = np.zeros((n_timepoints, k))
        e = rng.standard_normal((n_timepoints, k))
        for t in range(1, n_timepoints):
            z[t] = A @ z[t - 1] + e[t]
        z /= z.std(axis=0)
        X = rng.standard_normal((n_timepoints, len(ijk))).astype(np.float32)
        roi = labels > 0
        X[:, roi] += (np.sqrt(snr) * z[:, labels[roi] - 1]).astype(np.float32)
        vol = np.zeros(mask.shape + (n_timepoints,), dtype=np.float32)
        vol[tuple(ijk.T)] = X.T + 100.0
        imgs.append(nib.Nifti1Image(vol, mask_img.affine))
        del X
    return imgs, nib.Nifti1Image(mask.astype(np.uint8), mask_img.affine), labels, k


def fit_causal_rois(imgs, mask_img, K, seed):
    from crl_neuro.fmri import CausalROIs

    est = CausalROIs(n_rois=K, mask_img=mask_img, random_state=seed).fit(imgs)
    return np.asarray(est.labels_img_.dataobj)


def fit_ward(imgs, mask_img, K, seed):
    from nilearn.regions import Parcellations

    p = Parcellations(method="ward", n_parcels=K + 1, mask=mask_img, standardize="zscore_sample", random_state=seed)
    p.fit(imgs)
    return np.asarray(p.labels_img_.dataobj)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-rois", type=int, default=16)
    ap.add_argument("--n-runs", type=int, default=2)
    ap.add_argument("--n-timepoints", type=int, default=150)
    ap.add_argument("--radius", type=float, default=10.0, help="ROI radius in mm")
    ap.add_argument("--snr", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from crl_neuro.core.metrics import labels_ari

    t0 = time.perf_counter()
    imgs, mask_img, true, K = make_problem(args.n_rois, args.n_runs, args.n_timepoints, args.radius, args.snr, args.seed)
    mask = np.asarray(mask_img.dataobj) > 0
    n_vox, n_vol = int(mask.sum()), args.n_runs * args.n_timepoints
    print(f"{n_vox} mask voxels x {n_vol} volumes, {K} ROIs ({int((true > 0).sum())} ROI voxels); "
          f"masked data {n_vox * n_vol * 4 / 2**20:.0f} MB float32 / {n_vox * n_vol * 8 / 2**20:.0f} MB float64; "
          f"built in {time.perf_counter() - t0:.0f} s")
    print(f"{'method':28s} {'fit_s':>8s} {'peak_MB':>9s} {'x float32':>10s} {'x float64':>10s} {'ari_roi':>8s}")
    for name, fit in [("CausalROIs", fit_causal_rois), ("Parcellations ward K+1", fit_ward)]:
        lab_img, fit_s, peak = _run_isolated(fit, (imgs, mask_img, K, args.seed))
        lab = np.round(lab_img[mask]).astype(int)
        ari = labels_ari(true, lab, mask=true > 0)
        print(f"{name:28s} {fit_s:8.1f} {peak:9.0f} {peak / (n_vox * n_vol * 4 / 2**20):10.2f} "
              f"{peak / (n_vox * n_vol * 8 / 2**20):10.2f} {ari:8.3f}", flush=True)


if __name__ == "__main__":
    main()
