"""Download the public data sets listed in ``datasets_manifest.yaml``, hash-checked.

The manifest ships inside the package (``crl_neuro/datasets/datasets_manifest.yaml``; the
project root holds a symbolic link to it). Each entry names a public source, its checksum,
its size, licence, citation, the crl_neuro modules that use it and what to use offline.
:func:`fetch` downloads an entry into a cache directory, verifies the checksum and unpacks
archives; files already in the cache with the right hash are reused.

Safety rules (the manifest is data, never code):

* every file downloaded by :func:`fetch` itself has a sha256 in the manifest (md5 is only a
  secondary check); entries that cannot have one are ``manual: true`` (download by hand) or
  delegate to one of a fixed set of official fetchers (``fetch_with``, see ``_DELEGATES``);
* file names and archive members are relative paths inside the data folder;
* archives are unpacked by our own checked loop, on every Python version: members outside
  the target folder, absolute paths, ``..``, links, devices and fifos are refused before
  anything is written;
* a cached file that no longer matches its hash is downloaded again; the files unpacked
  from an archive are recorded (size, sha256) and re-verified on later calls.
"""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import re
import shutil
import stat
import tarfile
import tempfile
import warnings
import zipfile
from collections.abc import Callable
from copy import deepcopy
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse

__all__ = ["MANIFEST_NAME", "DatasetIntegrityError", "fetch", "get_data_home", "load_manifest"]

MANIFEST_NAME = "datasets_manifest.yaml"
_REQUIRED = ("name", "title", "url", "sha256", "size", "license", "citation", "used_by", "offline_fallback")
_OPTIONAL = ("description", "md5", "filename", "files", "unpack", "members", "fetch_with", "manual")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_UNPACK = ("zip", "tar")
_CHUNK = 1 << 20


class DatasetIntegrityError(ValueError):
    """A downloaded or cached data file does not match the checksum of the manifest.

    Raised when a fresh download has the wrong hash, and when a cached copy is corrupt and
    cannot be downloaded again (offline). The message names the dataset and the file.
    """


@dataclass(frozen=True)
class _Delegate:
    """An official fetcher that a manifest entry may name in ``fetch_with``.

    The manifest only gives the name; the function itself, the argument that receives the
    download folder and the keyword arguments the manifest may set are fixed here in code.
    """

    module: str
    function: str
    data_home_arg: str
    kwargs: dict[str, type] = field(default_factory=dict)
    fixed: dict[str, Any] = field(default_factory=dict)

    def resolve(self) -> Callable[..., Any]:
        return getattr(importlib.import_module(self.module), self.function)


# The only fetchers a manifest can delegate to (they verify their downloads themselves).
_DELEGATES: dict[str, _Delegate] = {
    "nilearn.datasets.fetch_development_fmri": _Delegate(
        "nilearn.datasets", "fetch_development_fmri", "data_dir",
        kwargs={"n_subjects": int, "age_group": str, "reduce_confounds": bool},
    ),
    # update_path=False: never write the user's MNE configuration behind their back
    "mne.datasets.sample.data_path": _Delegate(
        "mne.datasets.sample", "data_path", "path", fixed={"update_path": False, "download": True}
    ),
    "mne.datasets.testing.data_path": _Delegate(
        "mne.datasets.testing", "data_path", "path", fixed={"update_path": False, "download": True}
    ),
}


def _manifest_error(where: str, msg: str) -> ValueError:
    return ValueError(f"invalid dataset manifest ({where}): {msg}")


def _check_url(url: Any, where: str) -> str:
    if not isinstance(url, str) or urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc:
        raise _manifest_error(where, f"url must be an http(s) URL, got {url!r}")
    return url


def _check_hash(value: Any, where: str, kind: str = "sha256") -> str | None:
    pattern = _SHA256 if kind == "sha256" else _MD5
    if value is None:
        return None
    if not isinstance(value, str) or not pattern.match(value):
        raise _manifest_error(where, f"{kind} must be a lowercase hex digest or null, got {value!r}")
    return value


