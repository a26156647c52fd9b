"""Benchmark: reliability of ``CausalROIs`` on real fMRI, next to parcellation baselines.

There is no ground truth for real data, so this script measures what can be measured:
how much the ROIs change when the data change (split-half across runs, and first vs
second half of the time points), whether ROIs are spatially contiguous, how many voxels
are labelled, and how long a fit takes.

Data
----
``../shared/data/fmri/nitime/fmri{1,2}.nii.gz`` (relative to the project root): two runs
of real BOLD from nitime's example data (PyPI ``nitime`` 0.12.1, BSD-3), a 10 x 10 x 18
voxel crop (2.08 x 2.08 x 2.3 mm) x 40 volumes, TR 1.35 s (from the header). The
affine is oblique and the qform/sform codes are 1 ("scanner"): coordinates are scanner
mm, **not MNI**. Preparation: the first volume of each run is dropped (slices 0-1 are
zero in it, an acquisition artefact), leaving 39 volumes per run; the crop appears to lie
entirely inside the head, so ``nilearn.masking.compute_epi_mask`` keeps only ~13 voxels and is not
used; the mask keeps the voxels whose mean intensity exceeds half the median in *both*
runs (drops a few dark voxels, which differ between the runs). The two runs' mean images correlate only
weakly voxel by voxel (printed), so the runs may not be perfectly aligned; no
registration is done, which can lower the across-run reliability of every method.

Other 4D images checked (none used): ``../shared/data/fmri/nibabel/example4d.nii.gz``
(2 volumes) and ``../shared/data/fmri/nipy/functional.nii.gz`` (one run of 20 volumes,
3 slices; also shipped as ``nibabel/tests/data/functional.nii``) are too short for a
reliability study. No installed package ships a usable 4D fMRI image offline: nilearn's
``datasets/data`` holds 3D templates and one 3D statistical map only (its fetchers
download), MNE ships no NIfTI, nitime is not installed. Without ``../shared/data`` the
script prints a message and exits with status 0.

Methods (same masked voxels, same ``K``)
----------------------------------------
``CausalROIs``          ``crl_neuro.fmri.CausalROIs(n_rois=K, mask_img=mask, t_r=TR,
                        random_state=seed)``, all other parameters at their defaults
                        (no smoothing, no detrending, background rule on). The
                        output names the crl_neuro version and a hash of its
                        ``fmri`` sources (the code is under active development).
``CausalROIs no-bg``    the same with the background rule off
                        (``background=False``): every mask voxel in an ROI,
                        which shows what the background rule buys.
``parcel-ward``,        ``nilearn.regions.Parcellations(method=..., n_parcels=K,
``parcel-kmeans``       mask=mask, standardize="zscore_sample", detrend=True, t_r=TR)``
                        (nilearn's default ``smoothing_fwhm=4`` mm applies).
``denoised-ward``       ``bench_fmri.denoised_corr_ward`` (the family benchmark's strong
                        baseline) on the detrended, per-run z-scored voxel time courses.

A fit that fails (e.g. CausalROIs at K=8 on the 19-20-volume halves: its ROI graph needs
more time points) leaves NaN in that split's columns and prints the error.

Random methods (CausalROIs, kmeans) are repeated for ``--seeds`` values of
``random_state``; deterministic ones (ward, denoised-ward) run once (``reps`` = 1).

Columns
-------
``reps``        repetitions averaged.
``ari_run``     split-half across runs: fit on run 1 alone and on run 2 alone; adjusted
                Rand index of the two label maps over the voxels labelled non-zero in
                either fit (background is one more label).
                Caveat: for methods that label few voxels this ARI is positive even
                when the two fits do not overlap at all (each fit's ROIs are the
                other's background); read it together with ``dice_run``.
``ari_run_all`` the same ARI over all mask voxels.
``dice_run``    mean Dice of the ROIs matched by overlap (Hungarian), summed over the
                matched pairs and divided by K (a missing ROI counts as 0).
``ari_half``, ``ari_half_all``, ``dice_half``
                subsample stability: both runs, first half of each run's volumes vs
                second half; same measures.
``n_lab``       voxels labelled non-zero in the fit on all data (both runs, all volumes).
``n_lab_split`` the same, averaged over the four split fits.
``max_pieces``  fit on all data: the largest number of 6-connected components of any ROI
                (1 = every ROI contiguous).
``n_broken``    fit on all data: number of ROIs made of more than one piece.
``n_empty``     fit on all data: number of the K ROIs with no voxel.
``fit_s``       wall time (s) of the fit on all data (BLAS limited to ``--threads``).
``fit_s_split`` mean wall time (s) of the four split fits.

Usage::

    python benchmarks/bench_fmri_real.py                      # K = 4, 3 seeds (~10 s; was ~2 min with an older CausalROIs)
    python benchmarks/bench_fmri_real.py --n-rois 4 6 8       # one block of rows per K (~30 s)
    python benchmarks/bench_fmri_real.py --figure rois.png    # also plot CausalROIs' labels
"""

