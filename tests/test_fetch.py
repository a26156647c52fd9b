"""Offline tests of crl_neuro.datasets.fetch: local downloader, tiny archives, hash checks."""

import hashlib
import io
import json
import shutil
import stat
import tarfile
import zipfile
from pathlib import Path

import pytest
import yaml

from crl_neuro.datasets.fetch import (
    DatasetIntegrityError,
    fetch,
    get_data_home,
    load_manifest,
)


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _md5(path):
    return hashlib.md5(Path(path).read_bytes()).hexdigest()


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


def test_manifest_requires_sha256_for_automatic_downloads(tmp_path):
    """A file fetch() downloads itself needs a sha256; md5 alone or nothing is refused."""
    url = "https://example.org/f.txt"
    for extra in ({}, {"md5": "0" * 32}):
        manifest = _write_manifest(tmp_path / "m.yaml", [_entry("nohash", url, None, **extra)])
        with pytest.raises(ValueError, match="'nohash'.*sha256 is required"):
            load_manifest(manifest)
    files = [{"url": url, "md5": "0" * 32, "size": 1}]
    manifest = _write_manifest(tmp_path / "m.yaml", [_entry("multi", "https://example.org/", None, files=files)])
    with pytest.raises(ValueError, match="'multi', file 0.*sha256 is required"):
        load_manifest(manifest)
    # manual entries may have no checksum: they are never downloaded automatically
    manifest = _write_manifest(tmp_path / "m.yaml", [_entry("byhand", url, None, manual=True)])
    assert load_manifest(manifest)["byhand"]["files"] == []


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


def test_data_home_env(monkeypatch, tmp_path):
    monkeypatch.setenv("CRL_NEURO_DATA", str(tmp_path / "env"))
    assert get_data_home() == tmp_path / "env"
    assert get_data_home(tmp_path / "x") == tmp_path / "x"
    monkeypatch.delenv("CRL_NEURO_DATA")
    assert "crl_neuro" in str(get_data_home())


def test_load_manifest_rejects_bad_entries(tmp_path):
    good = _entry("ok", "https://example.org/f.txt", "0" * 64)
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


# ----------------------------------------------------------------------------- safety
def _tar_with(path, add):
    """Write a tar.gz at ``path``; ``add(tf)`` adds the members."""
    with tarfile.open(path, "w:gz") as tf:
        add(tf)
    return path


def _add_bytes(tf, name, data=b"x", **attrs):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tf.addfile(info, io.BytesIO(data))


def _add_special(tf, name, type_, linkname=""):
    info = tarfile.TarInfo(name)
    info.type = type_
    info.linkname = linkname
    tf.addfile(info)


def _files_under(folder):
    return sorted(p.relative_to(folder).as_posix() for p in Path(folder).rglob("*"))


@pytest.mark.parametrize(
    "case",
    ["dotdot", "absolute", "nested_dotdot", "symlink", "hardlink", "fifo", "chardev", "blockdev", "backslash"],
)
def test_tar_unsafe_members_are_refused(tmp_path, case):
    """Every Python version: nothing is extracted, nothing is written outside the folder."""
    def add(tf):
        _add_bytes(tf, "ok.txt", b"fine")
        if case == "dotdot":
            _add_bytes(tf, "../evil.txt")
        elif case == "absolute":
            _add_bytes(tf, str(tmp_path / "abs_evil.txt"))
        elif case == "nested_dotdot":
            _add_bytes(tf, "sub/../../evil.txt")
        elif case == "symlink":
            _add_special(tf, "link", tarfile.SYMTYPE, linkname=str(tmp_path / "outside"))
        elif case == "hardlink":
            _add_special(tf, "hard", tarfile.LNKTYPE, linkname="../outside")
        elif case == "fifo":
            _add_special(tf, "pipe", tarfile.FIFOTYPE)
        elif case == "chardev":
            _add_special(tf, "dev", tarfile.CHRTYPE)
        elif case == "blockdev":
            _add_special(tf, "blk", tarfile.BLKTYPE)
        elif case == "backslash":
            _add_bytes(tf, "..\\evil.txt")

    archive = _tar_with(tmp_path / "bad.tar.gz", add)
    url = "https://example.org/bad.tar.gz"
    manifest = _write_manifest(tmp_path / "m.yaml", [_entry("bad", url, _sha256(archive), unpack="tar")])
    home = tmp_path / "home"
    before = _files_under(tmp_path)
    with pytest.raises(ValueError, match="dataset 'bad'.*unsafe archive member"):
        fetch("bad", data_home=home, downloader=_copy_downloader({url: archive}), manifest=manifest)
    # only the downloaded archive is new: no member (not even ok.txt), no temporary folder
    new = sorted(set(_files_under(tmp_path)) - set(before))
    assert new == ["home", "home/bad", "home/bad/bad.tar.gz"]


