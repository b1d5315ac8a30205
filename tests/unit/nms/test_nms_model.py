"""The whole model: shapes, dtypes, gradients w.r.t. every parameter, bounds, reference problem."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from pipeline.nms import (
    MuscleParameters,
    from_unconstrained,
    make_reference_problem,
    relative_bounds,
    simulate,
    to_unconstrained,
)

CALIBRATED = ("c1", "c2", "shape_factor", "optimal_fiber_length_m", "tendon_slack_length_m",
              "strength", "damping")


@pytest.fixture(scope="module")
def small() -> dict:
    problems = {}
    for tendon in ("stiff", "elastic"):
        problems[tendon] = make_reference_problem(n_mtus=3, n_dofs=2, n_trials=2, n_samples=30,
                                                  tendon=tendon, seed=3)
    return problems


@pytest.mark.parametrize("tendon", ["stiff", "elastic"])
def test_moments_gradcheck_every_parameter(small: dict, tendon: str) -> None:
    problem = small[tendon]
    base = problem.params

    def moments(*values: torch.Tensor) -> torch.Tensor:
        params = base.replace(**dict(zip(CALIBRATED, values, strict=True)))
        # Scale to O(1) so gradcheck's absolute tolerance is meaningful.
        return simulate(params, problem.excitation, problem.mtu_length_m, problem.moment_arm_m,
                        dt_s=problem.dt_s, tendon=tendon, emd_s=problem.emd_s).moments_nm / 100.0

    values = tuple(getattr(base, name).clone().requires_grad_() for name in CALIBRATED)
    assert torch.autograd.gradcheck(moments, values)


def test_gradients_wrt_signals(small: dict) -> None:
    problem = small["elastic"]
    excitation = problem.excitation[:1, :, :12].clone().requires_grad_()
    mtu_length = problem.mtu_length_m[:1, :, :12].clone().requires_grad_()

    def moments(e: torch.Tensor, m: torch.Tensor) -> torch.Tensor:
        return simulate(problem.params, e, m, problem.moment_arm_m[:1, ..., :12],
                        dt_s=problem.dt_s, tendon="elastic").moments_nm / 100.0

    assert torch.autograd.gradcheck(moments, (excitation, mtu_length))


def test_shapes_outputs_and_physics() -> None:
    problem = make_reference_problem(n_mtus=5, n_dofs=3, n_trials=2, n_samples=120, seed=1)
    out = problem.output
    assert out.moments_nm.shape == (2, 3, 120)
    for field in ("activation", "fiber_length_m", "fiber_velocity_mps", "force_n",
                  "tendon_force_n", "tendon_strain", "normalized_fiber_length",
                  "normalized_fiber_velocity"):
        assert getattr(out, field).shape == (2, 5, 120), field
    assert 0.5 < float(out.normalized_fiber_length.min()) < float(
        out.normalized_fiber_length.max()) < 1.5
    assert float(out.tendon_strain.min()) > 0.0  # active muscles keep their tendons taut
    # Elastic: tendon force and fibre force along the tendon agree after the start transient.
    gap = (out.tendon_force_n - out.force_n)[..., 5:].abs().max()
    assert float(gap) < 0.01 * float(out.force_n.abs().max())


@pytest.mark.parametrize("tendon", ["stiff", "elastic"])
def test_isometric_steady_state_matches_the_hill_model(tendon: str) -> None:
    """Full excitation held at a constant MTU length: once activation has settled to 1, each
    muscle's force is F_max * strength * (f_L * cos(alpha) + f_PE * cos(alpha)) at zero velocity,
    with OpenSim's DeGrooteFregly2016 curves at the fibre length the tendon model implies, and
    each DOF's moment is the moment-arm-weighted sum of those forces."""
    import opensim

    dgf = opensim.DeGrooteFregly2016Muscle()
    n = 400
    params = MuscleParameters(**{k: torch.tensor(v, dtype=torch.float64) for k, v in {
        "c1": [-0.5, -0.3], "c2": [-0.4, -0.2], "shape_factor": [-1.0, -2.0],
        "optimal_fiber_length_m": [0.10, 0.08], "tendon_slack_length_m": [0.20, 0.25],
        "strength": [1.2, 0.8], "damping": [0.01, 0.01],
        "max_isometric_force_n": [800.0, 1500.0], "pennation_at_optimal_rad": [0.0, 0.2]}.items()})
    # MTU lengths that put the stiff-tendon fibre at 0.95 and 1.1 optimal lengths.
    l0, ls, alpha0 = (params.optimal_fiber_length_m.numpy(), params.tendon_slack_length_m.numpy(),
                      params.pennation_at_optimal_rad.numpy())
    norm = np.array([0.95, 1.1])
    height = l0 * np.sin(alpha0)
    mtu = ls + np.sqrt((norm * l0) ** 2 - height**2)
    arms = np.array([[0.03, -0.01], [-0.02, 0.04]])  # (muscle, dof)
    out = simulate(params, torch.ones(1, 2, n, dtype=torch.float64),
                   torch.as_tensor(np.repeat(mtu[None, :, None], n, axis=2)),
                   torch.as_tensor(np.repeat(arms[None, :, :, None], n, axis=3)),
                   dt_s=0.01, tendon=tendon)
    final = {name: getattr(out, name)[0, :, -1].numpy() for name in
             ("activation", "fiber_length_m", "force_n", "fiber_velocity_mps")}
    np.testing.assert_allclose(final["activation"], 1.0, atol=1e-6)
    np.testing.assert_allclose(final["fiber_velocity_mps"], 0.0, atol=1e-6)
    if tendon == "stiff":
        np.testing.assert_allclose(final["fiber_length_m"], norm * l0, rtol=1e-9)
    fiber = final["fiber_length_m"] / l0
    cos_alpha = np.sqrt(1.0 - (height / final["fiber_length_m"]) ** 2)
    multiplier = np.array([dgf.calcActiveForceLengthMultiplier(float(x))
                           + dgf.calcPassiveForceMultiplier(float(x)) for x in fiber])
    expected_force = (params.max_isometric_force_n * params.strength).numpy() * multiplier \
        * cos_alpha
    np.testing.assert_allclose(final["force_n"], expected_force, rtol=1e-6)
    np.testing.assert_allclose(out.moments_nm[0, :, -1].numpy(), arms.T @ expected_force,
                               rtol=1e-6)


