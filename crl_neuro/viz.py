"""Figures that survive a headless run: show them on a display, save them elsewhere.

:func:`show_or_save` replaces a bare ``plt.show()`` at the end of a script. With an
interactive Matplotlib backend it shows the figures as ``plt.show()`` does; with a
non-interactive one (``MPLBACKEND=Agg`` on a cluster node, in CI, over SSH) it writes
every open figure to a folder and prints where. Under sphinx-gallery it only calls
``plt.show()`` and leaves the figures open, because sphinx-gallery collects them itself.
"""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

__all__ = ["FIGURES_DIR_ENV", "default_figures_dir", "show_or_save"]

#: Environment variable naming the folder :func:`show_or_save` writes figures to.
FIGURES_DIR_ENV = "CRL_NEURO_FIGURES_DIR"

_DEFAULT_DIR = "crl_neuro_figures"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")
_MAX_STEM = 80
# How many figures each (folder, prefix) pair got in this process, so that a second call
# in the same script does not overwrite the files of the first.
_COUNTS: dict[tuple[str, str], int] = {}


def default_figures_dir() -> Path:
    """Folder :func:`show_or_save` writes to when none is given.

    Returns
    -------
    folder : pathlib.Path
        The value of the ``CRL_NEURO_FIGURES_DIR`` environment variable when it is set
        and not empty, else ``./crl_neuro_figures`` (relative to the working directory).
    """
    value = os.environ.get(FIGURES_DIR_ENV, "").strip()
    return Path(value) if value else Path(_DEFAULT_DIR)


def _safe_name(text: str, fallback: str = "figure") -> str:
    """``text`` reduced to letters, digits, ``-`` and ``_`` (no separators, no dots)."""
    name = _UNSAFE.sub("_", str(text)).strip("_-")[:_MAX_STEM].strip("_-")
    return name or fallback


def _script_name() -> str:
    """Stem of the running script (``plot_big_five`` for ``python plot_big_five.py``)."""
    main_file = getattr(sys.modules.get("__main__"), "__file__", None) or (sys.argv[0] if sys.argv else "")
    stem = Path(str(main_file)).stem if main_file else ""
    return stem if stem and stem not in ("-c", "__main__", "ipykernel_launcher") else "figure"


def _under_sphinx_gallery() -> bool:
    return "sphinx_gallery" in sys.modules


_NON_INTERACTIVE = frozenset({"agg", "cairo", "pdf", "pgf", "ps", "svg", "template"})


def _non_interactive_backends() -> frozenset[str]:
    try:  # matplotlib >= 3.9
        from matplotlib.backends import BackendFilter, backend_registry

        names = backend_registry.list_builtin(BackendFilter.NON_INTERACTIVE)
    except ImportError:  # older matplotlib
        from matplotlib import rcsetup

        names = getattr(rcsetup, "non_interactive_bk", ())
    return _NON_INTERACTIVE | {str(n).lower() for n in names}


def _is_interactive_backend() -> bool:
    import matplotlib

    return str(matplotlib.get_backend()).lower() not in _non_interactive_backends()


