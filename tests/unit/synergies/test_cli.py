"""``calibrate-synergy`` end to end (NMS input files + a small .osim -> the outputs contract) and
``experiment channel-removal`` on a tiny synthetic problem."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline.__main__ import main
from pipeline.io.nms_inputs import NMSTrial, write_nms_trial
from pipeline.io.opensim_files import read_sto
from pipeline.synergies.synthetic import make_synergy_problem

UNRECORDED = ("mtu04",)
NO_EMG = "mtu06"  # NaN excitation row: synthesised as well


def write_tiny_osim(path: Path, names, params) -> Path:
    """A one-DOF model whose DeGrooteFregly2016 muscles carry the problem's properties."""
    import opensim

    model = opensim.Model()
    model.setName("tiny")
    body = opensim.Body("forearm", 1.0, opensim.Vec3(0), opensim.Inertia(0.01))
    model.addBody(body)
    joint = opensim.PinJoint("elbow", model.getGround(), body)
    model.addJoint(joint)
    for i, name in enumerate(names):
        muscle = opensim.DeGrooteFregly2016Muscle()
        muscle.setName(name)
        muscle.setMaxIsometricForce(float(params["fmax"][i]))
        muscle.setOptimalFiberLength(float(params["l0"][i]))
        muscle.setTendonSlackLength(float(params["lts"][i]))
        muscle.setPennationAngleAtOptimalFiberLength(float(params["phi"][i]))
        muscle.addNewPathPoint(f"{name}_o", model.getGround(), opensim.Vec3(0, 0.3, 0))
        muscle.addNewPathPoint(f"{name}_i", body, opensim.Vec3(0, -0.05, 0.03))
        model.addForce(muscle)
    model.finalizeConnections()
    model.printToXML(str(path))
    return path


@pytest.fixture(scope="module")
def nms_files(tmp_path_factory):
    problem = make_synergy_problem(n_mtus=8, n_dofs=2, n_calibration=2, n_validation=1,
                                   n_samples=150, tendon="stiff", seed=3).problem
    root = tmp_path_factory.mktemp("syn_cli")
    names = problem.calibration.mtu_names
    muscles = problem.spec.muscles
    osim = write_tiny_osim(root / "scaled.osim", names, {
        "fmax": muscles.max_isometric_force_n, "l0": muscles.optimal_fiber_length_m,
        "lts": muscles.tendon_slack_length_m, "phi": muscles.pennation_angle_rad})
    paths, truth = {"cal": [], "val": []}, {}
    for role, batch in (("cal", problem.calibration), ("val", problem.validation)):
        for k, trial in enumerate(batch.trial_names):
            excitation = batch.excitation[k].numpy().copy()
            time_s = np.asarray(batch.time_s[k])
            truth[trial] = {"time_s": time_s.tolist(), "excitations": {
                m: excitation[i].tolist() for i, m in enumerate(names)}}
            excitation[names.index(NO_EMG)] = np.nan
            nms = NMSTrial(time_s, names, batch.dof_names, excitation,
                           batch.mtu_length_m[k].numpy(), batch.moment_arm_m[k].numpy(),
                           batch.id_moment_nm[k].numpy(), {"subject": "s01", "trial": trial})
            path = root / "trials" / trial / "nms_inputs.npz"
            write_nms_trial(path, nms)
            paths[role].append(str(path))
    truth_path = root / "truth.json"
    truth_path.write_text(json.dumps({"subjects": {"s01": {"trials": truth}}}))
    return {"osim": osim, "truth": truth_path, **paths, "names": names}


