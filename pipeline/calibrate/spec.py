"""Which parameters are calibrated, how they are shared, their bounds and initial values.

A :class:`ParameterSpec` is built from the ``calibration:`` config section and the scaled model's
muscle properties (:class:`MuscleProperties`). Every parameter *kind* (``c1``, ``c2``,
``shape_factor``, ``optimal_fiber_length``, ``tendon_slack_length``, ``strength``, ``damping``) is a
:class:`ParameterBlock` of ``entries``; an index maps each MTU to its entry:

* ``optimal_fiber_length`` and ``tendon_slack_length``: one entry per MTU;
* ``strength``: one entry per group of ``calibration.groups`` (MTUs not listed: their own group);
* ``c1``, ``c2``, ``shape_factor``, ``damping``: one per MTU (``activation_sharing: per_muscle``) or
  one shared entry (``global``).

Kinds not listed in ``calibration.parameters`` stay fixed at their initial values. The free entries
form one physical vector ``p`` (``(n_free,)``, SI units) that the optimisers see either through the
bounded map ``p = lower + (upper - lower) sigmoid(z)`` (gradient calibration, unconstrained ``z``)
or normalised to ``x = (p - lower) / (upper - lower)`` in [0, 1] (simulated annealing, like CEINMS).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from pipeline.errors import ConfigError, describe

KINDS = ("c1", "c2", "shape_factor", "optimal_fiber_length", "tendon_slack_length", "strength",
         "damping")
#: CEINMS-like defaults for the kinds the model file does not hold.
DEFAULT_INITIAL = {"c1": -0.5, "c2": -0.5, "shape_factor": -1.0, "strength": 1.0, "damping": 0.01}
UNITS = {"c1": "1", "c2": "1", "shape_factor": "1", "optimal_fiber_length": "m",
         "tendon_slack_length": "m", "strength": "1", "damping": "1"}
#: Fraction of the bound range kept between an initial value and a bound (sigmoid map is open).
_EDGE = 1e-6


@dataclass(frozen=True)
class MuscleProperties:
    """The scaled model's properties of the calibrated MTUs, each ``(muscle,)`` in SI units."""

    mtu_names: tuple[str, ...]
    optimal_fiber_length_m: np.ndarray
    tendon_slack_length_m: np.ndarray
    max_isometric_force_n: np.ndarray
    pennation_angle_rad: np.ndarray

    def subset(self, names: tuple[str, ...]) -> MuscleProperties:
        idx = [self.mtu_names.index(n) for n in names]
        return MuscleProperties(names, self.optimal_fiber_length_m[idx],
                                self.tendon_slack_length_m[idx], self.max_isometric_force_n[idx],
                                self.pennation_angle_rad[idx])


@dataclass(frozen=True)
class ParameterBlock:
    """One parameter kind: ``entries`` values shared by MTUs through ``index`` (``(muscle,)``)."""

    kind: str
    entry_names: tuple[str, ...]
    index: np.ndarray
    initial: np.ndarray
    lower: np.ndarray
    upper: np.ndarray
    calibrated: bool


