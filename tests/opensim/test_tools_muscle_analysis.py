"""Muscle analysis on the built-in demo models: moment arms are -dL/dq of the lengths; bad inputs
give clear errors and leave no output behind."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

opensim = pytest.importorskip("opensim")
models = pytest.importorskip("pipeline.osim.models")

from pipeline.errors import IDError, ModelError, MuscleAnalysisError  # noqa: E402
from pipeline.io.opensim_files import StoTable, write_sto  # noqa: E402
from pipeline.osim.inverse_dynamics import run_inverse_dynamics  # noqa: E402
from pipeline.osim.model_io import load_model  # noqa: E402
from pipeline.osim.muscle_analysis import (  # noqa: E402
    compute_muscle_geometry,
    read_muscle_analysis,
    run_muscle_analysis,
)


def _model_file(name: str, folder: Path) -> Path:
    return models.write_builtin_model(name, folder / f"{name}.osim")


def _sweep(model, dofs: tuple[str, ...], n: int = 15) -> StoTable:
    """Coordinates sweeping 10-90 % of each DOF's range (others at default), in radians."""
    coords = model.getCoordinateSet()
    state = model.initSystem()
    names = [coords.get(i).getName() for i in range(coords.getSize())]
    time_s = np.linspace(0.0, 1.0, n)
    data = np.empty((n, len(names)))
    for j, name in enumerate(names):
        c = coords.get(name)
        if name in dofs:
            low, high = c.getRangeMin(), c.getRangeMax()
            phase = 0.5 + 0.4 * np.sin(2 * np.pi * time_s + j)
            data[:, j] = low + (high - low) * phase
        else:
            data[:, j] = c.getValue(state)
    return StoTable(time_s, tuple(names), data)


@pytest.mark.parametrize("name", ["demo-arm", "demo-leg"])
def test_moment_arms_are_minus_dl_dq(name: str, tmp_path: Path) -> None:
    model = load_model(_model_file(name, tmp_path))
    dofs = tuple(models.default_dofs(name))
    table = _sweep(model, dofs)
    mtus = list(models.muscle_names(name))
    geometry = compute_muscle_geometry(model, table, mtu_names=mtus, coordinate_names=dofs)
    assert geometry.moment_arm_m.shape == (len(mtus), len(dofs), len(table.time_s))
    state = model.initSystem()
    coords = model.getCoordinateSet()
    muscles = [model.getMuscles().get(m) for m in mtus]
    step = 1e-4

    def lengths() -> np.ndarray:
        model.realizePosition(state)
        return np.array([m.getLength(state) for m in muscles])

    for k in range(0, len(table.time_s), 4):
        for label in table.labels:
            coords.get(label).setValue(state, float(table.column(label)[k]), False)
        np.testing.assert_allclose(lengths(), geometry.mtu_length_m[:, k], atol=1e-12)
        for j, dof in enumerate(dofs):
            q0 = coords.get(dof).getValue(state)
            coords.get(dof).setValue(state, q0 + step, False)
            plus = lengths()
            coords.get(dof).setValue(state, q0 - step, False)
            minus = lengths()
            coords.get(dof).setValue(state, q0, False)
            np.testing.assert_allclose(geometry.moment_arm_m[:, j, k], -(plus - minus) / (2 * step),
                                       atol=1e-4)
    # MTUs crossing a DOF have real moment arms; the others (left leg) exactly zero.
    peak = np.abs(geometry.moment_arm_m).max(axis=(1, 2))
    crossing = np.array([not m.endswith("_l") for m in mtus])
    assert np.all(peak[crossing] > 1e-3) and np.all(peak[~crossing] == 0.0)


def test_run_writes_sto_files_that_read_back(tmp_path: Path) -> None:
    model_path = _model_file("demo-arm", tmp_path)
    model = load_model(model_path)
    dofs = ("shoulder_elev", "elbow_flex")
    mot = tmp_path / "ik.mot"
    write_sto(mot, _sweep(model, dofs))
    out = tmp_path / "muscle_analysis"
    geometry = run_muscle_analysis(model_path, mot, out_dir=out, mtu_names=["biceps_long",
                                   "triceps_long"], coordinate_names=dofs)
    assert sorted(p.name for p in out.iterdir()) == [
        "moment_arm_elbow_flex.sto", "moment_arm_shoulder_elev.sto", "mtu_length.sto",
        "setup_analyze.xml"]
    back = read_muscle_analysis(out, coordinate_names=dofs)
    np.testing.assert_allclose(back.mtu_length_m, geometry.mtu_length_m, rtol=1e-10)
    np.testing.assert_allclose(back.moment_arm_m, geometry.moment_arm_m, atol=1e-12)
    # Elbow flexor and extensor: opposite signs about the elbow.
    assert np.all(geometry.moment_arm_m[0, 1] > 0) and np.all(geometry.moment_arm_m[1, 1] < 0)


