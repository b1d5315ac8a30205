"""Size the BLAS and OpenMP thread pools to the job's threads before numpy or torch start them.

numpy's OpenBLAS otherwise starts one thread per core: on a busy machine (a Snakemake run with
several jobs) small factorisations then collapse (one 12,569 x 44 SVD took 341 ms instead of
19 ms). The CLI calls :func:`pin_blas_threads` first thing; a value the user exported wins.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
             "NUMEXPR_NUM_THREADS", "VECLIB_MAXIMUM_THREADS")


def job_threads(argv: Sequence[str]) -> int:
    """The value of ``--threads N`` / ``--threads=N`` in ``argv`` (at least 1), else 1."""
    value = "1"
    for i, arg in enumerate(argv):
        if arg == "--threads" and i + 1 < len(argv):
            value = argv[i + 1]
        elif arg.startswith("--threads="):
            value = arg.split("=", 1)[1]
    return int(value) if value.isdigit() and int(value) >= 1 else 1


def pin_blas_threads(argv: Sequence[str]) -> int:
    """Set every thread-pool variable not already set to the job's threads; return them."""
    threads = job_threads(argv)
    for name in VARIABLES:
        os.environ.setdefault(name, str(threads))
    return threads
