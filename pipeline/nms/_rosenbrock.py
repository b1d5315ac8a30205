"""Kernels of the elastic-tendon model: the equilibrium residual, its partials and the update.

All quantities are per element (one trial-muscle pair); arrays broadcast elementwise. The residual
is normalised by the maximum force ``s * Fmax`` (which cancels from the update):

    g(l, v, a, l_mt) = ft((l_mt - l cos(phi)) / l_ts) - (fa(l~) fv(v~) a + fp(l~) + d v~) cos(phi)

with ``l cos(phi) = sqrt(l^2 - w^2)``, ``w = l0 sin(phi0)`` (constant thickness), ``l~ = l / l0``
and ``v~ = v / (vmax l0)``. Its partials are written out analytically (they are exact, and tested
against autograd). The first-order Rosenbrock step (paper 002, eqs. A4-A5) treats the activation
and the MTU length as the controls ``u``:

    dl = (g_v v_i - g - g_a (a_{i+1} - a_i) - g_lmt (l_mt,{i+1} - l_mt,i)) / (g_l + g_v / h)
    l_{i+1} = l_i + dl,   v_{i+1} = dl / h.

The same formulas run on torch tensors (the first sample's implicit-function gradient) and on
numpy arrays, through ``xp`` namespaces. The step's own partials w.r.t. all its inputs (the local
Jacobians of the adjoint and of the tangents) need the residual's second partials; they are in
closed form in :func:`_step_partials` (tested against autograd through the step). The sequential
loops (the forward recursion, its adjoint and the static equilibrium) and the step partials run
element by element in a numba kernel when numba is installed (``_scalar_residual`` repeats the
formulas with ``math`` functions; a test keeps both identical), else vectorised over the batch in
numpy, which is exact but slower. numba is
imported, and the kernels loaded, on the first call that needs them (a stiff-tendon process never
pays for it).
"""

from __future__ import annotations

import importlib.util
import logging
import math
import types
from collections.abc import Iterator
from contextlib import contextmanager
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from pipeline.nms import curves

#: numba makes the sequential time loops ~100x faster; the numpy fallback is exact too (False:
#: use it).
USE_NUMBA = importlib.util.find_spec("numba") is not None
_KERNELS: dict[str, Any] = {}
#: Open :func:`few_passes` blocks.
_FEW_PASSES = {"depth": 0}

log = logging.getLogger(__name__)

NUMPY = SimpleNamespace(exp=np.exp, sqrt=np.sqrt, asinh=np.arcsinh)
TORCH = SimpleNamespace(exp=torch.exp, sqrt=torch.sqrt, asinh=curves.asinh)

_B = curves.ACTIVE_FL_COEFFICIENTS
_KPE_E0 = curves.PASSIVE_KPE / curves.PASSIVE_STRAIN_AT_ONE
_P_OFF = float(np.exp(_KPE_E0 * (curves.PASSIVE_MIN_NORM_FIBER_LENGTH - 1.0)))
_P_INV_DEN = 1.0 / (float(np.exp(curves.PASSIVE_KPE)) - _P_OFF)
_VMAX = curves.MAX_CONTRACTION_VELOCITY_PER_S
_TC1, _TC2, _TC3 = curves.TENDON_C1, curves.TENDON_C2, curves.TENDON_C3
_D1, _D2, _D3, _D4 = curves.FV_D1, curves.FV_D2, curves.FV_D3, curves.FV_D4


