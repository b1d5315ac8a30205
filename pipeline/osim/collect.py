"""Collect one trial's NMS inputs (:mod:`pipeline.io.nms_inputs`) on one time base.

The time base is the muscle analysis' (the IK frames), windowed to the trial's cycles. EMG
envelopes (``emg.sto``, columns = EMG names) are interpolated onto it and mapped to MTUs by a
weighted sum (``models.<model>.excitations``: MTU -> {EMG name: weight}; an MTU with no EMG gets a
NaN row). ID moments (``<coord>_moment`` or ``<coord>_force``) are interpolated onto it too.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.errors import ConfigError, IDError, MuscleAnalysisError, describe
from pipeline.io.nms_inputs import NMSTrial
from pipeline.io.opensim_files import StoTable, read_sto
from pipeline.osim.muscle_analysis import read_muscle_analysis

log = logging.getLogger(__name__)

#: EMG kept from before the window for the electromechanical delay (calibration.emd_s <= 0.2 s).
LEAD_S = 0.2


def analysis_window(events_path: str | Path | None, *, start_s: float | None = None,
                    end_s: float | None = None) -> tuple[float, float] | None:
    """The span [first start, last end] of the cycles in ``events.json`` (``{"windows":
    [[t0, t1], ...]}``); else the trial's ``start_s``/``end_s``; else None (all data)."""
    if events_path is not None and Path(events_path).is_file():
        try:
            windows = json.loads(Path(events_path).read_text(encoding="utf-8")).get("windows")
        except (json.JSONDecodeError, AttributeError) as exc:
            raise ConfigError(describe(events_path, f"not a valid events file ({exc})",
                                       "rerun the events step")) from exc
        if windows:
            spans = np.asarray(windows, dtype=float).reshape(-1, 2)
            return float(spans[:, 0].min()), float(spans[:, 1].max())
    if start_s is not None and end_s is not None:
        return float(start_s), float(end_s)
    return None


def _interp(time_s: np.ndarray, source_t: np.ndarray, values: np.ndarray) -> np.ndarray:
    return np.interp(time_s, source_t, values, left=np.nan, right=np.nan)


