"""NMS inputs of the ``bench ceinms`` problems, built from the real Rajagopal walk.

``../shared/data/opensim-core/rajagopal-walk``: the scaled Rajagopal 2016 model, IK
(``coordinates.sto``, 1 kHz), ID (``id_walk.sto``) and 10 processed EMG envelopes
(``electromyography.sto``, 2 kHz, each normalised to its maximum). MTU lengths and moment arms
come from the project's muscle analysis on the IK, everything is resampled to ``RATE_HZ``, and
the excitations are the envelopes delayed by ``EMD_S`` (taken from the EMG recorded before each
sample, so both tools run with no further delay). The walk is split into a calibration window
and a held-out validation window. Each window's NMS inputs carry the ``WARMUP_S`` of excitation
before it (``excitation_before``), which CEINMS gets as its leading excitation rows: both tools
run the activation dynamics through the same history.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import ConfigError, describe
from pipeline.io.nms_inputs import NMSTrial

FOLDER = Path("opensim-core") / "rajagopal-walk"
MODEL = "subject_walk_scaled.osim"
RATE_HZ = 200.0
EMD_S = 0.015
#: Excitation recorded before the first MTU sample that CEINMS's activation runs over.
WARMUP_S = 0.45
WINDOWS = {"calibration": (0.50, 1.30), "validation": (1.30, 1.79)}
#: MTU -> {EMG envelope: weight}
EXCITATIONS = {
    "soleus_r": {"soleus": 1.0}, "gasmed_r": {"gastrocnemius": 1.0},
    "gaslat_r": {"gastrocnemius": 1.0}, "tibant_r": {"tibialis_anterior": 1.0},
    "semimem_r": {"medial_hamstrings": 1.0}, "semiten_r": {"medial_hamstrings": 1.0},
    "bflh_r": {"biceps_femoris": 1.0}, "vaslat_r": {"vastus_lateralis": 1.0},
    "vasmed_r": {"vastus_medius": 1.0}, "recfem_r": {"rectus_femoris": 1.0},
    "glmax2_r": {"gluteus_maximus": 1.0},
}
DOFS = ("hip_flexion_r", "knee_angle_r", "ankle_angle_r")


@dataclass(frozen=True)
class WalkInputs:
    """Calibration and validation trials over every MTU and DOF, plus the excitations on an
    extended time base starting ``WARMUP_S`` earlier (for CEINMS)."""

    model_path: Path
    trials: dict[str, NMSTrial]
    warmup_time_s: dict[str, np.ndarray]
    warmup_excitation: dict[str, np.ndarray]


def data_folder(shared_data: str | Path) -> Path:
    folder = Path(shared_data) / FOLDER
    if not (folder / MODEL).is_file():
        raise ConfigError(describe(folder, "the Rajagopal walk (model, IK, ID, EMG) is not there",
                                   "pass --data <folder holding opensim-core/rajagopal-walk>"))
    return folder


def build_walk_inputs(shared_data: str | Path) -> WalkInputs:
    """Muscle analysis, ID and delayed EMG envelopes on the two windows (see module doc)."""
    from pipeline.io.opensim_files import StoTable, read_sto
    from pipeline.osim.model_io import load_model
    from pipeline.osim.muscle_analysis import compute_muscle_geometry

    folder = data_folder(shared_data)
    model = load_model(folder / MODEL)
    ik = read_sto(folder / "coordinates.sto", require_rows=True, state_values=True)
    ident = read_sto(folder / "id_walk.sto", require_rows=True, state_values=True)
    emg = read_sto(folder / "electromyography.sto", require_rows=True, state_values=True)
    mtus = tuple(EXCITATIONS)

    def excitation_at(time_s: np.ndarray) -> np.ndarray:
        delayed = time_s - EMD_S
        mixed = np.stack([sum(w * np.interp(delayed, emg.time_s, emg.column(name))
                              for name, w in EXCITATIONS[m].items()) for m in mtus])
        return np.clip(mixed, 0.0, 1.0)  # CEINMS clips excitations to [0, 1]; so do both

    trials, warm_t, warm_e = {}, {}, {}
    for role, (t0, t1) in WINDOWS.items():
        time_s = t0 + np.arange(round((t1 - t0) * RATE_HZ) + 1) / RATE_HZ
        table = StoTable(time_s, ik.labels,
                         np.column_stack([np.interp(time_s, ik.time_s, ik.data[:, j])
                                          for j in range(ik.data.shape[1])]),
                         in_degrees=ik.in_degrees)
        geometry = compute_muscle_geometry(model, table, mtu_names=mtus, coordinate_names=DOFS,
                                           file=folder / "coordinates.sto")
        moments = np.stack([np.interp(time_s, ident.time_s, ident.column(f"{d}_moment"))
                            for d in DOFS])
        n_warm = round(WARMUP_S * RATE_HZ)
        before_s = time_s[0] - np.arange(n_warm, 0, -1) / RATE_HZ
        trials[role] = NMSTrial(
            time_s=time_s, mtu_names=mtus, dof_names=DOFS, excitation=excitation_at(time_s),
            excitation_before=excitation_at(before_s),
            mtu_length_m=geometry.mtu_length_m, moment_arm_m=geometry.moment_arm_m,
            id_moment_nm=moments, meta={"subject": "rajagopal", "trial": f"walk_{role}",
                                        "role": role, "source": str(folder)})
        warm_t[role] = np.concatenate([before_s, time_s])
        warm_e[role] = np.concatenate([trials[role].excitation_before,
                                       trials[role].excitation], axis=1)
    return WalkInputs(folder / MODEL, trials, warm_t, warm_e)


def subset(trial: NMSTrial, mtus: tuple[str, ...], dofs: tuple[str, ...]) -> NMSTrial:
    """The trial restricted to some MTUs and DOFs."""
    m = [trial.mtu_names.index(n) for n in mtus]
    d = [trial.dof_names.index(n) for n in dofs]
    before = None if trial.excitation_before is None else trial.excitation_before[m]
    return NMSTrial(trial.time_s, mtus, dofs, trial.excitation[m], trial.mtu_length_m[m],
                    trial.moment_arm_m[m][:, d], trial.id_moment_nm[d], dict(trial.meta),
                    excitation_before=before)
