"""Activation dynamics against a plain loop of the recursion, and their gradients."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
import torch

from pipeline.nms.activation import (
    activation,
    delay_samples,
    muscle_activation,
    neural_activation,
)


def loop_reference(excitation: np.ndarray, c1: float, c2: float, delay: int) -> np.ndarray:
    """The CEINMS recursion sample by sample, starting in steady state with the first sample."""
    beta1, beta2 = c1 + c2, c1 * c2
    alpha = 1.0 + beta1 + beta2
    first = excitation[0]
    out = np.empty_like(excitation)
    u1 = u2 = first
    for i in range(excitation.size):
        e = excitation[i - delay] if i >= delay else first
        u = alpha * e - beta1 * u1 - beta2 * u2
        out[i] = u
        u1, u2 = u, u1
    return out


@pytest.mark.parametrize(("c1", "c2", "emd_s"), [(-0.5, -0.5, 0.015), (-0.95, -0.05, 0.0),
                                                  (-0.9, -0.93, 0.04), (-0.2, -0.7, 0.035)])
def test_filter_matches_loop(c1: float, c2: float, emd_s: float) -> None:
    rng = np.random.default_rng(1)
    n_time, dt_s = 400, 0.001
    excitation = np.clip(np.cumsum(rng.normal(0, 0.05, (2, 3, n_time)), axis=-1) + 0.3, 0, 1)
    c1_t = torch.full((3,), c1, dtype=torch.float64)
    c2_t = torch.full((3,), c2, dtype=torch.float64)
    got = neural_activation(torch.as_tensor(excitation), c1_t, c2_t, dt_s=dt_s, emd_s=emd_s)
    delay = delay_samples(emd_s=emd_s, dt_s=dt_s)
    for trial in range(2):
        for muscle in range(3):
            expected = loop_reference(excitation[trial, muscle], c1, c2, delay)
            np.testing.assert_allclose(got[trial, muscle].numpy(), expected, rtol=0, atol=1e-12)


def test_per_muscle_coefficients_and_steady_state() -> None:
    c1 = torch.tensor([-0.3, -0.9], dtype=torch.float64)
    c2 = torch.tensor([-0.6, -0.1], dtype=torch.float64)
    constant = torch.full((1, 2, 50), 0.4, dtype=torch.float64)
    u = neural_activation(constant, c1, c2, dt_s=0.01, emd_s=0.02)
    torch.testing.assert_close(u, constant, rtol=0, atol=1e-14)
    step = torch.zeros(1, 2, 200, dtype=torch.float64)
    step[..., 20:] = 1.0
    u = neural_activation(step, c1, c2, dt_s=0.01, emd_s=0.0)
    for m in range(2):
        expected = loop_reference(step[0, m].numpy(), float(c1[m]), float(c2[m]), 0)
        np.testing.assert_allclose(u[0, m].numpy(), expected, rtol=0, atol=1e-12)


def test_shape_factor_limit_and_values() -> None:
    u = torch.linspace(0.0, 1.0, 11, dtype=torch.float64).reshape(1, 1, 11)
    # Either side of the series switch at |A u| = 1e-3, and at/near the removable singularity.
    for shape in (-2.5, -1e-2, -1.001e-3, -0.999e-3, -1e-5, 0.0, 1e-7):
        a = muscle_activation(u, torch.tensor([shape], dtype=torch.float64))
        if abs(shape) < 1e-12:
            torch.testing.assert_close(a, u, rtol=0, atol=1e-15)
        else:
            expected = np.expm1(shape * u.numpy()) / math.expm1(shape)
            np.testing.assert_allclose(a.numpy(), expected, rtol=1e-13, atol=1e-15)


def test_activation_gradcheck() -> None:
    rng = np.random.default_rng(2)
    excitation = torch.as_tensor(rng.uniform(0.05, 0.9, (2, 2, 30))).requires_grad_()
    c1 = torch.tensor([-0.6, -0.3], dtype=torch.float64, requires_grad=True)
    c2 = torch.tensor([-0.4, -0.8], dtype=torch.float64, requires_grad=True)
    shape = torch.tensor([-1.5, -2e-4], dtype=torch.float64, requires_grad=True)

    def run(e, a1, a2, s):
        return activation(e, a1, a2, s, dt_s=0.01, emd_s=0.02)

    assert torch.autograd.gradcheck(run, (excitation, c1, c2, shape))


def test_shape_factor_gradcheck_at_zero() -> None:
    u = torch.as_tensor(np.linspace(0.1, 0.9, 5)).reshape(1, 1, 5).requires_grad_()
    shape = torch.tensor([0.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(muscle_activation, (u, shape))


def test_delay_validation() -> None:
    assert delay_samples(emd_s=0.035, dt_s=0.01) == 4
    with pytest.raises(ValueError):
        delay_samples(emd_s=0.01, dt_s=0.0)


def loop_with_history(excitation: np.ndarray, before: np.ndarray, c1: float, c2: float,
                      delay: int) -> np.ndarray:
    """The recursion with e_{i-d} taken from the EMG recorded before the window (``before``,
    its last sample just before the first); earlier samples hold the earliest one known, and
    the filter starts in steady state with the first delayed sample."""
    known = np.concatenate([before, excitation])
    n_before = before.size

    def e(i: int) -> float:
        return known[max(0, n_before + i - delay)]

    beta1, beta2 = c1 + c2, c1 * c2
    alpha = 1.0 + beta1 + beta2
    u1 = u2 = e(0)
    out = np.empty_like(excitation)
    for i in range(excitation.size):
        u = alpha * e(i) - beta1 * u1 - beta2 * u2
        out[i] = u
        u1, u2 = u, u1
    return out


@pytest.mark.parametrize(("n_before", "emd_s"), [(40, 0.015), (5, 0.015), (0, 0.015),
                                                 (40, 0.0)])
def test_delay_uses_emg_recorded_before_the_window(n_before: int, emd_s: float) -> None:
    rng = np.random.default_rng(4)
    dt_s, n_time = 0.001, 120
    signal = np.clip(np.cumsum(rng.normal(0, 0.05, 200 + n_time)) + 0.4, 0, 1)
    before, excitation = signal[200 - n_before:200], signal[200:]
    c1, c2 = -0.6, -0.3
    delay = delay_samples(emd_s=emd_s, dt_s=dt_s)
    got = neural_activation(torch.tensor(excitation)[None, None], torch.tensor([c1]),
                            torch.tensor([c2]), dt_s=dt_s, emd_s=emd_s,
                            before=torch.tensor(before)[None, None])[0, 0].numpy()
    np.testing.assert_allclose(got, loop_with_history(excitation, before, c1, c2, delay),
                               atol=1e-12)
    if n_before >= delay > 0:  # a real history differs from repeating the first sample
        held = loop_reference(excitation, c1, c2, delay)
        assert np.abs(got - held)[:delay].max() > 1e-4
    # NaN (not recorded) before the window means: hold the first sample.
    nan_before = torch.full((1, 1, 7), float("nan"), dtype=torch.float64)
    held_out = neural_activation(torch.tensor(excitation)[None, None], torch.tensor([c1]),
                                 torch.tensor([c2]), dt_s=dt_s, emd_s=emd_s,
                                 before=nan_before)[0, 0].numpy()
    np.testing.assert_allclose(held_out, loop_reference(excitation, c1, c2, delay), atol=1e-12)


def test_delay_with_history_gradcheck() -> None:
    rng = np.random.default_rng(5)
    excitation = torch.tensor(rng.uniform(0.1, 0.6, (2, 2, 30)), requires_grad=True)
    before = torch.tensor(rng.uniform(0.1, 0.6, (2, 2, 4)), requires_grad=True)
    c1 = torch.tensor([-0.5, -0.3], dtype=torch.float64, requires_grad=True)
    c2 = torch.tensor([-0.4, -0.6], dtype=torch.float64, requires_grad=True)
    shape = torch.tensor([-1.0, -2.0], dtype=torch.float64, requires_grad=True)

    def f(e, b, a1, a2, s):
        return activation(e, a1, a2, s, dt_s=0.01, emd_s=0.03, before=b)

    assert torch.autograd.gradcheck(f, (excitation, before, c1, c2, shape))


@pytest.mark.parametrize("n_time", [40, 150])
def test_recursive_filter_loops_agree_and_numba_takes_over_after_its_budget(
        monkeypatch: pytest.MonkeyPatch, n_time: int) -> None:
    """The numpy loops (step by step, or in blocks for long signals; a process's first
    NUMBA_AFTER_STEPS steps) and the numba loop (after) equal the recursion written out; numba
    is used only once the budget is spent."""
    from pipeline.nms import _iir

    rng = np.random.default_rng(3)
    x = rng.normal(size=(5, n_time))
    alpha, beta1, beta2 = rng.uniform(0.1, 1.0, 5), rng.uniform(-1.5, -0.5, 5), \
        rng.uniform(0.1, 0.5, 5)
    expected = np.zeros_like(x)
    for r in range(5):
        u1 = u2 = 0.0
        for i in range(n_time):
            u = alpha[r] * x[r, i] - beta1[r] * u1 - beta2[r] * u2
            expected[r, i], u2, u1 = u, u1, u
    monkeypatch.setattr(_iir, "_state", {"numpy_steps": 0, "jit": None})
    monkeypatch.setattr(_iir, "NUMBA_AFTER_STEPS", int(1.5 * n_time))
    monkeypatch.delitem(sys.modules, "scipy.linalg.lapack", raising=False)  # no LAPACK path
    first = _iir.run_filter(x, alpha, beta1, beta2)  # numpy
    assert _iir._state["jit"] is None and _iir._state["numpy_steps"] == n_time
    backwards = _iir.run_filter(x[:, ::-1], alpha, beta1, beta2, reverse=True)  # numpy
    assert _iir._state["jit"] is None
    later = _iir.run_filter(x, alpha, beta1, beta2)  # budget spent: numba when installed
    assert (_iir._state["jit"] is not None) == _iir.NUMBA_INSTALLED
    scale = np.abs(expected).max()
    np.testing.assert_allclose(first, expected, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(backwards[:, ::-1], expected, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(later, expected, rtol=0, atol=1e-13 * scale)


def _recursion_written_out(x: np.ndarray, alpha: np.ndarray, beta1: np.ndarray,
                           beta2: np.ndarray) -> np.ndarray:
    out = np.zeros_like(x)
    for r in range(x.shape[0]):
        u1 = u2 = 0.0
        for i in range(x.shape[1]):
            u = alpha[r] * x[r, i] - beta1[r] * u1 - beta2[r] * u2
            out[r, i], u2, u1 = u, u1, u
    return out


@pytest.mark.parametrize("distinct", [1, 3, 7])
def test_recursive_filter_lapack_path_equals_the_recursion_both_ways(
        monkeypatch: pytest.MonkeyPatch, distinct: int) -> None:
    """With scipy.linalg imported, the filter runs as LAPACK's banded triangular solve, one call
    per distinct (beta1, beta2) among the rows (shared coefficients, a few groups, every row its
    own), forwards and backwards in time: the recursion written out to rounding, and no numpy
    step is counted towards numba's start."""
    import scipy.linalg  # noqa: F401  (the path is taken only once it is imported)

    from pipeline.nms import _iir

    rng = np.random.default_rng(11)
    rows, n_time = 7, 251
    x = rng.normal(size=(rows, n_time))
    # stable filters: poles -c1, -c2 inside the unit circle (activation parameters c in (-1, 0))
    c1, c2 = rng.uniform(-0.95, -0.05, distinct), rng.uniform(-0.95, -0.05, distinct)
    group = np.arange(rows) % distinct
    beta1, beta2 = (c1 + c2)[group], (c1 * c2)[group]
    alpha = rng.uniform(0.1, 1.0, rows)  # per row even within a group
    expected = _recursion_written_out(x, alpha, beta1, beta2)
    monkeypatch.setattr(_iir, "_state", {"numpy_steps": 0, "jit": None})
    forwards = _iir.run_filter(x, alpha, beta1, beta2)
    backwards = _iir.run_filter(x[:, ::-1], alpha, beta1, beta2, reverse=True)
    assert _iir._state == {"numpy_steps": 0, "jit": None}
    scale = np.abs(expected).max()
    np.testing.assert_allclose(forwards, expected, rtol=0, atol=1e-13 * scale)
    np.testing.assert_allclose(backwards[:, ::-1], expected, rtol=0, atol=1e-13 * scale)