def collect_nms_trial(
    emg_path: str | Path,
    id_path: str | Path,
    muscle_analysis_dir: str | Path,
    *,
    excitations: Mapping[str, Mapping[str, float]],
    dofs: Sequence[str],
    window_s: tuple[float, float] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> NMSTrial:
    """Assemble one trial's :class:`~pipeline.io.nms_inputs.NMSTrial`."""
    emg_path, id_path = Path(emg_path), Path(id_path)
    mtus = tuple(excitations)
    geometry = read_muscle_analysis(muscle_analysis_dir, coordinate_names=dofs)
    missing = [m for m in mtus if m not in geometry.mtu_names]
    if missing:
        raise MuscleAnalysisError(describe(
            muscle_analysis_dir, f"MTUs {', '.join(missing)} were not analysed",
            "rerun the muscle-analysis step after changing models.<model>.excitations"))
    rows = [geometry.mtu_names.index(m) for m in mtus]
    time_s = geometry.time_s
    if window_s is not None:
        keep = (time_s >= window_s[0] - 1e-9) & (time_s <= window_s[1] + 1e-9)
        if keep.sum() < 2:
            raise MuscleAnalysisError(describe(
                muscle_analysis_dir, f"fewer than 2 frames inside the window "
                f"[{window_s[0]:.3f}, {window_s[1]:.3f}] s (kinematics span "
                f"[{time_s[0]:.3f}, {time_s[-1]:.3f}] s)",
                "check the trial's events or start_s/end_s against its IK time range"))
    else:
        keep = np.ones(len(time_s), dtype=bool)
    time_s = time_s[keep]
    lengths = geometry.mtu_length_m[rows][:, keep]
    arms = geometry.moment_arm_m[rows][:, :, keep]

    emg = read_sto(emg_path, error_cls=ConfigError, fix="rerun the C3D/EMG stage",
                   require_rows=True, state_values=True)
    excitation = _mapped_excitation(emg, emg_path, time_s, excitations)
    # EMG recorded before the window (up to LEAD_S, on the same time step) for the delay.
    step = float(np.median(np.diff(time_s))) if len(time_s) > 1 else 0.0
    n_lead = int(np.floor(LEAD_S / step + 1e-9)) if step > 0 else 0
    lead_t = time_s[0] - step * np.arange(n_lead, 0, -1)
    lead_t = lead_t[lead_t >= emg.time_s[0] - 1e-9]
    before = _mapped_excitation(emg, emg_path, lead_t, excitations)
    if np.isnan(excitation[[bool(excitations[m]) for m in mtus]]).any():
        raise ConfigError(describe(
            emg_path, f"EMG covers [{emg.time_s[0]:.3f}, {emg.time_s[-1]:.3f}] s, not the "
            f"whole window [{time_s[0]:.3f}, {time_s[-1]:.3f}] s",
            "check the trial's events or start_s/end_s"))
    above = np.nanmax(excitation, initial=0.0)
    if above > 1.01:
        log.warning("%s: mapped excitations reach %.3f > 1; clipped to [0, 1] (check the "
                    "weights and MVC normalisation)", emg_path, above)
    excitation = np.where(np.isnan(excitation), np.nan, np.clip(excitation, 0.0, 1.0))
    before = np.where(np.isnan(before), np.nan, np.clip(before, 0.0, 1.0))

    inverse = read_sto(id_path, error_cls=IDError, fix="rerun the ID step", require_rows=True,
                       state_values=True)
    moments = np.empty((len(dofs), len(time_s)))
    for j, dof in enumerate(dofs):
        label = next((c for c in (f"{dof}_moment", f"{dof}_force") if c in inverse.labels), None)
        if label is None:
            raise IDError(describe(id_path, f"no column {dof}_moment or {dof}_force",
                                   "correct models.<model>.dofs to coordinates of the model"))
        moments[j] = _interp(time_s, inverse.time_s, inverse.column(label))
    if np.isnan(moments).any():
        raise IDError(describe(id_path, f"ID covers [{inverse.time_s[0]:.3f}, "
                               f"{inverse.time_s[-1]:.3f}] s, not the whole window "
                               f"[{time_s[0]:.3f}, {time_s[-1]:.3f}] s",
                               "rerun ID over the trial's full time range"))
    full_meta = {
        **(meta or {}),
        "window_s": [float(time_s[0]), float(time_s[-1])],
        "emg_before_window_s": float(before.shape[1] * step),
        "excitation_mapping": {m: dict(excitations[m] or {}) for m in mtus},
        "sources": {"emg": str(emg_path), "id": str(id_path),
                    "muscle_analysis": str(muscle_analysis_dir)},
        "names": {"mtus": list(mtus), "dofs": list(dofs)},
    }
    return NMSTrial(time_s=time_s, mtu_names=mtus, dof_names=tuple(dofs),
                    excitation=excitation, mtu_length_m=lengths, moment_arm_m=arms,
                    id_moment_nm=moments, meta=full_meta, excitation_before=before)


def _mapped_excitation(emg: StoTable, emg_path: Path, time_s: np.ndarray,
                       excitations: Mapping[str, Mapping[str, float]]) -> np.ndarray:
    """``(muscle, time)`` weighted sums of EMG columns at ``time_s`` (NaN: no EMG mapped, or
    outside the recording)."""
    excitation = np.full((len(excitations), len(time_s)), np.nan)
    for i, (mtu, mapping) in enumerate(excitations.items()):
        if not mapping:
            continue
        total = np.zeros(len(time_s))
        for emg_name, weight in mapping.items():
            if emg_name not in emg.labels:
                raise ConfigError(describe(
                    emg_path, f"EMG {emg_name!r} (mapped to MTU {mtu}) is not a column "
                    f"(columns: {', '.join(emg.labels)})",
                    "correct models.<model>.excitations or models.<model>.emg_channels"))
            total += float(weight) * _interp(time_s, emg.time_s, emg.column(emg_name))
        excitation[i] = total
    return excitation