@pytest.mark.parametrize("case", ["dotdot", "absolute", "symlink", "fifo", "drive"])
def test_zip_unsafe_members_are_refused(tmp_path, case):
    archive = tmp_path / "bad.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ok.txt", "fine")
        if case == "dotdot":
            zf.writestr("a/../../evil.txt", "x")
        elif case == "absolute":
            zf.writestr(zipfile.ZipInfo("/tmp/evil.txt"), "x")
        elif case == "drive":
            zf.writestr("C:/evil.txt", "x")
        else:
            info = zipfile.ZipInfo("special")
            mode = stat.S_IFLNK if case == "symlink" else stat.S_IFIFO
            info.external_attr = (mode | 0o777) << 16
            zf.writestr(info, str(tmp_path / "outside"))
    url = "https://example.org/bad.zip"
    manifest = _write_manifest(tmp_path / "m.yaml", [_entry("badzip", url, _sha256(archive), unpack="zip")])
    home = tmp_path / "home"
    with pytest.raises(ValueError, match="unsafe archive member"):
        fetch("badzip", data_home=home, downloader=_copy_downloader({url: archive}), manifest=manifest)
    assert _files_under(home) == ["badzip", "badzip/bad.zip"]
    assert not (tmp_path / "evil.txt").exists() and not (tmp_path.parent / "evil.txt").exists()


def test_unsafe_member_not_selected_is_not_extracted(tmp_path):
    """A link the manifest does not ask for is never written, so it does not block the rest."""
    def add(tf):
        _add_bytes(tf, "data/keep.txt", b"keep")
        _add_special(tf, "other/link", tarfile.SYMTYPE, linkname="/etc/passwd")

    archive = _tar_with(tmp_path / "mixed.tar.gz", add)
    url = "https://example.org/mixed.tar.gz"
    manifest = _write_manifest(
        tmp_path / "m.yaml", [_entry("mixed", url, _sha256(archive), unpack="tar", members=["data"])]
    )
    out = fetch("mixed", data_home=tmp_path / "h", downloader=_copy_downloader({url: archive}), manifest=manifest)
    assert _files_under(out) == ["data", "data/keep.txt"]
    bad = _write_manifest(
        tmp_path / "m2.yaml", [_entry("mixed2", url, _sha256(archive), unpack="tar", members=["nothere.txt"])]
    )
    with pytest.raises(ValueError, match="members: 'nothere.txt' is not in the archive"):
        fetch("mixed2", data_home=tmp_path / "h", downloader=_copy_downloader({url: archive}), manifest=bad)


@pytest.mark.parametrize(
    "field, value",
    [
        ("filename", "../../x.txt"),
        ("filename", "/etc/x.txt"),
        ("filename", "C:/x.txt"),
        ("filename", "sub\\x.txt"),
        ("filename", "a/../../x.txt"),
        ("members", ["../x.txt"]),
        ("members", ["/abs.txt"]),
        ("files", [{"url": "https://example.org/a.txt", "sha256": "0" * 64, "filename": "../a.txt"}]),
        ("url", "https://example.org/.."),
    ],
)
def test_manifest_file_names_are_confined(tmp_path, field, value):
    extra = {field: value}
    sha = "0" * 64
    if field == "members":
        extra["unpack"] = "tar"
    if field == "files":
        sha = None
    url = value if field == "url" else "https://example.org/f.txt"
    extra.pop("url", None)
    manifest = _write_manifest(tmp_path / "m.yaml", [_entry("escape", url, sha, **extra)])
    expected = "file name taken from url" if field == "url" else ("members entry" if field == "members" else "filename")
    with pytest.raises(ValueError, match=f"'escape'.*{expected}.*inside the data folder"):
        load_manifest(manifest)
    # and fetch refuses before downloading anything
    def never(*args, **kwargs):
        raise AssertionError("must not download")

    with pytest.raises(ValueError, match="'escape'"):
        fetch("escape", data_home=tmp_path / "h", downloader=never, manifest=manifest)
    assert not (tmp_path / "h").exists() and not (tmp_path / "x.txt").exists()


