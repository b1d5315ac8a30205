"""Scale and IK on markers synthesised from the demo arm itself: identity scaling, zero marker
error, IK recovers the true coordinates; marker mismatches and missing files are clear errors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

opensim = pytest.importorskip("opensim")
models = pytest.importorskip("pipeline.osim.models")

from pipeline.errors import IKError, ScalingError  # noqa: E402
from pipeline.io.opensim_files import read_sto  # noqa: E402
from pipeline.osim.ik import run_inverse_kinematics  # noqa: E402
from pipeline.osim.inverse_dynamics import run_inverse_dynamics  # noqa: E402
from pipeline.osim.model_io import load_model  # noqa: E402
from pipeline.osim.scale import scale_model  # noqa: E402

NAME = "demo-arm"


def _write_trc(path: Path, time_s: np.ndarray, names: list[str], xyz_m: np.ndarray) -> Path:
    rate = 1.0 / (time_s[1] - time_s[0]) if len(time_s) > 1 else 100.0
    n, m = len(time_s), len(names)
    lines = [f"PathFileType\t4\t(X/Y/Z)\t{path.name}",
             "DataRate\tCameraRate\tNumFrames\tNumMarkers\tUnits\tOrigDataRate\t"
             "OrigDataStartFrame\tOrigNumFrames",
             f"{rate:g}\t{rate:g}\t{n}\t{m}\tmm\t{rate:g}\t1\t{n}",
             "Frame#\tTime\t" + "\t\t\t".join(names),
             "\t\t" + "\t".join(f"X{i + 1}\tY{i + 1}\tZ{i + 1}" for i in range(m)), ""]
    for k in range(n):
        values = "\t".join(f"{v:.6f}" for v in (xyz_m[k] * 1000.0).ravel())
        lines.append(f"{k + 1}\t{time_s[k]:.6f}\t{values}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _markers(model, poses: list[dict[str, float]]) -> tuple[list[str], np.ndarray]:
    state = model.initSystem()
    markers = model.getMarkerSet()
    names = [markers.get(i).getName() for i in range(markers.getSize())]
    coords = model.getCoordinateSet()
    xyz = np.empty((len(poses), len(names), 3))
    for k, pose in enumerate(poses):
        for name, value in pose.items():
            coords.get(name).setValue(state, value, False)
        model.realizePosition(state)
        for i, name in enumerate(names):
            loc = markers.get(name).getLocationInGround(state)
            xyz[k, i] = [loc.get(0), loc.get(1), loc.get(2)]
    return names, xyz


@pytest.fixture(scope="module")
def arm(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("arm")
    model_path = models.write_builtin_model(NAME, folder / f"{NAME}.osim")
    model = load_model(model_path)
    names, xyz = _markers(model, [{}] * 20)
    static = _write_trc(folder / "static.trc", np.arange(20) / 100.0, names, xyz)
    time_s = np.arange(60) / 60.0
    truth = {"shoulder_elev": 0.4 + 0.3 * np.sin(2 * np.pi * time_s),
             "elbow_flex": 1.2 + 0.6 * np.sin(2 * np.pi * time_s + 1.0)}
    poses = [{k: float(v[i]) for k, v in truth.items()} for i in range(len(time_s))]
    _, dyn = _markers(model, poses)
    dynamic = _write_trc(folder / "dynamic.trc", time_s, names, dyn)
    return {"folder": folder, "model": model_path, "static": static, "dynamic": dynamic,
            "truth": truth, "time": time_s}


@pytest.fixture(scope="module")
def scaled(arm) -> tuple[Path, Any]:
    """The arm scaled to its own markers: (output folder, scale result); shared by the tests."""
    out = arm["folder"] / "model"
    result = scale_model(arm["model"], arm["static"], out_model=out / "scaled.osim",
                         report_path=out / "scale_report.json", mass_kg=80.0,
                         measurement_set=models.template_path(NAME, "measurements"),
                         task_set=models.template_path(NAME, "ik_tasks"))
    return out, result


def test_scale_of_the_models_own_markers_is_identity(scaled) -> None:
    out, result = scaled
    report = json.loads((out / "scale_report.json").read_text())
    assert report == result.report
    for factors in report["scale_factors"].values():
        np.testing.assert_allclose(factors, 1.0, atol=1e-6)
    assert report["marker_max_error_m"] < 1e-4
    assert report["scaled_mass_kg"] == pytest.approx(80.0)
    assert {"setup_scale.xml", "scaled.osim", "scale_report.json"} <= {
        p.name for p in out.iterdir()}


def test_ik_recovers_the_true_coordinates(arm, scaled) -> None:
    model = scaled[0] / "scaled.osim"
    out = arm["folder"] / "trial" / "ik.mot"
    result = run_inverse_kinematics(model, arm["dynamic"], out_mot=out,
                                    task_set=models.template_path(NAME, "ik_tasks"),
                                    max_rms_error_m=0.001, on_error="fail")
    assert result.max_rms_error_m < 1e-4
    motion = read_sto(out, state_values=True)
    for name, values in arm["truth"].items():
        np.testing.assert_allclose(np.deg2rad(motion.column(name)), values, atol=2e-3)
    assert (out.parent / "_ik_marker_errors.sto").is_file()
    assert (out.parent / "setup_ik.xml").is_file()
    # No force plates on the arm: ID runs without external loads.
    sto = run_inverse_dynamics(model, out, out_sto=out.parent / "id.sto", cutoff_hz=6.0)
    assert "elbow_flex_moment" in read_sto(sto).labels


def test_ik_threshold_fail_leaves_no_output(arm, tmp_path: Path) -> None:
    names, xyz = _markers(load_model(arm["model"]), [{}] * 10)
    xyz[:, 0, 1] += 0.05  # one marker 5 cm off in every frame
    trc = _write_trc(tmp_path / "bad.trc", np.arange(10) / 100.0, names, xyz)
    with pytest.raises(IKError, match="RMS marker error exceeds"):
        run_inverse_kinematics(arm["model"], trc, out_mot=tmp_path / "t" / "ik.mot",
                               max_rms_error_m=0.005, on_error="fail")
    assert list((tmp_path / "t").iterdir()) == []


def test_marker_mismatch_and_missing_static(arm, tmp_path: Path) -> None:
    names, xyz = _markers(load_model(arm["model"]), [{}] * 5)
    renamed = [("R_SHO" if n == "RSHO" else n) for n in names]
    trc = _write_trc(tmp_path / "static.trc", np.arange(5) / 100.0, renamed, xyz)
    out = tmp_path / "model"
    kwargs = {"out_model": out / "scaled.osim", "report_path": out / "scale_report.json",
              "mass_kg": 70.0, "measurement_set": models.template_path(NAME, "measurements"),
              "task_set": models.template_path(NAME, "ik_tasks")}
    with pytest.raises(ScalingError, match=r"absent from the trial: RSHO.*unknown to the "
                                           r"model: R_SHO"):
        scale_model(arm["model"], trc, **kwargs)
    with pytest.raises(ScalingError, match="marker file does not exist"):
        scale_model(arm["model"], tmp_path / "no_static.trc", **kwargs)
    assert not out.exists() or list(out.iterdir()) == []
