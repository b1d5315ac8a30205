"""The second-order recursive filter of the activation dynamics, run as a recursion on the CPU.

    u_i = alpha x_i - beta1 u_{i-1} - beta2 u_{i-2},   u_{-1} = u_{-2} = 0,

row by row (one row per trial-muscle pair, per-row coefficients). A sequential loop costs about one
multiply-add per sample, far less than the FFT convolution of :mod:`pipeline.nms.activation` on
small batches. Where it runs, first found first:

* numba's loop, once compiled in this process (see below);
* LAPACK's banded triangular solve (``dtbtrs``: the recursion is ``(I + beta1 S1 + beta2 S2) u =
  alpha x``, a unit lower-triangular system of bandwidth 2; backwards in time, its transpose),
  one call per distinct ``(beta1, beta2)`` among the rows, when ``scipy.linalg`` is already
  imported (every least-squares calibration imports it; importing it only for this would cost
  0.3-0.5 s). 5-50 us per call on the walking problems against 170-360 us in numpy blocks;
* numpy, vectorised over the rows and in blocks of time, for the process's first
  :data:`NUMBA_AFTER_STEPS` time steps; then numba when installed (its first call costs about a
  second of imports and cache loading, which a least-squares calibration of a few hundred filter
  runs never earns back and a long run, e.g. annealing, does). The elastic tendon's kernels
  (:mod:`pipeline.nms._rosenbrock`) start numba anyway; they switch this loop to numba at once.

The three agree to rounding (a test holds each to the recursion written out). The derivatives
are exact and come from the same recursion:

* forward mode: ``u' = F_1(alpha' x + alpha x' - beta1' S1 u - beta2' S2 u)`` where ``F_1`` is the
  filter with unit ``alpha`` and ``S1``, ``S2`` delay by one and two samples;
* reverse mode: the adjoint ``lam = F_1`` run backwards in time on the output cotangent, then
  ``x_bar = alpha lam``, ``alpha_bar = sum lam x``, ``beta1_bar = -sum lam S1 u``,
  ``beta2_bar = -sum lam S2 u``.
"""

from __future__ import annotations

import importlib.util
import math
import sys
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

#: numba is installed (it is imported only when the loop is first compiled).
NUMBA_INSTALLED = importlib.util.find_spec("numba") is not None
#: Time steps filtered in numpy (about 2-5 us each) before the numba loop takes over (0: at once).
NUMBA_AFTER_STEPS = 200_000
_state: dict[str, Any] = {"numpy_steps": 0, "jit": None}


def _filter_loops(x, alpha, beta1, beta2, reverse, out):
    n_rows, n_time = x.shape
    for r in range(n_rows):
        a, b1, b2 = alpha[r], beta1[r], beta2[r]
        u1 = 0.0
        u2 = 0.0
        for k in range(n_time):
            i = n_time - 1 - k if reverse else k
            u = a * x[r, i] - b1 * u1 - b2 * u2
            out[r, i] = u
            u2 = u1
            u1 = u


def _compiled() -> Callable[..., None] | None:
    """The numba loop once :data:`NUMBA_AFTER_STEPS` steps were filtered in numpy (None before,
    or without numba)."""
    if _state["jit"] is not None:
        return _state["jit"]
    if not NUMBA_INSTALLED or _state["numpy_steps"] < NUMBA_AFTER_STEPS:
        return None
    import numba

    _state["jit"] = numba.njit(cache=True, nogil=True)(_filter_loops)
    return _state["jit"]


def use_compiled_loop() -> bool:
    """Switch to the numba loop now (for a long run that will earn its start-up, e.g. a
    benchmark of the steady state or many evaluations); False when numba is not installed."""
    _state["numpy_steps"] = max(_state["numpy_steps"], NUMBA_AFTER_STEPS)
    return _compiled() is not None


