"""Filters against analytic values: Butterworth gains and the double-pass correction."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import ConfigError
from pipeline.signals.filters import (
    butter_lowpass,
    design_sos,
    double_pass_cutoff_hz,
    double_pass_gain,
    filtfilt_nan,
)

RATE_HZ = 1000.0


def _steady_gain(freq_hz: float, **kwargs: object) -> float:
    """Amplitude ratio of a long sine after filtering (middle part, away from the edges)."""
    t = np.arange(0, 40.0, 1 / RATE_HZ)
    x = np.sin(2 * np.pi * freq_hz * t)
    y = butter_lowpass(x, rate_hz=RATE_HZ, **kwargs)  # type: ignore[arg-type]
    middle = slice(len(t) // 4, 3 * len(t) // 4)
    return float(np.sqrt(2) * np.std(y[middle]))


@pytest.mark.parametrize("order", [2, 4])
def test_uncorrected_double_pass_is_half_power_squared_at_cutoff(order: int) -> None:
    # Single pass -3 dB (1/sqrt 2) at the design cut-off; filtfilt squares it: gain 1/2.
    assert _steady_gain(10.0, cutoff_hz=10.0, order=order, correct_double_pass=False) == (
        pytest.approx(0.5, abs=2e-3))


@pytest.mark.parametrize("order", [1, 2, 4, 6])
def test_corrected_double_pass_is_minus_3db_at_requested_cutoff(order: int) -> None:
    gain = _steady_gain(10.0, cutoff_hz=10.0, order=order, correct_double_pass=True)
    assert gain == pytest.approx(1 / np.sqrt(2), abs=2e-3)
    analytic = double_pass_gain(10.0, cutoff_hz=10.0, rate_hz=RATE_HZ, order=order,
                                correct_double_pass=True)
    assert analytic[0] == pytest.approx(1 / np.sqrt(2), rel=1e-9)


def test_correction_matches_winter_for_second_order_at_low_frequency() -> None:
    # Winter (2009): fd = fc / 0.802 for a 2nd-order filter run twice, when fc << fs.
    assert double_pass_cutoff_hz(1.0, rate_hz=10000.0, order=2) == pytest.approx(1 / 0.802,
                                                                                 rel=1e-3)


def test_highpass_band_edge_correction_and_passband() -> None:
    gain = double_pass_gain(np.array([30.0, 300.0, 100.0]), cutoff_hz=(30.0, 300.0),
                            rate_hz=2000.0, order=3, btype="bandpass", correct_double_pass=True)
    # Each edge corrected as its own high-/low-pass: approximate for a band-pass.
    assert gain[0] == pytest.approx(1 / np.sqrt(2), abs=0.04)
    assert gain[1] == pytest.approx(1 / np.sqrt(2), abs=0.04)
    assert gain[2] == pytest.approx(1.0, abs=0.02)


def test_stopband_attenuation_and_dc_pass() -> None:
    assert _steady_gain(100.0, cutoff_hz=10.0, order=4) < 1e-6
    t = np.arange(0, 2, 1 / RATE_HZ)
    assert np.allclose(butter_lowpass(np.full_like(t, 3.0), 6.0, rate_hz=RATE_HZ), 3.0)


def test_nan_aware_keeps_nans_and_filters_runs() -> None:
    t = np.arange(0, 4, 1 / RATE_HZ)
    x = np.sin(2 * np.pi * 1.0 * t)
    x[1000:1100] = np.nan
    y = butter_lowpass(x, 20.0, rate_hz=RATE_HZ)
    assert np.isnan(y[1000:1100]).all()
    ok = np.isfinite(x)
    assert np.abs(y[ok] - x[ok]).max() < 0.05
    sos = design_sos(20.0, rate_hz=RATE_HZ, order=4)
    assert filtfilt_nan(sos, np.full(3, np.nan)).shape == (3,)


def test_cutoff_above_nyquist_is_config_error() -> None:
    with pytest.raises(ConfigError, match="Nyquist|outside"):
        design_sos(600.0, rate_hz=RATE_HZ, order=4)
