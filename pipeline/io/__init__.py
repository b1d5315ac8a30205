"""File formats: C3D reading, OpenSim text files, per-trial NMS inputs."""
