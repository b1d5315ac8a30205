"""Differentiable skeletal dynamics of OpenSim models in torch and motion-driven identification."""