from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_fmri import _zscore, denoised_corr_ward  # noqa: E402  (one definition of the baseline)

DEFAULT_DATA_DIR = Path(__file__).resolve().parents[1].parent / "shared" / "data"
_RUN_FILES = ("fmri1.nii.gz", "fmri2.nii.gz")
_XFORM_CODES = {0: "unknown", 1: "scanner", 2: "aligned", 3: "talairach", 4: "mni", 5: "template"}


# ----------------------------------------------------------------------------- data
def find_runs(data_dir):
    """Return the paths of the two nitime runs, or ``None`` when they are absent.

    Parameters
    ----------
    data_dir : pathlib.Path
        The shared data folder (``../shared/data``).

    Returns
    -------
    list of pathlib.Path | None
    """
    paths = [Path(data_dir) / "fmri" / "nitime" / f for f in _RUN_FILES]
    return paths if all(p.is_file() for p in paths) else None


def load_runs(paths, drop=1):
    """Load the 4D runs, dropping the first ``drop`` volumes of each.

    Parameters
    ----------
    paths : list of path-like
        4D NIfTI files on one grid.
    drop : int
        Leading volumes to discard (dummy scans / artefacts).

    Returns
    -------
    runs : list of nibabel.Nifti1Image
        Float32 images in memory.
    t_r : float
        Repetition time (s) from the header.
    """
    import nibabel as nib

    runs = []
    for p in paths:
        img = nib.load(str(p))
        data = np.asarray(img.dataobj, dtype=np.float32)[..., drop:]
        runs.append(nib.Nifti1Image(data, img.affine, img.header))
    hdr = nib.load(str(paths[0])).header
    t_r = float(hdr.get_zooms()[3])
    if hdr.get_xyzt_units()[1] == "msec":
        t_r /= 1000.0
    return runs, t_r


def make_mask(runs, frac=0.5):
    """Mask of the voxels brighter than ``frac`` x the median mean intensity in every run.

    Parameters
    ----------
    runs : list of nibabel.Nifti1Image
        4D runs on one grid.
    frac : float
        Fraction of each run's median voxel mean.

    Returns
    -------
    nibabel.Nifti1Image
        uint8 mask (1 = kept).
    """
    import nibabel as nib

    keep = np.ones(runs[0].shape[:3], bool)
    for r in runs:
        d = np.asarray(r.dataobj)
        m = d.mean(-1)
        keep &= (m > frac * np.median(m)) & (d.std(-1) > 0)
    return nib.Nifti1Image(keep.astype(np.uint8), runs[0].affine)


def describe_space(img):
    """One line saying which space the image's world coordinates are in.

    Parameters
    ----------
    img : nibabel.Nifti1Image

    Returns
    -------
    str
    """
    hdr = img.header
    q, s = int(hdr["qform_code"]), int(hdr["sform_code"])
    names = f"qform_code {q} ({_XFORM_CODES.get(q, '?')}), sform_code {s} ({_XFORM_CODES.get(s, '?')})"
    if np.allclose(img.affine, np.eye(4)):
        return f"identity affine, {names}: voxel indices, not MNI"
    if 4 in (q, s):
        return f"{names}: MNI mm"
    if 3 in (q, s):
        return f"{names}: Talairach mm, not MNI"
    return f"{names}: voxel/scanner mm, not MNI (no template registration)"


def half(img, which):
    """First (``which=0``) or second (``which=1``) half of a run's volumes."""
    import nibabel as nib

    d = np.asarray(img.dataobj)
    n = d.shape[-1] // 2
    part = d[..., :n] if which == 0 else d[..., n:]
    return nib.Nifti1Image(part, img.affine, img.header)


# ----------------------------------------------------------------------------- methods
def _img_labels(img, mask):
    """Labels of a 3D label image at the mask voxels (C order, as NiftiMasker)."""
    return np.rint(np.asarray(img.dataobj)[mask]).astype(int)


def fit_causal_rois(imgs, K, seed, ctx, **params):
    """``CausalROIs`` at its defaults (plus ``params``); labels at the mask voxels."""
    from crl_neuro.fmri import CausalROIs

    est = CausalROIs(n_rois=K, mask_img=ctx["mask_img"], t_r=ctx["t_r"], random_state=seed, **params)
    est.fit(imgs)
    return _img_labels(est.labels_img_, ctx["mask"]), est


