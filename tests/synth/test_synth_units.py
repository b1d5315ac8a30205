"""Fast checks of the demo generator's building blocks against physics and closed forms."""

from __future__ import annotations

import ezc3d
import numpy as np
import pytest

from pipeline.synth import emg
from pipeline.synth.c3d_writer import AnalogChannel, Plate, write_c3d
from pipeline.synth.excitations import bspline_basis
from pipeline.synth.ground import split_ground_reaction
from pipeline.synth.motions import differentiate, min_jerk_cycles


def test_min_jerk_cycles_peak_and_rest() -> None:
    t = np.arange(0, 5.0, 0.001)
    s = min_jerk_cycles(t, start_s=0.5, period_s=2.0, n_cycles=2)
    assert s.max() == pytest.approx(1.0, abs=1e-6)
    assert np.all(s[t < 0.5] == 0) and np.all(s[t > 4.5] == 0)
    assert s[np.argmin(np.abs(t - 1.5))] == pytest.approx(1.0)


def test_differentiate_matches_analytic_derivatives() -> None:
    t = np.linspace(0, 2, 201)
    motion = differentiate(lambda x: {"q": np.sin(3 * x)}, t)
    assert np.allclose(motion.qdot["q"], 3 * np.cos(3 * t), atol=1e-8)
    assert np.allclose(motion.qddot["q"], -9 * np.sin(3 * t), atol=1e-5)


def test_bspline_basis_is_a_partition_of_unity() -> None:
    basis = bspline_basis(500, dt_s=0.01, knot_spacing_s=0.12)
    assert np.allclose(basis.sum(axis=1), 1.0)
    assert basis.min() >= 0.0


def test_ground_reaction_balances_pelvis_residuals() -> None:
    rng = np.random.default_rng(1)
    n = 50
    residuals = {"pelvis_tx": rng.normal(0, 20, n), "pelvis_ty": 700 + rng.normal(0, 50, n),
                 "pelvis_tilt": rng.normal(0, 30, n)}
    origin = np.column_stack([rng.normal(0, 0.1, n), 0.9 + rng.normal(0, 0.05, n), np.zeros(n)])
    right, left = split_ground_reaction(residuals, pelvis_origin_m=origin,
                                        foot_z_m={"r": 0.09, "l": -0.09})
    total = right.force_n + left.force_n
    assert np.allclose(total[:, 0], residuals["pelvis_tx"])
    assert np.allclose(total[:, 1], residuals["pelvis_ty"])
    moment = sum((f.cop_m[:, 0] - origin[:, 0]) * f.force_n[:, 1]
                 - (f.cop_m[:, 1] - origin[:, 1]) * f.force_n[:, 0] for f in (right, left))
    assert np.allclose(moment, residuals["pelvis_tilt"])
    assert np.all(right.cop_m[:, 1] == 0.0) and np.all(right.cop_m[:, 2] == 0.09)


def test_plate_written_by_us_is_read_back_by_ezc3d(tmp_path) -> None:
    """Forces, COP and free moment of a type-2 plate survive ezc3d's platform extraction."""
    n_frames, ratio = 20, 10
    n = n_frames * ratio
    plate = Plate((300.0, -200.0, 0.0))
    grf = np.column_stack([np.linspace(-40, 60, n), np.linspace(10, -20, n),
                           np.linspace(600, 800, n)])
    cop = np.column_stack([np.linspace(250, 380, n), np.linspace(-150, -260, n), np.zeros(n)])
    free = np.column_stack([np.zeros(n), np.zeros(n), np.linspace(-2000, 3000, n)])
    path = write_c3d(tmp_path / "plate.c3d", point_rate_hz=100.0,
                     markers_mm={"M": np.ones((n_frames, 3))}, analog_rate_hz=1000.0,
                     analogs=[AnalogChannel("EMG1", "V", np.zeros(n))],
                     plates=[(plate, plate.channels(grf, cop, free))])
    c3d = ezc3d.c3d(str(path), extract_forceplat_data=True)
    platform = c3d["data"]["platform"][0]
    assert platform["unit_force"] == "N" and platform["unit_position"] == "mm"
    assert np.allclose(-platform["force"].T, grf, atol=1e-6)
    assert np.allclose(platform["center_of_pressure"].T, cop, atol=1e-4)
    assert np.allclose(-platform["Tz"].T[:, 2], free[:, 2], atol=1e-3)
    assert np.allclose(platform["corners"].T, plate.corners_mm)
    params = c3d["parameters"]["FORCE_PLATFORM"]
    assert params["TYPE"]["value"].tolist() == [2]
    assert params["ORIGIN"]["value"].ravel().tolist() == [0.0, 0.0, -40.0]
    assert c3d["parameters"]["ANALOG"]["UNITS"]["value"][1:4] == ["N", "N", "N"]


def test_gap_written_as_nan_with_negative_residual(tmp_path) -> None:
    mask = np.zeros(30, dtype=bool)
    mask[10:14] = True
    path = write_c3d(tmp_path / "gap.c3d", point_rate_hz=100.0,
                     markers_mm={"A": np.ones((30, 3)), "B": np.ones((30, 3)) * 2},
                     analog_rate_hz=1000.0, analogs=[AnalogChannel("X", "V", np.zeros(300))],
                     missing={"B": mask})
    c3d = ezc3d.c3d(str(path))
    residuals = c3d["data"]["meta_points"]["residuals"][0]
    assert np.all(residuals[1, mask] < 0) and np.all(residuals[1, ~mask] >= 0)
    assert np.all(residuals[0] >= 0)


