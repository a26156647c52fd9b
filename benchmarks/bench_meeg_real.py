"""Benchmark: SessionCRL on real recordings with a known answer (motor EEG, sample MEG).

Two real datasets from ``../shared/data/meg_eeg`` (skipped cleanly when absent):

**Motor EEG** (PhysioNet EEG Motor Movement/Imagery, subject S001, runs 3-14),
with the settings of ``tutorials/plot_meeg_motor_sessions.py``: 8-30 Hz, average
reference (projector), T1/T2 epochs 0-4 s, fsaverage5 ``oct5`` cortex in a sphere
head model (``trans=None``), ``SessionCRL(n_sources=k, random_state=0)`` with k = 6
(the tutorial), 8, 10, sessions either the twelve runs or the eight task conditions
pooled over runs (``condition_sessions``, the tutorial's), ``subspace`` "change"
(default) or "variance". Landmarks: the hand area of the primary motor cortex,
MNI (+-37, -21, 58) (M1 centroid of the Human Motor Area Template, Mayka et al.
2006, at the level of the precentral "hand knob", Yousry et al. 1997). Source
positions are taken from head to fsaverage MRI (surface RAS) coordinates with
MNE's ``fsaverage-trans.fif``; fsaverage's MRI space is MNI305, so distances are
in MNI mm. For each landmark we report the nearest source and its *lateralisation*:
``dB(power T2 / power T1)`` of the source time course in the left/right fist runs
(3, 4, 7, 8, 11, 12; T1 = left fist, T2 = right fist), mean over runs. A
left-hemisphere hand source should be negative (its mu/beta power drops more when
the right hand moves), a right-hemisphere one positive. "hit" = within 20 mm and
the right sign. Methods: SessionCRL defaults; MNE ICA (Picard, 20 and 8
components, concatenated epochs, same ad-hoc whitening) + leadfield scan of each
component (:func:`crl_neuro.meeg.scan_leadfield`).

**Sample MEG** (``test-ave.fif.gz``: evoked responses of the MNE sample subject
to left/right auditory and left/right visual stimuli, 306 MEG channels, bads
excluded, SSP projectors as stored), with the sample subject's noise covariance
(``test-cov.fif``), 1-layer BEM, head-MRI trans and a free-orientation volume
source space every 8 mm inside the inner skull. The four conditions are the
sessions (each evoked, -0.2 to 0.5 s, as one Raw). Landmarks: auditory cortex,
MNI (-55, -25, 8) and (55, -22, 8) (Heschl's gyrus / planum temporale, where the
N100m is usually localised); positions are taken from head to MNI with
:func:`mne.head_to_mni` (the subject's Talairach transform). Methods:
SessionCRL defaults (``n_sources`` 4 and 6); MNE ICA (Picard, 6 components) +
leadfield scan; ``mne.fit_dipole`` (BEM, noise covariance) at the N100m peak of
the averaged auditory responses (gradiometer peak 50-150 ms, found per side),
once on the left and once on the right temporal-sensor selection
(``mne.read_vectorview_selection``), as MNE's tutorials do; LCMV (``mne.beamformer.make_lcmv``, data covariance from the
four evokeds 0-0.5 s, noise covariance, reg 0.05) power peak in each
hemisphere on the same grid. Note that fit_dipole and LCMV are told where to look
(sensor selection or hemisphere, N100m latency); the decomposition methods are not.

Columns: ``L``/``R`` distance (mm) of the nearest source to the left/right
landmark (``*`` marks a hit: within 20 mm, and for the motor EEG lateralised the
right way, lateralisation in dB in brackets); ``|r| max``: largest absolute
correlation of two sources' noise-whitened sensor patterns (> 0.8 means one
generator split in two); fit time (s, 1 CPU thread).

Measured (2026-12-05, CPU, 1 thread; ``OMP_NUM_THREADS=1 python benchmarks/bench_meeg_real.py``).
Before (main at 7676d1b)::

    data       method                           L mm [lat dB]     R mm [lat dB]  |r| max   fit s
    motor EEG  SessionCRL k=8                   46.1  [+0.12]     63.3  [+0.04]     0.84     0.5
    motor EEG  ICA picard 20 + scan             28.3  [-0.02]     20.5  [+0.27]     0.76     3.9
    motor EEG  ICA picard 8 + scan              48.5  [-0.07]     71.1  [-0.81]     0.57     1.5
    sample MEG SessionCRL k=4                           79.5              66.7      0.99     2.5
    sample MEG SessionCRL k=6                           21.9              70.8      0.93     4.1
    sample MEG ICA picard 6 + scan                      69.2              32.3      0.52     0.1
    sample MEG fit_dipole L/R temporal                  12.8*             14.9*        -     5.3
    sample MEG LCMV peak per hemisphere                 38.5              99.9         -     0.5

After (a refinement that merges two source patterns is rejected, ``refined_``)::

    data       method                           L mm [lat dB]     R mm [lat dB]  |r| max   fit s
    motor EEG  SessionCRL k=8                   46.1  [+0.12]     63.3  [+0.04]     0.84     0.6
    motor EEG  ICA picard 20 + scan             28.3  [-0.02]     20.5  [+0.27]     0.76     5.3
    motor EEG  ICA picard 8 + scan              48.5  [-0.07]     71.1  [-0.81]     0.57     2.3
    sample MEG SessionCRL k=4                           81.2              27.1      0.70     2.6
    sample MEG SessionCRL k=6                           21.9              15.8*     0.61     4.2
    sample MEG ICA picard 6 + scan                      69.2              32.3      0.52     0.2
    sample MEG fit_dipole L/R temporal                  12.8*             14.9*        -     7.1
    sample MEG LCMV peak per hemisphere                 38.5              99.9         -     0.5

After (2026-12-06) RAP-MUSIC is also kept from picking a location whose pattern, in
the signal subspace, correlates above 0.8 with a source already found (the start
itself split a generator on the motor EEG, |r| 0.84)::

    data       method                           L mm [lat dB]     R mm [lat dB]  |r| max   fit s
    motor EEG  SessionCRL k=8                   61.4  [-0.14]     63.3  [-0.31]     0.76     1.7
    motor EEG  ICA picard 20 + scan             28.3  [-0.02]     20.5  [+0.27]     0.76    11.8
    motor EEG  ICA picard 8 + scan              48.5  [-0.07]     71.1  [-0.81]     0.57     5.2
    sample MEG SessionCRL k=4                           85.5              21.9      0.63     3.2
    sample MEG SessionCRL k=6                           21.9              18.0*     0.59     5.2
    sample MEG ICA picard 6 + scan                      69.2              32.3      0.52     0.3
    sample MEG fit_dipole L/R temporal                  12.8*             14.9*        -     7.6
    sample MEG LCMV peak per hemisphere                 38.5              99.9         -     0.7

After (2026-12-06, branch h23-meg): free-orientation scans drop orientations a
location's leadfield does not reach and RAP-MUSIC's alike-exclusion looks at the
orientation a location would get (both for MEG in spherical heads, see
``bench_meeg.py``); a rejected refinement keeps the start dipoles' locations instead of
re-scanning their subspace-restricted patterns; ``+ dip. fit`` rows are
``localize(fwd, bem=bem)``, a continuous fit of the same patterns in the BEM::

    data       method                           L mm [lat dB]     R mm [lat dB]  |r| max   fit s
    sample MEG SessionCRL k=4                           82.9              32.1      0.70     1.5
    sample MEG SessionCRL k=4 + dip. fit                81.2              27.1      0.70    10.2
    sample MEG SessionCRL k=6                           19.0*             18.0*     0.61     3.0
    sample MEG SessionCRL k=6 + dip. fit                21.2              20.0      0.61    16.9
    sample MEG ICA picard 6 + scan                      69.2              32.3      0.52     0.1
    sample MEG fit_dipole L/R temporal                  12.8*             14.9*        -     4.5
    sample MEG LCMV peak per hemisphere                 38.5              99.9         -     0.4

With 6 sources both auditory cortices now have a source within 20 mm, by a small
margin: the refinement is rejected on these data, the sources are the RAP-MUSIC
start's dipoles (left 19.0 mm, right 18.0 mm on the 8 mm grid), and their patterns,
restricted to the 6-dimensional signal subspace, are localised at 21-22 mm (left)
by a scan or a continuous fit alike, so the grid is not what limits the left
source: a 5 mm grid moved the scanned left/right sources to 15.7 / 21.2 mm (measured
before these changes, refinement rejected too), the continuous fit to 21.2 / 20.0 mm. Its pattern explains 22-24 % of the whitened
field (single-trial noise covariance, 3-6 averaged trials), and a second left
temporal source sits 20 mm behind it (MNI -48, -70, -13). With 4 sources no
auditory source is found.

(fit times from a machine shared with other jobs.) No two SessionCRL sources have
patterns correlated above 0.8 any more; the simulated family is unchanged by it
(``bench_meeg_changes.py``: 10.5 / 24.8 mm, MCC 0.88, changing-edge F1 0.76).

After (2026-12-06 13:58 UTC): ``SessionCRL(subspace="change")`` is the default (the
sources are sought in the directions whose power changes across sessions), and the
motor EEG is also fitted with **task conditions as sessions** (``condition_sessions``:
T1 and T2 of each of the four tasks, pooled over its three runs: 8 sessions of 21-24
epochs), as the tutorial now does. SessionCRL rows for n_sources 6, 8, 10, both
session designs and both subspaces; ICA rows unchanged (``OMP_NUM_THREADS=1 python
benchmarks/bench_meeg_real.py``, 53 s)::

    data       method                              L mm [lat dB]     R mm [lat dB]  |r| max   fit s
    motor EEG  SessionCRL k=6 change, runs         61.9  [-0.14]     71.8  [+0.58]     0.76     0.5
    motor EEG  SessionCRL k=8 change, runs         61.9  [-0.12]     69.8  [-0.02]     0.77     0.9
    motor EEG  SessionCRL k=10 change, runs        61.9  [+0.28]     71.8  [+0.71]     0.74     1.2
    motor EEG  SessionCRL k=6 variance, runs       38.3  [-0.19]     53.3  [-0.19]     0.75     0.2
    motor EEG  SessionCRL k=8 variance, runs       61.4  [-0.14]     63.3  [-0.31]     0.76     0.3
    motor EEG  SessionCRL k=10 variance, runs      61.8  [+0.25]     53.6  [+0.25]     0.76     1.1
    motor EEG  SessionCRL k=6 change, conditions   13.2* [-1.15]     14.6* [+1.18]     0.79     0.6
    motor EEG  SessionCRL k=8 change, conditions   13.2  [+0.03]     14.6* [+1.44]     0.78     0.7
    motor EEG  SessionCRL k=10 change, conditions  35.0  [-0.64]     58.5  [+0.07]     0.80     1.1
    motor EEG  SessionCRL k=6 variance, conditions 38.3  [-0.18]     53.3  [-0.18]     0.75     0.2
    motor EEG  SessionCRL k=8 variance, conditions 61.4  [-0.13]     63.3  [-0.31]     0.77     0.4
    motor EEG  SessionCRL k=10 variance, conditions 61.8 [+0.25]     53.6  [+0.25]     0.76     0.9
    motor EEG  ICA picard 20 + scan                28.3  [-0.02]     20.5  [+0.27]     0.76     4.3
    motor EEG  ICA picard 8 + scan                 48.5  [-0.07]     71.1  [-0.81]     0.57     2.1
    sample MEG SessionCRL k=4 variance                       82.9              32.1      0.70     1.4
    sample MEG SessionCRL k=4 change                         82.9              32.1      0.70     1.6
    sample MEG SessionCRL k=4 + dip. fit                     81.2              27.1      0.70     8.9
    sample MEG SessionCRL k=6 variance                       19.0*             18.0*     0.61     3.0
    sample MEG SessionCRL k=6 change                         19.0*             18.0*     0.61     2.8
    sample MEG SessionCRL k=6 + dip. fit                     21.2              20.0      0.61    14.3
    sample MEG ICA picard 6 + scan                           69.2              32.3      0.52     0.1
    sample MEG fit_dipole L/R temporal                       12.8*             14.9*        -     3.9
    sample MEG LCMV peak per hemisphere                      38.5              99.9         -     0.5

With conditions as sessions and the change subspace, 6 sources give both hand areas
(13.2 and 14.6 mm, MNI (-36, -26, 46) and (27, -13, 51), goodness of fit 90 %),
lateralised the right way by more than 1 dB; with 8 the same two locations, but the
left source's time course is not lateralised (the four extra sources are frontal and
temporal, goodness of fit 13-48 %, and come back in at most 3 % of bootstrap refits in
the tutorial); with 10 neither. Runs as sessions fail with either subspace: what
changes most from run to run is not the task. The sample-MEG evokeds have 421 samples
per session, so the change subspace searches only the leading directions there
(one per 100 samples of the shortest session) and equals the variance subspace.
Robustness (``--robustness``, same defaults and conditions; nearest source [lat dB],
``*`` = a source within 20 mm lateralised the right way)::

    all runs                   k= 4  L  25.6 [-0.76]  R  67.8 [-0.76]  hit L/R --
    all runs                   k= 5  L  50.6 [-0.92]  R  47.0 [+1.02]  hit L/R --
    all runs                   k= 6  L  13.2 [-1.15]  R  14.6 [+1.18]  hit L/R **
    all runs                   k= 7  L  13.2 [-0.11]  R  14.6 [+0.52]  hit L/R **
    all runs                   k= 8  L  13.2 [+0.03]  R  14.6 [+1.44]  hit L/R -*
    without repetition 1       k= 6  L  48.6 [-0.69]  R  77.2 [+0.68]  hit L/R --
    without repetition 1       k= 8  L  61.8 [-0.48]  R  77.2 [+0.24]  hit L/R --
    without repetition 2       k= 6  L  33.6 [-1.44]  R  35.0 [+1.14]  hit L/R --
    without repetition 2       k= 8  L  33.6 [-0.26]  R  35.0 [+1.24]  hit L/R --
    without repetition 3       k= 6  L  26.0 [-0.98]  R  66.4 [+0.05]  hit L/R --
    without repetition 3       k= 8  L  13.2 [-1.29]  R  40.6 [+1.50]  hit L/R *-

So the hits are not robust: with two of the three runs per condition the hand sources
are mostly lost (lateralised sources remain, 26-35 mm away, in two of the three
cases), and n_sources matters (6 and 7 hit both, 4-5 neither, 8 one). This is one
subject with 21-24 four-second epochs per condition.
n_sources=6 in the tutorial was set after this sweep (the bootstrap stability argument
above is the reason given to users); treat the k-dependence as part of the result.

Is it the head model? (2026-12-06 17:40 UTC, ``--robustness --head-model M``, the same
fits; for each landmark the nearest source lateralised the right way, distance mm
[lat dB] (MNI position); ``*`` = hit)::

    fit                  k   sphere (tutorial)        sphere, free orient.     sphere + dipole fit      sample-subject BEM, volume
    all runs             4   L 25.6  R 96.6           L 28.7  R107.6           L 28.4  R 96.6           L 39.5  R120.1
    all runs             5   L 50.6  R 47.0           L 94.1  R 39.8           L 23.2  R 39.5           L  -    R 46.4
    all runs             6   L 13.2* R 14.6*          L 23.8  R 22.3           L 22.1  R 18.2*          L 39.0  R 39.3
    all runs             7   L 13.2* R 14.6*          L  -    R 22.3           L 22.1  R 26.0           L 39.0  R 39.3
    all runs             8   L 71.5  R 14.6*          L 85.2  R 22.3           L 83.6  R 29.4           L 39.0  R 39.3
    without rep. 1       6   L 48.6  R 77.2           L 41.4  R 77.2           L 34.7  R 83.0           L 95.0  R 88.6
    without rep. 1       8   L 61.8  R 77.2           L 59.4  R 73.0           L 47.9  R 82.9           L 62.0  R 83.5
    without rep. 2       6   L 33.6  R 35.0           L 29.0  R 22.3           L 25.0  R 25.7           L 37.9  R 39.3
    without rep. 2       8   L 33.6  R 35.0           L 23.8  R 22.3           L 25.1  R 27.9           L 37.9  R 39.3
    without rep. 3       6   L 26.0  R 66.4           L 19.1* R 73.0           L 24.9  R 79.0           L 31.9  R 58.7
    without rep. 3       8   L 13.2* R 40.6           L 19.1* R 15.2*          L 22.4  R 24.2           L 35.6  R 32.2

No head model makes the hits robust. Two different failures show: (1) without the
first repetition (runs 3-6) no model finds a lateralised central source on either side,
and with 4 sources none on the right: the task sources are not among the fitted ones;
(2) elsewhere a central source lateralised the right way by 0.8-1.8 dB is there, at
x = +-33 to 58, y = -35 to -5 MNI mm, but the continuous fit puts it mostly at z = 30-39
(free orientation on the surface grid: 31-44) and the realistic head (MNE's sample subject: 3-layer BEM, standard montage coregistered
to its scalp, mean electrode-scalp distance 3.6 mm, free-orientation volume grid every
7 mm) at z = 19-29, i.e. 15-40 mm below the hand knob (z = 58): the equivalent dipole
of the mu rhythm lies deep, as expected of an extended cortical generator fitted by
one dipole, and only the cortical surface grid of the tutorial (fixed normal
orientation) keeps it near the cortex. With that realistic head the same central
pair comes back for 6, 7 and 8 sources and in two of the three leave-one-out fits
(8 sources), so detection is more stable than the 20 mm criterion says, but the
criterion is what the issue asks for and it holds only in the tutorial's setting.
No S001 MRI exists; every head here is a template.

Before the change subspace (issue 23, "Done when" then): no SessionCRL source near
either hand area of the motor EEG. On the sample MEG, met with 6 sources since the
h23-meg changes (19.0 / 18.0 mm, narrowly; not with 4), not before (left at 21.9 mm,
right 15.8 mm). What the diagnosis showed (before those changes):

- Motor EEG: with 8 sources, the 8-dimensional principal subspace of the 8-30 Hz
  data does not isolate the mu rhythm (ICA with 8 components fails the same way;
  ICA with 20 finds the right mu source, 20.5 mm, lateralised the right way). In
  that subspace the MUSIC score of almost every cortical location is 0.96-0.99
  (smooth EEG topographies, sphere model), so the RAP-MUSIC start is not
  discriminative and picks deep midline/basal locations; the leadfield prior then
  keeps them (final positions = start positions). With 12, 16 or 20 sources the
  start is still deep. A data-driven start (the core's sparsity search, then a
  scan) finds a left central source at 25.6 mm with 20 sources but is much worse on
  the simulated family (mean localisation 24.1 vs 13.1 mm, 8 draws), so it was not
  adopted. Distances depend on the landmark: the nearest sources here sit 15-20 mm
  below the z = 58 mm hand area (EEG in a sphere model localises deep).
- Sample MEG: the RAP-MUSIC start with 6 sources has both auditory cortices
  (19 and 18 mm from the landmarks), but the causal refinement merged sources
  (whitened pattern correlations 0.93-0.99) and moved them 37-60 mm. Rejecting such
  a refinement (this change) keeps the right one (15.8 mm); the left one is
  re-localised from its subspace-limited pattern at 21.9 mm. The evoked responses
  average 3-6 trials; the given noise covariance is that of single trials
  (dividing it by the number of averages did not change the outcome).

Usage::

    OMP_NUM_THREADS=1 python benchmarks/bench_meeg_real.py            # both
    OMP_NUM_THREADS=1 python benchmarks/bench_meeg_real.py --only motor
    OMP_NUM_THREADS=1 python benchmarks/bench_meeg_real.py --robustness --head-model bem-volume
"""