def fit_parcellations(method):
    """Factory: nilearn ``Parcellations(method)`` fitter."""

    def fit(imgs, K, seed, ctx):
        from nilearn.regions import Parcellations

        p = Parcellations(
            method=method, n_parcels=K, mask=ctx["mask_img"], standardize="zscore_sample", detrend=True,
            t_r=ctx["t_r"], random_state=seed,
        )
        p.fit(imgs)
        return _img_labels(p.labels_img_, ctx["mask"]), p

    return fit


def fit_denoised_ward(imgs, K, seed, ctx):
    """The denoised-correlation Ward baseline of ``bench_fmri.py``, on the masked runs."""
    Zs = _zscore([ctx["masker"].transform(img) for img in imgs])
    return denoised_corr_ward(Zs, ctx["conn"], K, seed), None


def _provenance():
    """Version of crl_neuro and a short hash of its ``fmri`` subpackage sources."""
    import hashlib
    import inspect

    import crl_neuro
    from crl_neuro.fmri import CausalROIs

    pkg = Path(inspect.getsourcefile(CausalROIs)).parent
    h = hashlib.sha256()
    for f in sorted(pkg.glob("*.py")):
        h.update(f.name.encode() + f.read_bytes())
    return f"crl_neuro {getattr(crl_neuro, '__version__', '?')}, crl_neuro/fmri/*.py sha256 {h.hexdigest()[:12]}"


# name -> (fitter, random?)
METHODS = {
    "CausalROIs": (fit_causal_rois, True),
    "CausalROIs no-bg": (lambda imgs, K, seed, ctx: fit_causal_rois(imgs, K, seed, ctx, background=False), True),
    "parcel-ward": (fit_parcellations("ward"), False),
    "parcel-kmeans": (fit_parcellations("kmeans"), True),
    "denoised-ward": (fit_denoised_ward, False),
}


# ----------------------------------------------------------------------------- measures
def ari_labelled(a, b):
    """ARI over voxels labelled non-zero in either map (background = one more label)."""
    from sklearn.metrics import adjusted_rand_score

    sel = (a > 0) | (b > 0)
    return float(adjusted_rand_score(a[sel], b[sel])) if sel.sum() >= 2 else np.nan


def ari_all(a, b):
    """ARI over all mask voxels."""
    from sklearn.metrics import adjusted_rand_score

    return float(adjusted_rand_score(a, b))


def matched_dice(a, b, K):
    """Mean Dice of ROIs matched by overlap (Hungarian); unmatched ROIs count as 0.

    Parameters
    ----------
    a, b : ndarray of int
        Label vectors (0 = background).
    K : int
        Number of ROIs asked for (the denominator).

    Returns
    -------
    float
    """
    from scipy.optimize import linear_sum_assignment

    ia, ib = np.unique(a[a > 0]), np.unique(b[b > 0])
    if ia.size == 0 or ib.size == 0:
        return 0.0
    ov = np.array([[np.sum((a == u) & (b == v)) for v in ib] for u in ia], dtype=float)
    rows, cols = linear_sum_assignment(-ov)
    size_a = np.array([np.sum(a == u) for u in ia])
    size_b = np.array([np.sum(b == v) for v in ib])
    dice = 2 * ov[rows, cols] / (size_a[rows] + size_b[cols])
    return float(dice.sum() / max(K, ia.size, ib.size))


def contiguity(labels, mask, K):
    """Pieces per ROI (6-connectivity) of a label vector.

    Parameters
    ----------
    labels : ndarray of int, shape (n_mask_voxels,)
    mask : ndarray of bool, 3D
    K : int

    Returns
    -------
    max_pieces : int
        Largest number of connected components of one ROI (0 if no ROI).
    n_broken : int
        ROIs with more than one component.
    n_empty : int
        ROIs (out of K) with no voxel.
    """
    from scipy import ndimage

    vol = np.zeros(mask.shape, int)
    vol[mask] = labels
    pieces = [ndimage.label(vol == u)[1] for u in np.unique(labels[labels > 0])]
    return (max(pieces, default=0), int(sum(p > 1 for p in pieces)), max(K - len(pieces), 0))


# ----------------------------------------------------------------------------- runner
def _timed(fit, imgs, K, seed, ctx):
    t0 = time.perf_counter()
    labels, est = fit(imgs, K, seed, ctx)
    return labels, est, time.perf_counter() - t0


