"""OpenSim's own AnalyzeTool + MuscleAnalysis outputs (``*_Length.sto``,
``*_MomentArm_<coordinate>.sto``) as inputs to ``collect``: the same NMS inputs as the project's
muscle analysis, within 1e-6 m. Also the muscle-analysis options (time window, muscles,
coordinates)."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

opensim = pytest.importorskip("opensim")
models = pytest.importorskip("pipeline.osim.models")

from pipeline.errors import MuscleAnalysisError  # noqa: E402
from pipeline.io.opensim_files import StoTable, write_sto  # noqa: E402
from pipeline.osim.collect import collect_nms_trial  # noqa: E402
from pipeline.osim.model_io import load_model  # noqa: E402
from pipeline.osim.muscle_analysis import read_muscle_analysis, run_muscle_analysis  # noqa: E402
from pipeline.osim.staging import working_dir  # noqa: E402

NAME = "demo-leg"


@pytest.fixture(scope="module")
def analysed(tmp_path_factory: pytest.TempPathFactory) -> dict:
    folder = tmp_path_factory.mktemp("analyze")
    model_path = models.write_builtin_model(NAME, folder / f"{NAME}.osim")
    model = load_model(model_path)
    dofs = tuple(models.default_dofs(NAME))
    mtus = list(models.muscle_names(NAME))[:6]
    coords = model.getCoordinateSet()
    state = model.initSystem()
    names = [coords.get(i).getName() for i in range(coords.getSize())]
    time_s = np.round(np.arange(0.0, 1.0 + 1e-9, 0.01), 6)
    data = np.empty((len(time_s), len(names)))
    for j, name in enumerate(names):
        c = coords.get(name)
        if name in dofs:
            low, high = c.getRangeMin(), c.getRangeMax()
            data[:, j] = low + (high - low) * (0.5 + 0.35 * np.sin(2 * np.pi * time_s + j))
        else:
            data[:, j] = c.getValue(state)
    write_sto(folder / "ik.mot", StoTable(time_s, tuple(names), data))
    ours = run_muscle_analysis(model_path, folder / "ik.mot", out_dir=folder / "ma",
                               mtu_names=mtus, coordinate_names=dofs)
    # OpenSim's AnalyzeTool from the setup the muscle-analysis step wrote beside its outputs.
    with working_dir(folder / "ma"):
        tool = opensim.AnalyzeTool("setup_analyze.xml", True)
        assert tool.run()
    opensim_dir = folder / "opensim_outputs"
    opensim_dir.mkdir()
    for path in (folder / "ma" / "opensim_analyze").glob("*MuscleAnalysis_*.sto"):
        if path.name.endswith("_Length.sto") or "_MomentArm_" in path.name:
            shutil.copy(path, opensim_dir / path.name)
    time_id = np.column_stack([np.sin(time_s + k) for k in range(len(dofs))])
    write_sto(folder / "id.sto", StoTable(time_s, tuple(f"{d}_moment" for d in dofs), time_id))
    emg_t = np.arange(0.0, 1.0 + 1e-9, 0.001)
    write_sto(folder / "emg.sto", StoTable(emg_t, ("e",), 0.3 + 0.2 * np.sin(6 * emg_t)[:, None]))
    return {"folder": folder, "dofs": dofs, "mtus": mtus, "ours": ours,
            "opensim_dir": opensim_dir, "model": model_path}


def test_analyze_tool_outputs_match_the_project_muscle_analysis(analysed: dict) -> None:
    names = sorted(p.name for p in analysed["opensim_dir"].iterdir())
    assert any(n.endswith("_Length.sto") for n in names), names
    theirs = read_muscle_analysis(analysed["opensim_dir"], coordinate_names=analysed["dofs"])
    ours = analysed["ours"]
    order = [theirs.mtu_names.index(m) for m in ours.mtu_names]
    np.testing.assert_allclose(theirs.time_s, ours.time_s, atol=1e-9)
    np.testing.assert_allclose(theirs.mtu_length_m[order], ours.mtu_length_m, atol=1e-6, rtol=0)
    np.testing.assert_allclose(theirs.moment_arm_m[order], ours.moment_arm_m, atol=1e-6, rtol=0)
    assert np.abs(ours.moment_arm_m).max() > 0.01  # moment arms that matter were compared


def test_collect_gives_the_same_nms_inputs_from_either(analysed: dict) -> None:
    folder = analysed["folder"]
    mapping = {m: {"e": 1.0} for m in analysed["mtus"]}
    a = collect_nms_trial(folder / "emg.sto", folder / "id.sto", folder / "ma",
                          excitations=mapping, dofs=analysed["dofs"], window_s=(0.2, 0.8))
    b = collect_nms_trial(folder / "emg.sto", folder / "id.sto", analysed["opensim_dir"],
                          excitations=mapping, dofs=analysed["dofs"], window_s=(0.2, 0.8))
    np.testing.assert_allclose(b.mtu_length_m, a.mtu_length_m, atol=1e-6, rtol=0)
    np.testing.assert_allclose(b.moment_arm_m, a.moment_arm_m, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(b.excitation, a.excitation)
    np.testing.assert_array_equal(b.id_moment_nm, a.id_moment_nm)


def test_muscle_analysis_window_muscles_and_coordinates(analysed: dict, tmp_path: Path) -> None:
    folder = analysed["folder"]
    dof = analysed["dofs"][0]
    part = run_muscle_analysis(analysed["model"], folder / "ik.mot", out_dir=tmp_path / "part",
                               mtu_names=analysed["mtus"][:2], coordinate_names=[dof],
                               time_range_s=(0.25, 0.5))
    assert part.time_s[0] == pytest.approx(0.25) and part.time_s[-1] == pytest.approx(0.5)
    assert part.mtu_names == tuple(analysed["mtus"][:2]) and part.coordinate_names == (dof,)
    full = analysed["ours"]
    keep = (full.time_s >= 0.25 - 1e-9) & (full.time_s <= 0.5 + 1e-9)
    np.testing.assert_allclose(part.mtu_length_m, full.mtu_length_m[:2, keep], atol=1e-12)
    assert sorted(p.name for p in (tmp_path / "part").glob("*.sto")) == [
        f"moment_arm_{dof}.sto", "mtu_length.sto"]
    with pytest.raises(MuscleAnalysisError, match="fewer than 2 frames in the time window"):
        run_muscle_analysis(analysed["model"], folder / "ik.mot", out_dir=tmp_path / "none",
                            mtu_names=None, coordinate_names=[dof], time_range_s=(5.0, 6.0))
    assert not (tmp_path / "none").exists() or not any((tmp_path / "none").iterdir())
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(MuscleAnalysisError, match="nor an OpenSim MuscleAnalysis"):
        read_muscle_analysis(empty, coordinate_names=[dof])
