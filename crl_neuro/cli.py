"""The ``crl-neuro`` command: ``info``, ``advise``, ``demo`` and ``report``.

Heavy libraries (mne, torch, matplotlib) are imported inside the commands so that
``import crl_neuro.cli`` and ``crl-neuro --help`` stay fast.

A user mistake (bad argument, missing or unreadable input file, output that cannot be
written) is reported as one line on stderr with exit status 2, never as a traceback. Inputs
are checked before any work starts; only errors of those checks are turned into that
line, so a bug inside crl_neuro still shows its traceback.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["CLIError", "build_parser", "main", "run_demo"]


class CLIError(Exception):
    """A mistake in what the user asked for; ``main`` prints it as one line and returns 2."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a bad argument gives one line on stderr (exit status 2), not the usage."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _seed(value: str) -> int:
    """``--seed``: a non-negative integer (numpy refuses negative seeds deep inside)."""
    try:
        seed = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {value!r}") from None
    if not 0 <= seed < 2**32:
        raise argparse.ArgumentTypeError(f"must be in [0, 2**32), got {seed}")
    return seed


_DEPENDENCIES = (
    "mne",
    "nilearn",
    "nibabel",
    "numpy",
    "scipy",
    "scikit-learn",
    "causal-learn",
    "pandas",
    "matplotlib",
    "joblib",
    "pooch",
    "pyyaml",
    "tqdm",
    "networkx",
)
_OPTIONAL = ("torch", "gymnasium", "python-picard", "dask", "distributed", "mne-bids", "pytest")
_TRI = {"yes": True, "no": False, "unknown": None}
# The traits of the advisor exposed as --options (name -> help).
_ADVISE_OPTIONS = (
    ("iid", "samples are i.i.d. draws from one distribution"),
    ("multi-domain", "several distributions (sessions, runs, conditions) with known labels"),
    ("temporal", "time series whose time-delayed influences are to be used"),
    ("linear", "linear causal relations / linear mixing"),
    ("parametric", "a restricted functional model may be assumed"),
    ("non-gaussian", "non-Gaussian noise"),
    ("latent-confounders", "hidden common causes of the observed variables"),
    ("latent-variables", "the causal variables are latent (seen through sensors/items/voxels)"),
    ("auxiliary", "an auxiliary variable modulating the latents is observed"),
)
_ADVISE_FLAGS = (
    ("actions", "actions and rewards are observed (reinforcement learning)"),
    ("multimodal", "several modalities measure related latents"),
    ("micro-macro", "abstract micro variables (voxels) into macro variables (ROIs)"),
)
# Setting of the demo for the advisor: sessions are distributions, sources are latent,
# the leadfield mixing is linear, no time-delayed model is used.
DEMO_TRAITS = {
    "iid": False, "multi_domain": True, "temporal": False, "linear": True, "latent_confounders": False, "latent_variables": True
}


# --------------------------------------------------------------------------- info
def _version(dist: str) -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return None


def cmd_info(args: argparse.Namespace) -> int:
    """Print versions, the torch device and data/config locations."""
    import platform

    import crl_neuro
    from crl_neuro.datasets.fetch import get_data_home

    print(f"crl_neuro   {crl_neuro.__version__}")
    print(f"python      {platform.python_version()} ({platform.platform()})")
    print("\nDependencies:")
    for dist in _DEPENDENCIES:
        print(f"  {dist:<16}{_version(dist) or 'NOT INSTALLED'}")
    print("Optional:")
    for dist in _OPTIONAL:
        print(f"  {dist:<16}{_version(dist) or '-'}")

    print("\nTorch:")
    try:
        import torch

        cuda = torch.cuda.is_available()
        print(f"  version         {torch.__version__}")
        print(f"  CUDA available  {cuda}")
        if cuda:
            print(f"  CUDA devices    {', '.join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))}")
        print(f"  default device  {'cuda' if cuda else 'cpu'} (crl_neuro estimators use device='cpu' unless told)")
        print(f"  threads         {torch.get_num_threads()}")
    except Exception as err:  # noqa: BLE001 - torch missing or broken: info reports it, not fails
        print(f"  unavailable ({err})")

    print("\nData and configuration:")
    print(f"  crl_neuro data home   {get_data_home()}  (set CRL_NEURO_DATA to change)")
    try:
        import mne

        print(f"  MNE config file       {mne.get_config_path()}")
        cfg = mne.get_config()
        for key in ("MNE_DATA", "MNE_DATASETS_SAMPLE_PATH", "SUBJECTS_DIR", "MNE_USE_CUDA"):
            if key in cfg:
                print(f"  {key:<22}{cfg[key]}")
    except Exception as err:  # noqa: BLE001 - info reports a broken install, not fails
        print(f"  MNE config unavailable ({err})")
    try:
        from nilearn.datasets import get_data_dirs

        print(f"  Nilearn data dirs     {', '.join(get_data_dirs())}")
    except Exception as err:  # noqa: BLE001 - info reports a broken install, not fails
        print(f"  Nilearn data dirs unavailable ({err})")
    return 0