def residual_and_partials(xp, fl, v, a, lmt, l0, lts, damping, sin_phi0, *, k_tendon):
    """Return ``(g, g_l, g_v, g_a, g_lmt)`` of the normalised equilibrium residual."""
    w2 = (l0 * sin_phi0) ** 2
    lc = xp.sqrt(fl * fl - w2)
    cos_phi = lc / fl
    e_tendon = curves.TENDON_C1 * xp.exp(k_tendon * ((lmt - lc) / lts - curves.TENDON_C2))
    ft = e_tendon - curves.TENDON_C3
    dft = k_tendon * e_tendon
    x = fl / l0
    fa = 0.0
    dfa = 0.0
    for b1, b2, b3, b4 in _B:
        width = b3 + b4 * x
        q = (x - b2) / width
        term = b1 * xp.exp(-0.5 * q * q)
        fa = fa + term
        dfa = dfa - term * q * (1.0 - q * b4) / width
    e_passive = xp.exp(_KPE_E0 * (x - 1.0))
    fp = (e_passive - _P_OFF) * _P_INV_DEN
    dfp = _KPE_E0 * _P_INV_DEN * e_passive
    inv_vl0 = 1.0 / (_VMAX * l0)
    vn = v * inv_vl0
    y = curves.FV_D2 * vn + curves.FV_D3
    fv = curves.FV_D1 * xp.asinh(y) + curves.FV_D4
    dfv = curves.FV_D1 * curves.FV_D2 / xp.sqrt(y * y + 1.0)
    fm = fa * fv * a + fp + damping * vn
    g = ft - fm * cos_phi
    g_l = -dft / (lts * cos_phi) - (dfa * fv * a + dfp) / l0 * cos_phi - fm * w2 / (fl * fl * lc)
    g_v = -(fa * a * dfv + damping) * inv_vl0 * cos_phi
    g_a = -fa * fv * cos_phi
    g_lmt = dft / lts
    return g, g_l, g_v, g_a, g_lmt


def increment(xp, fl, v, a, a_next, lmt, lmt_next, l0, lts, damping, sin_phi0, *, dt_s, k_tendon):
    """One Rosenbrock fibre-length increment ``l_{i+1} - l_i`` (elementwise)."""
    g, g_l, g_v, g_a, g_lmt = residual_and_partials(
        xp, fl, v, a, lmt, l0, lts, damping, sin_phi0, k_tendon=k_tendon
    )
    numerator = g_v * v - g - g_a * (a_next - a) - g_lmt * (lmt_next - lmt)
    return numerator / (g_l + g_v / dt_s)




#: Order of the partials :func:`increment_partials` returns (the step's inputs).
STEP_INPUTS = ("l", "v", "a", "a_next", "lmt", "lmt_next", "l0", "lts", "damping", "sin_phi0")


