"""Provenance of a result: package version, git commit, config hash, seed and input hashes.

Every JSON result (``parameters.json``, ``metrics.json``) carries :func:`provenance`, so a number
can be traced to the code, the settings and the exact input files that produced it.

:func:`config_section_hash` is for the workflow: a rule that passes the hash of the config
sections it reads as a ``params:`` value is rerun by Snakemake (rerun trigger ``params``) when,
and only when, one of those sections changes::

    rule calibrate:
        params:
            config_sha256=config_section_hash(config, "calibration", "models"),

Hashes are SHA-256 of *canonical* JSON (sorted keys, no whitespace, UTF-8), so they do not depend
on key order in YAML files or on the Python version.
"""

from __future__ import annotations

import hashlib
import json
import logging
import subprocess
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

import pipeline

log = logging.getLogger(__name__)

PACKAGE_DIR = Path(pipeline.__file__).resolve().parent
HASH_CHUNK_BYTES = 1 << 20


def canonical_json(data: Any) -> str:
    """JSON text that is identical for equal data: sorted keys, compact, paths as strings."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                      default=_json_default)


def _json_default(value: Any) -> Any:
    if isinstance(value, Path):
        return value.as_posix()
    if isinstance(value, set | frozenset):
        return sorted(value, key=str)
    if hasattr(value, "tolist"):  # NumPy scalars and arrays
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def sha256_of(data: Any) -> str:
    """SHA-256 of the canonical JSON of ``data``: the one hash of settings used everywhere
    (provenance records, ``nms_inputs.npz`` metadata and the workflow's rerun params)."""
    return sha256_text(canonical_json(data))


def config_sha256(config: Mapping[str, Any]) -> str:
    """SHA-256 of the canonical JSON of the whole (merged) config."""
    return sha256_of(config)


def lookup(config: Mapping[str, Any], dotted: str) -> Any:
    """The value at a dotted key such as ``"opensim.ik.on_error"``; None when missing."""
    node: Any = config
    for part in dotted.split("."):
        if not isinstance(node, Mapping) or part not in node:
            return None
        node = node[part]
    return node


def config_section_hash(config: Mapping[str, Any], *keys: str) -> str:
    """SHA-256 of the config sections named by ``keys`` (dotted paths such as
    ``"calibration.optimiser"``). A missing section hashes as ``null``, so adding it later
    changes the hash. With no keys, the whole config is hashed.
    """
    if not keys:
        return config_sha256(config)
    return sha256_of({key: lookup(config, key) for key in keys})


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(HASH_CHUNK_BYTES), b""):
            digest.update(chunk)
    return digest.hexdigest()


def git_commit(directory: str | Path | None = None) -> str | None:
    """The project's ``HEAD`` commit, or None when ``directory`` (default: the package's parent
    folder) is not the root of a git checkout, or git is not installed. An installed package
    sits in site-packages, which may lie inside some other repository (a lab's study folder with
    its virtual environment): that repository's commit is not the code's, so it gives None."""
    cwd = Path(directory) if directory is not None else PACKAGE_DIR.parent
    try:
        result = subprocess.run(["git", "rev-parse", "--show-toplevel", "HEAD"], cwd=cwd,
                                capture_output=True, text=True, timeout=10, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    lines = result.stdout.splitlines()
    if result.returncode != 0 or len(lines) != 2 or len(lines[1]) != 40:
        return None
    top, commit = lines
    return commit if Path(top).resolve() == cwd.resolve() else None


def provenance(config: Mapping[str, Any], *, seed: int, inputs: Iterable[str | Path]) -> dict:
    """Provenance record for a result made from ``config`` and the files ``inputs``.

    Returns ``{"package_version", "git_commit", "config_sha256", "seed", "inputs"}`` where
    ``inputs`` maps each input path (as given, POSIX form) to its SHA-256, in sorted order.
    ``git_commit`` is None outside a git checkout.
    """
    hashes = {Path(p).as_posix(): file_sha256(p) for p in inputs}
    return {
        "package_version": pipeline.__version__,
        "git_commit": git_commit(),
        "config_sha256": config_sha256(config),
        "seed": int(seed),
        "inputs": dict(sorted(hashes.items())),
    }


def study_provenance(config: Mapping[str, Any], inputs: Iterable[str | Path]) -> dict:
    """:func:`provenance` of a study step, seeded with ``calibration.seed`` of ``config``."""
    seed = int(lookup(config, "calibration.seed") or 0)
    return provenance(config, seed=seed, inputs=inputs)