@pytest.mark.slow
def test_calibrate_synergy_writes_the_outputs_contract(nms_files, template_study, tmp_path):
    out = tmp_path / "results" / "s01" / "calibration" / "synergy_hybrid"
    status = main(["calibrate-synergy", "--study", str(template_study), "--subject", "s01",
                   "--model", str(nms_files["osim"]), "--inputs", *nms_files["cal"],
                   "--validation-inputs", *nms_files["val"], "--out-dir", str(out),
                   "--unrecorded", *UNRECORDED, "--tendon", "stiff", "--max-iterations", "60",
                   "--truth", str(nms_files["truth"]), "--no-progress"])
    assert status == 0
    for name in ("parameters.json", "metrics.json", "calibrated.osim", "history.tsv",
                 "synergies.png"):
        assert (out / name).is_file(), name
    parameters = json.loads((out / "parameters.json").read_text())
    assert parameters["method"] == "synergy_hybrid"
    assert set(parameters["mtus"]) == set(nms_files["names"])  # the no-EMG MTU is modelled too
    entry = parameters["mtus"]["mtu04"]["optimal_fiber_length_m"]
    assert {"value", "initial", "lower", "upper", "at_bound", "se"} <= set(entry)
    synergies = parameters["synergies"]
    assert synergies["unrecorded"] == ["mtu04", NO_EMG]
    assert 1 <= synergies["n_synergies"] <= 6 and synergies["vaf"] >= 0.85
    assert parameters["provenance"]["seed"] == 0

    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "synergy_hybrid"
    assert set(metrics["trials"]) == {"val0"} and set(metrics["calibration"]["trials"]) == {
        "cal0", "cal1"}
    assert np.isfinite(metrics["mean_rmse_nm"]) and np.isfinite(metrics["mean_r2"])
    # the generalisation check says what the written moments say
    from generalisation_oracle import expected_flags

    expected = expected_flags(out / "execution", nms_files["cal"], nms_files["val"])
    block = metrics["generalisation"]
    assert block["checked"] and set(block["flagged"]) == set(expected)
    for dof, r2 in expected.items():
        assert block["flagged"][dof]["held_out_r2"] == pytest.approx(r2, abs=1e-6)
    assert (block["warning"] is None) == (not expected)
    r = metrics["synthesis"]["r_vs_truth"]
    assert set(r) == {"cal0", "cal1", "val0"} and set(r["val0"]) == {"mtu04", NO_EMG}

    table = read_sto(out / "execution" / "val0" / "synthesised_excitations.sto")
    assert table.labels == ("mtu04", NO_EMG)
    assert table.data.shape == (150, 2)
    assert table.data.min() >= 0.0 and table.data.max() <= 1.0
    assert (out / "execution" / "cal0" / "primitives.sto").is_file()
    assert (out / "execution" / "val0" / "moments.sto").is_file()


def test_unrecorded_mtu_missing_from_the_inputs_is_a_config_error(nms_files, tmp_path):
    from pipeline.errors import ConfigError
    from pipeline.synergies.run import load_hybrid_trials

    with pytest.raises(ConfigError, match=r"'vastus_lat' .*not in the model.*Fix"):
        load_hybrid_trials(nms_files["cal"], unrecorded=["vastus_lat"])


@pytest.mark.slow
def test_channel_removal_experiment_writes_table_and_figure(tmp_path):
    out = tmp_path / "experiment"
    status = main(["experiment", "channel-removal", "--synthetic", "--synthetic-mtus", "4",
                   "--tendon", "stiff", "--max-iterations", "40", "--max-removed", "2",
                   "--out-dir", str(out)])
    assert status == 0
    table = pd.read_csv(out / "channel_removal.tsv", sep="\t")
    assert list(table["method"]) == ["reference", "emg_driven", "synergy_hybrid",
                                     "emg_driven", "synergy_hybrid"]
    assert list(table["n_recorded"]) == [4, 3, 3, 2, 2]
    for column in ("calibration_rmse_nm", "calibration_r2", "parameter_difference",
                   "validation_rmse_nm", "validation_r2"):
        assert table[column].notna().all(), column
    assert table.loc[0, "parameter_difference"] == 0.0
    ranking = pd.read_csv(out / "channel_ranking.tsv", sep="\t")
    assert list(ranking["rmse_nm"]) == sorted(ranking["rmse_nm"])
    removed = table.loc[3, "removed"].split(",")
    assert removed == list(ranking["channel"][:2])  # cumulative, in ranking order
    assert (out / "channel_removal.png").stat().st_size > 10_000