def _step_partials(fl, v, a, a_next, lmt, lmt_next, l0, lts, damping, sin_phi0, dt_s, k_tendon):
    """Increment and its partials in :data:`STEP_INPUTS` order, in closed form.

    Elementwise: the same code runs on numpy arrays and, compiled by numba, on scalars.
    The increment is ``N / D`` with ``N = g_v v - g - g_a (a' - a) - g_lmt (l_mt' - l_mt)`` and
    ``D = g_l + g_v / h``, so its partials need the residual's second partials. Each of
    ``g, g_l, g_v, g_a, g_lmt`` depends on a few intermediates: the tendon strain, ``cos(phi)``,
    ``c3 = d cos(phi) / d l``, ``x = l / l0``, ``vn = v / (vmax l0)``, ``ivl = 1 / (vmax l0)``,
    ``a``, the damping, and explicit ``1 / lts`` and ``1 / l0`` factors. ``s_<intermediate>_<q>``
    below is the partial of ``q`` w.r.t. one intermediate; each input's partial of ``q`` is the sum
    over the intermediates it moves (chain rule). The pennation enters only through
    ``w2 = (l0 sin(phi0))^2``: ``w_<q>`` is the partial of ``q`` w.r.t. ``w2``.
    """
    w2 = (l0 * sin_phi0) ** 2
    l2 = fl * fl
    lc = np.sqrt(l2 - w2)
    cos_phi = lc / fl
    c3 = w2 / (l2 * lc)
    strain = (lmt - lc) / lts
    e_tendon = _TC1 * np.exp(k_tendon * (strain - _TC2))
    dft = k_tendon * e_tendon  # d ft / d strain
    x = fl / l0
    fa = 0.0
    dfa = 0.0
    d2fa = 0.0
    for k in range(3):
        b4 = _B[k, 3]
        width = _B[k, 2] + b4 * x
        q = (x - _B[k, 1]) / width
        dq = (1.0 - q * b4) / width
        term = _B[k, 0] * np.exp(-0.5 * q * q)
        fa = fa + term
        dfa = dfa - term * q * dq
        d2fa = d2fa + term * (dq * dq * (q * q - 1.0) + 2.0 * b4 * q * dq / width)
    e_passive = np.exp(_KPE_E0 * (x - 1.0))
    dfp = _KPE_E0 * _P_INV_DEN * e_passive
    ivl = 1.0 / (_VMAX * l0)
    vn = v * ivl
    y = _D2 * vn + _D3
    root2 = y * y + 1.0
    fv = _D1 * np.arcsinh(y) + _D4
    dfv = _D1 * _D2 / np.sqrt(root2)
    d2fv = -dfv * _D2 * y / root2
    fm = fa * fv * a + (e_passive - _P_OFF) * _P_INV_DEN + damping * vn
    p_x = dfa * fv * a + dfp  # d fm / d x
    r_v = fa * a * dfv + damping  # d fm / d vn
    inv_lts = 1.0 / lts
    inv_l0 = 1.0 / l0
    g = e_tendon - _TC3 - fm * cos_phi
    g_l = -dft * inv_lts / cos_phi - p_x * cos_phi * inv_l0 - fm * c3
    g_v = -r_v * ivl * cos_phi
    g_a = -fa * fv * cos_phi
    g_lmt = dft * inv_lts
    inv_h = 1.0 / dt_s
    inv_den = 1.0 / (g_l + g_v * inv_h)
    da = a_next - a
    dm = lmt_next - lmt
    step = (g_v * v - g - g_a * da - g_lmt * dm) * inv_den

    s_strain_gl = -k_tendon * g_lmt / cos_phi
    s_strain_glmt = k_tendon * g_lmt
    s_cos_gl = g_lmt / (cos_phi * cos_phi) - p_x * inv_l0
    s_cos_gv = -r_v * ivl
    s_cos_ga = -fa * fv
    s_x_g = -p_x * cos_phi
    s_x_gl = -(d2fa * fv * a + _KPE_E0 * dfp) * cos_phi * inv_l0 - p_x * c3
    s_x_gv = -dfa * a * dfv * ivl * cos_phi
    s_x_ga = -dfa * fv * cos_phi
    s_vn_g = -r_v * cos_phi
    s_vn_gl = -dfa * dfv * a * cos_phi * inv_l0 - r_v * c3
    s_vn_gv = -fa * cos_phi * a * d2fv * ivl
    s_vn_ga = -fa * cos_phi * dfv

    # l: moves the strain (through lc), cos(phi), c3 and x.
    r_strain = -fl / lc * inv_lts
    r_c3 = -w2 * (2.0 * lc * lc + l2) / (l2 * fl * lc * lc * lc)
    p_l = _ratio(dft * r_strain - fm * c3 + s_x_g * inv_l0,
                 s_strain_gl * r_strain + s_cos_gl * c3 - fm * r_c3 + s_x_gl * inv_l0,
                 s_cos_gv * c3 + s_x_gv * inv_l0, s_cos_ga * c3 + s_x_ga * inv_l0,
                 s_strain_glmt * r_strain, v, da, dm, step, inv_h, inv_den)
    p_v = _ratio(s_vn_g * ivl, s_vn_gl * ivl, s_vn_gv * ivl, s_vn_ga * ivl, 0.0,
                 v, da, dm, step, inv_h, inv_den) + g_v * inv_den
    p_a = _ratio(-fv * fa * cos_phi, -dfa * fv * cos_phi * inv_l0 - fa * fv * c3,
                 -fa * cos_phi * dfv * ivl, 0.0, 0.0,
                 v, da, dm, step, inv_h, inv_den) + g_a * inv_den
    p_m = _ratio(dft * inv_lts, s_strain_gl * inv_lts, 0.0, 0.0, s_strain_glmt * inv_lts,
                 v, da, dm, step, inv_h, inv_den) + g_lmt * inv_den
    # lts: moves the strain and the explicit 1 / lts in g_l and g_lmt.
    r_strain = -strain * inv_lts
    p_lts = _ratio(dft * r_strain, s_strain_gl * r_strain + g_lmt * inv_lts / cos_phi,
                   0.0, 0.0, s_strain_glmt * r_strain - g_lmt * inv_lts,
                   v, da, dm, step, inv_h, inv_den)
    p_d = _ratio(-vn * cos_phi, -vn * c3, -ivl * cos_phi, 0.0, 0.0,
                 v, da, dm, step, inv_h, inv_den)
    # w2: moves the strain, cos(phi) and c3.
    r_strain = 0.5 / lc * inv_lts
    r_cos = -0.5 / (lc * fl)
    r_c3 = (2.0 * lc * lc + w2) / (2.0 * l2 * lc * lc * lc)
    w_g = dft * r_strain - fm * r_cos
    w_gl = s_strain_gl * r_strain + s_cos_gl * r_cos - fm * r_c3
    w_gv = s_cos_gv * r_cos
    w_ga = s_cos_ga * r_cos
    w_glmt = s_strain_glmt * r_strain
    # l0: moves x, vn and ivl (each as -itself / l0), the explicit 1 / l0 and w2.
    r_x = -x * inv_l0
    r_vn = -vn * inv_l0
    c = 2.0 * l0 * sin_phi0 * sin_phi0
    p_l0 = _ratio(s_x_g * r_x + s_vn_g * r_vn + w_g * c,
                  s_x_gl * r_x + s_vn_gl * r_vn + p_x * cos_phi * inv_l0 * inv_l0 + w_gl * c,
                  s_x_gv * r_x + s_vn_gv * r_vn + r_v * cos_phi * ivl * inv_l0 + w_gv * c,
                  s_x_ga * r_x + s_vn_ga * r_vn + w_ga * c, w_glmt * c,
                  v, da, dm, step, inv_h, inv_den)
    c = 2.0 * l0 * l0 * sin_phi0
    p_s = _ratio(w_g * c, w_gl * c, w_gv * c, w_ga * c, w_glmt * c, v, da, dm, step, inv_h,
                 inv_den)
    return (step, p_l, p_v, p_a, -g_a * inv_den, p_m, -g_lmt * inv_den, p_l0, p_lts, p_d, p_s)


