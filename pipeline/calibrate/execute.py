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
from pipeline.io.opensim_files import StoTable, write_sto
from pipeline.nms import DEFAULT_EMD_S, ModelOutput, MuscleParameters, few_passes, simulate
from pipeline.nms.model import TendonModel

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


def execute(params: MuscleParameters, batch: TrialBatch, *, tendon: TendonModel,
            emd_s: float = DEFAULT_EMD_S, objective: Mapping[str, Any] | None = None,
            device: str | torch.device | None = None) -> ModelOutput:
    """Run the model without gradients on every trial of ``batch`` (all trials in one pass, on
    ``device`` when given, e.g. ``cuda``; the outputs come back on the CPU).

    ``objective`` is ``parameters.json``'s ``objective``: parameters calibrated with
    ``{"name": "ceinms", ...}`` and a stiff tendon run in CEINMS's model variant
    (:func:`pipeline.calibrate.ceinms_objective.simulate_ceinms`).
    """
    if device is not None:
        params = params.to(device=device)
        batch = batch.to(device)
    # One forward pass: numpy loops unless numba already runs in this process (few_passes).
    with torch.no_grad(), few_passes():
        if objective and objective.get("name") == "ceinms" and tendon == "stiff":
            from pipeline.calibrate.ceinms_objective import simulate_ceinms

            out = simulate_ceinms(params, batch, emd_s=emd_s,
                                  percentage_change=float(objective["percentage_change"]))
        else:
            out = simulate(params, batch.excitation, batch.mtu_length_m, batch.moment_arm_m,
                           dt_s=batch.dt_s, tendon=tendon, emd_s=emd_s,
                           excitation_before=batch.excitation_before)
    return ModelOutput(*(x.cpu() for x in out))


def execute_document(document: Mapping[str, Any], batch: TrialBatch, *,
                     source: str | Path | None = None,
                     device: str | torch.device | None = None) -> ModelOutput:
    """Run the model a ``parameters.json`` document describes (its parameters, tendon,
    electromechanical delay and objective's model variant) on every trial of ``batch``."""
    params = muscle_parameters_from_document(document, batch.mtu_names, source=source)
    return execute(params, batch, tendon=document.get("tendon", "elastic"),
                   emd_s=float(document.get("emd_s", DEFAULT_EMD_S)),
                   objective=document.get("objective"), device=device)


def batch_metrics(batch: TrialBatch, output: ModelOutput,
                  trial_labels: Sequence[str] | None = None, *,
                  mean_over: Sequence[str] | None = None) -> dict[str, Any]:
    """``{"trials": {trial: {dof: {rmse_nm, r2}}}, "mean_rmse_nm", "mean_r2"}``.

    Every DOF is reported; the means are over the DOFs ``mean_over`` (default all: the tracked
    ones when only some are calibrated).
    """
    labels = list(trial_labels or batch.trial_names)
    per_trial = {}
    for k, label in enumerate(labels):
        n = len(batch.time_s[k])
        per_trial[label] = trial_metrics(batch.id_moment_nm[k, :, :n].numpy(),
                                         output.moments_nm[k, :, :n].numpy(), batch.dof_names)
    keep = set(batch.dof_names if mean_over is None else mean_over)
    means = summarise({t: {d: m for d, m in dofs.items() if d in keep}
                       for t, dofs in per_trial.items()})
    return {"trials": per_trial, **means}


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
            write_sto(path, StoTable(time_s, tuple(columns), data.numpy().T,
                                     name=f"{label}_{stem}"))
            written.append(path)
    return written


def trial_label(path: str | Path, meta: Mapping[str, Any] | None = None) -> str:
    """A trial's name: ``meta["trial"]`` or the folder holding its NMS input file."""
    if meta and meta.get("trial"):
        return str(meta["trial"])
    path = Path(path)
    return path.parent.name if path.parent.name else path.stem
