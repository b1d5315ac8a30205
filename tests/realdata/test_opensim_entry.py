"""A study of config + sheets only, entering from OpenSim files nobody here wrote, through the real
Snakemake workflow to calibration and validation.

* ``rajagopal``: the Rajagopal 2016 walk (opensim-core example3DWalking): its scaled model, IK
  ``coordinates.sto`` (state-path labels, radians), ID ``id_walk.sto`` and 10 normalised EMG
  envelopes. Nothing is computed before the muscle analysis.
* ``emgtrack``: the EMG-tracking example (armless 18-muscle model): IK ``coordinates.mot``
  (degrees), GRF ``grf.mot`` + ``external_loads.xml`` and ``emg.sto``; ID is computed.

Each walk is split into a calibration and a later validation window. Lean on purpose: a few ankle
MTUs, the knee modelled but not tracked, a stiff tendon. The fit and held-out RMSE/R² per DOF are
printed (``pytest -s``); the assertions are plausibility (forces within physiological ranges,
activations in [0, 1], uncalibrated MTUs unchanged), not tuned numbers.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from generalisation_oracle import expected_flags
from workflow_helpers import planned_jobs, run_snakemake

RAJAGOPAL = "opensim-core/rajagopal-walk"
EMG_TRACKING = "opensim-core/emg-tracking"

CONFIG = """\
# Entering from OpenSim files: every trial gives its files, no C3D.
models:
  rajagopal:            # the right leg of the Rajagopal walk
    excitations:
      soleus_r: {soleus: 1.0}
      gasmed_r: {gastrocnemius: 1.0}
      gaslat_r: {gastrocnemius: 1.0}
      tibant_r: {tibialis_anterior: 1.0}
      vaslat_r: {vastus_lateralis: 1.0}
    dofs: [knee_angle_r, ankle_angle_r]
    tracked_dofs: [ankle_angle_r]           # calibrate the ankle inside a knee + ankle model
    calibrated_mtus: [soleus_r, gasmed_r, gaslat_r, tibant_r]
  emgtrack:             # its EMG follows the left leg's stance (left GRF)
    excitations:
      soleus_l: {soleus: 1.0}
      gasmed_l: {gastrocnemius: 1.0}
      tibant_l: {tibialis_anterior: 1.0}
    dofs: [ankle_angle_l]
    force_plates: true
calibration:
  tendon: stiff
  parameters: [shape_factor, optimal_fiber_length, tendon_slack_length, strength]
  activation_sharing: global
  bounds:
    strength: {lower: 0.2, upper: 2.5}     # envelopes normalised to their own peak, not MVC
  optimiser: {max_iterations: 120, patience: 30, polish_iterations: 80}