def _partials_loops(fl, v, a, lmt, l0, lts, damping, sin_phi0, dt_s, k_tendon, out):
    n_steps, n = out.shape[1:]
    for i in range(n_steps):
        for k in range(n):
            values = _step_partials(fl[i, k], v[i, k], a[i, k], a[i + 1, k], lmt[i, k],
                                    lmt[i + 1, k], l0[k], lts[k], damping[k], sin_phi0[k],
                                    dt_s, k_tendon)
            for j in range(11):
                out[j, i, k] = values[j]


def increment_partials(length, velocity, a, lmt, l0, lts, damping, sin_phi0, *, dt_s,
                       k_tendon):
    """Partials of every increment ``dl_i`` of :func:`integrate`'s recursion w.r.t. each input in
    :data:`STEP_INPUTS` (``l_i, v_i, a_i, a_{i+1}, lmt_i, lmt_{i+1}, l0, l_ts, d, sin(phi0)``),
    each ``(time - 1, n)``; exact, in closed form (:func:`_step_partials`), in the numba kernel
    when it is on, else vectorised in numpy."""
    n_steps = a.shape[0] - 1
    kernels = _kernels()
    if kernels is not None:
        out = np.empty((11, n_steps, a.shape[1]))
        kernels["partials"](length, velocity, a, lmt, l0, lts, damping, sin_phi0, float(dt_s),
                            float(k_tendon), out)
        return list(out[1:])
    values = _step_partials(length[:-1], velocity[:-1], a[:-1], a[1:], lmt[:-1], lmt[1:], l0,
                            lts, damping, sin_phi0, dt_s, k_tendon)
    return [np.broadcast_to(p, (n_steps, a.shape[1])) for p in values[1:]]


def _ratio(d_g, d_gl, d_gv, d_ga, d_glmt, v, da, dm, step, inv_h, inv_den):
    """Partial of ``N / D`` from the partials of ``g, g_l, g_v, g_a, g_lmt`` along one input
    (the input's own explicit terms in ``N`` are added by the caller)."""
    return (v * d_gv - d_g - da * d_ga - dm * d_glmt - step * (d_gl + d_gv * inv_h)) * inv_den


