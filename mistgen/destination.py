"""Where a store is built, and how it takes the place of what stands at its path.

A store is built in a hidden sibling, ``.<name>.partial-<pid>@<host>-<token>``, and renamed
onto its path only once complete. Replacing what stands there follows three rules:

* Only a mistgen store (a directory holding nothing but a store's entries, down to its
  chunk files) or an empty directory is ever removed, and that is checked again at the
  moment of replacement: the
  old entry is renamed aside (atomically), checked there, and put back untouched if it is
  anything else. Concurrent builds of one path therefore replace each other's stores but
  never anything else.
* A symbolic link at the path is refused, neither followed nor replaced: pass the link's
  target to rebuild the store it points to.
* Partial builds (and set-aside old stores) that a killed build left beside the path are
  removed by the next build of that path when they hold only a store's entries and their
  builder (a process on this host) is gone; any other leftover is reported with a
  ``StoreWarning`` and left alone.
"""
from __future__ import annotations

import os
import re
import shutil
import socket
import uuid
import warnings
from pathlib import Path

from .errors import StoreError, StoreWarning
from .store import is_store, mark_complete, store_entries

TAG = re.compile(r"^(?P<pid>\d+)@(?P<host>.+)-(?P<token>[0-9a-f]{8})$")
KINDS = ("partial", "old")


def _host() -> str:
    return socket.gethostname().replace(os.sep, "_") or "localhost"


def _sibling(path: Path, kind: str) -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}@{_host()}-{uuid.uuid4().hex[:8]}")


def partial_path(path: Path) -> Path:
    """A hidden sibling to build into, named after this process and host."""
    return _sibling(path, "partial")


def _foreign(path: Path) -> str | None:
    """Why ``path`` is not ours to remove, or ``None`` when it is a store or an empty dir."""
    if path.is_symlink():
        return f"is a symbolic link (to {os.readlink(path)})"
    if not path.is_dir():
        return "is not a directory"
    entries = sorted(e.name for e in path.iterdir())
    if not entries:
        return None
    if not is_store(path):
        return "exists and is not a mistgen meta-dataset"
    allowed = store_entries(path)
    others = [e for e in entries if e not in allowed] or _stray_files(path)
    if others:
        return f"holds entries that are not part of a meta-dataset ({', '.join(others[:5])})"
    return None


# the files of a store below its top directory: an array's or group's metadata and chunks
# a chunk may also be zarr's temporary file of it, left by a build killed while writing it
_STORE_FILE = re.compile(r"(?:(?!shards/)[^/]+|shards/\d+)/(?:zarr\.json"
                         r"|c(?:/\d+)+(?:\.[0-9a-f]{32}\.partial)?)"
                         r"|shards/zarr\.json")


def _stray_files(path: Path) -> list[str]:
    """Files (or links) under a store's entries that a store does not hold, as paths
    relative to ``path``: a user's notes left inside a store are not ours to delete."""
    stray = []
    for root, dirs, files in os.walk(path):
        for name in files + [d for d in dirs if os.path.islink(os.path.join(root, d))]:
            rel = os.path.relpath(os.path.join(root, name), path).replace(os.sep, "/")
            if rel != "zarr.json" and (os.path.islink(os.path.join(root, name))
                                       or not _STORE_FILE.fullmatch(rel)):
                stray.append(rel)
    return sorted(stray)


def check_destination(path: Path, overwrite: bool) -> None:
    """Refuse a destination that is a link, exists without ``overwrite``, or is not ours."""
    if path.is_symlink():
        raise StoreError(
            f"{path} is a symbolic link (to {os.readlink(path)}); refusing to build over it: "
            "pass the link's target to rebuild the store it points to, or remove the link"
        )
    if not path.exists():
        _make_parent(path)
        return
    if not overwrite:
        raise StoreError(f"{path} already exists; pass overwrite=True to replace it")
    reason = _foreign(path)
    if reason:
        raise StoreError(f"{path} {reason}; refusing to overwrite it")


def _make_parent(path: Path) -> None:
    """Create the folders above ``path``, refusing a path that runs through a file."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = _file_above(path)
        raise StoreError(
            f"cannot build {path}: {blocker} exists and is not a folder (a file, say), so "
            f"no store can be made below it; choose another path or move {blocker} away"
        ) from None


def _file_above(path: Path) -> Path:
    """The first entry above ``path`` that exists but is not a directory."""
    for parent in reversed(path.parents):
        if os.path.lexists(parent) and not parent.is_dir():
            return parent
    return path.parent


def finalize(tmp: Path, final: Path, overwrite: bool) -> None:
    """Mark the store built at ``tmp`` complete and move it onto ``final``."""
    mark_complete(tmp)
    aside = _set_aside(final, overwrite) if os.path.lexists(final) else None
    try:
        os.rename(tmp, final)
    except OSError as exc:
        kept = f"; the store it replaced is kept at {aside}" if aside else ""
        raise StoreError(
            f"{final} was taken by something else while the new store was moved in "
            f"({exc.strerror}); it was left alone{kept}"
        ) from exc
    if aside is not None:
        shutil.rmtree(aside)


def _set_aside(final: Path, overwrite: bool) -> Path | None:
    """Rename what stands at ``final`` aside if it is ours to replace; else refuse."""
    if not overwrite:
        raise StoreError(f"{final} appeared while building; refusing to overwrite it")
    reason = _foreign(final)
    if reason:
        raise StoreError(f"{final} {reason}; refusing to overwrite it")
    aside = _sibling(final, "old")
    try:
        os.rename(final, aside)
    except FileNotFoundError:  # removed meanwhile: nothing to replace
        return None
    reason = _foreign(aside)  # what was renamed may differ from what was checked
    if reason is None:
        return aside
    try:
        os.rename(aside, final)
    except OSError:
        raise StoreError(
            f"{final} {reason}; refusing to overwrite it. It was moved to {aside} to be "
            f"checked and could not be put back because {final} is taken again: move it "
            "back by hand"
        ) from None
    raise StoreError(f"{final} {reason}; refusing to overwrite it (it was left as found)")


def clean_stale_builds(path: Path) -> None:
    """Remove what killed builds of ``path`` left beside it, or warn about it."""
    if not path.parent.is_dir():
        return
    prefixes = tuple(f".{path.name}.{kind}-" for kind in KINDS)
    for entry in sorted(path.parent.iterdir()):
        if not entry.name.startswith(prefixes):
            continue
        reason = _why_kept(entry, _tag(entry, path))
        if reason is None:
            shutil.rmtree(entry)
            warnings.warn(f"removed {entry}, left by a build of {path} that is no longer "
                          "running", StoreWarning, stacklevel=4)
        else:
            warnings.warn(f"left {entry} alone: {reason}", StoreWarning, stacklevel=4)


def _tag(entry: Path, path: Path) -> str:
    for kind in KINDS:
        prefix = f".{path.name}.{kind}-"
        if entry.name.startswith(prefix):
            return entry.name[len(prefix):]
    return ""


def _why_kept(entry: Path, tag: str) -> str | None:
    match = TAG.match(tag)
    if match is None:
        return "it does not name the build that made it (remove it if no build is running)"
    pid, host = int(match["pid"]), match["host"]
    if host != _host():
        return f"it was made on host {host!r}, where this build cannot check its builder"
    if _running(pid):
        return f"its builder (pid {pid}) is still running"
    reason = _foreign(entry)
    return None if reason is None else f"it {reason}; check it and remove it by hand"


def _running(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's
        return True
    return True
