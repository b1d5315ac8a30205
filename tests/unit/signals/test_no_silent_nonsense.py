"""Data that would give nonsense is named in a warning or refused: dead, flat and saturated EMG,
excitations above 1 after normalisation, implausible ID moments, DEC-format C3D files."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest
from c3d_helpers import intel_to_dec, write_minimal_c3d

from pipeline.io.opensim_files import StoTable, write_sto
from pipeline.signals.emg import channel_warnings, emg_envelope, normalise

RATE_HZ = 1000.0


def _raw(n: int = 4000, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    burst = 1.0 + np.sin(np.linspace(0, 6 * np.pi, n)) ** 2
    return rng.normal(size=(n, 3)) * burst[:, None] * 1e-3


def test_dead_channel_is_named() -> None:
    raw = _raw()
    raw[:, 1] *= 1e-3  # electrode off: noise floor only
    env = emg_envelope(raw, rate_hz=RATE_HZ)
    warnings = channel_warnings(["bic", "tri", "del"], ["EMG1", "EMG2", "EMG3"], raw, env)
    assert len(warnings) == 1
    assert "'tri' (channel 'EMG2') is flat or dead" in warnings[0]
    assert "Fix:" in warnings[0]


def test_saturated_channel_is_named() -> None:
    raw = _raw()
    raw[:, 2] = np.clip(raw[:, 2] * 5, -2e-3, 2e-3)  # amplifier clipping at +-2 mV
    env = emg_envelope(raw, rate_hz=RATE_HZ)
    warnings = channel_warnings(["bic", "tri", "del"], ["EMG1", "EMG2", "EMG3"], raw, env)
    assert len(warnings) == 1 and "'del' (channel 'EMG3') is saturated" in warnings[0]


def test_healthy_channels_give_no_warning() -> None:
    raw = _raw()
    env = emg_envelope(raw, rate_hz=RATE_HZ)
    assert channel_warnings(["a", "b", "c"], ["1", "2", "3"], raw, env) == []


def test_excitation_above_one_is_warned(caplog: pytest.LogCaptureFixture) -> None:
    times = np.linspace(0, 1, 101)
    env = StoTable(times, ("bic", "tri"), np.column_stack([times * 2.0, times * 0.5]))
    with caplog.at_level(logging.WARNING):
        out = normalise(env, {"bic": 1.0, "tri": 1.0}, times_s=times, file="flex1/env.sto")
    assert out.data.max() == pytest.approx(1.0)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "flex1/env.sto: EMG 'bic' reaches 2.00 after normalisation" in messages[0]


def test_implausible_id_moments_are_warned(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    from pipeline.cli.opensim_stage import _warn_implausible_moments

    times = np.linspace(0, 1, 11)
    sto = tmp_path / "id.sto"
    write_sto(sto, StoTable(times, ("knee_angle_r_moment", "pelvis_tx_force"),
                            np.column_stack([np.full(11, 600.0), np.full(11, 900.0)])))
    with caplog.at_level(logging.WARNING):
        _warn_implausible_moments(sto, 75.0, "s01/walk1")  # 8 N m/kg
        _warn_implausible_moments(sto, 150.0, "s01/walk1")  # 4 N m/kg: plausible
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1
    assert "trial s01/walk1, knee_angle_r_moment peaks at 600.0 N m = 8.0 N m/kg" in messages[0]


def test_dec_c3d_reads_like_its_intel_original(tmp_path: Path, shared_data: Path) -> None:
    """A DEC (VAX) file made from a real Intel one reads value for value; its rate is not
    6e-42 Hz."""
    from pipeline.io.c3d import read_c3d
    from pipeline.io.c3d_header import read_summary

    intel = shared_data / "ezc3d-testFiles" / "BTS.c3d"
    dec = intel_to_dec(intel, tmp_path / "dec.c3d")
    assert dec.read_bytes()[512 * (dec.read_bytes()[0] - 1) + 3] == 85
    assert dec.read_bytes()[20:24] != intel.read_bytes()[20:24]
    a, b = read_c3d(intel), read_c3d(dec)
    assert b.markers.rate_hz == a.markers.rate_hz == 100.0
    assert b.analogs.rate_hz == a.analogs.rate_hz
    np.testing.assert_array_equal(b.markers.xyz_m, a.markers.xyz_m)
    np.testing.assert_array_equal(b.analogs.values, a.analogs.values)
    assert read_summary(dec).point_rate_hz == 100.0


def test_study_with_a_dec_file_validates(template_study: Path) -> None:
    from pipeline.study import load_study

    intel = template_study / "c3d/s01/flex1.c3d"
    write_minimal_c3d(intel, n_frames=900, analog_labels=("EMG1", "EMG2", "EMG3", "EMG4"))
    intel_to_dec(intel, intel)
    study = load_study(template_study, check_data=True)
    assert study.trial("s01", "flex1")["kind"] == "dynamic"


def test_cached_c3d_summary_equals_the_decoded_one_and_follows_the_file(
        tmp_path: Path, shared_data: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The cached summary of a real C3D file equals read_summary's; a copy at another path, or
    the same file rewritten, is decoded again; an unreadable file raises and is not cached; a
    cache folder that cannot be written costs only the decoding."""
    import shutil

    from pipeline.errors import PipelineError
    from pipeline.io import c3d_header

    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path / "cache"))
    source = tmp_path / "BTS.c3d"
    shutil.copyfile(shared_data / "ezc3d-testFiles" / "BTS.c3d", source)
    decoded = c3d_header.read_summary(source)
    assert c3d_header.cached_summary(source) == decoded  # decoded, then remembered
    calls: list[Path] = []
    real = c3d_header.read_summary
    monkeypatch.setattr(c3d_header, "read_summary", lambda p: calls.append(Path(p)) or real(p))
    assert c3d_header.cached_summary(source) == decoded and calls == []
    other = tmp_path / "other.c3d"
    shutil.copyfile(shared_data / "ezc3d-testFiles" / "Qualisys.c3d", other)
    assert c3d_header.cached_summary(other) == real(other) and calls == [other]
    shutil.copyfile(other, source)  # same path, new content (size and time differ)
    rewritten = c3d_header.cached_summary(source)
    assert calls[-1] == source and rewritten.analog_labels == real(other).analog_labels
    broken = tmp_path / "broken.c3d"
    broken.write_bytes(b"not a c3d file")
    for _ in range(2):
        with pytest.raises(PipelineError):
            c3d_header.cached_summary(broken)
    assert calls.count(broken) == 2
    blocked = tmp_path / "blocked"
    blocked.write_text("a file where the cache folder should be")
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(blocked))
    assert c3d_header.cached_summary(source) == rewritten
