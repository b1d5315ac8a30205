"""Models and states shared by the skeletal-dynamics tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from project_paths import SHARED_DATA

SHARED_MODELS = {
    "arm26": "opensim-core/models/arm26.osim",
    "gait10dof18musc": "opensim-core/models/gait10dof18musc_subject01.osim",
    "gait2392": "opensim-models-gait2392/gait2392_simbody.osim",
    "gait2392_subject01": "opensim-models-gait2392/OutputReference/subject01_simbody.osim",
    "rajagopal": "opensim-core/rajagopal-walk/subject_walk_scaled.osim",
    "armless18": "opensim-core/emg-tracking/subject_walk_armless_18musc.osim",
}
DEMO_MODELS = ("demo-arm", "demo-leg", "demo-arm-dumbbell")

# Real trials: model, IK motion, ExternalLoads (None: no loads)
REAL_TRIALS = {
    "rajagopal": ("opensim-core/rajagopal-walk/subject_walk_scaled.osim",
                  "opensim-core/rajagopal-walk/coordinates.sto",
                  "opensim-core/rajagopal-walk/grf_walk.xml"),
    "gait2392_subject01": ("opensim-models-gait2392/OutputReference/subject01_simbody.osim",
                           "opensim-models-gait2392/OutputReference/subject01_walk1_ik.mot",
                           "opensim-models-gait2392/subject01_walk1_grf.xml"),
    "armless18": ("opensim-core/emg-tracking/subject_walk_armless_18musc.osim",
                  "opensim-core/emg-tracking/coordinates.mot",
                  "opensim-core/emg-tracking/external_loads.xml"),
    "gait10dof18musc": ("opensim-core/models/gait10dof18musc_subject01.osim",
                        "opensim-core/models/gait10dof18musc_ik_CRLF_line_ending.mot", None),
}


def quiet_opensim():
    import opensim

    opensim.Logger.setLevelString("error")


def model_path(name: str, tmp_dir: Path) -> Path:
    """A shared-data model (skips when the data are absent) or a built-in demo model."""
    if name in DEMO_MODELS:
        from pipeline.osim.models import write_builtin_model

        path = tmp_dir / f"{name}.osim"
        if not path.exists():
            write_builtin_model(name, path)
        return path
    path = SHARED_DATA / SHARED_MODELS[name]
    if not path.is_file():
        pytest.skip(f"reference data not found at {path}")
    return path


def random_states(skeleton, n: int, seed: int = 0):
    """States inside the coordinates' ranges with unit-scale speeds and accelerations."""
    rng = np.random.default_rng(seed)
    lo = skeleton.coordinate_ranges[:, 0].numpy()
    hi = skeleton.coordinate_ranges[:, 1].numpy()
    span = np.minimum(hi - lo, 4.0)  # unbounded translations: a few metres
    q = np.maximum(lo, -2.0) + span * rng.random((n, skeleton.n_coordinates))
    return q, rng.normal(size=q.shape), rng.normal(size=q.shape)


def write_joint_zoo(path: Path) -> Path:
    """A chain with every non-Custom joint type the skeleton supports, at odd frame offsets."""
    import opensim

    model = opensim.Model()
    model.setName("joint_zoo")
    parent = model.getGround()
    kinds = (opensim.SliderJoint, opensim.UniversalJoint, opensim.GimbalJoint,
             opensim.PlanarJoint, opensim.PinJoint, opensim.WeldJoint)
    for i, kind in enumerate(kinds):
        body = opensim.Body(f"b{i}", 1.0 + i, opensim.Vec3(0.1, -0.2 + 0.05 * i, 0.03),
                            opensim.Inertia(0.1, 0.12, 0.09, 0.01, -0.02, 0.005))
        model.addBody(body)
        model.addJoint(kind(f"j{i}", parent, opensim.Vec3(0.05, 0.1 * i, -0.02),
                            opensim.Vec3(0.3, -0.2, 0.1 * i), body,
                            opensim.Vec3(0.0, 0.2, 0.01), opensim.Vec3(-0.1, 0.4, 0.2)))
        parent = body
    model.finalizeConnections()
    model.printToXML(str(path))
    return path
