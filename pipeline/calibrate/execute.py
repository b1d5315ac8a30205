"""Open-loop EMG-driven execution with calibrated parameters, ``.sto`` outputs and metrics.

Per trial, ``<out_dir>/execution/<trial>/`` receives ``moments.sto`` (N·m, one column per DOF),
``forces.sto`` (N, per MTU), ``activations.sto`` and ``fiber_lengths.sto`` (m, per MTU), in
OpenSim storage text format. ``metrics.json`` holds per trial and DOF ``rmse_nm`` and ``r2`` and
their means ``mean_rmse_nm`` and ``mean_r2`` (validation trials at the top level, calibration
trials under ``calibration``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.calibrate.metrics import summarise, trial_metrics
from pipeline.calibrate.problem import TrialBatch
from pipeline.errors import CalibrationError, describe
from pipeline.fileio import atomic_path
from pipeline.nms import DEFAULT_EMD_S, ModelOutput, MuscleParameters, simulate

log = logging.getLogger(__name__)

_FIELDS = {"c1": "c1", "c2": "c2", "shape_factor": "shape_factor",
           "optimal_fiber_length_m": "optimal_fiber_length_m",
           "tendon_slack_length_m": "tendon_slack_length_m", "strength": "strength_coefficient",
           "damping": "damping", "pennation_at_optimal_rad": "pennation_at_optimal_rad"}


def muscle_parameters_from_document(document: Mapping[str, Any], mtu_names: Sequence[str], *,
                                    source: str | Path | None = None) -> MuscleParameters:
    """Per-MTU :class:`MuscleParameters` from a ``parameters.json`` document."""
    mtus = document.get("mtus", {})
    missing = [m for m in mtu_names if m not in mtus]
    if missing:
        raise CalibrationError(describe(source, f"no calibrated parameters for MTU(s) "
                                        f"{', '.join(missing)} used by the trials",
                                        "calibrate with the same model setup as execution"))
    values: dict[str, list[float]] = {k: [] for k in (*_FIELDS, "max_isometric_force_n")}
    for name in mtu_names:
        entry = mtus[name]
        for field, key in _FIELDS.items():
            values[field].append(float(entry[key]["value"]))
        values["max_isometric_force_n"].append(float(entry["max_isometric_force_n"]["generic_n"]))
    return MuscleParameters(**{k: torch.as_tensor(v, dtype=torch.float64)
                               for k, v in values.items()})


def execute(params: MuscleParameters, batch: TrialBatch, *, tendon: str,
            emd_s: float = DEFAULT_EMD_S, device: str | torch.device | None = None
            ) -> ModelOutput:
    """Run the model without gradients on every trial of ``batch`` (all trials in one pass, on
    ``device`` when given, e.g. ``cuda``); the outputs come back on the CPU."""
    if device is not None:
        params = params.to(device=device)
        batch = batch.to(device)
    with torch.no_grad():
        out = simulate(params, batch.excitation, batch.mtu_length_m, batch.moment_arm_m,
                       dt_s=batch.dt_s, tendon=tendon, emd_s=emd_s)
    return ModelOutput(*(x.cpu() for x in out))


def batch_metrics(batch: TrialBatch, output: ModelOutput,
                  trial_labels: Sequence[str] | None = None) -> dict[str, Any]:
    """``{"trials": {trial: {dof: {rmse_nm, r2}}}, "mean_rmse_nm", "mean_r2"}``."""
    labels = list(trial_labels or batch.trial_names)
    per_trial = {}
    for k, label in enumerate(labels):
        n = len(batch.time_s[k])
        per_trial[label] = trial_metrics(batch.id_moment_nm[k, :, :n].numpy(),
                                         output.moments_nm[k, :, :n].numpy(), batch.dof_names)
    return {"trials": per_trial, **summarise(per_trial)}


def format_sto(name: str, time_s: np.ndarray, columns: Sequence[str], data: np.ndarray) -> str:
    """OpenSim storage text: header, ``endheader``, then ``time`` and one column per name.

    ``data`` is ``(column, time)``.
    """
    header = [name, "version=1", f"nRows={len(time_s)}", f"nColumns={len(columns) + 1}",
              "inDegrees=no", "endheader", "\t".join(("time", *columns))]
    rows = np.column_stack([time_s, np.asarray(data).T])
    body = "\n".join("\t".join(f"{v:.10g}" for v in row) for row in rows)
    return "\n".join(header) + "\n" + body + "\n"


def write_sto(path: str | Path, name: str, time_s: np.ndarray, columns: Sequence[str],
              data: np.ndarray) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(format_sto(name, time_s, columns, data), encoding="utf-8")


def read_sto(path: str | Path) -> tuple[list[str], np.ndarray]:
    """Column labels (with ``time``) and the ``(row, column)`` data of a ``.sto`` file."""
    lines = Path(path).read_text(encoding="utf-8").splitlines()
    end = lines.index("endheader")
    labels = lines[end + 1].split("\t")
    data = np.array([[float(v) for v in line.split("\t")] for line in lines[end + 2:] if line])
    return labels, data


def write_execution(out_dir: str | Path, batch: TrialBatch, output: ModelOutput,
                    trial_labels: Sequence[str] | None = None) -> list[Path]:
    """Write the four ``.sto`` files of every trial under ``out_dir/<trial>/``."""
    out_dir = Path(out_dir)
    labels = list(trial_labels or batch.trial_names)
    written = []
    for k, label in enumerate(labels):
        n = len(batch.time_s[k])
        time_s = np.asarray(batch.time_s[k])
        files = {
            "moments": (batch.dof_names, output.moments_nm[k, :, :n]),
            "forces": (batch.mtu_names, output.force_n[k, :, :n]),
            "activations": (batch.mtu_names, output.activation[k, :, :n]),
            "fiber_lengths": (batch.mtu_names, output.fiber_length_m[k, :, :n]),
        }
        for stem, (columns, data) in files.items():
            path = out_dir / label / f"{stem}.sto"
            write_sto(path, f"{label}_{stem}", time_s, columns, data.numpy())
            written.append(path)
    return written


def trial_label(path: str | Path, meta: Mapping[str, Any] | None = None) -> str:
    """A trial's name: ``meta["trial"]`` or the folder holding its NMS input file."""
    if meta and meta.get("trial"):
        return str(meta["trial"])
    path = Path(path)
    return path.parent.name if path.parent.name else path.stem
