"""OpenSim wrappers: models, scaling, IK, ID, muscle analysis and NMS input collection."""
