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

import logging
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import Any

import numpy as np
import torch

from pipeline.errors import ConfigError, describe

log = logging.getLogger(__name__)

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
    #: ``(entry,)`` which entries are calibrated (default: all when ``calibrated``). Entries of
    #: MTUs left out of ``calibrated_mtus`` keep their initial values.
    free: np.ndarray | None = None

    @cached_property
    def free_mask(self) -> np.ndarray:
        """``(entry,)`` bool, read-only (computed once: every model evaluation reads it)."""
        if self.free is None:
            mask = np.full(len(self.entry_names), self.calibrated)
        else:
            mask = np.asarray(self.free, dtype=bool) & self.calibrated
        mask.setflags(write=False)
        return mask


@dataclass(frozen=True)
class ParameterSpec:
    """All parameter blocks plus the layout of the free-parameter vector."""

    muscles: MuscleProperties
    blocks: dict[str, ParameterBlock]
    groups: dict[str, tuple[str, ...]]

    @property
    def mtu_names(self) -> tuple[str, ...]:
        return self.muscles.mtu_names

    @cached_property
    def free_kinds(self) -> tuple[str, ...]:
        return tuple(k for k in KINDS if self.blocks[k].free_mask.any())

    def _free(self, attr: str) -> np.ndarray:
        # A spec is immutable: each vector is built once and handed out as a copy (callers may
        # write into it). Annealing asks for the bounds on every evaluation.
        cache = self._free_vectors
        if attr not in cache:
            parts = [getattr(self.blocks[k], attr)[self.blocks[k].free_mask]
                     for k in self.free_kinds]
            cache[attr] = np.concatenate(parts) if parts else np.zeros(0)
        return cache[attr].copy()

    @cached_property
    def _free_vectors(self) -> dict[str, np.ndarray]:
        return {}

    @property
    def lower(self) -> np.ndarray:
        return self._free("lower")

    @property
    def upper(self) -> np.ndarray:
        return self._free("upper")

    @property
    def initial(self) -> np.ndarray:
        return self._free("initial")

    @cached_property
    def n_free(self) -> int:
        return int(sum(self.blocks[k].free_mask.sum() for k in self.free_kinds))

    @property
    def labels(self) -> list[tuple[str, str]]:
        """``(kind, entry)`` of each free parameter, in vector order."""
        return [(k, e) for k in self.free_kinds
                for e, free in zip(self.blocks[k].entry_names, self.blocks[k].free_mask,
                                   strict=True) if free]

    def slices(self) -> dict[str, slice]:
        return dict(self._slices)

    @cached_property
    def _slices(self) -> dict[str, slice]:
        out, start = {}, 0
        for kind in self.free_kinds:
            n = int(self.blocks[kind].free_mask.sum())
            out[kind] = slice(start, start + n)
            start += n
        return out

    def with_initial(self, values: np.ndarray) -> ParameterSpec:
        """A copy whose free initial values are ``values`` (clipped just inside the bounds)."""
        values = np.asarray(values, dtype=float)
        blocks = dict(self.blocks)
        for kind, sl in self.slices().items():
            b = blocks[kind]
            free = b.free_mask
            span = (b.upper - b.lower)[free]
            init = b.initial.copy()
            init[free] = np.clip(values[sl], b.lower[free] + _EDGE * span,
                                 b.upper[free] - _EDGE * span)
            blocks[kind] = ParameterBlock(kind, b.entry_names, b.index, init, b.lower, b.upper,
                                          True, b.free)
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
        for kind, index, initial, where, part in self._expand_plan:
            values = torch.as_tensor(initial, dtype=p.dtype, device=p.device)
            if part is not None:
                if where is None:
                    values = p[part]
                else:
                    values = values.index_put((where.to(p.device),), p[part])
            out[kind] = values[index.to(p.device)]
        return out

    @cached_property
    def _expand_plan(self) -> tuple[tuple[Any, ...], ...]:
        """Per kind, what :meth:`expand` needs (computed once: it runs at every evaluation):
        ``(kind, index, initial, free entries (None: all), slice of p (None: fixed))``."""
        plan = []
        for kind in KINDS:
            b = self.blocks[kind]
            free = b.free_mask
            where = None
            if kind in self._slices and not free.all():
                where = torch.as_tensor(np.flatnonzero(free), dtype=torch.long)
            plan.append((kind, torch.as_tensor(b.index, dtype=torch.long),
                         np.array(b.initial, dtype=float), where, self._slices.get(kind)))
        return tuple(plan)

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


