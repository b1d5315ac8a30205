"""Simulate one demo subject: motions, inverse dynamics, ground reactions, MTU geometry, and the
excitations with which the subject's true muscles reproduce the inverse-dynamics moments.

Consistency chain (per dynamic trial):

1. prescribe smooth coordinates (:mod:`pipeline.synth.motions`) on the generic, unscaled model
   (the subject's geometry *is* the generic model's at scale 1, so the pipeline's scaling
   recovers ~1); markers and MTU geometry come from it;
2. inverse dynamics with ``opensim.InverseDynamicsSolver`` (no muscles, no passive forces) on the
   subject's *true* model: the generic geometry with perturbed segment masses, centres of mass
   and inertias (:mod:`pipeline.synth.inertia`). For the leg, first without external loads: the
   pelvis residuals are the ground reaction the motion needs; they are split between the feet
   (:mod:`pipeline.synth.ground`) and the ID is repeated with those loads on ``calcn_r`` /
   ``calcn_l`` (pelvis residuals ~0). The same motion and loads through the *generic* inertias
   give ``model_id_moments_nm``: what the pipeline's own ID (on the scaled generic model) sees;
3. MTU lengths and moment arms from the OpenSim model along the motion;
4. excitations solved through :func:`pipeline.nms.model.simulate` with the true parameters
   (:mod:`pipeline.synth.excitations`), as close as the moments allow to smooth random
   co-contraction patterns (so that the muscles work at identifiable levels). The muscles'
   moments are the truth; what they cannot make is kept as a residual actuator per DOF. A draw
   of true parameters whose residuals exceed 2 % of a DOF's peak moment (muscles too weak for
   the task) is replaced by a new draw.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from pipeline.nms.model import TendonModel
from pipeline.osim.models import build_model
from pipeline.synth import emg
from pipeline.synth.excitations import solve_excitations, target_patterns
from pipeline.synth.ground import FootLoad, split_ground_reaction
from pipeline.synth.inertia import BodyInertia, read_bodies, true_model
from pipeline.synth.kinematics import ModelEvaluator, Motion, PointLoad
from pipeline.synth.motions import (
    ArmTask,
    Squat,
    SquatBuilder,
    Trajectory,
    arm_trajectory,
    differentiate,
    static_trajectory,
)
from pipeline.synth.parameters import SubjectMuscles, generic_muscles, perturbed_muscles
from pipeline.synth.plans import POINT_RATE_HZ, SubjectPlan, TrialPlan

log = logging.getLogger(__name__)


@dataclass
class TrialData:
    """Everything one trial's C3D file and truth entry need (OpenSim frame, SI units)."""

    plan: TrialPlan
    motion: Motion
    markers_m: dict[str, np.ndarray]
    channel_excitation: np.ndarray  # (channel, frame)
    feet: tuple[FootLoad, ...] = ()
    id_moments_nm: dict[str, np.ndarray] = field(default_factory=dict)  # true model
    #: the same motion and loads through the generic model's inertias
    model_id_moments_nm: dict[str, np.ndarray] = field(default_factory=dict)
    muscle_moments_nm: dict[str, np.ndarray] = field(default_factory=dict)
    excitation: np.ndarray | None = None  # (muscle, frame)
    mtu_length_m: np.ndarray | None = None  # (muscle, frame), generic (= true) geometry
    moment_arm_m: np.ndarray | None = None  # (muscle, dof, frame)


@dataclass
class SubjectData:
    plan: SubjectPlan
    mass_kg: float  # subjects.tsv mass_kg: the generic model's total mass (see study.py)
    generic: SubjectMuscles
    true: SubjectMuscles
    trials: list[TrialData]
    true_bodies: dict[str, BodyInertia] = field(default_factory=dict)
    generic_bodies: dict[str, BodyInertia] = field(default_factory=dict)
    true_mass_kg: float = 0.0  # the true model's total mass
    foot_lengths: dict[str, tuple[float, float]] = field(default_factory=dict)


def _time(duration_s: float) -> np.ndarray:
    return np.arange(int(round(duration_s * POINT_RATE_HZ))) / POINT_RATE_HZ