def _scalar_residual(fl, v, a, lmt, l0, lts, damping, sin_phi0, k_tendon):
    """Scalar twin of :func:`residual_and_partials` for the numba kernels."""
    w2 = (l0 * sin_phi0) ** 2
    lc = math.sqrt(fl * fl - w2)
    cos_phi = lc / fl
    e_tendon = _TC1 * math.exp(k_tendon * ((lmt - lc) / lts - _TC2))
    ft = e_tendon - _TC3
    dft = k_tendon * e_tendon
    x = fl / l0
    fa = 0.0
    dfa = 0.0
    for k in range(3):
        width = _B[k, 2] + _B[k, 3] * x
        q = (x - _B[k, 1]) / width
        term = _B[k, 0] * math.exp(-0.5 * q * q)
        fa = fa + term
        dfa = dfa - term * q * (1.0 - q * _B[k, 3]) / width
    e_passive = math.exp(_KPE_E0 * (x - 1.0))
    fp = (e_passive - _P_OFF) * _P_INV_DEN
    dfp = _KPE_E0 * _P_INV_DEN * e_passive
    inv_vl0 = 1.0 / (_VMAX * l0)
    vn = v * inv_vl0
    y = _D2 * vn + _D3
    fv = _D1 * math.asinh(y) + _D4
    dfv = _D1 * _D2 / math.sqrt(y * y + 1.0)
    fm = fa * fv * a + fp + damping * vn
    g = ft - fm * cos_phi
    g_l = -dft / (lts * cos_phi) - (dfa * fv * a + dfp) / l0 * cos_phi - fm * w2 / (fl * fl * lc)
    g_v = -(fa * a * dfv + damping) * inv_vl0 * cos_phi
    g_a = -fa * fv * cos_phi
    g_lmt = dft / lts
    return g, g_l, g_v, g_a, g_lmt


def _integrate_loops(l_init, a, lmt, l0, lts, damping, sin_phi0, dt_s, k_tendon, length, velocity):
    n_time, n = a.shape
    for k in range(n):
        fl = l_init[k]
        v = 0.0
        length[0, k] = fl
        velocity[0, k] = 0.0
        for i in range(n_time - 1):
            g, g_l, g_v, g_a, g_lmt = _scalar_residual(
                fl, v, a[i, k], lmt[i, k], l0[k], lts[k], damping[k], sin_phi0[k], k_tendon
            )
            numerator = g_v * v - g - g_a * (a[i + 1, k] - a[i, k]) - g_lmt * (
                lmt[i + 1, k] - lmt[i, k]
            )
            dl = numerator / (g_l + g_v / dt_s)
            fl = fl + dl
            v = dl / dt_s
            length[i + 1, k] = fl
            velocity[i + 1, k] = v


def _adjoint_loops(grad_length, grad_velocity, jac_l, jac_v, inv_dt, bar_l_out, grad_increment):
    n_time, n = grad_length.shape
    for k in range(n):
        bar_l = grad_length[n_time - 1, k]
        bar_v = grad_velocity[n_time - 1, k]
        for i in range(n_time - 2, -1, -1):
            bar_d = bar_l + bar_v * inv_dt
            grad_increment[i, k] = bar_d
            bar_l = grad_length[i, k] + bar_l + bar_d * jac_l[i, k]
            bar_v = grad_velocity[i, k] + bar_d * jac_v[i, k]
        bar_l_out[k] = bar_l


def _tangent_loops(tl_init, forcing, jac_l, jac_v, inv_dt, tl_out, tv_out):
    n_steps, n = forcing.shape
    for k in range(n):
        tl = tl_init[k]
        tv = 0.0
        tl_out[0, k] = tl
        tv_out[0, k] = 0.0
        for i in range(n_steps):
            t_d = jac_l[i, k] * tl + jac_v[i, k] * tv + forcing[i, k]
            tl = tl + t_d
            tv = t_d * inv_dt
            tl_out[i + 1, k] = tl
            tv_out[i + 1, k] = tv


def _equilibrium_loops(a, lmt, l0, lts, damping, sin_phi0, k_tendon, out):
    for k in range(a.shape[0]):
        w2 = (l0[k] * sin_phi0[k]) ** 2
        low = 1e-9 * lmt[k]
        high = lmt[k]
        y = max(min(lmt[k] - lts[k], 0.999 * high), 2.0 * low)
        for _ in range(200):
            fl = math.sqrt(y * y + w2)
            g, g_l = _scalar_residual(fl, 0.0, a[k], lmt[k], l0[k], lts[k], damping[k],
                                      sin_phi0[k], k_tendon)[:2]
            if g > 0.0:
                low = y
            else:
                high = y
            # Newton in y (dl/dy = y / l); fall back to bisection when it leaves the bracket.
            slope = g_l * y / fl
            candidate = y - g / slope if slope != 0.0 else 0.5 * (low + high)
            if not (low < candidate < high):
                candidate = 0.5 * (low + high)
            if abs(candidate - y) <= 1e-15 * max(abs(y), 1e-12) or high - low <= 1e-16 * high:
                y = candidate
                break
            y = candidate
        out[k] = math.sqrt(y * y + w2)


