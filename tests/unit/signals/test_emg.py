"""EMG envelope against a known envelope; channel map errors; normalisation."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import C3DError, ConfigError
from pipeline.io.c3d import read_c3d
from pipeline.io.opensim_files import StoTable
from pipeline.signals.emg import emg_envelope, envelope_maxima, envelope_table, normalise


def test_envelope_correlates_with_known_envelope(synthetic_trial) -> None:
    path, truth = synthetic_trial
    rec = read_c3d(path)
    table = envelope_table(rec.analogs, {"EMG01": "a", "EMG03": "b"},
                           first_time_s=rec.first_time_s, options={})
    assert table.labels == ("a", "b")
    assert 1 / np.median(np.diff(table.time_s)) >= 200.0
    for col, c in enumerate((0, 2)):
        known = np.interp(table.time_s, truth["analog_times_s"], truth["emg_envelopes"][:, c])
        r = np.corrcoef(table.data[:, col], known)[0, 1]
        assert r >= 0.95


def test_missing_channel_lists_available_labels(synthetic_trial) -> None:
    path, _ = synthetic_trial
    rec = read_c3d(path)
    with pytest.raises(C3DError, match=r"\['NOPE'\].*EMG01"):
        envelope_table(rec.analogs, {"NOPE": "x"}, first_time_s=0.0, options={}, file=path)


def test_rate_too_low_names_file_rate_and_fix() -> None:
    with pytest.raises(ConfigError, match=r"t\.c3d: .*500 Hz.*Fix: record EMG at 601 Hz"):
        emg_envelope(np.zeros((1000, 1)), rate_hz=500.0, file="t.c3d")


def test_maxima_and_normalise_clip_and_resample() -> None:
    t = np.linspace(0, 1, 201)
    a = StoTable(t, ("m1", "m2"), np.column_stack([t, 2 * t]))
    b = StoTable(t, ("m1",), np.column_stack([3 * t]))
    maxima = envelope_maxima([a, b])
    assert maxima == {"m1": 3.0, "m2": 2.0}
    out = normalise(a, {"m1": 0.5, "m2": 2.0}, times_s=np.linspace(0, 1, 11))
    np.testing.assert_allclose(out.data[:, 1], np.linspace(0, 1, 11))
    assert out.data[:, 0].max() == 1.0 and out.data.min() >= 0.0
    with pytest.raises(ConfigError, match="m2"):
        normalise(a, {"m1": 1.0}, times_s=t)
