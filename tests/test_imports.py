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
