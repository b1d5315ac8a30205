"""Muscle synergies by non-negative matrix factorisation (Lee & Seung 2001 multiplicative updates).

Excitations ``V`` ``(muscle, sample)`` in [0, 1] are factorised as ``V ≈ W @ H`` with weightings
``W`` ``(muscle, synergy)`` and primitives ``H`` ``(synergy, sample)``, both non-negative. Trials
are concatenated along time for the factorisation, so the weightings are shared by all trials and
the primitives are trial-specific (one ``(synergy, time)`` block per trial).

Scaling convention: every column of ``W`` is scaled to a maximum of 1 (and the matching row of
``H`` scaled up). Then ``H[k] <= V[m]`` for the muscle ``m`` with ``W[m, k] = 1``, so primitives
stay in [0, 1] whenever the reconstruction is good; this is the [0, 1] box that synergy-hybrid
calibration penalises (paper 002, section III-C).

Variance accounted for (uncentred, as in the synergy literature, e.g. Torres-Oviedo et al. 2006;
Rabbi et al. 2020): ``VAF = 1 - ||V - W H||² / ||V||²``, overall and per muscle (row-wise).
The number of synergies is the smallest whose overall VAF reaches the threshold (0.85 default).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy.optimize import nnls

from pipeline.errors import CalibrationError, ConfigError, describe

log = logging.getLogger(__name__)

__all__ = [
    "NMFResult",
    "Synergies",
    "extract_synergies",
    "fit_primitives",
    "nmf",
    "vaf",
    "vaf_per_muscle",
]

_EPS = 1e-12


@dataclass(frozen=True)
class NMFResult:
    """One factorisation ``V ≈ weightings @ primitives``."""

    weightings: np.ndarray  #: (muscle, synergy), columns max-normalised to 1
    primitives: np.ndarray  #: (synergy, sample)
    vaf: float
    iterations: int
    restart: int  #: index of the kept restart


@dataclass(frozen=True)
class Synergies:
    """Synergies of several trials: shared weightings, trial-specific primitives."""

    muscle_names: tuple[str, ...]
    weightings: np.ndarray  #: (muscle, synergy)
    primitives: tuple[np.ndarray, ...]  #: one (synergy, time) array per trial
    vaf: float
    vaf_per_muscle: np.ndarray  #: (muscle,)
    vaf_by_n_synergies: dict[int, float]  #: every tried number of synergies -> VAF

    @property
    def n_synergies(self) -> int:
        return int(self.weightings.shape[1])

    def stacked_primitives(self) -> np.ndarray:
        """Primitives as one ``(trial, synergy, time)`` array (trials must share a length)."""
        lengths = {p.shape[1] for p in self.primitives}
        if len(lengths) != 1:
            raise ValueError(f"trials differ in length {sorted(lengths)}; use .primitives")
        return np.stack(self.primitives)

    def reconstruct(self) -> tuple[np.ndarray, ...]:
        """Reconstructed excitations, one ``(muscle, time)`` array per trial."""
        return tuple(self.weightings @ h for h in self.primitives)


def vaf(data: np.ndarray, reconstruction: np.ndarray) -> float:
    """Uncentred variance accounted for, ``1 - SSE / Σ data²`` (1 for a perfect fit)."""
    data = np.asarray(data, dtype=float)
    total = float(np.sum(data**2))
    if total <= 0.0:
        return 1.0 if np.allclose(reconstruction, 0.0) else 0.0
    return 1.0 - float(np.sum((data - reconstruction) ** 2)) / total


def vaf_per_muscle(data: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Row-wise VAF of ``(muscle, sample)`` arrays (``nan`` for a row that is all zero)."""
    data = np.asarray(data, dtype=float)
    total = np.sum(data**2, axis=1)
    sse = np.sum((data - reconstruction) ** 2, axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, 1.0 - sse / np.where(total > 0, total, 1.0), np.nan)


