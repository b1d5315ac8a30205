"""Per-trial NMS input file (``nms_inputs.npz``): everything calibration needs from one trial.

One self-describing NumPy ``.npz`` archive holding, on one time base:

=====================  ======================  =========================================
array                  shape                   meaning
=====================  ======================  =========================================
``time_s``             (time,)                 sample times, s
``mtu_names``          (muscle,)               MTU names (str)
``dof_names``          (dof,)                  calibrated coordinate names (str)
``excitation``         (muscle, time)          EMG-derived excitation in [0, 1] (NaN row =
                                               no EMG mapped to that MTU)
``mtu_length_m``       (muscle, time)          musculotendon length, m
``moment_arm_m``       (muscle, dof, time)     moment arm, m (0 where the MTU does not cross)
``id_moment_nm``       (dof, time)             inverse-dynamics joint moment, N·m
``meta_json``          ()                      JSON: subject, trial, role, units, sources
``excitation_before``  (muscle, n_before)      optional: excitation on the same time step just
                                               before ``time_s[0]`` (EMG recorded before the
                                               window, for the electromechanical delay)
=====================  ======================  =========================================
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import CalibrationError, describe
from pipeline.fileio import atomic_path

UNITS = {
    "time_s": "s",
    "excitation": "1",
    "mtu_length_m": "m",
    "moment_arm_m": "m",
    "id_moment_nm": "N*m",
}


@dataclass(frozen=True)
class NMSTrial:
    """Inputs of one trial. Shapes as in the module docstring."""

    time_s: np.ndarray
    mtu_names: tuple[str, ...]
    dof_names: tuple[str, ...]
    excitation: np.ndarray
    mtu_length_m: np.ndarray
    moment_arm_m: np.ndarray
    id_moment_nm: np.ndarray
    meta: dict[str, Any] = field(default_factory=dict)
    excitation_before: np.ndarray | None = None

    def __post_init__(self) -> None:
        n_t, n_m, n_d = len(self.time_s), len(self.mtu_names), len(self.dof_names)
        expected = {
            "excitation": (n_m, n_t),
            "mtu_length_m": (n_m, n_t),
            "moment_arm_m": (n_m, n_d, n_t),
            "id_moment_nm": (n_d, n_t),
        }
        for name, shape in expected.items():
            actual = np.shape(getattr(self, name))
            if actual != shape:
                raise ValueError(f"NMSTrial.{name} has shape {actual}, expected {shape}")
        before = self.excitation_before
        if before is not None and (np.ndim(before) != 2 or np.shape(before)[0] != n_m):
            raise ValueError(f"NMSTrial.excitation_before has shape {np.shape(before)}, "
                             f"expected ({n_m}, n_before)")

def write_nms_trial(path: str | Path, trial: NMSTrial) -> None:
    """Write ``trial`` to ``path`` (``.npz``) atomically."""
    meta = {**trial.meta, "units": UNITS}
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as fh:
            np.savez(
                fh,
                time_s=np.asarray(trial.time_s, dtype=float),
                mtu_names=np.asarray(trial.mtu_names, dtype=str),
                dof_names=np.asarray(trial.dof_names, dtype=str),
                excitation=np.asarray(trial.excitation, dtype=float),
                mtu_length_m=np.asarray(trial.mtu_length_m, dtype=float),
                moment_arm_m=np.asarray(trial.moment_arm_m, dtype=float),
                id_moment_nm=np.asarray(trial.id_moment_nm, dtype=float),
                meta_json=np.asarray(json.dumps(meta)),
                # numpy's stub lets a ** mapping reach allow_pickle: bool; these are all arrays.
                **({} if trial.excitation_before is None else  # type: ignore[arg-type]
                   {"excitation_before": np.asarray(trial.excitation_before, dtype=float)}),
            )


def read_nms_trial(path: str | Path) -> NMSTrial:
    """Read an NMS input file written by :func:`write_nms_trial`."""
    path = Path(path)
    try:
        with np.load(path, allow_pickle=False) as data:
            return NMSTrial(
                time_s=data["time_s"],
                mtu_names=tuple(str(s) for s in data["mtu_names"]),
                dof_names=tuple(str(s) for s in data["dof_names"]),
                excitation=data["excitation"],
                mtu_length_m=data["mtu_length_m"],
                moment_arm_m=data["moment_arm_m"],
                id_moment_nm=data["id_moment_nm"],
                meta=json.loads(str(data["meta_json"])),
                excitation_before=(data["excitation_before"] if "excitation_before" in data
                                   else None),
            )
    except (OSError, KeyError, ValueError) as exc:
        raise CalibrationError(
            describe(path, f"not a valid NMS input file ({exc})",
                     "delete it and rerun the workflow so the collect step rewrites it")
        ) from exc