def run_filter(x: np.ndarray, alpha: np.ndarray, beta1: np.ndarray, beta2: np.ndarray, *,
               reverse: bool = False) -> np.ndarray:
    """The recursion on float64 ``x`` ``(rows, time)`` with ``(rows,)`` coefficients (backwards in
    time when ``reverse``)."""
    x = np.ascontiguousarray(x, dtype=np.float64)
    out = np.empty_like(x)
    a, b1, b2 = (np.ascontiguousarray(c, dtype=np.float64) for c in (alpha, beta1, beta2))
    jit = _compiled()
    if jit is not None:
        jit(x, a, b1, b2, bool(reverse), out)
        return out
    if _banded(x, a, b1, b2, bool(reverse), out):
        return out
    _numpy_loop(x, a, b1, b2, bool(reverse), out)
    _state["numpy_steps"] += x.shape[1]
    return out


#: At most this many distinct ``(beta1, beta2)`` among the rows go to LAPACK (each costs one call,
#: about 6 us plus 2 us per row of 251 samples; the numpy blocks cost about 170 us plus 2.6 us per
#: row).
BANDED_MAX_GROUPS = 24


def _banded(x: np.ndarray, a: np.ndarray, b1: np.ndarray, b2: np.ndarray, reverse: bool,
            out: np.ndarray) -> bool:
    """The recursion as LAPACK's unit lower-triangular banded solve (module docstring), grouped
    by the rows' ``(beta1, beta2)``; False, with nothing written, when ``scipy.linalg`` is not
    imported yet, the signal is too short for a band of 2, a coefficient is not finite (the
    solve skips ``beta * 0`` at the first samples, where the recursion writes NaN), or the rows
    have too many distinct coefficients. With a unit diagonal ``dtbtrs`` never reports a
    singular system."""
    lapack = sys.modules.get("scipy.linalg.lapack")
    rows, n = x.shape
    if (lapack is None or n < 3 or rows == 0 or not np.isfinite(b1).all()
            or not np.isfinite(b2).all()):
        return False
    groups: dict[tuple[float, float], list[int]] = {}
    for row, key in enumerate(zip(b1.tolist(), b2.tolist(), strict=True)):
        groups.setdefault(key, []).append(row)
    if len(groups) > BANDED_MAX_GROUPS:
        return False
    band = np.empty((3, n))  # LAPACK band storage: row 0 the (unit) diagonal, then S1, S2
    band[0] = 1.0
    drive = a[:, None] * x
    for (beta1, beta2), members in groups.items():
        band[1], band[2] = beta1, beta2
        part = drive if len(members) == rows else drive[members]
        solution, _ = lapack.dtbtrs(band, part.T, uplo="L", trans="T" if reverse else "N",
                                    diag="U")
        if len(members) == rows:
            out[...] = solution.T
        else:
            out[members] = solution.T
    return True


def _numpy_loop(x: np.ndarray, a: np.ndarray, b1: np.ndarray, b2: np.ndarray, reverse: bool,
                out: np.ndarray) -> None:
    """The recursion in numpy, vectorised over the rows: step by step for short signals, in
    blocks of about ``sqrt(time)`` samples for long ones (:func:`_blocked`)."""
    if x.shape[1] >= _BLOCKED_FROM:
        _blocked(x, a, b1, b2, reverse, out)
        return
    u1 = np.zeros(x.shape[0])
    u2 = np.zeros(x.shape[0])
    order = range(x.shape[1] - 1, -1, -1) if reverse else range(x.shape[1])
    for i in order:
        u = a * x[:, i] - b1 * u1 - b2 * u2
        out[:, i] = u
        u1, u2 = u, u1


#: Signals at least this long are filtered in blocks (fewer, larger numpy operations).
_BLOCKED_FROM = 48


