"""Digital Butterworth design and second-order-section filtering in plain numpy.

Why not ``scipy.signal``: importing it costs about a second (it pulls in ``scipy.stats``,
``scipy.optimize`` and ``scipy.interpolate``), which is most of the wall time of a workflow step
that filters one trial. This module does the same arithmetic with numpy alone.

Design. The analog prototype of order ``n`` has its poles on the unit circle's left half,
``p_k = exp(i pi (2k + n + 1) / (2n))``. Cut-offs are pre-warped, ``K = tan(pi f / fs)``, and mapped
with the bilinear transform ``z = (1 + s) / (1 - s)``, so the digital gain at ``f`` equals the
analog gain at ``K``. Low-pass: analog poles ``K p``, all zeros at ``z = -1``, unit gain at DC.
High-pass: poles ``K / p``, zeros at ``z = 1``, unit gain at Nyquist. Band-pass with edges
``K1 < K2``: each prototype pole gives the two roots of ``s^2 - p (K2 - K1) s + K1 K2``, half the
zeros sit at ``z = 1`` and half at ``z = -1``, and the gain is one at the centre ``sqrt(K1 K2)``.

Filtering. A section in transposed direct form II is the linear state-space system
``y = b0 x + z[0]``, ``z' = A z + B x`` with ``A = [[-a1, 1], [-a2, 0]]`` and
``B = [b1 - a1 b0, b2 - a2 b0]``. The signal is cut into blocks of ``L`` samples. Within a block,
the output is the block's input convolved with the first ``L`` samples of the impulse response
(a lower-triangular Toeplitz product) plus the free response to the block's initial state
(``C A^i z``); the state is carried from block to block with ``A^L``. This is exact (no truncated
impulse response), and the only Python loop runs over blocks, not samples.
"""

from __future__ import annotations

import functools

import numpy as np

# Samples per block: the Toeplitz product costs L multiply-adds per sample, the block loop
# N / L Python iterations.
_BLOCK = 64


def butterworth_sos(order: int, cutoff_hz: float | tuple[float, float] | np.ndarray, *,
                    rate_hz: float, btype: str = "lowpass") -> np.ndarray:
    """Second-order sections ``(n_sections, 6)`` ``[b0, b1, b2, 1, a1, a2]`` of a Butterworth.

    ``btype`` is ``"lowpass"``, ``"highpass"`` (one cut-off) or ``"bandpass"`` (two edges).
    Cut-offs must lie strictly between 0 and the Nyquist frequency (the caller checks).
    """
    if order < 1:
        raise ValueError(f"Butterworth order must be at least 1, got {order}")
    edges = np.atleast_1d(np.asarray(cutoff_hz, dtype=float))
    warped = np.tan(np.pi * edges / rate_hz)
    k = np.arange(order)
    prototype = np.exp(1j * np.pi * (2 * k + order + 1) / (2 * order))
    if btype == "lowpass":
        s_poles = warped[0] * prototype
        zero = -1.0
    elif btype == "highpass":
        s_poles = warped[0] / prototype
        zero = 1.0
    elif btype == "bandpass":
        if edges.size != 2 or not warped[0] < warped[1]:
            raise ValueError(f"band-pass needs two increasing edges, got {edges.tolist()}")
        width, centre2 = warped[1] - warped[0], warped[0] * warped[1]
        half = prototype * width / 2.0
        root = np.sqrt(half**2 - centre2 + 0j)
        s_poles = np.concatenate([half + root, half - root])
        zero = 0.0  # marker: one zero at +1 and one at -1 in every section
    else:
        raise ValueError(f"unknown filter type {btype!r} (lowpass, highpass or bandpass)")
    z_poles = (1.0 + s_poles) / (1.0 - s_poles)
    sections = _sections(z_poles, zero)
    sections[0, :3] *= _unit_gain(sections, btype, warped)
    return sections