def test_recursive_filter_lapack_path_declines_what_numpy_does_better(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """More distinct coefficient pairs than BANDED_MAX_GROUPS, a signal shorter than the band,
    or a coefficient that is not finite (the recursion's NaN from the first sample on) go to the
    numpy loops (counted towards numba's start), with the recursion's values."""
    import scipy.linalg  # noqa: F401

    from pipeline.nms import _iir

    rng = np.random.default_rng(12)
    monkeypatch.setattr(_iir, "_state", {"numpy_steps": 0, "jit": None})
    for rows, n_time, bad in ((_iir.BANDED_MAX_GROUPS + 1, 60, None), (3, 2, None),
                              (2, 60, np.nan), (2, 30, np.inf)):
        x = rng.normal(size=(rows, n_time))
        c1, c2 = rng.uniform(-0.95, -0.05, rows), rng.uniform(-0.95, -0.05, rows)
        alpha, beta1, beta2 = np.ones(rows), c1 + c2, c1 * c2
        if bad is not None:
            beta1[0] = bad
        out = np.full_like(x, np.nan)
        assert not _iir._banded(x, alpha, beta1, beta2, False, out)
        assert np.isnan(out).all()  # nothing written when declining
        before = _iir._state["numpy_steps"]
        result = _iir.run_filter(x, alpha, beta1, beta2)
        expected = _recursion_written_out(x, alpha, beta1, beta2)
        good = slice(0 if bad is None else 1, None)  # the finite rows, to rounding
        np.testing.assert_allclose(result[good], expected[good], rtol=0, atol=1e-13)
        if bad is not None:  # NaN from the second sample on at least (numpy's blocks may keep
            assert np.isnan(result[0, 1:]).all()  # the first: the recursion's own NaN is 0 * inf)
        assert _iir._state["numpy_steps"] == before + n_time
