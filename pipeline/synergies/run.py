"""One synergy-hybrid calibration from NMS input files: calibrate, validate, write the outputs.

Writes into ``out_dir`` (``results/<subject>/calibration/synergy_hybrid/``):

* ``parameters.json`` (DESIGN.md contract, ``method: synergy_hybrid``) plus a ``synergies`` key:
  number, VAF, recorded / unrecorded MTUs, calibrated weightings per MTU, w_e and w_s;
* ``metrics.json``: validation trials at the top level (``trials``, ``mean_rmse_nm``,
  ``mean_r2``), calibration trials under ``calibration``, and ``synthesis`` (how validation
  excitations were made; with ``truth`` also Pearson r of synthesised vs true excitations);
* ``calibrated.osim``; ``history.tsv``; ``synergies.png``;
* ``execution/<trial>/`` per trial: the execution ``.sto`` files of
  :func:`pipeline.calibrate.execute.write_execution` plus ``synthesised_excitations.sto`` (the
  unrecorded MTUs' excitations that drove the model) and ``primitives.sto``.

Unrecorded MTUs are those named in the config plus every MTU whose excitation row is all NaN (no
EMG mapped): synergy-hybrid calibration models every MTU of the NMS inputs.
"""

from __future__ import annotations

import dataclasses
import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.calibrate.execute import trial_label, write_execution
from pipeline.calibrate.export import (
    log_at_bound,
    parameters_document,
    provenance,
    read_muscle_properties,
    write_calibrated_osim,
    write_parameters,
)
from pipeline.calibrate.generalisation import generalisation_block
from pipeline.calibrate.gradient import history_tsv
from pipeline.calibrate.problem import TrialBatch, batch_trials
from pipeline.calibrate.run import make_objective
from pipeline.calibrate.spec import MuscleProperties, build_spec
from pipeline.errors import ConfigError, describe
from pipeline.fileio import write_json_atomic, write_text_atomic
from pipeline.io.nms_inputs import read_nms_trial
from pipeline.io.opensim_files import StoTable, write_sto
from pipeline.synergies.figures import plot_synergies
from pipeline.synergies.hybrid import HybridOptions, HybridResult, calibrate_synergy_hybrid
from pipeline.synergies.validation import SynthesisedTrials, evaluate, synthesise_unrecorded

log = logging.getLogger(__name__)

METHOD = "synergy_hybrid"


def load_hybrid_trials(paths: Sequence[str | Path], *, unrecorded: Sequence[str],
                       source: str = "config.yaml") -> tuple[TrialBatch, tuple[str, ...]]:
    """Batch NMS input files with every MTU; unrecorded rows are zero-filled placeholders.

    Returns the batch (trial names from the files' metadata) and the unrecorded MTUs (configured
    ones plus MTUs without EMG), in model order.
    """
    if not paths:
        raise ConfigError(describe(None, "no NMS input files were given",
                                   "pass at least one calibration trial with --inputs"))
    trials = [read_nms_trial(p) for p in paths]
    names = trials[0].mtu_names
    unknown = [m for m in unrecorded if m not in names]
    if unknown:
        raise ConfigError(describe(
            source, f"unrecorded MTU(s) {', '.join(map(repr, unknown))} are not in the model "
            f"(NMS inputs {paths[0]} list {', '.join(names)})",
            "spell models.<model>.unrecorded exactly like the MTU names of the model"))
    no_emg = [m for m in names if m not in unrecorded and any(
        np.isnan(t.excitation[t.mtu_names.index(m)]).all() for t in trials if m in t.mtu_names)]
    if no_emg:
        log.info("MTUs without EMG are synthesised by synergies too: %s", ", ".join(no_emg))
    unrec = tuple(m for m in names if m in set(unrecorded) or m in set(no_emg))
    filled = []
    for trial in trials:
        excitation = np.array(trial.excitation, dtype=float)
        for m in unrec:
            if m in trial.mtu_names:
                excitation[trial.mtu_names.index(m)] = 0.0
        filled.append(dataclasses.replace(trial, excitation=excitation))
    batch = batch_trials(filled, [str(p) for p in paths], mtu_names=names)
    labels = tuple(trial_label(p, t.meta) for p, t in zip(paths, trials, strict=True))
    return dataclasses.replace(batch, trial_names=labels), unrec


