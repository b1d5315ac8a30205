"""``bench dynamics``: the torch skeleton against OpenSim's own solvers, per model.

For each model (the built-in demo models, and the public OpenSim models in ``../shared/data`` when
present), on the same random states inside the coordinates' ranges: the largest absolute
difference of inverse dynamics and mass matrix from OpenSim's ``InverseDynamicsSolver`` and
``calcM``; the per-state cost of inverse dynamics and of the mass matrix with gradients (forward +
backward, batched over ``--states`` states), of one RK4 forward-dynamics step with gradients, and
of OpenSim's inverse dynamics (one state at a time, as its API works). Writes
``{"models": [{"name", "n_dofs", "max_abs_error_vs_opensim", "id_us_per_state",
"mass_matrix_us_per_state", "opensim_id_us_per_state", "forward_step_us_per_state"}],
"recovery": [...]}``.

``recovery`` (skip with ``--no-recovery``): the motion method's equation-error identification on
the demo arm with a synthetic 6-MTU muscle model and inertial parameters perturbed by 10 %
(:mod:`pipeline.dynamics.synthetic`), from N(truth, 10 %) muscle guesses, noise-free and with
EMG-envelope and joint-angle noise: mean % error of the muscle parameters, relative error of the
identifiable inertial combinations, and the fraction of them within 2 and 3 standard errors.
"""

from __future__ import annotations

import argparse
import logging
import statistics
import tempfile
import time
from pathlib import Path

NAME = "dynamics"
HELP = "Time the torch skeleton's inverse dynamics and mass matrix against OpenSim's solvers."

log = logging.getLogger(__name__)

SHARED_MODELS = {
    "arm26": "opensim-core/models/arm26.osim",
    "gait10dof18musc": "opensim-core/models/gait10dof18musc_subject01.osim",
    "gait2392": "opensim-models-gait2392/gait2392_simbody.osim",
    "rajagopal2016": "opensim-core/rajagopal-walk/subject_walk_scaled.osim",
}
DEMO_MODELS = ("demo-arm", "demo-leg")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--states", type=int, default=1000, help="states per batch")
    parser.add_argument("--check-states", type=int, default=20,
                        help="states compared with OpenSim (and timed with OpenSim)")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs (median)")
    parser.add_argument("--shared-data", type=Path,
                        default=Path(__file__).resolve().parents[2] / ".." / "shared" / "data",
                        help="folder of the public reference models (skipped when absent)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads")
    parser.add_argument("--no-recovery", action="store_true",
                        help="skip the motion method's recovery figures")


