"""Benchmark: does ``SessionCRL.bootstrap`` tell reliable sources from unreliable ones?

On draws of the randomised M/EEG family (:func:`crl_neuro.datasets.draw_meeg_problem`,
sources off the scan grid, perturbed head model), SessionCRL is fitted twice with its
defaults: with the true number of sources ``K`` and with ``K + 2`` (a user who asks
for too many). ``bootstrap(n_boot=30)`` then gives every estimated source a
``stability`` (share of block-bootstrap refits in which it reappears) and a
``radius95_mm``. Scored against the truth:

- ``K`` sources: Spearman correlation of stability (and of radius95) with the source's
  localisation error (distance to its Hungarian-matched true source), and the mean
  error of sources with stability >= 0.9 vs < 0.9;
- ``K + 2`` sources: the two surplus sources are the estimated ones left unmatched
  by a Hungarian matching on distance to the true sources; AUC of ``1 - stability``
  for telling them from the matched ones, and how many of each fall below 0.5.

Measured (2026-12-06, CPU, 1 thread, shared with two other jobs;
``python benchmarks/bench_meeg_bootstrap.py``, 879 s)::

    K sources (111 sources, 24 draws): Spearman(stability, error) -0.21, Spearman(radius95, error) +0.16
      stability >= 0.9: 109 sources, error mean 10.0 mm (worst 37.4); < 0.9: 2 sources, error mean 12.4 mm (worst 14.1)
    K + 2 sources: AUC(surplus vs matched, 1 - stability) 0.96; stability < 0.5: 37/48 surplus, 3/111 matched
      stability mean: surplus 0.24, matched 0.92
    bootstrap time per fit: mean 16.4 s

What it shows: stability tells sources the data support from surplus ones (AUC
0.96), so it helps choose ``n_sources``. It does not flag mislocalised sources:
with the right ``K`` nearly every source is stable, including those 2-4 cm off,
because their error comes from the head-model mismatch (the same in every
replicate), not from sampling.

Usage::

    python benchmarks/bench_meeg_bootstrap.py              # 24 draws, about 10 minutes
    python benchmarks/bench_meeg_bootstrap.py --draws 4
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import pandas as pd
from scipy import stats
from scipy.optimize import linear_sum_assignment


def run_draw(seed: int, n_boot: int) -> list[dict]:
    from crl_neuro.datasets import draw_meeg_problem, simulate_meeg_sessions
    from crl_neuro.meeg import SessionCRL

    kw = draw_meeg_problem(seed)
    sim = simulate_meeg_sessions(**kw)
    k = kw["n_sources"]
    rows = []
    for extra in (0, 2):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            est = SessionCRL(k + extra, noise_cov=sim.noise_cov, random_state=0)
            est.fit(sim.raws, forward=sim.forward)
            t0 = time.perf_counter()
            conf = est.bootstrap(sim.raws, sim.forward, n_boot=n_boot)
            boot_s = time.perf_counter() - t0
        d = np.linalg.norm(est.source_pos_[:, None] - sim.truth.pos[None], axis=2) * 1e3
        est_i, true_i = linear_sum_assignment(d)
        err = np.full(k + extra, np.nan)
        err[est_i] = d[est_i, true_i]
        for j in range(k + extra):
            rows.append(dict(seed=seed, k=k, extra=extra, source=j, err_mm=err[j],
                             surplus=bool(np.isnan(err[j])), stability=conf.stability.iloc[j],
                             radius95_mm=conf.radius95_mm.iloc[j], boot_s=boot_s))
    return rows


def summarise(df: pd.DataFrame) -> str:
    out = []
    a = df[df.extra == 0]
    rho_s = stats.spearmanr(a.stability, a.err_mm).statistic
    rho_r = stats.spearmanr(a.radius95_mm.fillna(np.inf), a.err_mm).statistic
    hi, lo = a[a.stability >= 0.9], a[a.stability < 0.9]
    out.append(f"K sources ({len(a)} sources, {a.seed.nunique()} draws): Spearman(stability, error) "
               f"{rho_s:+.2f}, Spearman(radius95, error) {rho_r:+.2f}")
    out.append(f"  stability >= 0.9: {len(hi)} sources, error mean {hi.err_mm.mean():.1f} mm "
               f"(worst {hi.err_mm.max():.1f}); < 0.9: {len(lo)} sources, error mean "
               f"{lo.err_mm.mean():.1f} mm (worst {lo.err_mm.max():.1f})")
    b = df[df.extra == 2]
    sur, real = b[b.surplus], b[~b.surplus]
    auc = stats.mannwhitneyu(1 - sur.stability, 1 - real.stability).statistic / (len(sur) * len(real))
    out.append(f"K + 2 sources: AUC(surplus vs matched, 1 - stability) {auc:.2f}; stability < 0.5: "
               f"{int((sur.stability < 0.5).sum())}/{len(sur)} surplus, "
               f"{int((real.stability < 0.5).sum())}/{len(real)} matched")
    out.append(f"  stability mean: surplus {sur.stability.mean():.2f}, matched {real.stability.mean():.2f}")
    out.append(f"bootstrap time per fit: mean {df.groupby(['seed', 'extra']).boot_s.first().mean():.1f} s")
    return "\n".join(out)


def main(argv=None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--draws", type=int, default=24)
    parser.add_argument("--first-seed", type=int, default=2000)
    parser.add_argument("--n-boot", type=int, default=30)
    parser.add_argument("--out", default=None, help="per-source CSV")
    args = parser.parse_args(argv)
    import mne

    mne.set_log_level("ERROR")
    t0 = time.perf_counter()
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.draws):
        rows += run_draw(seed, args.n_boot)
        print(f"draw {seed} done ({time.perf_counter() - t0:.0f} s)", flush=True)
    df = pd.DataFrame(rows)
    if args.out:
        df.to_csv(args.out, index=False)
    print(summarise(df))
    print(f"{args.draws} draws, seeds {args.first_seed}-{args.first_seed + args.draws - 1}, "
          f"n_boot {args.n_boot}; total {time.perf_counter() - t0:.0f} s")
    return df


if __name__ == "__main__":
    main()