def _check_size(value: Any, where: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise _manifest_error(where, f"size must be a positive number of bytes or null, got {value!r}")
    return value


def _unsafe_path_reason(value: Any) -> str | None:
    """Why ``value`` is not a relative path confined to a folder (None when it is).

    Only forward slashes are accepted, so that a name means the same on every system.
    """
    if not isinstance(value, str) or not value:
        return "must be a non-empty string"
    if "\x00" in value:
        return "contains a NUL character"
    if "\\" in value:
        return "contains a backslash (use forward slashes)"
    if re.match(r"^[A-Za-z]:", value) or ":" in value:
        return "contains a drive letter or a colon"
    if value.startswith("/"):
        return "is an absolute path"
    parts = [p for p in value.split("/") if p not in ("", ".")]
    if not parts:
        return "names no file"
    if ".." in parts:
        return "contains a '..' component"
    return None


def _check_relpath(value: Any, where: str, key: str) -> str:
    reason = _unsafe_path_reason(value)
    if reason is not None:
        raise _manifest_error(where, f"{key} {value!r} {reason}; it must be a relative path inside the data folder")
    return value


def _check_fetch_with(spec: Any, where: str) -> dict[str, Any]:
    if not isinstance(spec, dict) or set(spec) - {"function", "kwargs"} or "function" not in spec:
        raise _manifest_error(where, "fetch_with must be a mapping with 'function' (and optional 'kwargs')")
    name = spec["function"]
    if not isinstance(name, str) or name not in _DELEGATES:
        raise _manifest_error(
            where, f"fetch_with.function {name!r} is not one of the known fetchers {sorted(_DELEGATES)}"
        )
    delegate = _DELEGATES[name]
    kwargs = spec.get("kwargs") or {}
    if not isinstance(kwargs, dict):
        raise _manifest_error(where, "fetch_with.kwargs must be a mapping")
    for key, value in kwargs.items():
        if key not in delegate.kwargs:
            raise _manifest_error(
                where, f"fetch_with.kwargs: {name} takes no argument {key!r} from the manifest "
                f"(allowed: {sorted(delegate.kwargs)})"
            )
        typ = delegate.kwargs[key]
        if not isinstance(value, typ) or (typ is int and isinstance(value, bool)):
            raise _manifest_error(
                where, f"fetch_with.kwargs.{key} must be {typ.__name__}, got {type(value).__name__}"
            )
    return {"function": name, "kwargs": dict(kwargs)}


def _check_members(entry: dict[str, Any], where: str) -> list[str] | None:
    members = entry.get("members")
    if members is None:
        return None
    if entry.get("unpack") is None or not isinstance(members, list) or not members:
        raise _manifest_error(where, "members must be a non-empty list and needs unpack")
    return [_check_relpath(m, where, "members entry") for m in members]


def _validate_entry(entry: Any, index: int) -> dict[str, Any]:
    if not isinstance(entry, dict):
        raise _manifest_error(f"entry {index}", f"must be a mapping, got {type(entry).__name__}")
    where = f"entry {entry.get('name', index)!r}"
    missing = [k for k in _REQUIRED if k not in entry]
    if missing:
        raise _manifest_error(where, f"missing field(s) {missing}")
    unknown = sorted(set(entry) - set(_REQUIRED) - set(_OPTIONAL))
    if unknown:
        raise _manifest_error(where, f"unknown field(s) {unknown}")
    if not isinstance(entry["name"], str) or not _NAME.match(entry["name"]):
        raise _manifest_error(where, "name must be lowercase letters, digits and underscores")
    for key in ("title", "license", "citation", "offline_fallback"):
        if not isinstance(entry[key], str) or not entry[key].strip():
            raise _manifest_error(where, f"{key} must be a non-empty string")
    used_by = entry["used_by"]
    if not isinstance(used_by, list) or not used_by or not all(isinstance(u, str) for u in used_by):
        raise _manifest_error(where, "used_by must be a non-empty list of crl_neuro module names")
    _check_url(entry["url"], where)
    _check_hash(entry["sha256"], where)
    _check_hash(entry.get("md5"), where, kind="md5")
    _check_size(entry["size"], where)
    unpack = entry.get("unpack")
    if unpack is not None and unpack not in _UNPACK:
        raise _manifest_error(where, f"unpack must be one of {list(_UNPACK)} or absent, got {unpack!r}")
    members = _check_members(entry, where)
    if "manual" in entry and not isinstance(entry["manual"], bool):
        raise _manifest_error(where, f"manual must be true or false, got {entry['manual']!r}")
    if entry.get("filename") is not None:
        _check_relpath(entry["filename"], where, "filename")
    modes = [k for k in ("files", "fetch_with", "manual") if entry.get(k)]
    if len(modes) > 1:
        raise _manifest_error(where, f"give only one of files/fetch_with/manual, got {modes}")

    out = deepcopy(entry)
    out["members"] = members
    if entry.get("files"):
        if not isinstance(entry["files"], list):
            raise _manifest_error(where, "files must be a list of {url, sha256, size}")
        if entry["sha256"] is not None:
            raise _manifest_error(where, "sha256 must be null when per-file hashes are listed in files")
        files = []
        for j, f in enumerate(entry["files"]):
            fw = f"{where}, file {j}"
            if not isinstance(f, dict) or set(f) - {"url", "sha256", "md5", "size", "filename"} or "url" not in f:
                raise _manifest_error(fw, "must be a mapping with url, sha256, size (md5, filename optional)")
            files.append(_file_spec(f, fw))
        names = [f["filename"] for f in files]
        if len(set(names)) != len(names):
            raise _manifest_error(where, f"files: two files share a file name in {names}")
        out["files"] = files
    elif entry.get("fetch_with"):
        out["fetch_with"] = _check_fetch_with(entry["fetch_with"], where)
        out["files"] = []
    elif entry.get("manual"):
        out["files"] = []
    else:
        out["files"] = [_file_spec(entry, where)]
    return out


def _file_spec(f: dict[str, Any], where: str) -> dict[str, Any]:
    """Validate one file downloaded by :func:`fetch` itself (sha256 required)."""
    url = _check_url(f["url"], where)
    if f.get("filename") is not None:
        filename = _check_relpath(f["filename"], where, "filename")
    else:
        filename = PurePosixPath(urlparse(url).path).name
        if not filename:
            raise _manifest_error(where, "the url does not end with a file name; give filename")
        _check_relpath(filename, where, "file name taken from url")
    sha256 = _check_hash(f.get("sha256"), where)
    if sha256 is None:
        # md5 alone is too weak to trust a download; entries without a sha256 must say how
        # they are obtained instead (manual: true, or fetch_with an official fetcher).
        raise _manifest_error(
            where, "sha256 is required for a file downloaded automatically (md5 is only a "
            "secondary check); give it, or mark the entry manual: true"
        )
    return {
        "url": url,
        "sha256": sha256,
        "md5": _check_hash(f.get("md5"), where, kind="md5"),
        "size": _check_size(f.get("size"), where),
        "filename": filename,
    }


def load_manifest(path: str | os.PathLike | None = None) -> dict[str, dict[str, Any]]:
    """Read and validate the data-set manifest.

    Parameters
    ----------
    path : path-like or None
        A manifest YAML file. ``None`` (default) reads the one packaged with crl_neuro.

    Returns
    -------
    manifest : dict
        Entry name -> entry (a fresh dict; editing it does not change the manifest). Each
        entry has the manifest's fields plus ``files``: a list of
        ``{"url", "sha256", "md5", "size", "filename"}`` to download (empty for entries
        delegated to an official fetcher or to be downloaded by hand).

    Raises
    ------
    ValueError
        If the manifest is malformed; the message names the entry and field. This includes
        file names or archive members that are not relative paths inside the data folder,
        automatically downloaded files without a sha256, and ``fetch_with`` naming a
        function that is not one of the known official fetchers.
    """
    import yaml

    if path is None:
        from importlib.resources import files

        text = files("crl_neuro.datasets").joinpath(MANIFEST_NAME).read_text(encoding="utf-8")
        source = MANIFEST_NAME
    else:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"path: no manifest file at {str(path)!r}")
        text = path.read_text(encoding="utf-8")
        source = str(path)
    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError as err:
        raise _manifest_error(source, f"not valid YAML ({err})") from err
    if not isinstance(doc, dict) or not isinstance(doc.get("datasets"), list):
        raise _manifest_error(source, "top level must be a mapping with a 'datasets' list")
    manifest: dict[str, dict[str, Any]] = {}
    for i, entry in enumerate(doc["datasets"]):
        checked = _validate_entry(entry, i)
        if checked["name"] in manifest:
            raise _manifest_error(source, f"duplicate dataset name {checked['name']!r}")
        manifest[checked["name"]] = checked
    return manifest


