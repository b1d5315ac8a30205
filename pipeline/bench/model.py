"""``bench model``: time one forward + backward pass of the NMS model on the reference problem.

The problem is the upper-limb reference (16 MTUs x 3 trials x 500 samples, float64, CPU) from
:func:`pipeline.nms.make_reference_problem`; the loss is the mean squared moment error against the
true moments with every calibrated parameter requiring a gradient. Writes the medians
``{"stiff_ms": x, "elastic_ms": y}`` over ``--repeats`` timed runs after warm-up runs, in the steady
state of a long calibration (the activation filter's compiled loop when numba is installed).
"""

from __future__ import annotations

import argparse
import logging
import statistics
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipeline.nms.model import TendonModel

NAME = "model"
HELP = "Time one forward + backward pass of the NMS model (stiff and elastic tendon)."

log = logging.getLogger(__name__)

_CALIBRATED = ("c1", "c2", "shape_factor", "optimal_fiber_length_m", "tendon_slack_length_m",
               "strength", "damping")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=30, help="timed runs per tendon model")
    parser.add_argument("--warmup", type=int, default=3, help="untimed runs first")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch intra-op threads (0: torch's default). One thread is fastest "
                             "for this problem size and does not collapse when the cores are busy")


def time_forward_backward(tendon: TendonModel, *, repeats: int, warmup: int) -> float:
    """Median wall time in milliseconds of one forward + backward pass."""
    import torch

    from pipeline.nms import make_reference_problem, simulate

    problem = make_reference_problem(tendon=tendon, seed=0)
    target = problem.moments_nm * 1.05
    times_ms = []
    for run in range(warmup + repeats):
        leaves = {name: problem.params.as_dict()[name].clone().requires_grad_()
                  for name in _CALIBRATED}
        params = problem.params.replace(**leaves)
        start = time.perf_counter()
        output = simulate(params, problem.excitation, problem.mtu_length_m, problem.moment_arm_m,
                          dt_s=problem.dt_s, tendon=tendon, emd_s=problem.emd_s)
        loss = torch.mean((output.moments_nm - target) ** 2)
        loss.backward()
        elapsed_ms = (time.perf_counter() - start) * 1e3
        if run >= warmup:
            times_ms.append(elapsed_ms)
    return statistics.median(times_ms)


def run(args: argparse.Namespace) -> dict[str, float]:
    import torch

    previous_threads = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    try:
        log.info("torch %s, %d intra-op threads", torch.__version__, torch.get_num_threads())
        # The steady state of a long run: the activation filter's compiled loop, which any run
        # past _iir.NUMBA_AFTER_STEPS filter steps switches to.
        from pipeline.nms import _iir

        log.info("activation filter loop: %s", "numba" if _iir.use_compiled_loop() else "numpy")
        return {
            f"{tendon}_ms": round(time_forward_backward(tendon, repeats=args.repeats,
                                                       warmup=args.warmup), 3)
            for tendon in ("stiff", "elastic")
        }
    finally:
        torch.set_num_threads(previous_threads)
