"""``demo-arm``: a right arm with 3 DOFs and 16 MTUs on a thorax welded to the ground.

Frames follow OpenSim's arm26 / MoBL-ARMS convention (Holzbaur et al. 2005): thorax x anterior,
y up, z to the right; the humerus frame has its origin at the humeral-head centre, the forearm
frame at the elbow centre, both with y along the segment towards the proximal end.

Coordinates (rad):
- ``shoulder_elev``: elevation of the humerus in the frontal plane (abduction), positive upwards;
- ``shoulder_rot``: rotation about the humeral long axis, positive = internal rotation;
- ``elbow_flex``: elbow flexion about the humeral z axis, 0 = full extension.

Sources. Elbow and shoulder-centre positions, the elbow wrap cylinder and the paths of biceps,
triceps and brachialis are those of arm26 (Holzbaur et al. 2005, after Murray et al. 1995).
Shoulder muscles (deltoid heads, rotator cuff, pectoralis major, latissimus dorsi, teres major) and
brachioradialis run between attachment sites placed from standard anatomy in the same frames; the
deltoids wrap over a cylinder at the humeral head so that they elevate at every angle. Maximum
isometric forces, optimal fibre lengths and pennation angles are Holzbaur et al. (2005) Table I
(heads merged where Holzbaur splits a muscle). Because the paths are simplified, tendon slack
lengths are set so that each fibre is at optimal length in :data:`REFERENCE_POSE` (rigid tendon,
constant-thickness pennation), the usual way to adapt published fibre lengths to a new geometry
(Winby et al. 2008). Segment masses and inertias: de Leva (1996) for a 75 kg male.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from pipeline.osim.model_builder import (
    BodySpec,
    MarkerSpec,
    MuscleSpec,
    Vec,
    WrapCylinderSpec,
    WrapSphereSpec,
    add_body,
    add_joint,
    add_marker,
    add_muscle,
    add_wrap,
    mtu_lengths_at,
    set_coordinate,
    slack_for_optimal_fibres,
    vec3,
)

if TYPE_CHECKING:
    import opensim

DEG = math.pi / 180.0
COORDINATES = ("shoulder_elev", "shoulder_rot", "elbow_flex")

#: Height (m) of the thorax frame origin (jugular-notch level) above the floor.
THORAX_HEIGHT_M = 1.40
_SHOULDER_IN_THORAX: Vec = (-0.017545, -0.007, 0.17)
_ELBOW_IN_HUMERUS: Vec = (0.0061, -0.2904, -0.0123)
_WRIST_IN_FOREARM: Vec = (0.0, -0.24, 0.0)

# de Leva (1996), male, 75 kg: mass fraction, CoM from proximal end and radii of gyration
# (sagittal, longitudinal, transverse) as fractions of segment length; lengths from this model.
_BODIES = (
    BodySpec("thorax", 11.97, (-0.03, -0.12, 0.0), (0.12, 0.08, 0.10)),
    BodySpec("humerus", 2.033, (0.0, -0.1674, 0.0), (0.01388, 0.004267, 0.01237)),
    BodySpec("forearm", 1.215, (0.0, -0.1098, 0.0), (0.005331, 0.001025, 0.004915)),
    BodySpec("hand", 0.4575, (0.0, -0.0681, 0.0), (0.001341, 0.000547, 0.000895)),
)

_WRAPS = (
    # Humeral head (radius 24 mm) plus deltoid thickness: the deltoids wrap over it.
    WrapSphereSpec("humeral_head", "humerus", (0.0, 0.0, 0.0), 0.03),
    # arm26 "TRI": distal humerus, keeps triceps behind and brachialis in front of the elbow.
    WrapCylinderSpec("elbow", "humerus", (0.0028, -0.2919, -0.0069),
                     (-0.14015, -0.00628319, 0.154985), 0.016, 0.05, "all"),
)

_S = _SHOULDER_IN_THORAX


def _rel(dx: float, dy: float, dz: float) -> tuple[str, Vec]:
    """A thorax (scapula/clavicle) point given relative to the shoulder centre."""
    return ("thorax", (round(_S[0] + dx, 6), round(_S[1] + dy, 6), round(_S[2] + dz, 6)))


def _h(x: float, y: float, z: float) -> tuple[str, Vec]:
    return ("humerus", (x, y, z))


def _f(x: float, y: float, z: float) -> tuple[str, Vec]:
    return ("forearm", (x, y, z))


_TRI_DISTAL = (_h(-0.03184, -0.22637, -0.01217), _h(-0.01743, -0.26757, -0.01208),
               _f(-0.0219, 0.01046, -0.00078))
_BIC_DISTAL = (_h(0.01703, -0.12125, 0.00024), _h(0.0228, -0.1754, -0.0063),
               _f(0.00751, -0.04839, 0.02179))

# (name, Fmax N, l0 m, pennation deg, path, wraps); tendon slack lengths are fitted in build().
_MTUS: tuple[tuple[str, float, float, float, tuple, tuple[str, ...]], ...] = (
    ("delt_ant", 1142.6, 0.0976, 22.0,
     (_rel(0.04, 0.035, 0.01), _h(0.014, -0.115, 0.01)), ("humeral_head",)),
    ("delt_med", 1142.6, 0.1078, 15.0,
     (_rel(0.0, 0.035, 0.02), _h(0.004, -0.12, 0.014)), ("humeral_head",)),
    ("delt_post", 259.9, 0.1367, 18.0,
     (_rel(-0.045, 0.035, 0.01), _h(-0.006, -0.115, 0.012)), ("humeral_head",)),
    ("supraspinatus", 487.8, 0.0682, 7.0,
     (_rel(-0.06, 0.03, -0.07), _h(0.005, 0.025, 0.018)), ()),
    ("infraspinatus", 1210.8, 0.0755, 19.0,
     (_rel(-0.09, -0.04, -0.08), _h(-0.012, 0.012, 0.022)), ()),
    ("teres_major", 425.4, 0.162, 16.0,
     (_rel(-0.10, -0.16, -0.10), _h(0.008, -0.055, -0.01)), ()),
    ("pec_maj_clav", 364.4, 0.1443, 17.0,
     (("thorax", (0.04, 0.0, 0.06)), _h(0.012, -0.07, 0.008)), ()),
    ("pec_maj_stern", 515.4, 0.1385, 25.0,
     (("thorax", (0.08, -0.10, 0.02)), _h(0.012, -0.08, 0.006)), ()),
    ("lat_dorsi", 1129.7, 0.254, 25.0,
     (("thorax", (-0.12, -0.30, 0.03)), ("thorax", (-0.09, -0.14, 0.10)),
      _h(0.008, -0.06, -0.006)), ()),
    ("biceps_long", 624.3, 0.1157, 0.0,
     (("thorax", (-0.039235, 0.00347, 0.14795)), ("thorax", (-0.028945, 0.01391, 0.15639)),
      _h(0.02131, 0.01793, 0.01028), _h(0.02378, -0.00511, 0.01201),
      _h(0.01345, -0.02827, 0.00136), _h(0.01068, -0.07736, -0.00165)) + _BIC_DISTAL, ()),
    ("biceps_short", 435.6, 0.1321, 0.0,
     (("thorax", (0.004675, -0.01231, 0.13475)), ("thorax", (-0.007075, -0.04004, 0.14507)),
      _h(0.01117, -0.07576, -0.01101)) + _BIC_DISTAL, ()),
    ("triceps_long", 798.5, 0.134, 12.0,
     (("thorax", (-0.05365, -0.01373, 0.14723)), _h(-0.02714, -0.11441, -0.00664))
     + _TRI_DISTAL, ("elbow",)),
    ("triceps_lat", 624.3, 0.1138, 9.0,
     (_h(-0.00599, -0.12646, 0.00428), _h(-0.02344, -0.14528, 0.00928)) + _TRI_DISTAL,
     ("elbow",)),
    ("triceps_med", 624.3, 0.1138, 9.0,
     (_h(-0.00838, -0.13695, -0.00906), _h(-0.02601, -0.15139, -0.0108)) + _TRI_DISTAL,
     ("elbow",)),
    ("brachialis", 987.3, 0.0858, 0.0,
     (_h(0.0068, -0.1739, -0.0036), _f(-0.0032, -0.0239, 0.0009)), ("elbow",)),
    ("brachioradialis", 261.3, 0.1726, 0.0,
     (_h(0.022, -0.22, 0.025), _f(0.012, -0.225, 0.03)), ()),
)

#: Mid-range pose at which fibres are at optimal length (defines the tendon slack lengths).
REFERENCE_POSE = {"shoulder_elev": 30 * DEG, "shoulder_rot": 0.0, "elbow_flex": 70 * DEG}
#: Range over which the moment-arm signs below hold.
FUNCTIONAL_RANGE = {
    "shoulder_elev": (10 * DEG, 100 * DEG),
    "shoulder_rot": (-40 * DEG, 40 * DEG),
    "elbow_flex": (10 * DEG, 130 * DEG),
}

#: Expected moment-arm signs (+1, -1; 0 = crosses but the sign changes within the range).
MOMENT_SIGNS: dict[str, dict[str, int]] = {
    "delt_ant": {"shoulder_elev": +1, "shoulder_rot": 0},
    "delt_med": {"shoulder_elev": +1, "shoulder_rot": 0},
    "delt_post": {"shoulder_elev": +1, "shoulder_rot": 0},
    "supraspinatus": {"shoulder_elev": +1, "shoulder_rot": 0},
    "infraspinatus": {"shoulder_elev": +1, "shoulder_rot": -1},
    "teres_major": {"shoulder_elev": -1, "shoulder_rot": +1},
    "pec_maj_clav": {"shoulder_elev": 0, "shoulder_rot": +1},
    "pec_maj_stern": {"shoulder_elev": -1, "shoulder_rot": +1},
    "lat_dorsi": {"shoulder_elev": -1, "shoulder_rot": +1},
    "biceps_long": {"shoulder_elev": 0, "shoulder_rot": 0, "elbow_flex": +1},
    "biceps_short": {"shoulder_elev": -1, "shoulder_rot": 0, "elbow_flex": +1},
    "triceps_long": {"shoulder_elev": -1, "shoulder_rot": 0, "elbow_flex": -1},
    "triceps_lat": {"elbow_flex": -1},
    "triceps_med": {"elbow_flex": -1},
    "brachialis": {"elbow_flex": +1},
    "brachioradialis": {"elbow_flex": +1},
}

MARKERS = (
    MarkerSpec("C7", "thorax", (-0.08, 0.04, 0.0)),
    MarkerSpec("T10", "thorax", (-0.10, -0.22, 0.0)),
    MarkerSpec("CLAV", "thorax", (0.06, 0.0, 0.0)),
    MarkerSpec("STRN", "thorax", (0.09, -0.17, 0.0)),
    MarkerSpec("RSHO", "thorax", (-0.01256, 0.04, 0.17)),
    MarkerSpec("RUPA", "humerus", (0.0, -0.15, 0.04)),
    MarkerSpec("RUPB", "humerus", (-0.04, -0.20, 0.0)),
    MarkerSpec("RELB", "humerus", (0.005, -0.2904, 0.03)),
    MarkerSpec("RMEL", "humerus", (0.005, -0.2904, -0.055)),
    MarkerSpec("RFRA", "forearm", (-0.02, -0.12, 0.03)),
    MarkerSpec("RWRA", "forearm", (0.0, -0.235, 0.035)),
    MarkerSpec("RWRB", "forearm", (-0.01, -0.235, -0.025)),
    MarkerSpec("RFIN", "hand", (0.01, -0.08, 0.01)),
)


def _muscle_specs(slack: dict[str, float] | None) -> tuple[MuscleSpec, ...]:
    return tuple(
        MuscleSpec(name, force, l0, (slack or {}).get(name, 0.1), pen * DEG, path, wraps)
        for name, force, l0, pen, path, wraps in _MTUS
    )


def _skeleton() -> opensim.Model:
    import opensim
    model = opensim.Model()
    model.setName("demo_arm")
    model.set_gravity(opensim.Vec3(0.0, -9.80665, 0.0))
    bodies = {spec.name: add_body(model, spec) for spec in _BODIES}
    zero = opensim.Vec3(0.0, 0.0, 0.0)
    add_joint(model, opensim.WeldJoint("ground_thorax", model.getGround(),
                                       opensim.Vec3(0.0, THORAX_HEIGHT_M, 0.0), zero,
                                       bodies["thorax"], zero, zero))
    transform = opensim.SpatialTransform()
    axes = (("shoulder_elev", (-1.0, 0.0, 0.0)), ("shoulder_rot", (0.0, 1.0, 0.0)),
            (None, (0.0, 0.0, 1.0)), (None, (1.0, 0.0, 0.0)), (None, (0.0, 1.0, 0.0)),
            (None, (0.0, 0.0, 1.0)))
    for index, (coord, axis) in enumerate(axes):
        transform_axis = transform.updTransformAxis(index)
        transform_axis.setAxis(vec3(axis))
        if coord is None:
            transform_axis.set_function(opensim.Constant(0.0))
        else:
            transform_axis.setCoordinateNames(opensim.ArrayStr(coord, 1))
            transform_axis.set_function(opensim.LinearFunction(1.0, 0.0))
    shoulder = opensim.CustomJoint("shoulder", bodies["thorax"], vec3(_SHOULDER_IN_THORAX), zero,
                                   bodies["humerus"], zero, zero, transform)
    add_joint(model, shoulder)
    model.finalizeFromProperties()  # a CustomJoint creates its coordinates here
    coords = model.updCoordinateSet()
    for name, low, high in (("shoulder_elev", -10.0, 150.0), ("shoulder_rot", -90.0, 90.0)):
        coords.get(name).setRangeMin(low * DEG)
        coords.get(name).setRangeMax(high * DEG)
    elbow = opensim.PinJoint("elbow", bodies["humerus"], vec3(_ELBOW_IN_HUMERUS), zero,
                             bodies["forearm"], zero, zero)
    set_coordinate(elbow, 0, "elbow_flex", range_=(0.0, 150 * DEG), default=20 * DEG)
    add_joint(model, elbow)
    add_joint(model, opensim.WeldJoint("wrist", bodies["forearm"], vec3(_WRIST_IN_FOREARM), zero,
                                       bodies["hand"], zero, zero))
    for wrap in _WRAPS:
        add_wrap(model, wrap)
    model.finalizeConnections()
    return model


def _with_muscles(slack: dict[str, float] | None) -> opensim.Model:
    model = _skeleton()
    for spec in _muscle_specs(slack):
        add_muscle(model, spec)
    for marker in MARKERS:
        add_marker(model, marker)
    model.finalizeConnections()
    return model


def tendon_slack_lengths() -> dict[str, float]:
    """Tendon slack length (m) of every MTU: fibres optimal at :data:`REFERENCE_POSE`."""
    lengths = mtu_lengths_at(_with_muscles(None), REFERENCE_POSE)
    slack = {
        name: slack_for_optimal_fibres(lengths[name], optimal_fiber_length_m=l0,
                                       pennation_angle_rad=pen * DEG)
        for name, _force, l0, pen, _path, _wraps in _MTUS
    }
    short = {name: value for name, value in slack.items() if value < 0.01}
    if short:  # a path shorter than its fibres: a bug in the attachment sites above
        raise RuntimeError(f"demo-arm paths too short for their fibres: {short}")
    return slack


MUSCLES = _muscle_specs(None)  # names and published properties (slack lengths: see build())


#: Where a hand-held dumbbell's centre sits in the hand frame (the grip, at the RFIN level).
DUMBBELL_IN_HAND: Vec = (0.0, -0.07, 0.0)


def build(dumbbell_kg: float = 0.0) -> opensim.Model:
    """Assemble the demo-arm model with fitted tendon slack lengths.

    ``dumbbell_kg > 0`` adds a ``dumbbell`` body welded to the hand at :data:`DUMBBELL_IN_HAND`
    (a 25 cm bar across the palm, along the hand's z axis), as OpenSim models a hand-held load.
    """
    import opensim
    model = _with_muscles(tendon_slack_lengths())
    if dumbbell_kg > 0.0:
        bar = dumbbell_kg * 0.25**2 / 12.0 + dumbbell_kg * 0.045**2 / 4.0  # about a transverse axis
        spec = BodySpec("dumbbell", dumbbell_kg, (0.0, 0.0, 0.0),
                        (bar, bar, dumbbell_kg * 0.045**2 / 2.0))
        body = add_body(model, spec)
        zero = vec3((0.0, 0.0, 0.0))
        add_joint(model, opensim.WeldJoint("grip", model.getBodySet().get("hand"),
                                           vec3(DUMBBELL_IN_HAND), zero, body, zero, zero))
        model.finalizeConnections()
    return model
