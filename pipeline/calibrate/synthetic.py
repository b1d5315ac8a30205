"""Calibration problems with known truth, built on :func:`pipeline.nms.make_reference_problem`.

Used by the benchmarks (``bench calibration``, ``bench recovery``) and the tests. The reference
problem's trials are split into calibration and validation trials that share the true parameters.
Optional noise makes the data realistic: multiplicative and additive noise on the EMG envelopes
(low-pass, like processed EMG), and marker-like errors on MTU lengths and moment arms (a smooth
per-trial offset plus smooth noise), applied after the true moments are computed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipeline.calibrate.problem import TrialBatch, batch_from_arrays
from pipeline.calibrate.spec import MuscleProperties, ParameterSpec, build_spec
from pipeline.nms import make_reference_problem
from pipeline.nms.model import TendonModel

#: Calibration config for synthetic problems (the default config.yaml's, wider l0/lts).
SYNTHETIC_CALIBRATION: dict[str, Any] = {
    "tendon": "elastic",
    "emd_s": 0.015,
    "parameters": ["c1", "c2", "shape_factor", "optimal_fiber_length", "tendon_slack_length",
                   "strength"],
    "bounds": {
        "c1": {"lower": -0.95, "upper": -0.05},
        "c2": {"lower": -0.95, "upper": -0.05},
        "shape_factor": {"lower": -2.999, "upper": -0.001},
        "optimal_fiber_length": {"lower": 0.7, "upper": 1.3, "relative": True},
        "tendon_slack_length": {"lower": 0.7, "upper": 1.3, "relative": True},
        "strength": {"lower": 0.5, "upper": 2.5},
        "damping": {"lower": 0.0, "upper": 0.1},
    },
    "initial": {"c1": -0.5, "c2": -0.5, "shape_factor": -1.0, "strength": 1.0, "damping": 0.01},
    "groups": {},
    "activation_sharing": "per_muscle",
    "normalise_by_variance": True,
    "penalties": {"fiber_length": {"lower": 0.5, "upper": 1.5, "weight": 100.0},
                  "tendon_strain": {"lower": -0.01, "upper": 0.1, "weight": 100.0}},
}


@dataclass(frozen=True)
class SyntheticProblem:
    spec: ParameterSpec  #: bounds around the nominal (true) model, initial = nominal
    calibration: TrialBatch
    validation: TrialBatch
    truth: np.ndarray  #: true free-parameter vector (spec order)
    tendon: TendonModel
    emd_s: float
    config: dict[str, Any]


def make_problem(*, n_mtus: int = 16, n_dofs: int = 3, n_calibration: int = 3,
                 n_validation: int = 3, n_samples: int = 500, tendon: TendonModel = "elastic",
                 seed: int = 0, noise: bool | float = False, model_error: float = 0.0,
                 calibration: dict[str, Any] | None = None) -> SyntheticProblem:
    """A reference problem split into calibration and validation batches, with its truth.

    The "scaled model" (the spec's initial values and relative bounds) holds the true optimal
    fibre and tendon slack lengths, or, with ``model_error > 0``, values multiplied by
    ``N(1, model_error)`` (a generic model's scaling error), clipped to +-25 %.
    """
    cfg = copy.deepcopy(calibration or SYNTHETIC_CALIBRATION)
    cfg["tendon"] = tendon
    ref = make_reference_problem(n_mtus=n_mtus, n_dofs=n_dofs,
                                 n_trials=n_calibration + n_validation, n_samples=n_samples,
                                 tendon=tendon, seed=seed, emd_s=cfg["emd_s"])
    params = {k: v.numpy() for k, v in ref.params.as_dict().items()}
    names = tuple(f"mtu{i:02d}" for i in range(n_mtus))
    factors = np.ones((2, n_mtus))
    if model_error > 0:
        factors = np.clip(1.0 + model_error * np.random.default_rng(seed + 7).standard_normal(
            (2, n_mtus)), 0.75, 1.25)
    muscles = MuscleProperties(names, params["optimal_fiber_length_m"] * factors[0],
                               params["tendon_slack_length_m"] * factors[1],
                               params["max_isometric_force_n"].copy(),
                               params["pennation_at_optimal_rad"].copy())
    cfg.setdefault("initial", {})["damping"] = float(params["damping"][0])
    spec = build_spec(muscles, cfg)
    truth = true_vector(spec, params)
    signals = {"excitation": ref.excitation.numpy(), "mtu_length_m": ref.mtu_length_m.numpy(),
               "moment_arm_m": ref.moment_arm_m.numpy(), "id_moment_nm": ref.moments_nm.numpy()}
    if noise:
        signals = add_noise(signals, dt_s=ref.dt_s, seed=seed + 1000, scale=float(noise))
    batches = []
    for part, sl in (("cal", slice(0, n_calibration)),
                     ("val", slice(n_calibration, n_calibration + n_validation))):
        chunk = {k: v[sl] for k, v in signals.items()}
        n = chunk["excitation"].shape[0]
        batches.append(batch_from_arrays(**chunk, dt_s=ref.dt_s, mtu_names=names,
                                         dof_names=tuple(f"dof{i}" for i in range(n_dofs)),
                                         trial_names=tuple(f"{part}{i}" for i in range(n))))
    return SyntheticProblem(spec, batches[0], batches[1], truth, tendon, ref.emd_s, cfg)


def true_vector(spec: ParameterSpec, params: dict[str, np.ndarray]) -> np.ndarray:
    """The free-parameter vector of ``spec`` holding the true per-muscle ``params``."""
    key = {"optimal_fiber_length": "optimal_fiber_length_m",
           "tendon_slack_length": "tendon_slack_length_m"}
    parts = []
    for kind in spec.free_kinds:
        block = spec.blocks[kind]
        per_mtu = np.asarray(params[key.get(kind, kind)], dtype=float)
        values = np.array([per_mtu[block.index == e].mean()
                           for e in range(len(block.entry_names))])
        parts.append(values)
    return np.concatenate(parts)


def perturbed_start(spec: ParameterSpec, truth: np.ndarray, *, rel_sd: float = 0.1,
                    seed: int = 0) -> np.ndarray:
    """Initial guess drawn from N(truth, rel_sd * |truth|), kept strictly inside the bounds."""
    rng = np.random.default_rng(seed)
    guess = truth + rel_sd * np.abs(truth) * rng.standard_normal(truth.shape)
    span = spec.upper - spec.lower
    return np.clip(guess, spec.lower + 1e-3 * span, spec.upper - 1e-3 * span)


def _smooth(rng: np.random.Generator, shape: tuple[int, ...], width: int) -> np.ndarray:
    white = rng.standard_normal((*shape[:-1], shape[-1] + 4 * width))
    kernel = np.exp(-0.5 * (np.arange(-2 * width, 2 * width + 1) / width) ** 2)
    kernel /= np.sqrt((kernel**2).sum())
    out = np.apply_along_axis(lambda r: np.convolve(r, kernel, mode="valid"), -1, white)
    return out[..., : shape[-1]]


def add_noise(signals: dict[str, np.ndarray], *, dt_s: float, seed: int,
              emg_rel_sd: float = 0.05, emg_abs_sd: float = 0.005,
              length_sd_m: float = 0.001, arm_rel_sd: float = 0.02,
              moment_rel_sd: float = 0.02, scale: float = 1.0) -> dict[str, np.ndarray]:
    """Realistic noise: EMG envelope (5 % multiplicative + 0.005 additive, smoothed over ~0.1 s),
    MTU length (1 mm, marker-like, smooth) and moment arms (2 %), ID moments (2 % of their SD);
    ``scale`` multiplies every level."""
    rng = np.random.default_rng(seed)
    emg_rel_sd, emg_abs_sd, length_sd_m, arm_rel_sd, moment_rel_sd = (
        scale * x for x in (emg_rel_sd, emg_abs_sd, length_sd_m, arm_rel_sd, moment_rel_sd))
    width = max(1, int(round(0.05 / dt_s)))
    exc = signals["excitation"]
    exc = exc * (1.0 + emg_rel_sd * _smooth(rng, exc.shape, width)) + emg_abs_sd * _smooth(
        rng, exc.shape, width)
    exc = np.clip(exc, 0.0, 1.0)
    lmt = signals["mtu_length_m"] + length_sd_m * _smooth(rng, signals["mtu_length_m"].shape,
                                                          4 * width)
    arm = signals["moment_arm_m"] * (1.0 + arm_rel_sd * _smooth(
        rng, signals["moment_arm_m"].shape, 4 * width))
    moments = signals["id_moment_nm"]
    sd = moments.std(axis=(0, 2), keepdims=True)
    moments = moments + moment_rel_sd * sd * _smooth(rng, moments.shape, width)
    return {"excitation": exc, "mtu_length_m": lmt, "moment_arm_m": arm, "id_moment_nm": moments}


def recovery_errors(spec: ParameterSpec, p: np.ndarray, truth: np.ndarray
                    ) -> dict[str, np.ndarray]:
    """Absolute % error of each free parameter against the truth, per kind.

    The activation filter depends on ``c1 + c2`` and ``c1 c2`` only, so ``(c1, c2)`` and
    ``(c2, c1)`` are the same model: each pair is compared with the truth in the order that
    matches it best.
    """
    slices = spec.slices()
    p = np.array(p, dtype=float)
    if "c1" in slices and "c2" in slices:
        c1, c2 = p[slices["c1"]].copy(), p[slices["c2"]].copy()
        t1, t2 = truth[slices["c1"]], truth[slices["c2"]]
        swap = np.abs(c2 - t1) + np.abs(c1 - t2) < np.abs(c1 - t1) + np.abs(c2 - t2)
        p[slices["c1"]] = np.where(swap, c2, c1)
        p[slices["c2"]] = np.where(swap, c1, c2)
    err = 100.0 * np.abs(p - truth) / np.abs(truth)
    return {kind: err[sl] for kind, sl in slices.items()}