from __future__ import annotations

import argparse
import os
import time
import warnings
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
DATA = HERE.parents[1] / "shared" / "data" / "meg_eeg"
MOTOR = DATA / "physionet_eegmmidb_S001"
PYTEST = DATA / "mne_python_testdata"
TESTING = DATA / "mne_testing_data"

HAND_MNI = np.array([[-37.0, -21.0, 58.0], [37.0, -21.0, 58.0]])
AUDITORY_MNI = np.array([[-55.0, -25.0, 8.0], [55.0, -22.0, 8.0]])
HIT_MM = 20.0
HAND_RUNS = (3, 4, 7, 8, 11, 12)



def _fit_ica(inst, n_components, noise_cov=None):
    """MNE ICA (Picard) fitted on ``inst``; returns the ICA and the fit time in s."""
    import mne

    ica = mne.preprocessing.ICA(n_components=n_components, noise_cov=noise_cov, method="picard",
                                random_state=0, max_iter=1000, verbose=False)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ica.fit(inst, verbose=False)
    return ica, time.perf_counter() - t0

def _pattern_corr(whitener: np.ndarray, patterns: np.ndarray) -> float:
    P = whitener @ patterns
    P = P / np.linalg.norm(P, axis=0, keepdims=True)
    R = np.abs(P.T @ P)
    np.fill_diagonal(R, 0.0)
    return float(R.max())


