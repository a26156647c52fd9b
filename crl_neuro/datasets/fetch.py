"""Download the public data sets listed in ``datasets_manifest.yaml``, hash-checked, with pooch.

The manifest ships inside the package (``crl_neuro/datasets/datasets_manifest.yaml``; the
project root holds a symbolic link to it). Each entry names a public source, its checksum
when one is known, its size, licence, citation, the crl_neuro modules that use it and what
to use offline. :func:`fetch` downloads an entry into a cache directory, verifies the
checksum and unpacks archives; files already in the cache with the right hash are reused.
"""

from __future__ import annotations

import importlib
import os
import re
import warnings
from copy import deepcopy
from pathlib import Path
from typing import Any, Callable
from urllib.parse import urlparse

__all__ = ["load_manifest", "fetch", "get_data_home", "MANIFEST_NAME"]

MANIFEST_NAME = "datasets_manifest.yaml"
_REQUIRED = ("name", "title", "url", "sha256", "size", "license", "citation", "used_by", "offline_fallback")
_OPTIONAL = ("description", "md5", "filename", "files", "unpack", "members", "fetch_with", "manual")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_MD5 = re.compile(r"^[0-9a-f]{32}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_]*$")
_UNPACK = ("zip", "tar")


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
    members = entry.get("members")
    if members is not None and (unpack is None or not isinstance(members, list)):
        raise _manifest_error(where, "members must be a list and needs unpack")
    modes = [k for k in ("files", "fetch_with", "manual") if entry.get(k)]
    if len(modes) > 1:
        raise _manifest_error(where, f"give only one of files/fetch_with/manual, got {modes}")

    out = deepcopy(entry)
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
            files.append(
                {
                    "url": _check_url(f["url"], fw),
                    "sha256": _check_hash(f.get("sha256"), fw),
                    "md5": _check_hash(f.get("md5"), fw, kind="md5"),
                    "size": _check_size(f.get("size"), fw),
                    "filename": f.get("filename") or Path(urlparse(f["url"]).path).name,
                }
            )
        out["files"] = files
    elif entry.get("fetch_with"):
        fw = entry["fetch_with"]
        if not isinstance(fw, dict) or not isinstance(fw.get("function"), str) or "." not in fw["function"]:
            raise _manifest_error(where, "fetch_with needs a dotted 'function' name")
        if not isinstance(fw.get("kwargs", {}), dict):
            raise _manifest_error(where, "fetch_with.kwargs must be a mapping")
        out["files"] = []
    elif entry.get("manual"):
        out["files"] = []
    else:
        filename = entry.get("filename") or Path(urlparse(entry["url"]).path).name
        if not filename:
            raise _manifest_error(where, "the url does not end with a file name; give filename")
        out["files"] = [
            {
                "url": entry["url"],
                "sha256": entry["sha256"],
                "md5": entry.get("md5"),
                "size": entry["size"],
                "filename": filename,
            }
        ]
    return out


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
        delegated to another fetcher or to be downloaded by hand).

    Raises
    ------
    ValueError
        If the manifest is malformed; the message names the entry and field.
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


def _known_hash(f: dict[str, Any], name: str) -> str | None:
    if f["sha256"]:
        return f"sha256:{f['sha256']}"
    if f["md5"]:
        return f"md5:{f['md5']}"
    warnings.warn(
        f"dataset {name!r}: no checksum is known for {f['url']}; the download cannot be verified",
        UserWarning,
        stacklevel=3,
    )
    return None


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
        ``fetch_with`` return what the delegated fetcher returns.

    Raises
    ------
    ValueError
        If ``name`` is not in the manifest (the message lists the valid names), if the
        entry must be downloaded by hand, or if a downloaded file fails its hash check.

    Warns
    -----
    UserWarning
        When an entry has no known checksum: the file is downloaded but not verified.
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
    if entry.get("fetch_with"):
        spec = entry["fetch_with"]
        module_name, func_name = spec["function"].rsplit(".", 1)
        func = getattr(importlib.import_module(module_name), func_name)
        kwargs = dict(spec.get("kwargs") or {})
        if spec.get("data_home_arg"):
            kwargs[spec["data_home_arg"]] = str(get_data_home(data_home) / name)
        return func(**kwargs)

    import pooch

    target = get_data_home(data_home) / name
    paths = []
    for f in entry["files"]:
        processor = None
        if entry.get("unpack") == "zip":
            processor = pooch.Unzip(members=entry.get("members"))
        elif entry.get("unpack") == "tar":
            processor = pooch.Untar(members=entry.get("members"))
        out = pooch.retrieve(
            url=f["url"],
            known_hash=_known_hash(f, name),
            fname=f["filename"],
            path=target,
            processor=processor,
            downloader=downloader,
            progressbar=progressbar,
        )
        if processor is not None:
            # pooch extracts next to the archive, into "<archive>.unzip" / "<archive>.untar"
            paths.append(Path(processor.extract_dir))
        else:
            paths.append(Path(out))
    if len(paths) == 1:
        return paths[0]
    return paths
