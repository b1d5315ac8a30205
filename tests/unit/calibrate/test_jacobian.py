"""Exact Jacobians: per-muscle tangents, the least-squares residuals' Jacobian, forward-mode rules.

Everything is compared with torch's reverse mode (the model's gradients, themselves gradchecked)
and with central finite differences, in float64.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from torch.autograd import forward_ad as fwAD

from pipeline.calibrate.losses import Objective, penalties_from_config
from pipeline.calibrate.spec import build_spec
from pipeline.calibrate.synthetic import SYNTHETIC_CALIBRATION, make_problem
from pipeline.nms import _iir, make_reference_problem, simulate
from pipeline.nms.tangents import FIELDS, parameter_tangents
from pipeline.nms.tendon import _RosenbrockFiber

F64 = torch.float64


def small_objective(tendon: str, *, groups: bool = False, prior: float = 0.0,
                    tight_penalties: bool = False) -> tuple[Objective, np.ndarray]:
    calibration = dict(SYNTHETIC_CALIBRATION)
    if groups:
        calibration["groups"] = {"g": ["mtu00", "mtu02"]}
        calibration["parameters"] = [*calibration["parameters"], "damping"]
    problem = make_problem(n_mtus=3, n_dofs=2, n_calibration=2, n_validation=1, n_samples=60,
                           tendon=tendon, seed=3, model_error=0.1, calibration=calibration)
    penalties = None
    if tight_penalties:  # make both penalties active on many samples
        penalties = penalties_from_config({"fiber_length": {"lower": 0.95, "upper": 1.0,
                                                            "weight": 10.0},
                                           "tendon_strain": {"lower": 0.0, "upper": 0.01,
                                                             "weight": 10.0}})
    if groups:
        assert len(problem.spec.blocks["strength"].entry_names) == 2
    objective = Objective(problem.spec, problem.calibration, tendon=tendon,
                          emd_s=problem.emd_s, penalties=penalties, prior_weight=prior)
    p = 0.5 * (problem.spec.initial + problem.truth)
    return objective, p


def reverse_jacobian(objective: Objective, p: np.ndarray) -> np.ndarray:
    x = torch.as_tensor(p, dtype=F64)
    return torch.autograd.functional.jacobian(objective.all_residuals, x).numpy()


def central_differences(objective: Objective, p: np.ndarray, rel_step: float = 1e-6
                        ) -> np.ndarray:
    columns = []
    with torch.no_grad():
        for k in range(p.size):
            h = rel_step * max(abs(p[k]), 1e-2)
            up, down = p.copy(), p.copy()
            up[k] += h
            down[k] -= h
            columns.append((objective.all_residuals(torch.as_tensor(up))
                            - objective.all_residuals(torch.as_tensor(down))).numpy() / (2 * h))
    return np.stack(columns, axis=1)


@pytest.mark.parametrize("tendon", ["stiff", "elastic"])
@pytest.mark.parametrize("variant", ["plain", "groups_prior_penalties"])
def test_residual_jacobian_equals_reverse_mode_and_finite_differences(tendon: str,
                                                                      variant: str) -> None:
    extra = variant != "plain"
    objective, p = small_objective(tendon, groups=extra, prior=0.3 if extra else 0.0,
                                   tight_penalties=extra)
    residuals, jac = objective.residuals_and_jacobian(torch.as_tensor(p))
    with torch.no_grad():
        np.testing.assert_allclose(residuals.numpy(),
                                   objective.all_residuals(torch.as_tensor(p)).numpy(),
                                   rtol=0, atol=1e-14)
    ours = jac
    reverse = reverse_jacobian(objective, p)
    assert ours.shape == reverse.shape
    scale = np.abs(reverse).max()
    np.testing.assert_allclose(ours, reverse, rtol=0, atol=1e-8 * scale)
    if extra:  # the penalty and prior rows really are exercised
        n_track = int(objective.data.mask.sum()) * len(objective.data.dof_names)
        assert np.abs(ours[n_track:]).max() > 1e-3 * scale
    fd = central_differences(objective, p)
    np.testing.assert_allclose(ours, fd, rtol=0, atol=1e-6 * scale)


@pytest.mark.parametrize("tendon", ["stiff", "elastic"])
def test_residual_jacobian_of_a_partial_spec_on_padded_trials(tendon: str) -> None:
    """Some MTUs fixed (the column map is not the identity) and a shorter, padded trial."""
    objective, p_full = small_objective(tendon)
    problem_spec = objective.spec
    calibration = dict(SYNTHETIC_CALIBRATION)
    spec = build_spec(problem_spec.muscles, calibration, calibrated_mtus={"mtu00", "mtu02"})
    assert 0 < spec.n_free < problem_spec.n_free
    mask = objective.data.mask.clone()
    mask[0, -9:] = False
    data = dataclasses.replace(objective.data, mask=mask)
    partial = Objective(spec, data, tendon=tendon, emd_s=objective.emd_s)
    p = 0.5 * (spec.initial + spec.upper)
    _, ours = partial.residuals_and_jacobian(torch.as_tensor(p))
    reverse = reverse_jacobian(partial, p)
    assert ours.shape == reverse.shape
    np.testing.assert_allclose(ours, reverse, rtol=0, atol=1e-8 * np.abs(reverse).max())


@pytest.mark.parametrize("tendon", ["stiff", "elastic"])
def test_parameter_tangents_match_reverse_mode_on_the_reference_problem(tendon: str) -> None:
    problem = make_reference_problem(n_mtus=4, n_dofs=2, n_trials=2, n_samples=80,
                                     tendon=tendon, seed=1)
    params = problem.params
    values, tangents = parameter_tangents(params, problem.excitation, problem.mtu_length_m,
                                          dt_s=problem.dt_s, tendon=tendon,
                                          emd_s=problem.emd_s)
    leaves = {f: getattr(params, f).clone().requires_grad_() for f in FIELDS}
    out = simulate(params.replace(**leaves), problem.excitation, problem.mtu_length_m,
                   problem.moment_arm_m, dt_s=problem.dt_s, tendon=tendon, emd_s=problem.emd_s)
    generator = torch.Generator().manual_seed(0)
    for name in ("force_n", "normalized_fiber_length", "tendon_strain"):
        reference = getattr(out, name)
        torch.testing.assert_close(getattr(values, name), reference.detach(), rtol=0, atol=0)
        weights = torch.randn(reference.shape, generator=generator, dtype=F64)
        grads = torch.autograd.grad((weights * reference).sum(), list(leaves.values()),
                                    retain_graph=True, allow_unused=True)
        for field, grad in zip(FIELDS, grads, strict=True):
            mine = (weights * getattr(tangents[field], name)).sum(dim=(0, 2))
            expected = torch.zeros_like(mine) if grad is None else grad
            scale = max(float(expected.abs().max()), 1e-300)
            assert float((mine - expected).abs().max()) <= 1e-10 * max(scale, 1.0), (name, field)


def rosenbrock_inputs() -> tuple[torch.Tensor, ...]:
    rng = np.random.default_rng(5)
    n, n_time = 3, 40
    l0 = torch.as_tensor(rng.uniform(0.08, 0.12, n))
    lts = torch.as_tensor(rng.uniform(0.18, 0.25, n))
    t = torch.linspace(0.0, 0.4, n_time, dtype=F64)
    lmt = (lts * 1.02 + l0)[:, None] + 0.01 * torch.sin(6.0 * t)[None, :]
    act = 0.3 + 0.2 * torch.sin(4.0 * t)[None, :] ** 2 * torch.ones(n, 1, dtype=F64)
    damping = torch.full((n,), 0.02, dtype=F64)
    sin_phi0 = torch.sin(torch.as_tensor(rng.uniform(0.0, 0.3, n)))
    return l0 * 1.0, act, lmt, l0, lts, damping, sin_phi0


def test_rosenbrock_forward_mode_rule_matches_reverse_mode_and_gradcheck() -> None:
    inputs = rosenbrock_inputs()
    dt_s, k_tendon = 0.01, 35.0
    generator = torch.Generator().manual_seed(2)
    tangents = [torch.randn(x.shape, generator=generator, dtype=F64) for x in inputs]
    with fwAD.dual_level():
        duals = [fwAD.make_dual(x, t) for x, t in zip(inputs, tangents, strict=True)]
        length, velocity = _RosenbrockFiber.apply(*duals, dt_s, k_tendon)
        jvp = [fwAD.unpack_dual(o).tangent for o in (length, velocity)]
    leaves = [x.clone().requires_grad_() for x in inputs]
    outputs = _RosenbrockFiber.apply(*leaves, dt_s, k_tendon)
    for out, tangent in zip(outputs, jvp, strict=True):
        weights = torch.randn(out.shape, generator=generator, dtype=F64)
        grads = torch.autograd.grad((weights * out).sum(), leaves, retain_graph=True)
        expected = sum((g * t).sum() for g, t in zip(grads, tangents, strict=True))
        torch.testing.assert_close((weights * tangent).sum(), expected, rtol=1e-10, atol=1e-12)
    assert torch.autograd.gradcheck(
        lambda *x: _RosenbrockFiber.apply(*x, dt_s, k_tendon), leaves, eps=1e-7, atol=1e-6,
        check_forward_ad=True)


def test_recursive_filter_equals_its_definition_and_passes_gradcheck() -> None:
    rng = np.random.default_rng(6)
    x = torch.as_tensor(rng.uniform(0.0, 1.0, (3, 30)))
    c1 = torch.as_tensor(rng.uniform(-0.9, -0.1, 3))
    c2 = torch.as_tensor(rng.uniform(-0.9, -0.1, 3))
    coefficients = (1.0 + c1 + c2 + c1 * c2, c1 + c2, c1 * c2)
    out = _iir.RecursiveFilter.apply(x, *coefficients)
    expected = torch.zeros_like(x)
    for i in range(x.shape[1]):
        prev1 = expected[:, i - 1] if i >= 1 else 0.0
        prev2 = expected[:, i - 2] if i >= 2 else 0.0
        expected[:, i] = (coefficients[0] * x[:, i] - coefficients[1] * prev1
                          - coefficients[2] * prev2)
    torch.testing.assert_close(out, expected, rtol=1e-13, atol=1e-14)
    leaves = [x.clone().requires_grad_(), *(c.clone().requires_grad_() for c in coefficients)]
    assert torch.autograd.gradcheck(_iir.RecursiveFilter.apply, leaves, check_forward_ad=True)
