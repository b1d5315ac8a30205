"""Muscles of any OpenSim type: parameters read, calibrated values written back, types unchanged.

gait2392 uses Thelen2003Muscle, gait10dof18musc (opensim-core) Millard2012EquilibriumMuscle;
calibration models both with the DeGrooteFregly2016 curves and says so once in the log.
"""

from __future__ import annotations

import logging

import numpy as np
import opensim
import pytest

from pipeline.calibrate import export

CASES = [
    ("opensim-models-gait2392/gait2392_simbody.osim", "Thelen2003Muscle",
     ["soleus_r", "vas_lat_r", "bifemlh_r"]),
    ("opensim-core/models/gait10dof18musc_subject01.osim", "Millard2012EquilibriumMuscle",
     ["soleus_r", "vasti_r", "hamstrings_r"]),
]


@pytest.mark.parametrize(("relpath", "kind", "mtus"), CASES, ids=["thelen", "millard"])
def test_round_trip_keeps_muscle_types(shared_data, tmp_path, caplog, relpath, kind, mtus):
    source = shared_data / relpath
    model = opensim.Model(str(source))
    truth = {n: model.getMuscles().get(n) for n in mtus}
    assert {m.getConcreteClassName() for m in truth.values()} == {kind}

    export._LOGGED_TYPES.clear()
    with caplog.at_level(logging.INFO, logger="pipeline.calibrate.export"):
        props = export.read_muscle_properties(source, mtus)
        export.read_muscle_properties(source, mtus)
    assert export._xml_muscles(export._parse_osim(source), mtus) is not None  # no OpenSim load
    notes = [r for r in caplog.records if "DeGrooteFregly2016" in r.getMessage()]
    assert len(notes) == 1 and kind in notes[0].getMessage()
    for i, name in enumerate(mtus):
        m = truth[name]
        assert props.optimal_fiber_length_m[i] == m.getOptimalFiberLength()
        assert props.tendon_slack_length_m[i] == m.getTendonSlackLength()
        assert props.max_isometric_force_n[i] == m.getMaxIsometricForce()
        assert props.pennation_angle_rad[i] == m.getPennationAngleAtOptimalFiberLength()

    calibrated = {name: {"optimal_fiber_length_m": 1.07 * props.optimal_fiber_length_m[i],
                         "tendon_slack_length_m": 0.96 * props.tendon_slack_length_m[i],
                         "max_isometric_force_n": 1.3 * props.max_isometric_force_n[i],
                         "damping": 0.05}
                  for i, name in enumerate(mtus)}
    target = tmp_path / "calibrated.osim"
    export.write_calibrated_osim(source, target, calibrated)

    back = opensim.Model(str(target))
    back.initSystem()
    all_before = {model.getMuscles().get(i).getName(): model.getMuscles().get(i)
                  .getConcreteClassName() for i in range(model.getMuscles().getSize())}
    all_after = {back.getMuscles().get(i).getName(): back.getMuscles().get(i)
                 .getConcreteClassName() for i in range(back.getMuscles().getSize())}
    assert all_after == all_before
    again = export.read_muscle_properties(target, mtus)
    for i, name in enumerate(mtus):
        want = calibrated[name]
        np.testing.assert_allclose(again.optimal_fiber_length_m[i],
                                   want["optimal_fiber_length_m"], rtol=1e-12)
        np.testing.assert_allclose(again.tendon_slack_length_m[i],
                                   want["tendon_slack_length_m"], rtol=1e-12)
        np.testing.assert_allclose(again.max_isometric_force_n[i],
                                   want["max_isometric_force_n"], rtol=1e-12)
    untouched = next(n for n in all_before if n not in mtus)
    assert (back.getMuscles().get(untouched).getOptimalFiberLength()
            == model.getMuscles().get(untouched).getOptimalFiberLength())