def build_spec(muscles: MuscleProperties, calibration: Mapping[str, Any], *,
               calibrated_mtus: Collection[str] | None = None,
               initial_values: Mapping[str, Mapping[str, float]] | None = None,
               ) -> ParameterSpec:
    """Build the spec from the merged ``calibration:`` config and the scaled model's muscles.

    Args:
        calibrated_mtus: MTUs whose parameters are calibrated (default all); the others keep
            their initial values (a shared strength group or ``global`` activation entry is
            split so they keep their own) but still produce force.
        initial_values: per-MTU initial values, ``{mtu: {key: value}}`` with the keys of
            :mod:`pipeline.calibrate.initial_values` (e.g. from a previous calibration); they
            replace the model's values and ``calibration.initial``. A shared entry starts at the
            mean of its MTUs' values.

    Raises:
        ConfigError: unknown kinds, missing bounds, ``lower >= upper`` or an initial value outside
            its bounds, for calibrated parameters only (each message names the parameter and the
            fix).
    """
    muscles = _with_model_values(muscles, initial_values or {})
    names = muscles.mtu_names
    n = len(names)
    calibrated = list(calibration.get("parameters", []))
    unknown = [k for k in calibrated if k not in KINDS]
    if unknown:
        raise ConfigError(describe("config.yaml", f"calibration.parameters: unknown {unknown}",
                                   f"use any of {', '.join(KINDS)}"))
    chosen = np.array([calibrated_mtus is None or m in calibrated_mtus for m in names])
    bounds = calibration.get("bounds", {})
    initial_cfg = {**DEFAULT_INITIAL, **calibration.get("initial", {})}
    sharing = calibration.get("activation_sharing", "per_muscle")
    group_names, group_index, groups = _group_index(names, calibration.get("groups", {}) or {})
    model_values = {"optimal_fiber_length": muscles.optimal_fiber_length_m,
                    "tendon_slack_length": muscles.tendon_slack_length_m}
    blocks: dict[str, ParameterBlock] = {}
    for kind in KINDS:
        per_mtu = (np.asarray(model_values[kind], dtype=float).copy() if kind in model_values
                   else _per_mtu_initial(kind, names, float(initial_cfg[kind]), initial_values))
        if kind in model_values:
            entry_names, index = names, np.arange(n)
        elif kind == "strength":
            entry_names, index = group_names, group_index
        elif sharing == "global":
            entry_names, index = ("global",), np.zeros(n, dtype=int)
        else:
            entry_names, index = names, np.arange(n)
        entry_names, index = _split_fixed(tuple(entry_names), np.asarray(index), names, chosen)
        initial = _entry_initial(kind, entry_names, index, per_mtu)
        free = np.array([bool(chosen[index == e].any()) for e in range(len(entry_names))])
        is_free = kind in calibrated and bool(free.any())
        lower, upper = _bounds_for(kind, bounds.get(kind), initial, required=is_free)
        if is_free:
            _check_initial(kind, tuple(e for e, f in zip(entry_names, free, strict=True) if f),
                           initial[free],
                           lower[free], upper[free])
            span = upper - lower
            inside = np.clip(initial, lower + _EDGE * span, upper - _EDGE * span)
            initial = np.where(free, inside, initial)
        blocks[kind] = ParameterBlock(kind, tuple(entry_names), np.asarray(index, dtype=int),
                                      initial, lower, upper, is_free,
                                      None if free.all() else free)
    return ParameterSpec(muscles, blocks, groups)


def _with_model_values(muscles: MuscleProperties,
                       values: Mapping[str, Mapping[str, float]]) -> MuscleProperties:
    """``muscles`` with per-MTU lengths and maximum isometric forces replaced by ``values``."""
    if not values:
        return muscles
    arrays = {"optimal_fiber_length_m": muscles.optimal_fiber_length_m.copy(),
              "tendon_slack_length_m": muscles.tendon_slack_length_m.copy(),
              "max_isometric_force_n": muscles.max_isometric_force_n.copy()}
    for i, name in enumerate(muscles.mtu_names):
        for key, array in arrays.items():
            if key in values.get(name, {}):
                array[i] = float(values[name][key])
    return MuscleProperties(muscles.mtu_names, arrays["optimal_fiber_length_m"],
                            arrays["tendon_slack_length_m"], arrays["max_isometric_force_n"],
                            muscles.pennation_angle_rad)


def _per_mtu_initial(kind: str, names: tuple[str, ...], default: float,
                     values: Mapping[str, Mapping[str, float]] | None) -> np.ndarray:
    return np.array([float((values or {}).get(m, {}).get(kind, default)) for m in names])


def _split_fixed(entry_names: tuple[str, ...], index: np.ndarray, names: tuple[str, ...],
                 chosen: np.ndarray) -> tuple[tuple[str, ...], np.ndarray]:
    """Give each uncalibrated MTU that shares an entry with a calibrated one its own entry."""
    entries, index = list(entry_names), index.copy()
    for e in range(len(entry_names)):
        members = np.flatnonzero(index == e)
        if chosen[members].any() and not chosen[members].all():
            for i in members[~chosen[members]]:
                index[i] = len(entries)
                entries.append(names[i])
    return tuple(entries), index


def _entry_initial(kind: str, entry_names: tuple[str, ...], index: np.ndarray,
                   per_mtu: np.ndarray) -> np.ndarray:
    """Initial value of each entry: the mean of its MTUs' values (warn when they differ)."""
    initial = np.empty(len(entry_names))
    for e, entry in enumerate(entry_names):
        members = per_mtu[index == e]
        initial[e] = float(members.mean())
        if np.ptp(members) > 1e-9 * max(1.0, abs(initial[e])):
            log.warning("%s of %r is shared by MTUs whose initial values differ (%.4g-%.4g); "
                        "it starts at their mean %.4g", kind, entry, members.min(),
                        members.max(), initial[e])
    return initial


def _bounds_for(kind: str, bound: Mapping[str, Any] | None, initial: np.ndarray, *,
                required: bool) -> tuple[np.ndarray, np.ndarray]:
    if bound is None or (not required and not float(bound["lower"]) < float(bound["upper"])):
        if required:
            raise ConfigError(describe(
                "config.yaml", f"calibration.parameters: {kind} has no bounds",
                f"add calibration.bounds.{kind}: {{lower, upper}}"))
        return initial.copy(), initial.copy()
    lower, upper = float(bound["lower"]), float(bound["upper"])
    if bound.get("relative", False) and lower <= 0 and not required:
        return initial.copy(), initial.copy()
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
