"""Group fits: resumability, per-subject seeds, backends (serial, loky, Dask) and summaries."""

from __future__ import annotations

import os
import socket
import sys
import threading

import joblib
import numpy as np
import pytest

from crl_neuro.core.base import BaseCRLEstimator, check_is_fitted
from crl_neuro.group import (
    GroupFitError,
    GroupResult,
    default_loader,
    fit_group,
    network_consistency,
    roi_overlap,
    subject_seed,
)


class TinyCRL(BaseCRLEstimator):
    """Cheap seeded estimator: a random rotation of the whitened data (test double)."""

    def __init__(self, n_latents=2, random_state=None, fail=False):
        self.n_latents = n_latents
        self.random_state = random_state
        self.fail = fail

    def fit(self, X, domains=None):
        if self.fail:
            raise RuntimeError("asked to fail")
        X = np.asarray(X, dtype=float)
        if not np.all(np.isfinite(X)):
            raise ValueError("X contains NaN")
        rng = np.random.default_rng(self.random_state)
        q, _ = np.linalg.qr(rng.normal(size=(X.shape[1], self.n_latents)))
        self.mixing_ = q
        z = X @ q
        prec = np.linalg.inv(np.cov(z.T))
        self.markov_network_ = (np.abs(prec) > 0.1 * np.abs(prec).max()) & ~np.eye(self.n_latents, dtype=bool)
        self.draw_ = float(rng.normal())  # exposes the seed's effect
        return self

    def transform(self, X):
        check_is_fitted(self, "mixing_")
        return np.asarray(X) @ self.mixing_


def _subjects(n=4, bad=None):
    rng = np.random.default_rng(0)
    subs = {}
    for i in range(n):
        X = rng.normal(size=(60, 4))
        if bad == i:
            X = X.copy()
            X[0, 0] = np.nan
        subs[f"sub-{i:02d}"] = {"X": X}
    return subs


def _draws(result):
    return {s: result[s].draw_ for s in result}


def test_seeds_stable_and_distinct():
    a = subject_seed(42, "sub-01")
    assert a == subject_seed(42, "sub-01")
    assert a != subject_seed(42, "sub-02")
    assert a != subject_seed(43, "sub-01")
    # A subject's seed does not depend on who else is in the study.
    r1 = fit_group(TinyCRL(), _subjects(2), random_state=7)
    r2 = fit_group(TinyCRL(), _subjects(4), random_state=7)
    assert r1.seeds["sub-01"] == r2.seeds["sub-01"] == subject_seed(7, "sub-01")
    assert _draws(r1)["sub-01"] == _draws(r2)["sub-01"]
    assert len(set(r2.seeds.values())) == 4
    assert r2["sub-00"].random_state == r2.seeds["sub-00"]
    # random_state=None leaves the template's seed alone.
    r3 = fit_group(TinyCRL(random_state=3), _subjects(2))
    assert all(r3[s].random_state == 3 for s in r3)


def test_resume_after_failure(tmp_path):
    subs = _subjects(4, bad=2)
    r = fit_group(TinyCRL(), subs, out_dir=tmp_path, random_state=0)
    assert isinstance(r, GroupResult)
    assert r.failed == ["sub-02"] and "X contains NaN" in r.errors["sub-02"]
    assert sorted(r) == ["sub-00", "sub-01", "sub-03"]
    assert (tmp_path / "sub-02.error.txt").is_file()
    assert not list(tmp_path.glob(".*.tmp"))  # no half-written files
    stamps = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.crl")}
    draws = _draws(r)
    # Fix the subject and rerun: only it is fitted, the others are read back unchanged.
    subs["sub-02"] = _subjects(4)["sub-02"]
    r2 = fit_group(TinyCRL(), subs, out_dir=tmp_path, random_state=0)
    assert r2.fitted == ["sub-02"] and sorted(r2.skipped) == ["sub-00", "sub-01", "sub-03"]
    assert not r2.errors and not (tmp_path / "sub-02.error.txt").exists()
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("*.crl") if p.name in stamps} == stamps
    assert all(_draws(r2)[s] == d for s, d in draws.items())
    # overwrite refits everything, with the same seeds hence the same results.
    r3 = fit_group(TinyCRL(), subs, out_dir=tmp_path, random_state=0, overwrite=True)
    assert sorted(r3.fitted) == sorted(subs) and _draws(r3) == _draws(r2)
    df = r3.summary()
    assert set(df["status"]) == {"fitted"} and df.shape[0] == 4


