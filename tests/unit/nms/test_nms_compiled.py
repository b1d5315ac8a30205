"""The array loops (pipeline.nms.compiled, numba and numpy) equal the torch model."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.nms import compiled, make_reference_problem, simulate
from pipeline.nms.activation import _delayed, delay_samples
from pipeline.nms.mtu import time_derivative

BACKENDS = [pytest.param("numba", marks=pytest.mark.skipif(not compiled.AVAILABLE,
                                                           reason="numba not installed")),
            "numpy"]


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("tendon", ["stiff", "elastic"])
def test_compiled_forward_equals_simulate(tendon: str, backend: str) -> None:
    problem = make_reference_problem(n_mtus=4, n_dofs=2, n_trials=2, n_samples=120,
                                     tendon=tendon, seed=3)
    with torch.no_grad():
        expected = simulate(problem.params, problem.excitation, problem.mtu_length_m,
                            problem.moment_arm_m, dt_s=problem.dt_s, tendon=tendon,
                            emd_s=problem.emd_s)
    delayed = _delayed(problem.excitation, delay_samples(emd_s=problem.emd_s,
                                                         dt_s=problem.dt_s))
    got = compiled.simulate_values(
        {k: v.numpy() for k, v in problem.params.as_dict().items()},
        drive=(delayed - delayed[..., :1]).numpy(), initial=delayed[..., 0].numpy(),
        mtu_length_m=problem.mtu_length_m.numpy(),
        mtu_velocity_mps=time_derivative(problem.mtu_length_m, dt_s=problem.dt_s).numpy(),
        dt_s=problem.dt_s, tendon=tendon, backend=backend)
    for name in ("activation", "fiber_length_m", "fiber_velocity_mps", "force_n",
                 "normalized_fiber_length", "tendon_strain"):
        np.testing.assert_allclose(got[name], getattr(expected, name).numpy(), rtol=1e-11,
                                   atol=1e-12 * float(getattr(expected, name).abs().max()) + 1e-14,
                                   err_msg=name)
