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
    proc = subprocess.run([sys.executable, "-c", code], check=False, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_module_help_runs():
    proc = subprocess.run([sys.executable, "-m", "crl_neuro.cli", "--help"], check=False, capture_output=True, text=True)
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


# ----------------------------------------------------------------------------- user mistakes
def _one_line_error(capsys, *fragments):
    """stderr holds exactly one line, an error naming ``fragments``, and no traceback."""
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "error:" in lines[0] and "Traceback" not in err, err
    for fragment in fragments:
        assert fragment in lines[0], err
    return lines[0]


@pytest.fixture(scope="module")
def saved_model(tmp_path_factory):
    """One small fitted estimator saved as .crl (a few seconds)."""
    import numpy as np

    from crl_neuro.core.multidist import MultiDistributionCRL

    rng = np.random.default_rng(0)
    X = rng.standard_normal((300, 4))
    est = MultiDistributionCRL(n_latents=2, random_state=0).fit(X, np.repeat([0, 1, 2], 100))
    return est.save(tmp_path_factory.mktemp("model") / "model.crl")


@pytest.mark.parametrize(
    "argv, fragments",
    [
        (["advise", "--iid", "maybe"], ["--iid", "invalid choice"]),
        (["demo", "--seed", "x"], ["--seed", "must be an integer"]),
        (["demo", "--seed", "-1"], ["--seed", "must be in [0, 2**32)"]),
        (["nosuchcommand"], ["invalid choice"]),
        (["report"], ["estimator"]),
        (["info", "--bogus"], ["unrecognized arguments: --bogus"]),
    ],
)
def test_bad_arguments_one_line_exit_2(capsys, argv, fragments):
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    _one_line_error(capsys, *fragments)


def test_report_missing_file(tmp_path, capsys):
    assert main(["report", str(tmp_path / "nope.crl")]) == 2
    _one_line_error(capsys, "crl-neuro report: error:", "no such file", "nope.crl")


def test_report_empty_folder(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("not a model")
    assert main(["report", str(tmp_path)]) == 2
    _one_line_error(capsys, "has no .crl files")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing written


def test_report_not_a_crl_file(tmp_path, capsys):
    f = tmp_path / "data.csv"
    f.write_text("a,b\n1,2\n")
    assert main(["report", str(f)]) == 2
    _one_line_error(capsys, "is not a .crl file")


@pytest.mark.parametrize("damage", ["text", "truncated", "no_meta", "bad_json", "no_arrays", "bad_class"])
def test_report_corrupted_model(tmp_path, capsys, saved_model, damage):
    import zipfile

    bad = tmp_path / "bad.crl"
    if damage == "text":
        bad.write_text("hello")
    elif damage == "truncated":
        bad.write_bytes(saved_model.read_bytes()[:200])
    else:
        with zipfile.ZipFile(saved_model) as src, zipfile.ZipFile(bad, "w") as dst:
            for item in src.infolist():
                data = src.read(item)
                if item.filename == "meta.json":
                    if damage == "no_meta":
                        continue
                    if damage == "bad_json":
                        data = data[: len(data) // 2]
                    if damage == "bad_class":
                        data = data.replace(b"MultiDistributionCRL", b"os.system")
                if item.filename == "arrays.npz" and damage == "no_arrays":
                    continue
                dst.writestr(item, data)
    assert main(["report", str(bad)]) == 2
    _one_line_error(capsys, "cannot read", "bad.crl", "saved crl_neuro estimator")
    assert not (tmp_path / "bad_report.html").exists()


def test_report_corrupted_model_in_folder(tmp_path, capsys, saved_model):
    import shutil

    shutil.copy(saved_model, tmp_path / "s01.crl")
    (tmp_path / "s02.crl").write_bytes(b"PK\x03\x04 not really")
    assert main(["report", str(tmp_path)]) == 2
    _one_line_error(capsys, "s02.crl")


def test_report_bad_output_and_truth(tmp_path, capsys, saved_model):
    model = str(saved_model)
    assert main(["report", model, "-o", str(tmp_path / "r.txt")]) == 2
    _one_line_error(capsys, "--output must end with .html")
    assert main(["report", model, "-o", str(tmp_path / "missing" / "r.html")]) == 2
    _one_line_error(capsys, "--output", "does not exist")
    (tmp_path / "dir.html").mkdir()
    assert main(["report", model, "-o", str(tmp_path / "dir.html")]) == 2
    _one_line_error(capsys, "--output", "is a folder")
    assert main(["report", model, "--truth", str(tmp_path / "none.npz")]) == 2
    _one_line_error(capsys, "--truth", "no such file")
    (tmp_path / "t.csv").write_text("x")
    assert main(["report", model, "--truth", str(tmp_path / "t.csv")]) == 2
    _one_line_error(capsys, "--truth must be an .npz")
    (tmp_path / "t.npz").write_bytes(b"garbage")
    assert main(["report", model, "--truth", str(tmp_path / "t.npz")]) == 2
    _one_line_error(capsys, "--truth: cannot read")


def test_report_works(tmp_path, capsys, saved_model):
    out = tmp_path / "ok.html"
    assert main(["report", str(saved_model), "-o", str(out), "--no-advisor"]) == 0
    assert "report written to" in capsys.readouterr().out and out.stat().st_size > 0


def test_demo_out_is_a_file(tmp_path, capsys, monkeypatch):
    from crl_neuro import cli

    # the check must come before any simulation: the demo itself must never start
    monkeypatch.setattr(cli, "run_demo", lambda **kw: pytest.fail("demo started"))
    f = tmp_path / "results.txt"
    f.write_text("keep me")
    assert main(["demo", "--quick", "--out", str(f)]) == 2
    _one_line_error(capsys, "crl-neuro demo: error: --out", "exists and is not a folder")
    assert main(["demo", "--quick", "--out", str(f / "sub")]) == 2
    _one_line_error(capsys, "--out: cannot create the folder")
    assert f.read_text() == "keep me"
    with pytest.raises(FileExistsError, match="out"):
        cli._make_out_dir(f)


def test_internal_errors_are_not_hidden(monkeypatch):
    """A bug inside a command keeps its traceback (it is not a user mistake)."""
    from crl_neuro import cli

    def broken(args):
        raise ZeroDivisionError("bug")

    monkeypatch.setattr(cli, "cmd_info", broken)
    with pytest.raises(ZeroDivisionError):
        main(["info"])


def test_console_script_one_line(tmp_path):
    """The real command (a fresh process): one line on stderr, status 2."""
    proc = subprocess.run(
        [sys.executable, "-m", "crl_neuro.cli", "report", str(tmp_path / "missing.crl")],
        check=False, capture_output=True, text=True,
    )
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1 and "Traceback" not in proc.stderr
