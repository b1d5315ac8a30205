"""The ``motion`` calibration method: equation-error identification on the workflow's files.

For each calibration trial it reads the IK motion (``ik.mot``), low-passes the coordinates as
inverse dynamics does (``opensim.id.cutoff_hz``), differentiates them on the NMS inputs' time grid
and converts the trial's ExternalLoads (when it has force plates) into generalized forces with the
torch skeleton. Muscle parameters and the identifiable inertial combinations are then fitted
together (:mod:`pipeline.dynamics.identify`); no inverse-dynamics moment is used. What fixes the
force/mass scale, in this order: the trials' external loads, bodies of known inertia
(``models.<model>.known_bodies``, e.g. a dumbbell), the subject's mass (subjects.tsv ``mass_kg``).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.calibrate.losses import Objective, penalties_from_config
from pipeline.calibrate.problem import TrialBatch
from pipeline.calibrate.spec import ParameterSpec
from pipeline.dynamics.build import read_motion
from pipeline.dynamics.identify import (
    Anchor,
    EquationError,
    EquationErrorTracking,
    InertialFit,
    MotionTrials,
    MotionUncertainty,
    identify,
)
from pipeline.dynamics.loads import body_loads, read_external_loads
from pipeline.dynamics.output_error import OutputErrorOutcome
from pipeline.dynamics.skeleton import Skeleton, generalized_loads
from pipeline.errors import CalibrationError, describe
from pipeline.nms import DEFAULT_EMD_S

log = logging.getLogger(__name__)

#: samples dropped at each end of a trial (the filter's and the differences' edges)
EDGE_SAMPLES = 3


@dataclass(frozen=True)
class TrialLoads:
    """A trial's ExternalLoads XML and the data file it reads (the GRF .mot)."""

    xml: Path
    data: Path | None = None