# --------------------------------------------------------------------------- advise
def cmd_advise(args: argparse.Namespace) -> int:
    """Print the identifiability advisor's table for the given traits."""
    from crl_neuro.core.advisor import advise

    kwargs: dict[str, Any] = {name.replace("-", "_"): _TRI[getattr(args, name.replace("-", "_"))] for name, _ in _ADVISE_OPTIONS}
    for name, _ in _ADVISE_FLAGS:
        kwargs[name.replace("-", "_")] = bool(getattr(args, name.replace("-", "_")))
    try:
        result = advise(**kwargs)
    except ValueError as err:  # contradictory traits: the user's choice, reported as such
        raise CLIError(str(err)) from err
    if args.format == "csv":
        print(result.to_frame().to_csv(), end="")
    else:
        print(result)
    return 0


# --------------------------------------------------------------------------- demo
def _matched_network(est_adj: Any, matching: Any) -> Any:
    """Reorder an estimated (k, k) adjacency to the true sources' order."""
    import numpy as np

    k_true = len(matching)
    out = np.zeros((k_true, k_true), dtype=bool)
    for i in range(k_true):
        for j in range(k_true):
            if matching[i] >= 0 and matching[j] >= 0:
                out[i, j] = bool(est_adj[matching[i], matching[j]])
    return out