def get_data_home(data_home: str | os.PathLike | None = None) -> Path:
    """Return the cache directory for downloads.

    Parameters
    ----------
    data_home : path-like or None
        Explicit directory. ``None`` uses the environment variable ``CRL_NEURO_DATA`` when
        set, else the operating system's cache folder (``pooch.os_cache("crl_neuro")``).

    Returns
    -------
    path : pathlib.Path
    """
    if data_home is not None:
        if not isinstance(data_home, (str, os.PathLike)):
            raise TypeError(f"data_home must be a path or None, got {type(data_home).__name__}")
        return Path(data_home).expanduser()
    env = os.environ.get("CRL_NEURO_DATA")
    if env:
        return Path(env).expanduser()
    import pooch

    return Path(pooch.os_cache("crl_neuro"))


# ----------------------------------------------------------------------------- hashing
def _digests(path: Path, md5: bool = False) -> tuple[str, str | None]:
    """sha256 (and md5 when asked) of a file, read in chunks."""
    h256 = hashlib.sha256()
    h5 = hashlib.md5(usedforsecurity=False) if md5 else None
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(_CHUNK), b""):
            h256.update(chunk)
            if h5 is not None:
                h5.update(chunk)
    return h256.hexdigest(), (h5.hexdigest() if h5 is not None else None)


