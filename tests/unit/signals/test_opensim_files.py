"""Files written here are read back by OpenSim's own classes with identical values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.bench.c3d import LAB_FRAME
from pipeline.io.c3d import read_c3d
from pipeline.io.opensim_files import (
    MarkerTable,
    StorageTable,
    read_storage,
    read_trc,
    write_storage,
    write_trc,
)
from pipeline.osim.external_loads import write_external_loads
from pipeline.signals.grf import ground_reactions
from pipeline.signals.markers import process_markers

opensim = pytest.importorskip("opensim")


def _values(table) -> np.ndarray:
    """(row, column) values of an OpenSim TimeSeriesTable, column by column."""
    return np.column_stack([np.array(table.getDependentColumnAtIndex(i).to_numpy())
                            for i in range(table.getNumColumns())])


def test_trc_read_by_opensim(tmp_path: Path, synthetic_trial) -> None:
    path, _ = synthetic_trial
    table = process_markers(read_c3d(path), lab_frame=LAB_FRAME, cutoff_hz=6.0)
    xyz = table.xyz_m.copy()
    xyz[3:6, 2] = np.nan  # missing samples survive the round trip
    table = MarkerTable(table.labels, table.times_s, xyz, table.rate_hz)
    out = tmp_path / "markers.trc"
    write_trc(out, table)
    os_table = opensim.TimeSeriesTableVec3(str(out))
    assert list(os_table.getColumnLabels()) == list(table.labels)
    assert os_table.getNumRows() == len(table.times_s)
    times = np.array(os_table.getIndependentColumn())
    np.testing.assert_allclose(times, table.times_s, rtol=1e-9)
    for m in (0, 2):
        col = os_table.getDependentColumnAtIndex(m)
        got = np.array([[col[i][k] for k in range(3)] for i in range(col.size())])
        np.testing.assert_allclose(got, xyz[:, m], rtol=1e-9, atol=1e-12)
    back = read_trc(out)
    np.testing.assert_allclose(back.xyz_m, xyz, rtol=1e-9, atol=1e-12)


def test_mot_sto_and_external_loads_read_by_opensim(tmp_path: Path, synthetic_trial) -> None:
    path, _ = synthetic_trial
    grf = ground_reactions(read_c3d(path), lab_frame=LAB_FRAME, threshold_n=20.0, cutoff_hz=6.0,
                           foot_markers={"right": ["RHEE"], "left": ["LHEE"]})
    mot = tmp_path / "grf.mot"
    write_storage(mot, grf.table)
    os_table = opensim.TimeSeriesTable(str(mot))
    assert list(os_table.getColumnLabels()) == list(grf.table.labels)
    got = _values(os_table)
    np.testing.assert_allclose(got, grf.table.values, rtol=1e-9, atol=1e-9)
    sto = tmp_path / "emg.sto"
    values = np.random.default_rng(1).uniform(size=(50, 3))
    write_storage(sto, StorageTable(("a", "b", "c"), np.linspace(0, 1, 50), values))
    np.testing.assert_allclose(_values(opensim.TimeSeriesTable(str(sto))), values, rtol=1e-9)
    assert read_storage(sto).labels == ("a", "b", "c")
    xml = tmp_path / "external_loads.xml"
    write_external_loads(xml, datafile=mot, bodies={"r": "foot_r", "l": "foot_l"})
    loads = opensim.ExternalLoads(str(xml), True)
    assert loads.getSize() == 2
    assert [loads.get(i).getAppliedToBodyName() for i in range(2)] == ["foot_r", "foot_l"]
    assert loads.getDataFileName() == "grf.mot"
    force = loads.get(0)
    assert force.get_force_expressed_in_body() == "ground"
    assert force.get_point_expressed_in_body() == "ground"
    assert force.get_force_identifier() == "ground_force_r_v"
