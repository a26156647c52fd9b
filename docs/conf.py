"""Sphinx configuration of the crl_neuro documentation.

The default build needs no network and runs the tutorials:

* every ``tutorials/plot_*.py`` is executed by sphinx-gallery in its quick mode
  (``CRL_NEURO_TUTORIAL_QUICK=1``) and its figures are embedded; a tutorial that
  raises fails the build. Opt out with ``CRL_NEURO_DOCS_RUN_TUTORIALS=0`` or
  ``make -C docs html-noplot`` (``-D plot_gallery=0``).
* intersphinx links to Python, NumPy, SciPy, scikit-learn, MNE and Nilearn. Without
  network the inventories cannot be fetched: Sphinx only warns (after
  ``intersphinx_timeout`` seconds at most) and the references stay plain text, so the
  build still succeeds. ``CRL_NEURO_DOCS_INTERSPHINX=0`` turns intersphinx off.

Build: ``sphinx-build -b html docs docs/_build/html`` (or ``make -C docs html``).
"""

import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("CRL_NEURO_TUTORIAL_QUICK", "1")
os.environ.setdefault("MPLBACKEND", "Agg")

import crl_neuro  # noqa: E402

project = "crl_neuro"
author = "crl_neuro developers"
copyright = "crl_neuro developers, BSD-3-Clause"
release = crl_neuro.__version__
version = release

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.autosummary",
    "sphinx.ext.mathjax",
    "sphinx.ext.viewcode",
    "numpydoc",
    "sphinx_gallery.gen_gallery",
]

RUN_TUTORIALS = os.environ.get("CRL_NEURO_DOCS_RUN_TUTORIALS", "1") != "0"
if os.environ.get("CRL_NEURO_DOCS_INTERSPHINX", "1") != "0":
    # Inventories are fetched at build time; offline, Sphinx warns "failed to reach any
    # of the inventories" and goes on (do not build with -W without network).
    extensions.append("sphinx.ext.intersphinx")
    intersphinx_mapping = {
        "python": ("https://docs.python.org/3", None),
        "numpy": ("https://numpy.org/doc/stable", None),
        "scipy": ("https://docs.scipy.org/doc/scipy", None),
        "sklearn": ("https://scikit-learn.org/stable", None),
        "mne": ("https://mne.tools/stable", None),
        "nilearn": ("https://nilearn.github.io/stable", None),
        "joblib": ("https://joblib.readthedocs.io/en/stable", None),
        "pandas": ("https://pandas.pydata.org/docs", None),
    }
    intersphinx_timeout = 5  # seconds per inventory: a slow or absent network costs little
    intersphinx_cache_limit = 30  # days a fetched inventory is reused without refetching

templates_path = []
exclude_patterns = ["_build", "auto_tutorials/*.ipynb", "auto_tutorials/*.py", "**.codeobj.json"]
source_suffix = {".rst": "restructuredtext"}
root_doc = "index"
default_role = "autolink"

# autodoc / autosummary
autosummary_generate = True
autosummary_ignore_module_all = False
autodoc_default_options = {
    "members": True,
    "inherited-members": False,
    "show-inheritance": True,
    # scikit-learn's metadata-routing setters are generated; their docstrings point into
    # scikit-learn's own documentation.
    "exclude-members": "set_fit_request,set_transform_request,set_score_request,"
                       "set_inverse_transform_request,set_predict_request,set_output",
}
autodoc_typehints = "none"  # numpydoc renders the types from the docstrings
autodoc_mock_imports = []

# numpydoc
numpydoc_show_class_members = False
numpydoc_class_members_toctree = False
numpydoc_attributes_as_param_list = True
numpydoc_xref_param_type = False

# sphinx-gallery: the tutorials are plain scripts that run offline in quick mode (simulated
# data; the sample-MEG one says so and draws nothing when ../shared/data is absent). A
# tutorial that raises fails the build at its end, with every failure listed
# (``only_warn_on_example_error`` stays False); ``-D abort_on_example_error=1`` stops at the
# first one.
sphinx_gallery_conf = {
    "examples_dirs": [str(ROOT / "tutorials")],
    "gallery_dirs": ["auto_tutorials"],
    "filename_pattern": r"/plot_",
    "plot_gallery": "True" if RUN_TUTORIALS else "False",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": False,
    "only_warn_on_example_error": False,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reference_url": {"crl_neuro": None},
    "min_reported_time": 1,
}
try:  # 3D views (MNE's PyVista scraper) when pyvista is installed; none of the tutorials need it
    import pyvista  # noqa: F401

    sphinx_gallery_conf["image_scrapers"] = ("matplotlib", "mne.viz._scraper._PyVistaScraper")
except ImportError:
    pass

# HTML: pydata-sphinx-theme when installed (optional extra), else Sphinx's default.
try:
    import pydata_sphinx_theme  # noqa: F401

    html_theme = "pydata_sphinx_theme"
    html_theme_options = {"navigation_with_keys": False}
except ImportError:
    html_theme = "alabaster"
html_title = f"crl_neuro {release}"
html_static_path = []
