"""Offline tests of crl_neuro.datasets.fetch: local downloader, tiny archives, hash checks."""

import hashlib
import shutil
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from crl_neuro.datasets.fetch import fetch, get_data_home, load_manifest


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _copy_downloader(sources):
    """A pooch downloader that copies ``sources[url]`` instead of downloading it."""
    calls = []

    def download(url, output_file, pooch, check_only=False):
        calls.append(url)
        src = Path(sources[url])
        if hasattr(output_file, "write"):
            output_file.write(src.read_bytes())
        else:
            shutil.copyfile(src, output_file)

    download.calls = calls
    return download


def _entry(name, url, sha256, **extra):
    entry = {
        "name": name,
        "title": "tiny test data",
        "url": url,
        "sha256": sha256,
        "size": 10,
        "license": "CC0",
        "citation": "nobody",
        "used_by": ["crl_neuro.core"],
        "offline_fallback": "none",
    }
    entry.update(extra)
    return entry


def _write_manifest(path, entries):
    path.write_text(yaml.safe_dump({"version": 1, "datasets": entries}))
    return path


@pytest.fixture
def tiny_zip(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    archive = src / "tiny.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("tiny/a.txt", "alpha\n")
        zf.writestr("tiny/b.csv", "x,y\n1,2\n")
    return archive


def test_fetch_zip_unpacks_and_checks_hash(tmp_path, tiny_zip):
    url = "https://example.org/data/tiny.zip"
    manifest = _write_manifest(
        tmp_path / "m.yaml", [_entry("tiny", url, _sha256(tiny_zip), unpack="zip")]
    )
    dl = _copy_downloader({url: tiny_zip})
    home = tmp_path / "home"
    out = fetch("tiny", data_home=home, downloader=dl, manifest=manifest)
    assert out.is_dir() and home in out.parents
    assert (out / "tiny" / "a.txt").read_text() == "alpha\n"
    assert (out / "tiny" / "b.csv").read_text() == "x,y\n1,2\n"
    # cached: a second call does not download again
    out2 = fetch("tiny", data_home=home, downloader=dl, manifest=manifest)
    assert out2 == out and dl.calls == [url]


def test_fetch_tar_members(tmp_path):
    src = tmp_path / "payload"
    src.mkdir()
    (src / "keep.txt").write_text("keep")
    (src / "skip.txt").write_text("skip")
    archive = tmp_path / "tiny.tar.gz"
    with tarfile.open(archive, "w:gz") as tf:
        tf.add(src / "keep.txt", arcname="keep.txt")
        tf.add(src / "skip.txt", arcname="skip.txt")
    url = "https://example.org/tiny.tar.gz"
    manifest = _write_manifest(
        tmp_path / "m.yaml",
        [_entry("tinytar", url, _sha256(archive), unpack="tar", members=["keep.txt"])],
    )
    out = fetch("tinytar", data_home=tmp_path / "h", downloader=_copy_downloader({url: archive}), manifest=manifest)
    assert (out / "keep.txt").read_text() == "keep"
    assert not (out / "skip.txt").exists()


def test_fetch_multi_file_returns_list(tmp_path):
    a = tmp_path / "a.txt"
    b = tmp_path / "b.txt"
    a.write_text("A")
    b.write_text("B")
    ua, ub = "https://example.org/x/a.txt", "https://example.org/y/b.txt"
    files = [{"url": ua, "sha256": _sha256(a), "size": 1}, {"url": ub, "sha256": _sha256(b), "size": 1}]
    manifest = _write_manifest(
        tmp_path / "m.yaml", [_entry("pair", "https://example.org/", None, files=files)]
    )
    out = fetch("pair", data_home=tmp_path / "h", downloader=_copy_downloader({ua: a, ub: b}), manifest=manifest)
    assert [p.name for p in out] == ["a.txt", "b.txt"]
    assert [p.read_text() for p in out] == ["A", "B"]


def test_fetch_hash_mismatch_raises(tmp_path, tiny_zip):
    url = "https://example.org/tiny.zip"
    manifest = _write_manifest(tmp_path / "m.yaml", [_entry("tiny", url, "0" * 64, unpack="zip")])
    with pytest.raises(ValueError, match="(?i)hash"):
        fetch("tiny", data_home=tmp_path / "h", downloader=_copy_downloader({url: tiny_zip}), manifest=manifest)


def test_fetch_unknown_hash_warns(tmp_path):
    f = tmp_path / "f.txt"
    f.write_text("content")
    url = "https://example.org/f.txt"
    manifest = _write_manifest(tmp_path / "m.yaml", [_entry("nohash", url, None)])
    with pytest.warns(UserWarning, match="no checksum"):
        out = fetch("nohash", data_home=tmp_path / "h", downloader=_copy_downloader({url: f}), manifest=manifest)
    assert out.read_text() == "content"


def test_fetch_unknown_name_lists_valid_names():
    with pytest.raises(ValueError, match="unknown dataset 'nope'.*eegmmidb_s001"):
        fetch("nope")


def test_fetch_bad_arguments(tmp_path):
    with pytest.raises(TypeError, match="name"):
        fetch(3)
    with pytest.raises(TypeError, match="downloader"):
        fetch("eegmmidb_s001", downloader="curl")
    with pytest.raises(TypeError, match="data_home"):
        get_data_home(5)


def test_fetch_manual_entry_explains(tmp_path):
    with pytest.raises(ValueError, match="cannot be downloaded automatically.*fmrib"):
        fetch("netsim", data_home=tmp_path)


def test_fetch_with_delegates_to_official_fetcher(tmp_path):
    entry = _entry(
        "delegated",
        "https://example.org/",
        None,
        fetch_with={"function": "os.makedirs", "kwargs": {"exist_ok": True}, "data_home_arg": "name"},
    )
    manifest = _write_manifest(tmp_path / "m.yaml", [entry])
    fetch("delegated", data_home=tmp_path / "h", manifest=manifest)
    assert (tmp_path / "h" / "delegated").is_dir()


def test_data_home_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CRL_NEURO_DATA", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env"
    assert get_data_home(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("CRL_NEURO_DATA")
    assert "crl_neuro" in str(get_data_home())


def test_load_manifest_rejects_bad_entries(tmp_path):
    good = _entry("ok", "https://example.org/f.txt", None)
    bad_hash = dict(good, name="badhash", sha256="XYZ")
    with pytest.raises(ValueError, match="'badhash'.*sha256"):
        load_manifest(_write_manifest(tmp_path / "a.yaml", [good, bad_hash]))
    with pytest.raises(ValueError, match="duplicate dataset name 'ok'"):
        load_manifest(_write_manifest(tmp_path / "b.yaml", [good, dict(good)]))
    missing = {k: v for k, v in good.items() if k != "license"}
    with pytest.raises(ValueError, match="missing field.*license"):
        load_manifest(_write_manifest(tmp_path / "c.yaml", [missing]))
    with pytest.raises(ValueError, match="url"):
        load_manifest(_write_manifest(tmp_path / "d.yaml", [dict(good, url="ftp:/nowhere")]))
    with pytest.raises(FileNotFoundError, match="path"):
        load_manifest(tmp_path / "missing.yaml")


def test_load_manifest_returns_copies():
    m1 = load_manifest()
    m1["eegmmidb_s001"]["files"].clear()
    assert len(load_manifest()["eegmmidb_s001"]["files"]) == 12


@pytest.mark.shared_data
def test_manifest_hashes_match_shared_copies(shared_data, tmp_path):
    """The packaged manifest's checksums verify the byte-identical copies in ../shared/data."""
    folders = {
        "eegmmidb_s001": "meg_eeg/physionet_eegmmidb_S001",
        "neurokit_physio": "physio_multimodal/neurokit",
        "ipip_big5_github": "psychometric/ipip_ffm_big5",
    }
    for name, folder in folders.items():
        entry = load_manifest()[name]
        sources = {f["url"]: shared_data / folder / f["filename"] for f in entry["files"]}
        if not all(p.is_file() for p in sources.values()):
            pytest.skip(f"{folder} incomplete")
        out = fetch(name, data_home=tmp_path, downloader=_copy_downloader(sources))
        assert [p.name for p in out] == [f["filename"] for f in entry["files"]]
