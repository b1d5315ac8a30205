"""Between CEINMS subjects and the calibration's parameters.

* start a calibration from a subject: :func:`muscle_properties` (the model values CEINMS's
  ``relativeToSubjectValue`` bounds refer to) and :func:`apply_subject_values` (per-muscle
  activation parameters, strength and damping as the start point and fixed values);
* the same as per-MTU initial values for ``subjects.tsv``'s ``initial_parameters`` files:
  :func:`initial_values` (the ``.xml`` reader);
* evaluate a subject: :func:`muscle_parameters`;
* export a calibration: :func:`subject_from_document` (a ``parameters.json``) or
  :func:`subject_from_values`, with :func:`dofs_from_batch` for the DOFs each MTU spans.

Kinds use the project's names (``c1``, ``c2``, ``shape_factor``, ``optimal_fiber_length``,
``tendon_slack_length``, ``strength``, ``damping``; see :mod:`pipeline.calibrate.spec`).
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.calibrate.problem import TrialBatch
from pipeline.calibrate.spec import KINDS, MuscleProperties, ParameterSpec
from pipeline.errors import ConfigError, describe
from pipeline.interop.ceinms_curves import degroote_curves
from pipeline.interop.ceinms_subject import CeinmsMtu, CeinmsSubject, read_subject
from pipeline.nms import MuscleParameters, curves

log = logging.getLogger(__name__)

_EDGE = 1e-6


def _select(subject: CeinmsSubject, mtu_names: Sequence[str] | None, source: str | None,
            ) -> list[CeinmsMtu]:
    names = list(subject.mtu_names if mtu_names is None else mtu_names)
    missing = [n for n in names if n not in subject.mtu_names]
    if missing:
        raise ConfigError(describe(source, f"the CEINMS subject has no MTU(s) "
                                   f"{', '.join(missing)} used by the trials",
                                   "use the subject file of this model, or add the MTUs"))
    return [subject.mtu(n) for n in names]


def per_muscle_values(subject: CeinmsSubject) -> dict[str, dict[str, float]]:
    """``{mtu: {kind: value}}`` of every calibratable kind (damping: the MTU's, else the
    subject default)."""
    return {m.name: {"c1": m.c1, "c2": m.c2, "shape_factor": m.shape_factor,
                     "optimal_fiber_length": m.optimal_fiber_length_m,
                     "tendon_slack_length": m.tendon_slack_length_m,
                     "strength": m.strength_coefficient,
                     "damping": subject.damping if m.damping is None else m.damping}
            for m in subject.mtus}


def muscle_properties(subject: CeinmsSubject, mtu_names: Sequence[str] | None = None, *,
                      source: str | None = None) -> MuscleProperties:
    """The subject's fibre and tendon lengths, maximum isometric forces and pennation."""
    mtus = _select(subject, mtu_names, source)
    return MuscleProperties(
        tuple(m.name for m in mtus),
        np.array([m.optimal_fiber_length_m for m in mtus]),
        np.array([m.tendon_slack_length_m for m in mtus]),
        np.array([m.max_isometric_force_n for m in mtus]),
        np.array([m.pennation_angle_rad for m in mtus]))


def muscle_parameters(subject: CeinmsSubject, mtu_names: Sequence[str] | None = None, *,
                      source: str | None = None) -> MuscleParameters:
    """The subject as the model's :class:`~pipeline.nms.MuscleParameters` (float64)."""
    mtus = _select(subject, mtu_names, source)
    values = per_muscle_values(subject)
    t = lambda xs: torch.as_tensor(np.asarray(xs, dtype=float), dtype=torch.float64)  # noqa: E731
    kinds = {k: t([values[m.name][k] for m in mtus]) for k in KINDS}
    return MuscleParameters(
        c1=kinds["c1"], c2=kinds["c2"], shape_factor=kinds["shape_factor"],
        optimal_fiber_length_m=kinds["optimal_fiber_length"],
        tendon_slack_length_m=kinds["tendon_slack_length"], strength=kinds["strength"],
        damping=kinds["damping"], max_isometric_force_n=t([m.max_isometric_force_n for m in mtus]),
        pennation_at_optimal_rad=t([m.pennation_angle_rad for m in mtus]))


