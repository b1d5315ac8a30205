"""``calibration.objective: ceinms`` against an independent, sample-by-sample implementation of
CEINMS 0.9's documented formulas (help/introduction/CEINMS.rst, MinTorqueError, MTU penalty),
with OpenSim's own DeGrooteFregly2016Muscle curves."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from pipeline.calibrate.ceinms_objective import CeinmsObjective, simulate_ceinms, trial_variances
from pipeline.calibrate.problem import TrialBatch, batch_trials
from pipeline.calibrate.run import make_objective
from pipeline.calibrate.spec import MuscleProperties, build_spec
from pipeline.errors import ConfigError
from pipeline.io.nms_inputs import NMSTrial
from pipeline.nms import compiled

opensim = pytest.importorskip("opensim")
_CURVES = opensim.DeGrooteFregly2016Muscle()

DT = 0.01
EMD = 0.02
CALIBRATION = {
    "parameters": ["c1", "c2", "shape_factor", "optimal_fiber_length", "tendon_slack_length",
                   "strength"],
    "bounds": {"c1": {"lower": -0.95, "upper": -0.05}, "c2": {"lower": -0.95, "upper": -0.05},
               "shape_factor": {"lower": -2.999, "upper": -0.001},
               "optimal_fiber_length": {"lower": 0.7, "upper": 1.3, "relative": True},
               "tendon_slack_length": {"lower": 0.7, "upper": 1.3, "relative": True},
               "strength": {"lower": 0.5, "upper": 2.5}},
    "groups": {"pair": ["m0", "m1"]}, "initial": {"damping": 0.05},
    "tendon": "stiff", "emd_s": EMD, "objective": "ceinms", "ceinms_percentage_change": 0.15,
}


def _small_case() -> tuple[TrialBatch, MuscleProperties]:
    """3 MTUs on 2 DOFs, 2 trials of 50 and 35 samples; m2's fibre leaves the 0.5-1.5 band."""
    rng = np.random.default_rng(7)
    muscles = MuscleProperties(("m0", "m1", "m2"), np.array([0.10, 0.08, 0.06]),
                               np.array([0.25, 0.30, 0.20]), np.array([1500.0, 900.0, 600.0]),
                               np.array([0.1, 0.3, 0.0]))
    trials = []
    for n in (50, 35):
        t = np.arange(n) * DT
        exc = np.clip(0.3 + 0.25 * np.sin(2 * np.pi * (t[None] * [[1.3], [0.7], [2.1]]
                                                        + rng.uniform(size=(3, 1)))), 0, 1)
        lmt = np.array([0.35, 0.39, 0.275])[:, None] + 0.03 * np.sin(
            2 * np.pi * t[None] * [[0.9], [1.4], [2.0]])
        arm = np.zeros((3, 2, n))
        arm[0, 0], arm[1, 0], arm[1, 1], arm[2, 1] = 0.04, -0.03, 0.02, 0.05 + 0.01 * t
        moments = rng.normal(size=(2, n)).cumsum(axis=1) * 3.0
        # the first trial has 12 samples of EMG before its window (activation history)
        before = rng.uniform(0.0, 0.9, size=(3, 12)) if n == 50 else None
        trials.append(NMSTrial(t, muscles.mtu_names, ("q0", "q1"), exc, lmt, arm, moments,
                               excitation_before=before))
    return batch_trials(trials, ["a", "b"]), muscles