"""


def write_study(root: Path, data: Path) -> Path:
    """The study folder: config.yaml, subjects.tsv and trials.tsv (paths relative to it)."""
    root.mkdir(parents=True, exist_ok=True)
    raj = Path(os.path.relpath(data / RAJAGOPAL, root))
    emg = Path(os.path.relpath(data / EMG_TRACKING, root))
    (root / "config.yaml").write_text(CONFIG, encoding="utf-8")
    (root / "subjects.tsv").write_text(
        "subject\tmass_kg\theight_m\tmodel\tscaled_model\n"
        f"rajagopal\t72.6\t1.8\trajagopal\t{raj}/subject_walk_scaled.osim\n"
        f"emgtrack\t72.6\t1.8\temgtrack\t{emg}/subject_walk_armless_18musc.osim\n",
        encoding="utf-8")
    rows = ["subject\ttrial\tfile\tkind\trole\tstart_s\tend_s\tik_file\tid_file\temg_file\t"
            "grf_file\texternal_loads_file"]
    raj_files = (f"{raj}/coordinates.sto\t{raj}/id_walk.sto\t{raj}/electromyography.sto\t\t")
    emg_files = (f"{emg}/coordinates.mot\t\t{emg}/emg.sto\t{emg}/grf.mot\t"
                 f"{emg}/external_loads.xml")
    for subject, files, windows in (
            ("rajagopal", raj_files, (("cal", 0.45, 0.82), ("val", 0.82, 1.3))),
            ("emgtrack", emg_files, (("cal", 0.85, 1.35), ("val", 1.35, 1.85)))):
        for name, start, end in windows:
            role = "calibration" if name == "cal" else "validation"
            rows.append(f"{subject}\twalk_{name}\t\tdynamic\t{role}\t{start}\t{end}\t{files}")
    (root / "trials.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    return root


def test_dry_run_plans_exactly_the_missing_stages(shared_data: Path, tmp_path: Path) -> None:
    from pipeline.study import load_study

    study = write_study(tmp_path / "study", shared_data)
    load_study(study)
    jobs = planned_jobs(run_snakemake(study, "-n"))
    assert jobs == {
        "import_model": 2, "import_ik": 4, "import_emg": 4, "import_id": 2, "import_grf": 2,
        "inverse_dynamics": 2, "muscle_analysis": 4, "collect_nms_inputs": 4, "calibrate": 2,
        "execute": 2, "data_figures": 2, "method_figures": 2,
        "figures": 2, "report": 1, "default": 1}, jobs


@pytest.mark.slow
def test_study_from_opensim_files_calibrates_and_validates(shared_data: Path,
                                                           tmp_path: Path) -> None:
    from pipeline.io.nms_inputs import read_nms_trial
    from pipeline.io.opensim_files import read_sto

    study = write_study(tmp_path / "study", shared_data)
    run_snakemake(study)
    assert (study / "results" / "report.html").is_file()
    for subject in ("rajagopal", "emgtrack"):
        base = study / "results" / subject / "calibration" / "gradient"
        metrics = json.loads((base / "metrics.json").read_text())
        params = json.loads((base / "parameters.json").read_text())
        tracked = metrics["tracked_dofs"]
        for where, block in (("fit", metrics["calibration"]), ("held-out", metrics)):
            for trial, dofs in block["trials"].items():
                for dof, m in dofs.items():
                    note = "" if dof in tracked else " (not tracked)"
                    print(f"{subject} {where} {trial} {dof}{note}: RMSE {m['rmse_nm']:.1f} N*m, "
                          f"R2 {m['r2']:.2f}")
        fit = metrics["calibration"]["trials"]["walk_cal"]
        assert all(fit[d]["r2"] > 0.0 for d in tracked), fit  # beats the mean of the fit window
        held_out = read_nms_trial(study / "results" / subject / "trials" / "walk_val"
                                  / "nms_inputs.npz")
        for d in tracked:  # held-out error below the range of the held-out moment
            span = np.ptp(held_out.id_moment_nm[held_out.dof_names.index(d)])
            assert metrics["trials"]["walk_val"][d]["rmse_nm"] < span, (d, span)
        # the generalisation check judges the tracked DOFs only, as the written moments say
        trials = study / "results" / subject / "trials"
        expected = expected_flags(base / "execution", [trials / "walk_cal" / "nms_inputs.npz"],
                                  [trials / "walk_val" / "nms_inputs.npz"], tracked)
        block = metrics["generalisation"]
        print(f"{subject} generalisation: {block['flagged']}")
        assert block["checked"] and set(block["flagged"]) == set(expected) <= set(tracked)
        execution = base / "execution" / "walk_val"
        forces = read_sto(execution / "forces.sto")
        activations = read_sto(execution / "activations.sto").data
        assert activations.min() >= 0.0 and activations.max() <= 1.0
        for j, mtu in enumerate(forces.labels):
            force = forces.data[:, j]
            fmax = params["mtus"][mtu]["max_isometric_force_n"]["value"]
            # Shortening fibres pull at most ~Fmax; eccentric at most ~1.8 Fmax; passive >= 0.
            assert force.min() >= -1e-6 * fmax, mtu
            assert force.max() <= 1.8 * fmax, mtu
            assert force.max() < 10000.0, mtu
        for mtu, entry in params["mtus"].items():
            chosen = mtu != "vaslat_r"
            for key in ("optimal_fiber_length_m", "tendon_slack_length_m",
                        "strength_coefficient", "shape_factor"):
                assert entry[key]["calibrated"] is chosen, (mtu, key)
                if not chosen:
                    assert entry[key]["value"] == entry[key]["initial"], (mtu, key)


@pytest.mark.slow
def test_drop_emg_applies_to_given_envelopes(shared_data: Path, tmp_path: Path) -> None:
    """``drop_emg`` on an envelope file (emg_file, emg.input: envelope) leaves the channel out
    of emg.sto as for C3D EMG, so its MTU gets no EMG (a NaN row: unrecorded for
    synergy-hybrid); the other MTUs keep the file's envelopes."""
    from pipeline.io.nms_inputs import read_nms_trial
    from pipeline.io.opensim_files import read_sto

    study = write_study(tmp_path / "study", shared_data)
    config = study / "config.yaml"
    config.write_text(config.read_text(encoding="utf-8").replace(
        "    dofs: [knee_angle_r, ankle_angle_r]\n",
        "    dofs: [knee_angle_r, ankle_angle_r]\n    drop_emg: [tibialis_anterior]\n", 1),
        encoding="utf-8")
    trial = study / "results" / "rajagopal" / "trials" / "walk_cal"
    run_snakemake(study, str((trial / "nms_inputs.npz").relative_to(study)))
    emg = read_sto(trial / "emg.sto")
    assert "tibialis_anterior" not in emg.labels
    assert set(emg.labels) == {"soleus", "gastrocnemius", "vastus_lateralis"}
    nms = read_nms_trial(trial / "nms_inputs.npz")
    assert nms.meta["excitation_mapping"]["tibant_r"] == {}
    assert np.isnan(nms.excitation[nms.mtu_names.index("tibant_r")]).all()
    source = read_sto(shared_data / RAJAGOPAL / "electromyography.sto")
    soleus = np.interp(nms.time_s, source.time_s, source.column("soleus"))
    np.testing.assert_allclose(nms.excitation[nms.mtu_names.index("soleus_r")],
                               np.clip(soleus, 0.0, 1.0), atol=1e-6)
