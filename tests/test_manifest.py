"""Schema test of the packaged datasets_manifest.yaml."""

import importlib
import importlib.util
import re
from pathlib import Path

import yaml

from crl_neuro.datasets.fetch import load_manifest

ROOT = Path(__file__).resolve().parents[1]
PACKAGED = ROOT / "crl_neuro" / "datasets" / "datasets_manifest.yaml"
REQUIRED = {
    "name": str,
    "title": str,
    "url": str,
    "sha256": (str, type(None)),
    "size": (int, type(None)),
    "license": str,
    "citation": str,
    "used_by": list,
    "offline_fallback": str,
}


def _raw_entries():
    return yaml.safe_load(PACKAGED.read_text())["datasets"]


def test_top_level_link_points_to_packaged_manifest():
    link = ROOT / "datasets_manifest.yaml"
    assert link.is_symlink(), "datasets_manifest.yaml must be a symlink to the packaged manifest"
    assert not Path(link.readlink()).is_absolute()
    assert link.resolve() == PACKAGED.resolve()


def test_required_fields_and_types():
    for entry in _raw_entries():
        for key, typ in REQUIRED.items():
            assert key in entry, f"{entry.get('name')}: missing {key}"
            assert isinstance(entry[key], typ), f"{entry['name']}: {key} has type {type(entry[key])}"


def test_names_unique_and_required_datasets_present():
    names = [e["name"] for e in _raw_entries()]
    assert len(names) == len(set(names))
    for required in (
        "eegmmidb_s001",
        "mne_sample",
        "nilearn_development_fmri",
        "netsim",
        "ipip_big5",
        "psych_bfi",
        "nitime_fmri",
        "sachs2005",
        "neurokit_physio",
    ):
        assert required in names


def test_hashes_are_hex_or_null():
    sha = re.compile(r"^[0-9a-f]{64}$")
    md5 = re.compile(r"^[0-9a-f]{32}$")
    for name, entry in load_manifest().items():
        for f in entry["files"]:
            assert f["sha256"] is None or sha.match(f["sha256"]), name
            assert f["md5"] is None or md5.match(f["md5"]), name
            assert f["url"].startswith(("https://", "http://")), name
            assert f["filename"], name
        # downloadable entries: either a file list or a single URL with a file name
        if not (entry.get("manual") or entry.get("fetch_with")):
            assert entry["files"], name


def test_multi_file_sizes_add_up():
    for name, entry in load_manifest().items():
        sizes = [f["size"] for f in entry["files"]]
        if len(sizes) > 1 and entry["size"] is not None and all(s is not None for s in sizes):
            assert sum(sizes) == entry["size"], name


def test_used_by_refers_to_existing_modules():
    for name, entry in load_manifest().items():
        for module in entry["used_by"]:
            assert module.startswith("crl_neuro"), f"{name}: {module}"
            assert importlib.util.find_spec(module) is not None, f"{name}: no module {module}"


def test_fetch_with_functions_exist():
    """fetch_with names one of the fixed official fetchers, which must import."""
    from crl_neuro.datasets.fetch import _DELEGATES

    for name, entry in load_manifest().items():
        if entry.get("fetch_with"):
            delegate = _DELEGATES[entry["fetch_with"]["function"]]
            assert importlib.util.find_spec(delegate.module) is not None, name
            assert callable(delegate.resolve()), name
