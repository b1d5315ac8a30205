"""Garbage collection in a command-line process: what a command imports stays out of the
collector's way.

CPython's full (generation 2) collection scans every container object it tracks, and a full
collection runs each time the number of long-lived objects has grown by a quarter. Importing
torch creates about 166,000 such objects (scipy, matplotlib and OpenSim tens of thousands more),
none of which ever becomes garbage; while they are created the heap grows by a quarter again and
again, so a calibrate process ran 4 full collections, about 0.7 s of its 4 s, scanning modules.

:func:`lasting_imports` turns the collector off while a block imports and then freezes every
object that exists (:func:`gc.freeze`: later collections skip them; objects still die when no
longer referenced, only a reference cycle among them would stay until the process ends). It acts
only in a command-line process (:func:`command_line_process`, called by ``python -m pipeline`` and
the ``nms-pipeline`` script); called in-process (tests, notebooks) it changes nothing.

:func:`one_collection` is for the opposite case, a block whose objects do become garbage in
reference cycles (a matplotlib figure): it acts in any process.
"""

from __future__ import annotations

import gc
import importlib
import logging
from collections.abc import Iterator
from contextlib import contextmanager

log = logging.getLogger(__name__)
_state = {"command_line": False}


def command_line_process() -> None:
    """Mark this process as one command-line run (its imports last until it ends)."""
    _state["command_line"] = True


@contextmanager
def lasting_imports(*modules: str) -> Iterator[None]:
    """No collection while the block imports; then freeze what exists (command line only).

    ``modules`` are imported first, inside the block (for a library that the block's own
    modules import only when first used, e.g. ``opensim``). Nested blocks, and blocks entered
    while the collector is off, leave the freezing to the outer one.
    """
    if not _state["command_line"] or not gc.isenabled():
        _import(modules)
        yield
        return
    gc.disable()
    try:
        _import(modules)
        yield
    finally:
        gc.freeze()
        gc.enable()
        log.debug("start-up: %d objects kept out of the garbage collector's scans",
                  gc.get_freeze_count())


def _import(modules: tuple[str, ...]) -> None:
    for name in modules:
        importlib.import_module(name)


@contextmanager
def one_collection() -> Iterator[None]:
    """No collection while the block runs, one young-generation collection when it ends.

    For a block that builds a large structure full of reference cycles and drops it (one
    matplotlib figure: ~100,000 objects, every artist pointing back at its figure). Collected
    as it grows, the structure is scanned again and again as it ages into older generations;
    here it stays young and is scanned once, after it became garbage (a subject's figures:
    2.4-3.0 -> 1.35-1.5 s of collection). Nested blocks leave the collection to the outer one.
    """
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()
        gc.collect(0)