def _median_us(fn, repeats: int, per: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / per * 1e6


def bench_model(name: str, path: Path, *, states: int, check_states: int,
                repeats: int) -> dict:
    import numpy as np
    import torch

    from pipeline.dynamics import forward, skeleton
    from pipeline.dynamics.build import load_skeleton
    from pipeline.dynamics.reference import OpenSimSkeleton

    skel = load_skeleton(path)
    rng = np.random.default_rng(0)
    ranges = skel.coordinate_ranges
    if ranges is None:
        raise ValueError(f"{path}: the skeleton carries no coordinate ranges to draw states from")
    lo, hi = ranges[:, 0].numpy(), ranges[:, 1].numpy()

    def draw(n):
        span = np.minimum(hi - lo, 4.0)
        q = np.maximum(lo, -2.0) + span * rng.random((n, skel.n_coordinates))
        return q, rng.normal(size=q.shape), rng.normal(size=q.shape)

    q, qd, qdd = draw(check_states)
    ref = OpenSimSkeleton(path)
    t = torch.tensor
    error = max(
        float(np.abs(skeleton.inverse_dynamics(skel, t(q), t(qd), t(qdd)).numpy()
                     - ref.inverse_dynamics(q, qd, qdd)).max()),
        float(np.abs(skeleton.mass_matrix(skel, t(q)).numpy() - ref.mass_matrix(q)).max()))
    opensim_us = _median_us(lambda: ref.inverse_dynamics(q, qd, qdd), repeats, check_states)
    qb, qdb, qddb = (t(a) for a in draw(states))

    def id_pass():
        leaves = [a.clone().requires_grad_(True) for a in (qb, qdb, qddb, skel.inertial)]
        skeleton.inverse_dynamics(skel, *leaves[:3], inertial=leaves[3]).sum().backward()

    def mass_pass():
        leaves = [a.clone().requires_grad_(True) for a in (qb, skel.inertial)]
        skeleton.mass_matrix(skel, leaves[0], inertial=leaves[1]).sum().backward()

    def step_pass():
        leaves = [a.clone().requires_grad_(True) for a in (qb, qdb, skel.inertial)]
        tau = qddb
        out = forward.step(skel, leaves[0], leaves[1], 0.0, 1e-3, lambda _t, _q, _qd: tau,
                           inertial=leaves[2])
        (out[0].sum() + out[1].sum()).backward()

    result = {
        "name": name,
        "n_dofs": skel.n_coordinates,
        "max_abs_error_vs_opensim": error,
        "id_us_per_state": round(_median_us(id_pass, repeats, states), 2),
        "mass_matrix_us_per_state": round(_median_us(mass_pass, repeats, states), 2),
        "opensim_id_us_per_state": round(opensim_us, 2),
    }
    if not skel.constraints:
        result["forward_step_us_per_state"] = round(_median_us(step_pass, repeats, states), 2)
    log.info("bench dynamics %s: %s", name, result)
    return result


def run(args: argparse.Namespace) -> dict:
    import opensim
    import torch

    from pipeline.osim.models import write_builtin_model

    opensim.Logger.setLevelString("error")
    previous = torch.get_num_threads()
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    models = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            paths = []
            for name in DEMO_MODELS:
                path = Path(tmp) / f"{name}.osim"
                write_builtin_model(name, path)
                paths.append((name, path))
            for name, rel in SHARED_MODELS.items():
                path = (args.shared_data / rel).resolve()
                if path.is_file():
                    paths.append((name, path))
                else:
                    log.warning("bench dynamics: %s not found, skipped", path)
            for name, path in paths:
                models.append(bench_model(name, path, states=args.states,
                                          check_states=args.check_states, repeats=args.repeats))
            recovery = [] if args.no_recovery else bench_recovery(Path(tmp))
    finally:
        torch.set_num_threads(previous)
    return {"models": models, "recovery": recovery}


#: (EMG-envelope relative SD, joint-angle SD in degrees) of the recovery cases
NOISE_CASES = ((0.0, 0.0), (0.01, 0.0), (0.02, 0.0), (0.0, 0.5), (0.02, 0.5))


def bench_recovery(tmp: Path) -> list[dict]:
    """Motion-method recovery on the demo arm for each of :data:`NOISE_CASES`."""
    from pipeline.dynamics.build import load_skeleton
    from pipeline.dynamics.synthetic import make_motion_problem, recovery
    from pipeline.osim.models import write_builtin_model

    path = tmp / "demo-arm-recovery.osim"
    write_builtin_model("demo-arm", path)
    problem = make_motion_problem(load_skeleton(path), seed=0)
    out = []
    for emg, angle in NOISE_CASES:
        figures = recovery(problem, emg_rel_sd=emg, angle_sd_deg=angle, cutoff_hz=12.0)
        log.info("motion recovery, EMG noise %.0f %%, angle noise %.1f deg: muscle %.3g %% mean "
                 "error, inertial combinations %.3g relative error, %.0f %% within 3 SE",
                 100 * emg, angle, figures["muscle_mean_error_pct"],
                 figures["inertial_combination_rel_error"], 100 * figures["within_3se_fraction"])
        out.append({"model": "demo-arm", **figures})
    return out