def _nearest(pos_mm: np.ndarray, landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    d = np.linalg.norm(pos_mm[:, None] - landmarks[None], axis=-1)  # (n_src, n_land)
    return d.argmin(axis=0), d.min(axis=0)


# --------------------------------------------------------------------------- motor
def _load_run(run: int, tmin=0.0, tmax=4.0):
    import mne

    raw = mne.io.read_raw_edf(MOTOR / f"S001R{run:02d}.edf", preload=True, verbose=False)
    mne.datasets.eegbci.standardize(raw)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        raw.set_montage("standard_1005", verbose=False)
    raw.filter(8.0, 30.0, verbose=False)
    raw.set_eeg_reference("average", projection=True, verbose=False)
    events, event_id = mne.events_from_annotations(raw, event_id={"T1": 1, "T2": 2}, verbose=False)
    return mne.Epochs(raw, events, event_id, tmin=tmin, tmax=tmax, baseline=None, preload=True,
                      verbose=False)


def _lateralisation(sources_by_run: dict) -> np.ndarray:
    """dB(P_T2 / P_T1) per source, mean over the left/right fist runs.

    ``sources_by_run[run] = (data (n_epochs, k, t), event codes)``.
    """
    out = []
    for data, codes in sources_by_run.values():
        p = (data**2).mean(axis=-1)  # (n_epochs, k)
        out.append(10 * np.log10(p[codes == 2].mean(0) / p[codes == 1].mean(0)))
    return np.mean(out, axis=0)


def condition_sessions(runs: tuple, sessions: list) -> list:
    """One session per task condition, pooled over the runs that share it (8 sessions).

    Runs 3/7/11 (real left/right fist), 4/8/12 (imagined left/right fist), 5/9/13 (real
    both fists/feet), 6/10/14 (imagined both fists/feet); T1 and T2 are the two
    conditions of each task. Pooling the three repetitions averages out what changes
    from run to run without being the task (electrode contact, muscle tension).
    """
    import mne

    groups: dict = {}
    for run, epochs in zip(runs, sessions):
        for cond in ("T1", "T2"):
            groups.setdefault(((run - 3) % 4, cond), []).append(epochs[cond])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # annotations are not concatenated
        return [mne.concatenate_epochs(v, verbose=False) for _, v in sorted(groups.items())]


def run_motor(n_sources: tuple = (6, 8, 10), crl_kwargs: dict | None = None) -> list[dict]:
    import mne

    from crl_neuro.meeg import SessionCRL, scan_leadfield

    runs = tuple(range(3, 15))
    sessions = [_load_run(r) for r in runs]
    info = sessions[0].info
    fwd, _, to_mni = _motor_forward(info, "sphere")  # the tutorial's
    hand = {r: s for r, s in zip(runs, sessions) if r in HAND_RUNS}
    rows = []

    def score(name, pos_head, transform, pcorr, fit_s, gof):
        pos = to_mni(pos_head)
        lat = _lateralisation({r: (transform(e), e.events[:, 2]) for r, e in hand.items()})
        idx, dist = _nearest(pos, HAND_MNI)
        want = (-1, 1)  # left source: T2 (right hand) lower; right source: T1 lower
        hits = [bool(d <= HIT_MM and np.sign(lat[i]) == w) for i, d, w in zip(idx, dist, want)]
        # Best qualifying source per landmark (any source within 20 mm, right sign).
        d_all = np.linalg.norm(pos[:, None] - HAND_MNI[None], axis=-1)
        rows.append({"data": "motor EEG", "method": name, "L": dist[0], "R": dist[1],
                         "lat_L": lat[idx[0]], "lat_R": lat[idx[1]], "hit_L": hits[0], "hit_R": hits[1],
                         "any_L": bool(np.any((d_all[:, 0] <= HIT_MM) & (lat < 0))),
                         "any_R": bool(np.any((d_all[:, 1] <= HIT_MM) & (lat > 0))),
                         "rmax": pcorr, "fit_s": fit_s})
        for j, (p, l_, g) in enumerate(zip(pos, lat, gof)):
            print(f"  {name} src {j}: MNI ({p[0]:6.1f},{p[1]:6.1f},{p[2]:6.1f}) GOF {g:4.0f}%  "
                  f"lat {l_:+.2f} dB")

    designs = {"runs": sessions, "conditions": condition_sessions(runs, sessions)}
    Wn = None
    for design, sess in designs.items():
        for subspace in ("change", "variance"):
            kw = {"random_state": 0, "subspace": subspace}
            kw.update(crl_kwargs or {})
            for k in n_sources:
                crl = SessionCRL(n_sources=k, **kw)
                t0 = time.perf_counter()
                with warnings.catch_warnings():
                    warnings.filterwarnings("ignore", message="noise_cov is None")
                    crl.fit(sess, forward=fwd)
                fit_s = time.perf_counter() - t0
                score(f"SessionCRL k={k} {subspace}, {design}", crl.source_pos_, crl.transform,
                      float(crl.pattern_correlation_.max()), fit_s, crl.source_gof_)
                Wn = crl.whitener_ if Wn is None else Wn

    epochs = mne.concatenate_epochs([s.copy() for s in sessions], verbose=False)
    for n_comp in (20, 8):
        ica, ica_s = _fit_ica(epochs, n_comp)
        A = ica.get_components()
        res = scan_leadfield(fwd, A, info=info)

        def transform(e, ica=ica):
            return ica.get_sources(e).get_data()

        score(f"ICA picard {n_comp} + scan", res.pos, transform, _pattern_corr(Wn, A), ica_s,
              res.gof)
    return rows


HEAD_MODELS = ("sphere", "sphere-free", "sphere-dipfit", "bem-volume")


def _motor_forward(info, head_model: str):
    """Forward, continuous-fit head model and head->MNI map for the motor robustness check.

    ``sphere``: the tutorial's (fsaverage5 ``oct5`` cortex, fixed normal orientation,
    sphere fitted to the electrodes, ``trans=None``); ``sphere-free``: the same with
    free orientation; ``sphere-dipfit``: the tutorial's, then
    :meth:`SessionCRL.localize` with the sphere (continuous dipole fit);
    ``bem-volume``: a realistic head, that of the MNE sample subject (3-layer BEM,
    320 triangles per layer, ``mne_testing_data``), the standard montage coregistered
    to its scalp (fiducials, then ICP on the electrodes), free-orientation volume grid
    every 7 mm, MNI through the subject's Talairach transform. No head model here is
    S001's own (there is no MRI of this person).
    """
    import mne

    from crl_neuro.datasets.meeg import _cortex_source_space, _fsaverage_mri_to_head

    if head_model == "bem-volume":
        subjects_dir = TESTING / "subjects"
        coreg = mne.coreg.Coregistration(info, "sample", subjects_dir, fiducials="auto")
        coreg.fit_fiducials(verbose=False)
        coreg.fit_icp(n_iterations=20, nasion_weight=2.0, verbose=False)
        bem = mne.read_bem_solution(subjects_dir / "sample" / "bem" / "sample-320-320-320-bem-sol.fif",
                                    verbose=False)
        src = mne.setup_volume_source_space("sample", pos=7.0, bem=bem, subjects_dir=subjects_dir,
                                            mindist=5.0, verbose=False)
        fwd = mne.make_forward_solution(info, coreg.trans, src, bem, eeg=True, meg=False,
                                        verbose=False)

        def to_mni(pos_head):
            return mne.head_to_mni(pos_head, "sample", coreg.trans, subjects_dir=subjects_dir,
                                   verbose=False)

        return fwd, None, to_mni
    sphere = mne.make_sphere_model("auto", "auto", info, verbose=False)
    fwd = mne.make_forward_solution(info, trans=None, src=_cortex_source_space("oct5"),
                                    bem=sphere, eeg=True, meg=False, verbose=False)
    fwd = mne.convert_forward_solution(fwd, surf_ori=True, force_fixed=head_model != "sphere-free",
                                       verbose=False)
    head_mri = np.linalg.inv(_fsaverage_mri_to_head())

    def to_mni(pos_head):
        return (pos_head @ head_mri[:3, :3].T + head_mri[:3, 3]) * 1e3

    return fwd, sphere if head_model == "sphere-dipfit" else None, to_mni


def run_motor_robustness(n_sources: tuple = (4, 5, 6, 7, 8), head_model: str = "sphere") -> None:
    """How much the motor-EEG hits depend on n_sources, the runs and the head model.

    All twelve runs with several ``n_sources``; then each task repetition left out in
    turn (two runs per condition instead of three) with 6 and 8 sources. Defaults and
    conditions as sessions throughout; ``head_model`` is one of :data:`HEAD_MODELS`
    (see :func:`_motor_forward`). Prints one line per fit: for each hand landmark, the
    nearest source lateralised the right way (distance, lateralisation, MNI position,
    goodness of fit), and whether it is a hit (within 20 mm).
    """
    from crl_neuro.meeg import SessionCRL

    runs = tuple(range(3, 15))
    epochs = {r: _load_run(r) for r in runs}
    fwd, dip_bem, to_mni = _motor_forward(epochs[3].info, head_model)
    hand = {r: epochs[r] for r in HAND_RUNS}
    print(f"head model: {head_model}")

    def one(name, use, k):
        sess = condition_sessions(use, [epochs[r] for r in use])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            crl = SessionCRL(n_sources=k, random_state=0).fit(sess, forward=fwd)
            if dip_bem is not None:
                crl.localize(fwd, bem=dip_bem, trans=None)
        pos = to_mni(crl.source_pos_)
        lat = _lateralisation({r: (crl.transform(e), e.events[:, 2]) for r, e in hand.items()})
        d = np.linalg.norm(pos[:, None] - HAND_MNI[None], axis=-1)
        cells = []
        for side, sign in ((0, -1), (1, 1)):
            ok = np.sign(lat) == sign
            if not ok.any():
                cells.append(f"{'LR'[side]}   none lateralised" + " " * 30)
                continue
            i = int(np.argmin(np.where(ok, d[:, side], np.inf)))
            hit = "*" if d[i, side] <= HIT_MM else " "
            p = np.round(pos[i]).astype(int)
            cells.append(f"{'LR'[side]} {d[i, side]:5.1f}{hit} [{lat[i]:+.2f}] ({p[0]:4d},{p[1]:4d},"
                         f"{p[2]:4d}) GOF {crl.source_gof_[i]:3.0f}%")
        print(f"  {name:20s} k={k:2d}  {'   '.join(cells)}", flush=True)

    for k in n_sources:
        one("all runs", runs, k)
    for rep in range(3):
        use = tuple(r for r in runs if (r - 3) // 4 != rep)
        for k in (6, 8):
            one(f"without repetition {rep + 1}", use, k)


# ---------------------------------------------------------------------- sample MEG
def run_sample(n_sources_list=(4, 6), crl_kwargs: dict | None = None) -> list[dict]:
    import mne

    from crl_neuro.meeg import SessionCRL, scan_leadfield

    subjects_dir = TESTING / "subjects"
    trans = mne.read_trans(TESTING / "MEG" / "sample" / "sample_audvis_trunc-trans.fif")
    bem = mne.read_bem_solution(subjects_dir / "sample" / "bem" / "sample-1280-bem-sol.fif",
                                verbose=False)
    evokeds = mne.read_evokeds(PYTEST / "test-ave.fif.gz", verbose=False)
    evokeds = [e.copy().pick("meg", exclude="bads") for e in evokeds]
    info = evokeds[0].info
    cov = mne.read_cov(PYTEST / "test-cov.fif", verbose=False)
    src = mne.setup_volume_source_space("sample", pos=8.0, bem=bem, subjects_dir=subjects_dir,
                                        verbose=False)
    fwd = mne.make_forward_solution(info, trans, src, bem, meg=True, eeg=False, verbose=False)
    print("  conditions:", [e.comment for e in evokeds], f"nave={[e.nave for e in evokeds]}")

    def to_mni(pos_head):
        return mne.head_to_mni(pos_head, "sample", trans, subjects_dir=subjects_dir, verbose=False)

    rows = []

    def score(name, pos_head, pcorr, fit_s, gof):
        pos = to_mni(np.atleast_2d(pos_head))
        _idx, dist = _nearest(pos, AUDITORY_MNI)
        rows.append({"data": "sample MEG", "method": name, "L": dist[0], "R": dist[1], "lat_L": np.nan,
                         "lat_R": np.nan, "hit_L": bool(dist[0] <= HIT_MM), "hit_R": bool(dist[1] <= HIT_MM),
                         "any_L": bool(dist[0] <= HIT_MM), "any_R": bool(dist[1] <= HIT_MM),
                         "rmax": pcorr, "fit_s": fit_s})
        for j, (p, g) in enumerate(zip(pos, np.atleast_1d(gof))):
            print(f"  {name} src {j}: MNI ({p[0]:6.1f},{p[1]:6.1f},{p[2]:6.1f}) GOF {g:4.0f}%")

    raws = [mne.io.RawArray(e.data, e.info, verbose=False) for e in evokeds]
    Wn = None
    for k in n_sources_list:
        for subspace in ("variance", "change"):  # the default (change) last: dip. fit below
            kw = {"random_state": 0, "noise_cov": cov, "subspace": subspace}
            kw.update(crl_kwargs or {})
            crl = SessionCRL(n_sources=k, **kw)
            t0 = time.perf_counter()
            crl.fit(raws, forward=fwd)
            fit_s = time.perf_counter() - t0
            Wn = crl.whitener_
            score(f"SessionCRL k={k} {subspace}", crl.source_pos_,
                  float(crl.pattern_correlation_.max()), fit_s, crl.source_gof_)
        # The same patterns, positions fitted continuously in the BEM (not on the 8 mm grid).
        t0 = time.perf_counter()
        crl.localize(fwd, bem=bem)
        score(f"SessionCRL k={k} + dip. fit", crl.source_pos_,
              float(crl.pattern_correlation_.max()), fit_s + time.perf_counter() - t0,
              crl.source_gof_)

    # ICA + scan on the concatenated evokeds.
    raw_all = mne.concatenate_raws([r.copy() for r in raws], verbose=False)
    ica, ica_s = _fit_ica(raw_all, 6, noise_cov=cov)
    A = ica.get_components()
    res = scan_leadfield(fwd, A, info=info, noise_cov=cov)
    score("ICA picard 6 + scan", res.pos, _pattern_corr(Wn, A), ica_s, res.gof)

    # fit_dipole at the N100m peak of the averaged auditory responses, per hemisphere.
    aud = mne.combine_evoked([e for e in evokeds if "Auditory" in e.comment], weights="nave")
    _, peak = aud.copy().crop(0.05, 0.15).get_peak(ch_type="grad")
    t0 = time.perf_counter()
    pos, gof = [], []
    for side in ("Left", "Right"):
        sel = [c for c in mne.read_vectorview_selection(f"{side}-temporal", info=info)
               if c in info["ch_names"]]
        ev = aud.copy().pick(sel)
        _, t_side = ev.copy().crop(0.05, 0.15).get_peak(ch_type="grad")  # N100m of this side
        print(f"  fit_dipole {side}: N100m peak {t_side * 1e3:.0f} ms")
        ev.crop(t_side, t_side)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dip, _ = mne.fit_dipole(ev, cov, bem, trans, verbose=False)
        pos.append(dip.pos[0])
        gof.append(dip.gof[0])
    dip_s = time.perf_counter() - t0
    print(f"  N100m peak {peak * 1e3:.0f} ms")
    score("fit_dipole L/R temporal", np.array(pos), np.nan, dip_s, np.array(gof))

    # LCMV: data covariance from the auditory evokeds around the N100m.
    from mne.beamformer import apply_lcmv, make_lcmv

    t0 = time.perf_counter()
    data = np.hstack([e.copy().crop(0.0, None).data for e in evokeds])
    data_cov = mne.Covariance(np.cov(data), info["ch_names"], info["bads"], info["projs"],
                              nfree=data.shape[1] - 1, verbose=False)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        filt = make_lcmv(info, fwd, data_cov, reg=0.05, noise_cov=cov, pick_ori="max-power",
                         weight_norm="unit-noise-gain", rank=None, verbose=False)
        stc = apply_lcmv(aud.copy().crop(peak - 0.01, peak + 0.01), filt, verbose=False)
    power = (stc.data**2).mean(axis=1)
    src_head = mne.transforms.apply_trans(fwd["mri_head_t"], fwd["source_rr"])
    src_mni = to_mni(src_head)
    pos = []
    for sign in (-1, 1):
        mask = np.sign(src_mni[:, 0]) == sign
        pos.append(src_head[np.flatnonzero(mask)[power[mask].argmax()]])
    lcmv_s = time.perf_counter() - t0
    score("LCMV peak per hemisphere", np.array(pos), np.nan, lcmv_s, np.full(2, np.nan))
    return rows


def _table(rows: list[dict]) -> str:
    head = (f"{'data':<11}{'method':<28}{'L mm [lat dB]':>18}{'R mm [lat dB]':>18}"
            f"{'|r| max':>9}{'fit s':>8}")
    lines = [head]
    for r in rows:
        def cell(side, r=r):
            star = "*" if r[f"hit_{side}"] else " "
            lat = r[f"lat_{side}"]
            lat_s = f" [{lat:+.2f}]" if np.isfinite(lat) else ""
            return f"{r[side]:6.1f}{star}{lat_s}"
        rm = f"{r['rmax']:.2f}" if np.isfinite(r["rmax"]) else "-"
        lines.append(f"{r['data']:<11}{r['method']:<28}{cell('L'):>18}{cell('R'):>18}"
                     f"{rm:>9}{r['fit_s']:8.1f}")
    return "\n".join(lines)


def main(argv=None) -> list[dict]:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=("motor", "sample"), default=None)
    parser.add_argument("--robustness", action="store_true",
                        help="motor EEG only: hits across n_sources and with a repetition left out")
    parser.add_argument("--head-model", choices=HEAD_MODELS, default="sphere",
                        help="head model of --robustness (default: the tutorial's sphere)")
    args = parser.parse_args(argv)
    if not DATA.is_dir():
        print(f"{DATA} not found: nothing to benchmark (the real data live beside the project).")
        return []
    if args.robustness:
        if MOTOR.is_dir():
            run_motor_robustness(head_model=args.head_model)
        else:
            print(f"{MOTOR} not found: nothing to do")
        return []
    rows = []
    if args.only in (None, "motor"):
        if MOTOR.is_dir():
            print("motor EEG (12 runs)")
            rows += run_motor()
        else:
            print(f"{MOTOR} not found: motor EEG skipped")
    if args.only in (None, "sample"):
        if (PYTEST / "test-ave.fif.gz").is_file() and (TESTING / "subjects" / "sample").is_dir():
            print("sample MEG (4 evoked conditions)")
            rows += run_sample()
        else:
            print("MNE sample data not found: sample MEG skipped")
    print()
    print(_table(rows))
    return rows


if __name__ == "__main__":
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    main()