def _rebound(function: Any, **names: Any) -> Any:
    """A copy of ``function`` whose global ``names`` resolve to the given objects."""
    return types.FunctionType(function.__code__, {**globals(), **names}, function.__name__,
                              function.__defaults__, function.__closure__)


@contextmanager
def few_passes() -> Iterator[None]:
    """Run the loops in numpy inside the block, unless numba's kernels are loaded already.

    For a few forward passes (executing a calibrated model on its trials): there the numpy
    loops take a few tenths of a second, where numba's first call costs about a second and a
    half (its import, its CPU target's start-up, loading the cached kernels). The two paths
    agree to rounding (a test holds them together)."""
    _FEW_PASSES["depth"] += 1
    try:
        yield
    finally:
        _FEW_PASSES["depth"] -= 1


def _kernels() -> dict[str, Any] | None:
    """The compiled loops (numba imported and the kernels loaded on the first call); None when
    :data:`USE_NUMBA` is off, or inside :func:`few_passes` before they were loaded."""
    global _scalar_residual
    if not USE_NUMBA or (_FEW_PASSES["depth"] and not _KERNELS):
        return None
    if not _KERNELS:
        import numba

        jit = numba.njit(cache=True, nogil=True)
        # Rebind the global name so the loop kernels call the compiled twin.
        _scalar_residual = jit(_scalar_residual)
        # The closed-form step partials serve numpy arrays too: compile copies that call each
        # other's compiled versions, and leave the Python functions as they are.
        # numpy's error model (no zero-division checks): the same inf/nan as the numpy path.
        quiet = numba.njit(cache=True, nogil=True, error_model="numpy")
        step = quiet(_rebound(_step_partials, _ratio=quiet(_ratio)))
        _KERNELS.update(integrate=jit(_integrate_loops), adjoint=jit(_adjoint_loops),
                        tangent=jit(_tangent_loops), equilibrium=jit(_equilibrium_loops),
                        partials=quiet(_rebound(_partials_loops, _step_partials=step)))
        # numba's compiler is started now anyway: the activation filter's loop costs ~7 ms
        # more to load and saves ~1 ms per filter run from the first evaluation on.
        from pipeline.nms import _iir

        _iir.use_compiled_loop()
    return _KERNELS


def integrate(l_init, a, lmt, l0, lts, damping, sin_phi0, *, dt_s, k_tendon):
    """Forward Rosenbrock recursion (float64 numpy in and out).

    Args:
        l_init: ``(n,)`` fibre length at the first sample (velocity there is taken as 0).
        a, lmt: ``(time, n)`` activation and MTU length (time-major).
        l0, lts, damping, sin_phi0: ``(n,)`` per-element parameters.

    Returns:
        ``(length, velocity)``, each ``(time, n)``.
    """
    length = np.empty_like(a)
    velocity = np.empty_like(a)
    kernels = _kernels()
    if kernels is not None:
        kernels["integrate"](l_init, a, lmt, l0, lts, damping, sin_phi0, float(dt_s),
                             float(k_tendon), length, velocity)
        return length, velocity
    length[0] = l_init
    velocity[0] = 0.0
    fl = l_init.copy()
    v = np.zeros_like(fl)
    for i in range(a.shape[0] - 1):
        dl = increment(NUMPY, fl, v, a[i], a[i + 1], lmt[i], lmt[i + 1], l0, lts, damping,
                       sin_phi0, dt_s=dt_s, k_tendon=k_tendon)
        fl = fl + dl
        v = dl / dt_s
        length[i + 1] = fl
        velocity[i + 1] = v
    return length, velocity