def _foot_loads(ev: ModelEvaluator, motion: Motion) -> tuple[FootLoad, FootLoad]:
    """The ground reactions that ``ev``'s model needs for ``motion`` (split between the feet)."""
    free = ev.inverse_dynamics(motion)
    pelvis = ev.body_origin(motion, "pelvis")
    feet_z = {s: float(ev.body_origin(motion, f"calcn_{s}")[0, 2]) for s in ("r", "l")}
    return split_ground_reaction(free, pelvis_origin_m=pelvis, foot_z_m=feet_z)


def _loads(feet: tuple[FootLoad, ...]) -> list[PointLoad]:
    return [PointLoad(f"calcn_{f.side}", f.force_n, f.cop_m, f.torque_nm) for f in feet]


#: Largest residual-actuator RMS, as a fraction of each DOF's peak ID moment, that a draw of true
#: muscle parameters may leave, and how many draws to try. The pipeline's ID must match the true
#: muscle moments within 2 % (tests/workflow/test_demo_e2e.py); typical draws leave 0.3-1.5 %.
FEASIBLE_RESIDUAL = 0.02
MAX_DRAWS = 5


def simulate_subject(plan: SubjectPlan, *, rng: np.random.Generator, emd_s: float,
                     tendon: TendonModel, initial: dict[str, float],
                     inertia_rng: np.random.Generator | None = None) -> SubjectData:
    """Run the consistency chain for every trial of ``plan`` (see the module docstring).

    ``inertia_rng`` draws the true segment inertial parameters; without it the true model is
    the generic one.
    """
    start = time.perf_counter()
    model = build_model(plan.model)
    ev = ModelEvaluator(model)
    if inertia_rng is not None:
        subject_model, true_bodies, generic_bodies = true_model(
            plan.model, rng=inertia_rng, known_bodies=plan.known_bodies)
    else:
        subject_model = build_model(plan.model)
        true_bodies = generic_bodies = read_bodies(subject_model)
    true_ev = ModelEvaluator(subject_model)
    generic = generic_muscles(model, plan.muscles, c1=initial["c1"], c2=initial["c2"],
                              shape_factor=initial["shape_factor"])
    squats = SquatBuilder(ev) if plan.force_plates else None
    static_pose = squats.standing if squats is not None else {
        name: plan.static_pose.get(name, 0.0) for name in ev.coordinate_names}
    n_channels = len(plan.muscles)
    trials: list[TrialData] = []
    dynamic: list[TrialData] = []
    for trial in plan.trials:
        if trial.kind == "dynamic":
            if squats is not None:
                if not isinstance(trial.task, Squat):
                    raise ValueError(f"trial {trial.name}: a leg plan needs a Squat task")
                traj = squats.trajectory(trial.task, duration_s=plan.duration_s)
            else:
                if not isinstance(trial.task, ArmTask):
                    raise ValueError(f"trial {trial.name}: an arm plan needs an ArmTask")
                full = {name: 0.0 for name in ev.coordinate_names}
                arm = arm_trajectory(trial.task, duration_s=plan.duration_s)
                traj = _with_defaults(arm, full)
            t = _time(plan.duration_s)
            excitation = np.zeros((n_channels, t.size))
        else:
            traj = static_trajectory(static_pose)
            t = _time(plan.static_duration_s if trial.kind == "static" else plan.mvc_duration_s)
            excitation = (emg.mvc_excitation(t.size, point_rate_hz=POINT_RATE_HZ,
                                             n_channels=n_channels) if trial.kind == "mvc"
                          else np.full((n_channels, t.size), 0.02))
        motion = differentiate(traj, t)
        data = TrialData(trial, motion, ev.markers(motion), excitation)
        if squats is not None:
            data.feet = _foot_loads(true_ev, motion)
        if trial.kind == "dynamic":
            tau = true_ev.inverse_dynamics(motion, _loads(data.feet))
            data.id_moments_nm = {dof: tau[dof] for dof in plan.dofs}
            generic_tau = ev.inverse_dynamics(motion, _loads(data.feet))
            data.model_id_moments_nm = {dof: generic_tau[dof] for dof in plan.dofs}
            if squats is not None:
                residual = max(float(np.abs(tau[c]).max()) for c in
                               ("pelvis_tx", "pelvis_ty", "pelvis_tilt"))
                log.info("%s/%s: max pelvis residual with ground reactions %.2e", plan.subject,
                         trial.name, residual)
            dynamic.append(data)
        trials.append(data)
    log.info("%s: kinematics and inverse dynamics in %.1f s", plan.subject,
             time.perf_counter() - start)
    # The hidden truth must be able to perform the tasks: a draw whose muscles cannot reproduce
    # the inverse-dynamics moments (excitations saturating at 1, e.g. a weak group against the
    # dumbbell) would need residual actuators beyond FEASIBLE_RESIDUAL; draw again.
    for attempt in range(1, MAX_DRAWS + 1):
        true = perturbed_muscles(generic, rng, strength_groups=plan.strength_groups)
        worst = _solve(ev, plan, true, dynamic, emd_s=emd_s, tendon=tendon, rng=rng)
        if worst <= FEASIBLE_RESIDUAL:
            break
        if attempt == MAX_DRAWS:
            raise RuntimeError(f"{plan.subject}: no draw of true muscle parameters reproduced "
                               f"the tasks' moments within {100 * FEASIBLE_RESIDUAL:.0f} % in "
                               f"{MAX_DRAWS} attempts (worst {100 * worst:.1f} %)")
        log.info("%s: true muscles reproduce the moments only within %.1f %% of peak (draw %d); "
                 "drawing again", plan.subject, 100 * worst, attempt)
    log.info("%s: simulated in %.1f s", plan.subject, time.perf_counter() - start)
    return SubjectData(plan, ev.total_mass_kg(), generic, true, trials, true_bodies,
                       generic_bodies, true_ev.total_mass_kg())


