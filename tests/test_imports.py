"""Import hygiene: lazy submodules, light adapters, no heavy optional imports."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest


def _modules_after(code: str) -> dict[str, bool]:
    """Run ``code`` in a fresh interpreter and report which heavy modules it loaded."""
    probe = code + "\nimport json, sys\nprint(json.dumps({m: m in sys.modules for m in ('torch', 'gymnasium')}))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize(
    "module", ["crl_neuro", "crl_neuro.meeg", "crl_neuro.fmri", "crl_neuro.psychometrics", "crl_neuro.group"]
)
def test_import_loads_neither_torch_nor_gymnasium(module):
    assert _modules_after(f"import {module}") == {"torch": False, "gymnasium": False}


def test_submodules_are_reachable_lazily():
    loaded = _modules_after(
        "import crl_neuro\n"
        "assert 'crl_neuro.fmri' not in __import__('sys').modules\n"
        "assert crl_neuro.fmri.CausalROIs.__name__ == 'CausalROIs'\n"
        "assert crl_neuro.meeg.SessionCRL.__name__ == 'SessionCRL'\n"
        "assert crl_neuro.datasets.simulate_fmri_rois.__name__ == 'simulate_fmri_rois'\n"
    )
    assert loaded == {"torch": False, "gymnasium": False}


def test_unknown_attribute_raises():
    import crl_neuro

    with pytest.raises(AttributeError, match="no_such_module"):
        crl_neuro.no_such_module  # noqa: B018
    assert {"meeg", "fmri", "core", "datasets"} <= set(dir(crl_neuro))


# Makes torch and gymnasium unimportable in a fresh interpreter (as when the deep/rl
# extras are not installed), without touching the installed packages.
_BLOCK = """
import importlib.abc, sys
class _Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split('.')[0] in ('torch', 'gymnasium'):
            raise ModuleNotFoundError(f'No module named {name!r}', name=name)
sys.meta_path.insert(0, _Block())
"""


def _run_without_torch(code: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", _BLOCK + code], capture_output=True, text=True)


@pytest.mark.parametrize(
    "module, extra",
    [("crl_neuro.multimodal", "deep"), ("crl_neuro.generative", "deep"), ("crl_neuro.rl", "rl"),
     ("crl_neuro.core.nonlinear", "deep")],
)
def test_deep_modules_without_torch_name_the_extra(module, extra):
    out = _run_without_torch(f"import {module}")
    assert out.returncode != 0
    assert "ImportError" in out.stderr and f"pip install 'crl_neuro[{extra}]'" in out.stderr, out.stderr


def test_session_crl_runs_without_torch():
    """torch is an extra: SessionCRL with a forward model needs none of it; without a
    forward its global search does, and says so."""
    out = _run_without_torch(
        "import warnings; warnings.simplefilter('ignore')\n"
        "from crl_neuro.datasets import simulate_meeg_sessions\n"
        "from crl_neuro.meeg import SessionCRL\n"
        "sim = simulate_meeg_sessions(n_sources=3, n_sessions=3, duration=20.0, random_state=0)\n"
        "est = SessionCRL(3, noise_cov=sim.noise_cov, random_state=0).fit(sim.raws, forward=sim.forward)\n"
        "print('fitted', est.source_pos_.shape)\n"
        "try:\n"
        "    SessionCRL(3, noise_cov=sim.noise_cov).fit(sim.raws)\n"
        "except ImportError as err:\n"
        "    print('needs:', err)\n"
    )
    assert "fitted (3, 3)" in out.stdout, out.stderr
    assert "needs:" in out.stdout and "crl_neuro[deep]" in out.stdout
