"""One exception class per stage.

Every message names the file, the cause and the fix, so the command-line entry point can print it
without a traceback. Build messages with :func:`describe` to keep them uniform.
"""

from __future__ import annotations

from os import PathLike


class PipelineError(Exception):
    """Base class for user-facing errors: the CLI prints the message and exits with status 2."""


class ConfigError(PipelineError):
    """Bad study configuration, sheet or command-line option."""


class C3DError(PipelineError):
    """A C3D file cannot be read or lacks what the configuration asks for."""


class ScalingError(PipelineError):
    """OpenSim scaling failed or produced marker errors above the threshold."""


class IKError(PipelineError):
    """Inverse kinematics failed or tracked markers poorly."""


class IDError(PipelineError):
    """Inverse dynamics failed."""


class MuscleAnalysisError(PipelineError):
    """MTU lengths or moment arms could not be computed."""


class CalibrationError(PipelineError):
    """Calibration of the neuromusculoskeletal model failed."""


class ModelError(PipelineError):
    """An OpenSim model is missing, corrupt or lacks a named component."""


def describe(file: str | PathLike[str] | None, cause: str, fix: str) -> str:
    """Format a user-facing message: ``<file>: <cause>. Fix: <fix>``."""
    where = f"{file}: " if file is not None else ""
    cause = cause.rstrip(". ")
    return f"{where}{cause}. Fix: {fix}"
