"""BLAS thread pinning of the CLI (pipeline._threads)."""

from __future__ import annotations

import os
import subprocess
import sys

from pipeline._threads import job_threads
from tests.project_paths import PROJECT_ROOT

_PROBE = ("import os, sys\n"
          "from pipeline.__main__ import main\n"
          "try:\n"
          "    main(['bench', 'model', '--threads', '2', '--help'])\n"
          "except SystemExit:\n"
          "    pass\n"
          "print(os.environ.get('OPENBLAS_NUM_THREADS'), os.environ.get('OMP_NUM_THREADS'))\n")


def test_job_threads_reads_the_threads_option() -> None:
    assert job_threads(["calibrate", "--threads", "3"]) == 3
    assert job_threads(["calibrate", "--threads=2"]) == 2
    assert job_threads(["markers", "--in", "x.c3d"]) == 1
    assert job_threads(["calibrate", "--threads", "0"]) == 1


def _probe(**env: str) -> list[str]:
    base = {k: v for k, v in os.environ.items()
            if k not in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}
    result = subprocess.run([sys.executable, "-c", _PROBE], cwd=PROJECT_ROOT,
                            env={**base, **env}, check=True, capture_output=True, text=True)
    return result.stdout.split()


def test_cli_pins_blas_threads_to_the_job_threads_unless_the_user_set_them() -> None:
    assert _probe()[-2:] == ["2", "2"]
    assert _probe(OPENBLAS_NUM_THREADS="4")[-2:] == ["4", "2"]
