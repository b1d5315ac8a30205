"""CEINMS subject and excitation-generator XML: reading, writing, round trips, start values."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from ceinms_xsd import assert_valid

from pipeline.calibrate.activation_pairs import off_the_fold
from pipeline.calibrate.export import parameters_document
from pipeline.calibrate.gradient import GradientOptions
from pipeline.calibrate.problem import batch_from_arrays
from pipeline.calibrate.run import calibrate, make_objective
from pipeline.calibrate.spec import build_spec
from pipeline.errors import ConfigError
from pipeline.interop.ceinms_params import (
    apply_subject_values,
    dofs_from_batch,
    muscle_parameters,
    muscle_properties,
    subject_from_document,
    subject_from_values,
)
from pipeline.interop.ceinms_subject import (
    ExcitationGenerator,
    excitation_generator,
    read_excitation_generator,
    read_subject,
    write_excitation_generator,
    write_subject,
)
from pipeline.nms import simulate

# A subject in CEINMS's own layout (help/manual/xsd/subject.xsd.rst), per-muscle values differ.
SUBJECT_XML = """<?xml version="1.0" encoding="UTF-8" standalone="no"?>
<subject xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
         xsi:noNamespaceSchemaLocation="subject.xsd">
  <mtuDefault>
    <emDelay>0.02</emDelay>
    <percentageChange>0.15</percentageChange>
    <damping>0.1</damping>
    <curve>
      <name>forceVelocity</name>
      <xPoints>-10 -1 -0.6 -0.3 -0.1 0 0.1 0.3 0.6 0.8 10</xPoints>
      <yPoints>0 0 0.08 0.2 0.55 1 1.4 1.6 1.7 1.75 1.75</yPoints>
    </curve>
  </mtuDefault>
  <mtuSet>
    <mtu>
      <name>soleus_r</name>
      <c1>-0.61</c1> <c2>-0.33</c2> <shapeFactor>-1.7</shapeFactor>
      <optimalFibreLength>0.044</optimalFibreLength>
      <pennationAngle unit="deg">25</pennationAngle>
      <tendonSlackLength>0.277</tendonSlackLength>
      <damping>0.05</damping>
      <maxIsometricForce>6195</maxIsometricForce>
      <strengthCoefficient>1.2</strengthCoefficient>
    </mtu>
    <mtu>
      <name>gasmed_r</name>
      <c1>-0.42</c1> <c2>-0.71</c2> <shapeFactor>-0.9</shapeFactor>
      <optimalFibreLength>0.051</optimalFibreLength>
      <pennationAngle>0.296706</pennationAngle>
      <tendonSlackLength>0.40</tendonSlackLength>
      <maxIsometricForce>2500</maxIsometricForce>
      <strengthCoefficient>0.8</strengthCoefficient>
    </mtu>
    <mtu>
      <name>tibant_r</name>
      <c1>-0.5</c1> <c2>-0.5</c2> <shapeFactor>-1.1</shapeFactor>
      <optimalFibreLength>0.098</optimalFibreLength>
      <pennationAngle>0.1</pennationAngle>
      <tendonSlackLength>0.223</tendonSlackLength>
      <maxIsometricForce>1227</maxIsometricForce>
      <strengthCoefficient>1.0</strengthCoefficient>
    </mtu>
  </mtuSet>
  <dofSet>
    <dof><name>knee_angle_r</name><mtuNameSet>gasmed_r</mtuNameSet></dof>
    <dof><name>ankle_angle_r</name><mtuNameSet>soleus_r gasmed_r tibant_r</mtuNameSet></dof>
  </dofSet>
  <calibrationInfo>
    <uncalibrated><subjectID>s01</subjectID><additionalInfo>scaled</additionalInfo></uncalibrated>
  </calibrationInfo>
