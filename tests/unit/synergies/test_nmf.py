"""NMF synergy extraction: known synergies are recovered and the VAF rule picks their number."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.errors import CalibrationError, ConfigError
from pipeline.synergies import extract_synergies, fit_primitives, nmf, vaf, vaf_per_muscle


def known_synergies(*, n_muscles: int = 10, n_synergies: int = 3, n_trials: int = 3,
                    n_samples: int = 300, seed: int = 1) -> tuple[np.ndarray, list[np.ndarray]]:
    """Weightings with one dominant block of muscles per synergy and Gaussian-bump primitives."""
    rng = np.random.default_rng(seed)
    weightings = rng.uniform(0.0, 0.1, (n_muscles, n_synergies))
    block = n_muscles // n_synergies
    for j in range(n_synergies):
        weightings[j * block:(j + 1) * block, j] = rng.uniform(0.6, 1.0, block)
    t = np.linspace(0.0, 1.0, n_samples)
    centres = np.linspace(0.15, 0.85, n_synergies)
    primitives = [np.stack([np.exp(-0.5 * ((t - c - 0.04 * trial) / 0.05) ** 2) for c in centres])
                  for trial in range(n_trials)]
    return weightings, primitives


def test_reconstruction_of_known_synergies_reaches_vaf_099() -> None:
    weightings, primitives = known_synergies()
    data = [weightings @ h for h in primitives]
    result = extract_synergies(data, n_synergies=3, restarts=3, seed=0)
    assert result.vaf >= 0.99
    assert np.all(result.vaf_per_muscle >= 0.99)
    recon = result.reconstruct()
    for original, rebuilt in zip(data, recon, strict=True):
        assert vaf(original, rebuilt) >= 0.99
    # primitives are trial-specific and in (synergy, time); weightings max-normalised to 1
    assert [p.shape for p in result.primitives] == [(3, 300)] * 3
    assert result.stacked_primitives().shape == (3, 3, 300)
    np.testing.assert_allclose(result.weightings.max(axis=0), 1.0)
    assert result.weightings.min() >= 0.0 and min(p.min() for p in result.primitives) >= 0.0
    # each true synergy is matched by an extracted one (cosine similarity of weightings)
    unit = weightings / np.linalg.norm(weightings, axis=0)
    found = result.weightings / np.linalg.norm(result.weightings, axis=0)
    assert np.all((unit.T @ found).max(axis=1) > 0.99)


@pytest.mark.parametrize("n_true", [2, 3, 4])
def test_vaf_rule_picks_the_true_number(n_true: int) -> None:
    weightings, primitives = known_synergies(n_muscles=12, n_synergies=n_true, seed=n_true)
    data = [weightings @ h for h in primitives]
    result = extract_synergies(data, vaf_threshold=0.85, restarts=3, seed=0)
    assert result.n_synergies == n_true
    assert result.vaf_by_n_synergies[n_true - 1] < 0.85 <= result.vaf_by_n_synergies[n_true]


def test_best_restart_is_kept_and_seeding_is_reproducible() -> None:
    weightings, primitives = known_synergies()
    data = np.concatenate([weightings @ h for h in primitives], axis=1)
    one = nmf(data, 3, restarts=1, seed=5)
    again = nmf(data, 3, restarts=1, seed=5)
    np.testing.assert_array_equal(one.weightings, again.weightings)
    several = nmf(data, 3, restarts=4, seed=5)
    assert several.vaf >= one.vaf


def test_vaf_definitions() -> None:
    data = np.array([[1.0, 2.0], [0.0, 0.0], [3.0, 4.0]])
    assert vaf(data, data) == 1.0
    assert vaf(data, np.zeros_like(data)) == 0.0
    per = vaf_per_muscle(data, 0.5 * data)
    np.testing.assert_allclose(per[[0, 2]], 0.75)
    assert np.isnan(per[1])


@pytest.mark.parametrize("method", ["nnls", "multiplicative"])
def test_fit_primitives_with_fixed_weightings_recovers_primitives(method: str) -> None:
    weightings, primitives = known_synergies()
    data = weightings @ primitives[1]
    fitted = fit_primitives(data, weightings, method=method, max_iterations=3000)
    assert fitted.min() >= 0.0
    np.testing.assert_allclose(fitted, primitives[1], atol=1e-2 if method != "nnls" else 1e-8)


def test_more_synergies_than_channels_is_a_config_error() -> None:
    data = [np.random.default_rng(0).uniform(size=(3, 50))]
    with pytest.raises(ConfigError, match=r"n_synergies = 4 is more than the 3 recorded.*Fix"):
        extract_synergies(data, n_synergies=4)


def test_no_recorded_channel_is_a_calibration_error() -> None:
    with pytest.raises(CalibrationError, match=r"no recorded EMG channel.*Fix"):
        extract_synergies([np.zeros((0, 50))])


def test_nan_channels_are_refused_with_advice() -> None:
    data = np.ones((3, 50))
    data[1] = np.nan
    with pytest.raises(CalibrationError, match="NaN.*Fix: pass only recorded channels"):
        extract_synergies([data])
