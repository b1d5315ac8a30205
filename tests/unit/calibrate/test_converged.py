"""``converged`` says whether the optimiser met its stopping rule, not always true."""

from __future__ import annotations

import logging

import pytest

from pipeline.calibrate.gradient import GradientOptions
from pipeline.calibrate.run import calibrate, report_outcome
from pipeline.calibrate.synthetic import make_problem


def _run(max_iterations: int, patience: int, *, method: str = "adamw",
         max_evaluations: int = 200):
    problem = make_problem(n_mtus=2, n_dofs=1, n_calibration=2, n_validation=1, n_samples=60,
                           tendon="stiff", seed=3)
    options = GradientOptions(method=method, max_evaluations=max_evaluations,
                              max_iterations=max_iterations, patience=patience, min_delta=1e-3,
                              polish_iterations=0, progress=False, log_every=0)
    return calibrate(problem.spec, problem.calibration, problem.config, seed=0,
                     gradient_options=options, analyse=False, progress=False)


def test_running_out_of_iterations_is_not_convergence(caplog: pytest.LogCaptureFixture) -> None:
    outcome = _run(max_iterations=3, patience=50)
    assert not outcome.converged and outcome.stopped == "max_iterations"
    document = outcome.document()
    assert document["converged"] is False and document["stopped"] == "max_iterations"
    with caplog.at_level(logging.WARNING):
        report_outcome(outcome, document)
    assert any("did not meet its stopping rule" in r.getMessage()
               and "calibration.optimiser.max_iterations" in r.getMessage()
               for r in caplog.records)


def test_meeting_the_patience_rule_is_convergence() -> None:
    outcome = _run(max_iterations=2000, patience=5)
    assert outcome.converged and outcome.stopped == "patience"
    assert outcome.document()["converged"] is True


def test_least_squares_out_of_evaluations_is_not_convergence(
        caplog: pytest.LogCaptureFixture) -> None:
    outcome = _run(max_iterations=0, patience=0, method="least_squares", max_evaluations=2)
    assert not outcome.converged and outcome.stopped == "max_evaluations"
    document = outcome.document()
    assert document["converged"] is False
    with caplog.at_level(logging.WARNING):
        report_outcome(outcome, document)
    assert any("calibration.optimiser.max_evaluations" in r.getMessage() for r in caplog.records)


def test_least_squares_meeting_its_tolerance_is_convergence() -> None:
    outcome = _run(max_iterations=0, patience=0, method="least_squares", max_evaluations=500)
    assert outcome.converged and outcome.stopped in {"gtol", "ftol", "xtol"}