def _mismatch(path: Path, f: dict[str, Any]) -> str | None:
    """Which checksum of the manifest ``path`` fails (None when all match)."""
    sha, md5 = _digests(path, md5=f["md5"] is not None)
    if sha != f["sha256"]:
        return f"sha256 hash {sha} instead of {f['sha256']}"
    if f["md5"] is not None and md5 != f["md5"]:
        return f"md5 hash {md5} instead of {f['md5']}"
    return None


def _inside(path: Path, folder: Path) -> bool:
    """Whether ``path`` resolves inside ``folder`` (symlinks followed)."""
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


# ----------------------------------------------------------------------------- download
def _download(
    name: str, f: dict[str, Any], target: Path, downloader: Callable[..., Any] | None, progressbar: bool
) -> Path:
    """Return the verified local copy of one manifest file, downloading it when needed."""
    dest = target / f["filename"]
    if not _inside(dest.parent, target):
        raise ValueError(f"dataset {name!r}: filename {f['filename']!r} leads outside {str(target)!r}")
    corrupt = None
    if dest.is_file():
        corrupt = _mismatch(dest, f)
        if corrupt is None:
            return dest
    elif os.path.lexists(dest):
        corrupt = "not a regular file"
    if downloader is None:
        import pooch

        downloader = pooch.downloaders.choose_downloader(f["url"], progressbar=progressbar)
    dest.parent.mkdir(parents=True, exist_ok=True)
    # Download beside the destination, check, then rename: a failed or wrong download never
    # replaces the cached copy.
    fd, tmp_name = tempfile.mkstemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".part")
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        try:
            downloader(f["url"], str(tmp), None)
        except Exception as err:  # any download failure: re-raised, with the context when corrupt
            if corrupt is None:
                raise
            raise DatasetIntegrityError(
                f"dataset {name!r}: the cached copy of {f['filename']!r} at {str(dest)!r} is corrupt "
                f"({corrupt}) and downloading it again from {f['url']} failed "
                f"({type(err).__name__}: {err}); delete it or retry when online"
            ) from err
        wrong = _mismatch(tmp, f)
        if wrong is not None:
            raise DatasetIntegrityError(
                f"dataset {name!r}: the file {f['filename']!r} downloaded from {f['url']} does not "
                f"match the manifest: {wrong}"
            )
        if corrupt is not None and dest.is_dir() and not dest.is_symlink():
            shutil.rmtree(dest)
        elif corrupt is not None and os.path.lexists(dest) and not dest.is_file():
            dest.unlink()
        os.replace(tmp, dest)
    finally:
        if tmp.exists():
            tmp.unlink()
    return dest