def test_errors_raise_keeps_finished(tmp_path):
    subs = _subjects(3, bad=1)
    with pytest.raises(GroupFitError, match="sub-01") as exc:
        fit_group(TinyCRL(), subs, out_dir=tmp_path, errors="raise")
    assert exc.value.subject == "sub-01"
    # Serial order: sub-00 finished and is on disk.
    assert (tmp_path / "sub-00.crl").is_file()
    assert "sub-00" in exc.value.result


class NestedCRL(TinyCRL):
    """TinyCRL whose fit runs a nested joblib loop, as SessionCRL does per session."""

    def fit(self, X, domains=None):
        super().fit(X, domains)
        me = threading.get_ident()
        # n_jobs=None: the estimator leaves the choice to the caller's joblib config.
        idents = joblib.Parallel(n_jobs=None)(
            joblib.delayed(threading.get_ident)() for _ in range(4)
        )
        self.nested_in_fit_thread_ = all(i == me for i in idents)
        return self


def test_loky_and_dask_match_serial(tmp_path):
    subs = _subjects(4)
    serial = _draws(fit_group(TinyCRL(), subs, random_state=1, n_jobs=1))
    loky = fit_group(TinyCRL(), subs, random_state=1, n_jobs=2, out_dir=tmp_path / "loky")
    assert _draws(loky) == serial
    assert sorted(p.name for p in (tmp_path / "loky").glob("*.crl")) == [f"{s}.crl" for s in sorted(subs)]
    distributed = pytest.importorskip("dask.distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=False,
                                  dashboard_address=None) as cluster, distributed.Client(cluster):
        with joblib.parallel_config(backend="dask"):
            dask_res = fit_group(TinyCRL(), subs, random_state=1, n_jobs=-1, out_dir=tmp_path / "dask")
            # Nested joblib loops inside a subject's fit must stay in the worker's
            # thread: as Dask tasks they would let the worker start other subjects
            # meanwhile (several subjects' data in one worker).
            nested = fit_group(NestedCRL(), subs, random_state=1, n_jobs=-1)
    assert _draws(dask_res) == serial
    assert not dask_res.errors and not nested.errors
    assert all(nested[s].nested_in_fit_thread_ for s in nested)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="per-subject peak RSS is Linux-only")
def test_peak_memory_is_per_subject():
    """The recorded peak is that subject's, and a big subject does not raise the next ones'."""
    rows = {"small-1": "1000", "big": "1500000", "small-2": "1000"}  # rows of a (n, 4) float array
    res = fit_group(TinyCRL(), {s: {"X": n} for s, n in rows.items()}, n_jobs=1,
                    loader=lambda n: np.random.default_rng(0).normal(size=(int(n), 4)))
    mb = {s: v / 2**20 for s, v in res.peak_memory.items()}
    big_data = 1_500_000 * 4 * 8 / 2**20  # 46 MB loaded by the worker for "big"
    assert mb["big"] - mb["small-1"] > 0.8 * big_data
    assert mb["big"] - mb["small-2"] > 0.8 * big_data
    assert set(res.workers.values()) == {f"{socket.gethostname()}:{os.getpid()}"}
    df = res.summary()
    assert {"peak_rss_mb", "worker"} <= set(df.columns)


def test_paths_are_loaded_in_worker(tmp_path):
    rng = np.random.default_rng(1)
    subs = {}
    for s in ("a", "b"):
        np.save(tmp_path / f"{s}.npy", rng.normal(size=(50, 3)))
        subs[s] = tmp_path / f"{s}.npy"
    seen = []

    def loader(path):
        seen.append(os.fspath(path))
        return default_loader(path)

    r = fit_group(TinyCRL(), subs, loader=loader, random_state=0)
    assert sorted(r) == ["a", "b"] and len(seen) == 2
    assert r["a"].mixing_.shape == (3, 2)


