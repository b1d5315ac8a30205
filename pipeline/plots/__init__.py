"""Figures: pure functions (data in, matplotlib Figure out) and a per-subject writer.

Every figure function records the numbers it prints (panel titles, bar labels) on the figure;
read them with :func:`annotations_of`.
"""

from pipeline.plots.calibration import loss_figure, method_comparison_figure, parameters_figure
from pipeline.plots.data import MethodResult, Signals, TrialRecording, TrialResult
from pipeline.plots.experiment import grf_figure, marker_error_figure
from pipeline.plots.muscles import (
    excitation_activation_figure,
    fiber_length_figure,
    muscle_force_figure,
)
from pipeline.plots.style import RC_PARAMS, annotations_of, save_figure
from pipeline.plots.tracking import moment_tracking_figure

__all__ = [
    "RC_PARAMS",
    "MethodResult",
    "Signals",
    "TrialRecording",
    "TrialResult",
    "annotations_of",
    "excitation_activation_figure",
    "fiber_length_figure",
    "grf_figure",
    "loss_figure",
    "marker_error_figure",
    "method_comparison_figure",
    "moment_tracking_figure",
    "muscle_force_figure",
    "parameters_figure",
    "save_figure",
]
