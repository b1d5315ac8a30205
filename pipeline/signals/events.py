"""Time windows for later stages: gait cycles from C3D events, stance from GRF, kinematic cycles.

``source: auto`` takes C3D foot-strike events when there are two strikes of one foot, then the
GRF stance phases, then movement cycles between peaks of the most-moving marker (upper-limb
tasks). Windows must lie within the trial's ``start_s``/``end_s`` and last at least
``min_cycle_s``.

Each window has a side: ``r`` or ``l`` for the foot whose strikes (C3D event context or label)
or plate contact (the foot the plate was assigned to) bound it, ``?`` when unknown (kinematic
cycles, unsided events). ``side`` (config ``cycles.side``) keeps one foot's cycles only, so cycle
numbers count that foot's cycles.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

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


#: ``cycles.side`` -> the side letter of the windows it keeps (None: all).
SIDE_LETTERS: dict[str, str | None] = {"any": None, "right": "r", "left": "l"}


def sided_c3d_cycles(events: Sequence[Event], /) -> list[tuple[float, float, str]]:
    """Gait cycles between successive foot strikes of the same foot, with that foot's letter."""
    windows: list[tuple[float, float, str]] = []
    for side in ("r", "l", "?"):
        strikes = sorted(e.time_s for e in events if _STRIKE.search(e.label) and _side(e) == side)
        windows += [(a, b, side) for a, b in zip(strikes[:-1], strikes[1:], strict=True)]
    return sorted(windows)


def c3d_cycles(events: Sequence[Event], /) -> list[tuple[float, float]]:
    """Gait cycles between successive foot strikes of the same foot."""
    return [(a, b) for a, b, _ in sided_c3d_cycles(events)]


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
    peaks = prominent_peaks(best_signal, min_distance=max(1, int(min_cycle_s * rate)),
                            min_prominence=0.25 * best_range)
    return [(float(times_s[a]), float(times_s[b])) for a, b in zip(peaks[:-1], peaks[1:],
                                                                    strict=True)]


def local_maxima(x: np.ndarray) -> np.ndarray:
    """Indices of samples higher than both neighbours; a flat top counts once, at its middle."""
    steps = np.diff(np.asarray(x, dtype=float))
    moves = np.flatnonzero(steps != 0)
    rising, falling = steps[moves[:-1]] > 0, steps[moves[1:]] < 0
    first = moves[:-1][rising & falling] + 1  # first sample of the top
    last = moves[1:][rising & falling]  # last sample of the top
    return (first + last) // 2


def prominent_peaks(x: np.ndarray, *, min_distance: int, min_prominence: float) -> np.ndarray:
    """Local maxima at least ``min_distance`` samples apart and ``min_prominence`` high.

    Distance first: the highest peaks are kept and their lower neighbours closer than
    ``min_distance`` dropped. A peak's prominence is its height above the higher of the two
    lowest points between it and the nearest higher sample on each side (or the signal's end).
    """
    x = np.asarray(x, dtype=float)
    peaks = local_maxima(x)
    keep = np.ones(len(peaks), dtype=bool)
    for i in np.argsort(x[peaks])[::-1]:  # ties: numpy's default sort order
        if keep[i]:
            close = np.abs(peaks - peaks[i]) < min_distance
            close[i] = False
            keep &= ~close
    peaks = peaks[keep]
    prominent = []
    for peak in peaks:
        height = x[peak]
        higher_left = np.flatnonzero(x[:peak] > height)
        higher_right = np.flatnonzero(x[peak + 1:] > height)
        left = higher_left[-1] + 1 if higher_left.size else 0
        right = peak + 1 + higher_right[0] if higher_right.size else len(x)
        base = max(x[left:peak + 1].min(), x[peak:right].min())
        if height - base >= min_prominence:
            prominent.append(peak)
    return np.array(prominent, dtype=int)


def clip_windows(windows: Sequence[tuple[float, float, str]], /, *, start_s: float | None,
                 end_s: float | None, min_cycle_s: float) -> list[tuple[float, float, str]]:
    """Sided windows lying within [start_s, end_s] and at least ``min_cycle_s`` long.

    A cycle cut by the analysis range is not a cycle, so it is dropped rather than shortened.
    """
    lo = -np.inf if start_s is None else start_s
    hi = np.inf if end_s is None else end_s
    return [(float(t0), float(t1), side) for t0, t1, side in windows
            if t0 >= lo - 1e-9 and t1 <= hi + 1e-9 and t1 - t0 >= min_cycle_s]


def trial_windows(*, source: str, events: Sequence[Event],
                  stance: Mapping[str, list[tuple[float, float]]] | None,
                  kinematics: tuple[np.ndarray, np.ndarray] | None, start_s: float | None,
                  end_s: float | None, min_cycle_s: float,
                  file: str | None = None,
                  stance_sides: Mapping[str, Sequence[str]] | None = None,
                  side: str = "any") -> dict[str, Any]:
    """The events JSON: ``{"windows": [[t0, t1], ...], "sides": [...], "source": ...,
    "stance": {...}}``.

    ``stance`` maps a plate number to its stance phases (None when the trial has no plates) and
    ``stance_sides`` the plate number to the foot letter (``r``/``l``/``?``) of each phase;
    ``kinematics`` is (times_s, xyz_m) of the markers. ``side`` (``any``, ``right``, ``left``)
    keeps that foot's cycles only; an error names the file when it has none.
    """
    letter = SIDE_LETTERS[side]
    sides_of = stance_sides or {}
    candidates: dict[str, list[tuple[float, float, str]]] = {"c3d": sided_c3d_cycles(events)}
    if stance is not None:
        candidates["grf"] = sorted(
            (a, b, (list(sides_of.get(plate, [])) + ["?"] * len(phases))[i])
            for plate, phases in stance.items() for i, (a, b) in enumerate(phases))
    if kinematics is not None:
        candidates["kinematics"] = [(a, b, "?") for a, b in
                                    kinematic_cycles(*kinematics, min_cycle_s=min_cycle_s)]
    order = ["c3d", "grf", "kinematics"] if source == "auto" else [source]
    chosen, kept, unsided = order[0], [], 0
    for name in order:
        sided = clip_windows(candidates.get(name, []), start_s=start_s, end_s=end_s,
                             min_cycle_s=min_cycle_s)
        unsided += sum(w[2] == "?" for w in sided)
        kept = [w for w in sided if letter is None or w[2] == letter]
        chosen = name
        if kept:
            break
    if not kept and letter is not None:
        raise C3DError(describe(file, f"no {side}-foot cycles found (events.source = {source}; "
                                f"{unsided} cycle(s) of unknown side)",
                                "set cycles.side: any, give the C3D foot-strike events a side "
                                "(context Right/Left), or list the feet's markers in "
                                "force_plates.foot_markers so plate contacts get a foot"))
    if not kept and source != "auto":
        raise C3DError(describe(file, f"no movement cycles found from events.source = {source}",
                                "choose another events.source (auto tries all) or check the "
                                "trial's start_s/end_s"))
    windows = [[round(float(a), 6), round(float(b), 6)] for a, b, _ in sorted(kept)]
    if not windows:
        log.warning("%s: no cycles found; the whole trial is one window", file)
        chosen = "trial"
    return {
        "source": chosen,
        "windows": windows,
        "sides": [s for _, _, s in sorted(kept)],
        "side": side,
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
