"""The model's forward pass as compiled loops, for optimisers that only need values (annealing).

Same formulas as :func:`pipeline.nms.simulate` (activation filter and non-linearity, stiff or
elastic fibre kinematics, DeGrooteFregly2016 curves, force along the tendon, tendon strain), run
element by element in numba with no tensor dispatch: a 14-parameter problem costs a fraction of a
millisecond per evaluation instead of milliseconds of small-tensor overhead. No derivatives. A test
keeps it equal to :func:`pipeline.nms.simulate`, and, with CEINMS's activation-dependent optimal
fibre length and clipped fibre velocity, to :func:`pipeline.calibrate.ceinms_objective
.simulate_ceinms`. Without numba, :data:`AVAILABLE` is False.

``backend="numpy"`` runs the same formulas vectorised in numpy instead (the activation filter of
:mod:`pipeline.nms._iir`): no numba import and no machine code to load (0.3-0.6 s of start-up),
about half a millisecond on small problems, where tensor dispatch costs milliseconds. numba is
imported on the first call that needs it.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from pipeline.nms import _rosenbrock, curves
from pipeline.nms._iir import NUMBA_INSTALLED, run_filter

#: numba is installed (the loops are compiled, or loaded from numba's cache, on first use).
AVAILABLE = NUMBA_INSTALLED
_JIT: dict[str, Any] = {}

_B = curves.ACTIVE_FL_COEFFICIENTS
_KPE_E0 = curves.PASSIVE_KPE / curves.PASSIVE_STRAIN_AT_ONE
_P_OFF = math.exp(curves.PASSIVE_KPE * (curves.PASSIVE_MIN_NORM_FIBER_LENGTH - 1.0)
                  / curves.PASSIVE_STRAIN_AT_ONE)
_P_DEN = math.exp(curves.PASSIVE_KPE) - _P_OFF
_VMAX = curves.MAX_CONTRACTION_VELOCITY_PER_S
_D1, _D2, _D3, _D4 = curves.FV_D1, curves.FV_D2, curves.FV_D3, curves.FV_D4
_SERIES = 1e-3


def _phi(x):
    if abs(x) < _SERIES:
        return 1.0 + x * (1.0 / 2.0 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x / 120.0)))
    return math.expm1(x) / x


def _activation_loops(drive, initial, c1, c2, shape, out):
    n_trials, n_mtus, n_time = drive.shape
    for t in range(n_trials):
        for m in range(n_mtus):
            alpha = 1.0 + c1[m] + c2[m] + c1[m] * c2[m]
            beta1 = c1[m] + c2[m]
            beta2 = c1[m] * c2[m]
            a_shape = shape[m]
            denominator = _phi(a_shape)
            u1 = 0.0
            u2 = 0.0
            for n in range(n_time):
                u = alpha * drive[t, m, n] - beta1 * u1 - beta2 * u2
                u2 = u1
                u1 = u
                neural = initial[t, m] + u
                out[t, m, n] = neural * _phi(a_shape * neural) / denominator


def _force_loops(act, length, velocity, lmt, l0, lts, sin_phi0, fmax, strength, damping,
                 percentage_change, clip_velocity, force, norm_length, strain):
    n_trials, n_mtus, n_time = act.shape
    for t in range(n_trials):
        for m in range(n_mtus):
            w = l0[m] * sin_phi0[m]
            scale = fmax[m] * strength[m]
            for n in range(n_time):
                fl = length[t, m, n]
                x = fl / l0[m]
                lc = math.sqrt(fl * fl - w * w)
                cos_phi = lc / fl
                # CEINMS's activation-dependent optimal fibre length (0: the project's model)
                xa = x / (1.0 + percentage_change * (1.0 - act[t, m, n]))
                fa = 0.0
                for k in range(3):
                    q = (xa - _B[k, 1]) / (_B[k, 2] + _B[k, 3] * xa)
                    fa += _B[k, 0] * math.exp(-0.5 * q * q)
                fp = (math.exp(_KPE_E0 * (x - 1.0)) - _P_OFF) / _P_DEN
                vn = velocity[t, m, n] / (_VMAX * l0[m])
                if clip_velocity:
                    vn = min(1.0, max(-1.0, vn))
                fv = _D1 * math.asinh(_D2 * vn + _D3) + _D4
                force[t, m, n] = scale * (fa * fv * act[t, m, n] + fp + damping[m] * vn) * cos_phi
                norm_length[t, m, n] = x
                strain[t, m, n] = (lmt[t, m, n] - lc) / lts[m] - 1.0


def _jitted() -> dict[str, Any]:
    """The numba kernels, compiled (or loaded from numba's cache) on first use."""
    if not _JIT:
        import numba

        jit = numba.njit(cache=True, nogil=True)
        global _phi
        _phi = jit(_phi)  # called by the activation loop: compiled first
        _JIT["activation"] = jit(_activation_loops)
        _JIT["force"] = jit(_force_loops)
    return _JIT


def _phi_array(x: np.ndarray) -> np.ndarray:
    """:func:`_phi` elementwise."""
    small = np.abs(x) < _SERIES
    safe = np.where(small, 1.0, x)
    series = 1.0 + x * (1.0 / 2.0 + x * (1.0 / 6.0 + x * (1.0 / 24.0 + x / 120.0)))
    return np.where(small, series, np.expm1(safe) / safe)


def _activation_numpy(drive, initial, c1, c2, shape, out):
    """:func:`_activation_loops` vectorised (the filter in :func:`pipeline.nms._iir.run_filter`)."""
    n_trials, n_mtus, n_time = drive.shape
    coefficients = [np.broadcast_to(c, (n_trials, n_mtus)).reshape(-1)
                    for c in (1.0 + c1 + c2 + c1 * c2, c1 + c2, c1 * c2)]
    filtered = run_filter(drive.reshape(-1, n_time), *coefficients).reshape(drive.shape)
    neural = initial[..., None] + filtered
    a_shape = shape[:, None]
    out[...] = neural * _phi_array(a_shape * neural) / _phi_array(a_shape)


def _force_numpy(act, length, velocity, lmt, l0, lts, sin_phi0, fmax, strength, damping,
                 percentage_change, clip_velocity, force, norm_length, strain):
    """:func:`_force_loops` vectorised."""
    per_muscle = (l0[:, None], lts[:, None], (l0 * sin_phi0)[:, None],
                  (fmax * strength)[:, None], damping[:, None])
    l0_m, lts_m, w, scale, d = per_muscle
    x = length / l0_m
    lc = np.sqrt(length * length - w * w)
    xa = x / (1.0 + percentage_change * (1.0 - act))
    fa = 0.0
    for k in range(3):
        q = (xa - _B[k, 1]) / (_B[k, 2] + _B[k, 3] * xa)
        fa = fa + _B[k, 0] * np.exp(-0.5 * q * q)
    fp = (np.exp(_KPE_E0 * (x - 1.0)) - _P_OFF) / _P_DEN
    vn = velocity / (_VMAX * l0_m)
    if clip_velocity:
        vn = np.clip(vn, -1.0, 1.0)
    fv = _D1 * np.arcsinh(_D2 * vn + _D3) + _D4
    force[...] = scale * (fa * fv * act + fp + d * vn) * (lc / length)
    norm_length[...] = x
    strain[...] = (lmt - lc) / lts_m - 1.0


def simulate_values(params: dict[str, np.ndarray], *, drive: np.ndarray, initial: np.ndarray,
                    mtu_length_m: np.ndarray, mtu_velocity_mps: np.ndarray, dt_s: float,
                    tendon: str,
                    tendon_strain_at_one_norm_force: float = curves.TENDON_STRAIN_AT_ONE,
                    percentage_change: float = 0.0, clip_velocity: bool = False,
                    n_before: int = 0, backend: str = "numba") -> dict[str, np.ndarray]:
    """Per-muscle outputs ``(trial, muscle, time)``: activation, fibre length and velocity,
    force along the tendon, normalised fibre length, tendon strain.

    Args:
        params: ``(muscle,)`` float64 arrays named as :class:`~pipeline.nms.MuscleParameters`'s
            fields.
        drive: delayed excitation minus its first sample; initial: that first sample
            ``(trial, muscle)`` (see :func:`pipeline.nms.activation.neural_activation`).
        mtu_velocity_mps: time derivative of the MTU length (stiff tendon only).
        percentage_change, clip_velocity: CEINMS's activation-dependent optimal fibre length and
            clipped normalised fibre velocity
            (:func:`pipeline.calibrate.ceinms_objective.ceinms_fiber_force`); 0 and False: the
            project's model.
        n_before: leading samples of ``drive`` that only run the activation filter (CEINMS's
            recorded history); the outputs start after them.
        backend: ``"numba"`` (compiled loops) or ``"numpy"`` (vectorised; module docstring).
    """
    if backend == "numba":
        if not AVAILABLE:
            raise RuntimeError("the compiled model needs numba; use backend='numpy'")
        activation_kernel, force_kernel = _jitted()["activation"], _jitted()["force"]
    elif backend == "numpy":
        activation_kernel, force_kernel = _activation_numpy, _force_numpy
    else:
        raise ValueError(f"backend must be 'numba' or 'numpy', got {backend!r}")
    act = np.empty(drive.shape)
    activation_kernel(drive, initial, params["c1"], params["c2"], params["shape_factor"], act)
    if n_before:
        act = np.ascontiguousarray(act[..., n_before:])
    shape: tuple[int, ...] = act.shape
    l0, lts = params["optimal_fiber_length_m"], params["tendon_slack_length_m"]
    sin_phi0 = np.sin(params["pennation_at_optimal_rad"])
    if tendon == "stiff":
        along = mtu_length_m - lts[:, None]
        width = (l0 * sin_phi0)[:, None]
        length = np.sqrt(along * along + width * width)
        velocity = along / length * mtu_velocity_mps
    elif tendon == "elastic":
        k_tendon = curves.tendon_stiffness_exponent(tendon_strain_at_one_norm_force)
        n_trials, n_mtus, n_time = shape[0], shape[1], shape[2]
        per_row = [np.ascontiguousarray(np.broadcast_to(v, (n_trials, n_mtus)).reshape(-1))
                   for v in (l0, lts, params["damping"], sin_phi0)]
        act_tm = np.ascontiguousarray(act.reshape(-1, n_time).T)
        lmt_tm = np.ascontiguousarray(mtu_length_m.reshape(-1, n_time).T)
        start = _rosenbrock.static_equilibrium(act_tm[0].copy(), lmt_tm[0].copy(), *per_row,
                                               k_tendon=k_tendon)
        length_tm, velocity_tm = _rosenbrock.integrate(start, act_tm, lmt_tm, *per_row,
                                                       dt_s=dt_s, k_tendon=k_tendon)
        length = np.ascontiguousarray(length_tm.T).reshape(shape)
        velocity = np.ascontiguousarray(velocity_tm.T).reshape(shape)
    else:
        raise ValueError(f"tendon must be 'elastic' or 'stiff', got {tendon!r}")
    force, norm_length, strain = np.empty(shape), np.empty(shape), np.empty(shape)
    force_kernel(act, length, velocity, mtu_length_m, l0, lts, sin_phi0,
               params["max_isometric_force_n"], params["strength"], params["damping"],
               float(percentage_change), bool(clip_velocity), force, norm_length, strain)
    return {"activation": act, "fiber_length_m": length, "fiber_velocity_mps": velocity,
            "force_n": force, "normalized_fiber_length": norm_length, "tendon_strain": strain}
