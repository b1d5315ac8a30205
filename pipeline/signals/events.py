"""Time windows for later stages: gait cycles from C3D events, stance from GRF, kinematic cycles.

``source: auto`` takes C3D foot-strike events when there are two strikes of one foot, then the
GRF stance phases, then movement cycles between peaks of the most-moving marker (upper-limb
tasks). Windows must lie within the trial's ``start_s``/``end_s`` and last at least
``min_cycle_s``.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from scipy.signal import find_peaks

from pipeline.errors import C3DError, describe
from pipeline.io.c3d import Event
from pipeline.signals.filters import finite_runs

log = logging.getLogger(__name__)

_STRIKE = re.compile(r"strike|heel|contact|(^|[^a-z])[lr]?hs$|^[lr]ic$", re.IGNORECASE)


def _side(event: Event) -> str:
    context = event.context.lower()
    if context.startswith(("l", "r")):
        return context[0]
    label = event.label.strip().lower()
    return label[0] if label[:1] in ("l", "r") else "?"


def c3d_cycles(events: Sequence[Event], /) -> list[tuple[float, float]]:
    """Gait cycles between successive foot strikes of the same foot."""
    windows = []
    for side in ("r", "l", "?"):
        strikes = sorted(e.time_s for e in events if _STRIKE.search(e.label) and _side(e) == side)
        windows += list(zip(strikes[:-1], strikes[1:], strict=True))
    return sorted(windows)


def stance_phases(times_s: np.ndarray, normal_force_n: np.ndarray, /, *,
                  threshold_n: float) -> list[tuple[float, float]]:
    """Runs where ``normal_force_n`` exceeds ``threshold_n``, as (start, end) times."""
    return [(float(times_s[a]), float(times_s[b - 1]))
            for a, b in finite_runs(np.asarray(normal_force_n) > threshold_n)]


def kinematic_cycles(times_s: np.ndarray, xyz_m: np.ndarray, /, *,
                     min_cycle_s: float) -> list[tuple[float, float]]:
    """Cycles between peaks of the marker that moves most, along its main direction.

    ``xyz_m`` is (frame, marker, 3). The peaks are at least ``min_cycle_s`` apart and stand out
    by a quarter of the signal's range.
    """
    best, best_range, best_signal = None, 0.0, None
    for m in range(xyz_m.shape[1]):
        xyz = xyz_m[:, m]
        ok = np.all(np.isfinite(xyz), axis=1)
        if ok.mean() < 0.9:
            continue
        centred = xyz[ok] - xyz[ok].mean(axis=0)
        direction = np.linalg.svd(centred, full_matrices=False)[2][0]
        proj = np.interp(times_s, times_s[ok], centred @ direction)
        span = float(np.ptp(proj))
        if span > best_range:
            best, best_range, best_signal = m, span, proj
    if best is None or best_signal is None:
        return []
    rate = 1.0 / np.median(np.diff(times_s))
    peaks, _ = find_peaks(best_signal, distance=max(1, int(min_cycle_s * rate)),
                          prominence=0.25 * best_range)
    return [(float(times_s[a]), float(times_s[b])) for a, b in zip(peaks[:-1], peaks[1:],
                                                                    strict=True)]


def clip_windows(windows: Sequence[tuple[float, float]], /, *, start_s: float | None,
                 end_s: float | None, min_cycle_s: float) -> list[list[float]]:
    """Windows lying within [start_s, end_s] and at least ``min_cycle_s`` long.

    A cycle cut by the analysis range is not a cycle, so it is dropped rather than shortened.
    """
    lo = -np.inf if start_s is None else start_s
    hi = np.inf if end_s is None else end_s
    return [[round(float(t0), 6), round(float(t1), 6)] for t0, t1 in windows
            if t0 >= lo - 1e-9 and t1 <= hi + 1e-9 and t1 - t0 >= min_cycle_s]


def trial_windows(*, source: str, events: Sequence[Event],
                  stance: Mapping[str, list[tuple[float, float]]] | None,
                  kinematics: tuple[np.ndarray, np.ndarray] | None, start_s: float | None,
                  end_s: float | None, min_cycle_s: float,
                  file: str | None = None) -> dict[str, Any]:
    """The events JSON: ``{"windows": [[t0, t1], ...], "source": ..., "stance": {...}}``.

    ``stance`` maps a plate number to its stance phases (None when the trial has no plates);
    ``kinematics`` is (times_s, xyz_m) of the markers.
    """
    candidates: dict[str, list[tuple[float, float]]] = {"c3d": c3d_cycles(events)}
    if stance is not None:
        candidates["grf"] = sorted(w for phases in stance.values() for w in phases)
    if kinematics is not None:
        candidates["kinematics"] = kinematic_cycles(*kinematics, min_cycle_s=min_cycle_s)
    order = ["c3d", "grf", "kinematics"] if source == "auto" else [source]
    chosen, windows = order[0], []
    for name in order:
        windows = clip_windows(candidates.get(name, []), start_s=start_s, end_s=end_s,
                               min_cycle_s=min_cycle_s)
        chosen = name
        if windows:
            break
    if not windows and source != "auto":
        raise C3DError(describe(file, f"no movement cycles found from events.source = {source}",
                                "choose another events.source (auto tries all) or check the "
                                "trial's start_s/end_s"))
    if not windows:
        log.warning("%s: no cycles found; the whole trial is one window", file)
        chosen = "trial"
    return {
        "source": chosen,
        "windows": windows,
        "stance": {k: [[round(a, 6), round(b, 6)] for a, b in v]
                   for k, v in (stance or {}).items()},
        "events": [{"label": e.label, "context": e.context, "time_s": round(e.time_s, 6)}
                   for e in events],
        "start_s": start_s,
        "end_s": end_s,
    }


def parse_cycles(spec: str, /) -> list[tuple[int, int | None]]:
    """``"1-2"``, ``"3-"``, ``"1,3"`` -> 1-based inclusive ranges (end None: to the last)."""
    ranges: list[tuple[int, int | None]] = []
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        lo, sep, hi = part.partition("-")
        first = int(lo)
        last = (int(hi) if hi.strip() else None) if sep else first
        ranges.append((first, last))
    return ranges


def select_cycles(windows: Sequence[Sequence[float]], spec: str, /, *,
                  file: str | None = None) -> tuple[list[list[float]], list[int]]:
    """The windows (in time order) whose 1-based numbers ``spec`` (the ``cycles`` column of
    trials.tsv) selects, and those numbers; an error naming the file when none is selected."""
    ordered = sorted((list(w) for w in windows), key=lambda w: w[0])
    chosen = [i + 1 for i in range(len(ordered))
              if any(i + 1 >= a and (b is None or i + 1 <= b) for a, b in parse_cycles(spec))]
    if not chosen:
        raise C3DError(describe(file, f"cycles {spec!r} selects none of the trial's "
                                f"{len(ordered)} cycle(s)",
                                "number cycles from 1 in time order (see events.json) in the "
                                "cycles column of trials.tsv"))
    return [ordered[i - 1] for i in chosen], chosen
