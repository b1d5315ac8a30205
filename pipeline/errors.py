"""One exception class per stage.

Every message names the file, the cause and the fix, so the command-line entry point can print it
without a traceback. Build messages with :func:`describe` to keep them uniform.
"""

from __future__ import annotations

import errno
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


# errno -> (cause, fix) for faults of the machine rather than of the study.
_OS_FAULTS = {
    errno.ENOSPC: ("no space left on the disk", "free space on that disk or write the results "
                   "to another one"),
    errno.EDQUOT: ("the disk quota is exceeded", "free space or ask for a larger quota"),
    errno.EFBIG: ("the file is larger than this file system or a size limit allows",
                  "write the results to another disk or raise the limit (ulimit -f)"),
    errno.EROFS: ("the file system is read-only", "copy the study to a writable disk, or give "
                  "an output or --log path on one"),
    errno.EACCES: ("permission denied", "make the folder writable for your user or choose "
                   "another one"),
    errno.EPERM: ("operation not permitted", "make the folder writable for your user or choose "
                  "another one"),
    errno.ENOTDIR: ("a part of the path is a regular file, not a folder", "rename or remove "
                    "that file, or choose another output path"),
    errno.EEXIST: ("a file exists where a folder is needed", "rename or remove that file, or "
                   "choose another output path"),
    errno.EISDIR: ("it is a folder, not a file", "give the path of a file"),
    errno.ENOENT: ("no such file or folder", "check the path (relative paths start at the "
                   "current folder); rerun the step that makes the file"),
}


def describe_os_error(exc: OSError) -> str:
    """One line for an :class:`OSError`: the path, the cause and the fix."""
    cause, fix = _OS_FAULTS.get(exc.errno or -1, (exc.strerror or str(exc),
                                                   "check the path and the disk"))
    path = exc.filename2 if exc.errno == errno.EEXIST and exc.filename2 else exc.filename
    return describe(path, cause, fix)
