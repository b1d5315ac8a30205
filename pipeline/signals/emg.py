"""EMG: channel map, linear envelope, normalisation to excitations in [0, 1].

Envelope (paper 002, section III-A): remove the offset, band-pass 30-300 Hz (3rd-order
Butterworth), full-wave rectify, low-pass 5 Hz (4th order), all zero-lag. Normalised per channel
by the maximum envelope over the subject's MVC trials (or dynamic trials when there is none),
resampled to the marker time base and clipped to [0, 1].
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Iterable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import C3DError, ConfigError, describe
from pipeline.io.c3d import Analogs
from pipeline.io.opensim_files import StoTable
from pipeline.signals.filters import butter_bandpass, butter_lowpass

log = logging.getLogger(__name__)

# Envelopes are stored at no less than this rate (the 5 Hz envelope keeps its peak).
ENVELOPE_MIN_RATE_HZ = 200.0
#: A channel whose envelope peak is below this fraction of the median peak of the trial's
#: channels is flat or dead (electrode off, amplifier channel unplugged).
DEAD_FRACTION = 0.02
#: A channel that sits at its extreme value for more than this fraction of samples is clipped.
SATURATED_FRACTION = 0.01


def channel_warnings(names: list[str], labels: list[str], raw: np.ndarray,
                     envelope: np.ndarray, /, *, skip: Collection[str] = ()) -> list[str]:
    """One line per flat/dead or saturated channel (``raw`` and ``envelope``: sample x channel),
    except the channels named in ``skip`` (still counted in the median peak)."""
    warnings: list[str] = []
    if not len(raw):
        return warnings
    peaks = np.nanmax(np.abs(envelope), axis=0)
    median = float(np.median(peaks)) if len(peaks) > 1 else 0.0
    for i, (name, label) in enumerate(zip(names, labels, strict=True)):
        if name in skip:
            continue
        if median > 0 and peaks[i] < DEAD_FRACTION * median:
            warnings.append(f"EMG {name!r} (channel {label!r}) is flat or dead: its envelope "
                            f"peak is {peaks[i] / median:.2%} of the median channel's. Fix: "
                            "check the electrode, or remove the channel from "
                            "models.<model>.emg_channels (synergy-hybrid can synthesise it)")
        column = raw[:, i]
        extreme = np.nanmax(np.abs(column))
        if extreme > 0:
            at_extreme = np.mean(np.abs(column) >= extreme * (1 - 1e-9))
            if at_extreme > SATURATED_FRACTION:
                warnings.append(f"EMG {name!r} (channel {label!r}) is saturated: {at_extreme:.1%}"
                                f" of its samples sit at +-{extreme:g}. Fix: lower the "
                                "amplifier gain and record again")
    return warnings


def select_channels(analogs: Analogs, channel_map: Mapping[str, str], /, *,
                    file: str | Path | None = None) -> tuple[list[str], np.ndarray]:
    """EMG names and raw values (sample, channel) for ``channel_map`` (C3D label -> EMG name)."""
    if not channel_map:
        raise ConfigError(describe(file, "no EMG channels configured for this subject's model",
                                   "list them under models.<model>.emg_channels in config.yaml"))
    stripped = {label.strip(): i for i, label in enumerate(analogs.labels)}
    missing = [label for label in channel_map if label.strip() not in stripped]
    if missing:
        raise C3DError(describe(file, f"EMG channel(s) {missing} named in config are not in the "
                                f"file; its analog channels are {list(analogs.labels)}",
                                "correct models.<model>.emg_channels in config.yaml"))
    idx = [stripped[label.strip()] for label in channel_map]
    raw = analogs.values[:, idx]
    for column, label in enumerate(channel_map):
        bad = ~np.isfinite(raw[:, column])
        if bad.any():
            first, last = np.flatnonzero(bad)[[0, -1]] / analogs.rate_hz
            raise C3DError(describe(file, f"EMG channel {label!r} has {int(bad.sum())} NaN "
                                    f"sample(s) between {first:.3f} s and {last:.3f} s from the "
                                    "start of the recording", "re-export the trial with the "
                                    "channel complete, or remove it from "
                                    "models.<model>.emg_channels"))
    return list(channel_map.values()), raw


def emg_envelope(raw: np.ndarray, /, *, rate_hz: float,
                 bandpass_hz: tuple[float, float] = (30.0, 300.0), bandpass_order: int = 3,
                 lowpass_hz: float = 5.0, lowpass_order: int = 4, remove_offset: bool = True,
                 correct_double_pass: bool = False,
                 file: str | Path | None = None) -> np.ndarray:
    """Linear envelope of ``raw`` (sample, channel), same shape and rate, in the input units."""
    low, high = float(bandpass_hz[0]), float(bandpass_hz[1])
    if high >= rate_hz / 2:
        raise ConfigError(describe(file, f"the EMG analog rate is {rate_hz:g} Hz, too low for a "
                                   f"{low:g}-{high:g} Hz band-pass (its Nyquist frequency is "
                                   f"{rate_hz / 2:g} Hz)",
                                   f"record EMG at {2 * high + 1:g} Hz or more, or lower "
                                   "emg.bandpass_hz in config.yaml"))
    x = np.asarray(raw, dtype=float)
    if remove_offset:
        x = x - np.nanmean(x, axis=0)
    x = butter_bandpass(x, (low, high), rate_hz=rate_hz, order=bandpass_order,
                        correct_double_pass=correct_double_pass)
    x = np.abs(x)
    return butter_lowpass(x, lowpass_hz, rate_hz=rate_hz, order=lowpass_order,
                          correct_double_pass=correct_double_pass)


def envelope_table(analogs: Analogs, channel_map: Mapping[str, str], /, *, first_time_s: float,
                   options: Mapping[str, Any], file: str | Path | None = None,
                   min_rate_hz: float = ENVELOPE_MIN_RATE_HZ,
                   quiet_channels: Collection[str] = ()) -> StoTable:
    """Un-normalised envelopes of the mapped channels, decimated to >= ``min_rate_hz``.

    ``options`` holds the config ``emg`` section (bandpass_hz, bandpass_order, lowpass_hz,
    lowpass_order, remove_offset, correct_double_pass). :func:`channel_warnings` are logged
    except for ``quiet_channels`` (EMG names another check has already warned about).
    """
    names, raw = select_channels(analogs, channel_map, file=file)
    env = emg_envelope(
        raw, rate_hz=analogs.rate_hz, file=file,
        bandpass_hz=tuple(options.get("bandpass_hz", (30.0, 300.0))),
        bandpass_order=int(options.get("bandpass_order", 3)),
        lowpass_hz=float(options.get("lowpass_hz", 5.0)),
        lowpass_order=int(options.get("lowpass_order", 4)),
        remove_offset=bool(options.get("remove_offset", True)),
        correct_double_pass=bool(options.get("correct_double_pass", False)),
    )
    for warning in channel_warnings(names, list(channel_map), raw, env, skip=quiet_channels):
        log.warning("%s: %s", file, warning)
    step = max(1, int(analogs.rate_hz // min_rate_hz))
    times = first_time_s + np.arange(env.shape[0]) / analogs.rate_hz
    return StoTable(times[::step], tuple(names), env[::step], name="emg_envelope")


def envelope_maxima(envelopes: Iterable[StoTable], /) -> dict[str, float]:
    """Per channel, the maximum envelope across ``envelopes`` (channels may differ by trial)."""
    maxima: dict[str, float] = {}
    for table in envelopes:
        for i, name in enumerate(table.labels):
            value = float(np.nanmax(table.data[:, i])) if len(table.time_s) else 0.0
            maxima[name] = max(maxima.get(name, -np.inf), value)
    return maxima


def normalise(envelope: StoTable, maxima: Mapping[str, float], /, *, times_s: np.ndarray,
              file: str | Path | None = None) -> StoTable:
    """Envelope / maximum per channel, resampled to ``times_s`` and clipped to [0, 1]."""
    columns = []
    for i, name in enumerate(envelope.labels):
        peak = maxima.get(name)
        if peak is None or not np.isfinite(peak) or peak <= 0:
            raise ConfigError(describe(file, f"no positive normalisation maximum for EMG {name!r}",
                                       "include a trial with this channel among the subject's "
                                       "MVC (or dynamic) trials"))
        column = np.interp(times_s, envelope.time_s, envelope.data[:, i]) / peak
        above = column > 1.0
        if above.any():
            log.warning("%s: EMG %r reaches %.2f after normalisation (%.1f%% of samples above 1, "
                        "clipped to 1): the normalisation trials do not hold its maximum. Fix: "
                        "record a maximal contraction for it in an mvc trial", file, name,
                        float(np.nanmax(column)), 100.0 * float(np.mean(above)))
        columns.append(column)
    values = np.clip(np.column_stack(columns), 0.0, 1.0) if columns else np.zeros((len(times_s), 0))
    return StoTable(np.asarray(times_s), envelope.labels, values, name="emg")
