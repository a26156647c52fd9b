"""
Causally linked EEG sources across motor sessions with SessionCRL
=================================================================

Twelve EEG runs of one person (PhysioNet EEG Motor Movement/Imagery,
subject S001): runs 3, 7, 11 are real left/right fist movements, runs 4, 8, 12
the same movements imagined; runs 5, 6, 9, 10, 13, 14 involve both fists/feet.
Each task condition (say, imagined right fist) is one session: the brain
sources' power and causal relations change from condition to condition,
exactly the multi-distribution setting in which
:class:`crl_neuro.meeg.SessionCRL` identifies the sources and their Markov network.

SessionCRL whitens the data with a noise covariance, keeps the directions of the
data whose power changes most across sessions, scans the leadfield there for
single-dipole patterns (RAP-MUSIC), refines the unmixing so that the
per-session source precision matrices are jointly sparse while staying close to
dipole patterns, and re-localises the refined patterns.

Where the recordings come from, first found wins: ``../shared/data/meg_eeg/
physionet_eegmmidb_S001`` (a developer checkout); copies already downloaded by
``crl_neuro.datasets.fetch("eegmmidb_s001")`` or by
:func:`mne.datasets.eegbci.load_data` (subject 1); a download by ``fetch`` when
the environment variable ``CRL_NEURO_DOWNLOAD=1`` is set (31 MB, hash-checked).
Otherwise the tutorial stays offline and runs on simulated sessions
(:func:`crl_neuro.datasets.simulate_meeg_sessions`). Set
``CRL_NEURO_TUTORIAL_QUICK=1`` for a faster run (the six hand runs only).
"""

# %%
import os
import warnings
from pathlib import Path

import matplotlib.pyplot as plt
import mne
import numpy as np

from crl_neuro.meeg import SessionCRL
from crl_neuro.viz import show_or_save

QUICK = os.environ.get("CRL_NEURO_TUTORIAL_QUICK", "0") == "1"
try:
    HERE = Path(__file__).resolve().parent
except NameError:  # sphinx-gallery / interactive
    HERE = Path.cwd()
DATA = HERE.parents[1] / "shared" / "data" / "meg_eeg" / "physionet_eegmmidb_S001"
REAL, IMAGINED = (3, 7, 11), (4, 8, 12)
RUNS = REAL + IMAGINED if QUICK else tuple(range(3, 15))

# %%
# Load the sessions
# -----------------
# We keep 8-30 Hz (mu and beta rhythms, which hand movements and motor imagery
# modulate), set an average-reference projector (MNE's convention for EEG source
# modelling), and keep the task blocks (T1, T2 annotations) as epochs. A session
# is one task condition, pooled over the three runs that repeat it: SessionCRL
# finds sources through the way their power changes across sessions, so the
# sessions should differ by what we want to study (the task), while what changes
# from run to run for other reasons (electrode contact, muscle tension) is
# averaged out. With runs as sessions, those run-to-run changes dominate and
# the hand areas are not found (``benchmarks/bench_meeg_real.py``).


class _Offline(Exception):
    """Raised by the downloader below: a file is not cached and we may not download."""


def _refuse_download(url, output_file, pooch, check_only=False):
    raise _Offline(url)


def find_runs(runs: tuple[int, ...]) -> dict[int, Path] | None:
    """Local paths of subject S001's runs, or None when no copy is available offline."""
    names = {r: f"S001R{r:02d}.edf" for r in runs}
    if DATA.is_dir():
        return {r: DATA / n for r, n in names.items()}
    from crl_neuro.datasets import fetch

    download = os.environ.get("CRL_NEURO_DOWNLOAD", "0") == "1"
    try:  # the package's cache (hash-checked); downloads only when allowed
        files = fetch("eegmmidb_s001", downloader=None if download else _refuse_download)
        by_name = {Path(f).name: Path(f) for f in files}
        return {r: by_name[n] for r, n in names.items()}
    except _Offline:
        pass
    mne_dir = Path(mne.get_config("MNE_DATASETS_EEGBCI_PATH", str(Path.home() / "mne_data")))
    cached = mne_dir / "MNE-eegbci-data" / "files" / "eegmmidb" / "1.0.0" / "S001"
    if all((cached / n).is_file() for n in names.values()):
        paths = mne.datasets.eegbci.load_data(1, list(runs), update_path=False)  # no download
        return dict(zip(runs, map(Path, paths)))
    return None


