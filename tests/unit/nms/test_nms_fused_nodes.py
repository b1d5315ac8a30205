"""The fused autograd nodes (fibre force, activation non-linearity) against the plain formulas.

Oracles: the force and activation written out from :mod:`pipeline.nms.curves` and ``expm1``
(values), torch autograd through those compositions (slopes), and float64 ``gradcheck`` in reverse
and forward mode (finite differences).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch.autograd import forward_ad

from pipeline.nms import curves
from pipeline.nms.activation import muscle_activation, muscle_activation_and_partials
from pipeline.nms.mtu import fiber_force_along_tendon

F64 = torch.float64


def _composed_force(a, length, velocity, l0, phi0, fmax, strength, damping):
    """The force written out from the curves, autograd all the way."""
    norm_length = length / l0[:, None]
    norm_velocity = velocity / (curves.MAX_CONTRACTION_VELOCITY_PER_S * l0[:, None])
    normalized = (curves.active_force_length(norm_length) * curves.force_velocity(norm_velocity)
                  * a + curves.passive_force_length(norm_length) + damping[:, None] * norm_velocity)
    width = (l0 * torch.sin(phi0))[:, None]
    return (fmax * strength)[:, None] * normalized * torch.sqrt(length**2 - width**2) / length


def _force(*x: torch.Tensor) -> torch.Tensor:
    return fiber_force_along_tendon(x[0], x[1], x[2], optimal_fiber_length_m=x[3],
                                    pennation_at_optimal_rad=x[4], max_isometric_force_n=x[5],
                                    strength=x[6], damping=x[7])


def _force_inputs(*, signal_shape: tuple[int, ...] = (2, 3, 9)) -> list[torch.Tensor]:
    gen = torch.Generator().manual_seed(3)
    n_muscles = signal_shape[-2]
    l0 = torch.tensor([0.1, 0.2, 0.05], dtype=F64)[:n_muscles]
    shape = signal_shape
    act = torch.rand(shape, generator=gen, dtype=F64)
    # Lengths either side of optimal (ascending and descending limbs, passive range) and
    # velocities up to about 0.4 of the maximum, shortening and lengthening.
    length = l0[:, None] * (0.55 + 1.0 * torch.rand(shape, generator=gen, dtype=F64))
    velocity = (torch.rand(shape, generator=gen, dtype=F64) - 0.5) * 8.0 * l0[:, None]
    params = [l0, torch.tensor([0.15, 0.35, 0.0], dtype=F64)[:n_muscles],  # phi0 = 0 too
              torch.tensor([600.0, 1500.0, 300.0], dtype=F64)[:n_muscles],
              torch.tensor([1.0, 1.3, 0.7], dtype=F64)[:n_muscles],
              torch.tensor([0.01, 0.0, 0.1], dtype=F64)[:n_muscles]]
    return [x.clone().requires_grad_() for x in (act, length, velocity, *params)]


def test_fiber_force_equals_curve_composition_and_its_gradient() -> None:
    inputs = _force_inputs()
    fused = _force(*inputs)
    composed = _composed_force(*inputs)
    torch.testing.assert_close(fused, composed, rtol=1e-13, atol=1e-10)
    weights = torch.rand(fused.shape, generator=torch.Generator().manual_seed(5), dtype=F64)
    fused_grads = torch.autograd.grad((fused * weights).sum(), inputs)
    composed_grads = torch.autograd.grad((composed * weights).sum(), inputs)
    for mine, truth in zip(fused_grads, composed_grads, strict=True):
        torch.testing.assert_close(mine, truth, rtol=1e-11, atol=1e-9)
    with torch.no_grad():  # the value-only path
        torch.testing.assert_close(_force(*inputs), composed.detach(), rtol=1e-13, atol=1e-10)


def test_fiber_force_gradcheck_reverse_and_forward_mode() -> None:
    inputs = _force_inputs(signal_shape=(2, 3, 5))
    assert torch.autograd.gradcheck(_force, inputs)
    assert torch.autograd.gradcheck(_force, inputs, check_forward_ad=True,
                                    check_backward_ad=False, check_undefined_grad=False,
                                    check_batched_grad=False)


def test_fiber_force_broadcast_signals_and_forward_mode_without_reverse() -> None:
    inputs = _force_inputs(signal_shape=(2, 3, 5))
    inputs[0] = inputs[0][:1].detach().clone().requires_grad_()  # one activation for both trials
    assert torch.autograd.gradcheck(_force, inputs)
    # Forward mode alone (no input needs a reverse gradient): the partials are built on demand.
    plain = [x.detach() for x in inputs]
    tangents = [torch.rand_like(x) for x in plain]
    with forward_ad.dual_level():
        duals = [forward_ad.make_dual(x, t) for x, t in zip(plain, tangents, strict=True)]
        tangent = forward_ad.unpack_dual(_force(*duals)).tangent
    step = 1e-6
    ahead = _force(*[x + step * t for x, t in zip(plain, tangents, strict=True)])
    behind = _force(*[x - step * t for x, t in zip(plain, tangents, strict=True)])
    torch.testing.assert_close(tangent, (ahead - behind) / (2 * step), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", ["active_force_length", "passive_force_length",
                                  "force_velocity"])
def test_curve_slopes_equal_autograd(name: str) -> None:
    x = torch.linspace(-1.2 if name == "force_velocity" else 0.3, 1.8, 301, dtype=F64,
                       requires_grad=True)
    value = getattr(curves, name)(x)
    (slope,) = torch.autograd.grad(value.sum(), x)
    fused_value, fused_slope = getattr(curves, f"{name}_and_slope")(x.detach())
    torch.testing.assert_close(fused_value, value.detach(), rtol=1e-14, atol=1e-15)
    torch.testing.assert_close(fused_slope, slope, rtol=1e-12, atol=1e-13)
    # the same function on a numpy array (the CEINMS objective's array Jacobian), in place on
    # its own temporaries only: the input is left as it was
    x_np = x.detach().numpy().copy()
    np_value, np_slope = getattr(curves, f"{name}_and_slope")(x_np)
    assert isinstance(np_value, np.ndarray) and isinstance(np_slope, np.ndarray)
    np.testing.assert_array_equal(x_np, x.detach().numpy())
    np.testing.assert_allclose(np_value, value.detach().numpy(), rtol=1e-14, atol=1e-15)
    np.testing.assert_allclose(np_slope, slope.numpy(), rtol=1e-12, atol=1e-13)


@pytest.mark.parametrize("shapes", [(-2.5, -0.9, -1e-2, -1e-3), (-2.5, -1e-4, 0.0, 1e-7)],
                         ids=["exponential-forms", "series-forms"])
def test_muscle_activation_partials_on_numpy_arrays_equal_autograd(
        shapes: tuple[float, ...]) -> None:
    """muscle_activation_and_partials on numpy arrays: the activation and its partials in u
    and A equal torch autograd's of muscle_activation (both closed forms and the series)."""
    gen = torch.Generator().manual_seed(8)
    neural = torch.rand(2, 4, 8, generator=gen, dtype=F64, requires_grad=True)
    shape = torch.tensor(shapes, dtype=F64, requires_grad=True)
    act = muscle_activation(neural, shape)
    by_neural, = torch.autograd.grad(act.sum(), neural, retain_graph=True)
    by_shape = torch.stack([torch.autograd.grad(act[:, m].sum(), shape, retain_graph=True)[0][m]
                            for m in range(len(shapes))])
    a_np, by_neural_np, by_shape_np = muscle_activation_and_partials(
        neural.detach().numpy(), shape.detach().numpy())
    np.testing.assert_allclose(a_np, act.detach().numpy(), rtol=1e-13, atol=1e-15)
    np.testing.assert_allclose(by_neural_np, by_neural.numpy(), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(by_shape_np.sum(axis=(0, 2)), by_shape.numpy(), rtol=1e-12,
                               atol=1e-14)


@pytest.mark.parametrize("shapes", [(-2.5, -0.9, -1e-2, -1e-3), (-2.5, -1e-4, 0.0, 1e-7)],
                         ids=["exponential-forms", "series-forms"])
def test_muscle_activation_values_and_both_modes(shapes: tuple[float, ...]) -> None:
    gen = torch.Generator().manual_seed(7)
    neural = torch.rand(2, 4, 8, generator=gen, dtype=F64)
    neural[0, :, 0] = 0.0  # A u = 0 exactly
    shape = torch.tensor(shapes, dtype=F64)
    act = muscle_activation(neural, shape)
    for m, a_shape in enumerate(shapes):
        expected = (neural[:, m] if a_shape == 0.0
                    else torch.expm1(a_shape * neural[:, m]) / math.expm1(a_shape))
        torch.testing.assert_close(act[:, m], expected, rtol=1e-12, atol=1e-15)
    inputs = (neural.requires_grad_(), shape.requires_grad_())
    assert torch.autograd.gradcheck(muscle_activation, inputs)
    assert torch.autograd.gradcheck(muscle_activation, inputs, check_forward_ad=True,
                                    check_backward_ad=False, check_undefined_grad=False,
                                    check_batched_grad=False)
