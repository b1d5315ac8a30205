"""Running an OpenSim tool from its setup file: staging folders, relative paths, publishing.

Every tool follows the same steps (opencap / AddBiomechanics pattern): load a setup template (or
build a default one); set the model, inputs, time range and outputs; write the resolved setup XML
beside the outputs with paths relative to it, so ``opensim-cmd run-tool <setup>`` reruns the
step; run the tool from that setup in a staging folder and check the returned boolean; check a
post-condition; then move the outputs into place (the declared outputs last), so a failed step
never leaves a partial output behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from pipeline.fileio import atomic_path


def rel(path: str | Path, start: str | Path) -> str:
    """``path`` relative to the folder ``start`` (how setup files refer to their files)."""
    return os.path.relpath(Path(path).resolve(), Path(start).resolve())


@contextlib.contextmanager
def staging_dir(out_dir: str | Path) -> Iterator[Path]:
    """A temporary folder inside ``out_dir`` for a tool's outputs; removed afterwards."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".stage-", dir=out_dir))
    try:
        yield stage
    finally:
        shutil.rmtree(stage, ignore_errors=True)


@contextlib.contextmanager
def working_dir(path: str | Path) -> Iterator[None]:
    """Run a tool from its setup's folder (what ``cd <folder> && opensim-cmd run-tool`` does):
    some tools resolve relative file names against the working directory."""
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


def publish(files: Sequence[tuple[Path, Path]]) -> None:
    """Move staged files onto their targets in order (put the declared outputs last)."""
    for staged, target in files:
        target.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged, target)


def print_setup(tool: Any, target: Path) -> None:
    """Write a tool's setup XML atomically."""
    with atomic_path(target) as tmp:
        if not tool.printToXML(str(tmp)):
            raise OSError(f"OpenSim could not write {target}")


def array_str(values: Sequence[str]) -> Any:
    import opensim as osim

    array = osim.ArrayStr()
    for value in values:
        array.append(value)
    return array


def array_double(values: Sequence[float]) -> Any:
    import opensim as osim

    array = osim.ArrayDouble()
    for value in values:
        array.append(float(value))
    return array
