"""Collecting one trial's NMS inputs: EMG mapped to MTUs by weighted sums, one time base, the
cycle window, ID moments by coordinate name."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

opensim = pytest.importorskip("opensim")
models = pytest.importorskip("pipeline.osim.models")

from pipeline.errors import ConfigError, IDError  # noqa: E402
from pipeline.io.nms_inputs import read_nms_trial, write_nms_trial  # noqa: E402
from pipeline.io.opensim_files import StoTable, write_sto  # noqa: E402
from pipeline.osim.collect import analysis_window, collect_nms_trial  # noqa: E402
from pipeline.osim.model_io import load_model  # noqa: E402
from pipeline.osim.muscle_analysis import run_muscle_analysis  # noqa: E402

DOFS = ("shoulder_elev", "elbow_flex")
MAPPING = {"biceps_long": {"biceps": 1.0}, "brachialis": {"biceps": 0.5, "brachiorad": 0.5},
           "triceps_long": {}}


@pytest.fixture(scope="module")
def trial(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("collect")
    model_path = models.write_builtin_model("demo-arm", folder / "demo-arm.osim")
    model = load_model(model_path)
    coords = model.getCoordinateSet()
    names = [coords.get(i).getName() for i in range(coords.getSize())]
    time_s = np.round(np.arange(0.0, 2.0 + 1e-9, 0.01), 6)
    data = np.zeros((len(time_s), len(names)))
    data[:, names.index("shoulder_elev")] = 0.5 + 0.3 * np.sin(2 * np.pi * time_s)
    data[:, names.index("elbow_flex")] = 1.0 + 0.5 * np.sin(2 * np.pi * time_s)
    write_sto(folder / "ik.mot", StoTable(time_s, tuple(names), data))
    run_muscle_analysis(model_path, folder / "ik.mot", out_dir=folder / "ma",
                        mtu_names=list(MAPPING), coordinate_names=DOFS)
    emg_t = np.arange(0.0, 2.0 + 1e-9, 0.001)
    emg = np.column_stack([0.2 + 0.1 * np.sin(2 * np.pi * emg_t), 0.4 + 0 * emg_t])
    write_sto(folder / "emg.sto", StoTable(emg_t, ("biceps", "brachiorad"), emg))
    moments = np.column_stack([np.sin(time_s), np.cos(time_s), time_s])
    write_sto(folder / "id.sto", StoTable(time_s, ("shoulder_elev_moment", "elbow_flex_moment",
                                                   "shoulder_rot_moment"), moments))
    (folder / "events.json").write_text(json.dumps({"windows": [[0.5, 1.0], [1.0, 1.5]]}))
    return {"folder": folder}


def test_collect_maps_windows_and_aligns(trial: dict[str, Path]) -> None:
    folder = trial["folder"]
    window = analysis_window(folder / "events.json")
    assert window == (0.5, 1.5)
    nms = collect_nms_trial(folder / "emg.sto", folder / "id.sto", folder / "ma",
                            excitations=MAPPING, dofs=DOFS, window_s=window,
                            meta={"subject": "s1", "trial": "t1"})
    t = nms.time_s
    assert t[0] == pytest.approx(0.5) and t[-1] == pytest.approx(1.5) and len(t) == 101
    biceps = 0.2 + 0.1 * np.sin(2 * np.pi * t)
    np.testing.assert_allclose(nms.excitation[0], biceps, atol=1e-9)
    np.testing.assert_allclose(nms.excitation[1], 0.5 * biceps + 0.5 * 0.4, atol=1e-9)
    assert np.all(np.isnan(nms.excitation[2]))  # no EMG for triceps_long
    np.testing.assert_allclose(nms.id_moment_nm[1], np.cos(t), atol=1e-9)
    assert nms.moment_arm_m.shape == (3, 2, len(t))
    assert np.all(nms.moment_arm_m[0, 1] > 0) and np.all(nms.moment_arm_m[2, 1] < 0)
    path = folder / "nms_inputs.npz"
    write_nms_trial(path, nms)
    back = read_nms_trial(path)
    assert back.mtu_names == tuple(MAPPING) and back.meta["window_s"] == [0.5, 1.5]
    assert back.meta["units"]["moment_arm_m"] == "m"


def test_window_falls_back_to_trial_span(tmp_path: Path) -> None:
    assert analysis_window(tmp_path / "absent.json", start_s=0.2, end_s=0.8) == (0.2, 0.8)
    (tmp_path / "empty.json").write_text('{"windows": []}')
    assert analysis_window(tmp_path / "empty.json") is None


def test_unknown_emg_and_dof_are_named(trial: dict[str, Path]) -> None:
    folder = trial["folder"]
    with pytest.raises(ConfigError, match=r"EMG 'bicep'.*columns: biceps, brachiorad"):
        collect_nms_trial(folder / "emg.sto", folder / "id.sto", folder / "ma",
                          excitations={"biceps_long": {"bicep": 1.0}}, dofs=DOFS)
    (folder / "ma" / "moment_arm_wrist.sto").write_bytes(
        (folder / "ma" / "moment_arm_elbow_flex.sto").read_bytes())
    with pytest.raises(IDError, match="no column wrist_moment or wrist_force"):
        collect_nms_trial(folder / "emg.sto", folder / "id.sto", folder / "ma",
                          excitations={"biceps_long": {"biceps": 1.0}}, dofs=("wrist",))


def test_emg_before_the_window_is_kept_for_the_delay(trial: dict[str, Path]) -> None:
    folder = trial["folder"]
    nms = collect_nms_trial(folder / "emg.sto", folder / "id.sto", folder / "ma",
                            excitations=MAPPING, dofs=DOFS, window_s=(0.5, 1.5))
    before = nms.excitation_before
    assert before.shape == (3, 20)  # 0.2 s at the 0.01 s kinematics step
    t = 0.5 - 0.01 * np.arange(20, 0, -1)
    np.testing.assert_allclose(before[0], 0.2 + 0.1 * np.sin(2 * np.pi * t), atol=1e-9)
    assert np.all(np.isnan(before[2]))
    # At the start of the recording there is nothing before the window.
    first = collect_nms_trial(folder / "emg.sto", folder / "id.sto", folder / "ma",
                              excitations=MAPPING, dofs=DOFS, window_s=(0.0, 1.0))
    assert first.excitation_before.shape == (3, 0)
    path = folder / "lead.npz"
    write_nms_trial(path, nms)
    np.testing.assert_array_equal(read_nms_trial(path).excitation_before, before)