def apply_subject_values(spec: ParameterSpec, subject: CeinmsSubject,
                         calibration: Mapping[str, Any] | None = None, *,
                         source: str | None = None) -> ParameterSpec:
    """A copy of ``spec`` whose every kind starts from (or, when not calibrated, stays at) the
    subject's per-muscle values. Shared entries (strength groups, ``global``) take the mean of
    their MTUs' values (a warning when these differ). Relative bounds
    (``calibration.bounds.<kind>.relative``) are taken relative to the subject's values.

    Raises:
        ConfigError: a calibrated start value outside its bounds.
    """
    values = per_muscle_values(subject)
    bounds_cfg = (calibration or {}).get("bounds", {})
    blocks = {}
    for kind in KINDS:
        b = spec.blocks[kind]
        per_mtu = np.array([values[m][kind] for m in _names(spec, subject, source)])
        initial = np.empty(len(b.entry_names))
        for e, entry in enumerate(b.entry_names):
            members = per_mtu[b.index == e]
            initial[e] = float(members.mean())
            if np.ptp(members) > 1e-12 * max(1.0, abs(initial[e])):
                log.warning("CEINMS subject %s: %s differs between the MTUs sharing %r (%s); "
                            "starting from their mean %.6g", source or "", kind, entry,
                            ", ".join(f"{v:.6g}" for v in members), initial[e])
        lower, upper = b.lower.copy(), b.upper.copy()
        bound = bounds_cfg.get(kind) or {}
        free = getattr(b, "free_mask", np.full(len(b.entry_names), b.calibrated))
        if bound.get("relative", False):
            lower, upper = np.sort(np.stack([initial * float(bound["lower"]),
                                             initial * float(bound["upper"])]), axis=0)
        lower[~free], upper[~free] = initial[~free], initial[~free]
        if free.any():
            outside = np.flatnonzero(free & ((initial < lower) | (initial > upper)))
            if outside.size:
                i = int(outside[0])
                raise ConfigError(describe(
                    source, f"start value {kind} of {b.entry_names[i]!r} = {initial[i]:.6g} "
                    f"lies outside its bounds [{lower[i]:.6g}, {upper[i]:.6g}]",
                    f"widen calibration.bounds.{kind}, or fix the subject file"))
            span = upper - lower
            initial = np.where(free, np.clip(initial, lower + _EDGE * span,
                                             upper - _EDGE * span), initial)
        blocks[kind] = dataclasses.replace(b, initial=initial, lower=lower, upper=upper)
    return ParameterSpec(spec.muscles, blocks, spec.groups)


def initial_values(path: str | Path) -> dict[str, dict[str, float]]:
    """A CEINMS subject XML as per-MTU initial values ``{mtu: {key: value}}`` with the keys of
    :mod:`pipeline.calibrate.initial_values` (``optimal_fiber_length_m``,
    ``tendon_slack_length_m``, ``max_isometric_force_n``, ``strength``, ``c1``, ``c2``,
    ``shape_factor``, ``damping``): the reader for ``.xml`` initial-value files."""
    subject = read_subject(path)
    return {name: {"optimal_fiber_length_m": v["optimal_fiber_length"],
                   "tendon_slack_length_m": v["tendon_slack_length"],
                   "max_isometric_force_n": subject.mtu(name).max_isometric_force_n,
                   "strength": v["strength"], "c1": v["c1"], "c2": v["c2"],
                   "shape_factor": v["shape_factor"], "damping": v["damping"]}
            for name, v in per_muscle_values(subject).items()}


def _names(spec: ParameterSpec, subject: CeinmsSubject, source: str | None) -> list[str]:
    return [m.name for m in _select(subject, spec.mtu_names, source)]