@dataclass(frozen=True)
class ParameterSpec:
    """All parameter blocks plus the layout of the free-parameter vector."""

    muscles: MuscleProperties
    blocks: dict[str, ParameterBlock]
    groups: dict[str, tuple[str, ...]]

    @property
    def mtu_names(self) -> tuple[str, ...]:
        return self.muscles.mtu_names

    @property
    def free_kinds(self) -> tuple[str, ...]:
        return tuple(k for k in KINDS if self.blocks[k].calibrated)

    def _free(self, attr: str) -> np.ndarray:
        parts = [getattr(self.blocks[k], attr) for k in self.free_kinds]
        return np.concatenate(parts) if parts else np.zeros(0)

    @property
    def lower(self) -> np.ndarray:
        return self._free("lower")

    @property
    def upper(self) -> np.ndarray:
        return self._free("upper")

    @property
    def initial(self) -> np.ndarray:
        return self._free("initial")

    @property
    def n_free(self) -> int:
        return int(sum(len(self.blocks[k].entry_names) for k in self.free_kinds))

    @property
    def labels(self) -> list[tuple[str, str]]:
        """``(kind, entry)`` of each free parameter, in vector order."""
        return [(k, e) for k in self.free_kinds for e in self.blocks[k].entry_names]

    def slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for kind in self.free_kinds:
            n = len(self.blocks[kind].entry_names)
            out[kind] = slice(start, start + n)
            start += n
        return out

    def with_initial(self, values: np.ndarray) -> ParameterSpec:
        """A copy whose free initial values are ``values`` (clipped just inside the bounds)."""
        values = np.asarray(values, dtype=float)
        blocks = dict(self.blocks)
        for kind, sl in self.slices().items():
            b = blocks[kind]
            span = b.upper - b.lower
            init = np.clip(values[sl], b.lower + _EDGE * span, b.upper - _EDGE * span)
            blocks[kind] = ParameterBlock(kind, b.entry_names, b.index, init, b.lower, b.upper,
                                          True)
        return ParameterSpec(self.muscles, blocks, self.groups)

    # --- maps between spaces --------------------------------------------------------------
    def to_physical(self, z: torch.Tensor) -> torch.Tensor:
        """Unconstrained ``z`` -> physical ``p`` (``(n_free,)``), strictly inside the bounds."""
        lo, hi = _bounds_like(self, z)
        return lo + (hi - lo) * torch.sigmoid(z)

    def to_unconstrained(self, p: np.ndarray | torch.Tensor) -> torch.Tensor:
        """Inverse of :meth:`to_physical` (values at a bound are moved just inside)."""
        p_t = torch.as_tensor(p, dtype=torch.float64)
        lo, hi = _bounds_like(self, p_t)
        unit = ((p_t - lo) / (hi - lo)).clamp(_EDGE, 1.0 - _EDGE)
        return torch.logit(unit)

    def normalise(self, p: np.ndarray) -> np.ndarray:
        return (np.asarray(p, dtype=float) - self.lower) / (self.upper - self.lower)

    def denormalise(self, x: np.ndarray) -> np.ndarray:
        return self.lower + (self.upper - self.lower) * np.asarray(x, dtype=float)

    def expand(self, p: torch.Tensor) -> dict[str, torch.Tensor]:
        """Free physical vector ``p`` -> per-MTU tensors ``{kind: (muscle,)}`` for every kind."""
        out: dict[str, torch.Tensor] = {}
        slices = self.slices()
        for kind in KINDS:
            b = self.blocks[kind]
            index = torch.as_tensor(b.index, dtype=torch.long, device=p.device)
            if kind in slices:
                values = p[slices[kind]]
            else:
                values = torch.as_tensor(b.initial, dtype=p.dtype, device=p.device)
            out[kind] = values[index]
        return out

    def per_mtu(self, p: np.ndarray) -> dict[str, np.ndarray]:
        """Like :meth:`expand` on numpy arrays."""
        with torch.no_grad():
            expanded = self.expand(torch.as_tensor(np.asarray(p, dtype=float)))
        return {k: v.numpy().copy() for k, v in expanded.items()}