def motion_trials(skeleton: Skeleton, batch: TrialBatch, ik_paths: Sequence[str | Path],
                  loads: Sequence[TrialLoads | None], *, cutoff_hz: float | None
                  ) -> MotionTrials:
    """The batch's trials' motion on its time grid (q, qd, qdd, generalized external forces)."""
    from scipy.interpolate import CubicSpline

    from pipeline.signals.filters import butter_lowpass

    if len(ik_paths) != batch.n_trials or len(loads) != batch.n_trials:
        raise CalibrationError(describe(None, f"{len(ik_paths)} IK files and {len(loads)} loads "
                                        f"for {batch.n_trials} calibration trials",
                                        "give one IK file (and loads or none) per trial"))
    shape = (batch.n_trials, batch.mask.shape[1], skeleton.n_coordinates)
    q, qd, qdd = (np.zeros(shape) for _ in range(3))
    external = torch.zeros(shape, dtype=torch.float64)
    mask = batch.mask.clone().to(torch.bool)
    for i, (path, trial_loads) in enumerate(zip(ik_paths, loads, strict=True)):
        times, values = read_motion(path, skeleton)
        rate = 1.0 / float(np.median(np.diff(times)))
        if cutoff_hz is not None and cutoff_hz < 0.5 * rate:
            values = butter_lowpass(values, cutoff_hz, rate_hz=rate)
        spline = CubicSpline(times, values, axis=0)
        t = np.asarray(batch.time_s[i], dtype=float)
        n = t.size
        inside = (t >= times[0]) & (t <= times[-1])
        if not inside.all():
            raise CalibrationError(describe(path, f"the IK motion ({times[0]:.3f}-{times[-1]:.3f}"
                                            f" s) does not cover the NMS inputs' window "
                                            f"({t[0]:.3f}-{t[-1]:.3f} s)",
                                            "rerun IK and collect for this trial"))
        q[i, :n], qd[i, :n], qdd[i, :n] = spline(t), spline(t, 1), spline(t, 2)
        edge = min(EDGE_SAMPLES, max(n // 4, 0))
        mask[i, :edge] = False
        mask[i, max(n - edge, 0):n] = False
        if trial_loads is not None:
            applied = read_external_loads(trial_loads.xml, skeleton, t,
                                          data_path=trial_loads.data)
            qt = torch.as_tensor(q[i, :n])
            external[i, :n] = generalized_loads(skeleton, qt, body_loads(skeleton, qt, applied))
    return MotionTrials(torch.as_tensor(q), torch.as_tensor(qd), torch.as_tensor(qdd), external,
                        mask)


def floating_coordinates(skeleton: Skeleton, dof_names: Sequence[str]) -> tuple[str, ...]:
    """Coordinates of the joints that attach the skeleton to ground (a floating base), less the
    calibrated DOFs: no muscle acts on them, so their equations carry the external loads."""
    out = []
    for joint in skeleton.joints:
        if joint.parent >= 0:
            continue
        for term in (*joint.rotations, *joint.translations):
            if term.coordinate is None:
                continue
            name = skeleton.coordinates[term.coordinate]
            if name not in dof_names and name not in out:
                out.append(name)
    return tuple(out)


@dataclass
class MotionOutcome:
    p: np.ndarray
    fit: InertialFit
    uncertainty: MotionUncertainty
    problem: EquationError
    objective: Objective
    loss: float
    tracking: float
    penalty: float
    evaluations: int
    wall_s: float
    stopped: str
    history: list[dict[str, float]]
    #: the output-error refinement (``calibration.motion.simulate``), or None
    output_error: OutputErrorOutcome | None = None


def calibrate_motion(spec: ParameterSpec, batch: TrialBatch, calibration: Mapping[str, Any],
                     skeleton: Skeleton, motion: MotionTrials, *,
                     known_bodies: Sequence[str] = (), body_mass_kg: float | None = None,
                     source: str | None = None) -> MotionOutcome:
    """Fit muscle and inertial parameters by equation error (see the module docstring)."""
    start = time.perf_counter()
    has_loads = bool(float(motion.external.abs().max()) > 0) if motion.external.numel() else False
    unactuated = floating_coordinates(skeleton, batch.dof_names) if has_loads else ()
    anchor = Anchor(known_bodies=tuple(known_bodies),
                    body_mass_kg=None if has_loads or known_bodies else body_mass_kg)
    settings = calibration.get("motion", {}) or {}
    problem = EquationError(skeleton, motion, batch.dof_names, unactuated=unactuated,
                            anchor=anchor, source=source,
                            prior_weight=float(settings.get("inertia_prior_weight", 1.0)))
    log.info("motion: %d inertial combinations of %d identifiable from the motion, anchored by "
             "%s; equations of %s", problem.identifiability.rank, 10 * skeleton.n_bodies,
             problem.anchored_by, ", ".join(skeleton.coordinates[r] for r in problem.rows))
    data = TrialBatch(batch.trial_names, batch.mtu_names, batch.dof_names, batch.excitation,
                      batch.mtu_length_m, batch.moment_arm_m, batch.id_moment_nm,
                      problem.mask.to(batch.mask.dtype), batch.dt_s, batch.time_s,
                      batch.excitation_before)
    objective = Objective(spec, data, tendon=calibration.get("tendon", "elastic"),
                          emd_s=float(calibration.get("emd_s", DEFAULT_EMD_S)),
                          penalties=penalties_from_config(calibration.get("penalties")),
                          prior_weight=float(calibration.get("prior_weight", 0.0)),
                          tracking=EquationErrorTracking(problem))
    opts = calibration.get("optimiser", {})
    solved, fit, uncertainty = identify(problem, objective, spec.initial,
                                        max_evaluations=int(opts.get("max_evaluations", 200)),
                                        tolerance=float(opts.get("tolerance", 1e-10)))
    p, history, evaluations, stopped = solved.p, solved.history, solved.evaluations, solved.stopped
    refined = None
    if settings.get("simulate", False):
        from pipeline.dynamics.identify import physical_parameters
        from pipeline.dynamics.output_error import ShootingSettings, refine_output_error

        refined = refine_output_error(objective, problem, motion, solved.p, fit.pi,
                                      settings=ShootingSettings.from_config(settings,
                                                                            source=source),
                                      tolerance=float(opts.get("tolerance", 1e-10)),
                                      source=source)
        p, stopped = refined.p, refined.stopped
        fit = dataclasses.replace(fit, pi=refined.pi)
        # the standard errors stay those of the equation error at its solution
        uncertainty = dataclasses.replace(
            uncertainty, body_values=physical_parameters(refined.pi).numpy())
        # history.tsv keeps the equation error's rows (one loss definition per file); the output
        # error's are summarised in parameters.json motion.output_error
        evaluations += refined.evaluations
    with torch.no_grad():
        terms = objective.terms(torch.as_tensor(p, dtype=torch.float64))
    return MotionOutcome(p, fit, uncertainty, problem, objective, float(terms.total),
                         float(terms.tracking), float(terms.penalty), evaluations,
                         time.perf_counter() - start, stopped, history, refined)


def bodies_document(outcome: MotionOutcome) -> dict[str, Any]:
    """``parameters.json``'s ``bodies``: per segment, mass, centre of mass and inertia about it
    (body frame), each with value, initial (the scaled model), lower/upper (none: the inertial
    fit is unconstrained), SE and whether the motion identifies it."""
    from pipeline.dynamics.identify import physical_parameters

    problem, u = outcome.problem, outcome.uncertainty
    initial = physical_parameters(problem.prior).numpy()
    out: dict[str, Any] = {}
    parts = (("mass_kg", slice(0, 1), "kg"), ("mass_center_m", slice(1, 4), "m"),
             ("inertia_kg_m2", slice(4, 10), "kg m^2"))
    for b, name in enumerate(problem.skeleton.bodies):
        entry: dict[str, Any] = {"known": bool(u.known[b]),
                                 "physically_consistent": physically_consistent(
                                     u.body_values[b])}
        for key, sl, units in parts:
            value, first = u.body_values[b, sl], initial[b, sl]
            se, ok = u.body_se[b, sl], u.body_identifiable[b, sl]

            def one(x: np.ndarray, scalar: bool = key == "mass_kg") -> Any:
                return float(x[0]) if scalar else [float(v) for v in x]

            entry[key] = {
                "value": one(value), "initial": one(first),
                "lower": 0.0 if key == "mass_kg" else None, "upper": None,
                "se": (None if not ok[0] else float(se[0])) if key == "mass_kg" else
                [None if not k else float(s) for s, k in zip(se, ok, strict=True)],
                "identifiable": bool(ok[0]) if key == "mass_kg" else [bool(k) for k in ok],
                "units": units}
        out[name] = entry
    return out


def motion_document(outcome: MotionOutcome) -> dict[str, Any]:
    """``parameters.json``'s ``motion``: anchor, identifiable combinations, noise."""
    problem, u = outcome.problem, outcome.uncertainty
    return {"anchored_by": problem.anchored_by,
            "equations": [problem.skeleton.coordinates[r] for r in problem.rows],
            "inertial_parameters": 10 * problem.skeleton.n_bodies,
            "identifiable_inertial_combinations": problem.identifiability.rank,
            "rank": u.rank, "n_parameters": u.n_parameters, "sigma2": u.sigma2,
            "autocorrelation_time_samples": u.autocorrelation_time,
            "combination_se": [None if not np.isfinite(x) else float(x)
                               for x in u.combination_se],
            "output_error": output_error_document(outcome)}


def output_error_document(outcome: MotionOutcome) -> dict[str, Any] | None:
    """``parameters.json``'s ``motion.output_error``: the simulation's settings and its
    joint-angle tracking before and after the refinement (None when it did not run)."""
    out = outcome.output_error
    if out is None:
        return None
    dofs = [outcome.problem.skeleton.coordinates[r] for r in outcome.problem.dof_rows]
    return {"segments": out.segments, "segment_samples": out.segment_samples,
            "integrator": out.settings.integrator, "substeps": out.settings.substeps,
            "loss_before": out.loss_before, "loss": out.loss,
            "angle_rmse_deg_before": dict(zip(dofs, map(float, out.angle_rmse_deg_before),
                                              strict=True)),
            "angle_rmse_deg": dict(zip(dofs, map(float, out.angle_rmse_deg), strict=True)),
            "evaluations": out.evaluations, "wall_s": out.wall_s, "stopped": out.stopped,
            "converged": out.stopped != "max_evaluations",
            "standard_errors": "equation error, at its solution"}


def physically_consistent(values: np.ndarray) -> bool:
    """Positive mass and an inertia about the centre of mass that a rigid body can have
    (positive definite, triangle inequalities)."""
    xx, yy, zz, xy, xz, yz = values[4:10]
    inertia = np.array([[xx, xy, xz], [xy, yy, yz], [xz, yz, zz]])
    eig = np.linalg.eigvalsh(inertia)
    return bool(values[0] > 0 and eig[0] > 0 and eig[0] + eig[1] >= eig[2] * (1 - 1e-9))


def body_properties(outcome: MotionOutcome) -> dict[str, np.ndarray]:
    """Mass, centre of mass and inertia (10 values) of the bodies to write into the calibrated
    model: the estimated bodies that are physically consistent (the others keep the scaled
    model's, with a warning)."""
    u = outcome.uncertainty
    out = {}
    for b, name in enumerate(outcome.problem.skeleton.bodies):
        if u.known[b]:
            continue
        if not physically_consistent(u.body_values[b]):
            log.warning("motion: the fitted inertial parameters of body %s are not physically "
                        "consistent (mass %.4g kg); calibrated.osim keeps the scaled model's. "
                        "Fix: add richer calibration trials or an anchor", name,
                        u.body_values[b, 0])
            continue
        out[name] = u.body_values[b]
    return out


def trial_loads(xml: Sequence[str], data: Sequence[str], n_trials: int
                ) -> list[TrialLoads | None]:
    """Per trial, its loads from CLI lists where ``none`` marks a trial without."""
    if not xml:
        return [None] * n_trials
    if len(xml) != n_trials or len(data) != n_trials:
        raise CalibrationError(describe(None, f"--external-loads and --grf need one entry per "
                                        f"calibration trial ({n_trials})",
                                        "pass none for a trial without force plates"))
    return [None if x == "none" else TrialLoads(Path(x), None if d == "none" else Path(d))
            for x, d in zip(xml, data, strict=True)]