def evaluate(name, K, seed, runs, ctx, log):
    """All fits of one method, K and seed; returns one row of measures and the full fit.

    Parameters
    ----------
    name : str
        Key of :data:`METHODS`.
    K : int
        Number of ROIs.
    seed : int
        ``random_state``.
    runs : list of nibabel.Nifti1Image
        The two runs.
    ctx : dict
        ``mask_img``, ``mask``, ``t_r``, ``masker``, ``conn``.
    log : callable
        Progress printer.

    Returns
    -------
    row : dict
    est : object | None
        The estimator fitted on all data (``None`` for the hand-written baseline).
    """
    fit = METHODS[name][0]
    splits = {
        "run": ([runs[0]], [runs[1]]),
        "half": ([half(r, 0) for r in runs], [half(r, 1) for r in runs]),
    }
    row = dict(K=K, method=name, seed=seed)
    n_split, t_split = [], []
    for split, (A, B) in splits.items():
        try:
            a, _, ta = _timed(fit, A, K, seed, ctx)
            b, _, tb = _timed(fit, B, K, seed, ctx)
        except Exception as err:  # e.g. too few volumes for this K: NaN for this split only
            print(f"  K={K} {name} seed={seed} split '{split}' failed: {type(err).__name__}: {err}")
            row.update({f"ari_{split}": np.nan, f"ari_{split}_all": np.nan, f"dice_{split}": np.nan})
            continue
        t_split += [ta, tb]
        row[f"ari_{split}"] = ari_labelled(a, b)
        row[f"ari_{split}_all"] = ari_all(a, b)
        row[f"dice_{split}"] = matched_dice(a, b, K)
        n_split += [int((a > 0).sum()), int((b > 0).sum())]
    full, est, fit_s = _timed(fit, runs, K, seed, ctx)
    row["n_lab"] = int((full > 0).sum())
    row["n_lab_split"] = float(np.mean(n_split)) if n_split else np.nan
    row["max_pieces"], row["n_broken"], row["n_empty"] = contiguity(full, ctx["mask"], K)
    row["fit_s"] = fit_s
    row["fit_s_split"] = float(np.mean(t_split)) if t_split else np.nan
    log(f"  K={K} {name:18s} seed={seed} ari_run={row['ari_run']:.3f} ari_half={row['ari_half']:.3f} "
        f"n_lab={row['n_lab']} {fit_s:.2f}s")
    return row, est


COLS = ["ari_run", "ari_run_all", "dice_run", "ari_half", "ari_half_all", "dice_half",
        "n_lab", "n_lab_split", "max_pieces", "n_broken", "n_empty", "fit_s", "fit_s_split"]


def summarise(df):
    """Mean over repetitions per (K, method), in :data:`METHODS` order.

    Parameters
    ----------
    df : pandas.DataFrame
        One row per (K, method, seed).

    Returns
    -------
    pandas.DataFrame
    """
    g = df.groupby(["K", "method"], sort=False)
    table = g[COLS].mean()
    table.insert(0, "reps", g.size())
    order = {m: i for i, m in enumerate(METHODS)}
    return table.sort_index(key=lambda idx: idx.map(order) if idx.name == "method" else idx)


def print_rois(est, K, space):
    """Print CausalROIs' LUT with voxel-index centroids and the coordinate space."""
    lut = est.lut_.copy()
    vol = np.asarray(est.labels_img_.dataobj)
    ijk = [np.argwhere(vol == k).mean(0) if (vol == k).any() else np.full(3, np.nan) for k in lut["index"]]
    lut[["i", "j", "k"]] = np.round(np.array(ijk), 1)
    lut.loc[lut["index"] == 0, ["i", "j", "k"]] = np.nan
    print(f"\nCausalROIs (K={K}, all data, random_state={est.random_state}) centroids; x, y, z in {space}:")
    print(lut.to_string(index=False, float_format=lambda v: f"{v:.1f}"))


