"""``demo-leg``: a sagittal-plane 10-DOF gait model with 14 MTUs per leg.

Skeleton (bodies, joint centres, masses and inertias) follows the generic gait2392 / gait10dof
model of Delp et al. (1990) and Anderson & Pandy (1999) for a 75 kg, 1.8 m male, with two
simplifications: the knee is a pin joint about the femoral z axis (tibia placed where gait2392's
knee puts it at full extension, Yamaguchi & Zajac 1989), and talus and toes are lumped into
``calcn_r`` / ``calcn_l`` (mass and centre of mass combined). The torso (head, arms and trunk) is
one body on a lumbar pin joint.

Muscle paths, maximum isometric forces, optimal fibre lengths and pennation angles are Delp et al.
(1990) as tabulated in gait2392 (the tendon slack lengths listed in :data:`MUSCLES` are Delp's).
Because the paths are simplified, the built model's tendon slack lengths are refitted so that each
fibre is at optimal length in :data:`REFERENCE_POSE` (rigid tendon, constant-thickness pennation;
:func:`tendon_slack_lengths`); Delp's values leave the hamstrings slack over much of the range
once the conditional via points are gone. ConditionalPathPoints
are dropped so that every MTU length is a smooth function of the coordinates (moment arm = -dL/dq
everywhere); the quadriceps keep Delp's MovingPathPoints on the tibia (a patella-free description of
the patellar tendon). Instead of Delp's conditional via point behind the condyles, the
gastrocnemius origins sit 2.5 cm more proximally on the posterior supracondylar surface (as in
Rajagopal et al. 2016), which keeps them knee flexors through deep flexion. Gluteus maximus and
medius are each one MTU on the path of their middle compartment with the summed force of the
three compartments.

Sign conventions (OpenSim): hip_flexion > 0 flexes, knee_angle > 0 extends (flexion is negative,
range -120..10 deg), ankle_angle > 0 dorsiflexes, pelvis_tilt > 0 tilts the pelvis posteriorly
(counter-clockwise about +z, the subject walking along +x).
"""

from __future__ import annotations

import math
from dataclasses import replace
from typing import TYPE_CHECKING

from pipeline.osim.model_builder import (
    BodySpec,
    MarkerSpec,
    MovingPoint,
    MuscleSpec,
    Vec,
    add_body,
    add_joint,
    add_marker,
    add_muscle,
    mtu_lengths_at,
    set_coordinate,
    slack_for_optimal_fibres,
    vec3,
)

if TYPE_CHECKING:
    import opensim

DEG = math.pi / 180.0

COORDINATES = (
    "pelvis_tilt", "pelvis_tx", "pelvis_ty",
    "hip_flexion_r", "knee_angle_r", "ankle_angle_r",
    "hip_flexion_l", "knee_angle_l", "ankle_angle_l",
    "lumbar_extension",
)

#: Standing height of the pelvis origin (m) that puts the heels on the floor.
PELVIS_HEIGHT_M = 0.95

# Bodies: Delp 1990 / gait2392 (75 kg). calcn lumps calcaneus 1.25 kg, talus 0.1 kg, toes 0.2166 kg.
_BODIES = (
    BodySpec("pelvis", 11.777, (-0.0707, 0.0, 0.0), (0.1028, 0.0871, 0.0579)),
    BodySpec("torso", 34.2366, (-0.03, 0.32, 0.0), (1.4745, 0.7555, 1.4314)),
)


def _side_bodies(side: str) -> tuple[BodySpec, ...]:
    s = 1.0 if side == "r" else -1.0
    return (
        BodySpec(f"femur_{side}", 9.3014, (0.0, -0.17, 0.0), (0.1339, 0.0351, 0.1412)),
        BodySpec(f"tibia_{side}", 3.7075, (0.0, -0.1867, 0.0), (0.0504, 0.0051, 0.0511)),
        BodySpec(f"calcn_{side}", 1.5666, (0.112, 0.027, s * -0.003), (0.0016, 0.0045, 0.0048)),
    )


# Joint frames (gait2392): hip centre in pelvis, knee (tibia origin at full extension) in femur,
# ankle centre in tibia, calcn origin relative to the ankle centre (talus -> calcn offset).
_HIP_IN_PELVIS: Vec = (-0.0707, -0.0661, 0.0835)
_KNEE_IN_FEMUR: Vec = (-0.0045, -0.3958, 0.0)
_ANKLE_IN_TIBIA: Vec = (0.0, -0.43, 0.0)
_ANKLE_IN_CALCN: Vec = (0.04877, 0.04195, -0.00792)
_LUMBAR_IN_PELVIS: Vec = (-0.1007, 0.0815, 0.0)