def _reference_loss(batch: TrialBatch, values: dict[str, np.ndarray], fmax: np.ndarray,
                    phi0: np.ndarray, *, gamma: float) -> tuple[float, float]:
    """CEINMS's formulas, one trial, muscle and sample at a time (no torch)."""
    delay = round(EMD / DT)
    tracking = penalty = 0.0
    for k, time_s in enumerate(batch.time_s):
        n = len(time_s)
        window = batch.excitation[k].numpy()[:, :n]
        lead = (np.zeros((window.shape[0], 0)) if batch.excitation_before is None
                else batch.excitation_before[k].numpy())
        lead = np.where(np.isnan(lead), window[:, :1], lead)  # not recorded: hold e_0
        exc = np.concatenate([lead, window], axis=1)  # CEINMS runs through the history
        n_lead = lead.shape[1]
        lmt = batch.mtu_length_m[k].numpy()[:, :n]
        arm = batch.moment_arm_m[k].numpy()[..., :n]
        measured = batch.id_moment_nm[k].numpy()[:, :n]
        moments = np.zeros_like(measured)
        trial_penalty = 0.0
        for m in range(exc.shape[0]):
            c1, c2, shape = values["c1"][m], values["c2"][m], values["shape_factor"][m]
            l0, lts = values["optimal_fiber_length"][m], values["tendon_slack_length"][m]
            beta1, beta2 = c1 + c2, c1 * c2
            alpha = 1 + beta1 + beta2
            u_1 = u_2 = exc[m, 0]  # steady state at the first recorded sample
            activation = []
            for j in range(exc.shape[1]):
                u = alpha * exc[m, max(j - delay, 0)] - beta1 * u_1 - beta2 * u_2
                u_2, u_1 = u_1, u
                activation.append((math.exp(shape * u) - 1) / (math.exp(shape) - 1))
            w = l0 * math.sin(phi0[m])
            dlmt = np.gradient(lmt[m], DT, edge_order=2)
            for i in range(n):
                a = activation[n_lead + i]
                length = math.sqrt((lmt[m, i] - lts) ** 2 + w**2)
                cos_phi = math.sqrt(length**2 - w**2) / length
                v_norm = min(max(cos_phi * dlmt[i] / l0, -10.0), 10.0) / 10.0
                fa = _CURVES.calcActiveForceLengthMultiplier(length / (l0 * (gamma * (1 - a) + 1)))
                fv = _CURVES.calcForceVelocityMultiplier(v_norm)
                fp = _CURVES.calcPassiveForceMultiplier(length / l0)
                force = (fmax[m] * values["strength"][m]
                         * (fa * fv * a + fp + values["damping"][m] * v_norm) * cos_phi)
                moments[:, i] += arm[m, :, i] * force
                ratio = abs(length / l0 - 1.0)
                if ratio > 0.5:
                    trial_penalty += ratio * ratio * 100
        for d in range(measured.shape[0]):
            x = measured[d]
            variance = ((x - x.mean()) ** 2).sum() / (n - 1)
            sse = ((x - moments[d]) ** 2).sum()
            tracking += sse / variance / n
            penalty += trial_penalty / n
    return tracking, penalty


@pytest.mark.parametrize("offset", [0.0, 0.3])
def test_ceinms_objective_equals_reference(offset: float) -> None:
    batch, muscles = _small_case()
    spec = build_spec(muscles, CALIBRATION)
    objective = make_objective(spec, batch, CALIBRATION)
    assert isinstance(objective, CeinmsObjective)
    x = np.clip(spec.normalise(spec.initial) + offset * np.linspace(-1, 1, spec.n_free),
                0.02, 0.98)
    p = spec.denormalise(x)
    with torch.no_grad():
        terms = objective.terms(torch.as_tensor(p))
        out = objective.simulate(torch.as_tensor(p))
    outside = (out.normalized_fiber_length - 1.0).abs() > 0.5
    assert bool(outside[0].any()) and not bool(outside[0].all())  # the penalty is active
    tracking, penalty = _reference_loss(batch, spec.per_mtu(p), muscles.max_isometric_force_n,
                                        muscles.pennation_angle_rad, gamma=0.15)
    assert penalty > 0
    np.testing.assert_allclose(float(terms.tracking), tracking, rtol=1e-9)
    np.testing.assert_allclose(float(terms.penalty), penalty, rtol=1e-9)
    with torch.no_grad():
        residuals = objective.all_residuals(torch.as_tensor(p))
    np.testing.assert_allclose(float((residuals**2).sum()), float(terms.total), rtol=1e-10)


def test_trial_variances_use_each_trial_and_n_minus_1() -> None:
    batch, _ = _small_case()
    got = trial_variances(batch)
    second = batch.id_moment_nm[1, :, :35].numpy()
    np.testing.assert_allclose(got[1], np.var(second, axis=1, ddof=1), rtol=1e-12)


def test_ceinms_model_gradcheck() -> None:
    batch, muscles = _small_case()
    spec = build_spec(muscles, CALIBRATION)
    objective = make_objective(spec, batch, CALIBRATION)
    p = torch.as_tensor(spec.initial, dtype=torch.float64).requires_grad_()
    assert torch.autograd.gradcheck(lambda q: objective.simulate(q).moments_nm[:, :, ::7], (p,))
    assert torch.autograd.gradcheck(lambda q: objective.terms(q).total, (p,))


