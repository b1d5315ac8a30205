"""The lab's marker names -> the model's marker names (``models.<model>.marker_names``).

A C3D label may carry a subject prefix (``Name:RASI``, Vicon Nexus); with
``strip_marker_prefix`` everything up to the last ``:`` is removed first. With a mapping, only
mapped markers are kept (renamed); without one, every marker is kept under its (stripped) label.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from os import PathLike

from pipeline.errors import C3DError, describe

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class MarkerSelection:
    """Columns of the C3D markers to keep (``indices``), their new names, the ignored labels."""

    indices: tuple[int, ...]
    names: tuple[str, ...]
    ignored: tuple[str, ...]


def strip_prefix(label: str) -> str:
    """``"Name:RASI"`` -> ``"RASI"``; a label without ``:`` is returned unchanged."""
    return label.rsplit(":", 1)[-1].strip()


def select_markers(labels: tuple[str, ...] | list[str], /, *, names: Mapping[str, str],
                   strip_marker_prefix: bool = False,
                   file: str | PathLike[str] | None = None) -> MarkerSelection:
    """Which C3D markers to keep and under which model names.

    ``names`` maps C3D labels (after prefix removal) to model marker names; empty keeps every
    marker. Two labels mapped to one model marker is an error naming both.
    """
    plain = [strip_prefix(lb) if strip_marker_prefix else lb for lb in labels]
    indices: list[int] = []
    out: list[str] = []
    ignored: list[str] = []
    for i, label in enumerate(plain):
        target = names.get(label) if names else label
        if target is None:
            ignored.append(label)
            continue
        if target in out:
            other = plain[indices[out.index(target)]]
            raise C3DError(describe(file, f"markers {other!r} and {label!r} both map to the "
                                    f"model marker {target!r}",
                                    "map each C3D marker to its own model marker in "
                                    "models.<model>.marker_names"))
        indices.append(i)
        out.append(target)
    if names and not out:
        raise C3DError(describe(file, "none of the C3D markers is in models.<model>.marker_names "
                                f"(C3D labels: {', '.join(plain[:12])}"
                                f"{' ...' if len(plain) > 12 else ''})",
                                "use the C3D labels as keys of marker_names (set "
                                "strip_marker_prefix: true for labels like 'Name:RASI')"))
    missing = sorted(set(names) - set(plain)) if names else []
    if missing:
        log.info("%s: mapped markers absent from this trial: %s", file, ", ".join(missing))
    if ignored:
        log.info("%s: markers not in models.<model>.marker_names (ignored by scaling and IK): %s",
                 file, ", ".join(ignored))
    return MarkerSelection(tuple(indices), tuple(out), tuple(ignored))
