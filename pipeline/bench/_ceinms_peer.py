"""Build and run the real CEINMS 0.9 (``CEINMScalibrate``) for ``bench ceinms``.

The source (``../shared/peers/ceinms-0.9``, read-only) is built out of tree, Release, in a cached
scratch folder outside the repository (``$PIPELINE_CACHE_DIR`` or ``~/.cache/pipeline``, then
``ceinms-0.9/build``); a stamp file records the source and build type, so later runs reuse it.
It needs ``cmake``, a C++ compiler and the Debian packages ``libxerces-c-dev xsdcxx
libboost-filesystem-dev libboost-system-dev`` (``make ceinms-deps`` installs them).
"""

from __future__ import annotations

import json
import logging
import re
import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from pipeline.errors import ConfigError, describe

log = logging.getLogger(__name__)

DEFAULT_SOURCE = Path(__file__).resolve().parents[2].parent / "shared" / "peers" / "ceinms-0.9"
APT_PACKAGES = "cmake g++ libxerces-c-dev xsdcxx libboost-filesystem-dev libboost-system-dev"
_STAMP = ".pipeline-build.json"


def default_cache_dir() -> Path:
    from pipeline.fileio import user_cache_dir

    return user_cache_dir() / "ceinms-0.9"


def ensure_built(source: str | Path = DEFAULT_SOURCE, cache_dir: str | Path | None = None, *,
                 jobs: int = 2) -> Path:
    """Path of ``CEINMScalibrate``, building it first when the cache does not hold it."""
    source = Path(source).resolve()
    build = Path(cache_dir or default_cache_dir()) / "build"
    binary = build / "bin" / "CEINMScalibrate"
    stamp = {"source": str(source), "build_type": "Release"}
    stamp_path = build / _STAMP
    if binary.is_file() and stamp_path.is_file():
        if json.loads(stamp_path.read_text()) == stamp:
            return binary
    if not (source / "CMakeLists.txt").is_file():
        raise ConfigError(describe(source, "CEINMS 0.9 source not found",
                                   "pass --ceinms-source <folder of CEINMS 0.9's CMakeLists.txt>"))
    missing = [tool for tool in ("cmake", "xsdcxx", "c++") if shutil.which(tool) is None]
    if missing:
        raise ConfigError(describe(source, f"cannot build CEINMS: {', '.join(missing)} not found",
                                   f"apt-get install -y {APT_PACKAGES} (or make ceinms-deps)"))
    build.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    log.info("building CEINMS 0.9 (Release) in %s; this takes a few minutes", build)
    for command in (["cmake", "-S", str(source), "-B", str(build), "-DCMAKE_BUILD_TYPE=Release"],
                    ["nice", "cmake", "--build", str(build), "-j", str(jobs), "--target",
                     "CEINMScalibrate"]):
        result = subprocess.run(command, capture_output=True, text=True, check=False)
        if result.returncode != 0:
            raise ConfigError(describe(build, f"building CEINMS failed ({' '.join(command)}): "
                                       f"{result.stderr.strip()[-2000:]}",
                                       f"install {APT_PACKAGES}, then delete {build} and rerun"))
    stamp_path.write_text(json.dumps(stamp))
    log.info("built CEINMScalibrate in %.0f s", time.perf_counter() - started)
    return binary


@dataclass(frozen=True)
class CeinmsRun:
    wall_s: float  #: the whole process
    optimiser_s: float  #: CEINMS's own "Calibration time" (reading trials + annealing)
    temperatures: int  #: annealing temperature steps (one termination check each)
    output_subject: Path
    own_loss: float | None  #: the optimum CEINMS reports ("fOpt_ = ..."), its own evaluation


def run_calibrate(binary: Path, setup_xml: Path, output_subject: Path, *,
                  timeout_s: float = 3600.0) -> CeinmsRun:
    """Run ``CEINMScalibrate -S setup_xml`` in its folder and time it."""
    output_subject.unlink(missing_ok=True)
    started = time.perf_counter()
    result = subprocess.run([str(binary), "-S", setup_xml.name], cwd=setup_xml.parent,
                            capture_output=True, text=True, check=False, timeout=timeout_s)
    wall_s = time.perf_counter() - started
    calibration_ms = re.search(r"Calibration time: (\d+)ms", result.stdout)
    if result.returncode != 0 or calibration_ms is None or not output_subject.is_file():
        (setup_xml.parent / "ceinms_stdout.txt").write_text(result.stdout + result.stderr)
        raise ConfigError(describe(setup_xml, f"CEINMScalibrate failed (exit {result.returncode})"
                                   f": {(result.stdout + result.stderr).strip()[-1500:]}",
                                   "read ceinms_stdout.txt beside the set-up file"))
    (setup_xml.parent / "ceinms_stdout.txt").write_text(result.stdout + result.stderr)
    temperatures = sum(1 for line in result.stdout.splitlines() if line.startswith("Return "))
    optimum = re.findall(r"fOpt_ = ([-+0-9.eE]+)", result.stdout)
    return CeinmsRun(wall_s, int(calibration_ms.group(1)) / 1000.0, temperatures,
                     output_subject, float(optimum[-1]) if optimum else None)
