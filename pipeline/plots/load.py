"""Read a subject's results (contract paths in DESIGN.md) into the figure data containers.

Every reader returns None (or an empty container) for a missing optional file, so a figure says
"no data" in the panel instead of the command failing; a file that exists but is malformed raises
the reader's own error, naming the file.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import layout
from pipeline.errors import PipelineError, describe
from pipeline.io.nms_inputs import read_nms_trial
from pipeline.io.opensim_files import read_sto
from pipeline.plots.data import MethodResult, Signals, TrialRecording, TrialResult

log = logging.getLogger(__name__)

EXECUTION_FILES = {
    "predicted_moments": "moments.sto",
    "forces": "forces.sto",
    "activations": "activations.sto",
    "fiber_lengths": "fiber_lengths.sto",
    "synthesised_excitations": "synthesised_excitations.sto",  # written by synergy-hybrid
}


class ResultsError(PipelineError):
    """A result file needed for figures or the report is missing or malformed."""


def method_dir(root: Path, subject: str, method: str) -> Path:
    return Path(root) / layout.method_dir(subject, method)


def trial_dir(root: Path, subject: str, trial: str) -> Path:
    return Path(root) / layout.trial_dir(subject, trial)


def read_json(path: Path, *, required: bool = True) -> dict:
    """A JSON object from ``path``; ``{}`` when optional and absent."""
    if not path.exists():
        if required:
            raise ResultsError(describe(path, "file not found",
                                        "run the workflow step that writes it (snakemake)"))
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ResultsError(describe(path, f"not valid JSON ({exc})",
                                    "delete it and rerun the workflow")) from exc
    if not isinstance(data, dict):
        raise ResultsError(describe(path, "top level is not an object", "rerun the workflow"))
    return data


def read_signals(path: Path) -> Signals | None:
    """An OpenSim ``.sto``/``.mot`` file as :class:`Signals`, None when absent."""
    if not path.exists():
        return None
    table = read_sto(path, error_cls=ResultsError, fix="delete it and rerun the workflow")
    return Signals(np.asarray(table.time_s, float), tuple(table.labels),
                   np.asarray(table.data, float).T.reshape(len(table.labels), -1))


def read_history(path: Path) -> dict[str, np.ndarray]:
    """``history.tsv`` as {column: array}; empty when absent."""
    if not path.exists():
        return {}
    frame = pd.read_csv(path, sep="\t", comment="#")
    return {str(c): frame[c].to_numpy() for c in frame.columns
            if pd.api.types.is_numeric_dtype(frame[c])}


def _dof_block(block: Mapping) -> dict[str, dict[str, float]]:
    if isinstance(block.get("dofs"), Mapping):
        block = block["dofs"]
    return {str(dof): {"rmse_nm": float(m["rmse_nm"]),
                       "r2": float("nan") if m.get("r2") is None else float(m["r2"])}
            for dof, m in block.items() if isinstance(m, Mapping) and "rmse_nm" in m}


def per_trial_metrics(metrics: Mapping) -> dict[str, dict[str, dict[str, float]]]:
    """metrics.json as {trial: {dof: {"rmse_nm", "r2"}}}.

    Accepts the trials under a ``"trials"`` key or at the top level beside the means.
    """
    nested = metrics.get("trials")
    trials = nested if isinstance(nested, Mapping) else metrics
    out = {}
    for trial, block in trials.items():
        if isinstance(block, Mapping):
            dofs = _dof_block(block)
            if dofs:
                out[str(trial)] = dofs
    return out


def nms_signals(path: Path) -> tuple[Signals | None, Signals | None]:
    """(ID moments, recorded excitations) from a trial's ``nms_inputs.npz``."""
    if not path.exists():
        return None, None
    nms = read_nms_trial(path)
    moments = Signals(nms.time_s, nms.dof_names, nms.id_moment_nm)
    excitations = Signals(nms.time_s, nms.mtu_names, nms.excitation)
    return moments, excitations


def normalise_fiber_lengths(lengths: Signals, parameters: Mapping) -> Signals:
    """Normalised fibre lengths whether the file holds metres or already-normalised values.

    Per MTU, the interpretation (value or value / optimal fibre length) whose median is closer
    to 1 in log terms wins; no muscle's optimal fibre length is near 1 m, so this is unambiguous.
    """
    mtus = parameters.get("mtus", {})
    rows = []
    for name, row in zip(lengths.names, lengths.values, strict=True):
        l_opt = mtus.get(name, {}).get("optimal_fiber_length_m", {}).get("value")
        median = float(np.nanmedian(row)) if np.isfinite(row).any() else 1.0
        if l_opt and median > 0 and abs(np.log(median / l_opt)) < abs(np.log(median)):
            row = row / float(l_opt)
        rows.append(row)
    return Signals(lengths.time_s, lengths.names, np.asarray(rows).reshape(lengths.values.shape))