def test_unknown_mtu_in_config_is_named(tmp_path: Path) -> None:
    model_path = _model_file("demo-arm", tmp_path)
    mot = tmp_path / "ik.mot"
    write_sto(mot, _sweep(load_model(model_path), ("elbow_flex",)))
    out = tmp_path / "ma"
    with pytest.raises(MuscleAnalysisError, match=r"MTU 'bicep_long'.*did you mean biceps_long"):
        run_muscle_analysis(model_path, mot, out_dir=out, mtu_names=["bicep_long"],
                            coordinate_names=["elbow_flex"])
    assert not out.exists() or list(out.iterdir()) == []


def _clamped_arm(tmp_path: Path) -> Path:
    model = load_model(_model_file("demo-arm", tmp_path))
    model.getCoordinateSet().get("elbow_flex").setDefaultClamped(True)
    path = tmp_path / "clamped.osim"
    model.printToXML(str(path))
    return path


def test_coordinates_outside_clamped_range_are_named(tmp_path: Path) -> None:
    model_path = _clamped_arm(tmp_path)
    model = load_model(model_path)
    table = _sweep(model, ("elbow_flex",))
    data = table.data.copy()
    data[3, table.labels.index("elbow_flex")] = 3.5  # beyond the 150 deg upper limit
    mot = tmp_path / "ik.mot"
    write_sto(mot, StoTable(table.time_s, table.labels, data))
    with pytest.raises(MuscleAnalysisError, match=r"elbow_flex spans .* outside its clamped"):
        run_muscle_analysis(model_path, mot, out_dir=tmp_path / "ma", mtu_names=None,
                            coordinate_names=["elbow_flex"])
    with pytest.raises(IDError, match=r"elbow_flex spans"):
        run_inverse_dynamics(model_path, mot, out_sto=tmp_path / "id" / "id.sto")
    assert not (tmp_path / "id" / "id.sto").exists()


def test_degrees_are_honoured(tmp_path: Path) -> None:
    model_path = _model_file("demo-arm", tmp_path)
    model = load_model(model_path)
    table = _sweep(model, ("elbow_flex",))
    degrees = StoTable(table.time_s, table.labels, np.rad2deg(table.data), in_degrees=True)
    a = compute_muscle_geometry(model, table, mtu_names=["brachialis"],
                                coordinate_names=["elbow_flex"])
    b = compute_muscle_geometry(model, degrees, mtu_names=["brachialis"],
                                coordinate_names=["elbow_flex"])
    np.testing.assert_allclose(a.moment_arm_m, b.moment_arm_m, atol=1e-12)


def test_missing_and_corrupt_models(tmp_path: Path) -> None:
    with pytest.raises(ModelError, match="does not exist"):
        load_model(tmp_path / "absent.osim")
    corrupt = tmp_path / "corrupt.osim"
    corrupt.write_text('<?xml version="1.0"?><OpenSimDocument><Model name="x"><BodySet>')
    with pytest.raises(ModelError, match="not a valid OpenSim model"):
        load_model(corrupt)
    mot = tmp_path / "ik.mot"
    write_sto(mot, StoTable(np.array([0.0, 0.1]), ("elbow_flex",), np.zeros((2, 1))))
    with pytest.raises(MuscleAnalysisError, match="not a valid OpenSim model"):
        run_muscle_analysis(corrupt, mot, out_dir=tmp_path / "ma", mtu_names=None,
                            coordinate_names=["elbow_flex"])
    with pytest.raises(IDError, match="does not exist"):
        run_inverse_dynamics(tmp_path / "absent.osim", mot, out_sto=tmp_path / "id.sto")
    assert not (tmp_path / "ma").exists() and not (tmp_path / "id.sto").exists()