def test_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="subjects"):
        fit_group(TinyCRL(), 5)
    with pytest.raises(ValueError, match="subjects"):
        fit_group(TinyCRL(), {})
    with pytest.raises(ValueError, match="subject id"):
        fit_group(TinyCRL(), {"../evil": {"X": np.zeros((3, 2))}})
    with pytest.raises(ValueError, match="errors"):
        fit_group(TinyCRL(), _subjects(1), errors="ignore")
    with pytest.raises(TypeError, match="loader"):
        fit_group(TinyCRL(), _subjects(1), loader="mne")
    with pytest.raises(ValueError, match="cannot tell how to load"):
        (tmp_path / "x.weird").write_text("")
        default_loader(tmp_path / "x.weird")


def _fitted(patterns, network, pos=None, changing=None):
    from types import SimpleNamespace

    est = SimpleNamespace(patterns_=patterns, markov_network_=network)
    if pos is not None:
        est.source_pos_ = pos
    if changing is not None:
        est.changing_edges_ = changing
    return est


@pytest.mark.parametrize("match", ["patterns", "positions"])
def test_network_consistency_undoes_latent_permutations(match):
    """Subjects with the same network in shuffled latent order agree after matching."""
    rng = np.random.default_rng(0)
    k, p = 4, 12
    A = rng.normal(size=(p, k))
    pos = rng.uniform(-0.06, 0.06, size=(k, 3))
    net = np.zeros((k, k), bool)
    for i, j in ((0, 1), (1, 2), (2, 3)):
        net[i, j] = net[j, i] = True
    chg = np.zeros_like(net)
    chg[0, 1] = chg[1, 0] = True
    ests = {}
    for s in range(3):
        perm = rng.permutation(k)  # subject latent m is true latent perm[m]
        n_s = net[np.ix_(perm, perm)].copy()
        if s == 2:  # the third subject misses edge 2-3
            a, b = np.argsort(perm)[[2, 3]]
            n_s[a, b] = n_s[b, a] = False
        pats = A[:, perm] * rng.choice([-1, 1], size=k) + 0.05 * rng.normal(size=(p, k))
        ests[f"s{s}"] = _fitted(pats, n_s, pos[perm] + 0.002 * rng.normal(size=(k, 3)),
                                chg[np.ix_(perm, perm)])
    out = network_consistency(ests, match=match)
    ref_perm = np.argmax(np.abs(np.corrcoef(A.T, ests["s0"].patterns_.T)[:k, k:]), axis=0)
    expected = net[np.ix_(ref_perm, ref_perm)].astype(float)
    a, b = np.argsort(ref_perm)[[2, 3]]
    expected[a, b] = expected[b, a] = 2 / 3
    assert np.allclose(out.edge_frequency, expected)
    assert np.array_equal(out.consensus, net[np.ix_(ref_perm, ref_perm)])
    assert np.allclose(out.changing_frequency, chg[np.ix_(ref_perm, ref_perm)])
    assert out.pairwise_f1[0, 1] == 1.0 and out.pairwise_f1[0, 2] < 1.0
    if match == "positions":
        assert max(out.match_quality.values()) < 10.0  # mm
    else:
        assert min(out.match_quality.values()) > 0.95
    with pytest.raises(ValueError, match="same number of latents"):
        network_consistency({"a": ests["s0"], "b": _fitted(A[:, :2], net[:2, :2])})


def test_roi_overlap_matches_relabelled_maps():
    import nibabel as nib

    rng = np.random.default_rng(0)
    lab = np.zeros((8, 8, 4), int)
    lab[:4, :4] = 1
    lab[4:, :4] = 2
    lab[:, 5:] = 3
    other = np.zeros_like(lab)
    for a, b in ((1, 3), (2, 1), (3, 2)):  # same ROIs, other numbers
        other[lab == a] = b
    noisy = other.copy()
    flip = rng.random(lab.shape) < 0.05
    noisy[flip] = 0
    imgs = {s: nib.Nifti1Image(x.astype(np.int32), np.eye(4)) for s, x in
            (("ref", lab), ("relabelled", other), ("noisy", noisy))}
    out = roi_overlap(imgs)
    assert np.allclose(out.dice[1], 1.0) and np.allclose(out.ari[0, 1], 1.0)
    assert list(out.matchings["relabelled"]) == [3, 1, 2]
    assert 0.9 < out.dice[2].min() < 1.0
    prob = out.probability_img.get_fdata()
    assert prob.shape == lab.shape + (3,)
    assert np.allclose(prob[..., 0][lab == 1].mean(), 1 - flip[lab == 1].mean() / 3)