# Delp 1990 patellar-tendon insertion splines of knee_angle (MovingPathPoint on the tibia).
_KNEE_Q = (-2.0944, -1.5708, -1.0472, -0.6981, -0.3491, -0.1745, 0.0, 0.0873, 0.1745)
_RF_X = (0.01558, 0.02751, 0.03657, 0.04221, 0.04839, 0.05343, 0.06176, 0.06699, 0.0733)
_RF_Y = (0.02341, 0.02511, 0.02492, 0.02424, 0.02342, 0.02276, 0.02098, 0.01918, 0.01596)
_VL_X = (0.01429, 0.02621, 0.03527, 0.04088, 0.04697, 0.05187, 0.05996, 0.06504, 0.07119)
_VL_Y = (0.02153, 0.02324, 0.02304, 0.02238, 0.02164, 0.0211, 0.01959, 0.01801, 0.01511)
_VM_X = (0.00981, 0.02174, 0.0308, 0.03642, 0.04257, 0.04758, 0.05596, 0.06134, 0.06795)
_VM_Y = (0.02242, 0.02413, 0.02395, 0.02336, 0.02283, 0.02264, 0.02179, 0.02068, 0.01833)


def _mirror(v: Vec, side: str) -> Vec:
    return v if side == "r" else (v[0], v[1], -v[2])


def _patellar(side: str, xs: tuple[float, ...], ys: tuple[float, ...], z: float) -> MovingPoint:
    return MovingPoint(f"tibia_{side}", f"knee_angle_{side}", (_KNEE_Q, xs), (_KNEE_Q, ys),
                       z if side == "r" else -z)


def _side_muscles(side: str) -> tuple[MuscleSpec, ...]:
    """The 14 MTUs of one leg: (name, Fmax N, l0 m, lts m, pennation rad, path, wraps)."""

    def p(body: str, loc: Vec) -> tuple[str, Vec]:
        return (f"{body}_{side}" if body != "pelvis" else body, _mirror(loc, side))

    def mtu(name: str, f: float, l0: float, lts: float, pen_deg: float,
            path: tuple, wraps: tuple[str, ...] = ()) -> MuscleSpec:
        return MuscleSpec(f"{name}_{side}", f, l0, lts, pen_deg * DEG, path,
                          tuple(f"{w}_{side}" for w in wraps))

    return (
        mtu("bic_fem_lh", 896.0, 0.109, 0.326, 0.0,
            (p("pelvis", (-0.12596, -0.10257, 0.06944)), p("tibia", (-0.0301, -0.036, 0.02943)),
             p("tibia", (-0.0234, -0.0563, 0.0343)))),
        mtu("semimem", 1288.0, 0.080, 0.359, 15.0,
            (p("pelvis", (-0.1192, -0.09747, 0.07151)), p("tibia", (-0.027, -0.04771, -0.01957)))),
        mtu("gracilis", 162.0, 0.352, 0.126, 3.0,
            (p("pelvis", (-0.07401, -0.1187, 0.02794)), p("tibia", (-0.02657, -0.0319, -0.03774)),
             p("tibia", (-0.01943, -0.05153, -0.0358)), p("tibia", (0.006, -0.0836, -0.0228)))),
        mtu("sartorius", 156.0, 0.520, 0.100, 0.0,
            (p("pelvis", (-0.0153, -0.0013, 0.1242)), p("femur", (-0.003, -0.3568, -0.0421)),
             p("tibia", (-0.0056, -0.0419, -0.0399)), p("tibia", (0.006, -0.0589, -0.0383)),
             p("tibia", (0.0243, -0.084, -0.0252)))),
        mtu("glut_max", 1944.0, 0.147, 0.127, 0.0,
            (p("pelvis", (-0.1349, 0.0176, 0.0563)), p("pelvis", (-0.1376, -0.052, 0.0914)),
             p("femur", (-0.0426, -0.053, 0.0293)), p("femur", (-0.0156, -0.1016, 0.0419)))),
        mtu("glut_med", 2045.0, 0.0845, 0.053, 0.0,
            (p("pelvis", (-0.0855, 0.0445, 0.0766)), p("femur", (-0.0258, -0.0058, 0.0527)))),
        mtu("tfl", 233.0, 0.095, 0.425, 3.0,
            (p("pelvis", (-0.0311, 0.0214, 0.1241)), p("femur", (0.0294, -0.0995, 0.0597)),
             p("femur", (0.0054, -0.4049, 0.0357)), p("tibia", (0.006, -0.0487, 0.0297)))),
        mtu("rect_fem", 1169.0, 0.114, 0.310, 5.0,
            (p("pelvis", (-0.0295, -0.0311, 0.0968)), _patellar(side, _RF_X, _RF_Y, 0.0014))),
        mtu("vas_lat", 1871.0, 0.084, 0.157, 5.0,
            (p("femur", (0.0048, -0.1854, 0.0349)), p("femur", (0.0269, -0.2591, 0.0409)),
             _patellar(side, _VL_X, _VL_Y, 0.0165))),
        mtu("vas_med", 1294.0, 0.089, 0.126, 5.0,
            (p("femur", (0.014, -0.2099, 0.0188)), p("femur", (0.0356, -0.2769, 0.0009)),
             _patellar(side, _VM_X, _VM_Y, -0.0146))),
        mtu("gas_lat", 683.0, 0.064, 0.380, 8.0,
            (p("femur", (-0.020, -0.370, 0.0272)), p("calcn", (0.0, 0.031, -0.0053)))),
        mtu("gas_med", 1558.0, 0.060, 0.390, 17.0,
            (p("femur", (-0.019, -0.368, -0.0235)), p("calcn", (0.0, 0.031, -0.0053)))),
        mtu("soleus", 3549.0, 0.050, 0.250, 25.0,
            (p("tibia", (-0.0024, -0.1533, 0.0071)), p("calcn", (0.0, 0.031, -0.0053)))),
        mtu("tib_ant", 905.0, 0.098, 0.223, 5.0,
            (p("tibia", (0.0179, -0.1624, 0.0115)), p("tibia", (0.0329, -0.3951, -0.0177)),
             p("calcn", (0.1166, 0.0178, -0.0305)))),
    )


