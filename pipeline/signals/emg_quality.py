"""EMG quality per channel and trial: SNR, dead or flat channels, saturation, line noise, onsets.

- ``snr``: envelope maximum / resting baseline (the envelope's 5th percentile, outside runs of
  unchanged samples such as a recorder's zero padding: in walking and most tasks every muscle
  rests for part of the trial). A channel whose ratio stays under
  ``dead_snr`` carries only its noise floor (electrode off, cable loose, channel not connected).
- ``flat_share``: share of consecutive raw samples that do not change (a disconnected or
  zeroed channel); flagged above ``max_flat_share``.
- ``saturation_share``: share of raw samples at the channel's extreme values (an amplifier or
  converter clipping at its range); flagged above ``max_saturation_share``.
- ``line_noise_share``: share of the raw signal's power (10 Hz to Nyquist, Welch) within 1 Hz of
  the mains frequency and its harmonics; flagged above ``max_line_noise_share``.
- ``onsets_s`` / ``offsets_s``: times the envelope rises / falls through 25 % of its range
  (baseline to maximum). :func:`cycle_timing` places them in the trial's movement cycles (the
  windows of ``events.json``) as % of the cycle, for the report's EMG table and figure.

Each flag comes with a warning naming the channel and what to do.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

DEFAULTS: dict[str, float] = {
    "line_hz": 50.0,
    "dead_snr": 5.0,
    "max_flat_share": 0.5,
    "max_saturation_share": 0.002,
    "max_line_noise_share": 0.3,
}
FIXES = {
    "dead": "a muscle that is quiet in this task looks the same within one trial: if the "
            "channel is active in the subject's other trials (their SNR in emg_quality.json "
            "or the report's EMG table), nothing is wrong; if it is low in every trial, check "
            "the electrode and cable, and if it cannot be recovered, drop it with "
            "models.<model>.drop_emg (its MTUs then count as unrecorded)",
    "flat": "the channel does not change: check that it is connected and exported; drop it "
            "with models.<model>.drop_emg",
    "saturated": "the signal clips at the amplifier's range: lower the EMG gain for the next "
                 "session; the envelope peaks of this trial are underestimated",
    "line_noise": "mains interference: check the reference electrode and skin preparation; "
                  "the 20 Hz band-pass does not remove it",
}


def welch_density(x: np.ndarray, *, rate_hz: float,
                  segment: int) -> tuple[np.ndarray, np.ndarray]:
    """One-sided power spectral density (units^2/Hz) by Welch's method.

    Segments of ``segment`` samples overlapping by half, each made zero-mean and weighted by a
    periodic Hann window; the periodograms are averaged. Returns ``(frequency_hz, density)``.
    """
    x = np.asarray(x, dtype=float)
    step = segment - segment // 2
    count = (len(x) - segment) // step + 1
    window = 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(segment) / segment)
    starts = np.arange(count) * step
    segments = x[starts[:, None] + np.arange(segment)]
    segments = segments - segments.mean(axis=1, keepdims=True)
    power = np.abs(np.fft.rfft(segments * window, axis=1)) ** 2 / (rate_hz * np.sum(window**2))
    # One-sided: every bin but DC (and Nyquist, for an even segment) holds two frequencies.
    power[:, 1:-1 if segment % 2 == 0 else None] *= 2.0
    return np.fft.rfftfreq(segment, 1.0 / rate_hz), power.mean(axis=0)


def line_noise_share(x: np.ndarray, *, rate_hz: float, line_hz: float) -> float:
    """Share of the power (10 Hz to Nyquist) within 1 Hz of ``line_hz`` and its harmonics."""
    if line_hz >= rate_hz / 2:
        return 0.0
    f, p = welch_density(x - np.mean(x), rate_hz=rate_hz,
                         segment=int(min(len(x), max(256, rate_hz))))
    band = f >= 10.0
    total = float(np.sum(p[band]))
    if total <= 0:
        return 0.0
    harmonics = np.arange(line_hz, rate_hz / 2, line_hz)
    near = np.zeros_like(f, dtype=bool)
    for h in harmonics:
        near |= np.abs(f - h) <= 1.0
    return float(np.sum(p[band & near]) / total)


def _changing(x: np.ndarray, *, min_run: int = 10) -> np.ndarray:
    """Samples outside runs of at least ``min_run`` unchanged values (a recorder's zero
    padding before or after the EMG): the baseline is measured where the channel records."""
    same = np.concatenate([[False], np.diff(x) == 0])
    keep = np.ones(len(x), dtype=bool)
    start = None
    for i, flag in enumerate(np.append(same, False)):
        if flag and start is None:
            start = i - 1
        elif not flag and start is not None:
            if i - start >= min_run:
                keep[start:i] = False
            start = None
    return keep


def _crossings(envelope: np.ndarray, times_s: np.ndarray, baseline: float,
               peak: float) -> tuple[list, list]:
    """Times the envelope rises through (onsets) and falls through (offsets) 25 % of its
    range; the first sample at or above the level, and the first one below it."""
    if peak <= baseline:
        return [], []
    above = envelope >= baseline + 0.25 * (peak - baseline)
    rises = np.flatnonzero(above[1:] & ~above[:-1]) + 1
    falls = np.flatnonzero(~above[1:] & above[:-1]) + 1
    return ([round(float(times_s[i]), 4) for i in rises],
            [round(float(times_s[i]), 4) for i in falls])


def cycle_timing(times_s: Sequence[float], windows_s: Sequence[Sequence[float]], /, *,
                 sides: Sequence[str] = (), side: str = "") -> list[dict[str, Any]]:
    """Each time inside a movement cycle as ``{"time_s", "cycle", "percent"}``: the cycle's
    1-based number among ``windows_s`` (time order, as events.json numbers them) and the time
    as % of it (0 at its start, 100 at its end). Times in no cycle are left out.

    ``sides`` gives each window's foot (``r``/``l``/``?``); with ``side`` (``r``/``l``, the
    channel's leg) only that foot's cycles (and those of unknown side) count. Where cycles
    overlap (a right and a left gait cycle), the one that began last holds the time.
    """
    order = sorted(range(len(windows_s)), key=lambda i: windows_s[i][0])
    known = len(sides) == len(windows_s)
    out = []
    for t in times_s:
        holding = [n for n, i in enumerate(order, start=1)
                   if windows_s[i][0] - 1e-9 <= t <= windows_s[i][1] + 1e-9
                   and windows_s[i][1] > windows_s[i][0]
                   and (not side or not known or sides[i] in (side, "?", ""))]
        if not holding:
            continue
        n = holding[-1]
        t0, t1 = windows_s[order[n - 1]][:2]
        out.append({"time_s": float(t), "cycle": n,
                    "percent": round(100.0 * (float(t) - t0) / (t1 - t0), 1)})
    return out


def channel_quality(raw: np.ndarray, envelope: np.ndarray, *, rate_hz: float,
                    times_s: np.ndarray, options: Mapping[str, float] | None = None
                    ) -> dict[str, Any]:
    """Quality measures and flags of one channel (``raw`` and ``envelope`` at ``rate_hz``)."""
    opts = {**DEFAULTS, **dict(options or {})}
    x = np.asarray(raw, dtype=float)
    env = np.asarray(envelope, dtype=float)
    finite = np.isfinite(x)
    x = x[finite] if finite.any() else np.zeros(1)
    live = env[_changing(np.asarray(raw, dtype=float))] if env.size else env
    live = live if live.size else env
    peak = float(np.nanmax(live)) if live.size else 0.0
    # The baseline is floored at 0.1 % of the peak (filter ripple can reach zero): SNR <= 1000.
    baseline = max(float(np.nanpercentile(live, 5)) if live.size else 0.0, 1e-3 * peak)
    snr = peak / baseline if baseline > 0 else 0.0
    diffs = np.diff(x)
    flat = float(np.mean(diffs == 0)) if diffs.size else 1.0
    span = float(x.max() - x.min())
    if span > 0:
        tol = 1e-4 * span
        saturation = float(np.mean((x >= x.max() - tol) | (x <= x.min() + tol)))
    else:
        saturation = 0.0
    line = line_noise_share(x, rate_hz=rate_hz, line_hz=float(opts["line_hz"])) if span else 0.0
    flags = []
    if span == 0 or flat > opts["max_flat_share"]:
        flags.append("flat")
    elif snr < opts["dead_snr"]:
        flags.append("dead")
    if saturation > opts["max_saturation_share"] and "flat" not in flags:
        flags.append("saturated")
    if line > opts["max_line_noise_share"]:
        flags.append("line_noise")
    onsets, offsets = _crossings(env, times_s, baseline, peak)
    return {"snr": float(snr), "baseline": baseline, "peak": peak,
            "flat_share": flat, "saturation_share": saturation, "line_noise_share": line,
            "onsets_s": onsets, "offsets_s": offsets, "flags": flags}


def trial_quality(names: Sequence[str], labels: Sequence[str], raw: np.ndarray,
                  envelope: np.ndarray, *, rate_hz: float, times_s: np.ndarray,
                  options: Mapping[str, float] | None = None, trial: str = "",
                  dropped: Collection[str] = ()) -> dict[str, Any]:
    """Per EMG name (C3D label ``labels[i]``): :func:`channel_quality` plus the warnings.

    A flagged channel gives one warning (logged, and listed under ``warnings``) naming the
    trial, the channel and the fix; a channel already in ``dropped`` (``drop_emg``) keeps its
    flags but is only mentioned at INFO (its fix is done)."""
    channels: dict[str, Any] = {}
    warnings: list[str] = []
    for i, name in enumerate(names):
        q = channel_quality(raw[:, i], envelope[:, i], rate_hz=rate_hz, times_s=times_s,
                            options=options)
        q["c3d_label"] = labels[i]
        channels[name] = q
        for flag in q["flags"]:
            detail = {"dead": f"SNR {q['snr']:.1f} (envelope peak / resting baseline): "
                              "inactive in this trial, or the electrode is off",
                      "flat": f"{q['flat_share']:.0%} of samples unchanged",
                      "saturated": f"{q['saturation_share']:.2%} of samples at the range limits",
                      "line_noise": f"{q['line_noise_share']:.0%} of the power at the mains "
                                    "frequency"}[flag]
            message = (f"EMG {name} ({labels[i]!r}) in {trial or 'this trial'}: {flag} "
                       f"({detail}).")
            if name in dropped:
                log.info("%s Left out by models.<model>.drop_emg.", message)
                continue
            message += f" Fix: {FIXES[flag]}"
            warnings.append(message)
            log.warning("%s", message)
    return {"channels": channels, "warnings": warnings,
            "options": {**DEFAULTS, **dict(options or {})}}


def channel_verdicts(qualities: Mapping[str, Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Per EMG channel across a subject's trials (``qualities``: trial -> emg_quality.json):
    a low-SNR (``dead``) flag in one trial cannot tell a loose electrode from a muscle that is
    quiet in that task, so the trials are compared.

    Only channels flagged ``dead`` in at least one trial are listed, as
    ``{"channel", "verdict", "quiet", "active"}`` with ``quiet``/``active`` mapping trial ->
    SNR. ``verdict`` is ``"dead"`` when the channel is low in every trial that measured it
    (the electrode or cable), ``"quiet"`` when it is clearly active in another trial (the
    muscle rests in the trials listed under ``quiet``: nothing to fix).
    """
    per_channel: dict[str, dict[str, dict[str, float]]] = {}
    for trial, quality in qualities.items():
        for name, q in (quality.get("channels") or {}).items():
            entry = per_channel.setdefault(name, {"quiet": {}, "active": {}})
            if "flat" in (q.get("flags") or []):
                continue
            group = "quiet" if "dead" in (q.get("flags") or []) else "active"
            entry[group][trial] = float(q.get("snr") or 0.0)
    return [{"channel": name, "verdict": "quiet" if entry["active"] else "dead", **entry}
            for name, entry in per_channel.items() if entry["quiet"]]
