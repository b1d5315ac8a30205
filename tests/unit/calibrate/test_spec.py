"""Parameter specification: sharing, bounds (absolute and relative), initial values, mapping."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from pipeline.calibrate.spec import MuscleProperties, build_spec
from pipeline.calibrate.synthetic import SYNTHETIC_CALIBRATION
from pipeline.errors import ConfigError

NAMES = ("biceps", "brachialis", "triceps_long", "triceps_lat")


def muscles() -> MuscleProperties:
    return MuscleProperties(NAMES, np.array([0.12, 0.09, 0.13, 0.11]),
                            np.array([0.25, 0.05, 0.20, 0.10]), np.array([600.0, 900, 800, 700]),
                            np.array([0.0, 0.1, 0.2, 0.15]))


def config(**changes) -> dict:
    cfg = copy.deepcopy(SYNTHETIC_CALIBRATION)
    cfg.update(changes)
    return cfg


def test_groups_share_strength_and_activation_sharing() -> None:
    spec = build_spec(muscles(), config(groups={"flexors": ["biceps", "brachialis"]},
                                        activation_sharing="global"))
    assert spec.blocks["strength"].entry_names == ("flexors", "triceps_long", "triceps_lat")
    assert list(spec.blocks["strength"].index) == [0, 0, 1, 2]
    assert spec.blocks["c1"].entry_names == ("global",)
    # 1 c1 + 1 c2 + 1 A + 4 l0 + 4 lts + 3 strength
    assert spec.n_free == 14
    p = torch.as_tensor(spec.initial)
    full = spec.expand(p.clone())
    assert torch.equal(full["strength"][0], full["strength"][1])
    assert full["c1"].shape == (4,)


def test_relative_bounds_and_model_initial_values() -> None:
    spec = build_spec(muscles(), config())
    block = spec.blocks["tendon_slack_length"]
    np.testing.assert_allclose(block.initial, muscles().tendon_slack_length_m)
    np.testing.assert_allclose(block.lower, 0.7 * muscles().tendon_slack_length_m)
    np.testing.assert_allclose(block.upper, 1.3 * muscles().tendon_slack_length_m)
    assert spec.blocks["c1"].initial[0] == pytest.approx(-0.5)


def test_fixed_kinds_stay_at_initial_value() -> None:
    spec = build_spec(muscles(), config(parameters=["strength"]))
    assert spec.free_kinds == ("strength",)
    full = spec.expand(torch.tensor([1.5, 1.5, 1.5, 1.5], dtype=torch.float64))
    np.testing.assert_allclose(full["optimal_fiber_length"].numpy(),
                               muscles().optimal_fiber_length_m)


def test_initial_outside_bounds_names_the_parameter() -> None:
    cfg = config()
    cfg["bounds"] = {**cfg["bounds"], "c1": {"lower": -0.9, "upper": -0.6}}
    with pytest.raises(ConfigError, match=r"initial c1 of 'biceps' = -0\.5.*bounds.c1"):
        build_spec(muscles(), cfg)


def test_lower_not_below_upper_and_missing_bounds() -> None:
    cfg = config()
    cfg["bounds"] = {**cfg["bounds"], "strength": {"lower": 2.0, "upper": 1.0}}
    with pytest.raises(ConfigError, match="strength"):
        build_spec(muscles(), cfg)
    cfg = config()
    cfg["bounds"] = {k: v for k, v in cfg["bounds"].items() if k != "c2"}
    with pytest.raises(ConfigError, match="c2 has no bounds"):
        build_spec(muscles(), cfg)


def test_bounded_mapping_round_trip_and_stays_inside() -> None:
    spec = build_spec(muscles(), config())
    z = torch.linspace(-40.0, 40.0, spec.n_free, dtype=torch.float64)
    p = spec.to_physical(z)
    assert torch.all(p >= torch.as_tensor(spec.lower)) and torch.all(
        p <= torch.as_tensor(spec.upper))
    p0 = torch.as_tensor(spec.initial)
    torch.testing.assert_close(spec.to_physical(spec.to_unconstrained(p0)), p0)
    np.testing.assert_allclose(spec.denormalise(spec.normalise(spec.initial)), spec.initial)


def test_bounded_mapping_gradcheck() -> None:
    spec = build_spec(muscles(), config())
    z = (0.3 * torch.randn(spec.n_free, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(spec.to_physical, (z,))
    assert torch.autograd.gradcheck(lambda v: spec.expand(spec.to_physical(v))["strength"], (z,))