def test_subfolder_file_name_stays_inside(tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("A")
    url = "https://example.org/a.txt"
    manifest = _write_manifest(
        tmp_path / "m.yaml", [_entry("sub", url, _sha256(src), filename="nested/dir/a.txt")]
    )
    out = fetch("sub", data_home=tmp_path / "h", downloader=_copy_downloader({url: src}), manifest=manifest)
    assert out == tmp_path / "h" / "sub" / "nested" / "dir" / "a.txt" and out.read_text() == "A"


def test_fetch_with_is_a_name_not_code(tmp_path):
    """Only the fixed official fetchers; no importable function can be named in YAML."""
    for spec, msg in (
        ({"function": "os.makedirs", "kwargs": {"exist_ok": True}}, "fetch_with.function 'os.makedirs' is not one"),
        ({"function": "os.system", "kwargs": {"command": "touch pwned"}}, "not one of the known fetchers"),
        ({"function": "nilearn.datasets.fetch_development_fmri", "data_home_arg": "x"}, "fetch_with must be a mapping"),
        (
            {"function": "nilearn.datasets.fetch_development_fmri", "kwargs": {"url": "http://evil"}},
            "takes no argument 'url'",
        ),
        (
            {"function": "nilearn.datasets.fetch_development_fmri", "kwargs": {"n_subjects": "1"}},
            "n_subjects must be int",
        ),
    ):
        entry = _entry("delegated", "https://example.org/", None, fetch_with=spec)
        manifest = _write_manifest(tmp_path / "m.yaml", [entry])
        with pytest.raises(ValueError, match=f"'delegated'.*{msg}"):
            fetch("delegated", data_home=tmp_path / "h", manifest=manifest)
    assert not (tmp_path / "h").exists()


def test_fetch_with_calls_the_whitelisted_fetcher(tmp_path, monkeypatch):
    from crl_neuro.datasets import fetch as fetch_mod

    calls = []
    fake = fetch_mod._Delegate("builtins", "unused", "data_dir", kwargs={"n_subjects": int})
    monkeypatch.setattr(type(fake), "resolve", lambda self: lambda **kw: calls.append(kw) or "bunch")
    monkeypatch.setitem(fetch_mod._DELEGATES, "nilearn.datasets.fetch_development_fmri", fake)
    entry = _entry(
        "dev", "https://example.org/", None,
        fetch_with={"function": "nilearn.datasets.fetch_development_fmri", "kwargs": {"n_subjects": 1}},
    )
    manifest = _write_manifest(tmp_path / "m.yaml", [entry])
    assert fetch("dev", data_home=tmp_path / "h", manifest=manifest) == "bunch"
    assert calls == [{"n_subjects": 1, "data_dir": str(tmp_path / "h" / "dev")}]


def _offline(url, output_file, pooch, check_only=False):
    raise ConnectionError("no network")


def test_corrupt_cached_file_is_downloaded_again(tmp_path):
    src = tmp_path / "f.txt"
    src.write_text("good content")
    url = "https://example.org/f.txt"
    manifest = _write_manifest(tmp_path / "m.yaml", [_entry("one", url, _sha256(src))])
    dl = _copy_downloader({url: src})
    out = fetch("one", data_home=tmp_path / "h", downloader=dl, manifest=manifest)
    out.write_text("bit rot")
    assert fetch("one", data_home=tmp_path / "h", downloader=dl, manifest=manifest) == out
    assert out.read_text() == "good content" and dl.calls == [url, url]
    # a good copy is reused, even offline
    assert fetch("one", data_home=tmp_path / "h", downloader=_offline, manifest=manifest) == out


def test_corrupt_cached_file_offline_gives_clear_error(tmp_path):
    src = tmp_path / "f.txt"
    src.write_text("good content")
    url = "https://example.org/f.txt"
    manifest = _write_manifest(tmp_path / "m.yaml", [_entry("one", url, _sha256(src))])
    out = fetch("one", data_home=tmp_path / "h", downloader=_copy_downloader({url: src}), manifest=manifest)
    out.write_text("bit rot")
    with pytest.raises(DatasetIntegrityError, match="dataset 'one'.*cached copy of 'f.txt'.*is corrupt.*no network"):
        fetch("one", data_home=tmp_path / "h", downloader=_offline, manifest=manifest)
    # the corrupt copy is left for inspection; no temporary download lies around
    assert out.read_text() == "bit rot" and _files_under(tmp_path / "h") == ["one", "one/f.txt"]
    # a missing file offline: the downloader's own error, not a corruption message
    out.unlink()
    with pytest.raises(ConnectionError):
        fetch("one", data_home=tmp_path / "h", downloader=_offline, manifest=manifest)


def test_wrong_download_does_not_replace_cache(tmp_path):
    good, bad = tmp_path / "good.txt", tmp_path / "bad.txt"
    good.write_text("good")
    bad.write_text("tampered")
    url = "https://example.org/good.txt"
    manifest = _write_manifest(tmp_path / "m.yaml", [_entry("one", url, _sha256(good), md5=_md5(good))])
    with pytest.raises(DatasetIntegrityError, match="dataset 'one'.*'good.txt'.*sha256 hash"):
        fetch("one", data_home=tmp_path / "h", downloader=_copy_downloader({url: bad}), manifest=manifest)
    assert _files_under(tmp_path / "h") == ["one"]
    # md5 is a secondary check: a wrong md5 with the right sha256 is refused as well
    manifest = _write_manifest(tmp_path / "m.yaml", [_entry("one", url, _sha256(good), md5="0" * 32)])
    with pytest.raises(DatasetIntegrityError, match="md5 hash"):
        fetch("one", data_home=tmp_path / "h", downloader=_copy_downloader({url: good}), manifest=manifest)


def test_unpacked_files_are_reverified(tmp_path, tiny_zip):
    url = "https://example.org/data/tiny.zip"
    manifest = _write_manifest(tmp_path / "m.yaml", [_entry("tiny", url, _sha256(tiny_zip), unpack="zip")])
    home = tmp_path / "home"
    dl = _copy_downloader({url: tiny_zip})
    out = fetch("tiny", data_home=home, downloader=dl, manifest=manifest)
    record = json.loads((home / "tiny" / "tiny.zip.unpacked.json").read_text())
    assert record["files"]["tiny/a.txt"] == {"size": 6, "sha256": hashlib.sha256(b"alpha\n").hexdigest()}
    # a modified, a removed and a replaced-by-link file are all restored from the archive
    for damage in ("modify", "remove", "symlink"):
        target = out / "tiny" / "a.txt"
        if damage == "modify":
            target.write_text("alphA\n")
        elif damage == "remove":
            target.unlink()
        else:
            target.unlink()
            target.symlink_to(tmp_path / "elsewhere.txt")
        with pytest.warns(UserWarning, match=r"dataset 'tiny': 'tiny/a.txt' (was modified|is missing).*unpacking again"):
            assert fetch("tiny", data_home=home, downloader=_offline, manifest=manifest) == out
        assert target.read_text() == "alpha\n" and not target.is_symlink()
    assert dl.calls == [url]  # the archive itself was fine: never downloaded again


def test_corrupt_archive_offline_gives_clear_error(tmp_path, tiny_zip):
    url = "https://example.org/data/tiny.zip"
    manifest = _write_manifest(tmp_path / "m.yaml", [_entry("tiny", url, _sha256(tiny_zip), unpack="zip")])
    home = tmp_path / "home"
    fetch("tiny", data_home=home, downloader=_copy_downloader({url: tiny_zip}), manifest=manifest)
    (home / "tiny" / "tiny.zip").write_bytes(b"truncated")
    with pytest.raises(DatasetIntegrityError, match="dataset 'tiny'.*'tiny.zip'.*corrupt"):
        fetch("tiny", data_home=home, downloader=_offline, manifest=manifest)
    # online again: downloaded and the unpacked files are still right
    out = fetch("tiny", data_home=home, downloader=_copy_downloader({url: tiny_zip}), manifest=manifest)
    assert (out / "tiny" / "a.txt").read_text() == "alpha\n"


def test_packaged_manifest_obeys_the_rules():
    """Every file fetch() downloads itself has a sha256; the others say how they are obtained."""
    for name, entry in load_manifest().items():
        if entry.get("manual") or entry.get("fetch_with"):
            assert entry["files"] == [], name
        else:
            assert entry["files"] and all(f["sha256"] for f in entry["files"]), name
