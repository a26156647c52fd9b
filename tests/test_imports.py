"""Import hygiene: lazy submodules, light adapters, no heavy optional imports."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

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


# ----------------------------------------------------------------------------- layering
_ROOT = Path(__file__).resolve().parents[1] / "crl_neuro"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(_ROOT.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _import_graph() -> dict[str, set[str]]:
    """Static import graph of the package: every ``import``, top-level or inside a function.

    An edge to one's own parent package (``from crl_neuro.meeg import _io`` inside
    ``crl_neuro.meeg.session_crl``) is not a cycle and is left out.
    """
    modules = {_module_name(p): p for p in _ROOT.rglob("*.py")}
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        is_pkg = path.name == "__init__.py"
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    base = base[: len(base) - node.level + 1]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                names = [target] + [f"{target}.{alias.name}" for alias in node.names]
            else:
                continue
            for name in names:
                if name in modules and name != mod and not mod.startswith(name + "."):
                    graph[mod].add(name)
    return graph


def test_no_import_cycles():
    graph = _import_graph()
    # The scan sees imports inside functions too (the CLI imports its commands lazily).
    assert "crl_neuro.report" in graph["crl_neuro.cli"]
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    cycles: list[list[str]] = []

    def visit(node: str, path: list[str]) -> None:
        state[node] = 1
        path = path + [node]
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                cycles.append(path[path.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, path)
        state[node] = 2

    for mod in sorted(graph):
        if mod not in state:
            visit(mod, [])
    assert cycles == [], f"import cycles: {cycles}"


def test_report_does_not_import_cli():
    """The CLI imports the report module, never the reverse (no shim back into the CLI)."""
    graph = _import_graph()
    importers = sorted(m for m, deps in graph.items() if "crl_neuro.cli" in deps)
    assert importers == [], f"only the entry point may know the CLI; imported by {importers}"
    assert "crl_neuro.report" in graph["crl_neuro.cli"]
    assert not hasattr(__import__("crl_neuro.report").report, "cmd_report")


_ESTIMATOR_PACKAGES = ("crl_neuro.meeg", "crl_neuro.fmri", "crl_neuro.psychometrics", "crl_neuro.rl",
                       "crl_neuro.multimodal", "crl_neuro.generative", "crl_neuro.group",
                       "crl_neuro.report", "crl_neuro.cli")


def test_simulators_import_no_estimators():
    """Simulators sit on the core (and the one MNE-compat module), never on the estimators."""
    graph = _import_graph()
    bad = {m: sorted(d for d in deps if d.startswith(_ESTIMATOR_PACKAGES))
           for m, deps in graph.items() if m.startswith("crl_neuro.datasets")}
    assert {m: d for m, d in bad.items() if d} == {}
    # At run time too: simulating M/EEG data loads neither SessionCRL nor the M/EEG package.
    probe = (
        "import sys\nimport crl_neuro.datasets.meeg\n"
        "print([m for m in sys.modules if m.startswith(('crl_neuro.meeg', 'crl_neuro.fmri', 'crl_neuro.cli'))])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip().splitlines()[-1] == "[]", out.stdout