def test_zero_shift_equals_plain_stiff_model_within_velocity_band() -> None:
    import dataclasses

    from pipeline.nms import simulate

    batch, muscles = _small_case()
    batch = dataclasses.replace(batch, excitation_before=None)  # the same activation start
    spec = build_spec(muscles, CALIBRATION)
    params = make_objective(spec, batch, CALIBRATION).muscle_parameters(
        torch.as_tensor(spec.initial))
    with torch.no_grad():
        ours = simulate_ceinms(params, batch, emd_s=EMD, percentage_change=0.0)
        plain = simulate(params, batch.excitation, batch.mtu_length_m, batch.moment_arm_m,
                         dt_s=DT, tendon="stiff", emd_s=EMD)
    assert float(ours.normalized_fiber_velocity.abs().max()) < 1.0
    # equal except at the padded trial's last valid sample (one-sided velocity there)
    torch.testing.assert_close(ours.moments_nm[0], plain.moments_nm[0], rtol=1e-12, atol=1e-9)
    torch.testing.assert_close(ours.moments_nm[1, :, :34], plain.moments_nm[1, :, :34],
                               rtol=1e-12, atol=1e-9)


def test_ceinms_objective_elastic_needs_no_shift_and_unknown_objective_is_refused() -> None:
    batch, muscles = _small_case()
    spec = build_spec(muscles, CALIBRATION)
    with pytest.raises(ConfigError, match="ceinms_percentage_change: 0"):
        make_objective(spec, batch, {**CALIBRATION, "tendon": "elastic"})
    elastic = make_objective(spec, batch, {**CALIBRATION, "tendon": "elastic",
                                           "ceinms_percentage_change": 0.0})
    assert elastic.tendon == "elastic"
    with pytest.raises(ConfigError, match="objective"):
        make_objective(spec, batch, {**CALIBRATION, "objective": "ceinms2"})


def _jacobian_and_autograd(cfg: dict, *, step: float,
                           smooth_band: tuple[float, float] | None = None):
    """The small case's residuals and Jacobian at a point off the start, and autograd's
    Jacobian of :meth:`all_residuals` there (the residuals are checked to agree, and the
    solver's path without autograd to equal the differentiable one)."""
    batch, muscles = _small_case()
    spec = build_spec(muscles, cfg)
    objective = make_objective(spec, batch, cfg)
    objective.smooth_band = smooth_band
    p = torch.as_tensor(spec.denormalise(np.clip(
        spec.normalise(spec.initial) + step * np.linspace(-1, 1, spec.n_free), 0.02, 0.98)))
    residuals, jacobian = objective.residuals_and_jacobian(p)
    torch.testing.assert_close(residuals, objective.all_residuals(p), rtol=1e-12, atol=1e-14)
    differentiable = objective.all_residuals(p.clone().requires_grad_())
    assert differentiable.requires_grad
    torch.testing.assert_close(residuals, differentiable.detach(), rtol=1e-12, atol=1e-14)
    expected = torch.autograd.functional.jacobian(objective.all_residuals, p)
    return batch, spec, residuals, jacobian, expected


@pytest.mark.parametrize(("prior_weight", "smooth_band"),
                         [(0.0, None), (0.5, None), (0.0, (1e4, 0.05))])
def test_residual_jacobian_equals_autograd(prior_weight: float,
                                           smooth_band: tuple[float, float] | None) -> None:
    """CEINMS's penalty and the continuation's smooth one: one penalty residual per trial and
    MTU, whose square is that MTU's penalty in the loss."""
    batch, spec, residuals, jacobian, expected = _jacobian_and_autograd(
        {**CALIBRATION, "prior_weight": prior_weight}, step=0.3, smooth_band=smooth_band)
    assert jacobian.shape == (residuals.numel(), spec.n_free)
    n_track = int(batch.mask.sum()) * 2
    penalty_rows = slice(n_track, n_track + 2 * 3)  # 2 trials x 3 MTUs
    assert np.count_nonzero(expected[penalty_rows].numpy()) > 0  # penalised fibres count
    np.testing.assert_allclose(np.asarray(jacobian), expected.numpy(), rtol=1e-9, atol=1e-11)


