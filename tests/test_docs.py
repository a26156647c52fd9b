"""The documentation builds offline and runs the quick tutorials.

The configuration checks are fast and need no Sphinx. The builds are marked ``slow``
(``pytest -m slow tests/test_docs.py``: about 3-4 minutes, most of it the tutorials)
and are skipped when the ``docs`` extra (sphinx, sphinx-gallery, numpydoc) is not
installed. Like ``make -C docs html`` they write the generated pages into the
git-ignored ``docs/generated`` and ``docs/auto_tutorials``; the HTML goes to a
temporary folder.
"""

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
TUTORIALS = sorted((ROOT / "tutorials").glob("plot_*.py"))

_READ_CONF = textwrap.dedent(
    """
    import json, runpy, sys
    ns = runpy.run_path(sys.argv[1])
    g = ns["sphinx_gallery_conf"]
    print(json.dumps({
        "extensions": ns["extensions"],
        "plot_gallery": g["plot_gallery"],
        "filename_pattern": g["filename_pattern"],
        "only_warn": g.get("only_warn_on_example_error", False),
        "intersphinx": sorted(ns.get("intersphinx_mapping", {})),
        "timeout": ns.get("intersphinx_timeout"),
        "quick": __import__("os").environ.get("CRL_NEURO_TUTORIAL_QUICK"),
    }))
    """
)


def _conf(**env_overrides):
    env = {k: v for k, v in os.environ.items()
           if k not in ("CRL_NEURO_DOCS_RUN_TUTORIALS", "CRL_NEURO_DOCS_INTERSPHINX",
                        "CRL_NEURO_TUTORIAL_QUICK")}
    env.update(env_overrides, PYTHONPATH=os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")]))
    proc = subprocess.run([sys.executable, "-c", _READ_CONF, str(DOCS / "conf.py")], env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_docs_conf_runs_quick_tutorials_and_links_by_default():
    conf = _conf()
    assert conf["plot_gallery"] == "True" and conf["filename_pattern"] == "/plot_"
    assert conf["quick"] == "1" and conf["only_warn"] is False  # a broken tutorial fails the build
    assert "sphinx.ext.intersphinx" in conf["extensions"]
    assert {"python", "numpy", "scipy", "sklearn", "mne", "nilearn"} <= set(conf["intersphinx"])
    assert 0 < conf["timeout"] <= 10  # offline, an unreachable inventory costs little


def test_docs_conf_opt_outs():
    conf = _conf(CRL_NEURO_DOCS_RUN_TUTORIALS="0", CRL_NEURO_DOCS_INTERSPHINX="0")
    assert conf["plot_gallery"] == "False"
    assert "sphinx.ext.intersphinx" not in conf["extensions"] and conf["intersphinx"] == []


def _need_sphinx():
    for mod in ("sphinx", "sphinx_gallery", "numpydoc"):
        pytest.importorskip(mod, reason=f"{mod} is not installed (pip install '.[docs]')")


def _build_env():
    env = dict(os.environ, CRL_NEURO_TUTORIAL_QUICK="1", MPLBACKEND="Agg")
    env.pop("CRL_NEURO_DOCS_RUN_TUTORIALS", None)
    env.pop("CRL_NEURO_DOCS_INTERSPHINX", None)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), env.get("PYTHONPATH", "")])
    return env


def _our_warnings(warnfile: Path) -> list[str]:
    """Warnings and errors, less intersphinx's "inventory not fetchable" (offline builds)."""
    lines = warnfile.read_text().splitlines() if warnfile.exists() else []
    return [ln for ln in lines
            if ("WARNING" in ln or "ERROR" in ln) and "inventor" not in ln]


@pytest.mark.slow
def test_docs_build_runs_every_quick_tutorial(tmp_path):
    _need_sphinx()
    warnfile = tmp_path / "warnings.txt"
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-j", "1",
           "-d", str(tmp_path / "doctrees"), "-w", str(warnfile),
           # execute every tutorial, also those an earlier build already ran
           "-D", "sphinx_gallery_conf.run_stale_examples=1",
           str(DOCS), str(tmp_path / "html")]
    proc = subprocess.run(cmd, env=_build_env(), capture_output=True, text=True, timeout=1800)
    log = proc.stdout + proc.stderr
    assert proc.returncode == 0, log[-6000:]
    assert f"successfully executed {len(TUTORIALS)} out of {len(TUTORIALS)}" in log, log[-3000:]
    for script in TUTORIALS:
        assert (tmp_path / "html" / "auto_tutorials" / f"{script.stem}.html").is_file()
    assert list((tmp_path / "html" / "_images").glob("sphx_glr_plot_*.png"))  # figures embedded
    assert (tmp_path / "html" / "api.html").is_file()
    assert _our_warnings(warnfile) == []


@pytest.mark.slow
def test_docs_build_fails_on_a_broken_tutorial(tmp_path):
    """The project's gallery settings turn an exception in a tutorial into a failed build."""
    _need_sphinx()
    src, gallery = tmp_path / "src", tmp_path / "examples"
    src.mkdir()
    gallery.mkdir()
    (gallery / "GALLERY_HEADER.rst").write_text("Examples\n========\n")
    (gallery / "plot_broken.py").write_text(
        '"""\nBroken\n======\n"""\n\nraise RuntimeError("this tutorial is broken")\n'
    )
    (src / "index.rst").write_text("Test\n====\n\n.. toctree::\n\n   auto_examples/index\n")
    (src / "conf.py").write_text(
        f"__file__ = {str(DOCS / 'conf.py')!r}\n"
        f"exec(compile(open(__file__).read(), __file__, 'exec'))\n"
        "extensions = [e for e in extensions if e != 'sphinx.ext.intersphinx']\n"
        f"sphinx_gallery_conf['examples_dirs'] = [{str(gallery)!r}]\n"
        "sphinx_gallery_conf['gallery_dirs'] = ['auto_examples']\n"
    )
    cmd = [sys.executable, "-m", "sphinx", "-b", "html", "-d", str(tmp_path / "doctrees"),
           str(src), str(tmp_path / "html")]
    proc = subprocess.run(cmd, env=_build_env(), capture_output=True, text=True, timeout=600)
    log = proc.stdout + proc.stderr
    assert proc.returncode != 0, log[-3000:]
    assert "this tutorial is broken" in log
