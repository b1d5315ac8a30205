"""``calibration.device``: the device code path of calibration and execution.

On a machine without a GPU the path runs with ``cpu`` and the refusal of ``cuda`` is checked; with
a GPU the CUDA results must equal the CPU ones.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from pipeline.calibrate.execute import execute
from pipeline.calibrate.run import calibrate, resolve_device
from pipeline.calibrate.synthetic import make_problem
from pipeline.errors import ConfigError


def _run(device: str, tendon: str):
    problem = make_problem(n_mtus=3, n_dofs=2, n_calibration=2, n_validation=1, n_samples=80,
                           tendon=tendon, seed=7, model_error=0.1)
    config = dict(problem.config, device=device)
    outcome = calibrate(problem.spec, problem.calibration, config, analyse=True, progress=False)
    params = outcome.objective.muscle_parameters(torch.as_tensor(outcome.p))
    output = execute(params, problem.validation, tendon=tendon, emd_s=problem.emd_s,
                     device=resolve_device(config))
    return outcome, output


@pytest.mark.parametrize("tendon", ["stiff", "elastic"])
def test_explicit_cpu_device_runs_calibration_analysis_and_execution(tendon: str) -> None:
    outcome, output = _run("cpu", tendon)
    assert outcome.objective.device.type == "cpu"
    assert outcome.loss < 1e-5 and outcome.identifiability is not None
    assert output.moments_nm.device.type == "cpu" and torch.isfinite(output.moments_nm).all()


def test_unavailable_or_unknown_devices_are_refused_with_a_fix() -> None:
    with pytest.raises(ConfigError, match="calibration.device"):
        resolve_device({"device": "tpu"})
    if not torch.cuda.is_available():
        with pytest.raises(ConfigError, match="no CUDA GPU"):
            resolve_device({"device": "cuda"})


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")
@pytest.mark.parametrize("tendon", ["stiff", "elastic"])
def test_cuda_equals_cpu(tendon: str) -> None:
    cpu, cpu_out = _run("cpu", tendon)
    gpu, gpu_out = _run("cuda", tendon)
    assert gpu.objective.device.type == "cuda"
    np.testing.assert_allclose(gpu.p, cpu.p, rtol=1e-6, atol=1e-9)
    torch.testing.assert_close(gpu_out.moments_nm, cpu_out.moments_nm, rtol=1e-8, atol=1e-8)
