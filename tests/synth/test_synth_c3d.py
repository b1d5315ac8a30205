"""The demo study's C3D files read back (ezc3d and the project's reader) agree with the truth."""

from __future__ import annotations

from pathlib import Path

import ezc3d
import numpy as np
import pytest
from scipy import signal
from synth_helpers import ROTATION, plate_loads

from pipeline.osim.models import build_model
from pipeline.study import load_study
from pipeline.synth import emg
from pipeline.synth.kinematics import ModelEvaluator, Motion
from pipeline.synth.study import MARKER_NOISE_MM

pytestmark = pytest.mark.slow


def _true_markers_mm(model_name: str, coordinates: dict[str, list[float]]) -> dict:
    model = build_model(model_name)
    evaluator = ModelEvaluator(model)
    q = {c: np.asarray(v) for c, v in coordinates.items()}
    zeros = {c: np.zeros_like(v) for c, v in q.items()}
    n = len(next(iter(q.values())))
    markers = evaluator.markers(Motion(np.arange(n) / 100.0, q, zeros, zeros))
    return {name: 1000.0 * xyz @ ROTATION for name, xyz in markers.items()}


@pytest.mark.parametrize(("subject", "trial"), [("arm01", "abduction1"), ("leg01", "squat1")])
def test_markers_match_truth_within_noise(small_study: Path, small_truth: dict, subject: str,
                                          trial: str) -> None:
    entry = small_truth["subjects"][subject]
    true = _true_markers_mm(entry["model"], entry["trials"][trial]["coordinates"])
    c3d = ezc3d.c3d(str(small_study / "c3d" / subject / f"{trial}.c3d"))
    assert c3d["parameters"]["POINT"]["UNITS"]["value"] == ["mm"]
    labels = c3d["parameters"]["POINT"]["LABELS"]["value"]
    points = c3d["data"]["points"][:3]
    residuals = c3d["data"]["meta_points"]["residuals"][0]
    assert set(labels) == set(true)
    errors = []
    for i, label in enumerate(labels):
        present = residuals[i] >= 0
        errors.append(points[:, i, present].T - true[label][present])
    error = np.concatenate(errors)
    assert np.abs(error.mean(axis=0)).max() < 0.2  # mm: no offset, frame or unit error
    assert error.std() == pytest.approx(MARKER_NOISE_MM, rel=0.1)
    gaps = (residuals < 0).sum(axis=1)
    if trial == "abduction1":  # the study's one gap: 5 frames of one marker
        assert sorted(gaps.tolist())[-2:] == [0, 5]
    else:
        assert gaps.sum() == 0


def test_plates_match_true_ground_reactions(small_study: Path, small_truth: dict) -> None:
    record = small_truth["subjects"]["leg01"]["trials"]["squat1"]
    loads = plate_loads(small_study / "c3d" / "leg01" / "squat1.c3d")
    # The COP moves ~10 cm (the centre of mass shifts forward at depth) and the loads have kinks
    # where the squat cycles start and stop; compare with the truth low-passed like the plates
    # (6 Hz, zero-lag), so that only noise and plate-geometry errors remain.
    sos = signal.butter(4, 6.0, fs=100.0, output="sos")
    for side in ("r", "l"):
        true = record["ground_reactions"][side]
        force = signal.sosfiltfilt(sos, np.asarray(true["force_n"]), axis=0)
        assert np.abs(loads[side]["force_n"] - force)[5:-5].max() < 1.0  # N (0.5 N noise)
        cop = signal.sosfiltfilt(sos, np.asarray(true["cop_m"]), axis=0)
        assert np.abs(loads[side]["cop_m"] - cop)[5:-5].max() < 1e-3  # m
        assert np.abs(loads[side]["torque_nm"]).max() < 0.2