def test_reports_single_and_group(tmp_path):
    """Report of a fitted CausalROIs with its truth, and of a group directory (CLI path)."""
    import mne

    from crl_neuro.datasets import simulate_fmri_rois
    from crl_neuro.fmri import CausalROIs
    from crl_neuro.report import add_truth_section, make_report, methods_paragraph, truth_scores

    sims = [simulate_fmri_rois(n_timepoints=80, n_runs=2, random_state=s) for s in (0, 1)]
    n_rois = int(np.asarray(sims[0].labels_img.dataobj).max())
    res = fit_group(CausalROIs(n_rois=n_rois), {f"s{i}": s.imgs for i, s in enumerate(sims)},
                    out_dir=tmp_path / "crl", random_state=0)
    assert not res.errors, res.errors
    est = res["s0"]
    scores = truth_scores(est, sims[0])
    assert scores["ari_roi_voxels"] > 0.9 and scores["roi_graph_f1"] > 0.6
    assert 0 <= scores["abstraction_error"] < 0.5
    html = make_report(tmp_path / "crl" / "s0.crl", tmp_path / "one.html", truth=sims[0])
    text = html.read_text()
    for needle in ("Identifiability", "Benchmark against the truth", "ari_roi_voxels",
                   "Beckers", "Methods"):
        assert needle in text, needle
    group_html = make_report(tmp_path / "crl", tmp_path / "group.html")
    assert "Group consistency" in group_html.read_text()
    para = methods_paragraph(est)
    assert "CausalROIs" in para and "References" in para and "[1]" in para
    with pytest.raises(TypeError, match="truth"):
        truth_scores(est, [1, 2])
    with pytest.raises(TypeError, match="report"):
        add_truth_section("not a report", est, sims[0])
    assert isinstance(add_truth_section(mne.Report(), est, {}), mne.Report)


def test_default_loader_dispatches_by_name(tmp_path):
    import mne
    import nibabel as nib

    info = mne.create_info(["a", "b"], 100.0, "eeg")
    raw = mne.io.RawArray(np.random.default_rng(0).normal(size=(2, 300)) * 1e-6, info, verbose=False)
    raw.save(tmp_path / "x_raw.fif", verbose=False)
    epochs = mne.make_fixed_length_epochs(raw, duration=1.0, verbose=False)
    epochs.save(tmp_path / "x-epo.fif", verbose=False)
    nib.save(nib.Nifti1Image(np.zeros((2, 2, 2, 3), np.float32), np.eye(4)), tmp_path / "x.nii.gz")
    assert isinstance(default_loader(tmp_path / "x_raw.fif"), mne.io.BaseRaw)
    assert isinstance(default_loader(str(tmp_path / "x-epo.fif")), mne.BaseEpochs)
    assert default_loader(tmp_path / "x.nii.gz").shape == (2, 2, 2, 3)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        default_loader(tmp_path / "missing_raw.fif")