def _sections(z_poles: np.ndarray, zero: float) -> np.ndarray:
    """Group conjugate pole pairs (and real poles two by two) into sections, slowest last."""
    scale = np.maximum(np.abs(z_poles), 1.0)
    is_real = np.abs(z_poles.imag) <= 1e-12 * scale
    upper = z_poles[~is_real & (z_poles.imag > 0)]
    reals = np.sort(z_poles[is_real].real)
    rows = []
    for p in upper:
        rows.append((np.abs(p), [1.0, -2.0 * p.real, abs(p) ** 2], 2))
    for i in range(0, len(reals) - 1, 2):
        r1, r2 = reals[i], reals[i + 1]
        rows.append((max(abs(r1), abs(r2)), [1.0, -(r1 + r2), r1 * r2], 2))
    if len(reals) % 2:
        rows.append((abs(reals[-1]), [1.0, -reals[-1], 0.0], 1))
    rows.sort(key=lambda row: row[0])
    sos = np.zeros((len(rows), 6))
    for i, (_, a, n_poles) in enumerate(rows):
        if zero == 0.0:
            sos[i, :3] = [1.0, 0.0, -1.0]
        elif n_poles == 2:
            sos[i, :3] = [1.0, -2.0 * zero, 1.0]
        else:
            sos[i, :3] = [1.0, -zero, 0.0]
        sos[i, 3:] = a
    return sos


def _unit_gain(sos: np.ndarray, btype: str, warped: np.ndarray) -> float:
    """Factor that makes the pass-band gain one (DC, Nyquist or the band's centre)."""
    if btype == "lowpass":
        z = 1.0 + 0j
    elif btype == "highpass":
        z = -1.0 + 0j
    else:
        centre = np.sqrt(warped[0] * warped[1])
        z = (1.0 + 1j * centre) / (1.0 - 1j * centre)
    return float(1.0 / np.abs(_response(sos, np.array([z]))[0]))


def _response(sos: np.ndarray, z: np.ndarray) -> np.ndarray:
    inv = 1.0 / z
    h = np.ones_like(z)
    for b0, b1, b2, a0, a1, a2 in sos:
        h = h * (b0 + inv * (b1 + inv * b2)) / (a0 + inv * (a1 + inv * a2))
    return h


def sos_response(sos: np.ndarray, freq_hz: np.ndarray, *, rate_hz: float) -> np.ndarray:
    """Complex frequency response of the cascade at ``freq_hz``."""
    z = np.exp(2j * np.pi * np.asarray(freq_hz, dtype=float) / rate_hz)
    return _response(np.asarray(sos, dtype=float), np.atleast_1d(z))


def _state_space(section: np.ndarray) -> tuple[np.ndarray, np.ndarray, float]:
    b0, b1, b2, a0, a1, a2 = section / section[3]
    a = np.array([[-a1, 1.0], [-a2, 0.0]])
    b = np.array([b1 - a1 * b0, b2 - a2 * b0])
    return a, b, float(b0)


def sos_steady_state(sos: np.ndarray) -> np.ndarray:
    """Initial states ``(n_sections, 2)`` of the cascade at rest under a unit step input."""
    states = np.zeros((len(sos), 2))
    level = 1.0
    for i, section in enumerate(np.asarray(sos, dtype=float)):
        a, b, _ = _state_space(section)
        states[i] = np.linalg.solve(np.eye(2) - a, b) * level
        level *= section[:3].sum() / section[3:].sum()
    return states