def _bounds_like(spec: ParameterSpec, ref: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    lo = torch.as_tensor(spec.lower, dtype=ref.dtype, device=ref.device)
    hi = torch.as_tensor(spec.upper, dtype=ref.dtype, device=ref.device)
    return lo, hi


def _group_index(names: tuple[str, ...], groups: Mapping[str, Any],
                 ) -> tuple[tuple[str, ...], np.ndarray, dict[str, tuple[str, ...]]]:
    entry_names: list[str] = []
    index = np.full(len(names), -1, dtype=int)
    resolved: dict[str, tuple[str, ...]] = {}
    for group, members in groups.items():
        present = tuple(m for m in members if m in names)
        if not present:
            continue
        for m in present:
            if index[names.index(m)] >= 0:
                raise ConfigError(describe(
                    "config.yaml", f"calibration.groups: MTU {m!r} is in more than one group",
                    "list each MTU in at most one strength group"))
            index[names.index(m)] = len(entry_names)
        resolved[group] = present
        entry_names.append(group)
    for i, name in enumerate(names):
        if index[i] < 0:
            index[i] = len(entry_names)
            entry_names.append(name)
            resolved[name] = (name,)
    return tuple(entry_names), index, resolved


def build_spec(muscles: MuscleProperties, calibration: Mapping[str, Any]) -> ParameterSpec:
    """Build the spec from the merged ``calibration:`` config and the scaled model's muscles.

    Raises:
        ConfigError: unknown kinds, missing bounds, ``lower >= upper`` or an initial value outside
            its bounds (each message names the parameter and the fix).
    """
    names = muscles.mtu_names
    n = len(names)
    calibrated = list(calibration.get("parameters", []))
    unknown = [k for k in calibrated if k not in KINDS]
    if unknown:
        raise ConfigError(describe("config.yaml", f"calibration.parameters: unknown {unknown}",
                                   f"use any of {', '.join(KINDS)}"))
    bounds = calibration.get("bounds", {})
    initial_cfg = {**DEFAULT_INITIAL, **calibration.get("initial", {})}
    sharing = calibration.get("activation_sharing", "per_muscle")
    group_names, group_index, groups = _group_index(names, calibration.get("groups", {}) or {})
    model_values = {"optimal_fiber_length": muscles.optimal_fiber_length_m,
                    "tendon_slack_length": muscles.tendon_slack_length_m}
    blocks: dict[str, ParameterBlock] = {}
    for kind in KINDS:
        if kind in model_values:
            entry_names, index = names, np.arange(n)
            initial = np.asarray(model_values[kind], dtype=float).copy()
        elif kind == "strength":
            entry_names, index = group_names, group_index
            initial = np.full(len(group_names), float(initial_cfg[kind]))
        elif sharing == "global":
            entry_names, index = ("global",), np.zeros(n, dtype=int)
            initial = np.array([float(initial_cfg[kind])])
        else:
            entry_names, index = names, np.arange(n)
            initial = np.full(n, float(initial_cfg[kind]))
        is_free = kind in calibrated
        lower, upper = _bounds_for(kind, bounds.get(kind), initial, required=is_free)
        if is_free:
            _check_initial(kind, entry_names, initial, lower, upper)
            span = upper - lower
            initial = np.clip(initial, lower + _EDGE * span, upper - _EDGE * span)
        blocks[kind] = ParameterBlock(kind, tuple(entry_names), np.asarray(index, dtype=int),
                                      initial, lower, upper, is_free)
    return ParameterSpec(muscles, blocks, groups)


def _bounds_for(kind: str, bound: Mapping[str, Any] | None, initial: np.ndarray, *,
                required: bool) -> tuple[np.ndarray, np.ndarray]:
    if bound is None:
        if required:
            raise ConfigError(describe(
                "config.yaml", f"calibration.parameters: {kind} has no bounds",
                f"add calibration.bounds.{kind}: {{lower, upper}}"))
        return initial.copy(), initial.copy()
    lower, upper = float(bound["lower"]), float(bound["upper"])
    if lower >= upper:
        raise ConfigError(describe("config.yaml", f"calibration.bounds.{kind}: lower {lower} is "
                                   f"not below upper {upper}", "make lower < upper"))
    if bound.get("relative", False):
        if lower <= 0:
            raise ConfigError(describe("config.yaml", f"calibration.bounds.{kind}: a relative "
                                       f"lower bound must be > 0, got {lower}",
                                       "use fractions of the model value such as 0.85"))
        lo, hi = np.sort(np.stack([initial * lower, initial * upper]), axis=0)
        return lo, hi
    return np.full(len(initial), lower), np.full(len(initial), upper)


def _check_initial(kind: str, entry_names: tuple[str, ...], initial: np.ndarray,
                   lower: np.ndarray, upper: np.ndarray) -> None:
    outside = np.flatnonzero((initial < lower) | (initial > upper) | (lower >= upper))
    if outside.size:
        i = int(outside[0])
        raise ConfigError(describe(
            "config.yaml",
            f"calibration: initial {kind} of {entry_names[i]!r} = {initial[i]:.6g} lies outside "
            f"its bounds [{lower[i]:.6g}, {upper[i]:.6g}]",
            f"widen calibration.bounds.{kind} or change calibration.initial.{kind} (model-derived "
            "initial values come from the scaled .osim)"))