def load_run(path: Path) -> mne.Epochs:
    raw = mne.io.read_raw_edf(path, preload=True, verbose=False)
    mne.datasets.eegbci.standardize(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # montage renamed in recent MNE
        raw.set_montage("standard_1005", verbose=False)
    raw.filter(8.0, 30.0, verbose=False)
    raw.set_eeg_reference("average", projection=True, verbose=False)
    events, event_id = mne.events_from_annotations(raw, event_id={"T1": 1, "T2": 2}, verbose=False)
    return mne.Epochs(raw, events, event_id, tmin=0.0, tmax=4.0, baseline=None, preload=True,
                      verbose=False)


TASKS = {0: ("real", "left fist", "right fist"), 1: ("imagined", "left fist", "right fist"),
         2: ("real", "both fists", "feet"), 3: ("imagined", "both fists", "feet")}


def condition_sessions(runs: dict[int, mne.Epochs]) -> tuple[list[mne.Epochs], list[str]]:
    """One Epochs per task condition (T1 or T2 of a task), pooled over its runs."""
    groups: dict[tuple[int, str], list[mne.Epochs]] = {}
    for r, epochs in runs.items():
        for cond in ("T1", "T2"):
            groups.setdefault(((r - 3) % 4, cond), []).append(epochs[cond])
    sessions, names = [], []
    for (task, cond), parts in sorted(groups.items()):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # annotations are not concatenated
            sessions.append(mne.concatenate_epochs(parts, verbose=False))
        kind, t1, t2 = TASKS[task]
        names.append(f"{kind} {t1 if cond == 'T1' else t2}")
    return sessions, names


paths = find_runs(RUNS)
if paths is not None:
    sessions, names = condition_sessions({r: load_run(paths[r]) for r in RUNS})
    labels = np.array(names)
    info = sessions[0].info
    SIMULATED = False
else:
    from crl_neuro.datasets import simulate_meeg_sessions

    sim = simulate_meeg_sessions(n_sources=4, n_sessions=6, duration=30.0, random_state=0)
    sessions = sim.raws
    labels = np.array([f"{kind} {hand} fist" for kind in ("real", "imagined")
                       for hand in ("left", "right", "both")])
    info = sim.info
    SIMULATED = True
print(f"{len(sessions)} sessions, {len(info['ch_names'])} channels, simulated={SIMULATED}")
print("sessions:", [str(x) for x in labels])

# %%
# A forward model on fsaverage
# ----------------------------
# The montage positions are in fsaverage head coordinates, so a cortical source
# space of fsaverage and a spherical head model fitted to the electrodes give a
# forward model without any MRI of this person (the same geometry the package's
# simulator uses).
#
# Orientations are fixed normal to the cortex. A free-orientation forward (what
# ``make_forward_solution`` returns) fits each source's orientation and localises
# better on simulated data (``benchmarks/bench_meeg_changes.py --orientation
# free``), but with this template head it puts the hand sources about 1 cm
# deeper (``benchmarks/bench_meeg_real.py --robustness --head-model sphere-free``).

if SIMULATED:
    forward = sim.forward
else:
    from crl_neuro.datasets.meeg import _cortex_source_space

    src = _cortex_source_space("oct5")
    sphere = mne.make_sphere_model("auto", "auto", info, verbose=False)
    forward = mne.make_forward_solution(info, trans=None, src=src, bem=sphere, eeg=True, meg=False,
                                        verbose=False)
    forward = mne.convert_forward_solution(forward, surf_ori=True, force_fixed=True, verbose=False)
print(forward)

# %%
# Fit SessionCRL
# --------------
# Without a measured noise covariance (``noise_cov=None``) SessionCRL whitens
# with MNE's ad-hoc one and warns; with a measured one (empty room, baseline) it
# also removes the noise share from the session covariances before estimating
# the network. Sessions are the list items.

# Six sources on the real data: with eight, the bootstrap below brings back four of
# them in at most 3 % of refits (low goodness of fit, frontal and temporal: eye and
# muscle activity), and the extra sources blur the left hand source's time course.
n_sources = 4 if SIMULATED else 6
noise_cov = sim.noise_cov if SIMULATED else None
crl = SessionCRL(n_sources=n_sources, noise_cov=noise_cov, random_state=0)
with warnings.catch_warnings():
    warnings.filterwarnings("ignore", message="noise_cov is None")
    crl.fit(sessions, forward=forward)
print(crl.dipoles_)
for j, (pos, gof) in enumerate(zip(crl.source_pos_, crl.source_gof_)):
    print(f"CRL{j:03d}: x={pos[0] * 1e3:6.1f} y={pos[1] * 1e3:6.1f} z={pos[2] * 1e3:6.1f} mm  GOF {gof:.0f}%")

# %%
# Source topographies
# -------------------
# Dipolar topographies with high goodness of fit; for hand tasks, sources over
# the sensorimotor strip (around C3/Cz/C4) are expected, frontal ones usually
# carry residual eye and muscle activity.

fig = crl.plot_components()

# %%
# Dipoles in the head
# -------------------

fig, ax = plt.subplots(1, 2, figsize=(8, 4))
for a, (i, j, name) in zip(ax, [(0, 1, "top view (x, y)"), (1, 2, "side view (y, z)")]):
    a.scatter(forward["source_rr"][:, i] * 1e3, forward["source_rr"][:, j] * 1e3, s=1, c="0.8")
    a.scatter(crl.source_pos_[:, i] * 1e3, crl.source_pos_[:, j] * 1e3, s=60, c="tab:red")
    for k, p in enumerate(crl.source_pos_):
        a.annotate(f"CRL{k:03d}", (p[i] * 1e3, p[j] * 1e3))
    a.set_title(name)
    a.set_aspect("equal")
fig.tight_layout()

# %%
# Which sources respond to the hand
# ---------------------------------
# The mu/beta power of a hand-area source drops more when the *opposite* hand
# moves (or is imagined to move). Per source: its position in MNI coordinates
# (fsaverage's MRI space, through MNE's fsaverage head-MRI transform) and the
# power ratio, in dB, of right-fist to left-fist sessions: negative for a
# left-hemisphere hand source, positive for a right-hemisphere one. The hand
# area of the primary motor cortex is around MNI (-37, -21, 58) and (37, -21, 58).

if not SIMULATED:
    fs_trans = mne.read_trans(Path(mne.__file__).parent / "data" / "fsaverage" / "fsaverage-trans.fif")
    if fs_trans["from"] != mne.io.constants.FIFF.FIFFV_COORD_HEAD:
        fs_trans = mne.transforms.invert_transform(fs_trans)  # we need head -> MRI
    pos_mni = mne.transforms.apply_trans(fs_trans, crl.source_pos_) * 1e3
    power = np.array([(crl.transform(s) ** 2).mean(axis=(0, 2)) for s in sessions])
    right = np.char.endswith(labels.astype(str), "right fist")
    left = np.char.endswith(labels.astype(str), "left fist")
    lat = 10 * np.log10(power[right].mean(0) / power[left].mean(0))
    for j, (p, g, d) in enumerate(zip(pos_mni, crl.source_gof_, lat)):
        print(f"CRL{j:03d}: MNI ({p[0]:6.1f}, {p[1]:6.1f}, {p[2]:6.1f}) mm  GOF {g:3.0f}%  "
              f"right/left fist power {d:+.2f} dB")

# %%
# On this subject, with six sources, one source on each side lies within 15 mm
# of the hand area and is lateralised the right way. Do not read more into it than
# that: it holds with 6 and 7 sources, not with 4, 5 or 10, nor when the first run
# of each condition is left out, and a continuous dipole fit or a realistic
# template head puts the same lateralised sources 15-40 mm deeper
# (``benchmarks/bench_meeg_real.py --robustness``).

# %%
# How much to trust each source
# -----------------------------
# ``bootstrap`` refits on block-bootstrap resamples of the sessions (here whole
# epochs are the blocks) and reports, per source, how often it reappears
# (``stability``) and how far its dipole moves (``radius95_mm``). A source that
# does not come back in most refits is not supported by the data, for example
# one too many for ``n_sources``. The spread is sampling variability only; the
# forward model's own error (about 1 cm with a template head) comes on top.

conf = crl.bootstrap(sessions, forward, n_boot=10 if QUICK else 30)
print(conf.round(2))

# %%
# The source network and how it changes
# -------------------------------------
# ``markov_network_`` is shared by all sessions. SessionCRL orients it by the
# causal order under which the fewest mechanisms change (``causal_order_``,
# ``source_dag_``) and estimates, per session, the causal strength of each
# edge (``edge_strengths_``, with standard errors). ``changing_edges_`` are the
# edges whose *strength* differs across sessions; a source that only gets
# louder or quieter is a changing source (``changing_sources_``), not a
# changing edge. Both are FDR-controlled at 5%, and a change must exceed
# ``min_change`` (0.07 in standardised units) to count: with thousands of
# samples per session, differences too small to matter are significant.

fig = crl.plot_network()
for i, j in zip(*np.nonzero(np.triu(crl.markov_network_))):
    lo, hi = crl.changing_edges_effect_ci_[:, i, j]
    print(f"edge {i}-{j}: between-session SD of the strength "
          f"{crl.changing_edges_effect_[i, j]:.3f} (95% CI {lo:.3f}-{hi:.3f}), "
          f"p = {crl.changing_edges_pvalues_[i, j]:.2g}, changing: {bool(crl.changing_edges_[i, j])}")
print("sources whose mechanism changes:", np.flatnonzero(crl.changing_sources_))

# %%
# Real versus imagined movement, as an effect size with a confidence interval:
# the difference of each edge's mean strength between the real-movement
# conditions and the imagined-movement ones, with a Welch interval that treats
# the conditions as replicates (so variation between them counts, not only
# sampling error).

from scipy import stats  # noqa: E402

is_real = np.char.startswith(labels.astype(str), "real")
is_imag = np.char.startswith(labels.astype(str), "imagined")
print("edge (cause->effect)   real    imagined   difference [95% CI]")
for i, j in zip(*np.nonzero(crl.source_dag_)):
    a, b = crl.edge_strengths_[is_real, i, j], crl.edge_strengths_[is_imag, i, j]
    res = stats.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    print(f"{i}->{j}                  {a.mean():+.2f}   {b.mean():+.2f}      "
          f"{a.mean() - b.mean():+.2f} [{ci.low:+.2f}, {ci.high:+.2f}]")

# %%
# Source time courses as an MNE object
# ------------------------------------
# ``get_sources`` returns the same type as its input, one ``misc`` channel per
# source, ready for MNE's time-frequency tools.

src_epochs = crl.get_sources(sessions[0])
print(src_epochs)

# %%
# Figures
# -------
# On a display this is ``plt.show()``; without one (``MPLBACKEND=Agg``, a cluster node)
# it saves the figures to ``./crl_neuro_figures`` or ``$CRL_NEURO_FIGURES_DIR``.
show_or_save()
