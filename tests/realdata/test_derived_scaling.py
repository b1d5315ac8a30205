"""Scaling without hand-written XML, against OpenSim's own Gait2392 subject01 scale outputs.

OpenSim's reference (``OutputReference/subject01_simbody.osim``) was scaled with the
measurement set of ``subject01_Setup_Scale.xml``; its geometry carries the factors. The pairs
that set uses, given in config form (``scaling.pairs``), must reproduce those factors through
our scale step; the derived measurement set must choose the same pairs where the setup's pairs
are the segment-spanning ones, and its other factors must be the pair-distance ratios.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

import numpy as np
import opensim
import pytest

from pipeline.io.opensim_files import read_sto, read_trc
from pipeline.osim.measurements import derive_measurements, pairs_by_body, write_measurement_set
from pipeline.osim.scale import scale_model

pytestmark = pytest.mark.slow
GAIT = "opensim-models-gait2392"
#: subject01_Setup_Scale.xml, as config pairs (a body's pairs may name markers of other bodies)
SETUP_PAIRS = {
    "torso": [["V.Sacral", "Top.Head"]],
    "pelvis": [["R.ASIS", "L.ASIS"]],
    **{f"femur_{s}": [["R.ASIS", "R.Knee.Lat"], ["L.ASIS", "L.Knee.Lat"]] for s in "rl"},
    **{f"{b}_{s}": [["R.Knee.Lat", "R.Ankle.Lat"], ["L.Knee.Lat", "L.Ankle.Lat"]]
       for b in ("tibia", "talus") for s in "rl"},
    **{f"{b}_{s}": [["R.Heel", "R.Toe.Tip"], ["L.Heel", "L.Toe.Tip"]]
       for b in ("calcn", "toes") for s in "rl"},
}


def _reference_factors(path) -> dict[str, float]:
    """Body -> uniform scale factor of OpenSim's scaled model (its geometry's scale factors)."""
    out = {}
    for body in ET.parse(path).getroot().iter("Body"):
        factors = [np.array(e.text.split(), dtype=float) for e in body.iter("scale_factors")]
        factors = [f for f in factors if not np.allclose(f, 0.2) and not np.allclose(f, 1.0)]
        if factors:
            out[body.get("name")] = float(factors[0][0])
    return out


def _generic(shared):
    model = opensim.Model(str(shared / GAIT / "gait2392_simbody.osim"))
    model.updateMarkerSet(opensim.MarkerSet(str(shared / GAIT / "gait2392_Scale_MarkerSet.xml")))
    model.finalizeConnections()
    return model


def _scale(shared, tmp_path, measurements, name, **options):
    mset = write_measurement_set(tmp_path / f"{name}.xml", measurements)
    out = tmp_path / name / "scaled.osim"
    out.parent.mkdir()
    result = scale_model(shared / GAIT / "gait2392_simbody.osim", shared / GAIT /
                         "subject01_static.trc", out_model=out,
                         report_path=out.parent / "report.json", mass_kg=72.6,
                         height_m=1.8034, marker_set=shared / GAIT / "gait2392_Scale_MarkerSet.xml",
                         measurement_set=mset, time_range_s=(1.0, 2.0), max_marker_error_m=0.1,
                         measurement_source=name, **options)
    return result.report


def _ratio(model, markers, pairs) -> float:
    """Mean over pairs of the static distance (averaged over 1-2 s) / the generic distance."""
    state = model.initSystem()
    keep = (markers.times_s >= 1.0 - 1e-9) & (markers.times_s <= 2.0 + 1e-9)
    ratios = []
    for a, b in pairs:
        pa = model.getMarkerSet().get(a).getLocationInGround(state)
        pb = model.getMarkerSet().get(b).getLocationInGround(state)
        generic = np.linalg.norm([pa.get(k) - pb.get(k) for k in range(3)])
        xa = markers.xyz_m[keep, markers.labels.index(a)]
        xb = markers.xyz_m[keep, markers.labels.index(b)]
        ratios.append(np.mean(np.linalg.norm(xa - xb, axis=1)) / generic)
    return float(np.mean(ratios))


def test_setup_pairs_in_config_reproduce_opensim_reference(shared_data, tmp_path):
    model = _generic(shared_data)
    names = [model.getMarkerSet().get(i).getName() for i in range(model.getMarkerSet().getSize())]
    measurements = derive_measurements(model, names, pairs=SETUP_PAIRS)
    assert {m.source for m in measurements} == {"config"}
    report = _scale(shared_data, tmp_path, measurements, "config")
    reference = _reference_factors(shared_data / GAIT / "OutputReference" /
                                   "subject01_simbody.osim")
    # The setup scales femurs and tibias manually (its ScaleSet, applied after the
    # measurements), so only the other bodies are OpenSim's measurement results (the talus
    # carries the shank measurement).
    measured = {b: f for b, f in reference.items() if not b.startswith(("femur", "tibia"))}
    assert set(measured) == {"pelvis", "torso"} | {f"{b}_{s}" for b in ("talus", "calcn", "toes")
                                                   for s in "rl"}
    for body, factor in measured.items():
        np.testing.assert_allclose(report["bodies"][body]["factors"], [factor] * 3, rtol=2e-5,
                                   err_msg=body)
    markers = read_trc(shared_data / GAIT / "subject01_static.trc")
    for body, row in report["bodies"].items():
        assert row["pairs"] == SETUP_PAIRS[body]
        np.testing.assert_allclose(row["factors"][0], _ratio(_generic(shared_data), markers,
                                                             row["pairs"]), rtol=1e-4)
    assert report["warnings"] == []


def test_derived_pairs_span_segments_and_match_opensim(shared_data, tmp_path):
    model = _generic(shared_data)
    markers = read_trc(shared_data / GAIT / "subject01_static.trc")
    names = [model.getMarkerSet().get(i).getName() for i in range(model.getMarkerSet().getSize())]
    measurements = derive_measurements(model, names)
    pairs = pairs_by_body(measurements)
    # Where the setup's pairs span the segment, derivation picks them too.
    assert pairs["pelvis"]["pairs"] == [["R.ASIS", "L.ASIS"]]
    assert pairs["torso"]["pairs"] == [["V.Sacral", "Top.Head"]]
    assert pairs["femur_r"]["pairs"] == [["R.ASIS", "R.Knee.Lat"]]
    assert ["R.Knee.Lat", "R.Ankle.Lat"] in pairs["tibia_r"]["pairs"]
    assert pairs["talus_r"]["measured_on"] == "calcn_r"  # no markers: takes calcn's factors
    report = _scale(shared_data, tmp_path, measurements, "derived")
    reference = _reference_factors(shared_data / GAIT / "OutputReference" /
                                   "subject01_simbody.osim")
    for body in ("pelvis", "torso"):
        np.testing.assert_allclose(report["bodies"][body]["factors"][0], reference[body],
                                   rtol=2e-5)
    fresh = _generic(shared_data)
    for body, row in report["bodies"].items():
        expected = _ratio(fresh, markers, row["pairs"])
        np.testing.assert_allclose(row["factors"], [expected] * 3, rtol=1e-4, err_msg=body)
        assert 0.7 <= expected <= 1.4


def test_per_axis_scales_along_the_pair_and_static_pose_is_held(shared_data, tmp_path):
    model = _generic(shared_data)
    names = [model.getMarkerSet().get(i).getName() for i in range(model.getMarkerSet().getSize())]
    measurements = derive_measurements(model, names, axes="per_axis")
    by_body = {m.body: m for m in measurements}
    assert set(by_body["femur_r"].axes) == {"Y"}  # hip to knee runs along the femur's Y
    assert set(by_body["pelvis"].axes) == {"Z"}   # left to right ASIS: the pelvis' Z
    report = _scale(shared_data, tmp_path, measurements, "per_axis",
                    static_pose_deg={"ankle_angle_r": 0.0, "knee_angle_l": -5.0})
    pose = read_sto(tmp_path / "per_axis" / "static_pose.mot", state_values=True)  # radians
    assert np.degrees(pose.column("ankle_angle_r")) == pytest.approx(0.0, abs=0.05)
    assert np.degrees(pose.column("knee_angle_l")) == pytest.approx(-5.0, abs=0.05)
    assert report["static_pose_deg"] == {"ankle_angle_r": 0.0, "knee_angle_l": -5.0}
    femur = report["bodies"]["femur_r"]["factors"]
    markers = read_trc(shared_data / GAIT / "subject01_static.trc")
    np.testing.assert_allclose(femur[1], _ratio(_generic(shared_data), markers,
                                                [["R.ASIS", "R.Knee.Lat"]]), rtol=1e-4)
