"""Model outputs of trials that the workflow did not execute (the calibration trials).

``execute`` writes ``execution/<trial>/*.sto`` for validation trials only; to plot calibration
trials too, the figures run the calibrated model open-loop on their NMS inputs with the package's
own :mod:`pipeline.calibrate.execute` (no science here). Any failure is logged and the trials are
plotted without predictions.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from pipeline.plots.data import Signals

log = logging.getLogger(__name__)


def predict_trials(parameters: Mapping, nms_paths: Mapping[str, Path],
                   ) -> dict[str, dict[str, Signals]]:
    """{trial: {"predicted_moments", "forces", "activations", "fiber_lengths"}} (metres for
    fibre lengths), or {} when the model cannot be run on these inputs."""
    if not nms_paths or not parameters.get("mtus"):
        return {}
    try:
        import torch

        from pipeline.calibrate.execute import execute, muscle_parameters_from_document
        from pipeline.calibrate.problem import load_trials

        trials = list(nms_paths)
        batch = load_trials([nms_paths[t] for t in trials], mtu_names=list(parameters["mtus"]))
        params = muscle_parameters_from_document(parameters, batch.mtu_names)
        output = execute(params, batch, tendon=str(parameters.get("tendon", "elastic")),
                         emd_s=float(parameters.get("emd_s", 0.015)),
                         objective=parameters.get("objective"))
    except Exception as exc:  # noqa: BLE001 - figures must not fail on a model problem
        log.warning("could not run the calibrated model on %s (%s: %s); plotting them without "
                    "predictions", ", ".join(nms_paths), type(exc).__name__, exc)
        return {}
    out: dict[str, dict[str, Signals]] = {}
    with torch.no_grad():
        for k, trial in enumerate(trials):
            time_s = np.asarray(batch.time_s[k], dtype=float)
            n = len(time_s)

            def cut(tensor: torch.Tensor, k: int = k, n: int = n) -> np.ndarray:
                return tensor[k, :, :n].detach().cpu().numpy()

            out[trial] = {
                "predicted_moments": Signals(time_s, tuple(batch.dof_names),
                                             cut(output.moments_nm)),
                "forces": Signals(time_s, tuple(batch.mtu_names), cut(output.force_n)),
                "activations": Signals(time_s, tuple(batch.mtu_names), cut(output.activation)),
                "fiber_lengths": Signals(time_s, tuple(batch.mtu_names),
                                         cut(output.fiber_length_m)),
            }
    log.info("ran the calibrated model on %d trial(s) without execution files: %s", len(out),
             ", ".join(out))
    return out