def show_or_save(
    folder: str | os.PathLike | None = None,
    *,
    prefix: str | None = None,
    fmt: str = "png",
    dpi: float | None = None,
    close: bool = True,
    show: bool | None = None,
    verbose: bool = True,
) -> list[Path]:
    """Show the open figures on a display, or save them when there is none.

    Use it instead of ``plt.show()`` at the end of a script or tutorial.

    Parameters
    ----------
    folder : str | os.PathLike | None
        Folder to write the figures to (created if needed). ``None``: the
        ``CRL_NEURO_FIGURES_DIR`` environment variable when set, else
        ``./crl_neuro_figures``. Naming a folder (here or in the environment variable)
        saves the figures even with an interactive backend, and shows them too.
    prefix : str | None
        Start of the file names; ``None``: the running script's name (``plot_big_five``),
        or ``"figure"``. It is made safe (letters, digits, ``-`` and ``_`` only).
    fmt : str
        File format, one Matplotlib can write (``"png"``, ``"pdf"``, ``"svg"``...).
    dpi : float | None
        Resolution of raster formats; ``None``: Matplotlib's ``savefig.dpi``.
    close : bool
        Close the figures after saving them (frees their memory; a later call does not
        save them again). Figures are never closed when only shown.
    show : bool | None
        Call ``plt.show()``. ``None``: when the backend is interactive. Under sphinx-gallery
        the function only calls ``plt.show()`` (sphinx-gallery scrapes the figures itself).
    verbose : bool
        Print one line naming the folder and the files written (the message is the
        point of the function at the end of a script, hence ``print``, not the logger).

    Returns
    -------
    paths : list of pathlib.Path
        The files written, in figure-number order (empty when nothing was saved).

    Notes
    -----
    File names are ``<prefix>_<NN>[_<label>].<fmt>``, where ``NN`` counts the figures
    saved with that prefix to that folder in this process (so two calls do not overwrite
    each other) and ``label`` is the figure's label (``plt.figure(label=...)``) when set.
    Every name is reduced to safe characters and checked to lie directly inside
    ``folder``: nothing is written anywhere else.

    Examples
    --------
    >>> import matplotlib.pyplot as plt
    >>> from crl_neuro.viz import show_or_save
    >>> fig, ax = plt.subplots()
    >>> _ = ax.plot([0, 1], [0, 1])
    >>> show_or_save()  # doctest: +SKIP
    crl_neuro: wrote 1 figure to crl_neuro_figures: plot_example_01.png
    """
    import matplotlib.pyplot as plt

    if _under_sphinx_gallery():
        plt.show()
        return []
    if not isinstance(fmt, str) or not fmt:
        raise TypeError(f"fmt must be a non-empty str, got {fmt!r}")
    fmt = fmt.lower().lstrip(".")
    interactive = _is_interactive_backend()
    explicit = folder is not None or bool(os.environ.get(FIGURES_DIR_ENV, "").strip())
    do_show = interactive if show is None else bool(show)
    paths: list[Path] = []
    if not interactive or explicit:
        paths = _save_open_figures(folder, prefix=prefix, fmt=fmt, dpi=dpi, verbose=verbose)
    if do_show:
        plt.show()
    if paths and close:
        for number in plt.get_fignums():
            plt.close(number)
    return paths


def _save_open_figures(folder: str | os.PathLike | None, *, prefix: str | None, fmt: str,
                       dpi: float | None, verbose: bool) -> list[Path]:
    import matplotlib.pyplot as plt

    numbers = plt.get_fignums()
    if not numbers:
        return []
    supported = plt.figure(numbers[0]).canvas.get_supported_filetypes()
    if fmt not in supported:
        raise ValueError(f"fmt must be one of {sorted(supported)}, got {fmt!r}")
    out = Path(default_figures_dir() if folder is None else os.fspath(folder)).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    root = out.resolve()
    stem = _safe_name(_script_name() if prefix is None else prefix)
    key = (str(root), stem)
    paths = []
    for number in numbers:
        fig = plt.figure(number)
        _COUNTS[key] = _COUNTS.get(key, 0) + 1
        label = _safe_name(fig.get_label(), fallback="") if fig.get_label() else ""
        name = f"{stem}_{_COUNTS[key]:02d}" + (f"_{label}" if label else "") + f".{fmt}"
        path = root / name
        if path.resolve().parent != root:  # cannot happen with a safe name; never write elsewhere
            raise ValueError(f"refusing to write {name!r} outside {str(root)!r}")
        fig.savefig(path, format=fmt, dpi=dpi)  # None: rcParams["savefig.dpi"]
        paths.append(path)
    noun = "figure" if len(paths) == 1 else "figures"
    if verbose:
        print(f"crl_neuro: wrote {len(paths)} {noun} to {root}: " + ", ".join(p.name for p in paths))
    return paths
