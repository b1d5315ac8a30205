"""EMG quality flags on synthetic channels whose defect is known by construction, and on a real
session whose dead channels are documented (biomechzoo HC002D: only R Rect, R Hams, R Gast and
R Tib Ant carry signal)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.signals.emg import emg_envelope
from pipeline.signals.emg_quality import channel_quality, line_noise_share, trial_quality

RATE = 1000.0


def _bursts(rng, n):
    t = np.arange(n) / RATE
    gate = (np.sin(2 * np.pi * 1.0 * t) > 0.6).astype(float)  # 1 Hz bursts, rest between
    return rng.normal(0, 1e-5, n) + gate * rng.normal(0, 5e-4, n)


def _quality(raw):
    env = emg_envelope(raw[:, None], rate_hz=RATE, bandpass_hz=(20, 450), lowpass_hz=5)[:, 0]
    return channel_quality(raw, env, rate_hz=RATE, times_s=np.arange(len(raw)) / RATE)


def test_synthetic_defects_are_flagged_and_clean_signal_is_not():
    rng = np.random.default_rng(0)
    n = 5000
    live = _bursts(rng, n)
    assert _quality(live)["flags"] == []
    assert _quality(live)["snr"] > 20
    onsets = _quality(live)["onsets_s"]
    # Bursts start where sin(2 pi t) rises through 0.6: t = asin(0.6) / (2 pi) + k.
    expected = np.arcsin(0.6) / (2 * np.pi) + np.arange(5)
    assert len(onsets) == 5
    np.testing.assert_allclose(onsets, expected, atol=0.08)
    assert _quality(rng.normal(0, 1e-5, n))["flags"] == ["dead"]
    assert _quality(np.zeros(n))["flags"] == ["flat"]
    clipped = np.clip(live, -2e-4, 2e-4)
    assert "saturated" in _quality(clipped)["flags"]
    t = np.arange(n) / RATE
    hum = live + 5e-4 * np.sin(2 * np.pi * 50 * t)
    assert "line_noise" in _quality(hum)["flags"]
    assert line_noise_share(hum, rate_hz=RATE, line_hz=50) > 0.5
    assert line_noise_share(live, rate_hz=RATE, line_hz=50) < 0.1


def test_warning_names_channel_and_fix(caplog):
    rng = np.random.default_rng(1)
    raw = np.column_stack([_bursts(rng, 4000), rng.normal(0, 1e-5, 4000)])
    env = emg_envelope(raw, rate_hz=RATE, bandpass_hz=(20, 450), lowpass_hz=5)
    q = trial_quality(["soleus", "tibant"], ["EMG1", "EMG2"], raw, env, rate_hz=RATE,
                      times_s=np.arange(4000) / RATE, trial="s01/walk1")
    assert q["channels"]["soleus"]["flags"] == []
    assert q["channels"]["tibant"]["flags"] == ["dead"]
    (warning,) = q["warnings"]
    assert "tibant" in warning and "EMG2" in warning and "s01/walk1" in warning
    assert "drop_emg" in warning


def test_real_dead_channels_flagged(shared_data):
    import ezc3d

    path = shared_data / "real-sessions" / "biomechzoo-hc002d" / "HC002D06_straight.c3d"
    c3d = ezc3d.c3d(str(path))  # the raw analogs, as recorded
    all_labels = [lb.strip() for lb in c3d["parameters"]["ANALOG"]["LABELS"]["value"]]
    rate = float(c3d["parameters"]["ANALOG"]["RATE"]["value"][0])
    labels = [lb for lb in all_labels if not lb.startswith(("F", "M"))]
    raw = np.asarray(c3d["data"]["analogs"][0])[[all_labels.index(lb) for lb in labels]].T
    env = emg_envelope(raw, rate_hz=rate, bandpass_hz=(30, 300), lowpass_hz=5)
    q = trial_quality(labels, labels, raw, env, rate_hz=rate,
                      times_s=np.arange(len(raw)) / rate)
    flagged = {name for name, c in q["channels"].items() if "dead" in c["flags"]}
    live = {"R Rect", "R Hams", "R Gast", "R Tib Ant"}
    assert flagged == set(labels) - live
    assert all(q["channels"][name]["snr"] > 10 for name in live)


@pytest.mark.parametrize("line_hz", [50.0, 60.0])
def test_line_noise_share_of_a_pure_tone(line_hz):
    t = np.arange(8000) / RATE
    assert line_noise_share(np.sin(2 * np.pi * line_hz * t), rate_hz=RATE,
                            line_hz=line_hz) > 0.95


def test_onset_and_offset_as_percent_of_their_cycle():
    """A synthetic envelope: rest at 0.01, a burst from 1.30 s to 1.75 s in the cycle
    [1.0, 2.0] s. It crosses 25 % of its range exactly at the burst's edges (the first sample
    at or above the level on the way up, the first below it on the way down), i.e. at 30 % and
    75 % of that cycle."""
    from pipeline.signals.emg_quality import cycle_timing

    t = np.arange(0, 3.0, 0.001)
    envelope = np.where((t >= 1.3 - 1e-9) & (t < 1.75 - 1e-9), 1.0, 0.01)
    raw = np.random.default_rng(2).normal(0, 1e-4, len(t)) * envelope
    q = channel_quality(raw, envelope, rate_hz=RATE, times_s=t)
    assert q["onsets_s"] == [1.3] and q["offsets_s"] == [1.75]
    windows = [[0.0, 1.0], [1.0, 2.0], [2.0, 3.0]]
    onset, = cycle_timing(q["onsets_s"], windows)
    offset, = cycle_timing(q["offsets_s"], windows)
    assert onset == {"time_s": 1.3, "cycle": 2, "percent": 30.0}
    assert offset == {"time_s": 1.75, "cycle": 2, "percent": 75.0}
    assert cycle_timing([3.5], windows) == []  # in no cycle
    # Overlapping right and left gait cycles: the channel's leg picks the cycle; without one,
    # the cycle that began last holds the time.
    gait = [[1.0, 2.1], [1.55, 2.65]]
    assert cycle_timing([1.6], gait, sides=["r", "l"], side="r")[0]["percent"] == 54.5
    assert cycle_timing([1.6], gait, sides=["r", "l"], side="l")[0]["cycle"] == 2
    assert cycle_timing([1.6], gait)[0] == {"time_s": 1.6, "cycle": 2, "percent": 4.5}


def test_dead_channel_is_warned_once_with_trial_channel_and_fix(template_study, tmp_path,
                                                                 caplog):
    """The emg-envelope step on a C3D whose EMG4 (triceps) carries only noise: one warning
    names the trial, the channel and the fix; the three live channels give none. Dropped with
    drop_emg, the channel is no longer warned about (its fix is done)."""
    import argparse
    import logging

    import ezc3d

    from pipeline.cli.preprocess import cmd_emg_envelope

    path = template_study / "c3d" / "s01" / "flex1.c3d"
    c3d = ezc3d.c3d(str(path))
    analogs = c3d["data"]["analogs"]
    rng = np.random.default_rng(3)
    n = analogs.shape[2]
    for channel in range(3):
        analogs[0, channel] = _bursts(rng, n)
    analogs[0, 3] = rng.normal(0, 1e-6, n)  # ~0.3 % of the live peaks: both checks see it
    c3d["data"]["analogs"] = analogs
    c3d.write(str(path))

    def run():
        caplog.clear()
        args = argparse.Namespace(study=str(template_study), subject="s01", trial="flex1",
                                  emg_sto=None, out=str(tmp_path / "env.sto"),
                                  quality=str(tmp_path / "quality.json"))
        with caplog.at_level(logging.INFO):
            cmd_emg_envelope(args)
        return [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING
                and "EMG" in r.getMessage()]  # (the minimal C3D has no POINT:UNITS either)

    (warning,) = run()
    assert "triceps" in warning and "'EMG4'" in warning and "s01/flex1" in warning
    assert "dead" in warning and "Fix:" in warning and "drop_emg" in warning
    config = template_study / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        '      "EMG4": triceps\n', '      "EMG4": triceps\n    drop_emg: [triceps]\n', 1),
        encoding="utf-8")
    assert run() == []
    assert any("triceps" in r.getMessage() and "drop_emg" in r.getMessage()
               for r in caplog.records if r.levelno == logging.INFO)


def test_a_muscle_quiet_in_one_task_is_told_from_a_dead_electrode_across_trials():
    """Within one trial a resting muscle and an unplugged electrode both sit at the noise floor
    (both flagged dead there); across the subject's trials only the electrode stays low."""
    from pipeline.report.html import emg_verdict_table
    from pipeline.signals.emg_quality import channel_verdicts

    rng = np.random.default_rng(3)
    n = 4000
    noise = lambda: rng.normal(0, 1e-5, n)  # noqa: E731
    names, labels = ["hams", "tibant", "soleus"], ["EMG1", "EMG2", "EMG3"]

    def trial(columns):
        raw = np.column_stack(columns)
        env = emg_envelope(raw, rate_hz=RATE, bandpass_hz=(20, 450), lowpass_hz=5)
        return trial_quality(names, labels, raw, env, rate_hz=RATE,
                             times_s=np.arange(n) / RATE)

    # hams: active in the MVC, resting in the squat; tibant: noise everywhere; soleus: active.
    qualities = {"mvc1": trial([_bursts(rng, n), noise(), _bursts(rng, n)]),
                 "squat1": trial([noise(), noise(), _bursts(rng, n)])}
    assert "dead" in qualities["squat1"]["channels"]["hams"]["flags"]
    verdicts = {v["channel"]: v for v in channel_verdicts(qualities)}
    assert set(verdicts) == {"hams", "tibant"}
    assert verdicts["hams"]["verdict"] == "quiet"
    assert set(verdicts["hams"]["quiet"]) == {"squat1"}
    assert set(verdicts["hams"]["active"]) == {"mvc1"}
    assert verdicts["hams"]["active"]["mvc1"] > 20
    assert verdicts["tibant"]["verdict"] == "dead"
    assert set(verdicts["tibant"]["quiet"]) == {"mvc1", "squat1"} and not verdicts["tibant"][
        "active"]
    html = emg_verdict_table(list(verdicts.values()))
    assert "low in every trial" in html and "active in other trials" in html
    assert "low SNR in any trial: none" in emg_verdict_table([])
