"""Diagnosis (issue 22): nearly collinear latents game the partial-correlation alignment.

``align="pcor"`` (``crl_neuro.multimodal._align.sparsity_alignment``) searches one
invertible map per modality that makes the stacked latents' partial correlations
sparsest. Two nearly collinear latents of one modality make those partial
correlations sparse without being a solution (the pair is explained by itself, the
rest by either). ``max_condition`` makes starts whose aligned latents have, in some
modality, a correlation matrix with a larger condition number ineligible.

Two measurements, both run by this script:

``--truth`` (perfect encoders): on the true latents of family draws 0-19, mixed per
modality (``T_m G_m``, ``G`` from ``default_rng(draw)``, as in
``diag_multimodal_nldep.py``), the search with and without the limit; mean MCC over
modalities per draw.

``--fit CONFIG --draws A-B --out FILE``: ``MultiModalCRL`` with its defaults on family
draws (``bench_multimodal.family_problem``), its alignment step run with
``max_condition=CONFIG`` (``default``: no limit); one JSON line per draw; ``--summarise
FILE...`` prints the paired comparison.

Rules fixed before the fitted runs: a limit becomes the default if, on its decision
draws, mean MCC rises by >= 0.01 and no draw falls by more than 0.05. Limit 100 was
decided on draws 20-39, then limit 1000 (chosen on the truth runs below, where the
truth's own within-modality condition numbers reach 62) on fresh draws 40-59.

Measured (2026-12-06, CPU, one thread per run, two or three runs sharing 2 cores)::

    truth, draws 0-19        mean MCC  worst   draws with an unconstrained solution of cond > 300
    no limit                 0.868     0.706   1, 4, 5, 7, 12, 15 (cond 366 to 1.6e7; truth <= 62)
    max_condition=100        0.883     0.726   worst paired change -0.015 (draw 12)
    max_condition=300        0.881     0.685   -0.021 (draw 4)
    max_condition=1000       0.877     0.706   never worse; changes draws 1, 5, 12

    fitted, MultiModalCRL defaults     mean MCC (no limit -> limit)   paired change
    draws 20-39, limit 100             0.748 -> 0.761                 +0.013, 8 better / 3 worse,
                                                                      draw 21 -0.084: not adopted
    draws 40-59, limit 1000            0.816 -> 0.816                 -0.001, 1 better / 1 worse
                                                                      (53 +0.043, 57 -0.056; 47
                                                                      -0.003): not adopted

So the degenerate (collinear) optimum is real on perfect encoders but rare on the
fitted latents once it is excluded only when gross; a tighter limit helps some draws
and breaks others (the truth's latents of one modality can be strongly correlated).
Not adopted; ``max_condition`` stays an option of the private search, off by default.

Run::

    python benchmarks/diag_multimodal_collinear.py --truth
    python benchmarks/diag_multimodal_collinear.py --fit default --draws 40-59 --out a.jsonl
    python benchmarks/diag_multimodal_collinear.py --fit 1000 --draws 40-59 --out b.jsonl
    python benchmarks/diag_multimodal_collinear.py --summarise a.jsonl b.jsonl
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import time

os.environ.setdefault("OMP_NUM_THREADS", "1")

import numpy as np  # noqa: E402

from crl_neuro.core.metrics import mcc  # noqa: E402
from crl_neuro.multimodal import _align  # noqa: E402

from bench_multimodal import family_problem, parse_draws, run_family_method  # noqa: E402

LIMITS = (None, 100.0, 300.0, 1000.0)


def truth_runs(draws: list[int]) -> None:
    """Search from the mixed truth with each limit; print per-draw and mean MCC."""
    res = {lim: [] for lim in LIMITS}
    for draw in draws:
        _, sim = family_problem(draw)
        T = [sim.latents[m] for m in sim.modalities]
        dims = [t.shape[1] for t in T]
        rng = np.random.default_rng(draw)
        mixed = [t @ rng.normal(size=(k, k)) for t, k in zip(T, dims)]
        Z = np.concatenate(mixed, axis=1)
        line = f"draw {draw:2d}"
        for lim in LIMITS:
            mats, _ = _align.sparsity_alignment(Z, dims, max_condition=lim)
            est = [x @ A.T for x, A in zip(mixed, mats)]
            cond = max(np.linalg.cond(np.corrcoef(e, rowvar=False)) for e in est)
            res[lim].append(np.mean([mcc(t, e) for t, e in zip(T, est)]))
            line += f" | {lim}: MCC {res[lim][-1]:.3f} cond {cond:.0f}"
        print(line, flush=True)
    base = np.array(res[None])
    for lim in LIMITS:
        r = np.array(res[lim])
        print(f"max_condition={lim}: mean {r.mean():.3f} worst {r.min():.3f} "
              f"worst paired change {np.min(r - base):+.3f}")


def fit_runs(config: str, draws: list[int], out: str) -> None:
    """MultiModalCRL defaults, alignment with ``max_condition=config``; JSON lines to ``out``."""
    import torch

    torch.set_num_threads(1)
    if config != "default":
        original = _align.sparsity_alignment
        _align.sparsity_alignment = functools.partial(original, max_condition=float(config))
    with open(out, "a") as f:
        for draw in draws:
            _, sim = family_problem(draw)
            t0 = time.perf_counter()
            r = run_family_method(sim, "crl_neuro", seed=0)
            row = dict(cfg=config, draw=draw, mcc=float(np.mean([v for k, v in r.items() if k.startswith("mcc_m")])),
                       f1=float(r["f1"]), time_s=time.perf_counter() - t0)
            f.write(json.dumps(row) + "\n")
            f.flush()
            print(row, flush=True)


def summarise(files: list[str]) -> None:
    """Paired comparison of the configurations found in ``files`` (first: the reference)."""
    rows = [json.loads(line) for f in files for line in open(f)]
    cfgs = list(dict.fromkeys(r["cfg"] for r in rows))
    by = {(r["cfg"], r["draw"]): r for r in rows}
    draws = sorted({r["draw"] for r in rows if all((c, r["draw"]) in by for c in cfgs)})
    ref = np.array([by[cfgs[0], d]["mcc"] for d in draws])
    for c in cfgs:
        m = np.array([by[c, d]["mcc"] for d in draws])
        f1 = np.mean([by[c, d]["f1"] for d in draws])
        diff = m - ref
        print(f"{c:8s} n={len(draws)} mean MCC {m.mean():.3f} worst {m.min():.3f} F1 {f1:.3f} | vs {cfgs[0]}: "
              f"{diff.mean():+.3f}, worst {diff.min():+.3f}, better {(diff > 0.005).sum()} worse {(diff < -0.005).sum()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--truth", action="store_true")
    parser.add_argument("--fit", type=str, help="'default' or a max_condition value")
    parser.add_argument("--draws", type=str, default="0-19")
    parser.add_argument("--out", type=str)
    parser.add_argument("--summarise", nargs="+")
    args = parser.parse_args()
    if args.truth:
        truth_runs(parse_draws(args.draws))
    if args.fit:
        fit_runs(args.fit, parse_draws(args.draws), args.out)
    if args.summarise:
        summarise(args.summarise)


if __name__ == "__main__":
    main()
