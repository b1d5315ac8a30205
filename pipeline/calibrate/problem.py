"""Calibration data: per-trial NMS inputs checked and batched into ``(trial, ...)`` tensors.

Trials of different lengths are padded to the longest by holding their last sample; a
``(trial, time)`` mask keeps the padding out of every loss and metric. MTUs whose excitation row is
NaN (no EMG mapped) are left out of the model, as in paper 002 (only MTUs with a recorded EMG
mapping are modelled), with a warning.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from pipeline.errors import CalibrationError, describe
from pipeline.io.nms_inputs import NMSTrial, read_nms_trial

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrialBatch:
    """Trials on one time step. Shapes: signals ``(trial, muscle, time)``, moment arms
    ``(trial, muscle, dof, time)``, ID moments ``(trial, dof, time)``, mask ``(trial, time)``."""

    trial_names: tuple[str, ...]
    mtu_names: tuple[str, ...]
    dof_names: tuple[str, ...]
    excitation: torch.Tensor
    mtu_length_m: torch.Tensor
    moment_arm_m: torch.Tensor
    id_moment_nm: torch.Tensor
    mask: torch.Tensor
    dt_s: float
    time_s: tuple[np.ndarray, ...]
    #: ``(trial, muscle, n_before)`` excitations recorded just before each trial's window (for
    #: the electromechanical delay); NaN where the recording has none. None: none at all.
    excitation_before: torch.Tensor | None = None

    @property
    def n_trials(self) -> int:
        return len(self.trial_names)

    def select_mtus(self, names: Sequence[str]) -> TrialBatch:
        idx = [self.mtu_names.index(n) for n in names]
        before = None if self.excitation_before is None else self.excitation_before[:, idx]
        return TrialBatch(self.trial_names, tuple(names), self.dof_names, self.excitation[:, idx],
                          self.mtu_length_m[:, idx], self.moment_arm_m[:, idx],
                          self.id_moment_nm, self.mask, self.dt_s, self.time_s, before)

    def select_dofs(self, names: Sequence[str]) -> TrialBatch:
        """The same trials with only the DOFs ``names`` (e.g. the tracked ones)."""
        idx = [self.dof_names.index(n) for n in names]
        return dataclasses.replace(self, dof_names=tuple(names),
                                   moment_arm_m=self.moment_arm_m[:, :, idx],
                                   id_moment_nm=self.id_moment_nm[:, idx])

    def to(self, device: str | torch.device) -> TrialBatch:
        """A copy with every tensor on ``device`` (e.g. ``cuda``)."""
        moved = {k: getattr(self, k).to(device) for k in (
            "excitation", "mtu_length_m", "moment_arm_m", "id_moment_nm", "mask")}
        if self.excitation_before is not None:
            moved["excitation_before"] = self.excitation_before.to(device)
        return dataclasses.replace(self, **moved)

    def lengths(self) -> list[int]:
        return [len(t) for t in self.time_s]


def batch_from_arrays(*, excitation: np.ndarray | torch.Tensor,
                      mtu_length_m: np.ndarray | torch.Tensor,
                      moment_arm_m: np.ndarray | torch.Tensor,
                      id_moment_nm: np.ndarray | torch.Tensor, dt_s: float,
                      mtu_names: Sequence[str] | None = None,
                      dof_names: Sequence[str] | None = None,
                      trial_names: Sequence[str] | None = None) -> TrialBatch:
    """Batch equal-length arrays (``(trial, muscle, time)`` etc.), e.g. a synthetic problem."""
    def t(x: np.ndarray | torch.Tensor) -> torch.Tensor:
        return torch.as_tensor(x, dtype=torch.float64).detach().clone()

    exc = t(excitation)
    n_trials, n_mtus, n_time = exc.shape
    n_dofs = int(np.shape(id_moment_nm)[1])
    mtu_names = tuple(mtu_names or (f"mtu{i}" for i in range(n_mtus)))
    dof_names = tuple(dof_names or (f"dof{i}" for i in range(n_dofs)))
    trial_names = tuple(trial_names or (f"trial{i}" for i in range(n_trials)))
    time_s = tuple(np.arange(n_time) * dt_s for _ in range(n_trials))
    batch = TrialBatch(trial_names, mtu_names, dof_names, exc, t(mtu_length_m), t(moment_arm_m),
                       t(id_moment_nm), torch.ones(n_trials, n_time, dtype=torch.bool),
                       float(dt_s), time_s)
    check_batch(batch)
    return batch


def load_trials(paths: Sequence[str | Path], *, mtu_names: Sequence[str] | None = None,
                ) -> TrialBatch:
    """Read NMS input files, check them, and batch them (see module docstring)."""
    if not paths:
        raise CalibrationError(describe(None, "no NMS input files were given",
                                        "pass at least one calibration trial with --inputs"))
    trials = [read_nms_trial(p) for p in paths]
    return batch_trials(trials, [str(p) for p in paths], mtu_names=mtu_names)


def batch_trials(trials: Sequence[NMSTrial], names: Sequence[str], *,
                 mtu_names: Sequence[str] | None = None) -> TrialBatch:
    first = trials[0]
    for trial, name in zip(trials[1:], names[1:], strict=True):
        if trial.dof_names != first.dof_names or set(trial.mtu_names) != set(first.mtu_names):
            raise CalibrationError(describe(
                name, f"its MTUs/DOFs {trial.mtu_names}/{trial.dof_names} differ from "
                f"{names[0]}'s {first.mtu_names}/{first.dof_names}",
                "collect every trial of a subject with the same model setup"))
    dts = [float(np.median(np.diff(t.time_s))) for t in trials]
    if max(dts) - min(dts) > 1e-6 * max(dts):
        raise CalibrationError(describe(names[int(np.argmax(dts))], f"sample interval {max(dts)} "
                                        f"s differs from {min(dts)} s in another trial",
                                        "resample all trials to one rate in the collect step"))
    if mtu_names is None:
        missing = [m for i, m in enumerate(first.mtu_names)
                   if any(np.isnan(t.excitation[t.mtu_names.index(m)]).all() for t in trials)]
        if missing:
            log.warning("MTUs without a mapped EMG are left out of the model: %s",
                        ", ".join(missing))
        mtu_names = [m for m in first.mtu_names if m not in missing]
    mtu_names = tuple(mtu_names)
    n_time = max(len(t.time_s) for t in trials)
    arrays: dict[str, list[np.ndarray]] = {"excitation": [], "mtu_length_m": [],
                                           "moment_arm_m": [], "id_moment_nm": []}
    mask = np.zeros((len(trials), n_time), dtype=bool)
    for k, (trial, name) in enumerate(zip(trials, names, strict=True)):
        idx = [trial.mtu_names.index(m) for m in mtu_names]
        excitation = np.asarray(trial.excitation, dtype=float)[idx]
        if not np.all(np.isfinite(excitation)):
            raise CalibrationError(describe(name, "excitations contain NaN or infinite samples",
                                            "fill EMG gaps in preprocessing or drop that MTU"))
        if not np.any(excitation > 0.0):
            raise CalibrationError(describe(
                name, "all EMG excitations are zero in this trial",
                "check the EMG channels and their MVC normalisation, or set role none for the "
                "trial in trials.tsv"))
        n = len(trial.time_s)
        mask[k, :n] = True
        for key, value in (("excitation", excitation),
                           ("mtu_length_m", np.asarray(trial.mtu_length_m)[idx]),
                           ("moment_arm_m", np.asarray(trial.moment_arm_m)[idx]),
                           ("id_moment_nm", np.asarray(trial.id_moment_nm))):
            pad = [(0, 0)] * (value.ndim - 1) + [(0, n_time - n)]
            arrays[key].append(np.pad(value, pad, mode="edge"))
    signals = {key: torch.as_tensor(np.stack(value), dtype=torch.float64)
               for key, value in arrays.items()}
    batch = TrialBatch(
        trial_names=tuple(names), mtu_names=mtu_names, dof_names=first.dof_names,
        excitation=signals["excitation"], mtu_length_m=signals["mtu_length_m"],
        moment_arm_m=signals["moment_arm_m"], id_moment_nm=signals["id_moment_nm"],
        mask=torch.as_tensor(mask), dt_s=float(np.mean(dts)),
        time_s=tuple(np.asarray(t.time_s) for t in trials),
        excitation_before=_before(trials, mtu_names))
    check_batch(batch)
    return batch


def _before(trials: Sequence[NMSTrial], mtu_names: Sequence[str]) -> torch.Tensor | None:
    """``(trial, muscle, n_before)`` EMG before each window, NaN-padded at the front to the
    longest (NaN: not recorded; the delay then holds the window's first sample)."""
    leads = [t.excitation_before for t in trials]
    n_before = max((0 if b is None else b.shape[1]) for b in leads)
    if n_before == 0:
        return None
    out = np.full((len(trials), len(mtu_names), n_before), np.nan)
    for k, (trial, lead) in enumerate(zip(trials, leads, strict=True)):
        if lead is None or lead.shape[1] == 0:
            continue
        idx = [trial.mtu_names.index(m) for m in mtu_names]
        out[k, :, n_before - lead.shape[1]:] = np.asarray(lead, dtype=float)[idx]
    return torch.as_tensor(out, dtype=torch.float64)


def check_batch(batch: TrialBatch) -> None:
    """Refuse DOFs no MTU crosses, non-finite signals and all-zero excitation trials."""
    arms = batch.moment_arm_m.abs().amax(dim=(0, 1, 3))
    for d, dof in enumerate(batch.dof_names):
        if float(arms[d]) == 0.0:
            raise CalibrationError(describe(
                ", ".join(batch.trial_names),
                f"no calibrated MTU crosses DOF {dof!r} (all moment arms are zero)",
                f"remove {dof} from the model's dofs in config.yaml, or map an EMG channel to a "
                "muscle that crosses it"))
    for k, name in enumerate(batch.trial_names):
        for key in ("excitation", "mtu_length_m", "moment_arm_m", "id_moment_nm"):
            if not bool(torch.isfinite(getattr(batch, key)[k]).all()):
                raise CalibrationError(describe(name, f"{key} contains NaN or infinite values",
                                                "rerun the collect step; check the OpenSim "
                                                "outputs of this trial"))
        if not bool((batch.excitation[k] > 0.0).any()):
            raise CalibrationError(describe(
                name, "all EMG excitations are zero in this trial",
                "check the EMG channels and their MVC normalisation, or set role none for the "
                "trial in trials.tsv"))