def _with_defaults(traj: Trajectory, defaults: dict[str, float]) -> Trajectory:
    """``traj`` with the coordinates it does not move held at ``defaults``."""

    def trajectory(t: np.ndarray) -> dict[str, np.ndarray]:
        out = {name: np.full(np.shape(t), value) for name, value in defaults.items()}
        out.update(traj(t))
        return out

    return trajectory


def _solve(ev: ModelEvaluator, plan: SubjectPlan, true: SubjectMuscles, dynamic: list[TrialData],
           *, emd_s: float, tendon: TendonModel, rng: np.random.Generator) -> float:
    """Solve the excitations of ``dynamic`` (filled in place); return the worst residual RMS /
    peak over trials and DOFs."""
    geometry = [ev.mtu_geometry(d.motion, plan.muscles, plan.dofs) for d in dynamic]
    lengths = np.stack([g[0] for g in geometry])
    arms = np.stack([g[1] for g in geometry])
    target = np.stack([np.stack([d.id_moments_nm[dof] for dof in plan.dofs]) for d in dynamic])
    patterns = target_patterns(rng, lengths.shape, dt_s=1.0 / POINT_RATE_HZ)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small tensors: threading overhead dominates on shared machines
    try:
        solution = solve_excitations(true.to_nms(), lengths, arms, target,
                                     np.eye(len(plan.muscles)), dt_s=1.0 / POINT_RATE_HZ,
                                     emd_s=emd_s, tendon=tendon, target_excitation=patterns,
                                     max_iterations=500)
    finally:
        torch.set_num_threads(threads)
    log.info("%s: excitations %.3f-%.3f (mean %.3f); normalised fibre length %.2f-%.2f; "
             "tendon strain up to %.3f", plan.subject, solution.excitation.min(),
             solution.excitation.max(), solution.excitation.mean(), solution.fiber_range[0],
             solution.fiber_range[1], solution.max_tendon_strain)
    for i, data in enumerate(dynamic):
        data.mtu_length_m = lengths[i]
        data.moment_arm_m = arms[i]
        data.channel_excitation = solution.channel_excitation[i]
        data.excitation = solution.excitation[i]
        data.muscle_moments_nm = {dof: solution.moments_nm[i, d]
                                  for d, dof in enumerate(plan.dofs)}
        for d, dof in enumerate(plan.dofs):
            log.info("%s/%s %s: muscles reproduce ID within %.2f %% RMS of peak", plan.subject,
                     data.plan.name, dof, 100 * solution.relative_rms[i, d])
    return float(np.max(solution.relative_rms))