def synthesis_correlations(synthesised: np.ndarray, batch: TrialBatch,
                           unrecorded: Sequence[str], truth_trials: Mapping[str, Any],
                           ) -> dict[str, dict[str, float]]:
    """Pearson r of synthesised vs true excitations per trial and MTU (truth.json layout)."""
    out: dict[str, dict[str, float]] = {}
    for k, trial in enumerate(batch.trial_names):
        entry = truth_trials.get(trial)
        if not entry:
            continue
        t_true = np.asarray(entry["time_s"], dtype=float)
        n = len(batch.time_s[k])
        for j, mtu in enumerate(unrecorded):
            true = entry.get("excitations", {}).get(mtu)
            if true is None:
                continue
            resampled = np.interp(batch.time_s[k], t_true, np.asarray(true, dtype=float))
            synth = synthesised[k, j, :n]
            if np.std(synth) > 0 and np.std(resampled) > 0:
                out.setdefault(trial, {})[mtu] = float(np.corrcoef(synth, resampled)[0, 1])
    return out


def _write_trial_signals(out_dir: Path, batch: TrialBatch, synthesised: np.ndarray,
                         primitives: np.ndarray, unrecorded: Sequence[str]) -> None:
    for k, trial in enumerate(batch.trial_names):
        n = len(batch.time_s[k])
        time_s = np.asarray(batch.time_s[k])
        write_sto(out_dir / trial / "synthesised_excitations.sto",
                  StoTable(time_s, tuple(unrecorded), synthesised[k, :, :n].T,
                           name=f"{trial}_synthesised_excitations"))
        write_sto(out_dir / trial / "primitives.sto",
                  StoTable(time_s, tuple(f"synergy{s + 1}" for s in range(primitives.shape[1])),
                           primitives[k, :, :n].T, name=f"{trial}_primitives"))


def _synergy_summary(result: HybridResult, options: HybridOptions) -> dict[str, Any]:
    syn = result.initial_synergies
    return {
        "n_synergies": result.n_synergies,
        "vaf": syn.vaf,
        "vaf_by_n_synergies": {str(k): v for k, v in syn.vaf_by_n_synergies.items()},
        "vaf_per_muscle": dict(zip(syn.muscle_names, map(float, syn.vaf_per_muscle),
                                   strict=True)),
        "recorded": list(result.recorded),
        "unrecorded": list(result.unrecorded),
        "weightings": {m: [float(v) for v in result.weightings[i]]
                       for i, m in enumerate(result.mtu_names)},
        "reconstruction_weight": options.reconstruction_weight,
        "synthesis_weight": options.synthesis_weight,
        "penalty_weight": options.penalty_weight,
        "loss_terms": result.loss_terms,
    }