def test_grand_average_stc_shared_vertices():
    import mne

    from crl_neuro.group import grand_average_stc

    verts = [np.array([1, 5, 9]), np.array([2, 4])]
    rng = np.random.default_rng(0)
    stcs = [mne.SourceEstimate(rng.normal(size=(5, 4)), verts, tmin=0.0, tstep=0.01, subject="s")
            for _ in range(3)]
    avg = grand_average_stc(stcs)
    assert np.allclose(avg.data, np.mean([s.data for s in stcs], axis=0))
    # Sparse estimates on other vertices: averaged on the union, zero where absent.
    other = mne.SourceEstimate(np.ones((2, 4)), [np.array([8]), np.array([4])], 0.0, 0.01, subject="s")
    avg2 = grand_average_stc([stcs[0], other])
    assert [list(v) for v in avg2.vertices] == [[1, 5, 8, 9], [2, 4]]
    assert np.allclose(avg2.data[2], 0.5) and np.allclose(avg2.data[0], stcs[0].data[0] / 2)
    assert np.allclose(avg2.data[5], (stcs[0].data[4] + 1) / 2)
    alien = mne.SourceEstimate(np.ones((2, 4)), [np.array([8]), np.array([4])], 0.0, 0.01, subject="t")
    with pytest.raises(ValueError, match="subject_to"):
        grand_average_stc([stcs[0], alien])
    with pytest.raises(TypeError, match="stcs"):
        grand_average_stc([])


@pytest.fixture(scope="module")
def fs5_subjects_dir(tmp_path_factory):
    """Offline FreeSurfer subjects_dir: nilearn's fsaverage5 spheres, and ``sub-perm``,
    the same spheres with the vertices of each hemisphere in a shuffled order.

    ``sub-perm`` vertex ``i`` of a hemisphere is fsaverage5 vertex ``order[hemi][i]``:
    a subject whose vertex numbering differs from the template's, with a known
    correspondence (the ground truth of a morph).
    """
    import nibabel as nib
    from nilearn import datasets

    fs5 = datasets.load_fsaverage("fsaverage5")  # package data, no download
    root = tmp_path_factory.mktemp("subjects")
    rng = np.random.default_rng(0)
    orders, coords = {}, {}
    for subject, shuffle in (("fsaverage5", False), ("sub-perm", True)):
        surf = root / subject / "surf"
        surf.mkdir(parents=True)
        for hemi, part in (("lh", "left"), ("rh", "right")):
            mesh = fs5["sphere"].parts[part]
            rr = np.asarray(mesh.coordinates, float)
            tris = np.asarray(mesh.faces, int)
            order = rng.permutation(len(rr)) if shuffle else np.arange(len(rr))
            new_index = np.empty_like(order)
            new_index[order] = np.arange(order.size)
            for name in ("sphere", "sphere.reg"):
                nib.freesurfer.write_geometry(surf / f"{hemi}.{name}", rr[order],
                                              new_index[tris].astype(np.int32))
            orders[subject, hemi] = order
            coords[subject, hemi] = rr[order]
    return root, orders, coords


def test_grand_average_stc_morphs_to_template(fs5_subjects_dir):
    """Subjects numbered differently land on the right template vertices (sparse morph)."""
    import mne

    from crl_neuro.group import grand_average_stc

    subjects_dir, orders, _ = fs5_subjects_dir
    o_lh, o_rh = orders["sub-perm", "lh"], orders["sub-perm", "rh"]
    # Subject A (shuffled numbering) has sources at its vertices 10 and 500 (lh) and 7 (rh);
    # subject B is already on the template, with a source at A's first one and one elsewhere.
    a = mne.SourceEstimate(np.array([[1.0, 2.0], [3.0, 4.0], [5.0, 6.0]]),
                           [np.array([10, 500]), np.array([7])], 0.0, 0.1, subject="sub-perm")
    elsewhere = next(v for v in range(100) if v not in (o_lh[10], o_lh[500]))
    b_lh = np.sort([o_lh[10], elsewhere])
    b = mne.SourceEstimate(np.zeros((2, 2)), [b_lh, np.array([], int)], 0.0, 0.1,
                           subject="fsaverage5")
    b.data[list(b_lh).index(o_lh[10])] = [7.0, 8.0]
    b.data[list(b_lh).index(elsewhere)] = [9.0, 10.0]
    avg = grand_average_stc([a, b], subject_to="fsaverage5", subjects_dir=subjects_dir)
    assert avg.subject == "fsaverage5"
    assert sorted(avg.vertices[0]) == sorted({o_lh[10], o_lh[500], elsewhere})
    assert list(avg.vertices[1]) == [o_rh[7]]

    def at(hemi, vertex):
        row = list(avg.vertices[0]).index(vertex) if hemi == 0 else \
            len(avg.vertices[0]) + list(avg.vertices[1]).index(vertex)
        return avg.data[row]

    assert np.allclose(at(0, o_lh[10]), ([1.0, 2.0] + np.array([7.0, 8.0])) / 2)  # both subjects
    assert np.allclose(at(0, o_lh[500]), [1.5, 2.0])  # A only
    assert np.allclose(at(0, elsewhere), [4.5, 5.0])  # B only
    assert np.allclose(at(1, o_rh[7]), [2.5, 3.0])
    with pytest.raises(ValueError, match="sparse=False"):
        grand_average_stc([a, b], subject_to="fsaverage5", subjects_dir=subjects_dir, smooth=5)
    nosubj = mne.SourceEstimate(np.ones((1, 2)), [np.array([3]), np.array([], int)], 0.0, 0.1)
    with pytest.raises(ValueError, match="no subject"):
        grand_average_stc([a, nosubj], subject_to="fsaverage5", subjects_dir=subjects_dir)


