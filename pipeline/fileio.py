"""Atomic writes: outputs appear complete or not at all."""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def user_cache_dir() -> Path:
    """The project's cache folder: ``$PIPELINE_CACHE_DIR``, else ``$XDG_CACHE_HOME/pipeline``
    (``~/.cache/pipeline``). Never created here."""
    root = os.environ.get("PIPELINE_CACHE_DIR") or Path(
        os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "pipeline"
    return Path(root)


def cache_entry(kind: str, key: str, *, suffix: str = "") -> Path:
    """The cache file of ``key`` (any text naming what was computed from what) in the cache
    folder ``kind``: its name is the key's SHA-256. Never created here."""
    import hashlib

    return user_cache_dir() / kind / f"{hashlib.sha256(key.encode('utf-8')).hexdigest()}{suffix}"


def file_stamp(path: str | Path) -> str | None:
    """``path:mtime_ns:size`` of a file (path resolved): part of a cache key that a rewrite of
    the file changes. None when the file cannot be read."""
    try:
        resolved = Path(path).resolve()
        stat = os.stat(resolved)
    except OSError:
        return None
    return f"{resolved}:{stat.st_mtime_ns}:{stat.st_size}"


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside ``target``; rename it onto ``target`` on success.

    On any exception the temporary file is removed and ``target`` is left untouched.
    """
    target = Path(target)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix,
                                   dir=target.parent)
    except OSError as exc:
        raise _named(exc, target) from exc
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        if tmp_path.exists():
            os.chmod(tmp_path, 0o666 & ~_umask())  # mkstemp makes 0600; use normal permissions
        os.replace(tmp_path, target)
    except OSError as exc:
        raise _named(exc, target) from exc
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def _named(exc: OSError, target: Path) -> OSError:
    """``exc`` naming ``target`` (a write that fails half-way names no file, or the temp file)."""
    if exc.filename is not None and not Path(str(exc.filename)).name.startswith(
            f".{target.name}."):
        return exc
    return type(exc)(exc.errno, exc.strerror, str(target))


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def write_text_atomic(target: str | Path, text: str) -> None:
    """Write ``text`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json_atomic(target: str | Path, data: Any) -> None:
    """Write ``data`` as indented JSON to ``target`` atomically."""
    write_text_atomic(target, json.dumps(data, indent=2, sort_keys=False) + "\n")