</subject>
"""

CALIBRATION = {
    "parameters": ["c1", "c2", "shape_factor", "optimal_fiber_length", "tendon_slack_length",
                   "strength"],
    "bounds": {"c1": {"lower": -0.95, "upper": -0.05}, "c2": {"lower": -0.95, "upper": -0.05},
               "shape_factor": {"lower": -2.999, "upper": -0.001},
               "optimal_fiber_length": {"lower": 0.85, "upper": 1.15, "relative": True},
               "tendon_slack_length": {"lower": 0.85, "upper": 1.15, "relative": True},
               "strength": {"lower": 0.5, "upper": 2.5}},
    "tendon": "stiff", "emd_s": 0.02,
}


@pytest.fixture
def subject_path(tmp_path: Path) -> Path:
    path = tmp_path / "subject.xml"
    path.write_text(SUBJECT_XML)
    return path


def test_read_subject_values(subject_path: Path) -> None:
    subject = read_subject(subject_path)
    assert subject.mtu_names == ("soleus_r", "gasmed_r", "tibant_r")
    sol = subject.mtu("soleus_r")
    assert sol.pennation_angle_rad == pytest.approx(math.radians(25.0), rel=1e-15)
    assert (sol.c1, sol.c2, sol.shape_factor, sol.strength_coefficient) == (-0.61, -0.33, -1.7,
                                                                            1.2)
    assert sol.damping == 0.05 and subject.mtu("gasmed_r").damping is None
    assert subject.dofs_of("gasmed_r") == ("knee_angle_r", "ankle_angle_r")
    assert (subject.em_delay_s, subject.percentage_change, subject.damping) == (0.02, 0.15, 0.1)
    assert subject.curves["forceVelocity"][1][5] == 1.0
    assert subject.calibration_info == {"uncalibrated": {"subject_id": "s01",
                                                         "additional_info": "scaled"}}


def test_subject_round_trip_and_schema(subject_path: Path, tmp_path: Path) -> None:
    first = read_subject(subject_path)
    write_subject(tmp_path / "again.xml", first)
    second = read_subject(tmp_path / "again.xml")
    assert second == first
    assert_valid(tmp_path / "again.xml", "subject.xsd")
    write_subject(tmp_path / "third.xml", second)
    assert (tmp_path / "third.xml").read_text() == (tmp_path / "again.xml").read_text()


def test_excitation_generator_round_trip_and_schema(tmp_path: Path) -> None:
    generator = excitation_generator({"soleus_r": {"soleus": 1.0},
                                      "gasmed_r": {"gastroc": 0.5, "soleus": 0.5}},
                                     mtu_names=["soleus_r", "gasmed_r", "tibant_r"])
    assert generator.input_signals == ("soleus", "gastroc")
    assert generator.mapping["tibant_r"] == ()
    path = tmp_path / "excitationGenerator.xml"
    write_excitation_generator(path, generator)
    assert_valid(path, "excitationGenerator.xsd")
    again = read_excitation_generator(path)
    assert again == generator
    assert again.as_config()["gasmed_r"] == {"gastroc": 0.5, "soleus": 0.5}


def test_excitation_generator_reads_the_manuals_weigth_spelling(tmp_path: Path) -> None:
    path = tmp_path / "eg.xml"
    path.write_text('<excitationGenerator><inputSignals type="EMG">a b</inputSignals><mapping>'
                    '<excitation id="m1"><input weigth="0.5">a</input>'
                    '<input weigth="0.5">b</input></excitation><excitation id="m2"/></mapping>'
                    '</excitationGenerator>')
    assert read_excitation_generator(path) == ExcitationGenerator(
        ("a", "b"), {"m1": (("a", 0.5), ("b", 0.5)), "m2": ()}, "EMG")


@pytest.mark.parametrize(("change", "message"), [
    ("<c1>-0.61</c1>", "no <c1>"),
    ("<optimalFibreLength>0.044</optimalFibreLength>",
     "<optimalFibreLength>abc</optimalFibreLength>"),
    ("<mtuNameSet>gasmed_r</mtuNameSet>", "<mtuNameSet>gasmed_r vasmed_r</mtuNameSet>"),
])
def test_bad_subject_is_refused_naming_the_file(tmp_path: Path, change: str,
                                                message: str) -> None:
    path = tmp_path / "bad.xml"
    replacement = "" if message.startswith("no ") else message
    path.write_text(SUBJECT_XML.replace(change, replacement, 1))
    with pytest.raises(ConfigError) as info:
        read_subject(path)
    assert str(path) in str(info.value)


def _small_batch():
    rng = np.random.default_rng(3)
    n = 80
    t = np.arange(n) * 0.01
    exc = np.clip(0.3 + 0.2 * np.sin(2 * np.pi * t[None] * [[1.0], [1.5], [0.8]]), 0, 1)
    lmt = np.array([0.32, 0.45, 0.32])[:, None] + 0.01 * np.sin(2 * np.pi * t[None])
    arm = np.zeros((3, 2, n))
    arm[1, 0], arm[0, 1], arm[1, 1], arm[2, 1] = -0.02, -0.05, -0.05, 0.04
    return batch_from_arrays(excitation=exc[None], mtu_length_m=lmt[None],
                             moment_arm_m=arm[None], id_moment_nm=rng.normal(size=(1, 2, n)),
                             dt_s=0.01, mtu_names=("soleus_r", "gasmed_r", "tibant_r"),
                             dof_names=("knee_angle_r", "ankle_angle_r"))


def test_calibration_starts_from_the_subjects_per_muscle_values(subject_path: Path) -> None:
    subject = read_subject(subject_path)
    batch = _small_batch()
    spec = apply_subject_values(build_spec(muscle_properties(subject, batch.mtu_names),
                                           CALIBRATION), subject, CALIBRATION)
    start = spec.per_mtu(spec.initial)
    np.testing.assert_allclose(start["c1"], [-0.61, -0.42, -0.5], rtol=1e-5)
    np.testing.assert_allclose(start["strength"], [1.2, 0.8, 1.0], rtol=1e-5)
    np.testing.assert_allclose(start["optimal_fiber_length"], [0.044, 0.051, 0.098], rtol=1e-5)
    np.testing.assert_allclose(start["damping"], [0.05, 0.1, 0.1])  # fixed: MTU, else default
    np.testing.assert_allclose(spec.blocks["optimal_fiber_length"].lower,
                               0.85 * np.array([0.044, 0.051, 0.098]))
    # the first loss of the calibration is the loss of the subject itself
    params = muscle_parameters(subject, batch.mtu_names)
    with torch.no_grad():
        out = simulate(params, batch.excitation, batch.mtu_length_m, batch.moment_arm_m,
                       dt_s=batch.dt_s, tendon="stiff", emd_s=0.02)
        expected = make_objective(spec, batch, CALIBRATION).terms_from_output(out).total
    objective = make_objective(spec, batch, CALIBRATION)
    assert float(objective(torch.as_tensor(spec.initial))) == pytest.approx(float(expected),
                                                                          rel=1e-12)
    # The calibration starts there, except that a (c1, c2) pair on the fold c1 = c2 (the third
    # MTU's defaults) is moved apart first (pipeline.calibrate.activation_pairs).
    moved = spec.per_mtu(off_the_fold(spec, spec.initial))
    np.testing.assert_allclose(moved["c1"], [-0.61, -0.42, -0.5 - 0.0495], rtol=1e-5)
    np.testing.assert_allclose(moved["c2"][:2], start["c2"][:2])
    outcome = calibrate(spec, batch, CALIBRATION, analyse=False, progress=False,
                        gradient_options=GradientOptions(max_iterations=2, polish_iterations=0,
                                                         progress=False))
    first = float(objective(torch.as_tensor(off_the_fold(spec, spec.initial))))
    assert outcome.history[0]["loss"] == pytest.approx(first, rel=1e-6)


def test_initial_values_reader(subject_path: Path) -> None:
    from pipeline.interop.ceinms_params import initial_values

    values = initial_values(subject_path)
    assert values["soleus_r"] == {"optimal_fiber_length_m": 0.044, "tendon_slack_length_m": 0.277,
                                  "max_isometric_force_n": 6195.0, "strength": 1.2, "c1": -0.61,
                                  "c2": -0.33, "shape_factor": -1.7, "damping": 0.05}
    assert values["gasmed_r"]["damping"] == 0.1  # the subject's default
    from pipeline.calibrate.initial_values import read_initial_values

    assert read_initial_values(subject_path) == values  # subjects.tsv initial_parameters


def test_start_value_outside_bounds_is_refused(subject_path: Path) -> None:
    subject = read_subject(subject_path)
    batch = _small_batch()
    cfg = {**CALIBRATION, "bounds": {**CALIBRATION["bounds"],
                                     "strength": {"lower": 0.9, "upper": 2.5}}}
    with pytest.raises(ConfigError, match="strength of 'gasmed_r'"):
        apply_subject_values(build_spec(muscle_properties(subject, batch.mtu_names), cfg),
                             subject, cfg, source=str(subject_path))


def test_exported_calibration_reads_back_with_the_same_values(subject_path: Path,
                                                              tmp_path: Path) -> None:
    subject = read_subject(subject_path)
    batch = _small_batch()
    cfg = {**CALIBRATION, "groups": {"triceps": ["soleus_r", "gasmed_r"]}}
    spec = build_spec(muscle_properties(subject, batch.mtu_names), cfg)
    p = spec.denormalise(np.linspace(0.2, 0.8, spec.n_free))
    document = parameters_document(spec, p, method="gradient", tendon="stiff", emd_s=0.02,
                                   objective={"name": "ceinms", "percentage_change": 0.15})
    exported = subject_from_document(document, dofs_from_batch(batch),
                                     start_subject_file=str(subject_path))
    write_subject(tmp_path / "calibrated.xml", exported)
    assert_valid(tmp_path / "calibrated.xml", "subject.xsd")
    back = read_subject(tmp_path / "calibrated.xml")
    assert back == exported
    assert back.dofs == {"knee_angle_r": ("gasmed_r",),
                         "ankle_angle_r": ("soleus_r", "gasmed_r", "tibant_r")}
    assert back.calibration_info["calibrated"]["calibration_sequence"] == ["pipeline-gradient"]
    values = spec.per_mtu(p)
    again = apply_subject_values(build_spec(muscle_properties(back, batch.mtu_names), cfg),
                                 back, cfg)
    np.testing.assert_allclose(again.initial, p, rtol=1e-9)
    for kind in ("c1", "strength", "tendon_slack_length"):
        np.testing.assert_allclose(again.per_mtu(again.initial)[kind], values[kind], rtol=1e-9)
    round_trip = subject_from_values(muscle_properties(back), again.per_mtu(again.initial),
                                     back.dofs, em_delay_s=back.em_delay_s,
                                     percentage_change=back.percentage_change,
                                     calibration_info=back.calibration_info)
    assert round_trip == back