def save_figure(est, runs, path):
    """Plot CausalROIs' labels on the mean image (Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from nilearn import image, plotting

    bg = image.mean_img(image.concat_imgs(runs), copy_header=True)
    n = int((np.asarray(est.labels_img_.dataobj) > 0).sum())
    lut = est.lut_[est.lut_["index"] > 0].dropna()
    cut = tuple(lut.iloc[0][["x", "y", "z"]]) if len(lut) else None  # centroid of the largest ROI
    cmap = matplotlib.colors.ListedColormap(plt.get_cmap("tab10").colors[: max(est.n_rois, 1)])
    display = plotting.plot_roi(est.labels_img_, bg_img=bg, display_mode="ortho", cut_coords=cut, draw_cross=False,
                                title=f"CausalROIs K={est.n_rois} ({n} voxels), scanner mm", cmap=cmap,
                                vmin=0.5, vmax=est.n_rois + 0.5, colorbar=False)
    display.savefig(str(path), dpi=120)
    display.close()
    plt.close("all")


def main(argv=None):
    """Run the benchmark; returns the summary table (``None`` when the data are absent)."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-rois", type=int, nargs="+", default=[4], help="values of K (default 4)")
    ap.add_argument("--seeds", type=int, default=3, help="random_state values 0..seeds-1 for random methods")
    ap.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS), metavar="METHOD",
                    help=f"subset of {list(METHODS)}")
    ap.add_argument("--data-dir", type=Path, default=DEFAULT_DATA_DIR, help="shared data folder")
    ap.add_argument("--drop-volumes", type=int, default=1, help="leading volumes dropped per run (default 1)")
    ap.add_argument("--figure", type=Path, default=None, help="save CausalROIs' labels (first K) here")
    ap.add_argument("--csv", type=Path, default=None, help="write the per-seed rows here")
    ap.add_argument("--threads", type=int, default=1, help="BLAS/OpenMP threads (default 1)")
    ap.add_argument("--verbose", action="store_true", help="print every fit")
    args = ap.parse_args(argv)

    paths = find_runs(args.data_dir)
    if paths is None:
        print(f"SKIP: real fMRI runs not found under {args.data_dir}/fmri/nitime "
              f"({', '.join(_RUN_FILES)}); nothing to benchmark.")
        return None

    from nilearn.maskers import NiftiMasker
    from sklearn.feature_extraction.image import grid_to_graph
    from threadpoolctl import threadpool_limits

    warnings.filterwarnings("ignore")
    pd.set_option("display.width", 250)
    pd.set_option("display.max_columns", 40)
    log = (lambda s: print(s, file=sys.stderr, flush=True)) if args.verbose else (lambda s: None)
    t_start = time.perf_counter()

    runs, t_r = load_runs(paths, args.drop_volumes)
    mask_img = make_mask(runs)
    mask = np.asarray(mask_img.dataobj).astype(bool)
    means = [np.asarray(r.dataobj).mean(-1)[mask] for r in runs]
    ctx = dict(
        mask_img=mask_img, mask=mask, t_r=t_r,
        masker=NiftiMasker(mask_img, detrend=True, standardize="zscore_sample", t_r=t_r).fit(),
        conn=grid_to_graph(*mask.shape, mask=mask),
    )
    space = describe_space(runs[0])
    print("Data: nitime example BOLD (real), " + ", ".join(str(p) for p in paths))
    print(f"  grid {runs[0].shape[:3]} voxels of {tuple(round(float(z), 3) for z in runs[0].header.get_zooms()[:3])} mm, "
          f"{args.drop_volumes} leading volume(s) dropped -> {[r.shape[3] for r in runs]} volumes, TR {t_r:.2f} s")
    print(f"  mask: {mask.sum()} of {mask.size} voxels; space: {space}")
    print("  affine:\n    " + np.array2string(runs[0].affine, precision=2, suppress_small=True).replace("\n", "\n    "))
    print(f"  voxelwise correlation of the two runs' mean images: {np.corrcoef(*means)[0, 1]:.2f}")
    print(f"Code: {_provenance()}")

    rows, first_est = [], {}
    with threadpool_limits(args.threads):
        for K in args.n_rois:
            for name in args.methods:
                seeds = range(args.seeds) if METHODS[name][1] else range(1)
                for seed in seeds:
                    try:
                        row, est = evaluate(name, K, seed, runs, ctx, log)
                    except Exception as err:  # keep the table going; report the failure
                        print(f"  K={K} {name} seed={seed} failed: {type(err).__name__}: {err}")
                        continue
                    rows.append(row)
                    if name == "CausalROIs" and K not in first_est:
                        first_est[K] = est
    if not rows:
        print("no fit succeeded")
        return None
    df = pd.DataFrame(rows)
    if args.csv:
        df.to_csv(args.csv, index=False)
    table = summarise(df)
    print(f"\n== reliability on real fMRI (mean over reps; seeds 0..{args.seeds - 1} for random methods) ==")
    print(table.to_string(float_format=lambda v: f"{v:.3f}"))
    for K, est in first_est.items():
        print_rois(est, K, space)
    if args.figure and first_est:
        K0 = next(iter(first_est))
        save_figure(first_est[K0], runs, args.figure)
        print(f"\nfigure (CausalROIs K={K0}) saved to {args.figure}")
    print(f"\ntotal time {time.perf_counter() - t_start:.0f} s")
    return table


if __name__ == "__main__":
    main()
