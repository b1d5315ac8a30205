"""What the demo study contains: subjects, trials, tasks, EMG channels and config entries.

Two subjects:

* ``arm01`` (``demo-arm-dumbbell``: ``demo-arm`` holding a 3 kg dumbbell): static, one MVC
  trial, and six dynamic trials (shoulder abduction, shoulder rotation, elbow flexion, each
  combined with smaller movements of the other two coordinates; the ``1`` trials calibrate, the
  ``2`` trials validate).
* ``leg01`` (``demo-leg``): static and MVC trials standing on two force plates, and four
  symmetric squats with each foot on its own plate (``squat1``, ``squat2`` calibrate, ``squat3``,
  ``squat4`` validate). Squats keep the motion sagittal, both feet loaded all the time, and the
  plate assignment unambiguous.

``small=True`` keeps both subjects but shortens trials and keeps 2 calibration + 1 validation
dynamic trials per subject.

Strength is shared within functional groups (``ARM_STRENGTH_GROUPS``, ``LEG_STRENGTH_GROUPS``):
the truth draws one strength per group and the demo config calibrates one per group.

Every MTU has its own EMG channel (``EMG1``...), so EMG-driven calibration sees every excitation;
``unrecorded`` names two deep MTUs per model for synergy-hybrid experiments.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from pipeline.synth.motions import ArmTask, Cycles, Squat

DEG = math.pi / 180.0
POINT_RATE_HZ = 100.0
ANALOG_RATE_HZ = 2000.0


@dataclass(frozen=True)
class TrialPlan:
    name: str
    kind: str  # static | mvc | dynamic
    role: str  # calibration | validation | none
    task: ArmTask | Squat | None = None


@dataclass(frozen=True)
class SubjectPlan:
    subject: str
    model: str
    muscles: tuple[str, ...]
    dofs: tuple[str, ...]
    trials: tuple[TrialPlan, ...]
    duration_s: float
    static_duration_s: float
    mvc_duration_s: float
    force_plates: bool
    unrecorded: tuple[str, ...]
    static_pose: dict[str, float] = field(default_factory=dict)
    #: functional groups sharing one true strength (and one calibrated strength coefficient)
    strength_groups: dict[str, tuple[str, ...]] = field(default_factory=dict)
    #: bodies of known inertia (the dumbbell): they anchor the motion method's force/mass scale
    known_bodies: tuple[str, ...] = ()

    @property
    def emg_names(self) -> tuple[str, ...]:
        return tuple(m[:-2] if m.endswith(("_r", "_l")) else m for m in self.muscles)

    @property
    def emg_channels(self) -> dict[str, str]:
        """C3D analog label -> EMG name."""
        return {f"EMG{i + 1}": name for i, name in enumerate(self.emg_names)}

    @property
    def excitations(self) -> dict[str, dict[str, float]]:
        return {mtu: {emg: 1.0} for mtu, emg in zip(self.muscles, self.emg_names, strict=True)}

    def config_entry(self) -> dict:
        return {
            "emg_channels": self.emg_channels,
            "excitations": self.excitations,
            "dofs": list(self.dofs),
            "force_plates": self.force_plates,
            "unrecorded": list(self.unrecorded),
            **({"known_bodies": list(self.known_bodies)} if self.known_bodies else {}),
        }


# Every arm task moves all three coordinates (different periods and phases), so every trial loads
# every DOF's muscles with its own time course; the 3 kg dumbbell makes the moments large.
ARM_TASKS = {
    "abduction1": ArmTask("abduction1", {
        "shoulder_elev": Cycles(15 * DEG, 75 * DEG, 2.4),
        "shoulder_rot": Cycles(-20 * DEG, 45 * DEG, 1.6, 0.3),
        "elbow_flex": Cycles(20 * DEG, 50 * DEG, 2.0, 0.5)}),
    "rotation1": ArmTask("rotation1", {
        "shoulder_elev": Cycles(40 * DEG, 30 * DEG, 2.6, 0.2),
        "shoulder_rot": Cycles(-35 * DEG, 70 * DEG, 1.8),
        "elbow_flex": Cycles(70 * DEG, 40 * DEG, 2.2, 0.4)}),
    "flexion1": ArmTask("flexion1", {
        "shoulder_elev": Cycles(20 * DEG, 35 * DEG, 2.4, 0.6),
        "shoulder_rot": Cycles(-10 * DEG, 35 * DEG, 2.0, 0.2),
        "elbow_flex": Cycles(15 * DEG, 110 * DEG, 1.8)}),
    "abduction2": ArmTask("abduction2", {
        "shoulder_elev": Cycles(20 * DEG, 70 * DEG, 2.0),
        "shoulder_rot": Cycles(-10 * DEG, 30 * DEG, 2.0, 0.2),
        "elbow_flex": Cycles(40 * DEG, 40 * DEG, 1.7, 0.3)}),
    "rotation2": ArmTask("rotation2", {
        "shoulder_elev": Cycles(35 * DEG, 35 * DEG, 2.2, 0.3),
        "shoulder_rot": Cycles(-25 * DEG, 60 * DEG, 2.0),
        "elbow_flex": Cycles(80 * DEG, 30 * DEG, 1.6, 0.2)}),
    "flexion2": ArmTask("flexion2", {
        "shoulder_elev": Cycles(30 * DEG, 45 * DEG, 2.2),
        "shoulder_rot": Cycles(-15 * DEG, 40 * DEG, 1.8, 0.4),
        "elbow_flex": Cycles(25 * DEG, 100 * DEG, 1.9, 0.3)}),
}

SQUATS = {
    "squat1": Squat("squat1", knee_flexion_rad=60 * DEG, ankle_dorsiflexion_rad=20 * DEG,
                    period_s=2.4, com_shift_m=0.05),
    "squat2": Squat("squat2", knee_flexion_rad=45 * DEG, ankle_dorsiflexion_rad=15 * DEG,
                    period_s=2.0, com_shift_m=0.035),
    "squat3": Squat("squat3", knee_flexion_rad=55 * DEG, ankle_dorsiflexion_rad=18 * DEG,
                    period_s=2.2, com_shift_m=0.045),
    "squat4": Squat("squat4", knee_flexion_rad=50 * DEG, ankle_dorsiflexion_rad=15 * DEG,
                    period_s=1.8, com_shift_m=0.03),
}


# Functional groups whose members share one strength: a subject's strength differs from the
# generic model's mostly by muscle group (training, size), and per-muscle strengths of
# co-contracting synergists are not identifiable from net joint moments (an agonist and its
# synergist can trade force almost freely).
ARM_STRENGTH_GROUPS = {
    "deltoid": ("delt_ant", "delt_med", "delt_post"),
    "cuff_teres": ("supraspinatus", "infraspinatus", "teres_major"),
    "adductors": ("pec_maj_clav", "pec_maj_stern", "lat_dorsi"),
    "elbow_flexors": ("biceps_long", "biceps_short", "brachialis", "brachioradialis"),
    "elbow_extensors": ("triceps_long", "triceps_lat", "triceps_med"),
}
LEG_STRENGTH_GROUPS = {
    "hamstrings_r": ("bic_fem_lh_r", "semimem_r"),
    "medial_thigh_r": ("gracilis_r", "sartorius_r"),
    "gluteals_r": ("glut_max_r", "glut_med_r", "tfl_r"),
    "quadriceps_r": ("rect_fem_r", "vas_lat_r", "vas_med_r"),
    "triceps_surae_r": ("gas_lat_r", "gas_med_r", "soleus_r"),
}


def _dynamic(names: list[str], tasks: dict, calibration: set[str]) -> list[TrialPlan]:
    return [TrialPlan(n, "dynamic", "calibration" if n in calibration else "validation", tasks[n])
            for n in names]


def arm_plan(*, small: bool, muscles: tuple[str, ...], dofs: tuple[str, ...]) -> SubjectPlan:
    names = (["abduction1", "flexion1", "flexion2"] if small else
             ["abduction1", "rotation1", "flexion1", "abduction2", "rotation2", "flexion2"])
    trials = [TrialPlan("static", "static", "none"), TrialPlan("mvc1", "mvc", "none")]
    trials += _dynamic(names, ARM_TASKS, {"abduction1", "rotation1", "flexion1"})
    return SubjectPlan(
        subject="arm01", model="demo-arm-dumbbell", muscles=muscles, dofs=dofs,
        trials=tuple(trials),
        duration_s=3.2 if small else 5.6, static_duration_s=1.5 if small else 2.0,
        mvc_duration_s=2.0 if small else 3.0, force_plates=False,
        unrecorded=("supraspinatus", "brachioradialis"),
        static_pose={"shoulder_elev": 20 * DEG, "shoulder_rot": 0.0, "elbow_flex": 20 * DEG},
        strength_groups=ARM_STRENGTH_GROUPS, known_bodies=("dumbbell",),
    )


def leg_plan(*, small: bool, muscles: tuple[str, ...], dofs: tuple[str, ...]) -> SubjectPlan:
    names = ["squat1", "squat2", "squat3"] if small else ["squat1", "squat2", "squat3", "squat4"]
    trials = [TrialPlan("static", "static", "none"), TrialPlan("mvc1", "mvc", "none")]
    trials += _dynamic(names, SQUATS, {"squat1", "squat2"})
    return SubjectPlan(
        subject="leg01", model="demo-leg", muscles=muscles, dofs=dofs, trials=tuple(trials),
        duration_s=3.2 if small else 5.6, static_duration_s=1.5 if small else 2.0,
        mvc_duration_s=2.0 if small else 3.0, force_plates=True,
        unrecorded=("gracilis_r", "sartorius_r"),
        strength_groups=LEG_STRENGTH_GROUPS,
    )