def test_grand_average_stc_dense_morph(fs5_subjects_dir):
    """A whole-surface map of a differently numbered subject is resampled onto the template."""
    import mne

    from crl_neuro.group import grand_average_stc

    subjects_dir, _, coords = fs5_subjects_dir

    def field(xyz):  # a smooth map over the sphere (radius 100 mm)
        return np.stack([xyz[:, 0] / 100.0, np.cos(xyz[:, 2] / 30.0)], axis=1)

    n = len(coords["sub-perm", "lh"])
    data = np.concatenate([field(coords["sub-perm", h]) for h in ("lh", "rh")])
    a = mne.SourceEstimate(data, [np.arange(n), np.arange(n)], 0.0, 0.1, subject="sub-perm")
    avg = grand_average_stc([a], subject_to="fsaverage5", subjects_dir=subjects_dir,
                            sparse=False, smooth="nearest")
    expected = np.concatenate([field(coords["fsaverage5", h][v])
                               for h, v in zip(("lh", "rh"), avg.vertices)])
    assert [len(v) for v in avg.vertices] == [n, n]
    assert np.allclose(avg.data, expected)
    # The permutation alone would be far off: the morph did the matching.
    assert not np.allclose(a.data, expected)


# ----------------------------------------------------------------------------- safe resume
class OtherCRL(TinyCRL):
    """Same parameters as TinyCRL, another class: its files must not be reused."""


def test_rerun_refits_when_anything_changes(tmp_path):
    subs = _subjects(2)
    r = fit_group(TinyCRL(), subs, out_dir=tmp_path, random_state=0)
    assert sorted(r.fitted) == ["sub-00", "sub-01"]
    assert all(len(fp) == 64 for fp in r.fingerprints.values())
    same = fit_group(TinyCRL(), subs, out_dir=tmp_path, random_state=0)
    assert sorted(same.skipped) == ["sub-00", "sub-01"] and same.fingerprints == r.fingerprints
    # other estimator parameters: refit, and the files hold the new fits
    new = fit_group(TinyCRL(n_latents=3), subs, out_dir=tmp_path, random_state=0)
    assert sorted(new.fitted) == ["sub-00", "sub-01"] and not new.skipped
    assert new["sub-00"].mixing_.shape == (4, 3)
    # another estimator class, another group seed, other fit_params: refit
    assert sorted(fit_group(OtherCRL(n_latents=3), subs, out_dir=tmp_path, random_state=0).fitted) == sorted(subs)
    assert sorted(fit_group(OtherCRL(n_latents=3), subs, out_dir=tmp_path, random_state=1).fitted) == sorted(subs)
    r_fp = fit_group(OtherCRL(n_latents=3), subs, out_dir=tmp_path, random_state=1,
                     fit_params={"domains": None})
    assert sorted(r_fp.fitted) == sorted(subs)
    # changed data of one subject: only that subject is refit
    subs2 = {**subs, "sub-01": {"X": subs["sub-01"]["X"] + 1.0}}
    r2 = fit_group(OtherCRL(n_latents=3), subs2, out_dir=tmp_path, random_state=1,
                   fit_params={"domains": None})
    assert r2.fitted == ["sub-01"] and r2.skipped == ["sub-00"]


