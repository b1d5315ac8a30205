"""The numpy signal kernels against scipy, their oracle: Butterworth design and response,
zero-phase filtering, the not-a-knot spline, Welch's density and the peak finder. And the
reason they exist: the small workflow steps do not import scipy.signal."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from scipy import signal
from scipy.interpolate import CubicSpline

from pipeline.signals import iir
from pipeline.signals.emg_quality import welch_density
from pipeline.signals.events import local_maxima, prominent_peaks
from pipeline.signals.gaps import not_a_knot_spline

DESIGNS = [
    (4, 6.0, "lowpass", 100.0),
    (1, 10.0, "lowpass", 1000.0),
    (3, 10.0, "lowpass", 1000.0),
    (4, 0.5, "lowpass", 2000.0),
    (2, 20.0, "highpass", 2000.0),
    (5, 35.0, "highpass", 2000.0),
    (3, (20.0, 450.0), "bandpass", 2000.0),
    (4, (30.0, 300.0), "bandpass", 1000.0),
    (2, (5.0, 400.0), "bandpass", 1000.0),
]


@pytest.mark.parametrize(("order", "cutoff", "btype", "rate"), DESIGNS)
def test_butterworth_design_response_and_filtfilt_equal_scipy(order: int, cutoff: object,
                                                              btype: str, rate: float) -> None:
    ours = iir.butterworth_sos(order, cutoff, rate_hz=rate, btype=btype)  # type: ignore[arg-type]
    ref = signal.butter(order, cutoff, btype=btype, fs=rate, output="sos")
    freq = np.linspace(0.0, 0.499 * rate, 300)
    _, h_ref = signal.sosfreqz(ref, worN=freq, fs=rate)
    # poles near z = 1 (0.5 Hz at 2 kHz) leave the response good to about 1e-11
    assert np.abs(iir.sos_response(ours, freq, rate_hz=rate) - h_ref).max() < 1e-10
    # sections may be paired differently; the transfer function may not
    x = np.random.default_rng(order).standard_normal((3000, 3)).cumsum(axis=0)
    pad = 3 * (2 * len(ref) + 1)
    y_ref = signal.sosfiltfilt(ref, x, axis=0, padlen=pad)
    y = iir.sos_filtfilt(ours, x, padlen=pad)
    assert np.abs(y - y_ref).max() < 1e-9 * np.abs(y_ref).max()


@pytest.mark.parametrize("n", [1, 5, 63, 64, 65, 200])
def test_causal_filter_from_a_given_state_equals_scipy_at_block_edges(n: int) -> None:
    sos = signal.butter(4, 0.1, output="sos")
    x = np.random.default_rng(n).standard_normal((n, 2))
    zi = np.random.default_rng(7).standard_normal((2, 2, 2))
    y_ref, _ = signal.sosfilt(sos, x, axis=0, zi=zi)
    assert np.allclose(iir.sos_filter(sos, x, initial=zi), y_ref, rtol=0, atol=1e-12)


def test_steady_state_equals_scipy_and_keeps_a_constant_constant() -> None:
    sos = signal.butter(5, [0.05, 0.3], btype="bandpass", output="sos")
    assert np.allclose(iir.sos_steady_state(sos), signal.sosfilt_zi(sos), atol=1e-13)
    low = iir.butterworth_sos(4, 5.0, rate_hz=100.0)
    y = iir.sos_filter(low, np.full(50, 2.5), initial=iir.sos_steady_state(low) * 2.5)
    assert np.allclose(y, 2.5, atol=1e-12)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 20])
def test_not_a_knot_spline_equals_scipy(n: int) -> None:
    rng = np.random.default_rng(n)
    t = np.sort(rng.choice(60, n, replace=False)).astype(float)
    y = rng.standard_normal((n, 3))
    t_new = np.linspace(t[0], t[-1], 77)
    assert np.abs(not_a_knot_spline(t, y, t_new) - CubicSpline(t, y, axis=0)(t_new)).max() < 1e-12


@pytest.mark.parametrize(("n", "segment"), [(5000, 1000), (3001, 256), (999, 999), (4000, 257)])
def test_welch_density_equals_scipy(n: int, segment: int) -> None:
    x = np.random.default_rng(n).standard_normal(n)
    f_ref, p_ref = signal.welch(x, fs=1000.0, nperseg=segment)
    f, p = welch_density(x, rate_hz=1000.0, segment=segment)
    assert np.array_equal(f, f_ref)
    assert np.abs(p - p_ref).max() < 1e-12 * p_ref.max()


def test_peaks_equal_scipy_find_peaks_with_plateaus_and_ties() -> None:
    rng = np.random.default_rng(5)
    for trial in range(300):
        # rounded random walks: flat tops and equal heights are common
        x = np.round(rng.standard_normal(400).cumsum(), 0 if trial % 2 else 6)
        distance, prominence = int(rng.integers(1, 40)), float(rng.uniform(0, 5))
        assert np.array_equal(local_maxima(x), signal.find_peaks(x)[0])
        expected = signal.find_peaks(x, distance=distance, prominence=prominence)[0]
        found = prominent_peaks(x, min_distance=distance, min_prominence=prominence)
        assert np.array_equal(found, expected), (trial, distance, prominence)


def test_small_steps_do_not_import_scipy_signal() -> None:
    """scipy.signal's import (about a second) was most of a small workflow step's wall time."""
    code = ("import sys; import pipeline.cli.preprocess, pipeline.signals.markers, "
            "pipeline.signals.forceplates, pipeline.signals.emg, pipeline.signals.emg_quality, "
            "pipeline.signals.events, pipeline.signals.gaps, pipeline.signals.grf; "
            "print(sorted(m for m in ('scipy.signal', 'scipy.interpolate', 'scipy.optimize', "
            "'scipy.stats', 'torch') if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            check=True)
    assert result.stdout.strip() == "[]"
