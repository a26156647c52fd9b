"""Tests of the crl-neuro command line: info, advise, demo."""

import json
import subprocess
import sys

import pytest

from crl_neuro.cli import build_parser, main


def test_import_is_cheap():
    code = (
        "import sys, crl_neuro.cli; "
        "heavy = [m for m in ('mne', 'torch', 'nilearn', 'matplotlib.pyplot') if m in sys.modules]; "
        "print(heavy); sys.exit(1 if heavy else 0)"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_module_help_runs():
    proc = subprocess.run([sys.executable, "-m", "crl_neuro.cli", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    for cmd in ("info", "advise", "demo"):
        assert cmd in proc.stdout


def test_info(capsys):
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    import crl_neuro

    assert f"crl_neuro   {crl_neuro.__version__}" in out
    for name in ("mne", "nilearn", "torch", "causal-learn", "scikit-learn"):
        assert name in out
    assert "CUDA available" in out
    assert "crl_neuro data home" in out


def test_advise_table(capsys):
    argv = ["advise", "--iid", "no", "--multi-domain", "yes", "--latent-variables", "yes", "--linear", "yes"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.startswith("Identifiability advisor")
    assert "[1] Several distributions; latent variables" in out
    assert "crl_neuro.meeg.SessionCRL" in out
    assert "ICML 2024" in out


def test_advise_csv_and_flags(capsys):
    import io

    import pandas as pd

    assert main(["advise", "--iid", "yes", "--linear", "yes", "--latent-variables", "yes", "--format", "csv"]) == 0
    df = pd.read_csv(io.StringIO(capsys.readouterr().out), index_col=0)
    assert df.index[0] == "rlcd"
    assert main(["advise", "--temporal", "yes", "--latent-variables", "yes", "--actions", "--format", "csv"]) == 0
    df = pd.read_csv(io.StringIO(capsys.readouterr().out), index_col=0)
    assert df.index[0] == "ifactor"


def test_advise_contradiction_exits_2(capsys):
    assert main(["advise", "--iid", "yes", "--temporal", "yes"]) == 2
    assert "iid=True contradicts temporal" in capsys.readouterr().err


def test_bad_arguments_are_rejected(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["advise", "--iid", "maybe"])
    assert exc.value.code == 2
    assert "--iid" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main([])
    with pytest.raises(SystemExit):
        main(["demo", "--seed", "x"])
    args = build_parser().parse_args(["demo"])
    assert (args.out, args.quick, args.seed) == ("crl_neuro_demo", False, 0)


def test_demo_quick_end_to_end(tmp_path, capsys):
    out_dir = tmp_path / "demo"
    assert main(["demo", "--quick", "--out", str(out_dir), "--seed", "0"]) == 0
    text = capsys.readouterr().out
    assert "Advisor" in text and "SessionCRL against the truth" in text and "FastICA+scan" in text
    for name in ("demo_components.png", "demo_network.png", "demo_truth_vs_estimate.png", "report.html", "metrics.json"):
        assert (out_dir / name).stat().st_size > 0, name
    html = (out_dir / "report.html").read_text(encoding="utf-8")
    assert "Identifiability advisor" in html and "Recovery against the ground truth" in html
    metrics = json.loads((out_dir / "metrics.json").read_text())
    for key in ("localization_error_mm", "mcc", "network_f1", "changing_edges_f1", "fit_time_s"):
        assert key in metrics
    # the demo must wire estimator and truth correctly: a mismatched source order or a
    # transposed array would give chance-level numbers
    assert metrics["mcc"] > 0.7
    assert metrics["localization_error_mm"] < 20.0
    assert metrics["network_f1"] >= 0.5
    baseline = metrics["baseline_fastica"]
    assert set(baseline) == {"localization_error_mm", "mcc", "fit_time_s"}
    assert 0.0 <= baseline["mcc"] <= 1.0 and baseline["localization_error_mm"] >= 0.0
