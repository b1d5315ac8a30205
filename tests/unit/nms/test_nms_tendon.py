"""Stiff and elastic tendon kinematics: exactness, equilibrium, limits and gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.nms import _rosenbrock, curves
from pipeline.nms.activation import activation
from pipeline.nms.mtu import fiber_force_along_tendon, time_derivative
from pipeline.nms.tendon import elastic_fiber_kinematics, stiff_fiber_kinematics, tendon_strain

F64 = torch.float64


def muscle(n: int = 2) -> dict[str, torch.Tensor]:
    return {
        "optimal_fiber_length_m": torch.tensor([0.10, 0.07, 0.12][:n], dtype=F64),
        "tendon_slack_length_m": torch.tensor([0.20, 0.12, 0.25][:n], dtype=F64),
        "pennation_at_optimal_rad": torch.tensor([0.15, 0.0, 0.3][:n], dtype=F64),
    }


def trajectory(n_time: int, dt_s: float, n: int = 2) -> tuple[torch.Tensor, torch.Tensor]:
    """MTU length and activation, (trial=2, muscle=n, time)."""
    t = torch.arange(n_time, dtype=F64) * dt_s
    geometry = muscle(n)
    base = geometry["tendon_slack_length_m"] * 1.02 + geometry["optimal_fiber_length_m"] * 0.95
    wave = torch.stack([0.02 * torch.sin(2.0 * torch.pi * t), 0.015 * torch.sin(3.0 * t) ** 2])
    lmt = base[None, :, None] + wave[:, None, :]
    act = 0.3 + 0.25 * torch.stack([torch.sin(4.0 * t) ** 2, torch.cos(2.5 * t) ** 2])
    return lmt, act[:, None, :].expand(2, n, n_time).clone()


def test_partials_match_autograd() -> None:
    rng = np.random.default_rng(3)
    n = 50
    values = [rng.uniform(0.06, 0.14, n), rng.uniform(-0.5, 0.5, n), rng.uniform(0, 1, n),
              rng.uniform(0.28, 0.34, n), np.full(n, 0.1), np.full(n, 0.2),
              rng.uniform(0, 0.05, n), np.sin(rng.uniform(0, 0.3, n))]
    fl, v, a, lmt, l0, lts, d, sp = (torch.as_tensor(x).requires_grad_() for x in values)
    k_tendon = curves.tendon_stiffness_exponent()
    g, g_l, g_v, g_a, g_lmt = _rosenbrock.residual_and_partials(
        _rosenbrock.TORCH, fl, v, a, lmt, l0, lts, d, sp, k_tendon=k_tendon)
    auto = torch.autograd.grad(g.sum(), [fl, v, a, lmt])
    for ours, theirs in zip((g_l, g_v, g_a, g_lmt), auto, strict=True):
        torch.testing.assert_close(ours, theirs, rtol=1e-12, atol=1e-12)
    # The residual is the normalised tendon force minus the fibre force along the tendon.
    strain = tendon_strain(lmt[:, None], fl[:, None], optimal_fiber_length_m=l0,
                           tendon_slack_length_m=lts,
                           pennation_at_optimal_rad=torch.asin(sp))[:, 0]
    fibre = fiber_force_along_tendon(a[:, None], fl[:, None], v[:, None], optimal_fiber_length_m=l0,
                                     pennation_at_optimal_rad=torch.asin(sp),
                                     max_isometric_force_n=torch.ones(n, dtype=F64),
                                     strength=torch.ones(n, dtype=F64), damping=d)[:, 0]
    torch.testing.assert_close(g, curves.tendon_force_length(1.0 + strain) - fibre,
                               rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("compiled", [True, False])
def test_step_partials_in_closed_form_equal_autograd(compiled: bool,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """Every partial of the Rosenbrock increment (the adjoint's and the tangents' local
    Jacobians) against reverse-mode autograd through the step, on lengthened and shortened
    fibres, fast shortening and lengthening, with and without pennation and damping; in the
    numba kernel and in the numpy fallback."""
    if compiled and not _rosenbrock.USE_NUMBA:
        pytest.skip("numba not installed")
    monkeypatch.setattr(_rosenbrock, "USE_NUMBA", compiled)
    rng = np.random.default_rng(11)
    n_time, n = 40, 7
    l0 = rng.uniform(0.05, 0.15, n)
    lts = rng.uniform(0.1, 0.3, n)
    d = np.array([0.0, 0.0, 0.05, 0.1, 0.2, 0.01, 0.3])
    sp = np.array([0.0, 0.1, 0.2, 0.0, 0.35, 0.45, 0.05])
    length = l0 * rng.uniform(0.6, 1.5, (n_time, n))
    velocity = l0 * rng.uniform(-8.0, 8.0, (n_time, n))
    act = rng.uniform(0.0, 1.0, (n_time, n))
    lmt = lts * rng.uniform(0.98, 1.05, (n_time, n)) + length * np.sqrt(1 - (sp * l0 / length) ** 2)
    k_tendon = curves.tendon_stiffness_exponent()
    ours = _rosenbrock.increment_partials(length, velocity, act, lmt, l0, lts, d, sp, dt_s=0.004,
                                          k_tendon=k_tendon)
    leaves = [torch.from_numpy(x.copy()).requires_grad_() for x in (
        length[:-1], velocity[:-1], act[:-1], act[1:], lmt[:-1], lmt[1:],
        *(np.broadcast_to(p, (n_time - 1, n)) for p in (l0, lts, d, sp)))]
    step = _rosenbrock.increment(_rosenbrock.TORCH, *leaves, dt_s=0.004, k_tendon=k_tendon)
    auto = torch.autograd.grad(step.sum(), leaves)
    assert len(ours) == len(_rosenbrock.STEP_INPUTS) == len(auto)
    for name, mine, theirs in zip(_rosenbrock.STEP_INPUTS, ours, auto, strict=True):
        scale = float(theirs.abs().max())
        assert scale > 0.0, name
        np.testing.assert_allclose(mine, theirs.numpy(), rtol=1e-10, atol=1e-12 * scale,
                                   err_msg=name)


def _kernel_case(rng: np.random.Generator, n: int, n_time: int, damping: float
                 ) -> tuple[np.ndarray, ...]:
    """``(l0, lts, damping, sin_phi0, lmt, act)`` for the kernel tests: random muscles, a slow
    MTU-length wave around slack and a smooth activation, time-major ``(n_time, n)``."""
    l0, lts = rng.uniform(0.06, 0.14, n), rng.uniform(0.1, 0.25, n)
    d, sp = np.full(n, damping), np.sin(rng.uniform(0.0, 0.3, n))
    lmt = (lts * 1.02 + l0)[None] + 0.01 * np.sin(np.linspace(0, 6, n_time))[:, None]
    act = 0.2 + 0.5 * np.sin(np.linspace(0, 4, n_time))[:, None] ** 2 * np.ones(n)
    return l0, lts, d, sp, lmt, act


@pytest.mark.skipif(not _rosenbrock.USE_NUMBA, reason="numba not installed")
def test_numba_kernels_equal_numpy(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(4)
    n, n_time = 6, 80
    l0, lts, d, sp, lmt, act = _kernel_case(rng, n, n_time, damping=0.02)
    grads = rng.normal(size=(2, n_time, n))
    jac = rng.normal(size=(2, n_time - 1, n)) * 0.1
    kwargs = {"k_tendon": curves.tendon_stiffness_exponent()}
    fast = (_rosenbrock.static_equilibrium(act[0], lmt[0], l0, lts, d, sp, **kwargs),
            *_rosenbrock.integrate(l0 * 0.9, act, lmt, l0, lts, d, sp, dt_s=0.005, **kwargs),
            *_rosenbrock.adjoint(grads[0], grads[1], jac[0], jac[1], dt_s=0.005))
    monkeypatch.setattr(_rosenbrock, "USE_NUMBA", False)
    slow = (_rosenbrock.static_equilibrium(act[0], lmt[0], l0, lts, d, sp, **kwargs),
            *_rosenbrock.integrate(l0 * 0.9, act, lmt, l0, lts, d, sp, dt_s=0.005, **kwargs),
            *_rosenbrock.adjoint(grads[0], grads[1], jac[0], jac[1], dt_s=0.005))
    for a, b in zip(fast, slow, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-11, atol=1e-13)


@pytest.mark.skipif(not _rosenbrock.USE_NUMBA, reason="numba not installed")
def test_few_passes_runs_numpy_until_numba_is_loaded(monkeypatch: pytest.MonkeyPatch) -> None:
    """Inside few_passes a process that has not loaded the kernels yet runs the numpy loops
    (the forward pass equals the compiled one to rounding); once they are loaded, it uses them."""
    l0, lts, d, sp, lmt, act = _kernel_case(np.random.default_rng(5), 5, 60, damping=0.01)
    kwargs = {"dt_s": 0.005, "k_tendon": curves.tendon_stiffness_exponent()}
    compiled = _rosenbrock.integrate(l0 * 0.9, act, lmt, l0, lts, d, sp, **kwargs)
    with monkeypatch.context() as patch:
        patch.setattr(_rosenbrock, "_KERNELS", {})  # a process that never loaded them
        with _rosenbrock.few_passes():
            assert _rosenbrock._kernels() is None
            in_numpy = _rosenbrock.integrate(l0 * 0.9, act, lmt, l0, lts, d, sp, **kwargs)
        assert not _rosenbrock._KERNELS
    for a, b in zip(compiled, in_numpy, strict=True):
        np.testing.assert_allclose(b, a, rtol=1e-11, atol=1e-13)
    assert _rosenbrock._KERNELS  # loaded by the first integration
    with _rosenbrock.few_passes():
        assert _rosenbrock._kernels() is _rosenbrock._KERNELS


def test_isometric_converges_to_equilibrium() -> None:
    # A physiological activation rise: an excitation step through the activation dynamics at
    # 100 Hz. (Much sharper per-sample jumps can trap the one-step scheme, see tendon.py.)
    dt_s, n_time = 0.01, 400
    geometry = muscle(3)
    lmt = (geometry["tendon_slack_length_m"] * 1.03 + geometry["optimal_fiber_length_m"])
    lmt = lmt[None, :, None].expand(1, 3, n_time)
    excitation = torch.full((1, 3, n_time), 0.05, dtype=F64)
    excitation[..., 50:] = 0.9
    coefficient = torch.full((3,), -0.5, dtype=F64)
    act = activation(excitation, coefficient, coefficient, torch.full((3,), -1.0, dtype=F64),
                     dt_s=dt_s, emd_s=0.0)
    damping = torch.full((3,), 0.01, dtype=F64)
    length, velocity = elastic_fiber_kinematics(act, lmt, **geometry, damping=damping, dt_s=dt_s)
    strain = tendon_strain(lmt, length, **geometry)
    tendon = curves.tendon_force_length(1.0 + strain)
    ones = torch.ones(3, dtype=F64)
    fibre = fiber_force_along_tendon(act, length, velocity, **_force_kwargs(geometry),
                                     damping=damping, max_isometric_force_n=ones, strength=ones)
    # At the start (static equilibrium) and after settling, F_T = F_M.
    for i in (0, -1):
        np.testing.assert_allclose(tendon[..., i].numpy(), fibre[..., i].numpy(), rtol=1e-6)
    assert float(velocity[..., -1].abs().max()) < 1e-9
    assert float((length[..., 80] - length[..., 49]).abs().min()) > 1e-3  # the fibre did shorten
    assert float(tendon[..., -1].min()) > 5.0 * float(tendon[..., 0].max())


def _force_kwargs(geometry: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {"optimal_fiber_length_m": geometry["optimal_fiber_length_m"],
            "pennation_at_optimal_rad": geometry["pennation_at_optimal_rad"]}


def test_stiff_limit_of_elastic() -> None:
    dt_s, n_time = 0.001, 1000
    geometry = muscle(2)
    lmt, act = trajectory(n_time, dt_s)
    damping = torch.full((2,), 0.01, dtype=F64)
    ones = torch.ones(2, dtype=F64)
    stiff_l, stiff_v = stiff_fiber_kinematics(lmt, **geometry, dt_s=dt_s)
    elastic_l, elastic_v = elastic_fiber_kinematics(act, lmt, **geometry, damping=damping,
                                                    dt_s=dt_s, tendon_strain_at_one_norm_force=1e-6)
    l0 = geometry["optimal_fiber_length_m"][:, None]
    assert float(((stiff_l - elastic_l) / l0).abs().max()) < 1e-5
    forces = [fiber_force_along_tendon(act, length, velocity, **_force_kwargs(geometry),
                                       damping=damping, max_isometric_force_n=ones, strength=ones)
              for length, velocity in ((stiff_l, stiff_v), (elastic_l, elastic_v))]
    # Velocities differ only by the finite-difference stencil (skip the first sample, v = 0).
    error = (forces[0] - forces[1])[..., 1:]
    assert float(error.abs().max() / forces[0].abs().max()) < 2e-3
    # And a compliant tendon does differ.
    compliant_l, _ = elastic_fiber_kinematics(act, lmt, **geometry, damping=damping, dt_s=dt_s)
    assert float(((stiff_l - compliant_l) / l0).abs().max()) > 1e-2


def test_stiff_kinematics_exact() -> None:
    dt_s = 0.001
    geometry = muscle(2)
    lmt, _ = trajectory(300, dt_s)
    length, velocity = stiff_fiber_kinematics(lmt, **geometry, dt_s=dt_s)
    strain = tendon_strain(lmt, length, **geometry)
    torch.testing.assert_close(strain, torch.zeros_like(strain), rtol=0, atol=1e-14)
    expected = np.gradient(length.numpy(), dt_s, axis=-1, edge_order=2)
    np.testing.assert_allclose(velocity.numpy()[..., 2:-2], expected[..., 2:-2], atol=1e-5)
    np.testing.assert_allclose(time_derivative(lmt, dt_s=dt_s).numpy(),
                               np.gradient(lmt.numpy(), dt_s, axis=-1, edge_order=2), atol=1e-12)


@pytest.mark.parametrize("tendon", ["stiff", "elastic"])
def test_mtu_force_gradcheck(tendon: str) -> None:
    dt_s, n_time = 0.01, 25
    lmt, act = trajectory(n_time, dt_s)
    geometry = muscle(2)
    inputs = (act, lmt, geometry["optimal_fiber_length_m"], geometry["tendon_slack_length_m"],
              geometry["pennation_at_optimal_rad"], torch.tensor([0.01, 0.05], dtype=F64),
              torch.tensor([0.9, 0.4], dtype=F64), torch.tensor([1.2, 0.9], dtype=F64))
    inputs = tuple(x.clone().requires_grad_() for x in inputs)

    def force(a, m, l0, lts, phi0, d, fmax, s):
        kwargs = {"optimal_fiber_length_m": l0, "tendon_slack_length_m": lts,
                  "pennation_at_optimal_rad": phi0}
        if tendon == "stiff":
            length, velocity = stiff_fiber_kinematics(m, **kwargs, dt_s=dt_s)
        else:
            length, velocity = elastic_fiber_kinematics(a, m, **kwargs, damping=d, dt_s=dt_s)
        return fiber_force_along_tendon(a, length, velocity, optimal_fiber_length_m=l0,
                                        pennation_at_optimal_rad=phi0, max_isometric_force_n=fmax,
                                        strength=s, damping=d)

    assert torch.autograd.gradcheck(force, inputs, rtol=1e-5, atol=1e-6)


def _per_sample_autograd(fn, signals: dict, params: dict, wrt: list[str]) -> dict:
    """Per-sample partials by reverse mode: parameters copied to every sample (so each sample's
    derivative is not summed over the others), one backward pass of the summed output."""
    shape = next(iter(signals.values())).shape
    leaves = {k: v.clone().requires_grad_(k in wrt) for k, v in signals.items()}
    per_sample = {k: v[:, None].expand(shape[-2:]).contiguous().requires_grad_(k in wrt)
                  for k, v in params.items()}

    def broadcast(**kw):
        # the model takes (muscle,) parameters: a per-sample copy runs sample by sample
        flat = {k: v.reshape(-1, 1) for k, v in kw.items()}
        return fn(**flat).reshape(shape)

    out = broadcast(**leaves, **per_sample)
    grads = torch.autograd.grad(out.sum(), [{**leaves, **per_sample}[k] for k in wrt])
    return {k: g.expand(shape) for k, g in zip(wrt, grads, strict=True)}


def test_closed_form_strain_and_force_partials_equal_autograd() -> None:
    from pipeline.nms.mtu import fiber_force_and_partials
    from pipeline.nms.tendon import tendon_strain_and_partials

    rng = np.random.default_rng(3)
    n_mtus, n_time = 3, 7

    def t(x):
        return torch.as_tensor(x, dtype=torch.float64)

    l0 = t(rng.uniform(0.05, 0.12, n_mtus))
    lts = t(rng.uniform(0.1, 0.3, n_mtus))
    phi0 = t(rng.uniform(0.0, 0.3, n_mtus))
    length = l0[:, None] * t(rng.uniform(0.7, 1.3, (n_mtus, n_time)))
    lmt = lts[:, None] * 1.03 + length * torch.cos(phi0)[:, None]
    strain, partials = tendon_strain_and_partials(
        lmt, length, optimal_fiber_length_m=l0, tendon_slack_length_m=lts,
        pennation_at_optimal_rad=phi0)
    assert torch.equal(strain, tendon_strain(lmt, length, optimal_fiber_length_m=l0,
                                             tendon_slack_length_m=lts,
                                             pennation_at_optimal_rad=phi0))
    reference = _per_sample_autograd(
        lambda lmt, fiber_length_m, optimal_fiber_length_m, tendon_slack_length_m,
        pennation_at_optimal_rad: tendon_strain(
            lmt, fiber_length_m, optimal_fiber_length_m=optimal_fiber_length_m[:, 0],
            tendon_slack_length_m=tendon_slack_length_m[:, 0],
            pennation_at_optimal_rad=pennation_at_optimal_rad[:, 0]),
        {"lmt": lmt, "fiber_length_m": length},
        {"optimal_fiber_length_m": l0, "tendon_slack_length_m": lts,
         "pennation_at_optimal_rad": phi0},
        ["fiber_length_m", "optimal_fiber_length_m", "tendon_slack_length_m"])
    for key, value in reference.items():
        torch.testing.assert_close(partials[key], value, rtol=1e-12, atol=1e-12)

    act = t(rng.uniform(0.0, 1.0, (n_mtus, n_time)))
    velocity = l0[:, None] * t(rng.uniform(-3.0, 3.0, (n_mtus, n_time)))
    params = {"optimal_fiber_length_m": l0, "pennation_at_optimal_rad": phi0,
              "max_isometric_force_n": t(rng.uniform(200, 900, n_mtus)),
              "strength": t(rng.uniform(0.6, 1.4, n_mtus)),
              "damping": t(rng.uniform(0.0, 0.1, n_mtus))}
    names = list(params)
    force, partials = fiber_force_and_partials(act, length, velocity, parameters=names,
                                               **params)
    assert torch.equal(force, fiber_force_along_tendon(act, length, velocity, **params))
    reference = _per_sample_autograd(
        lambda activation, fiber_length_m, fiber_velocity_mps, **kw: fiber_force_along_tendon(
            activation, fiber_length_m, fiber_velocity_mps, **{k: v[:, 0] for k, v in kw.items()}),
        {"activation": act, "fiber_length_m": length, "fiber_velocity_mps": velocity}, params,
        ["activation", "fiber_length_m", "fiber_velocity_mps", *names])
    for key, value in reference.items():
        torch.testing.assert_close(partials[key], value, rtol=1e-11, atol=1e-9)
    with pytest.raises(ValueError, match="no partials"):
        fiber_force_and_partials(act, length, velocity, parameters=["c1"], **params)
