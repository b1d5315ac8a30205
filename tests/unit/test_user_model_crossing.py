"""A tracked DOF that no calibrated MTU crosses is refused for a user's .osim too: the crossing
comes from OpenSim's moment arms of the real arm26 model (../shared/data), where the elbow
extensors TRIlat and TRImed and the flexor BRA cross r_elbow_flex only, and TRIlong and BIClong
also cross r_shoulder_elev."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from pipeline.errors import ConfigError
from pipeline.study import load_study

MODEL = "models/arm26.osim"
DOFS = ["r_shoulder_elev", "r_elbow_flex"]


def _use_arm26(study: Path, shared_data: Path, setup: dict) -> None:
    (study / "models").mkdir()
    shutil.copy(shared_data / "opensim-core/models/arm26.osim", study / MODEL)
    sheet = study / "subjects.tsv"
    sheet.write_text(sheet.read_text().replace("\tdemo-arm", f"\t{MODEL}", 1))
    config = yaml.safe_load((study / "config.yaml").read_text())
    config["models"] = {MODEL: {"emg_channels": {"EMG1": "e1", "EMG2": "e2"}, "dofs": DOFS,
                                **setup}}
    (study / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))


def _problems(study: Path) -> str:
    try:
        load_study(study, check_data=True)
    except ConfigError as exc:
        return str(exc)
    return ""


def test_crossing_from_opensim_moment_arms(shared_data: Path) -> None:
    from pipeline.osim.crossing import crossed_coordinates

    crossed = crossed_coordinates(shared_data / "opensim-core/models/arm26.osim",
                                  ["TRIlong", "TRIlat", "BIClong", "BRA", "nope"],
                                  [*DOFS, "nope"])
    assert crossed == {"TRIlong": set(DOFS), "TRIlat": {"r_elbow_flex"},
                       "BIClong": set(DOFS), "BRA": {"r_elbow_flex"}}


def test_dof_no_excitation_crosses_is_reported(template_study: Path, shared_data: Path) -> None:
    _use_arm26(template_study, shared_data,
               {"excitations": {"TRIlat": {"e1": 1.0}, "BRA": {"e2": 1.0}}})
    message = _problems(template_study)
    assert (f"config.yaml key models.{MODEL}.dofs: no MTU under excitations crosses "
            "'r_shoulder_elev' in model file models/arm26.osim") in message, message
    assert "crosses 'r_elbow_flex'" not in message, message
    assert "Fix: remove it from dofs or add the MTUs that cross it" in message


def test_dof_no_calibrated_mtu_crosses_is_reported(template_study: Path,
                                                   shared_data: Path) -> None:
    """Partial calibration: TRIlong crosses the shoulder but is not calibrated."""
    _use_arm26(template_study, shared_data,
               {"excitations": {"TRIlong": {"e1": 1.0}, "TRIlat": {"e2": 1.0}},
                "calibrated_mtus": ["TRIlat"], "tracked_dofs": DOFS})
    message = _problems(template_study)
    assert (f"models.{MODEL}.tracked_dofs: no MTU under calibrated_mtus crosses "
            "'r_shoulder_elev' in model file models/arm26.osim") in message, message
    assert "crosses 'r_elbow_flex'" not in message, message


def test_every_dof_crossed_passes_the_check(template_study: Path, shared_data: Path) -> None:
    _use_arm26(template_study, shared_data,
               {"excitations": {"TRIlong": {"e1": 1.0}, "BIClong": {"e2": 1.0}},
                "calibrated_mtus": ["TRIlong"]})
    assert "crosses" not in _problems(template_study)