def _truth_figure(truth: Any, est_net: Any, est_changing: Any, est_pos: Any, matching: Any):
    """Figure: true vs estimated network and changing edges, and source positions."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, axes = plt.subplots(1, 5, figsize=(17, 3.6), layout="constrained")
    k = truth.markov_network.shape[0]
    # True sources by index; the estimated sources (CRL000...) are put in the order of the
    # true sources they match (Hungarian on time courses), so one numbering serves both.
    names = [f"true {i}" for i in range(k)]
    panels = (
        (truth.markov_network, "true Markov network"),
        (est_net, "estimated, matched to true"),
        (truth.changing_edges, "true changing edges"),
        (est_changing, "estimated changing edges"),
    )
    for ax, (adj, title) in zip(axes[:4], panels):
        ax.imshow(np.asarray(adj, dtype=float), cmap="Greys", vmin=0, vmax=1)
        ax.set(title=title, xticks=range(k), yticks=range(k), xticklabels=names, yticklabels=names)
    ax = axes[4]
    tp = np.asarray(truth.pos) * 1e3
    ax.scatter(tp[:, 0], tp[:, 1], marker="o", s=60, facecolors="none", edgecolors="k", label="true")
    if est_pos is not None:
        ep = np.asarray(est_pos) * 1e3
        ax.scatter(ep[:, 0], ep[:, 1], marker="x", s=50, c="tab:red", label="estimated")
        for i, j in enumerate(matching):
            if j >= 0:
                ax.plot([tp[i, 0], ep[j, 0]], [tp[i, 1], ep[j, 1]], c="tab:red", lw=0.8)
    for i in range(k):
        ax.annotate(names[i], tp[i, :2], textcoords="offset points", xytext=(4, 4), fontsize=8)
    ax.set(title="source positions (top view)", xlabel="x (mm)", ylabel="y (mm)", aspect="equal")
    ax.legend(fontsize=8, loc="best")
    fig.suptitle("black cell: edge between the two sources (white: none); red lines join each "
                 "true source to its matched estimate", fontsize=9)
    return fig


def _metrics_table(metrics: dict[str, float], baseline: dict[str, float]) -> str:
    lines = [f"{'metric':<26}{'SessionCRL':>12}{'FastICA+scan':>14}", "-" * 52]
    for key, value in metrics.items():
        other = baseline.get(key)
        other_txt = f"{other:14.3f}" if other is not None else f"{'-':>14}"
        lines.append(f"{key:<26}{value:12.3f}{other_txt}")
    return "\n".join(lines)


def _ica_baseline(sim: Any, n_sources: int, seed: int) -> dict[str, float]:
    """FastICA on the pooled sessions + the same leadfield scan (the usual pipeline).

    Only time courses and locations are scored: ICA gives no causal network.
    """
    import time
    import warnings

    import mne
    import numpy as np

    from crl_neuro.core.metrics import localization_error, mcc
    from crl_neuro.meeg.localization import scan_leadfield

    t0 = time.perf_counter()
    pooled = mne.concatenate_raws([raw.copy() for raw in sim.raws], verbose=False)
    ica = mne.preprocessing.ICA(
        n_components=n_sources, noise_cov=sim.noise_cov, method="fastica", random_state=seed,
        max_iter="auto", verbose=False,
    )
    with warnings.catch_warnings():
        # simulated data have no slow drifts, so MNE's high-pass advice does not apply
        warnings.filterwarnings("ignore", message=".*has not been high-pass filtered.*")
        ica.fit(pooled, verbose=False)
    scan = scan_leadfield(sim.forward, ica.get_components(), info=sim.raws[0].info, noise_cov=sim.noise_cov)
    fit_time = time.perf_counter() - t0
    true_src = np.concatenate([np.asarray(s) for s in sim.truth.sources], axis=1).T
    est_src = np.concatenate([ica.get_sources(raw).get_data() for raw in sim.raws], axis=1).T
    return {
        "localization_error_mm": float(localization_error(sim.truth.pos, scan.pos)),
        "mcc": float(mcc(true_src, est_src)),
        "fit_time_s": float(fit_time),
    }


def run_demo(out: str | Path = "crl_neuro_demo", quick: bool = False, seed: int = 0, verbose: bool = True) -> dict:
    """Run the main demo: simulate M/EEG sessions, fit SessionCRL, compare with the truth.

    Parameters
    ----------
    out : path-like
        Output directory (created) for the PNG figures, ``report.html`` and ``metrics.json``.
    quick : bool
        Smaller, shorter problem (fewer sessions, shorter recordings) for a fast check.
    seed : int
        Seeds the simulation and the estimator.
    verbose : bool
        Print progress and results.

    Returns
    -------
    metrics : dict
        SessionCRL's ``localization_error_mm``, ``mcc``, ``network_f1``, ``network_shd``,
        ``changing_edges_f1``, ``fit_time_s``; ``"baseline_fastica"`` (FastICA on the pooled
        sessions + the same leadfield scan: localization error, MCC, fit time); and the
        output file paths under ``"files"``.
    """
    import json
    import time

    import matplotlib

    matplotlib.use("Agg")  # the demo writes files; never needs a display
    import matplotlib.pyplot as plt
    import mne
    import numpy as np

    from crl_neuro.core.advisor import advise
    from crl_neuro.core.metrics import graph_scores, localization_error, mcc
    from crl_neuro.datasets import simulate_meeg_sessions
    from crl_neuro.meeg import SessionCRL

    def say(msg: str = "") -> None:
        if verbose:
            print(msg, flush=True)

    out = _make_out_dir(out)
    sim_params = {"n_sources": 4, "n_sessions": 4, "duration": 60.0}
    if quick:
        sim_params = {"n_sources": 3, "n_sessions": 3, "duration": 30.0}

    verdict = advise(**DEMO_TRAITS)
    best = verdict.best
    say("crl_neuro demo: causally linked brain sources across changing EEG sessions")
    say(f"Advisor ({', '.join(f'{k}={v}' for k, v in DEMO_TRAITS.items())}):")
    say(f"  identifiable: {best['identifiable']}")
    say(f"  reference:    {best['reference']}")
    say(f"  use:          {best['estimator']}")

    say(
        f"\nSimulating {sim_params['n_sessions']} EEG sessions, {sim_params['n_sources']} sources, "
        f"{sim_params['duration']:.0f} s each (seed {seed}) ..."
    )
    sim = simulate_meeg_sessions(**sim_params, random_state=seed)
    truth = sim.truth
    say(f"  {len(sim.raws)} x {sim.raws[0]}")

    say("Fitting SessionCRL ...")
    t0 = time.perf_counter()
    est = SessionCRL(n_sources=sim_params["n_sources"], noise_cov=sim.noise_cov, random_state=seed)
    est.fit(sim.raws, forward=sim.forward)
    fit_time = time.perf_counter() - t0

    true_src = np.concatenate([np.asarray(s) for s in truth.sources], axis=1).T
    est_src = np.concatenate([est.get_sources(raw).get_data() for raw in sim.raws], axis=1).T
    score, matching, per_latent = mcc(true_src, est_src, return_details=True)
    loc_err, _, per_source_mm = localization_error(truth.pos, est.source_pos_, return_details=True)
    est_net = _matched_network(est.markov_network_, matching)
    est_changing = _matched_network(est.changing_edges_, matching)
    net = graph_scores(truth.markov_network, est_net)
    changing = graph_scores(truth.changing_edges, est_changing)
    metrics = {
        "localization_error_mm": float(loc_err),
        "mcc": float(score),
        "network_f1": float(net["f1"]),
        "network_shd": float(net["shd"]),
        "changing_edges_f1": float(changing["f1"]),
        "fit_time_s": float(fit_time),
    }
    n_true_changing = int(np.triu(truth.changing_edges, 1).sum())
    n_est_changing = int(np.triu(est_changing, 1).sum())
    say("Baseline: FastICA on the pooled sessions + the same leadfield scan ...")
    baseline = _ica_baseline(sim, sim_params["n_sources"], seed)
    say("\nSessionCRL against the truth (FastICA+scan for reference; ICA gives no network):")
    say(_metrics_table(metrics, baseline))
    say(
        f"  network edges: true {int(np.triu(truth.markov_network, 1).sum())}, "
        f"estimated {int(np.triu(est_net, 1).sum())}; changing edges: true {n_true_changing}, "
        f"estimated {n_est_changing}"
    )
    say(f"  per-source localization error (mm): {np.round(per_source_mm, 1).tolist()}")
    say(f"  per-source |corr| with the truth:   {np.round(per_latent, 3).tolist()}")

    files = {}
    figures = {
        "components": est.plot_components(),
        "network": est.plot_network(),
        "truth_vs_estimate": _truth_figure(truth, est_net, est_changing, est.source_pos_, matching),
    }
    for name, fig in figures.items():
        path = out / f"demo_{name}.png"
        fig.savefig(path, dpi=100)
        files[name] = str(path)

    report = mne.Report(title="crl_neuro demo: SessionCRL on simulated EEG sessions", verbose=False)
    report.add_html(verdict.to_frame().head(1).to_html(index=False), title="Identifiability advisor")
    rows = "".join(
        f"<tr><td>{k}</td><td>{v:.3f}</td><td>{baseline[k]:.3f}</td></tr>" if k in baseline
        else f"<tr><td>{k}</td><td>{v:.3f}</td><td>-</td></tr>"
        for k, v in metrics.items()
    )
    report.add_html(
        f"<p>{sim_params['n_sessions']} sessions, {sim_params['n_sources']} sources, "
        f"{sim_params['duration']:.0f} s each, seed {seed}. Baseline: FastICA on the pooled "
        "sessions with the same leadfield scan (no causal network).</p>"
        f"<table><tr><th>metric</th><th>SessionCRL</th><th>FastICA+scan</th></tr>{rows}</table>",
        title="Recovery against the ground truth",
    )
    captions = {
        "components": "Sensor patterns of the recovered sources",
        "network": "Recovered Markov network and changing edges",
        "truth_vs_estimate": "Ground truth vs estimate (sources matched by time-course correlation)",
    }
    for name, fig in figures.items():
        report.add_figure(fig, title=captions[name])
        plt.close(fig)
    report_path = out / "report.html"
    report.save(report_path, open_browser=False, overwrite=True, verbose=False)
    files["report"] = str(report_path)
    metrics_path = out / "metrics.json"
    metrics_path.write_text(
        json.dumps({**metrics, "baseline_fastica": baseline, "seed": seed, "quick": quick, **sim_params}, indent=2)
    )
    files["metrics"] = str(metrics_path)
    say(f"\nWrote {', '.join(Path(p).name for p in files.values())} to {out}")
    return {**metrics, "baseline_fastica": baseline, "files": files}


def _make_out_dir(out: str | Path) -> Path:
    """Create the output folder ``out`` (parents included) or say why it cannot be one."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"out: {str(out)!r} exists and is not a folder")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as err:  # a parent is a file, no permission, read-only disk ...
        raise OSError(f"out: cannot create the folder {str(out)!r} ({err.strerror or err})") from err
    return out