@functools.lru_cache(maxsize=256)
def _block_operators(section: tuple[float, ...]) -> tuple[np.ndarray, ...]:
    """The block matrices of one section (built once per section: a NaN-aware filter calls the
    same sections for every run of every channel): the lower-triangular Toeplitz of the first
    ``L`` impulse-response samples ``(L, L)``, the block input's push on the state ``(2, L)``,
    the free response to the block's initial state ``(L, 2)`` and the state's carry ``A^L``."""
    a, b, d = _state_space(np.asarray(section))
    powers = np.empty((_BLOCK + 1, 2, 2))
    powers[0] = np.eye(2)
    for i in range(1, _BLOCK + 1):
        powers[i] = a @ powers[i - 1]
    impulse = np.empty(_BLOCK)
    impulse[0] = d
    impulse[1:] = (powers[: _BLOCK - 1] @ b)[:, 0]
    lag = np.arange(_BLOCK)[:, None] - np.arange(_BLOCK)[None, :]
    toeplitz = np.where(lag >= 0, impulse[np.clip(lag, 0, None)], 0.0)
    to_state = (powers[_BLOCK - 1::-1] @ b).T  # (2, L): A^(L-1-j) B
    free = powers[:_BLOCK, 0, :]  # (L, 2): C A^i
    operators = (toeplitz, np.ascontiguousarray(to_state), np.ascontiguousarray(free),
                 powers[_BLOCK].copy())
    for operator in operators:
        operator.flags.writeable = False
    return operators


def _section_filter(section: np.ndarray, x: np.ndarray, state: np.ndarray) -> np.ndarray:
    """One section along axis 0 of ``x`` (N, M), starting from ``state`` (2, M). The signal is
    zero-padded to whole blocks (causal: the padding changes no output before it)."""
    n, m = x.shape
    length = _BLOCK
    blocks = -(-n // length)
    toeplitz, to_state, free, carry = _block_operators(tuple(float(v) for v in section))
    padded = np.zeros((blocks * length, m))
    padded[:n] = x
    # Time-within-block first, so each product below is one matrix multiplication.
    xb = padded.reshape(blocks, length, m).transpose(1, 0, 2).reshape(length, blocks * m)
    y = (toeplitz @ xb).reshape(length, blocks, m)
    pushed = (to_state @ xb).reshape(2, blocks, m).transpose(1, 0, 2)  # (blocks, 2, M)
    starts = np.empty((blocks, 2, m))
    s = np.array(state, dtype=float)
    for k in range(blocks):
        starts[k] = s
        s = carry @ s + pushed[k]
    y += (free @ starts.transpose(1, 0, 2).reshape(2, blocks * m)).reshape(length, blocks, m)
    return y.transpose(1, 0, 2).reshape(blocks * length, m)[:n]


def sos_filter(sos: np.ndarray, x: np.ndarray, *, initial: np.ndarray | None = None) -> np.ndarray:
    """Causal filtering along axis 0; ``initial`` ``(n_sections, 2, ...)`` states (else rest)."""
    x = np.asarray(x, dtype=float)
    flat = x.reshape(x.shape[0], -1)
    sos = np.asarray(sos, dtype=float)
    states = (np.zeros((len(sos), 2, flat.shape[1])) if initial is None
              else np.asarray(initial, dtype=float).reshape(len(sos), 2, -1)
              * np.ones((1, 1, flat.shape[1])))
    for section, state in zip(sos, states, strict=True):
        flat = _section_filter(section, flat, state)
    return flat.reshape(x.shape)


def sos_filtfilt(sos: np.ndarray, x: np.ndarray, *, padlen: int) -> np.ndarray:
    """Zero-phase filtering along axis 0: forwards then backwards, with odd-extension padding.

    The signal is extended at each end by ``padlen`` samples reflected through the end value,
    and each pass starts from the steady state for its first sample, which keeps the ends free
    of start-up transients (the same conventions as ``scipy.signal.sosfiltfilt``).
    """
    x = np.asarray(x, dtype=float)
    flat = x.reshape(x.shape[0], -1)
    if padlen >= flat.shape[0]:
        raise ValueError(f"padlen {padlen} must be less than the {flat.shape[0]} samples")
    if padlen > 0:
        head = 2.0 * flat[0] - flat[padlen:0:-1]
        tail = 2.0 * flat[-1] - flat[-2:-padlen - 2:-1]
        flat = np.concatenate([head, flat, tail])
    steady = sos_steady_state(sos)[:, :, None]
    y = sos_filter(sos, flat, initial=steady * flat[0])
    y = sos_filter(sos, y[::-1], initial=steady * y[-1])[::-1]
    if padlen > 0:
        y = y[padlen:-padlen]
    return np.ascontiguousarray(y).reshape(x.shape)
