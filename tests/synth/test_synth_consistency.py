"""Physical consistency of the demo study: inverse dynamics of what was written = truth.

OpenSim's InverseDynamicsTool runs on the subject's true model (the generic, unscaled model with
truth.json's segment inertial parameters ``bodies``) with the written kinematics and, for the leg,
the ground reactions read back from the C3D force plates. Its joint
moments must match the moments the true muscles produce (truth.json ``moments_nm``) within 2 % RMS
of each DOF's peak, and the leg's pelvis residuals must vanish.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
from synth_helpers import plate_loads, run_inverse_dynamics, write_mot

from pipeline.osim.external_loads import grf_columns, write_external_loads
from pipeline.osim.models import build_model
from pipeline.synth.inertia import BodyInertia, apply_bodies

pytestmark = pytest.mark.slow


def _dynamic_trials(truth: dict[str, Any]) -> list[tuple[str, str]]:
    return [(s, t) for s, entry in truth["subjects"].items() for t in entry["trials"]]


@pytest.mark.parametrize("index", range(6))
def test_inverse_dynamics_matches_true_muscle_moments(small_study: Path, small_truth: dict,
                                                      tmp_path: Path, index: int) -> None:
    trials = _dynamic_trials(small_truth)
    assert len(trials) == 6
    subject, trial = trials[index]
    entry = small_truth["subjects"][subject]
    record = entry["trials"][trial]
    time_s = np.asarray(record["time_s"])
    model = build_model(entry["model"])
    apply_bodies(model, {b: BodyInertia(v["mass_kg"], tuple(v["mass_center_m"]),
                                        tuple(v["inertia_kg_m2"]))
                         for b, v in entry["bodies"].items()})
    model.finalizeConnections()
    model_path = tmp_path / "model.osim"
    model.printToXML(str(model_path))
    coords = write_mot(tmp_path / "q.mot", time_s,
                       {c: np.asarray(v) for c, v in record["coordinates"].items()})
    loads_xml = None
    if entry["model"] == "demo-leg":
        loads = plate_loads(small_study / "c3d" / subject / f"{trial}.c3d")
        columns = {}
        for side, load in loads.items():
            values = np.hstack([load["force_n"], load["cop_m"], load["torque_nm"]])
            columns.update(dict(zip(grf_columns(side), values.T, strict=True)))
        grf = write_mot(tmp_path / "grf.mot", time_s, columns)
        loads_xml = tmp_path / "external_loads.xml"
        write_external_loads(loads_xml, datafile=grf)
    moments = run_inverse_dynamics(model_path, coords, tmp_path, external_loads=loads_xml,
                                   end_s=float(time_s[-1]))
    n = len(next(iter(moments.values())))
    errors = {}
    for dof, true in record["moments_nm"].items():
        true = np.asarray(true)[:n]
        errors[dof] = np.sqrt(np.mean((moments[dof] - true) ** 2)) / np.abs(true).max()
    print(subject, trial, {k: f"{100 * v:.2f} %" for k, v in errors.items()})
    assert max(errors.values()) < 0.02, errors
    if entry["model"] == "demo-leg":
        weight_n = 75.0 * 9.81
        for pelvis in ("pelvis_tx", "pelvis_ty"):
            assert np.sqrt(np.mean(moments[pelvis] ** 2)) < 0.01 * weight_n
        assert np.sqrt(np.mean(moments["pelvis_tilt"] ** 2)) < 2.0  # N m


def test_truth_excitations_are_bounded_and_smooth(small_truth: dict) -> None:
    for entry in small_truth["subjects"].values():
        for record in entry["trials"].values():
            exc = np.array(list(record["excitations"].values()))
            assert exc.min() >= 0.0 and exc.max() <= 1.0
            dt = record["time_s"][1] - record["time_s"][0]
            # band-limited well below the 5 Hz envelope filter: no sample-to-sample jumps
            assert np.abs(np.diff(exc, axis=1)).max() / dt < 10.0
