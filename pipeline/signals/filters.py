"""Zero-lag Butterworth filters (SOS form, forward-backward), NaN-aware.

The design and the filtering themselves live in :mod:`pipeline.signals.iir` (numpy only).

Double-pass correction. A digital Butterworth filter of order n designed at ``fd`` has the squared
gain ``|H|^2 = 1 / (1 + (tan(pi f / fs) / tan(pi fd / fs))^(2n))``. Running it forwards and
backwards squares the gain: ``G(f) = |H(f)|^2``. Asking ``G(f0) = 1/sqrt(2)`` (-3 dB at the
requested cut-off ``f0``) gives ``(tan(pi f0/fs) / tan(pi fd/fs))^(2n) = sqrt(2) - 1``, so

    tan(pi fd / fs) = tan(pi f0 / fs) / (sqrt(2) - 1)^(1 / (2n))          (low-pass)
    tan(pi fd / fs) = tan(pi f0 / fs) * (sqrt(2) - 1)^(1 / (2n))          (high-pass)

which for ``f0 << fs`` is Winter's ``fd = f0 / (2^(1/2) - 1)^(1/(2n))`` (n = 2: the familiar
0.802 factor). Without the correction the double pass is -6 dB at the design cut-off.
"""

from __future__ import annotations

import logging

import numpy as np

from pipeline.errors import ConfigError
from pipeline.signals.iir import butterworth_sos, sos_filtfilt, sos_response

log = logging.getLogger(__name__)


def double_pass_cutoff_hz(cutoff_hz: float, *, rate_hz: float, order: int,
                          btype: str = "lowpass") -> float:
    """Design cut-off that puts a forward-backward Butterworth at -3 dB at ``cutoff_hz``."""
    factor = (np.sqrt(2.0) - 1.0) ** (1.0 / (2 * order))
    warped = np.tan(np.pi * cutoff_hz / rate_hz)
    warped = warped / factor if btype == "lowpass" else warped * factor
    return float(rate_hz / np.pi * np.arctan(warped))


def design_sos(cutoff_hz: float | tuple[float, float], *, rate_hz: float, order: int,
               btype: str = "lowpass", correct_double_pass: bool = False) -> np.ndarray:
    """SOS coefficients of a Butterworth ``btype`` filter; cut-offs corrected when asked."""
    cutoffs = np.atleast_1d(np.asarray(cutoff_hz, dtype=float))
    if correct_double_pass:
        if btype == "lowpass":
            cutoffs = np.array([double_pass_cutoff_hz(cutoffs[0], rate_hz=rate_hz, order=order)])
        elif btype == "highpass":
            cutoffs = np.array([double_pass_cutoff_hz(cutoffs[0], rate_hz=rate_hz, order=order,
                                                      btype="highpass")])
        else:  # band-pass: each edge as its own high-/low-pass (good when the band is wide)
            cutoffs = np.array([
                double_pass_cutoff_hz(cutoffs[0], rate_hz=rate_hz, order=order, btype="highpass"),
                double_pass_cutoff_hz(cutoffs[1], rate_hz=rate_hz, order=order),
            ])
    nyquist = rate_hz / 2.0
    if np.any(cutoffs <= 0) or np.any(cutoffs >= nyquist):
        raise ConfigError(f"cut-off {cutoffs.tolist()} Hz is outside (0, {nyquist:g}) Hz for a "
                          f"rate of {rate_hz:g} Hz. Fix: lower the cut-off in config.yaml")
    return butterworth_sos(order, cutoffs, rate_hz=rate_hz, btype=btype)


def _filtfilt_segment(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    padlen = min(3 * (2 * len(sos) + 1), x.shape[0] - 1)
    return sos_filtfilt(sos, x, padlen=max(padlen, 0))


def filtfilt_nan(sos: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Zero-lag filter along axis 0; each run of finite samples is filtered on its own.

    NaNs stay NaN; runs shorter than 4 samples are returned unfiltered (with a debug message).
    """
    x = np.asarray(x, dtype=float)
    finite = np.isfinite(x)
    if finite.all():
        return _filtfilt_segment(sos, x) if x.shape[0] > 3 else x.copy()
    flat = x.reshape(x.shape[0], -1)
    out = np.full_like(flat, np.nan)
    flat_finite = finite.reshape(x.shape[0], -1)
    for col in range(flat.shape[1]):
        for start, stop in finite_runs(flat_finite[:, col]):
            seg = flat[start:stop, col]
            if stop - start > 3:
                out[start:stop, col] = _filtfilt_segment(sos, seg)
            else:
                log.debug("run of %d samples left unfiltered", stop - start)
                out[start:stop, col] = seg
    return out.reshape(x.shape)


def finite_runs(mask: np.ndarray) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` of the runs where ``mask`` is True (stop exclusive)."""
    padded = np.concatenate([[False], np.asarray(mask, dtype=bool), [False]])
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))
    return [(int(a), int(b)) for a, b in zip(edges[::2], edges[1::2], strict=True)]


def butter_lowpass(x: np.ndarray, /, cutoff_hz: float, *, rate_hz: float, order: int = 4,
                   correct_double_pass: bool = True) -> np.ndarray:
    """Zero-lag low-pass along axis 0 (time first), NaN-aware."""
    sos = design_sos(cutoff_hz, rate_hz=rate_hz, order=order, btype="lowpass",
                     correct_double_pass=correct_double_pass)
    return filtfilt_nan(sos, x)


def butter_bandpass(x: np.ndarray, /, band_hz: tuple[float, float], *, rate_hz: float,
                    order: int = 3, correct_double_pass: bool = False) -> np.ndarray:
    """Zero-lag band-pass along axis 0, NaN-aware."""
    sos = design_sos((band_hz[0], band_hz[1]), rate_hz=rate_hz, order=order, btype="bandpass",
                     correct_double_pass=correct_double_pass)
    return filtfilt_nan(sos, x)


def double_pass_gain(freq_hz: float | np.ndarray, *, cutoff_hz: float | tuple[float, float],
                     rate_hz: float, order: int, btype: str = "lowpass",
                     correct_double_pass: bool = False) -> np.ndarray:
    """Analytic magnitude of the forward-backward filter (|H|^2) at ``freq_hz``."""
    sos = design_sos(cutoff_hz, rate_hz=rate_hz, order=order, btype=btype,
                     correct_double_pass=correct_double_pass)
    return np.abs(sos_response(sos, np.atleast_1d(freq_hz), rate_hz=rate_hz)) ** 2
