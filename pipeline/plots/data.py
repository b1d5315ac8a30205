"""Plain data containers the figure functions take (no file access here)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np


@dataclass(frozen=True)
class Signals:
    """Named signals on one time base: ``values`` is (channel, time), ``time_s`` is (time,)."""

    time_s: np.ndarray
    names: tuple[str, ...]
    values: np.ndarray

    def __post_init__(self) -> None:
        shape = (len(self.names), len(self.time_s))
        if np.shape(self.values) != shape:
            raise ValueError(f"Signals.values has shape {np.shape(self.values)}, expected {shape}")

    def get(self, name: str) -> np.ndarray | None:
        """The signal called ``name``, or None when absent."""
        if name not in self.names:
            return None
        return np.asarray(self.values[self.names.index(name)], dtype=float)

    def column(self, name: str) -> np.ndarray:
        """The signal called ``name``, which must be present (see :meth:`get`)."""
        signal = self.get(name)
        if signal is None:
            raise KeyError(f"no signal {name!r} (have {', '.join(self.names)})")
        return signal

    def has_data(self, name: str) -> bool:
        signal = self.get(name)
        return signal is not None and bool(np.isfinite(signal).any())


@dataclass(frozen=True)
class TrialResult:
    """What one trial contributes to a subject's figures for one calibration method.

    ``role`` is calibration or validation. ``metrics`` maps DOF -> {"rmse_nm", "r2"} as read
    from metrics.json (empty when metrics.json has no entry for this trial). Every signal is
    optional: figures say so in the panel when one is missing.
    """

    name: str
    role: str
    id_moments: Signals | None = None
    predicted_moments: Signals | None = None
    excitations: Signals | None = None
    activations: Signals | None = None
    synthesised_excitations: Signals | None = None
    forces: Signals | None = None
    fiber_lengths: Signals | None = None
    metrics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodResult:
    """One calibration method's outputs for one subject (JSON as read, history as columns)."""

    method: str
    parameters: Mapping
    metrics: Mapping
    history: Mapping[str, np.ndarray] = field(default_factory=dict)
    trials: tuple[TrialResult, ...] = ()


@dataclass(frozen=True)
class TrialRecording:
    """Experimental data of one dynamic trial: IK marker errors and ground reaction forces."""

    name: str
    role: str
    marker_errors: Signals | None = None
    grf: Signals | None = None