def test_input_files_are_fingerprinted_by_size_and_mtime(tmp_path):
    out = tmp_path / "out"
    f = tmp_path / "a.npy"
    np.save(f, np.random.default_rng(0).normal(size=(30, 3)))
    assert fit_group(TinyCRL(), {"a": f}, out_dir=out).fitted == ["a"]
    assert fit_group(TinyCRL(), {"a": f}, out_dir=out).skipped == ["a"]
    np.save(f, np.random.default_rng(1).normal(size=(31, 3)))
    assert fit_group(TinyCRL(), {"a": f}, out_dir=out).fitted == ["a"]


def test_damaged_results_are_refit_and_orphans_removed(tmp_path):
    subs = _subjects(3)
    fit_group(TinyCRL(), subs, out_dir=tmp_path, random_state=0)
    good = (tmp_path / "sub-01.crl").read_bytes()
    (tmp_path / "sub-00.crl").write_bytes(good[: len(good) // 2])  # truncated by a crash
    flipped = bytearray(good)
    flipped[len(good) // 3] ^= 0xFF  # bit rot
    (tmp_path / "sub-01.crl").write_bytes(bytes(flipped))
    # temporary files of a killed run: this save's and fit_group's older names
    orphans = [f".sub-00.crl.{'a' * 32}.tmp", f".sub-02.{'b' * 32}.tmp"]
    foreign = f".sub-99.crl.{'c' * 32}.tmp"  # another run's subject: left alone
    for name in orphans + [foreign]:
        (tmp_path / name).write_bytes(b"partial")
    r = fit_group(TinyCRL(), subs, out_dir=tmp_path, random_state=0)
    assert sorted(r.fitted) == ["sub-00", "sub-01"] and r.skipped == ["sub-02"]
    assert r["sub-00"].mixing_.shape == (4, 2)
    assert not any((tmp_path / name).exists() for name in orphans)
    assert (tmp_path / foreign).exists()
    assert sorted(p.name for p in tmp_path.glob("*.crl")) == ["sub-00.crl", "sub-01.crl", "sub-02.crl"]


class CrashCRL(TinyCRL):
    """Kills its worker process (as an out-of-memory kill or a native crash would)."""

    def fit(self, X, domains=None):
        if np.asarray(X).shape[0] == 13:
            os._exit(3)
        return super().fit(X, domains)


def test_worker_crash_still_returns_a_result(tmp_path):
    subs = _subjects(4)
    subs["sub-02"] = {"X": np.random.default_rng(5).normal(size=(13, 4))}
    r = fit_group(CrashCRL(), subs, out_dir=tmp_path, n_jobs=2, random_state=0)
    assert isinstance(r, GroupResult)
    assert "sub-02" in r.failed and "died" in r.errors["sub-02"]
    assert set(r) | set(r.failed) == set(subs) and not set(r) & set(r.failed)
    for s in r.failed:
        assert (tmp_path / f"{s}.error.txt").is_file()
    for s in r:  # finished subjects are intact on disk
        assert r[s].mixing_.shape == (4, 2)
    # a rerun with the crash fixed completes the group and keeps the finished subjects
    subs["sub-02"] = {"X": np.random.default_rng(5).normal(size=(14, 4))}
    r2 = fit_group(CrashCRL(), subs, out_dir=tmp_path, n_jobs=1, random_state=0)
    assert not r2.failed and sorted(r2) == sorted(subs)
    assert sorted(r2.skipped) == sorted(r) and sorted(r2.fitted) == sorted(r.failed)
    assert not list(tmp_path.glob("*.error.txt"))


def test_public_names_keep_the_group_module():
    """crl_neuro.group is a package (runner + summaries) whose names still report the
    module crl_neuro.group: fit_group's fingerprints include the loader's module and
    name, so a changed module would refit every subject of an existing out_dir."""
    import pickle

    import crl_neuro.group as group

    for name in group.__all__:
        obj = getattr(group, name)
        assert obj.__module__ == "crl_neuro.group", name
        assert pickle.loads(pickle.dumps(obj)) is obj