def adjoint(grad_length, grad_velocity, jac_l, jac_v, *, dt_s):
    """Backward (discrete adjoint) recursion of :func:`integrate`.

    Args:
        grad_length, grad_velocity: ``(time, n)`` cotangents of the outputs.
        jac_l, jac_v: ``(time - 1, n)`` local partials of the increment ``dl_i`` w.r.t. ``l_i`` and
            ``v_i``.

    Returns:
        ``(grad_l_init, grad_increment)``: the cotangent of the initial length ``(n,)`` and of every
        increment ``dl_i`` ``(time - 1, n)``.
    """
    inv_dt = 1.0 / dt_s
    grad_increment = np.empty_like(jac_l)
    kernels = _kernels()
    if kernels is not None:
        bar_l = np.empty(grad_length.shape[1])
        kernels["adjoint"](grad_length, grad_velocity, jac_l, jac_v, inv_dt, bar_l, grad_increment)
        return bar_l, grad_increment
    bar_l = grad_length[-1].copy()
    bar_v = grad_velocity[-1].copy()
    for i in range(grad_length.shape[0] - 2, -1, -1):
        bar_d = bar_l + bar_v * inv_dt
        grad_increment[i] = bar_d
        bar_l = grad_length[i] + bar_l + bar_d * jac_l[i]
        bar_v = grad_velocity[i] + bar_d * jac_v[i]
    return bar_l, grad_increment


def tangent(tl_init, forcing, jac_l, jac_v, *, dt_s):
    """Forward-mode (tangent) recursion of :func:`integrate`.

    The tangent of ``dl_i`` is ``jac_l[i] tl_i + jac_v[i] tv_i + forcing[i]``, where ``forcing``
    collects the partials of the increment w.r.t. everything but the state times those inputs'
    tangents; then ``tl_{i+1} = tl_i + t(dl_i)`` and ``tv_{i+1} = t(dl_i) / h``.

    Args:
        tl_init: ``(n,)`` tangent of the initial length (the initial velocity is fixed at 0).
        forcing, jac_l, jac_v: ``(time - 1, n)``.

    Returns:
        ``(tangent_length, tangent_velocity)``, each ``(time, n)``.
    """
    inv_dt = 1.0 / dt_s
    n_steps, n = forcing.shape
    tl_out = np.empty((n_steps + 1, n))
    tv_out = np.empty((n_steps + 1, n))
    kernels = _kernels()
    if kernels is not None:
        kernels["tangent"](tl_init, forcing, jac_l, jac_v, inv_dt, tl_out, tv_out)
        return tl_out, tv_out
    tl = np.array(tl_init, dtype=float)
    tv = np.zeros(n)
    tl_out[0] = tl
    tv_out[0] = 0.0
    for i in range(n_steps):
        t_d = jac_l[i] * tl + jac_v[i] * tv + forcing[i]
        tl = tl + t_d
        tv = t_d * inv_dt
        tl_out[i + 1] = tl
        tv_out[i + 1] = tv
    return tl_out, tv_out


def static_equilibrium(a, lmt, l0, lts, damping, sin_phi0, *, k_tendon):
    """Fibre length with zero fibre velocity that zeroes the residual (all ``(n,)`` arrays).

    Solves for ``y = l cos(phi)`` in ``(0, l_mt)``: as ``y -> 0`` the tendon carries
    ``ft(l_mt / l_ts) > 0`` (when the MTU is longer than the tendon slack length) while the fibre
    carries nothing along the tendon; at ``y = l_mt`` the tendon has zero length and pushes
    (``ft < 0``). Safeguarded Newton (numba) or bisection with a Newton polish (numpy).
    """
    kernels = _kernels()
    if kernels is not None:
        out = np.empty_like(a)
        kernels["equilibrium"](a, lmt, l0, lts, damping, sin_phi0, float(k_tendon), out)
        return out
    w2 = (l0 * sin_phi0) ** 2
    zero = np.zeros_like(lmt)
    low = 1e-9 * lmt
    high = lmt.copy()
    for _ in range(60):
        mid = 0.5 * (low + high)
        with np.errstate(over="ignore"):  # a very stiff tendon overflows to +inf: still "g > 0"
            g = residual_and_partials(NUMPY, np.sqrt(mid * mid + w2), zero, a, lmt, l0, lts,
                                      damping, sin_phi0, k_tendon=k_tendon)[0]
        positive = g > 0.0
        low = np.where(positive, mid, low)
        high = np.where(positive, high, mid)
    fl = np.sqrt((0.5 * (low + high)) ** 2 + w2)
    for _ in range(2):
        g, g_l = residual_and_partials(NUMPY, fl, zero, a, lmt, l0, lts, damping, sin_phi0,
                                       k_tendon=k_tendon)[:2]
        candidate = fl - g / np.where(g_l != 0.0, g_l, np.inf)
        fl = np.where(candidate * candidate > w2, candidate, fl)
    return fl
