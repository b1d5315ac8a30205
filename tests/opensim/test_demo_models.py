"""The built-in demo models against physics: moment arms, fibre lengths, masses, templates."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

opensim = pytest.importorskip("opensim")

from pipeline.errors import ModelError  # noqa: E402
from pipeline.osim import models  # noqa: E402

ARM_MTUS = {
    "delt_ant", "delt_med", "delt_post", "pec_maj_clav", "pec_maj_stern", "infraspinatus",
    "lat_dorsi", "biceps_long", "biceps_short", "triceps_long", "triceps_lat", "triceps_med",
    "brachialis", "brachioradialis",
}
LEG_MTUS = {
    f"{name}_r" for name in ("bic_fem_lh", "gas_lat", "gas_med", "glut_max", "glut_med",
                             "gracilis", "rect_fem", "sartorius", "semimem", "soleus", "tfl",
                             "tib_ant", "vas_lat", "vas_med")
}
REQUIRED_DOFS = {
    "demo-arm": {"shoulder_elev", "shoulder_rot", "elbow_flex"},
    "demo-leg": {"pelvis_tx", "pelvis_ty", "pelvis_tilt", "hip_flexion_r", "knee_angle_r",
                 "ankle_angle_r", "hip_flexion_l", "knee_angle_l", "ankle_angle_l"},
}
REQUIRED_MARKERS = {
    "demo-arm": {"C7", "CLAV", "STRN", "RSHO", "RELB", "RMEL", "RWRA", "RWRB", "RUPA", "RFRA"},
    "demo-leg": {f"{s}{m}" for s in "RL" for m in ("ASI", "PSI", "THI", "KNE", "TIB", "ANK",
                                                    "HEE", "TOE")},
}


@pytest.fixture(scope="module", params=models.BUILTIN_MODELS)
def built(request, tmp_path_factory):
    """(name, model reloaded from the written .osim, its state at the reference pose)."""
    name = request.param
    path = models.write_builtin_model(name, tmp_path_factory.mktemp("models") / f"{name}.osim")
    model = opensim.Model(str(path))
    state = model.initSystem()
    set_pose(model, state, models.reference_pose(name))
    return name, model, state


def set_pose(model, state, pose):
    coords = model.getCoordinateSet()
    for coord, value in pose.items():
        coords.get(coord).setValue(state, value, False)
    model.realizePosition(state)


def muscles_of(model):
    ms = model.getMuscles()
    return [ms.get(i) for i in range(ms.getSize())]


def test_structure(built):
    name, model, _ = built
    coords = {model.getCoordinateSet().get(i).getName()
              for i in range(model.getCoordinateSet().getSize())}
    assert REQUIRED_DOFS[name] <= coords
    assert set(models.default_dofs(name)) <= coords
    mtus = muscles_of(model)
    assert all(m.getConcreteClassName() == "DeGrooteFregly2016Muscle" for m in mtus)
    names = {m.getName() for m in mtus}
    assert (ARM_MTUS if name == "demo-arm" else LEG_MTUS) <= names
    assert len(names) >= 14
    assert names == set(models.muscle_names(name))
    assert set(models.moment_arm_signs(name)) == names
    markers = {model.getMarkerSet().get(i).getName()
               for i in range(model.getMarkerSet().getSize())}
    assert REQUIRED_MARKERS[name] <= markers
    assert markers == set(models.model_marker_names(name))
    for m in mtus:
        assert not m.get_ignore_tendon_compliance()
        assert m.get_max_contraction_velocity() == 10.0
        assert m.getTendonSlackLength() > 0.01
        assert 0.0 <= m.getPennationAngleAtOptimalFiberLength() < 0.5


def test_masses(built):
    name, model, _ = built
    masses = {b.getName(): b.getMass() for b in model.getBodySet()}
    assert all(mass > 0 for mass in masses.values())
    if name == "demo-arm":
        arm = masses["humerus"] + masses["forearm"] + masses["hand"]
        assert 2.5 < arm < 6.0
        assert masses["humerus"] > masses["forearm"] > masses["hand"]
    else:
        assert 65.0 < sum(masses.values()) < 85.0
        assert {"calcn_r", "calcn_l"} <= set(masses)


def test_default_pose_is_sane(built):
    name, model, _ = built
    state = model.initSystem()
    model.realizePosition(state)
    if name == "demo-leg":
        # Standing: heels and toes near the floor, pelvis about 0.95 m high.
        for marker in ("RHEE", "LHEE", "RTOE", "LTOE"):
            height = model.getMarkerSet().get(marker).getLocationInGround(state).get(1)
            assert -0.01 < height < 0.06
    else:
        # Hand below the shoulder, elbow below the shoulder.
        ms = model.getMarkerSet()
        y = {m: ms.get(m).getLocationInGround(state).get(1) for m in ("RSHO", "RELB", "RWRA")}
        assert y["RSHO"] > y["RELB"] > y["RWRA"] > 0.8


def _grid(name):
    """Poses: each functional-range coordinate at 4 values, others at the reference pose."""
    ranges = models.functional_range(name)
    for coord, (low, high) in ranges.items():
        for value in np.linspace(low, high, 4):
            yield coord, float(value)


def test_moment_arm_signs_and_magnitudes(built):
    name, model, state = built
    signs = models.moment_arm_signs(name)
    coords = model.getCoordinateSet()
    ref = models.reference_pose(name)
    seen: dict[tuple[str, str], float] = {}
    for coord_name, value in _grid(name):
        set_pose(model, state, {**ref, coord_name: value})
        coord = coords.get(coord_name)
        for m in muscles_of(model):
            arm = m.computeMomentArm(state, coord)
            expected = signs[m.getName()].get(coord_name)
            key = (m.getName(), coord_name)
            seen[key] = max(seen.get(key, 0.0), abs(arm))
            assert abs(arm) < 0.10, f"{key}: {arm:.3f} m at {value:.2f} rad"
            if expected is None:
                assert abs(arm) < 1e-9, f"{key} should not cross this DOF"
            elif expected != 0:
                assert expected * arm > 0, f"{key}: {arm:.4f} m at {value:.2f} rad"
    for mtu, dofs in signs.items():
        for dof in dofs:
            if (mtu, dof) in seen:
                assert seen[(mtu, dof)] > 2e-3, f"{mtu} about {dof} is negligible"
    set_pose(model, state, ref)


@pytest.mark.parametrize(
    ("model_name", "mtus", "coord", "low_m", "high_m"),
    [
        ("demo-arm", ("biceps_long", "biceps_short"), "elbow_flex", 0.01, 0.05),
        ("demo-arm", ("triceps_long", "triceps_lat", "triceps_med"), "elbow_flex", -0.035, -0.01),
        ("demo-arm", ("delt_med",), "shoulder_elev", 0.015, 0.05),
        ("demo-leg", ("rect_fem_r", "vas_lat_r", "vas_med_r"), "knee_angle_r", 0.02, 0.06),
        ("demo-leg", ("bic_fem_lh_r", "semimem_r"), "knee_angle_r", -0.07, -0.02),
        ("demo-leg", ("soleus_r", "gas_med_r"), "ankle_angle_r", -0.07, -0.03),
        ("demo-leg", ("tib_ant_r",), "ankle_angle_r", 0.02, 0.06),
        ("demo-leg", ("glut_max_r",), "hip_flexion_r", -0.08, -0.03),
    ],
)
def test_moment_arm_magnitudes_at_reference(model_name, mtus, coord, low_m, high_m):
    name = model_name
    model = models.build_model(name)
    state = model.initSystem()
    set_pose(model, state, models.reference_pose(name))
    for mtu in mtus:
        arm = model.getMuscles().get(mtu).computeMomentArm(state,
                                                           model.getCoordinateSet().get(coord))
        assert low_m < arm < high_m, f"{mtu} about {coord}: {arm:.4f} m"


def test_moment_arm_is_minus_dl_dq(built):
    name, model, state = built
    coords = model.getCoordinateSet()
    ref = models.reference_pose(name)
    step = 1e-4
    for coord_name, value in _grid(name):
        coord = coords.get(coord_name)
        crossing = [m for m in muscles_of(model)
                    if coord_name in models.moment_arm_signs(name)[m.getName()]]
        set_pose(model, state, {**ref, coord_name: value})
        arms = [m.computeMomentArm(state, coord) for m in crossing]
        set_pose(model, state, {**ref, coord_name: value + step})
        plus = [m.getLength(state) for m in crossing]
        set_pose(model, state, {**ref, coord_name: value - step})
        minus = [m.getLength(state) for m in crossing]
        for m, arm, lp, lm in zip(crossing, arms, plus, minus, strict=True):
            assert arm == pytest.approx(-(lp - lm) / (2 * step), abs=1e-4), (m.getName(),
                                                                             coord_name, value)
    set_pose(model, state, ref)


def test_fibre_lengths_physiological(built):
    name, model, state = built
    set_pose(model, state, models.reference_pose(name))
    model.equilibrateMuscles(state)
    model.realizeVelocity(state)
    for m in muscles_of(model):
        norm = m.getNormalizedFiberLength(state)
        assert 0.5 < norm < 1.5, f"{m.getName()}: {norm:.3f}"
    # Whole functional range: fibres stay on the usable part of the force-length curve.
    for coord_name, value in _grid(name):
        set_pose(model, state, {**models.reference_pose(name), coord_name: value})
        for m in muscles_of(model):
            length = m.getLength(state) - m.getTendonSlackLength()
            norm = length / m.getOptimalFiberLength()  # rigid-tendon, unpennated bound
            assert 0.3 < norm < 1.9, f"{m.getName()} at {coord_name}={value:.2f}: {norm:.2f}"


def test_build_is_deterministic(tmp_path):
    for name in models.BUILTIN_MODELS:
        a = models.write_builtin_model(name, tmp_path / f"a_{name}.osim").read_bytes()
        b = models.write_builtin_model(name, tmp_path / f"b_{name}.osim").read_bytes()
        assert a == b


def test_resolve_model(tmp_path):
    path = models.resolve_model("demo-arm", tmp_path)
    assert path.is_file() and path.suffix == ".osim"
    mtime = path.stat().st_mtime_ns
    assert models.resolve_model("demo-arm", tmp_path) == path
    assert path.stat().st_mtime_ns == mtime  # unchanged content is not rewritten
    own = tmp_path / "models" / "mine.osim"
    own.parent.mkdir()
    own.write_bytes(path.read_bytes())
    assert models.resolve_model("models/mine.osim", tmp_path) == own
    with pytest.raises(ModelError, match="does not exist"):
        models.resolve_model("models/missing.osim", tmp_path)
    bad = tmp_path / "bad.osim"
    bad.write_text("<OpenSimDocument><Model><BodySet>", encoding="utf-8")
    with pytest.raises(ModelError, match="Fix:"):
        models.resolve_model("bad.osim", tmp_path)
    with pytest.raises(ModelError, match="built-in"):
        models.resolve_model("demo-torso", tmp_path)
    with pytest.raises(ModelError):
        models.build_model("nope")


@pytest.mark.parametrize("name", models.BUILTIN_MODELS)
def test_templates_match_model(name):
    model = models.build_model(name)
    markers = set(models.model_marker_names(name))
    bodies = {b.getName() for b in model.getBodySet()}
    measurements = opensim.MeasurementSet.safeDownCast(
        opensim.OpenSimObject.makeObjectFromFile(str(models.template_path(name, "measurements"))))
    assert measurements is not None
    scaled = set()
    for i in range(measurements.getSize()):
        meas = measurements.get(i)
        pairs = meas.getMarkerPairSet()
        assert pairs.getSize() >= 1
        for j in range(pairs.getSize()):
            pair = pairs.get(j)
            assert {pair.getMarkerName(0), pair.getMarkerName(1)} <= markers
        for j in range(meas.getBodyScaleSet().getSize()):
            scaled.add(meas.getBodyScaleSet().get(j).getName())
    assert scaled <= bodies
    moving = bodies - {"thorax"}
    assert moving <= scaled
    tasks = opensim.IKTaskSet.safeDownCast(
        opensim.OpenSimObject.makeObjectFromFile(str(models.template_path(name, "ik_tasks"))))
    assert tasks is not None
    task_names = {tasks.get(i).getName() for i in range(tasks.getSize())}
    assert task_names == markers


def test_markers_determine_each_moving_segment(built):
    """At least three non-collinear markers per moving segment (or its welded child)."""
    name, model, state = built
    by_body: dict[str, list[np.ndarray]] = {}
    ms = model.getMarkerSet()
    for i in range(ms.getSize()):
        marker = ms.get(i)
        body = marker.getParentFrame().getName()
        body = {"hand": "forearm"}.get(body, body)
        loc = marker.get_location()
        by_body.setdefault(body, []).append(np.array([loc.get(k) for k in range(3)]))
    for body, points in by_body.items():
        if body in ("thorax", "torso"):
            continue
        assert len(points) >= 3, body
        p = np.array(points)
        assert np.linalg.matrix_rank(p[1:] - p[0], tol=1e-3) >= 2, body


def test_shoulder_rotation_is_about_humeral_long_axis():
    name = "demo-arm"
    model = models.build_model(name)
    state = model.initSystem()
    set_pose(model, state, {"shoulder_elev": math.radians(80), "shoulder_rot": 0.0})
    elbow = model.getJointSet().get("elbow").getParentFrame()
    a = elbow.getPositionInGround(state)
    set_pose(model, state, {"shoulder_elev": math.radians(80), "shoulder_rot": 0.6})
    b = elbow.getPositionInGround(state)
    # The elbow centre lies 14 mm off the long axis, so it moves by at most 2 * 14 mm * sin(0.3).
    assert math.dist([a.get(i) for i in range(3)], [b.get(i) for i in range(3)]) < 0.01


def test_write_is_atomic_and_loadable(tmp_path):
    target = tmp_path / "sub" / "leg.osim"
    models.write_builtin_model("demo-leg", target)
    assert [p.name for p in target.parent.iterdir()] == ["leg.osim"]
    models.check_model_file(target)
    assert isinstance(models.template_path("demo-leg", "ik_tasks"), Path)


@pytest.mark.parametrize("name", models.BUILTIN_MODELS)
def test_mtu_parameters_match_model(name):
    params = models.mtu_parameters(name)
    model = models.build_model(name)
    assert set(params) == set(models.muscle_names(name))
    for mtu, p in params.items():
        muscle = model.getMuscles().get(mtu)
        assert p["optimal_fiber_length_m"] == muscle.getOptimalFiberLength()
        assert p["tendon_slack_length_m"] == muscle.getTendonSlackLength()
        assert p["max_isometric_force_n"] == muscle.getMaxIsometricForce()
        assert p["pennation_angle_rad"] == muscle.getPennationAngleAtOptimalFiberLength()