def test_solver_trial_points_from_the_array_loops_equal_the_torch_model() -> None:
    """The residuals at the solver's trial points (no gradient wanted) come from the numpy
    array loops; through torch they are the same to rounding, at two points in a row (the
    second re-simulates from the evaluator's cached state)."""
    batch, muscles = _small_case()
    spec = build_spec(muscles, CALIBRATION)
    loops_objective = make_objective(spec, batch, CALIBRATION)
    torch_objective = make_objective(spec, batch, CALIBRATION)
    torch_objective.array_loops = False
    for step in (0.3, -0.2):
        p = torch.as_tensor(spec.denormalise(np.clip(
            spec.normalise(spec.initial) + step * np.linspace(-1, 1, spec.n_free), 0.02, 0.98)))
        with torch.no_grad():
            from_loops = loops_objective.all_residuals(p)
            from_torch = torch_objective.all_residuals(p)
        assert torch_objective._incremental is None
        assert loops_objective._incremental is not None
        torch.testing.assert_close(from_loops, from_torch, rtol=1e-12, atol=1e-12)


def test_residual_jacobian_elastic_equals_autograd_with_the_recorded_emg_history() -> None:
    """The elastic variant's Jacobian (the project's tangents) is that of the residuals
    :meth:`all_residuals` computes, EMG before the window included."""
    batch, _, _, jacobian, expected = _jacobian_and_autograd(
        {**CALIBRATION, "tendon": "elastic", "ceinms_percentage_change": 0.0}, step=0.2)
    assert batch.excitation_before is not None
    np.testing.assert_allclose(np.asarray(jacobian), expected.numpy(), rtol=1e-8, atol=1e-10)


def test_stiff_residual_jacobian_equals_central_differences() -> None:
    """Tracking rows (smooth) against central finite differences, damping free too."""
    batch, muscles = _small_case()
    cfg = {**CALIBRATION, "parameters": [*CALIBRATION["parameters"], "damping"],
           "bounds": {**CALIBRATION["bounds"], "damping": {"lower": 0.0, "upper": 0.1}}}
    spec = build_spec(muscles, cfg)
    objective = make_objective(spec, batch, cfg)
    assert "damping" in spec.free_kinds
    p = spec.denormalise(np.clip(spec.normalise(spec.initial)
                                 + 0.1 * np.linspace(-1, 1, spec.n_free), 0.02, 0.98))
    _, jacobian = objective.residuals_and_jacobian(torch.as_tensor(p))
    n_track = objective.n_tracking_residuals
    dense = np.asarray(jacobian)[:n_track]
    for k in range(spec.n_free):
        step = 1e-6 * (spec.upper[k] - spec.lower[k])
        up, down = p.copy(), p.copy()
        up[k] += step
        down[k] -= step
        with torch.no_grad():
            diff = (objective.all_residuals(torch.as_tensor(up))[:n_track]
                    - objective.all_residuals(torch.as_tensor(down))[:n_track]).numpy()
        np.testing.assert_allclose(dense[:, k], diff / (2 * step), rtol=1e-5,
                                   atol=1e-7 * max(1.0, np.abs(dense[:, k]).max()))


def _fast_case() -> tuple[TrialBatch, MuscleProperties]:
    """The small case with a fast MTU-length ripple: normalised fibre velocities beyond +-1,
    which CEINMS's model clips."""
    import dataclasses

    batch, muscles = _small_case()
    n_time = batch.mtu_length_m.shape[-1]
    ripple = 0.004 * torch.sin(torch.arange(n_time, dtype=torch.float64) * 2.5)
    return dataclasses.replace(batch, mtu_length_m=batch.mtu_length_m + ripple), muscles


@pytest.mark.parametrize("backend", [
    pytest.param("numba", marks=pytest.mark.skipif(not compiled.AVAILABLE,
                                                   reason="numba not installed")), "numpy"])
