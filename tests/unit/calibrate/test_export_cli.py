"""Exports (parameters.json, calibrated.osim round trip), bounds at a bound, CLI end to end."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from osim_helpers import build_osim

from pipeline.__main__ import main
from pipeline.calibrate.export import read_muscle_properties, write_calibrated_osim
from pipeline.calibrate.gradient import GradientOptions, calibrate_gradient, history_tsv
from pipeline.calibrate.run import calibrate
from pipeline.calibrate.synthetic import SYNTHETIC_CALIBRATION, make_problem, perturbed_start
from pipeline.errors import CalibrationError
from pipeline.io.nms_inputs import NMSTrial, read_nms_trial, write_nms_trial
from pipeline.io.opensim_files import read_sto
from pipeline.study import load_study

MUSCLES = {"flexor": (0.10, 0.20, 500.0, 0.1), "extensor": (0.12, 0.15, 700.0, 0.2)}


def test_calibrated_osim_round_trips_through_opensim(tmp_path: Path) -> None:
    import opensim

    scaled = build_osim(tmp_path / "scaled.osim", MUSCLES)
    props = read_muscle_properties(scaled, ["flexor", "extensor"])
    np.testing.assert_allclose(props.optimal_fiber_length_m, [0.10, 0.12])
    values = {"flexor": {"optimal_fiber_length_m": 0.105, "tendon_slack_length_m": 0.19,
                         "max_isometric_force_n": 612.5},
              "extensor": {"optimal_fiber_length_m": 0.118, "tendon_slack_length_m": 0.16,
                           "max_isometric_force_n": 980.0}}
    write_calibrated_osim(scaled, tmp_path / "calibrated.osim", values)
    model = opensim.Model(str(tmp_path / "calibrated.osim"))
    model.initSystem()
    for name, expected in values.items():
        muscle = model.getMuscles().get(name)
        assert muscle.getConcreteClassName() == "DeGrooteFregly2016Muscle"
        assert muscle.getOptimalFiberLength() == pytest.approx(expected["optimal_fiber_length_m"])
        assert muscle.getTendonSlackLength() == pytest.approx(expected["tendon_slack_length_m"])
        assert muscle.getMaxIsometricForce() == pytest.approx(expected["max_isometric_force_n"])


def test_muscle_properties_read_and_written_as_xml_equal_opensim(tmp_path: Path) -> None:
    """The XML path (no OpenSim load) reads exactly what OpenSim's getters return and writes what
    its setters would; a property the file leaves at its default is read by OpenSim."""
    import opensim

    from pipeline.calibrate import export

    scaled = build_osim(tmp_path / "scaled.osim", MUSCLES)
    names = ["flexor", "extensor"]
    assert export._xml_muscles(export._parse_osim(scaled), names) is not None
    props = read_muscle_properties(scaled, names)
    model = opensim.Model(str(scaled))
    for i, name in enumerate(names):
        muscle = model.getMuscles().get(name)
        assert props.optimal_fiber_length_m[i] == muscle.getOptimalFiberLength()
        assert props.tendon_slack_length_m[i] == muscle.getTendonSlackLength()
        assert props.max_isometric_force_n[i] == muscle.getMaxIsometricForce()
        assert props.pennation_angle_rad[i] == muscle.getPennationAngleAtOptimalFiberLength()
    values = {name: {"optimal_fiber_length_m": 0.1 + 0.01 * i, "tendon_slack_length_m": 0.2 / 3,
                     "max_isometric_force_n": 612.5 + i, "damping": 0.07}
              for i, name in enumerate(names)}
    write_calibrated_osim(scaled, tmp_path / "calibrated.osim", values)
    back = opensim.Model(str(tmp_path / "calibrated.osim"))
    back.initSystem()
    for name, want in values.items():
        muscle = opensim.DeGrooteFregly2016Muscle.safeDownCast(back.getMuscles().get(name))
        assert muscle.getOptimalFiberLength() == want["optimal_fiber_length_m"]
        assert muscle.getTendonSlackLength() == want["tendon_slack_length_m"]
        assert muscle.getMaxIsometricForce() == want["max_isometric_force_n"]
        assert muscle.get_fiber_damping() == want["damping"]
    # the flexor's pennation left to OpenSim's default: OpenSim reads the file
    text = scaled.read_text(encoding="utf-8")
    start = text.index("<pennation_angle_at_optimal>")
    end = text.index("</pennation_angle_at_optimal>", start) + len("</pennation_angle_at_optimal>")
    partial = tmp_path / "partial.osim"
    partial.write_text(text[:start] + text[end:], encoding="utf-8")
    assert export._xml_muscles(export._parse_osim(partial), names) is None
    partial_model = opensim.Model(str(partial))  # kept alive while its muscle is used
    default = partial_model.getMuscles().get("flexor").getPennationAngleAtOptimalFiberLength()
    assert read_muscle_properties(partial, names).pennation_angle_rad[0] == default


def test_parameter_pushed_to_bound_is_respected_and_flagged() -> None:
    cfg = copy.deepcopy(SYNTHETIC_CALIBRATION)
    cfg["bounds"]["strength"] = {"lower": 0.5, "upper": 0.9}  # true strengths: 0.98, 1.05, 0.82
    cfg["initial"] = {**cfg["initial"], "strength": 0.7}
    problem = make_problem(n_mtus=3, n_dofs=2, n_calibration=2, n_validation=1, n_samples=100,
                           tendon="stiff", seed=0, calibration=cfg)
    p0 = perturbed_start(problem.spec, problem.truth, rel_sd=0.0)  # truth, clipped into bounds
    outcome = calibrate(problem.spec, problem.calibration, cfg, p0=p0,
                        gradient_options=GradientOptions(max_iterations=300, learning_rate=0.05,
                                                         progress=False, log_every=0),
                        progress=False)
    sl = problem.spec.slices()["strength"]
    strength = outcome.p[sl]
    assert np.all(strength <= 0.9) and np.all(strength >= 0.5)
    assert strength[0] > 0.899 and strength[1] > 0.899
    doc = outcome.document(provenance={})
    at_bound = [name for name, e in doc["mtus"].items() if e["strength_coefficient"]["at_bound"]]
    assert at_bound, doc["mtus"]
    assert all(f"{n}.strength_coefficient" in doc["at_bound"] for n in at_bound)
    entry = doc["mtus"][at_bound[0]]
    assert entry["strength_coefficient"]["upper"] == 0.9
    assert entry["max_isometric_force_n"]["value"] == pytest.approx(
        entry["max_isometric_force_n"]["generic_n"] * entry["strength_coefficient"]["value"])


def test_nan_guard_restores_and_then_raises() -> None:
    problem = make_problem(n_mtus=2, n_dofs=1, n_calibration=1, n_validation=1, n_samples=60,
                           tendon="stiff", seed=1)
    from pipeline.calibrate.run import make_objective

    objective = make_objective(problem.spec, problem.calibration, problem.config)
    calls = {"n": 0}

    def flaky(p: torch.Tensor):
        calls["n"] += 1
        terms = objective.terms(p)
        if calls["n"] in (5, 6):
            return terms._replace(total=terms.total * float("nan"))
        return terms

    opts = GradientOptions(max_iterations=30, progress=False, log_every=0)
    result = calibrate_gradient(flaky, problem.spec, options=opts)
    assert np.isfinite(result.loss) and result.iterations == 30
    assert history_tsv(result.history).splitlines()[0] == (
        "iteration\tloss\ttracking\tpenalty\tlr\ttemperature\telapsed_s")

    def broken(p: torch.Tensor):
        terms = objective.terms(p)
        return terms._replace(total=terms.total * float("nan"))

    with pytest.raises(CalibrationError, match="learning_rate"):
        calibrate_gradient(broken, problem.spec, options=opts)


def _write_inputs(tmp_path: Path, *, n_cal: int, n_val: int) -> tuple[list[str], list[str]]:
    problem = make_problem(n_mtus=2, n_dofs=1, n_calibration=n_cal, n_validation=max(n_val, 1),
                           n_samples=80, tendon="stiff", seed=6)
    paths: dict[str, list[str]] = {"cal": [], "val": []}
    for role, batch, n in (("cal", problem.calibration, n_cal), ("val", problem.validation, n_val)):
        for k in range(n):
            trial = NMSTrial(time_s=batch.time_s[k], mtu_names=("flexor", "extensor"),
                             dof_names=("elbow_flexion",),
                             excitation=batch.excitation[k].numpy(),
                             mtu_length_m=batch.mtu_length_m[k].numpy(),
                             moment_arm_m=batch.moment_arm_m[k].numpy(),
                             id_moment_nm=batch.id_moment_nm[k].numpy(),
                             meta={"trial": f"{role}{k}"})
            path = tmp_path / "results" / "s01" / "trials" / f"{role}{k}" / "nms_inputs.npz"
            write_nms_trial(path, trial)
            paths[role].append(str(path))
    spec = problem.spec.muscles
    muscles = {name: (float(spec.optimal_fiber_length_m[i]), float(spec.tendon_slack_length_m[i]),
                      float(spec.max_isometric_force_n[i]), float(spec.pennation_angle_rad[i]))
               for i, name in enumerate(("flexor", "extensor"))}
    build_osim(tmp_path / "scaled.osim", muscles)
    return paths["cal"], paths["val"]


@pytest.mark.parametrize("method", ["gradient", "annealing"])
def test_cli_calibrate_and_execute(template_study: Path, tmp_path: Path, method: str) -> None:
    cal, val = _write_inputs(tmp_path, n_cal=2, n_val=1)
    out = tmp_path / "out" / method
    common = ["--study", str(template_study), "--subject", "s01", "--method", method,
              "--out-dir", str(out)]
    limit = ["--max-iterations", "40"] if method == "gradient" else ["--max-evaluations", "300"]
    assert main(["calibrate", *common, "--model", str(tmp_path / "scaled.osim"), "--inputs",
                 *cal, "--tendon", "stiff", "--no-progress", *limit]) == 0
    doc = json.loads((out / "parameters.json").read_text())
    assert doc["method"] == method and doc["tendon"] == "stiff"
    entry = doc["mtus"]["flexor"]
    for key in ("optimal_fiber_length_m", "tendon_slack_length_m", "max_isometric_force_n",
                "c1", "c2", "shape_factor"):
        assert {"value", "initial", "lower", "upper", "at_bound", "se"} <= set(entry[key])
    assert {"package_version", "config_sha256", "seed", "input_sha256"} <= set(doc["provenance"])
    assert "flags" in doc["identifiability"] and doc["wall_s"] > 0
    history = np.atleast_1d(np.genfromtxt(out / "history.tsv", names=True, delimiter="\t"))
    if method == "annealing":  # one row per temperature, cooling from t0 by rt; no learning rate
        config = load_study(template_study, check_files=False).config
        annealing = config["calibration"]["annealing"]
        assert np.all(np.isnan(history["lr"]))
        np.testing.assert_allclose(history["temperature"], annealing["t0"] * annealing["rt"]
                                   ** np.arange(len(history)), rtol=1e-9)
    else:  # least squares (the default): no learning rate, no temperature; the loss falls
        assert np.all(np.isnan(history["temperature"])) and np.all(np.isnan(history["lr"]))
        assert doc["optimiser"] == "least_squares"
        assert history["loss"][-1] < history["loss"][0]
    import opensim

    model = opensim.Model(str(out / "calibrated.osim"))
    muscle = model.getMuscles().get("flexor")
    assert muscle.getOptimalFiberLength() == pytest.approx(entry["optimal_fiber_length_m"]["value"])
    assert muscle.getMaxIsometricForce() == pytest.approx(entry["max_isometric_force_n"]["value"])

    assert main(["execute", *common, "--parameters", str(out / "parameters.json"),
                 "--inputs", *val, "--calibration-inputs", *cal]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    assert set(metrics["trials"]["val0"]["elbow_flexion"]) == {"rmse_nm", "r2"}
    assert metrics["mean_rmse_nm"] >= 0 and metrics["mean_r2"] <= 1
    assert "cal0" in metrics["calibration"]["trials"]
    executed = read_sto(out / "execution" / "val0" / "moments.sto")
    assert executed.labels == ("elbow_flexion",) and executed.data.shape == (80, 1)
    for stem in ("forces", "activations", "fiber_lengths"):
        assert (out / "execution" / "val0" / f"{stem}.sto").exists()
    # The calibration trials are executed too (the figures read them): their moments reproduce
    # the calibration fit that calibrate reported.
    for k, path in enumerate(cal):
        moments = read_sto(out / "execution" / f"cal{k}" / "moments.sto").column("elbow_flexion")
        reference = read_nms_trial(path).id_moment_nm[0]
        rmse = float(np.sqrt(np.mean((moments - reference) ** 2)))
        fit = metrics["calibration"]["trials"][f"cal{k}"]["elbow_flexion"]["rmse_nm"]
        assert rmse == pytest.approx(fit, rel=1e-6, abs=1e-9)


def test_execute_without_validation_trials_warns(template_study: Path, tmp_path: Path) -> None:
    cal, _ = _write_inputs(tmp_path, n_cal=1, n_val=0)
    out = tmp_path / "out"
    common = ["--study", str(template_study), "--subject", "s01", "--method", "gradient",
              "--out-dir", str(out)]
    assert main(["calibrate", *common, "--model", str(tmp_path / "scaled.osim"), "--inputs",
                 *cal, "--no-progress", "--max-iterations", "5"]) == 0
    log_file = tmp_path / "execute.log"
    assert main(["--log", str(log_file), "execute", *common, "--parameters",
                 str(out / "parameters.json")]) == 0
    assert "WARNING" in log_file.read_text() and "no validation trials" in log_file.read_text()
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_validation_trials"] == 0 and metrics["mean_rmse_nm"] is None
    assert metrics["warning"] == "no validation trials"
    # nothing could be checked: said so, every tracked DOF unchecked, nothing flagged
    block = metrics["generalisation"]
    assert block["checked"] is False and block["flagged"] == {} and block["warning"] is None
    document = json.loads((out / "parameters.json").read_text())
    assert block["unchecked"] == document["tracked_dofs"] == ["elbow_flexion"]
