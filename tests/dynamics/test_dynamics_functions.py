"""Transform-axis functions in torch against OpenSim's own evaluation (value, slope, curvature)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

opensim = pytest.importorskip("opensim")

from pipeline.dynamics import functions  # noqa: E402


def _opensim_eval(function, x, order):
    arg = opensim.Vector(1, float(x))
    if order == 0:
        return function.calcValue(arg)
    return function.calcDerivative([0] * order, arg)


def _spline():
    spline = opensim.SimmSpline()
    xs = [-2.0944, -1.7453, -1.3963, -1.0472, -0.6981, -0.3491, -0.1745, 0.0, 0.1745]
    ys = [-0.0032, 0.00179, 0.00411, 0.0041, 0.00212, -0.001, -0.0031, -0.00525, -0.0075]
    for x, y in zip(xs, ys, strict=True):
        spline.addPoint(x, y)
    return spline


def _scaled_spline():
    inner = _spline()
    inner.this.disown()  # the MultiplierFunction owns it
    return opensim.MultiplierFunction(inner, 1.07)


@pytest.mark.parametrize("make", [
    _spline,
    _scaled_spline,
    lambda: opensim.LinearFunction(0.7, -0.2),
    lambda: opensim.Constant(0.3),
    lambda: opensim.PolynomialFunction(opensim.Vector([0.5, -0.1, 0.2, 0.05])),
])
def test_values_and_derivatives_match_opensim_inside_and_outside_the_knots(make):
    function = make()
    torch_function = functions.from_opensim(function)
    xs = np.concatenate([np.linspace(-2.5, 0.5, 41), [-2.0944, 0.1745, -0.6981]])
    value, slope, curvature = torch_function(torch.tensor(xs))
    for k, x in enumerate(xs):
        assert value[k].item() == pytest.approx(_opensim_eval(function, x, 0), abs=1e-13)
        assert slope[k].item() == pytest.approx(_opensim_eval(function, x, 1), abs=1e-12)
        if function.getConcreteClassName() != "Constant":
            assert curvature[k].item() == pytest.approx(_opensim_eval(function, x, 2), abs=1e-10)


def test_spline_value_is_differentiable():
    spline = functions.from_opensim(_spline())
    x = torch.tensor([-1.9, -1.2, -0.4, 0.05], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda x: spline(x)[0], (x,))
    assert torch.autograd.gradcheck(lambda x: spline(x)[1], (x,))


def test_unsupported_function_is_named():
    with pytest.raises(functions.UnsupportedFunctionError, match="StepFunction"):
        functions.from_opensim(opensim.StepFunction(0, 1, 0, 1))


def test_reading_opensim_splines_leaves_ezc3d_usable(tmp_path):
    """Regression: an opensim.StdVectorInt once broke every later ezc3d write in the process
    (the whole CI suite runs in one process, so C3D-writing tests after this one failed)."""
    from c3d_helpers import write_minimal_c3d

    functions.from_opensim(_spline())
    path = write_minimal_c3d(tmp_path / "after_spline.c3d")
    import ezc3d

    assert ezc3d.c3d(str(path))["header"]["points"]["size"] >= 0
