"""Sphinx configuration of the crl_neuro documentation.

Builds offline: intersphinx is off unless ``CRL_NEURO_DOCS_INTERSPHINX=1``, and the
tutorial gallery is rendered without running the scripts unless
``CRL_NEURO_DOCS_RUN_TUTORIALS=1`` (then every ``tutorials/plot_*.py`` runs in its
quick mode, ``CRL_NEURO_TUTORIAL_QUICK=1``).

Build: ``sphinx-build -b html docs docs/_build/html`` (or ``make -C docs html``;
``make -C docs html-run`` executes the tutorials).
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

RUN_TUTORIALS = os.environ.get("CRL_NEURO_DOCS_RUN_TUTORIALS", "0") == "1"
if os.environ.get("CRL_NEURO_DOCS_INTERSPHINX", "0") == "1":
    # Fetches inventories from the network at build time: opt-in only.
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

# sphinx-gallery: the tutorials are plain scripts that run offline in quick mode.
sphinx_gallery_conf = {
    "examples_dirs": [str(ROOT / "tutorials")],
    "gallery_dirs": ["auto_tutorials"],
    "filename_pattern": r"/plot_" if RUN_TUTORIALS else r"^$",
    "plot_gallery": "True" if RUN_TUTORIALS else "False",
    "download_all_examples": False,
    "remove_config_comments": True,
    "within_subsection_order": "FileNameSortKey",
    "abort_on_example_error": False,
    "matplotlib_animations": False,
    "image_scrapers": ("matplotlib",),
    "reference_url": {"crl_neuro": None},
    "min_reported_time": 1,
}
if RUN_TUTORIALS:
    try:  # mne.Report figures and 3D views when the tutorials produce them
        import mne  # noqa: F401

        sphinx_gallery_conf["image_scrapers"] = ("matplotlib", "mne.viz._scraper._PyVistaScraper")
    except Exception:  # pragma: no cover - optional
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