def dofs_from_batch(batch: TrialBatch) -> dict[str, tuple[str, ...]]:
    """DOF -> the MTUs with a non-zero moment arm about it in any trial."""
    spans = batch.moment_arm_m.abs().amax(dim=(0, 3))  # (muscle, dof)
    return {dof: tuple(m for i, m in enumerate(batch.mtu_names) if float(spans[i, d]) > 0.0)
            for d, dof in enumerate(batch.dof_names)}


def subject_from_values(muscles: MuscleProperties, per_mtu: Mapping[str, np.ndarray],
                        dofs: Mapping[str, Sequence[str]], *, em_delay_s: float,
                        percentage_change: float = 0.15, default_damping: float = 0.1,
                        calibration_info: dict | None = None) -> CeinmsSubject:
    """A subject from per-MTU arrays ``{kind: (muscle,)}`` (as ``ParameterSpec.per_mtu``) and
    the model's properties; the curves are the project's (:func:`degroote_curves`)."""
    mtus = tuple(
        CeinmsMtu(name=name, c1=float(per_mtu["c1"][i]), c2=float(per_mtu["c2"][i]),
                  shape_factor=float(per_mtu["shape_factor"][i]),
                  optimal_fiber_length_m=float(per_mtu["optimal_fiber_length"][i]),
                  pennation_angle_rad=float(muscles.pennation_angle_rad[i]),
                  tendon_slack_length_m=float(per_mtu["tendon_slack_length"][i]),
                  max_isometric_force_n=float(muscles.max_isometric_force_n[i]),
                  strength_coefficient=float(per_mtu["strength"][i]),
                  max_contraction_velocity=curves.MAX_CONTRACTION_VELOCITY_PER_S,
                  damping=float(per_mtu["damping"][i]))
        for i, name in enumerate(muscles.mtu_names))
    info = calibration_info or {"uncalibrated": {"subject_id": "subject",
                                                 "additional_info": "written by pipeline"}}
    return CeinmsSubject(mtus=mtus, dofs={d: tuple(n) for d, n in dofs.items()},
                         em_delay_s=float(em_delay_s), percentage_change=float(percentage_change),
                         damping=float(default_damping), curves=degroote_curves(),
                         calibration_info=info)


def subject_from_document(document: Mapping[str, Any], dofs: Mapping[str, Sequence[str]], *,
                          start_subject_file: str = "", source: str | None = None,
                          ) -> CeinmsSubject:
    """The calibrated subject of a ``parameters.json`` document (``calibrationInfo``:
    calibrated, with the method as its calibration sequence)."""
    mtus = document.get("mtus") or {}
    if not mtus:
        raise ConfigError(describe(source, "has no calibrated MTUs ('mtus' is empty)",
                                   "pass the parameters.json written by the calibrate step"))
    names = tuple(mtus)
    keys = {"c1": "c1", "c2": "c2", "shape_factor": "shape_factor",
            "optimal_fiber_length": "optimal_fiber_length_m",
            "tendon_slack_length": "tendon_slack_length_m", "strength": "strength_coefficient",
            "damping": "damping"}
    try:
        per_mtu = {k: np.array([float(mtus[m][key]["value"]) for m in names])
                   for k, key in keys.items()}
        muscles = MuscleProperties(
            names, per_mtu["optimal_fiber_length"], per_mtu["tendon_slack_length"],
            np.array([float(mtus[m]["max_isometric_force_n"]["generic_n"]) for m in names]),
            np.array([float(mtus[m]["pennation_at_optimal_rad"]["value"]) for m in names]))
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(describe(source, f"is not a complete parameters.json (missing {exc})",
                                   "pass the parameters.json written by the calibrate step")
                          ) from exc
    objective = document.get("objective") or {}
    method = str(document.get("method", "calibration"))
    return subject_from_values(
        muscles, per_mtu, dofs, em_delay_s=float(document.get("emd_s", 0.015)),
        percentage_change=float(objective.get("percentage_change", 0.0)),
        calibration_info={"calibrated": {"start_subject_file": start_subject_file,
                                         "calibration_sequence": [f"pipeline-{method}"]}})
