"""On real data, the validation step says when a calibration does not carry over.

The Rajagopal walk's 1-DOF problem of ``bench ceinms`` (ankle, 4 MTUs, 14 parameters, CEINMS's
objective, real EMG): calibrated on the walk's first window it fits that window with R² 0.99
and predicts the held-out window worse than the held-out moment's own mean. The real
``calibrate`` and ``execute`` commands run as a lab would run them; the R² in the warning is
checked against R² computed here from the written model moments and the inverse dynamics."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.slow  # muscle analysis of the Rajagopal walk (~10 s idle)


@pytest.fixture(scope="module")
def walk_1dof(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from bench_inputs import write_bench_ceinms_inputs

    out = tmp_path_factory.mktemp("walk")
    write_bench_ceinms_inputs(out, ["walk_1dof"])
    return out / "walk_1dof" / "pipeline"


def _cli(*args: str) -> subprocess.CompletedProcess:
    result = subprocess.run([sys.executable, "-m", "pipeline", *args], capture_output=True,
                            text=True, check=False)
    assert result.returncode == 0, result.stderr[-2000:]
    return result


def test_held_out_ankle_is_flagged_with_its_real_r2(walk_1dof: Path) -> None:
    from project_paths import SHARED_DATA

    from pipeline.bench._ceinms_walk import MODEL, data_folder
    from pipeline.io.nms_inputs import read_nms_trial
    from pipeline.io.opensim_files import read_sto

    study, out = walk_1dof / "study", walk_1dof / "gradient"
    common = ["--study", str(study), "--subject", "walk", "--method", "gradient",
              "--out-dir", str(out)]
    _cli("calibrate", *common, "--model", str(data_folder(SHARED_DATA) / MODEL), "--inputs",
         str(walk_1dof / "calibration" / "nms_inputs.npz"), "--no-progress")
    held_out = walk_1dof / "validation" / "nms_inputs.npz"
    fitted = walk_1dof / "calibration" / "nms_inputs.npz"
    executed = _cli("execute", *common, "--parameters", str(out / "parameters.json"),
                    "--inputs", str(held_out), "--calibration-inputs", str(fitted))
    metrics = json.loads((out / "metrics.json").read_text())
    block = metrics["generalisation"]

    # the oracle: R² of the written model moments against the trial's inverse dynamics
    trial = read_nms_trial(held_out)
    (label,) = metrics["trials"]
    predicted = read_sto(out / "execution" / label / "moments.sto").column("ankle_angle_r")
    measured = trial.id_moment_nm[trial.dof_names.index("ankle_angle_r")]
    r2 = 1.0 - np.sum((measured - predicted) ** 2) / np.sum((measured - measured.mean()) ** 2)
    assert r2 < 0.0

    # the calibration window, executed for the figures, runs the model it was calibrated with
    # (CEINMS's variant, stiff tendon): its moments reproduce calibrate's reported fit
    cal_trial = read_nms_trial(fitted)
    (cal_label,) = metrics["calibration"]["trials"]
    cal_moments = read_sto(out / "execution" / cal_label / "moments.sto").column("ankle_angle_r")
    cal_rmse = np.sqrt(np.mean((cal_trial.id_moment_nm[0] - cal_moments) ** 2))
    reported = metrics["calibration"]["trials"][cal_label]["ankle_angle_r"]["rmse_nm"]
    assert cal_rmse == pytest.approx(reported, rel=1e-6)

    flagged = block["flagged"]
    assert list(flagged) == ["ankle_angle_r"]
    assert flagged["ankle_angle_r"]["cause"] == "below_zero"
    assert flagged["ankle_angle_r"]["held_out_r2"] == pytest.approx(r2, abs=1e-9)
    assert flagged["ankle_angle_r"]["calibration_r2"] > 0.95  # the window it was fitted to
    assert block["warning"].startswith("subject walk, method gradient: the calibration does "
                                       "not carry over to the held-out trials")
    assert f"ankle_angle_r {r2:.2f}" in block["warning"]
    assert block["warning"] in executed.stderr  # logged as a warning