def test_project_reader_reads_markers_emg_and_plates(small_study: Path) -> None:
    from pipeline.io.c3d import read_c3d

    raw = ezc3d.c3d(str(small_study / "c3d" / "leg01" / "squat1.c3d"))
    recording = read_c3d(small_study / "c3d" / "leg01" / "squat1.c3d")
    assert recording.markers.rate_hz == 100.0 and recording.analogs.rate_hz == 2000.0
    xyz = np.transpose(raw["data"]["points"][:3], (2, 1, 0)) * 1e-3
    assert np.allclose(recording.markers.xyz_m, xyz, equal_nan=True)
    assert recording.analogs.labels[:14] == tuple(f"EMG{i}" for i in range(1, 15))
    assert recording.analogs.units[:14] == ("V",) * 14
    assert len(recording.plates) == 2
    for plate in recording.plates:
        assert plate.plate_type == 2
        assert np.allclose(plate.origin_m, [0.0, 0.0, -0.04])
        assert plate.channels_si[:, 2].mean() > 200.0  # Fz (plate z down): body weight share
        index = [recording.analogs.index(label) for label in plate.channel_labels]
        channels = raw["data"]["analogs"][0][index]
        assert np.allclose(plate.channels_si[:, 3:], channels[3:].T * 1e-3)  # N mm -> N m


@pytest.mark.parametrize(("subject", "trial"), [("arm01", "flexion1"), ("leg01", "squat2")])
def test_emg_envelopes_normalised_by_mvc_recover_true_excitations(
        small_study: Path, small_truth: dict, subject: str, trial: str) -> None:
    study = load_study(small_study)
    chain = study.config["emg"]  # the study's own envelope chain, as the pipeline applies it

    def envelopes(name: str) -> tuple[list[str], np.ndarray]:
        c3d = ezc3d.c3d(str(small_study / "c3d" / subject / f"{name}.c3d"))
        labels = c3d["parameters"]["ANALOG"]["LABELS"]["value"]
        emg_idx = [i for i, lab in enumerate(labels) if lab.startswith("EMG")]
        values = c3d["data"]["analogs"][0][emg_idx]
        return [labels[i] for i in emg_idx], emg.envelope(
            values, rate_hz=2000.0, bandpass_hz=tuple(chain["bandpass_hz"]),
            bandpass_order=chain["bandpass_order"], lowpass_hz=chain["lowpass_hz"],
            lowpass_order=chain["lowpass_order"])

    setup = study.config["models"][study.subject(subject)["model"]]
    labels, env = envelopes(trial)
    _, mvc = envelopes("mvc1")
    normalised = env / mvc.max(axis=1, keepdims=True)
    record = small_truth["subjects"][subject]["trials"][trial]
    errors, gains = [], []
    for i, label in enumerate(labels):
        mtu = next(m for m, w in setup["excitations"].items() if setup["emg_channels"][label] in w)
        true = np.asarray(record["excitations"][mtu])[30:-30]
        estimate = normalised[i, ::20][: true.size + 60][30:-30]
        errors.append(estimate - true)
        gains.append(float(estimate @ true / (true @ true)))
    errors = np.array(errors)
    assert np.abs(errors.mean()) < 0.02
    assert np.sqrt((errors**2).mean()) < 0.06
    # MVC normalisation is unbiased: a gain error would be read by calibration as strength.
    assert abs(np.mean(gains) - 1.0) < 0.03, gains


def test_project_force_plate_stage_recovers_true_ground_reactions(small_study: Path,
                                                                  small_truth: dict) -> None:
    from pipeline.io.c3d import read_c3d
    from pipeline.signals.forceplates import plate_wrenches

    recording = read_c3d(small_study / "c3d" / "leg01" / "squat1.c3d")
    wrenches = plate_wrenches(recording, threshold_n=20.0, cutoff_hz=6.0)
    record = small_truth["subjects"]["leg01"]["trials"]["squat1"]
    for wrench, side in zip(wrenches, ("r", "l"), strict=True):
        true = record["ground_reactions"][side]
        force_lab = np.asarray(true["force_n"]) @ ROTATION
        cop_lab = np.asarray(true["cop_m"]) @ ROTATION
        inner = slice(10, -10)
        assert np.abs(wrench.force_n[::20][inner] - force_lab[inner]).max() < 1.0
        assert np.abs(wrench.cop_m[::20][inner] - cop_lab[inner]).max() < 2e-3