def _blocked(x: np.ndarray, a: np.ndarray, b1: np.ndarray, b2: np.ndarray, reverse: bool,
             out: np.ndarray) -> None:
    """The same recursion in blocks of ``k`` samples, exact up to rounding: within a block the
    output is the block's input convolved with the filter's impulse response ``h`` (a
    ``(k, k)`` lower-triangular Toeplitz product per row), plus the response to the two outputs
    before the block (``h[i + 1]`` for ``u_{-1}``, ``-beta2 h[i]`` for ``u_{-2}``), carried from
    block to block. ``k + time / k`` sequential steps instead of ``time``."""
    if reverse:
        x = x[:, ::-1]
    rows, n = x.shape
    k = max(2, math.isqrt(n))
    n_blocks = -(-n // k)
    h = np.empty((rows, k + 1))  # impulse response of the unit-alpha filter
    h[:, 0] = 1.0
    h[:, 1] = -b1
    for i in range(2, k + 1):
        h[:, i] = -b1 * h[:, i - 1] - b2 * h[:, i - 2]
    lag = np.arange(k)[:, None] - np.arange(k)[None, :]
    toeplitz_t = np.where(lag >= 0, h[:, np.clip(lag, 0, k)], 0.0).transpose(0, 2, 1)
    drive = np.zeros((rows, n_blocks * k))
    np.multiply(a[:, None], x, out=drive[:, :n])
    u = np.matmul(drive.reshape(rows, n_blocks, k), toeplitz_t)  # zero-state response
    from_u1, from_u2 = h[:, 1:], -b2[:, None] * h[:, :k]
    for block in range(n_blocks):
        if block:
            previous = u[:, block - 1]
            u[:, block] += (from_u1 * previous[:, -1:] + from_u2 * previous[:, -2:-1])
    result = u.reshape(rows, n_blocks * k)[:, :n]
    out[...] = result[:, ::-1] if reverse else result


def _delay(u: np.ndarray, samples: int) -> np.ndarray:
    out = np.zeros_like(u)
    out[:, samples:] = u[:, :-samples]
    return out


def _np(t: torch.Tensor) -> np.ndarray:
    t = t.detach()
    if t.dtype != torch.float64 or t.device.type != "cpu":  # .to() costs even when a no-op
        t = t.to(device="cpu", dtype=torch.float64)
    return t.numpy()


def _like(ctx, array: np.ndarray) -> torch.Tensor:
    out = torch.from_numpy(array)
    dtype, device = ctx.like
    if dtype != torch.float64 or device.type != "cpu":
        out = out.to(dtype=dtype, device=device)
    return out


class RecursiveFilter(torch.autograd.Function):
    """``(x (rows, time), alpha, beta1, beta2 (rows,)) -> u (rows, time)``; exact reverse and
    forward derivatives (module docstring)."""

    @staticmethod
    def forward(ctx, x, alpha, beta1, beta2):
        x_np, a, b1, b2 = (_np(t) for t in (x, alpha, beta1, beta2))
        u = run_filter(x_np, a, b1, b2)
        ctx.state = (x_np, u, a, b1, b2)
        ctx.like = (x.dtype, x.device)
        return _like(ctx, u)

    @staticmethod
    def backward(ctx, grad_u):
        x_np, u, a, b1, b2 = ctx.state
        lam = run_filter(_np(grad_u), np.ones_like(a), b1, b2, reverse=True)
        need = ctx.needs_input_grad
        # Row-wise dot products (einsum: no product array); S1 u, S2 u as shifted slices.
        grads = (a[:, None] * lam if need[0] else None,
                 np.einsum("ij,ij->i", lam, x_np) if need[1] else None,
                 -np.einsum("ij,ij->i", lam[:, 1:], u[:, :-1]) if need[2] else None,
                 -np.einsum("ij,ij->i", lam[:, 2:], u[:, :-2]) if need[3] else None)
        return tuple(None if g is None else _like(ctx, np.ascontiguousarray(g)) for g in grads)

    @staticmethod
    def jvp(ctx, t_x, t_alpha, t_beta1, t_beta2):
        x_np, u, a, b1, b2 = ctx.state
        forcing = np.zeros_like(u)
        if t_x is not None:
            forcing += a[:, None] * _np(t_x)
        if t_alpha is not None:
            forcing += _np(t_alpha)[:, None] * x_np
        if t_beta1 is not None:
            forcing -= _np(t_beta1)[:, None] * _delay(u, 1)
        if t_beta2 is not None:
            forcing -= _np(t_beta2)[:, None] * _delay(u, 2)
        return _like(ctx, run_filter(forcing, np.ones_like(a), b1, b2))
