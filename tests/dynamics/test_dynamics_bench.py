"""``bench dynamics`` produces its contract's keys with OpenSim-level accuracy (tiny sizes)."""

from __future__ import annotations

import pytest

opensim = pytest.importorskip("opensim")

from dynamics_helpers import model_path, quiet_opensim  # noqa: E402

from pipeline.bench.dynamics import bench_model  # noqa: E402

quiet_opensim()


def test_bench_model_reports_errors_and_costs(tmp_path):
    result = bench_model("demo-arm", model_path("demo-arm", tmp_path), states=4, check_states=2,
                         repeats=1)
    assert set(result) >= {"name", "n_dofs", "max_abs_error_vs_opensim", "id_us_per_state",
                           "mass_matrix_us_per_state", "opensim_id_us_per_state"}
    assert result["n_dofs"] == 3
    assert result["max_abs_error_vs_opensim"] < 1e-9
    assert result["id_us_per_state"] > 0 and result["forward_step_us_per_state"] > 0
