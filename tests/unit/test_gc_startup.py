"""Garbage collection (pipeline._gc): a command-line process runs no full collection while
torch imports and freezes what it imported, in-process calls keep Python's defaults (each case
in a fresh interpreter, counting collections with ``gc.callbacks``); one_collection frees a
block's reference cycles once, at its end."""

from __future__ import annotations

import gc
import os
import subprocess
import sys
import weakref
from pathlib import Path

from pipeline._gc import one_collection
from tests.project_paths import PROJECT_ROOT

_PROBE = """
import gc, sys
full = []
gc.callbacks.append(lambda phase, info: full.append(1)
                    if phase == "stop" and info["generation"] == 2 else None)
from pipeline import _gc
if sys.argv[1] == "command-line":
    _gc.command_line_process()
with _gc.lasting_imports("torch"):
    off_inside = not gc.isenabled()
print(len(full), gc.get_freeze_count(), off_inside, gc.isenabled())
"""


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(
        p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)}


def _probe(mode: str) -> tuple[int, int, bool, bool]:
    result = subprocess.run([sys.executable, "-c", _PROBE, mode], cwd=PROJECT_ROOT, env=_env(),
                            capture_output=True, text=True, check=True, timeout=300)
    full, frozen, off_inside, enabled_after = result.stdout.split()
    return int(full), int(frozen), off_inside == "True", enabled_after == "True"


def test_command_line_imports_run_no_full_collection_and_are_frozen() -> None:
    full, frozen, off_inside, enabled_after = _probe("command-line")
    assert full == 0
    assert off_inside and enabled_after
    assert frozen > 100_000  # torch's modules, functions and classes


def test_in_process_imports_keep_pythons_collector() -> None:
    # The oracle for the test above: the same import, collector untouched, runs full
    # collections and freezes nothing.
    full, frozen, off_inside, enabled_after = _probe("in-process")
    assert full >= 1
    assert frozen == 0
    assert not off_inside and enabled_after


def test_python_m_pipeline_is_a_command_line_process(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pipeline", "-v", "figures", "--study", str(tmp_path / "none"),
         "--subject", "s01", "--out-dir", str(tmp_path / "figures")],
        cwd=PROJECT_ROOT, env=_env(), capture_output=True, text=True, check=False, timeout=300)
    assert result.returncode == 2
    assert "objects kept out of the garbage collector's scans" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "figures").exists()


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the collector frees it


def test_one_collection_frees_the_blocks_cycles_once_at_its_end() -> None:
    assert gc.isenabled()
    with one_collection():
        assert not gc.isenabled()
        node = _Node()
        ref = weakref.ref(node)
        del node
        assert ref() is not None  # no collection inside the block
    assert gc.isenabled()
    assert ref() is None  # the young collection at the end reclaimed the cycle


def test_one_collection_inside_a_disabled_collector_changes_nothing() -> None:
    gc.disable()
    try:
        with one_collection():
            node = _Node()
            ref = weakref.ref(node)
            del node
        assert not gc.isenabled()
        assert ref() is not None
    finally:
        gc.enable()
        gc.collect()
    assert ref() is None
