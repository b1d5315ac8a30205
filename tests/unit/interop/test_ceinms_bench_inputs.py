"""The CEINMS inputs ``bench ceinms`` writes: valid against CEINMS's own XSD schemas, storage
files CEINMS can read, and the same numbers as the project's NMS inputs (CEINMS itself is built
and run only by the benchmark)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import numpy as np
import pytest
from ceinms_xsd import assert_valid

from pipeline.io.nms_inputs import read_nms_trial

pytestmark = pytest.mark.slow  # muscle analysis of the Rajagopal walk (~10 s idle)

SCHEMAS = {"subject.xml": "subject.xsd", "excitationGenerator.xml": "excitationGenerator.xsd",
           "calibration.xml": "calibration.xsd",
           "calibrationSetup.xml": "ceinmsCalibrationSetup.xsd", "walk/trial.xml": "inputData.xsd"}


def _read_storage(path: Path) -> tuple[list[str], np.ndarray]:
    """Parse a storage file the way CEINMS does: nRows=/nColumns= lines, endheader, labels."""
    lines = path.read_text().splitlines()
    end = lines.index("endheader")
    header = lines[:end]
    n_rows = int(next(h for h in header if h.startswith("nRows="))[6:])
    n_columns = int(next(h for h in header if h.startswith("nColumns="))[9:])
    labels = lines[end + 1].split("\t")
    data = np.array([[float(v) for v in line.split("\t")] for line in lines[end + 2:]])
    assert data.shape == (n_rows, n_columns) and len(labels) == n_columns
    return labels, data


@pytest.fixture(scope="module")
def bench_inputs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bench_inputs import write_bench_ceinms_inputs

    from pipeline.bench import ceinms

    out = tmp_path_factory.mktemp("bench")
    result = write_bench_ceinms_inputs(out, list(ceinms.PROBLEMS))
    assert [p["n_parameters"] for p in result["problems"]] == [14, 36, 14]
    return out


@pytest.mark.parametrize("problem", ["walk_1dof", "walk_3dof", "walk_1dof_elastic"])
@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_bench_xml_is_valid_ceinms_input(bench_inputs: Path, problem: str, name: str) -> None:
    assert_valid(bench_inputs / problem / "ceinms" / name, SCHEMAS[name])


def test_bench_elastic_problem_asks_ceinms_for_its_elastic_tendon(bench_inputs: Path) -> None:
    from pipeline.interop.ceinms_subject import read_subject

    folder = bench_inputs / "walk_1dof_elastic" / "ceinms"
    root = ET.parse(folder / "calibration.xml").getroot()
    assert root.find("NMSmodel/tendon/equilibriumElastic") is not None
    assert read_subject(folder / "subject.xml").percentage_change == 0.0
    stiff = ET.parse(bench_inputs / "walk_1dof" / "ceinms" / "calibration.xml").getroot()
    assert stiff.find("NMSmodel/tendon/stiff") is not None


@pytest.mark.parametrize("problem", ["walk_1dof", "walk_3dof"])
def test_bench_storage_files_hold_the_nms_inputs(bench_inputs: Path, problem: str) -> None:
    folder = bench_inputs / problem / "ceinms" / "walk"
    trial = read_nms_trial(bench_inputs / problem / "pipeline" / "calibration" / "nms_inputs.npz")
    root = ET.parse(folder / "trial.xml").getroot()
    labels, lmt = _read_storage(folder / root.findtext("muscleTendonLengthFile").strip())
    assert labels == ["time", *trial.mtu_names]
    np.testing.assert_array_equal(lmt[:, 1:].T, trial.mtu_length_m)  # bit-exact (repr)
    for d, dof in enumerate(trial.dof_names):
        element = next(e for e in root.iter("momentArmsFile") if e.get("dofName") == dof)
        _, arms = _read_storage(folder / element.text.strip())
        np.testing.assert_array_equal(arms[:, 1:].T, trial.moment_arm_m[:, d])
    labels, torques = _read_storage(folder / root.findtext("externalTorquesFile").strip())
    assert labels == ["time", *(f"{d}_moment" for d in trial.dof_names)]
    np.testing.assert_array_equal(torques[:, 1:].T, trial.id_moment_nm)
    labels, excitation = _read_storage(folder / root.findtext("excitationsFile").strip())
    # the excitations start earlier (CEINMS's activation warm-up), then equal the trial's
    first = len(excitation) - len(trial.time_s)
    assert first > 0 and excitation[first, 0] == pytest.approx(trial.time_s[0], abs=1e-9)
    np.testing.assert_array_equal(excitation[first:, 1:].T, trial.excitation)
    np.testing.assert_array_equal(excitation[:first, 1:].T, trial.excitation_before)
    assert excitation[:, 1:].min() >= 0.0 and excitation[:, 1:].max() <= 1.0


#: CEINMS 0.9's annealing (``bench ceinms``, its solution evaluated by the project's CEINMS
#: objective): the loss it reaches on each walk.
CEINMS_LOSS = {"walk_1dof": 0.0087632, "walk_3dof": 1.17637}


@pytest.mark.parametrize("problem", ["walk_1dof", "walk_3dof"])
def test_least_squares_on_ceinms_objective_reaches_ceinms_loss(bench_inputs: Path,
                                                               problem: str) -> None:
    """On the real walks, the penalty continuation reaches at least CEINMS 0.9's loss with every
    fibre inside its band; on the 3-DOF walk plain least squares stops where a fibre meets the
    band's edge (the trap the continuation removes)."""
    import torch
    import yaml
    from project_paths import SHARED_DATA

    from pipeline.bench.ceinms import PROBLEMS
    from pipeline.calibrate.ceinms_objective import solve_ceinms_least_squares
    from pipeline.calibrate.export import read_muscle_properties
    from pipeline.calibrate.least_squares import solve_least_squares
    from pipeline.calibrate.problem import batch_trials
    from pipeline.calibrate.run import least_squares_solver, make_objective
    from pipeline.calibrate.spec import build_spec

    folder = bench_inputs / problem / "pipeline"
    cfg = yaml.safe_load((folder / "study" / "config.yaml").read_text())["calibration"]
    batch = batch_trials([read_nms_trial(folder / "calibration" / "nms_inputs.npz")], ["walk"])
    model = SHARED_DATA / "opensim-core" / "rajagopal-walk" / "subject_walk_scaled.osim"
    spec = build_spec(read_muscle_properties(model, PROBLEMS[problem]["mtus"]), cfg)
    objective = make_objective(spec, batch, cfg)
    assert least_squares_solver(objective) is solve_ceinms_least_squares
    solved = solve_ceinms_least_squares(objective, spec.initial, max_evaluations=200,
                                        tolerance=1e-10)
    with torch.no_grad():
        terms = objective.terms(torch.as_tensor(solved.p))
    assert float(terms.total) == pytest.approx(solved.loss, rel=1e-12)
    assert float(terms.penalty) == 0.0
    assert solved.loss <= CEINMS_LOSS[problem]
    if problem == "walk_3dof":
        plain = solve_least_squares(objective, spec.initial, max_evaluations=200,
                                    tolerance=1e-10)
        assert plain.loss > 2.0 * CEINMS_LOSS[problem]
