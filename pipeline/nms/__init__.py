"""Differentiable EMG-driven neuromusculoskeletal model (torch).

Public API (shapes: signals ``(trial, muscle, time)``, moment arms ``(trial, muscle, dof, time)``,
moments ``(trial, dof, time)``, parameters ``(muscle,)``):

* :func:`simulate`, :class:`MuscleParameters`, :class:`ModelOutput` - the whole model;
* :mod:`pipeline.nms.curves` - the DeGrooteFregly2016 curves;
* :func:`activation`, :func:`neural_activation`, :func:`muscle_activation` - activation dynamics;
* :func:`stiff_fiber_kinematics`, :func:`elastic_fiber_kinematics`, :func:`tendon_strain`;
* :func:`fiber_force_along_tendon` - the MTU force;
* :func:`from_unconstrained`, :func:`to_unconstrained`, :func:`relative_bounds` - bounds mapping;
* :func:`make_reference_problem` - a synthetic problem with known truth;
* :func:`few_passes` - run the elastic tendon's loops in numpy for a few passes (no numba start).
"""

from pipeline.nms._rosenbrock import few_passes
from pipeline.nms.activation import activation, muscle_activation, neural_activation
from pipeline.nms.model import DEFAULT_EMD_S, ModelOutput, MuscleParameters, simulate
from pipeline.nms.mtu import fiber_force_along_tendon
from pipeline.nms.parameters import from_unconstrained, relative_bounds, to_unconstrained
from pipeline.nms.reference import ReferenceProblem, make_reference_problem
from pipeline.nms.tendon import elastic_fiber_kinematics, stiff_fiber_kinematics, tendon_strain

__all__ = [
    "DEFAULT_EMD_S",
    "ModelOutput",
    "MuscleParameters",
    "ReferenceProblem",
    "activation",
    "elastic_fiber_kinematics",
    "few_passes",
    "fiber_force_along_tendon",
    "from_unconstrained",
    "make_reference_problem",
    "muscle_activation",
    "neural_activation",
    "relative_bounds",
    "simulate",
    "stiff_fiber_kinematics",
    "tendon_strain",
    "to_unconstrained",
]
