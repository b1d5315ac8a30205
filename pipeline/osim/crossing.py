"""Which coordinates an MTU of a user's ``.osim`` model crosses, from OpenSim's moment arms.

A muscle crosses a coordinate when ``Muscle::computeMomentArm`` about it is non-zero somewhere
in the coordinate's range. Moment arms are evaluated at the model's default pose and at a few
values spread over the coordinate's range (the other coordinates at their defaults), because a
path that wraps or slides can have a zero moment arm at one pose and not at another. The model is
loaded once.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np

#: Values of each coordinate, spread over its range, at which moment arms are evaluated
#: (besides the default pose).
N_POSES = 5
#: Moment arms below this magnitude (m or m/rad) count as zero (numerical noise of the path).
ZERO_MOMENT_ARM_M = 1e-6


def crossed_coordinates(model_file: str | Path, mtus: Iterable[str],
                        coordinates: Iterable[str], *, n_poses: int = N_POSES,
                        zero_m: float = ZERO_MOMENT_ARM_M) -> dict[str, set[str]]:
    """``{mtu: coordinates it crosses}`` among ``coordinates``, for the MTUs and coordinates
    the model has (unknown names are left out; they are reported elsewhere)."""
    import opensim as osim

    model = osim.Model(str(model_file))
    state = model.initSystem()
    muscles = model.getMuscles()
    coord_set = model.getCoordinateSet()
    names = [m for m in mtus if muscles.contains(m)]
    crossed: dict[str, set[str]] = {m: set() for m in names}
    for name in (c for c in coordinates if coord_set.contains(c)):
        coord = coord_set.get(name)
        default = coord.getDefaultValue()
        lo, hi = coord.getRangeMin(), coord.getRangeMax()
        values = [default, *np.linspace(lo, hi, n_poses + 2)[1:-1]] if hi > lo else [default]
        locked = coord.getLocked(state)
        coord.setLocked(state, False)
        for value in values:
            coord.setValue(state, float(value))
            for mtu in names:
                if name in crossed[mtu]:
                    continue
                arm = muscles.get(mtu).computeMomentArm(state, coord)
                if abs(arm) > zero_m:
                    crossed[mtu].add(name)
        coord.setValue(state, default)
        coord.setLocked(state, locked)
    return crossed
