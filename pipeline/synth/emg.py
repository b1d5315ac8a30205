"""Raw EMG synthesis: band-limited noise modulated by the true excitation, and MVC trials.

Raw EMG of channel c: ``x(t) = g_c e_c(t) n_c(t) + b_c(t)`` with ``n_c`` unit-variance Gaussian
noise band-limited to 20-450 Hz (4th-order Butterworth, zero-lag) and ``b_c`` a small baseline noise
(0.3 % of the gain, a few microvolts: a good amplifier and skin preparation), in volts. ``e_c`` is
the true excitation (sampled at the point rate) interpolated to the analog rate.

Normalisation: the pipeline's envelope chain (band-pass, rectify, low-pass, zero-lag;
:func:`envelope` repeats it here with the study's cut-offs, ``filters``) turns ``x`` into
``~ k g_c e_c(t)``, with ``k`` the mean envelope of unit-excitation noise. The MVC trial is scaled
so that its envelope, through the same chain, peaks at exactly ``k g_c``: dividing by the MVC
maximum then maps the envelope back to the excitation itself. (The chain must be the study's: a 5 Hz
envelope's peak rides higher on the noise than a 3 Hz one's, and a mismatch biases every
normalised envelope by several per cent, which calibration then reads as strength.)
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from scipy import signal
from scipy.interpolate import CubicSpline

NOISE_BAND_HZ = (20.0, 450.0)
BASELINE_FRACTION = 0.003


def envelope(raw: np.ndarray, *, rate_hz: float, bandpass_hz: tuple[float, float] = (30.0, 300.0),
             bandpass_order: int = 3, lowpass_hz: float = 5.0, lowpass_order: int = 4
             ) -> np.ndarray:
    """Reference EMG envelope of ``raw`` ``(..., sample)``: offset removal, band-pass, rectify,
    low-pass (zero-lag Butterworth, design cut-offs as given)."""
    centred = raw - raw.mean(axis=-1, keepdims=True)
    band = signal.butter(bandpass_order, bandpass_hz, btype="bandpass", fs=rate_hz, output="sos")
    low = signal.butter(lowpass_order, lowpass_hz, btype="lowpass", fs=rate_hz, output="sos")
    return signal.sosfiltfilt(low, np.abs(signal.sosfiltfilt(band, centred, axis=-1)), axis=-1)


def upsample(values: np.ndarray, *, point_rate_hz: float, analog_rate_hz: float,
             n_analog: int) -> np.ndarray:
    """Cubic interpolation of ``(..., frame)`` samples onto the analog time base."""
    t_point = np.arange(values.shape[-1]) / point_rate_hz
    t_analog = np.arange(n_analog) / analog_rate_hz
    t_analog = np.minimum(t_analog, t_point[-1])
    return CubicSpline(t_point, values, axis=-1)(t_analog)


def _band_noise(rng: np.random.Generator, shape: tuple[int, ...], *, rate_hz: float) -> np.ndarray:
    sos = signal.butter(4, NOISE_BAND_HZ, btype="bandpass", fs=rate_hz, output="sos")
    pad = int(rate_hz)  # discard the filter's start-up
    noise = signal.sosfilt(sos, rng.standard_normal((*shape[:-1], shape[-1] + pad)), axis=-1)
    noise = noise[..., pad:]
    return noise / noise.std(axis=-1, keepdims=True)


def unit_envelope_level(*, rate_hz: float, seed: int = 12345, duration_s: float = 60.0,
                        filters: Mapping[str, Any] | None = None) -> float:
    """Mean envelope of unit-gain, unit-excitation EMG (the factor ``k`` above); ``filters`` are
    keyword arguments of :func:`envelope`."""
    rng = np.random.default_rng(seed)
    n = int(duration_s * rate_hz)
    raw = _band_noise(rng, (1, n), rate_hz=rate_hz)
    env = envelope(raw, rate_hz=rate_hz, **(filters or {}))[0]
    edge = int(2 * rate_hz)
    return float(env[edge:-edge].mean())


def raw_emg(excitation: np.ndarray, *, gains_v: np.ndarray, point_rate_hz: float,
            analog_rate_hz: float, n_analog: int, rng: np.random.Generator) -> np.ndarray:
    """Raw EMG ``(channel, analog sample)`` in volts from excitations ``(channel, frame)``."""
    e = np.clip(upsample(excitation, point_rate_hz=point_rate_hz, analog_rate_hz=analog_rate_hz,
                         n_analog=n_analog), 0.0, 1.0)
    shape = (excitation.shape[0], n_analog)
    gains = np.asarray(gains_v, dtype=float)[:, None]
    active = gains * e * _band_noise(rng, shape, rate_hz=analog_rate_hz)
    baseline = BASELINE_FRACTION * gains * _band_noise(rng, shape, rate_hz=analog_rate_hz)
    return active + baseline


def mvc_excitation(n_frames: int, *, point_rate_hz: float, n_channels: int) -> np.ndarray:
    """Excitation of an MVC trial: every channel ramps to 1.0, holds, and relaxes (smoothly)."""
    t = np.arange(n_frames) / point_rate_hz
    duration = t[-1]
    rise = np.clip((t - 0.2 * duration) / (0.15 * duration), 0.0, 1.0)
    fall = np.clip((0.85 * duration - t) / (0.15 * duration), 0.0, 1.0)
    ramp = np.minimum(rise, fall)
    smooth = ramp**3 * (10 - 15 * ramp + 6 * ramp**2)
    return np.tile(0.02 + 0.98 * smooth, (n_channels, 1))


def scale_mvc(raw_mvc: np.ndarray, *, gains_v: np.ndarray, rate_hz: float, level: float,
              filters: Mapping[str, Any] | None = None) -> np.ndarray:
    """Scale each MVC channel so that its envelope maximum (:func:`envelope` with ``filters``) is
    ``level * gain``."""
    peak = envelope(raw_mvc, rate_hz=rate_hz, **(filters or {})).max(axis=-1)
    return raw_mvc * (level * np.asarray(gains_v, dtype=float) / peak)[:, None]
