"""crl_neuro.viz.show_or_save: figures are saved, safely, when there is no display."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from crl_neuro import viz  # noqa: E402
from crl_neuro.viz import FIGURES_DIR_ENV, default_figures_dir, show_or_save  # noqa: E402

_SAFE = re.compile(r"^[A-Za-z0-9_-]+\.png$")


def _listing(root) -> set[str]:
    return {os.path.relpath(os.path.join(d, f), root) for d, _, files in os.walk(root) for f in files}


@pytest.fixture(autouse=True)
def _clean(monkeypatch):
    monkeypatch.delenv(FIGURES_DIR_ENV, raising=False)
    monkeypatch.setattr(viz, "_COUNTS", {})
    plt.close("all")
    yield
    plt.close("all")


def test_agg_saves_every_open_figure(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "figs"
    for i in range(3):
        _, ax = plt.subplots()
        ax.plot([0, 1], [i, i + 1])
    paths = show_or_save(out, prefix="demo")
    assert [p.name for p in paths] == ["demo_01.png", "demo_02.png", "demo_03.png"]
    assert all(p.parent == out.resolve() and p.stat().st_size > 0 for p in paths)
    assert _listing(tmp_path) == {os.path.join("figs", p.name) for p in paths}  # nothing elsewhere
    assert plt.get_fignums() == []  # closed after saving
    assert str(out.resolve()) in capsys.readouterr().out
    # A second call in the same process does not overwrite the first files.
    plt.figure()
    assert [p.name for p in show_or_save(out, prefix="demo")] == ["demo_04.png"]


@pytest.mark.parametrize(
    "prefix, label",
    [("../../evil", "../../../etc/passwd"), ("/abs/path", "a/b\\c:d*e?f"), ("..", ".."), ("", "")],
)
def test_names_are_safe_and_stay_in_the_folder(tmp_path, monkeypatch, prefix, label):
    monkeypatch.chdir(tmp_path)
    out = tmp_path / "figs"
    plt.figure(label=label)
    plt.figure()
    paths = show_or_save(out, prefix=prefix)
    assert len(paths) == 2
    for p in paths:
        assert _SAFE.match(p.name), p.name
        assert p.parent == out.resolve()
    assert _listing(tmp_path) == {os.path.join("figs", p.name) for p in paths}


def test_default_folder_and_environment_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert default_figures_dir().name == "crl_neuro_figures"
    plt.figure()
    (path,) = show_or_save(prefix="x")
    assert path == (tmp_path / "crl_neuro_figures" / "x_01.png").resolve()
    monkeypatch.setenv(FIGURES_DIR_ENV, str(tmp_path / "from_env"))
    plt.figure()
    (path,) = show_or_save(prefix="x")
    assert path.parent == (tmp_path / "from_env").resolve()


def test_nothing_open_writes_nothing(tmp_path):
    assert show_or_save(tmp_path / "figs") == []
    assert not (tmp_path / "figs").exists()


def test_bad_format(tmp_path):
    plt.figure()
    with pytest.raises(ValueError, match="fmt"):
        show_or_save(tmp_path, fmt="docx")
    with pytest.raises(TypeError, match="fmt"):
        show_or_save(tmp_path, fmt=3)


def test_other_formats_and_keep_open(tmp_path, capsys):
    plt.figure()
    (path,) = show_or_save(tmp_path, prefix="v", fmt="SVG", close=False, verbose=False)
    assert capsys.readouterr().out == ""
    assert path.name == "v_01.svg" and path.read_text().lstrip().startswith("<?xml")
    assert len(plt.get_fignums()) == 1


def test_interactive_backend_only_shows(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    shown = []
    monkeypatch.setattr(viz, "_is_interactive_backend", lambda: True)
    monkeypatch.setattr(plt, "show", lambda *a, **k: shown.append(True))
    plt.figure()
    assert show_or_save() == []
    assert shown == [True] and _listing(tmp_path) == set()
    assert len(plt.get_fignums()) == 1  # shown figures are left to the user
    # A folder named explicitly saves as well as shows.
    assert len(show_or_save(tmp_path / "figs", prefix="p")) == 1 and shown == [True, True]


def test_sphinx_gallery_keeps_figures_for_its_scraper(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "sphinx_gallery", object())
    plt.figure()
    assert show_or_save(tmp_path / "figs") == []
    assert len(plt.get_fignums()) == 1 and _listing(tmp_path) == set()


def test_script_name_is_the_default_prefix(tmp_path):
    script = tmp_path / "plot_something.py"
    script.write_text(
        "import matplotlib.pyplot as plt\n"
        "from crl_neuro.viz import show_or_save\n"
        "plt.plot([0, 1])\nplt.figure()\n"
        "show_or_save()\n"
    )
    env = dict(os.environ, MPLBACKEND="Agg")
    env.pop(FIGURES_DIR_ENV, None)
    proc = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, check=True)
    folder = tmp_path / "crl_neuro_figures"
    assert sorted(p.name for p in folder.iterdir()) == ["plot_something_01.png", "plot_something_02.png"]
    assert str(folder.resolve()) in proc.stdout
    assert _listing(tmp_path) == {"plot_something.py", *(os.path.join(folder.name, n)
                                                          for n in os.listdir(folder))}