def cmd_demo(args: argparse.Namespace) -> int:
    """Run :func:`run_demo` from the command line."""
    try:
        # checked here, before minutes of simulation and fitting
        _make_out_dir(args.out)
    except OSError as err:
        raise CLIError(str(err).replace("out:", "--out:", 1)) from err
    run_demo(out=args.out, quick=args.quick, seed=args.seed)
    return 0


# --------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser of ``crl-neuro``."""
    from crl_neuro import __version__

    parser = _Parser(
        prog="crl-neuro",
        description="Causal representation learning for neuroimaging (MNE / Nilearn plugin).",
    )
    parser.add_argument("--version", action="version", version=f"crl_neuro {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True

    p_info = sub.add_parser("info", help="versions, torch device, data and config locations")
    p_info.set_defaults(func=cmd_info)

    p_adv = sub.add_parser(
        "advise",
        help="what CRL theory says can be identified for given data traits",
        description="Identifiability advisor. Each trait is yes, no or unknown (default).",
    )
    for name, help_text in _ADVISE_OPTIONS:
        p_adv.add_argument(f"--{name}", choices=tuple(_TRI), default="unknown", help=help_text)
    for name, help_text in _ADVISE_FLAGS:
        p_adv.add_argument(f"--{name}", action="store_true", help=help_text)
    p_adv.add_argument("--format", choices=("table", "csv"), default="table", help="output format")
    p_adv.set_defaults(func=cmd_advise)

    p_demo = sub.add_parser(
        "demo",
        help="simulate EEG sessions, fit SessionCRL, compare with the truth, write a report",
    )
    p_demo.add_argument("--out", default="crl_neuro_demo", help="output directory (default: %(default)s)")
    p_demo.add_argument("--quick", action="store_true", help="smaller problem for a fast check")
    p_demo.add_argument("--seed", type=_seed, default=0, help="random seed (default: %(default)s)")
    p_demo.set_defaults(func=cmd_demo)

    p_rep = sub.add_parser(
        "report", help="HTML report of a saved estimator (.crl) or a directory of them (group)"
    )
    p_rep.add_argument("estimator", help=".crl file from est.save(), or a directory of .crl files")
    p_rep.add_argument("-o", "--output", default=None, help="HTML file (default: <estimator>_report.html)")
    p_rep.add_argument("--truth", default=None, help=".npz of ground-truth arrays (pos, patterns, ...)")
    p_rep.add_argument("--title", default=None, help="report title")
    p_rep.add_argument("--no-advisor", action="store_true", help="omit the identifiability advisor section")
    p_rep.set_defaults(func=cmd_report)
    return parser


def _load_model(path: Path) -> Any:
    """Load one ``.crl`` file; an unreadable or corrupt file is a :class:`CLIError`."""
    import pickle
    import zipfile
    import zlib

    from crl_neuro.core.base import load

    try:
        return load(path)
    # What crl_neuro.load raises on a damaged or foreign file (bad zip, JSON, npz, torch
    # weights or missing parts); caught only around loading the user's file.
    except (OSError, ValueError, KeyError, TypeError, EOFError, zipfile.BadZipFile, zlib.error,
            pickle.UnpicklingError, RuntimeError) as err:
        raise CLIError(
            f"estimator: cannot read {str(path)!r} as a saved crl_neuro estimator "
            f"({type(err).__name__}: {err})"
        ) from err


def _check_report_args(args: argparse.Namespace) -> tuple[Any, Path, Any]:
    """Check and load the inputs of ``report``; return (estimator(s), output, truth)."""
    import zipfile

    import numpy as np

    src = Path(args.estimator)
    if not src.exists():
        raise CLIError(f"estimator: no such file or folder {str(src)!r}")
    if src.is_dir():
        files = sorted(p for p in src.glob("*.crl") if p.is_file())
        if not files:
            raise CLIError(f"estimator: the folder {str(src)!r} has no .crl files")
    elif src.suffix != ".crl":
        raise CLIError(f"estimator: {str(src)!r} is not a .crl file (write one with est.save('model.crl'))")
    else:
        files = [src]
    out = Path(getattr(args, "output", None) or str(src.with_suffix("")) + "_report.html")
    if out.suffix not in (".html", ".htm"):
        raise CLIError(f"--output must end with .html, got {str(out)!r}")
    if out.is_dir():
        raise CLIError(f"--output: {str(out)!r} is a folder")
    if not out.parent.is_dir():
        raise CLIError(f"--output: the folder {str(out.parent)!r} does not exist")
    truth = None
    if getattr(args, "truth", None) is not None:
        tpath = Path(args.truth)
        if not tpath.is_file():
            raise CLIError(f"--truth: no such file {str(tpath)!r}")
        if tpath.suffix != ".npz":
            raise CLIError(f"--truth must be an .npz file of arrays, got {str(tpath)!r}")
        try:
            with np.load(tpath, allow_pickle=False) as npz:
                truth = {k: npz[k] for k in npz.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as err:
            raise CLIError(f"--truth: cannot read {str(tpath)!r} ({type(err).__name__}: {err})") from err
    models = {p.stem: _load_model(p) for p in files}
    kinds = sorted({type(m).__name__ for m in models.values()})
    if len(kinds) > 1:
        raise CLIError(f"estimator: the folder {str(src)!r} mixes estimator kinds {kinds}; a group report needs one kind")
    estimator = models if src.is_dir() else models[src.stem]
    return estimator, out, truth


def cmd_report(args: argparse.Namespace) -> int:
    """``crl-neuro report``: write an HTML report of saved estimator(s)."""
    from crl_neuro.report import make_report

    estimator, out, truth = _check_report_args(args)
    path = make_report(estimator, out, truth=truth, title=getattr(args, "title", None),
                       advisor=not getattr(args, "no_advisor", False))
    print(f"report written to {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``crl-neuro`` console script.

    Parameters
    ----------
    argv : sequence of str or None
        Arguments without the program name; ``None`` uses ``sys.argv[1:]``.

    Returns
    -------
    status : int
        Exit status: 0 on success, 2 for a user mistake found by the command (one line on
        stderr).

    Raises
    ------
    SystemExit
        From argparse: status 2 with one line on stderr for a bad argument, 0 after
        ``--help`` or ``--version``.
    """
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CLIError as err:
        print(f"crl-neuro {args.command}: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # Ctrl-C: no traceback, the shell's usual status
        print(f"crl-neuro {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # output piped into e.g. `head`: stop quietly, like other CLIs
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