def run_synergy_hybrid(
    *,
    inputs: Sequence[str | Path],
    validation_inputs: Sequence[str | Path],
    out_dir: str | Path,
    config: Mapping[str, Any],
    unrecorded: Sequence[str],
    scaled_osim: str | Path | None = None,
    muscles: MuscleProperties | None = None,
    truth_trials: Mapping[str, Any] | None = None,
    seed: int | None = None,
    subject: str | None = None,
    max_iterations: int | None = None,
    progress: bool = False,
) -> dict[str, Any]:
    """Calibrate, validate and write every output (module docstring); return ``metrics.json``.

    ``config`` is the merged study config (``calibration:`` and ``synergies:`` are used).
    Muscle properties come from ``scaled_osim`` (which also receives the calibrated copy) or, for
    tests without OpenSim models, from ``muscles``.
    """
    out_dir = Path(out_dir)
    calibration = dict(config.get("calibration", {}))
    seed = int(calibration.get("seed", 0) if seed is None else seed)
    batch, unrec = load_hybrid_trials(inputs, unrecorded=unrecorded)
    if scaled_osim is not None:
        muscles = read_muscle_properties(scaled_osim, batch.mtu_names)
    if muscles is None:
        raise ValueError("give scaled_osim or muscles")
    muscles = muscles.subset(batch.mtu_names)
    spec = build_spec(muscles, calibration)
    objective = make_objective(spec, batch, calibration)
    overrides = {} if max_iterations is None else {"adamw_iterations": int(max_iterations)}
    options = HybridOptions.from_config(config.get("synergies", {}), seed=seed, **overrides)
    gradient_options = options.gradient_options(calibration.get("optimiser", {}),
                                                progress=progress)
    result = calibrate_synergy_hybrid(objective, unrecorded=unrec, options=options,
                                      gradient_options=gradient_options)
    cal_filled = dataclasses.replace(batch, excitation=torch.as_tensor(
        np.where(np.isin(batch.mtu_names, unrec)[None, :, None],
                 np.einsum("ms,tsn->tmn", result.weightings, result.primitives).clip(0.0, 1.0),
                 batch.excitation.numpy())))
    cal_metrics, cal_output = evaluate(objective, result.p, cal_filled)
    unrec_idx = [batch.mtu_names.index(m) for m in unrec]
    cal_synth = cal_filled.excitation.numpy()[:, unrec_idx]
    execution_dir = out_dir / "execution"
    write_execution(execution_dir, cal_filled, cal_output)
    _write_trial_signals(execution_dir, cal_filled, cal_synth, result.primitives, unrec)

    val_metrics: dict[str, Any] = {"trials": {}, "mean_rmse_nm": None, "mean_r2": None}
    val: SynthesisedTrials | None = None
    if validation_inputs:
        val_batch, _ = load_hybrid_trials(validation_inputs, unrecorded=unrec)
        val_batch = val_batch.select_mtus(batch.mtu_names)
        val = synthesise_unrecorded(val_batch, result.weightings, unrecorded=unrec)
        val_metrics, val_output = evaluate(objective, result.p, val.batch)
        write_execution(execution_dir, val.batch, val_output)
        _write_trial_signals(execution_dir, val.batch, val.synthesised, val.primitives, unrec)
    synthesis: dict[str, Any] = {
        "unrecorded": list(unrec),
        "validation_method": "nnls primitives on recorded channels, weightings fixed",
        "validation_reconstruction_vaf": (dict(zip(val.batch.trial_names,
                                                   val.reconstruction_vaf, strict=True))
                                          if val else {}),
    }
    if truth_trials is not None:
        r = synthesis_correlations(cal_synth, cal_filled, unrec, truth_trials)
        if val is not None:
            r.update(synthesis_correlations(val.synthesised, val.batch, unrec, truth_trials))
        synthesis["r_vs_truth"] = r
    metrics = {"method": METHOD, "subject": subject, "tendon": objective.tendon,
               "n_validation_trials": len(validation_inputs), **val_metrics,
               "dof_names": list(batch.dof_names), "calibration": cal_metrics,
               "synthesis": synthesis,
               "generalisation": generalisation_block(
                   cal_metrics, val_metrics, label=f"subject {subject}, method {METHOD}",
                   hint=f"here the held-out trials also run on excitations synthesised for "
                   f"{', '.join(unrec)}: see metrics.json's synthesis entry, compare with "
                   "another method's validation, and record EMG for those MTUs where you can")}

    record = provenance(config, seed=seed, inputs=[*([scaled_osim] if scaled_osim else []),
                                                   *inputs, *validation_inputs])
    metrics["provenance"] = record
    document = parameters_document(
        spec, result.p, method=METHOD, tendon=objective.tendon, provenance=record,
        emd_s=objective.emd_s, loss=result.loss_terms, wall_s=result.gradient.wall_s,
        iterations=result.gradient.iterations, stopped=result.gradient.stopped,
        subject=subject, dof_names=list(batch.dof_names),
        calibration_trials=list(batch.trial_names), calibration_fit=cal_metrics,
        synergies=_synergy_summary(result, options))
    log_at_bound(document)
    write_parameters(out_dir / "parameters.json", document)
    write_json_atomic(out_dir / "metrics.json", metrics)
    write_text_atomic(out_dir / "history.tsv", history_tsv(result.gradient.history))
    plot_synergies(result.weightings,
                   [result.primitives[k, :, :len(t)] for k, t in enumerate(batch.time_s)],
                   out_dir / "synergies.png", muscle_names=batch.mtu_names,
                   trial_names=batch.trial_names, time_s=batch.time_s, unrecorded=unrec,
                   title=f"Synergy-hybrid calibration ({result.n_synergies} synergies)")
    if scaled_osim is not None:
        per_mtu = {m: {"optimal_fiber_length_m": e["optimal_fiber_length_m"]["value"],
                       "tendon_slack_length_m": e["tendon_slack_length_m"]["value"],
                       "max_isometric_force_n": e["max_isometric_force_n"]["value"],
                       "damping": e["damping"]["value"]}
                   for m, e in document["mtus"].items()}
        write_calibrated_osim(scaled_osim, out_dir / "calibrated.osim", per_mtu)
    log.info("synergy-hybrid: validation mean RMSE %s N*m, mean R2 %s; wrote %s",
             _fmt(val_metrics["mean_rmse_nm"]), _fmt(val_metrics["mean_r2"]), out_dir)
    return metrics


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4g}"


def read_truth_trials(path: str | Path, subject: str) -> dict[str, Any]:
    """``subjects.<subject>.trials`` of a demo ``truth.json`` (empty when absent)."""
    data = json.loads(Path(path).read_text(encoding="utf-8"))
    return data.get("subjects", {}).get(subject, {}).get("trials", {})