def _markers() -> tuple[MarkerSpec, ...]:
    """Plug-in-Gait-like marker names; locations from the gait2392 scaling marker set."""
    out = [
        MarkerSpec("C7", "torso", (-0.085, 0.48, 0.0)),
        MarkerSpec("CLAV", "torso", (0.045, 0.40, 0.0)),
        MarkerSpec("STRN", "torso", (0.07, 0.30, 0.0)),
        MarkerSpec("RSHO", "torso", (-0.03, 0.44, 0.15)),
        MarkerSpec("LSHO", "torso", (-0.03, 0.44, -0.15)),
    ]
    for side, prefix in (("r", "R"), ("l", "L")):
        def m(name: str, body: str, loc: Vec, side: str = side, prefix: str = prefix) -> MarkerSpec:
            body_name = body if body == "pelvis" else f"{body}_{side}"
            return MarkerSpec(prefix + name, body_name, _mirror(loc, side))

        out += [
            m("ASI", "pelvis", (0.02, 0.03, 0.128)),
            m("PSI", "pelvis", (-0.155, 0.035, 0.045)),
            m("THI", "femur", (0.0, -0.25, 0.075)),
            m("KNE", "femur", (0.0, -0.404, 0.05)),
            m("KNM", "femur", (0.0, -0.404, -0.05)),
            m("TIB", "tibia", (0.0, -0.22, 0.055)),
            m("ANK", "tibia", (-0.005, -0.41, 0.053)),
            m("MED", "tibia", (0.006, -0.3888, -0.038)),
            m("HEE", "calcn", (-0.02, 0.02, 0.0)),
            m("TOE", "calcn", (0.19, 0.005, -0.005)),
            m("MT5", "calcn", (0.10, 0.02, 0.04)),
        ]
    return tuple(out)


MUSCLES = _side_muscles("r") + _side_muscles("l")
MARKERS = _markers()

#: Expected moment-arm signs (+1, -1; 0 = crosses but the sign changes within the functional range).
MOMENT_SIGNS = {
    f"{name}_{side}": {f"{dof}_{side}": sign for dof, sign in dofs.items()}
    for side in ("r", "l")
    for name, dofs in {
        "bic_fem_lh": {"hip_flexion": -1, "knee_angle": -1},
        "semimem": {"hip_flexion": -1, "knee_angle": -1},
        "gracilis": {"hip_flexion": 0, "knee_angle": -1},
        "sartorius": {"hip_flexion": +1, "knee_angle": -1},
        "glut_max": {"hip_flexion": -1},
        "glut_med": {"hip_flexion": -1},
        "tfl": {"hip_flexion": +1, "knee_angle": +1},
        "rect_fem": {"hip_flexion": +1, "knee_angle": +1},
        "vas_lat": {"knee_angle": +1},
        "vas_med": {"knee_angle": +1},
        "gas_lat": {"knee_angle": -1, "ankle_angle": -1},
        "gas_med": {"knee_angle": -1, "ankle_angle": -1},
        "soleus": {"ankle_angle": -1},
        "tib_ant": {"ankle_angle": +1},
    }.items()
}

