"""The curves against OpenSim's own DeGrooteFregly2016Muscle, and their gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.nms import curves

opensim = pytest.importorskip("opensim")

_MUSCLE = opensim.DeGrooteFregly2016Muscle()

# (our curve, OpenSim method, dense grid across the domain). The active curve's second term has
# zero width at l~ = 0.1495 (exactly 0 there, in both); the grid steps over it.
CASES = {
    "active_force_length": (curves.active_force_length, "calcActiveForceLengthMultiplier",
                            np.linspace(0.0, 2.5, 2001)),
    "passive_force_length": (curves.passive_force_length, "calcPassiveForceMultiplier",
                             np.linspace(0.0, 2.2, 2001)),
    "force_velocity": (curves.force_velocity, "calcForceVelocityMultiplier",
                       np.linspace(-1.5, 1.5, 2001)),
    "force_velocity_inverse": (curves.force_velocity_inverse, "calcForceVelocityInverseCurve",
                               np.linspace(-0.3, 2.0, 2001)),
    "tendon_force_length": (curves.tendon_force_length, "calcTendonForceMultiplier",
                            np.linspace(0.8, 1.1, 2001)),
    "tendon_force_length_inverse": (curves.tendon_force_length_inverse,
                                    "calcTendonForceLengthInverseCurve",
                                    np.linspace(-0.19, 3.0, 2001)),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_curve_equals_opensim(name: str) -> None:
    ours, method, grid = CASES[name]
    expected = np.array([getattr(_MUSCLE, method)(float(x)) for x in grid])
    got = ours(torch.as_tensor(grid, dtype=torch.float64)).numpy()
    np.testing.assert_allclose(got, expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("name", sorted(CASES))
def test_curve_gradcheck(name: str) -> None:
    ours, _, grid = CASES[name]
    points = torch.as_tensor(grid[::200] + 1e-3, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(ours, (points,))


def test_inverses_round_trip() -> None:
    velocity = torch.linspace(-1.0, 1.0, 101, dtype=torch.float64)
    back = curves.force_velocity_inverse(curves.force_velocity(velocity))
    torch.testing.assert_close(back, velocity, rtol=0, atol=1e-12)
    length = torch.linspace(0.9, 1.08, 101, dtype=torch.float64)
    back = curves.tendon_force_length_inverse(curves.tendon_force_length(length))
    torch.testing.assert_close(back, length, rtol=0, atol=1e-12)


def test_landmarks() -> None:
    one = torch.ones(1, dtype=torch.float64)
    assert float(curves.active_force_length(one)) == pytest.approx(1.0, abs=1e-12)
    assert float(curves.force_velocity(0 * one)) == pytest.approx(1.0, abs=1e-12)
    assert float(curves.force_velocity(-one)) == pytest.approx(0.0, abs=1e-12)
    assert float(curves.passive_force_length(1.6 * one)) == pytest.approx(1.0, abs=1e-12)
    assert float(curves.tendon_force_length(one)) == pytest.approx(0.0, abs=1e-15)
    assert float(curves.tendon_force_length(1.049 * one)) == pytest.approx(1.0, abs=1e-12)
    # Below slack the tendon curve continues smoothly to negative force.
    assert -0.2 < float(curves.tendon_force_length(0.9 * one)) < 0.0


def test_float32_and_custom_strain() -> None:
    x = torch.linspace(0.5, 1.5, 11, dtype=torch.float32)
    assert curves.active_force_length(x).dtype == torch.float32
    stiff = curves.tendon_force_length(torch.tensor([1.001], dtype=torch.float64),
                                       strain_at_one_norm_force=0.001)
    assert float(stiff) == pytest.approx(1.0, abs=1e-12)
    with pytest.raises(ValueError):
        curves.tendon_stiffness_exponent(0.0)