# ----------------------------------------------------------------------------- unpacking
def _unsafe_member(name: str, kind: str) -> ValueError:
    return ValueError(f"unsafe archive member {name!r}: {kind}; nothing was extracted")


def _member_relpath(name: str, is_dir: bool) -> str | None:
    """The normalised relative path of an archive member (None for the archive root)."""
    stripped = name.rstrip("/") if is_dir else name
    if is_dir and not stripped:
        return None
    reason = _unsafe_path_reason(stripped)
    if reason is not None:
        raise _unsafe_member(name, reason)
    return "/".join(p for p in stripped.split("/") if p not in ("", "."))


def _selected(relpath: str, members: list[str] | None) -> bool:
    if members is None:
        return True
    norm = ["/".join(p for p in m.split("/") if p not in ("", ".")) for m in members]
    return any(relpath == m or relpath.startswith(m + "/") for m in norm)


def _zip_plan(zf: zipfile.ZipFile, members: list[str] | None) -> list[tuple[str, bool, Any]]:
    plan = []
    for info in zf.infolist():
        rel = _member_relpath(info.filename, info.is_dir())
        if rel is None or not _selected(rel, members):
            continue
        mode = (info.external_attr >> 16) & 0o170000
        # mode 0: archives written on Windows carry no unix type; they are plain files/dirs
        if mode == stat.S_IFLNK:
            raise _unsafe_member(info.filename, "a symbolic link")
        if mode not in (0, stat.S_IFREG, stat.S_IFDIR):
            raise _unsafe_member(info.filename, "a device, fifo or socket")
        plan.append((rel, info.is_dir(), info))
    return plan


def _tar_plan(tf: tarfile.TarFile, members: list[str] | None) -> list[tuple[str, bool, Any]]:
    plan = []
    for info in tf.getmembers():
        rel = _member_relpath(info.name, info.isdir())
        if rel is None or not _selected(rel, members):
            continue
        if info.issym() or info.islnk():
            raise _unsafe_member(info.name, "a symbolic or hard link")
        if not (info.isreg() or info.isdir()):
            raise _unsafe_member(info.name, "a device, fifo or other special file")
        plan.append((rel, info.isdir(), info))
    return plan


def _record_path(archive: Path) -> Path:
    return archive.with_name(archive.name + ".unpacked.json")


