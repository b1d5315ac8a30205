"""``ceinms-export``, ``ceinms-evaluate`` and ``calibrate --ceinms-subject`` end to end."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from ceinms_xsd import assert_valid

from pipeline.__main__ import main
from pipeline.calibrate.synthetic import make_problem
from pipeline.interop.ceinms_subject import read_excitation_generator, read_subject
from pipeline.io.nms_inputs import NMSTrial, write_nms_trial

MTUS = ("flexor", "extensor")
pytestmark = pytest.mark.slow  # two calibrate runs with OpenSim (~15 s idle)


def _inputs(tmp_path: Path) -> tuple[list[str], Path]:
    from unit.calibrate.osim_helpers import build_osim

    problem = make_problem(n_mtus=2, n_dofs=1, n_calibration=1, n_validation=1, n_samples=80,
                           tendon="stiff", seed=6)
    paths = []
    for role, batch in (("cal", problem.calibration), ("val", problem.validation)):
        trial = NMSTrial(time_s=batch.time_s[0], mtu_names=MTUS, dof_names=("elbow_flexion",),
                         excitation=batch.excitation[0].numpy(),
                         mtu_length_m=batch.mtu_length_m[0].numpy(),
                         moment_arm_m=batch.moment_arm_m[0].numpy(),
                         id_moment_nm=batch.id_moment_nm[0].numpy(), meta={"trial": role})
        path = tmp_path / role / "nms_inputs.npz"
        write_nms_trial(path, trial)
        paths.append(str(path))
    m = problem.spec.muscles
    build_osim(tmp_path / "scaled.osim", {
        name: (float(m.optimal_fiber_length_m[i]), float(m.tendon_slack_length_m[i]),
               float(m.max_isometric_force_n[i]), float(m.pennation_angle_rad[i]))
        for i, name in enumerate(MTUS)})
    return paths, tmp_path / "scaled.osim"


def test_export_evaluate_and_start_from_a_ceinms_subject(template_study: Path,
                                                          tmp_path: Path) -> None:
    pytest.importorskip("opensim")
    (cal, val), model = _inputs(tmp_path)
    common = ["--study", str(template_study), "--subject", "s01", "--method", "gradient"]
    out = tmp_path / "first"
    assert main(["calibrate", *common, "--out-dir", str(out), "--model", str(model), "--inputs",
                 cal, "--tendon", "stiff", "--no-progress", "--max-iterations", "20"]) == 0
    document = json.loads((out / "parameters.json").read_text())
    assert document["objective"] == {"name": "default"}
    subject_xml = tmp_path / "ceinms" / "subject.xml"
    generator_xml = tmp_path / "ceinms" / "excitationGenerator.xml"
    assert main(["ceinms-export", "--parameters", str(out / "parameters.json"), "--inputs", cal,
                 "--out", str(subject_xml), "--excitation-generator", str(generator_xml),
                 "--study", str(template_study), "--subject", "s01"]) == 0
    assert_valid(subject_xml, "subject.xsd")
    assert_valid(generator_xml, "excitationGenerator.xsd")
    subject = read_subject(subject_xml)
    assert subject.mtu_names == MTUS and subject.dofs == {"elbow_flexion": MTUS}
    assert subject.percentage_change == 0.0  # the default objective has no shift
    flexor = document["mtus"]["flexor"]
    assert subject.mtu("flexor").tendon_slack_length_m == flexor["tendon_slack_length_m"]["value"]
    assert subject.mtu("flexor").c1 == flexor["c1"]["value"]
    assert read_excitation_generator(generator_xml).mapping  # the study model's EMG mapping

    # evaluate the exported subject: with no shift and stiff tendon it is the calibrated model
    result_json = tmp_path / "evaluate.json"
    assert main(["ceinms-evaluate", "--subject-xml", str(subject_xml), "--inputs", val,
                 "--json", str(result_json)]) == 0
    assert main(["execute", *common, "--out-dir", str(out), "--parameters",
                 str(out / "parameters.json"), "--inputs", val]) == 0
    evaluated = json.loads(result_json.read_text())
    executed = json.loads((out / "metrics.json").read_text())
    assert evaluated["loss"]["total"] > 0
    assert evaluated["mean_rmse_nm"] == pytest.approx(executed["mean_rmse_nm"], rel=1e-6)

    # start a new calibration from the subject's per-muscle values
    second = tmp_path / "second"
    assert main(["calibrate", *common, "--out-dir", str(second), "--model", str(model),
                 "--inputs", cal, "--tendon", "stiff", "--no-progress", "--max-iterations", "1",
                 "--ceinms-subject", str(subject_xml)]) == 0
    started = json.loads((second / "parameters.json").read_text())["mtus"]
    for name in MTUS:
        for key in ("optimal_fiber_length_m", "tendon_slack_length_m", "c1", "c2",
                    "shape_factor", "strength_coefficient"):
            np.testing.assert_allclose(started[name][key]["initial"],
                                       document["mtus"][name][key]["value"], rtol=1e-5)
