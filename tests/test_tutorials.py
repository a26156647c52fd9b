"""Run every tutorial script in its quick mode so that none can rot.

Each script runs in a fresh interpreter (as a user would run it) with
``CRL_NEURO_TUTORIAL_QUICK=1`` and the non-interactive Agg backend (about a minute in
all, so they run by default and in CI). Headless, each saves its figures to
``./crl_neuro_figures`` (:func:`crl_neuro.viz.show_or_save`).
"""

import os
import subprocess
import sys
from pathlib import Path

import pytest

TUTORIALS = sorted((Path(__file__).resolve().parents[1] / "tutorials").glob("*.py"))


@pytest.mark.parametrize("script", TUTORIALS, ids=[p.name for p in TUTORIALS])
def test_tutorial_runs(script, tmp_path):
    env = dict(os.environ, CRL_NEURO_TUTORIAL_QUICK="1", MPLBACKEND="Agg")
    env.pop("CRL_NEURO_FIGURES_DIR", None)
    proc = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env,
        capture_output=True, text=True, timeout=900,
    )
    assert proc.returncode == 0, f"{script.name} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    figures = sorted((tmp_path / "crl_neuro_figures").glob(f"{script.stem}_*.png"))
    # Every tutorial draws figures; the sample-MEG one only when its data are on disk.
    assert figures or "nothing to show" in proc.stdout, f"{script.name} saved no figure:\n{proc.stdout[-2000:]}"