def _unpack(archive: Path, kind: str, members: list[str] | None, extract_dir: Path) -> dict[str, Any]:
    """Extract ``archive`` into ``extract_dir`` by a checked loop; return the record of files.

    Every selected member is checked before anything is written, so a bad archive leaves no
    trace; then the files are written into a temporary folder renamed into place.
    """
    opener = zipfile.ZipFile if kind == "zip" else tarfile.open
    with opener(archive) as ar:
        plan = _zip_plan(ar, members) if kind == "zip" else _tar_plan(ar, members)
        if members is not None:
            found = {rel for rel, _, _ in plan}
            for m in members:
                norm = "/".join(p for p in m.split("/") if p not in ("", "."))
                if not any(r == norm or r.startswith(norm + "/") for r in found):
                    raise ValueError(f"members: {m!r} is not in the archive {archive.name!r}")
        tmp = Path(tempfile.mkdtemp(dir=extract_dir.parent, prefix=f".{extract_dir.name}.", suffix=".tmp"))
        try:
            record: dict[str, dict[str, Any]] = {}
            for rel, is_dir, info in plan:
                out = tmp / rel
                if not _inside(out.parent if not is_dir else out, tmp):  # defence in depth
                    raise _unsafe_member(rel, "outside the target folder")
                if is_dir:
                    out.mkdir(parents=True, exist_ok=True)
                    continue
                out.parent.mkdir(parents=True, exist_ok=True)
                src = ar.open(info) if kind == "zip" else ar.extractfile(info)
                h = hashlib.sha256()
                size = 0
                with src, open(out, "wb") as dst:
                    while chunk := src.read(_CHUNK):
                        dst.write(chunk)
                        h.update(chunk)
                        size += len(chunk)
                record[rel] = {"size": size, "sha256": h.hexdigest()}
            if extract_dir.is_dir() and not extract_dir.is_symlink():
                shutil.rmtree(extract_dir)
            elif os.path.lexists(extract_dir):
                extract_dir.unlink()
            os.replace(tmp, extract_dir)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp)
    return record


def _unpacked_ok(extract_dir: Path, record_file: Path, archive_sha256: str, members: list[str] | None) -> str | None:
    """Why the unpacked files no longer match their record (None when they all do)."""
    if not extract_dir.is_dir() or extract_dir.is_symlink():
        return "not unpacked yet"
    try:
        record = json.loads(record_file.read_text(encoding="utf-8"))
        files = record["files"]
        same = record["archive_sha256"] == archive_sha256 and record["members"] == members
    except (OSError, ValueError, KeyError, TypeError):
        return "no valid record of the unpacked files"
    if not same or not isinstance(files, dict):
        return "unpacked from another archive or member list"
    for rel, meta in files.items():
        path = extract_dir / rel
        if _unsafe_path_reason(rel) is not None or path.is_symlink() or not path.is_file():
            return f"{rel!r} is missing"
        if path.stat().st_size != meta.get("size") or _digests(path)[0] != meta.get("sha256"):
            return f"{rel!r} was modified"
    return None


def _ensure_unpacked(name: str, archive: Path, f: dict[str, Any], kind: str, members: list[str] | None) -> Path:
    # Same folder names as pooch.Unzip / pooch.Untar, so earlier caches stay valid.
    extract_dir = archive.with_name(archive.name + (".unzip" if kind == "zip" else ".untar"))
    record_file = _record_path(archive)
    why = _unpacked_ok(extract_dir, record_file, f["sha256"], members)
    if why is None:
        return extract_dir
    if why not in ("not unpacked yet", "no valid record of the unpacked files"):
        warnings.warn(f"dataset {name!r}: {why} in {str(extract_dir)!r}; unpacking again", UserWarning, stacklevel=3)
    try:
        files = _unpack(archive, kind, members, extract_dir)
    except ValueError as err:
        raise ValueError(f"dataset {name!r}, archive {f['filename']!r}: {err}") from err
    except (zipfile.BadZipFile, tarfile.TarError) as err:
        raise DatasetIntegrityError(f"dataset {name!r}: cannot read the archive {f['filename']!r} ({err})") from err
    tmp = record_file.with_name(record_file.name + ".tmp")
    tmp.write_text(
        json.dumps({"archive_sha256": f["sha256"], "members": members, "files": files}, indent=1), encoding="utf-8"
    )
    os.replace(tmp, record_file)
    return extract_dir