def test_mvc_normalisation_maps_envelope_back_to_excitation() -> None:
    """Same chain as the pipeline: envelope / MVC max recovers the true excitation."""
    rate, point = 2000.0, 100.0
    rng = np.random.default_rng(3)
    level = emg.unit_envelope_level(rate_hz=rate)
    gains = np.array([0.5e-3, 1.2e-3])
    t = np.arange(600) / point
    excitation = np.vstack([0.05 + 0.4 * np.sin(np.pi * t / 6) ** 2,
                            0.1 + 0.6 * np.sin(np.pi * t / 3) ** 2])
    raw = emg.raw_emg(excitation, gains_v=gains, point_rate_hz=point, analog_rate_hz=rate,
                      n_analog=12000, rng=rng)
    mvc_e = emg.mvc_excitation(300, point_rate_hz=point, n_channels=2)
    mvc = emg.scale_mvc(emg.raw_emg(mvc_e, gains_v=gains, point_rate_hz=point,
                                    analog_rate_hz=rate, n_analog=6000, rng=rng),
                        gains_v=gains, rate_hz=rate, level=level)
    normalised = emg.envelope(raw, rate_hz=rate) / emg.envelope(mvc, rate_hz=rate).max(
        axis=1, keepdims=True)
    truth = emg.upsample(excitation, point_rate_hz=point, analog_rate_hz=rate, n_analog=12000)
    inner = slice(2000, -2000)
    error = normalised[:, inner] - truth[:, inner]
    assert np.abs(error.mean(axis=1)).max() < 0.03  # no bias
    assert np.sqrt((error**2).mean(axis=1)).max() < 0.08  # envelope ripple only


def test_true_shape_factor_is_never_next_to_the_initial_guess() -> None:
    from pipeline.osim.models import build_model
    from pipeline.synth.parameters import generic_muscles, perturbed_muscles

    generic = generic_muscles(build_model("demo-arm"), ("delt_ant", "delt_med"), c1=-0.5,
                              c2=-0.5, shape_factor=-1.0)
    for seed in range(40):
        truth = perturbed_muscles(generic, np.random.default_rng(seed))
        assert abs(truth.shape_factor[0] + 1.0) >= 0.25 - 1e-12, seed
        assert -2.5 <= truth.shape_factor[0] <= -0.5
        assert np.all(truth.shape_factor == truth.shape_factor[0])


def test_true_strength_is_shared_within_each_strength_group() -> None:
    from pipeline.osim.models import build_model
    from pipeline.synth.parameters import generic_muscles, perturbed_muscles

    names = ("delt_ant", "delt_med", "delt_post", "biceps_long", "biceps_short", "brachialis")
    generic = generic_muscles(build_model("demo-arm"), names, c1=-0.5, c2=-0.5, shape_factor=-1.0)
    groups = {"deltoid": ("delt_ant", "delt_med", "delt_post"),
              "flexors": ("biceps_long", "biceps_short")}
    truth = perturbed_muscles(generic, np.random.default_rng(3), strength_groups=groups)
    s = dict(zip(names, truth.strength, strict=True))
    assert s["delt_ant"] == s["delt_med"] == s["delt_post"]
    assert s["biceps_long"] == s["biceps_short"]
    assert len({s["delt_ant"], s["biceps_long"], s["brachialis"]}) == 3  # brachialis: own draw
    assert all(0.7 <= v <= 1.4 for v in s.values())


def test_perturbed_segments_are_physical_and_round_trip_through_opensim() -> None:
    """Many draws of a rod-like segment stay physically valid with the draw's mass range; the
    true model keeps its known payload and ground-welded bodies, and OpenSim reads back exactly
    what was set (the principal moments are those of the rotated inertia)."""
    from pipeline.synth.inertia import (
        BodyInertia,
        perturbed_body,
        physically_valid,
        read_bodies,
        true_model,
        welded_to_ground,
    )

    rng = np.random.default_rng(3)
    rod = BodyInertia(2.0, (0.0, -0.17, 0.0), (0.0139, 0.0043, 0.0124, 0.0, 0.0, 0.0))
    draws = [perturbed_body(rod, rng) for _ in range(300)]
    assert all(physically_valid(d) for d in draws)
    masses = np.array([d.mass_kg for d in draws]) / rod.mass_kg
    assert 0.7 <= masses.min() and masses.max() <= 1.3 and 0.07 < masses.std() < 0.13
    shifts = np.array([np.subtract(d.com_m, rod.com_m) for d in draws])
    assert 0.013 < shifts.std() < 0.021  # 10 % of the 0.17 m distance scale
    assert not physically_valid(BodyInertia(1.0, (0, 0, 0), (1.0, 0.2, 0.2, 0, 0, 0)))

    model, true, generic = true_model("demo-arm-dumbbell", rng=np.random.default_rng(0),
                                      known_bodies=("dumbbell",))
    assert welded_to_ground(model) == ("thorax",)
    assert true["dumbbell"] == generic["dumbbell"] and true["thorax"] == generic["thorax"]
    assert all(true[b] != generic[b] for b in ("humerus", "forearm", "hand"))
    model.initSystem()
    back = read_bodies(model)
    for name, body in true.items():
        assert back[name].mass_kg == body.mass_kg
        assert np.allclose(back[name].com_m, body.com_m, rtol=0, atol=1e-15)
        assert np.allclose(back[name].inertia_kg_m2, body.inertia_kg_m2, rtol=1e-12, atol=0)