def test_float32_and_stiff_close_to_elastic() -> None:
    elastic = make_reference_problem(n_mtus=4, n_dofs=2, n_trials=1, n_samples=100, seed=2)
    params32 = elastic.params.to(dtype=torch.float32)
    out32 = simulate(params32, elastic.excitation.float(), elastic.mtu_length_m.float(),
                     elastic.moment_arm_m.float(), dt_s=elastic.dt_s)
    assert out32.moments_nm.dtype == torch.float32
    torch.testing.assert_close(out32.moments_nm.double(), elastic.moments_nm, rtol=1e-4, atol=1e-2)
    stiff = simulate(elastic.params, elastic.excitation, elastic.mtu_length_m,
                     elastic.moment_arm_m, dt_s=elastic.dt_s, tendon="stiff")
    assert torch.isfinite(stiff.moments_nm).all()


def test_rejects_bad_input(small: dict) -> None:
    problem = small["stiff"]
    with pytest.raises(ValueError, match="tendon"):
        simulate(problem.params, problem.excitation, problem.mtu_length_m, problem.moment_arm_m,
                 dt_s=problem.dt_s, tendon="rigid")
    with pytest.raises(ValueError, match="moment_arm_m"):
        simulate(problem.params, problem.excitation, problem.mtu_length_m,
                 problem.moment_arm_m[..., :-1], dt_s=problem.dt_s)
    with pytest.raises(ValueError, match="same shape"):
        MuscleParameters(**{**problem.params.as_dict(), "c1": torch.zeros(2)})


def test_bounded_mapping_round_trip_and_gradient() -> None:
    nominal = torch.tensor([0.1, 0.2, 0.05], dtype=torch.float64)
    lower, upper = relative_bounds(nominal, lower_factor=0.5, upper_factor=1.5)
    value = torch.tensor([0.07, 0.29, 0.05], dtype=torch.float64)
    z = to_unconstrained(value, lower=lower, upper=upper)
    torch.testing.assert_close(from_unconstrained(z, lower=lower, upper=upper), value)
    far = from_unconstrained(torch.tensor([-50.0, 50.0], dtype=torch.float64), lower=-0.95,
                             upper=-0.05)
    assert float(far[0]) >= -0.95 and float(far[1]) <= -0.05
    z = z.clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda x: from_unconstrained(x, lower=lower, upper=upper),
                                    (z,))
    with pytest.raises(ValueError):
        from_unconstrained(z, lower=1.0, upper=0.0)


def test_bench_model_cli(tmp_path) -> None:
    from pipeline.__main__ import main

    target = tmp_path / "bm.json"
    assert main(["bench", "model", "--json", str(target), "--repeats", "1", "--warmup", "0"]) == 0
    result = json.loads(target.read_text())
    assert set(result) == {"stiff_ms", "elastic_ms"}
    assert all(value > 0 for value in result.values())