def fetch(
    name: str,
    data_home: str | os.PathLike | None = None,
    downloader: Callable[..., Any] | None = None,
    progressbar: bool = False,
    manifest: str | os.PathLike | None = None,
) -> Any:
    """Download a data set of the manifest (once), check its hash and return its local path(s).

    Parameters
    ----------
    name : str
        Entry name, see ``load_manifest().keys()``.
    data_home : path-like or None
        Cache directory; files go to ``data_home/name/``. Default: ``$CRL_NEURO_DATA`` or
        ``pooch.os_cache("crl_neuro")`` (see :func:`get_data_home`).
    downloader : callable or None
        A pooch downloader ``downloader(url, output_file, pooch, check_only=False)``; ``None``
        lets pooch choose from the URL (HTTP/FTP/DOI). Tests pass one that copies local files.
    progressbar : bool
        Show pooch's progress bar (needs tqdm) when pooch picks the downloader.
    manifest : path-like or None
        Use another manifest file instead of the packaged one.

    Returns
    -------
    path : pathlib.Path or list of pathlib.Path or object
        The file (single-file entries), the list of files (multi-file entries) or the
        directory the archive was extracted to (entries with ``unpack``). Entries with
        ``fetch_with`` return what the official fetcher returns.

    Raises
    ------
    ValueError
        If ``name`` is not in the manifest (the message lists the valid names), if the
        entry must be downloaded by hand, or if an archive holds an unsafe member (a path
        outside the target folder, an absolute path, ``..``, a link, a device or a fifo;
        nothing is extracted then).
    DatasetIntegrityError
        If a downloaded file fails its hash check, or if a cached copy is corrupt and
        cannot be downloaded again (offline). A subclass of ``ValueError``.

    Warns
    -----
    UserWarning
        When files unpacked earlier from an archive were modified or removed: they are
        unpacked again from the verified archive.

    Notes
    -----
    A cached file is hashed on every call and downloaded again when it no longer matches
    the manifest; files unpacked from an archive are checked against a record
    (``<archive>.unpacked.json``: size and sha256 of each file) written when unpacking.
    """
    if not isinstance(name, str):
        raise TypeError(f"name must be a str, got {type(name).__name__}")
    if not isinstance(progressbar, bool):
        raise TypeError(f"progressbar must be a bool, got {type(progressbar).__name__}")
    if downloader is not None and not callable(downloader):
        raise TypeError(f"downloader must be callable or None, got {type(downloader).__name__}")
    entries = load_manifest(manifest)
    if name not in entries:
        raise ValueError(f"name: unknown dataset {name!r}; valid names are {sorted(entries)}")
    entry = entries[name]

    if entry.get("manual"):
        raise ValueError(
            f"dataset {name!r} cannot be downloaded automatically; get it from {entry['url']} "
            f"(offline: {entry['offline_fallback']})"
        )
    target = get_data_home(data_home) / name
    if entry.get("fetch_with"):
        spec = entry["fetch_with"]
        delegate = _DELEGATES[spec["function"]]
        kwargs = {**spec["kwargs"], **delegate.fixed, delegate.data_home_arg: str(target)}
        target.mkdir(parents=True, exist_ok=True)
        return delegate.resolve()(**kwargs)

    target.mkdir(parents=True, exist_ok=True)
    paths = []
    for f in entry["files"]:
        local = _download(name, f, target, downloader, progressbar)
        if entry.get("unpack"):
            local = _ensure_unpacked(name, local, f, entry["unpack"], entry["members"])
        paths.append(local)
    if len(paths) == 1:
        return paths[0]
    return paths