#: Functional (walking) range per coordinate used to check signs, and a mid-range pose.
FUNCTIONAL_RANGE = {
    "hip_flexion": (-20 * DEG, 60 * DEG),
    "knee_angle": (-90 * DEG, 0.0),
    "ankle_angle": (-30 * DEG, 20 * DEG),
}
REFERENCE_POSE = {
    f"{dof}_{side}": value
    for side in ("r", "l")
    for dof, value in (("hip_flexion", 20 * DEG), ("knee_angle", -40 * DEG),
                       ("ankle_angle", -5 * DEG))
}


def _skeleton() -> opensim.Model:
    import opensim
    model = opensim.Model()
    model.setName("demo_leg")
    model.set_gravity(opensim.Vec3(0.0, -9.80665, 0.0))
    bodies = {spec.name: add_body(model, spec) for spec in _BODIES}
    for side in ("r", "l"):
        bodies.update({spec.name: add_body(model, spec) for spec in _side_bodies(side)})
    zero = opensim.Vec3(0.0, 0.0, 0.0)

    ground_pelvis = opensim.PlanarJoint("ground_pelvis", model.getGround(), zero, zero,
                                        bodies["pelvis"], zero, zero)
    set_coordinate(ground_pelvis, 0, "pelvis_tilt", range_=(-90 * DEG, 90 * DEG))
    set_coordinate(ground_pelvis, 1, "pelvis_tx", range_=(-5.0, 5.0))
    set_coordinate(ground_pelvis, 2, "pelvis_ty", range_=(-1.0, 2.0), default=PELVIS_HEIGHT_M)
    add_joint(model, ground_pelvis)
    back = opensim.PinJoint("back", bodies["pelvis"], vec3(_LUMBAR_IN_PELVIS), zero,
                            bodies["torso"], zero, zero)
    set_coordinate(back, 0, "lumbar_extension", range_=(-90 * DEG, 90 * DEG))
    add_joint(model, back)
    for side in ("r", "l"):
        hip = opensim.PinJoint(f"hip_{side}", bodies["pelvis"], vec3(_mirror(_HIP_IN_PELVIS, side)),
                               zero, bodies[f"femur_{side}"], zero, zero)
        set_coordinate(hip, 0, f"hip_flexion_{side}", range_=(-30 * DEG, 120 * DEG))
        add_joint(model, hip)
        knee = opensim.PinJoint(f"knee_{side}", bodies[f"femur_{side}"], vec3(_KNEE_IN_FEMUR),
                                zero, bodies[f"tibia_{side}"], zero, zero)
        set_coordinate(knee, 0, f"knee_angle_{side}", range_=(-120 * DEG, 10 * DEG))
        add_joint(model, knee)
        ankle = opensim.PinJoint(f"ankle_{side}", bodies[f"tibia_{side}"], vec3(_ANKLE_IN_TIBIA),
                                 zero, bodies[f"calcn_{side}"],
                                 vec3(_mirror(_ANKLE_IN_CALCN, side)), zero)
        set_coordinate(ankle, 0, f"ankle_angle_{side}", range_=(-50 * DEG, 30 * DEG))
        add_joint(model, ankle)
    model.finalizeConnections()
    model.finalizeConnections()
    return model


def _with_muscles(slack: dict[str, float] | None) -> opensim.Model:
    model = _skeleton()
    for spec in MUSCLES:
        if slack is not None:
            spec = replace(spec, tendon_slack_length_m=slack[spec.name])
        add_muscle(model, spec)
    for marker in MARKERS:
        add_marker(model, marker)
    model.finalizeConnections()
    return model


def tendon_slack_lengths() -> dict[str, float]:
    """Tendon slack length (m) of every MTU: fibres optimal at :data:`REFERENCE_POSE`."""
    lengths = mtu_lengths_at(_with_muscles(None), REFERENCE_POSE)
    return {
        spec.name: slack_for_optimal_fibres(lengths[spec.name],
                                            optimal_fiber_length_m=spec.optimal_fiber_length_m,
                                            pennation_angle_rad=spec.pennation_angle_rad)
        for spec in MUSCLES
    }


def build() -> opensim.Model:
    """Assemble the demo-leg model with fitted tendon slack lengths."""
    return _with_muscles(tendon_slack_lengths())