def _normalise(w: np.ndarray, h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scale = np.max(w, axis=0)
    scale = np.where(scale > _EPS, scale, 1.0)
    return w / scale, h * scale[:, None]


def _check_data(data: np.ndarray, *, what: str) -> np.ndarray:
    data = np.asarray(data, dtype=float)
    if data.ndim != 2:
        raise ValueError(f"{what} must be (muscle, sample), got shape {data.shape}")
    if not np.all(np.isfinite(data)):
        raise CalibrationError(describe(
            None, f"{what} contains NaN or infinite values",
            "pass only recorded channels (drop the NaN rows of MTUs without EMG) and fill gaps"))
    if np.any(data < 0):
        log.warning("%s has negative values (min %.3g); clipped to 0 for NMF", what, data.min())
        data = np.clip(data, 0.0, None)
    return data


def nmf(
    data: np.ndarray,
    n_synergies: int,
    /,
    *,
    restarts: int = 5,
    seed: int = 0,
    max_iterations: int = 2000,
    tolerance: float = 1e-7,
) -> NMFResult:
    """Factorise ``data`` ``(muscle, sample)`` into ``n_synergies`` synergies (best restart kept).

    Lee-Seung multiplicative updates for the Frobenius norm, each restart seeded with
    ``seed + restart`` (uniform random initial factors scaled to the data). A restart stops when
    the relative decrease of the squared error over 10 iterations falls below ``tolerance``.
    """
    v = _check_data(data, what="excitations")
    n_muscles, _ = v.shape
    if not 1 <= n_synergies <= n_muscles:
        raise ConfigError(describe(
            "config.yaml", f"synergies.n_synergies = {n_synergies} but only {n_muscles} recorded "
            "channels are available", f"use between 1 and {n_muscles} synergies (or null to "
            "choose by VAF)"))
    best: NMFResult | None = None
    scale = np.sqrt(max(float(v.mean()), _EPS) / n_synergies)
    for restart in range(max(1, restarts)):
        rng = np.random.default_rng(seed + restart)
        w = rng.uniform(0.0, 1.0, size=(n_muscles, n_synergies)) * scale + _EPS
        h = rng.uniform(0.0, 1.0, size=(n_synergies, v.shape[1])) * scale + _EPS
        previous = np.inf
        iteration = 0
        for iteration in range(1, max_iterations + 1):
            h *= (w.T @ v) / (w.T @ w @ h + _EPS)
            w *= (v @ h.T) / (w @ (h @ h.T) + _EPS)
            if iteration % 10 == 0:
                err = float(np.sum((v - w @ h) ** 2))
                if previous - err <= tolerance * max(previous, _EPS) and np.isfinite(previous):
                    break
                previous = err
        w, h = _normalise(w, h)
        score = vaf(v, w @ h)
        log.debug("NMF k=%d restart %d: VAF %.5f after %d iterations", n_synergies, restart,
                  score, iteration)
        if best is None or score > best.vaf:
            best = NMFResult(w, h, score, iteration, restart)
    assert best is not None
    return best


def extract_synergies(
    excitations: Sequence[np.ndarray],
    /,
    *,
    muscle_names: Sequence[str] | None = None,
    vaf_threshold: float = 0.85,
    n_synergies: int | None = None,
    restarts: int = 5,
    seed: int = 0,
    max_iterations: int = 2000,
) -> Synergies:
    """Synergies of recorded excitations, one ``(muscle, time)`` array per trial.

    With ``n_synergies=None`` the smallest number whose VAF reaches ``vaf_threshold`` is chosen
    (if none does, all channels, i.e. the largest possible number, and a warning).

    Raises:
        CalibrationError: no trial or no recorded channel, NaN values, or trials whose channel
            counts differ.
        ConfigError: a fixed ``n_synergies`` above the number of recorded channels.
    """
    if len(excitations) == 0:
        raise CalibrationError(describe(None, "no trial to extract synergies from",
                                        "pass at least one calibration trial"))
    arrays = [np.asarray(e, dtype=float) for e in excitations]
    n_channels = {a.shape[0] for a in arrays}
    if len(n_channels) != 1:
        raise CalibrationError(describe(None, f"trials have different channel counts "
                                        f"{sorted(n_channels)}", "use the same recorded "
                                        "channels in every trial"))
    n_muscles = n_channels.pop()
    names = tuple(muscle_names) if muscle_names is not None else tuple(
        f"muscle_{i}" for i in range(n_muscles))
    if n_muscles == 0:
        raise CalibrationError(describe(None, "no recorded EMG channel to extract synergies from",
                                        "record (or map) EMG to at least one MTU; synergy-hybrid "
                                        "calibration needs recorded excitations"))
    if len(names) != n_muscles:
        raise ValueError(f"{len(names)} muscle names for {n_muscles} channels")
    data = _check_data(np.concatenate(arrays, axis=1), what="recorded excitations")
    options = {"restarts": restarts, "seed": seed, "max_iterations": max_iterations}
    tried: dict[int, float] = {}
    if n_synergies is not None:
        if int(n_synergies) > n_muscles:
            raise ConfigError(describe(
                "config.yaml", f"synergies.n_synergies = {n_synergies} is more than the "
                f"{n_muscles} recorded channels ({', '.join(names)})",
                f"set synergies.n_synergies to at most {n_muscles}, or null to choose by VAF"))
        result = nmf(data, int(n_synergies), **options)
        tried[int(n_synergies)] = result.vaf
    else:
        result = nmf(data, 1, **options)
        tried[1] = result.vaf
        for k in range(2, n_muscles + 1):
            if result.vaf >= vaf_threshold:
                break
            result = nmf(data, k, **options)
            tried[k] = result.vaf
        if result.vaf < vaf_threshold:
            log.warning("no number of synergies reaches VAF %.2f (best %.3f with %d); using %d",
                        vaf_threshold, result.vaf, n_muscles, n_muscles)
    bounds = np.cumsum([0] + [a.shape[1] for a in arrays])
    primitives = tuple(result.primitives[:, a:b] for a, b in zip(bounds[:-1], bounds[1:],
                                                                   strict=True))
    per_muscle = vaf_per_muscle(data, result.weightings @ result.primitives)
    log.info("synergies: %d (VAF %.3f; tried %s)", result.weightings.shape[1], result.vaf,
             {k: round(v, 3) for k, v in tried.items()})
    return Synergies(names, result.weightings, primitives, result.vaf, per_muscle, tried)


def fit_primitives(
    data: np.ndarray,
    weightings: np.ndarray,
    /,
    *,
    method: str = "nnls",
    max_iterations: int = 500,
) -> np.ndarray:
    """Primitives ``(synergy, time)`` that best reconstruct ``data`` with ``weightings`` fixed.

    ``method="nnls"``: non-negative least squares per time sample (exact, scipy's Lawson-Hanson).
    ``method="multiplicative"``: Lee-Seung updates on ``H`` only, from a uniform start.
    ``data`` is ``(muscle, time)`` of the recorded channels, ``weightings`` ``(muscle, synergy)``
    of the same channels in the same order.
    """
    v = _check_data(data, what="recorded excitations")
    w = np.asarray(weightings, dtype=float)
    if w.shape[0] != v.shape[0]:
        raise ValueError(f"weightings have {w.shape[0]} rows for {v.shape[0]} channels")
    if method == "nnls":
        out = np.empty((w.shape[1], v.shape[1]))
        for i in range(v.shape[1]):
            out[:, i] = nnls(w, v[:, i])[0]
        return out
    if method == "multiplicative":
        h = np.full((w.shape[1], v.shape[1]), max(float(v.mean()), 1e-3))
        wtv, wtw = w.T @ v, w.T @ w
        for _ in range(max_iterations):
            h *= wtv / (wtw @ h + _EPS)
        return h
    raise ValueError(f"method must be 'nnls' or 'multiplicative', got {method!r}")