def all_trial_metrics(metrics: Mapping) -> dict[str, dict[str, dict[str, float]]]:
    """Validation trials (top level) and calibration trials (under ``"calibration"``)."""
    calibration = metrics.get("calibration")
    fit = per_trial_metrics(calibration) if isinstance(calibration, Mapping) else {}
    return {**fit, **per_trial_metrics(metrics)}


def load_method(root: Path, subject: str, method: str,
                trial_roles: Mapping[str, str]) -> MethodResult:
    """Everything the figures need from one calibration method of one subject.

    Model outputs come from the execution step's files (``execution/<trial>/``, written for the
    calibration and the validation trials); a trial without them is plotted without outputs.
    """
    base = method_dir(root, subject, method)
    parameters = read_json(base / "parameters.json")
    metrics = read_json(base / "metrics.json")
    by_trial = all_trial_metrics(metrics)
    nms_paths = {t: Path(root) / layout.nms_inputs(subject, t) for t in trial_roles}
    trials = []
    for trial, role in trial_roles.items():
        id_moments, excitations = nms_signals(nms_paths[trial])
        execution = base / "execution" / trial
        signals = {key: read_signals(execution / name) for key, name in EXECUTION_FILES.items()}
        if signals["fiber_lengths"] is not None:
            signals["fiber_lengths"] = normalise_fiber_lengths(signals["fiber_lengths"],
                                                               parameters)
        if id_moments is None and all(v is None for v in signals.values()):
            log.debug("%s/%s: no NMS inputs or execution files for trial %s", subject, method,
                      trial)
            continue
        trials.append(TrialResult(name=trial, role=role, id_moments=id_moments,
                                  excitations=excitations, metrics=by_trial.get(trial, {}),
                                  **signals))
    return MethodResult(method=method, parameters=parameters, metrics=metrics,
                        history=read_history(base / "history.tsv"), trials=tuple(trials))


def load_recordings(root: Path, subject: str,
                    trial_roles: Mapping[str, str]) -> list[TrialRecording]:
    """IK marker errors and GRF of every dynamic trial that has them."""
    recordings = []
    for trial, role in trial_roles.items():
        folder = trial_dir(root, subject, trial)
        error_files = sorted(folder.glob("*_ik_marker_errors.sto")) if folder.is_dir() else []
        marker_errors = read_signals(error_files[0]) if error_files else None
        grf = read_signals(folder / "grf.mot")
        if marker_errors is not None or grf is not None:
            recordings.append(TrialRecording(trial, role, marker_errors=marker_errors, grf=grf))
    return recordings


def load_gait_trials(root: Path, subject: str, trial_roles: Mapping[str, str]) -> list:
    """:class:`pipeline.plots.gait.GaitTrial` of every dynamic trial: IK, ID, GRF, EMG, the
    EMG quality flags and the cycle windows of events.json."""
    from pipeline.plots.gait import GaitTrial

    trials = []
    for trial, role in trial_roles.items():
        folder = trial_dir(root, subject, trial)
        events = read_json(folder / "events.json", required=False)
        quality = read_json(folder / "emg_quality.json", required=False)
        windows = tuple((float(a), float(b)) for a, b in events.get("windows") or [])
        flags = {name: list(q.get("flags") or [])
                 for name, q in (quality.get("channels") or {}).items()}
        for name in quality.get("dropped") or []:
            flags.setdefault(name, []).append("dropped")
        channels = quality.get("channels") or {}
        grf = read_signals(folder / "grf.mot")
        sides = events.get("sides")
        trials.append(GaitTrial(trial, role, windows,
                                tuple("" if s == "?" else s for s in sides)
                                if sides is not None and len(sides) == len(windows)
                                else _window_sides(windows, grf),
                                str(events.get("source", "")),
                                angles=read_signals(folder / "ik.mot"),
                                moments=read_signals(folder / "id.sto"), grf=grf,
                                emg=read_signals(folder / "emg.sto"), emg_flags=flags,
                                emg_onsets_s={n: q.get("onsets_s") or []
                                              for n, q in channels.items()},
                                emg_offsets_s={n: q.get("offsets_s") or []
                                               for n, q in channels.items()}))
    return trials


def _window_sides(windows: Sequence[tuple[float, float]], grf: Signals | None) -> tuple:
    """Per window, the foot loaded at its midpoint ("r"/"l", from grf.mot), "" if neither or
    both."""
    if grf is None:
        return tuple("" for _ in windows)
    sides = []
    for t0, t1 in windows:
        mid = 0.5 * (t0 + t1)
        loaded = []
        for side in ("r", "l"):
            force = grf.get(f"ground_force_{side}_vy")
            if force is not None and np.interp(mid, grf.time_s, force) > 20.0:
                loaded.append(side)
        sides.append(loaded[0] if len(loaded) == 1 else "")
    return tuple(sides)