def test_compiled_ceinms_variant_equals_simulate_ceinms(backend: str) -> None:
    """The compiled loops with CEINMS's details (history, shifted active curve, clipped
    velocity) equal :func:`simulate_ceinms` where velocities are clipped."""
    from pipeline.calibrate.ceinms_objective import _activation_history, trial_time_derivative
    from pipeline.nms.activation import _delayed, delay_samples

    batch, muscles = _fast_case()
    spec = build_spec(muscles, CALIBRATION)
    objective = make_objective(spec, batch, CALIBRATION)
    p = torch.as_tensor(spec.initial)
    params = objective.muscle_parameters(p)
    with torch.no_grad():
        expected = simulate_ceinms(params, batch, emd_s=EMD, percentage_change=0.15)
    assert float(expected.normalized_fiber_velocity.abs().max()) == 1.0  # clipped somewhere
    history, n_before = _activation_history(batch)
    assert n_before > 0
    delayed = _delayed(history, delay_samples(emd_s=EMD, dt_s=batch.dt_s))
    got = compiled.simulate_values(
        {k: v.detach().numpy() for k, v in params.as_dict().items()},
        drive=(delayed - delayed[..., :1]).numpy(), initial=delayed[..., 0].numpy(),
        mtu_length_m=batch.mtu_length_m.numpy(),
        mtu_velocity_mps=trial_time_derivative(batch.mtu_length_m, batch).numpy(),
        dt_s=batch.dt_s, tendon="stiff", percentage_change=0.15, clip_velocity=True,
        n_before=n_before, backend=backend)
    valid = batch.mask[:, None, :].expand_as(expected.force_n).numpy()
    for name in ("activation", "force_n", "normalized_fiber_length"):
        want = getattr(expected, name).numpy()
        np.testing.assert_allclose(got[name][valid], want[valid], rtol=1e-11,
                                   atol=1e-12 * np.abs(want).max(), err_msg=name)


@pytest.mark.skipif(not compiled.AVAILABLE, reason="numba not installed")
def test_incremental_loss_equals_ceinms_objective_along_an_annealing_walk() -> None:
    """Annealing's incremental loss on CEINMS's objective equals the objective along coordinate
    moves, reverted moves and a shared strength (group), with fibres outside the band (CEINMS's
    jumping penalty) and clipped velocities."""
    from pipeline.calibrate.incremental import IncrementalLoss, supports

    batch, muscles = _fast_case()
    spec = build_spec(muscles, CALIBRATION)
    objective = make_objective(spec, batch, CALIBRATION)
    assert supports(objective)
    loss = IncrementalLoss(objective)
    rng = np.random.default_rng(3)
    p = spec.initial.copy()
    span = spec.upper - spec.lower
    penalised = 0
    for step in range(60):
        trial = p.copy()
        k = int(rng.integers(p.size))
        trial[k] = np.clip(trial[k] + 0.3 * span[k] * rng.uniform(-1, 1), spec.lower[k],
                           spec.upper[k])
        with torch.no_grad():
            terms = objective.terms(torch.as_tensor(trial))
        penalised += float(terms.penalty) > 0.0
        assert loss(trial) == pytest.approx(float(terms.total), rel=1e-12, abs=1e-15)
        if step % 3 == 0:
            p = trial
    assert penalised > 0
    assert loss.partial_evaluations > 40  # a global parameter moves every MTU (a full one)


def test_stiff_jacobian_with_clipped_velocities_and_free_damping_equals_autograd() -> None:
    """The closed-form partials where CEINMS clips the fibre velocity (no slope there) and with
    the activation-dependent optimal length, against autograd through :func:`simulate_ceinms`."""
    batch, muscles = _fast_case()
    cfg = {**CALIBRATION, "parameters": [*CALIBRATION["parameters"], "damping"],
           "bounds": {**CALIBRATION["bounds"], "damping": {"lower": 0.0, "upper": 0.1}}}
    spec = build_spec(muscles, cfg)
    objective = make_objective(spec, batch, cfg)
    p = torch.as_tensor(spec.denormalise(np.clip(
        spec.normalise(spec.initial) + 0.2 * np.linspace(-1, 1, spec.n_free), 0.02, 0.98)))
    with torch.no_grad():
        clipped = objective.simulate(p).normalized_fiber_velocity.abs() == 1.0
    assert bool(clipped.any()) and not bool(clipped.all())
    residuals, jacobian = objective.residuals_and_jacobian(p)
    expected = torch.autograd.functional.jacobian(objective.all_residuals, p)
    torch.testing.assert_close(residuals, objective.all_residuals(p), rtol=1e-12, atol=1e-14)
    np.testing.assert_allclose(np.asarray(jacobian), expected.numpy(), rtol=1e-9, atol=1e-11)
