"""Files written here are read back by OpenSim's own classes with identical values."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from pipeline.bench.c3d import LAB_FRAME
from pipeline.io.c3d import read_c3d
from pipeline.io.opensim_files import (
    FLOAT_FORMAT,
    MarkerTable,
    StoTable,
    format_sto,
    read_sto,
    read_trc,
    write_sto,
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
    write_sto(mot, grf.table)
    os_table = opensim.TimeSeriesTable(str(mot))
    assert list(os_table.getColumnLabels()) == list(grf.table.labels)
    got = _values(os_table)
    np.testing.assert_allclose(got, grf.table.data, rtol=1e-9, atol=1e-9)
    sto = tmp_path / "emg.sto"
    values = np.random.default_rng(1).uniform(size=(50, 3))
    write_sto(sto, StoTable(np.linspace(0, 1, 50), ("a", "b", "c"), values))
    np.testing.assert_allclose(_values(opensim.TimeSeriesTable(str(sto))), values, rtol=1e-9)
    assert read_sto(sto).labels == ("a", "b", "c")
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


def _storage(path: Path) -> tuple[str, list[str], np.ndarray, np.ndarray, bool]:
    """Name, labels, times, values and ``isInDegrees`` as OpenSim's ``Storage`` reads them."""
    storage = opensim.Storage(str(path))
    labels_os = storage.getColumnLabels()
    labels = [labels_os.get(i) for i in range(labels_os.getSize())]
    times = np.array([storage.getStateVector(i).getTime() for i in range(storage.getSize())])
    values = np.array([[storage.getStateVector(i).getData().get(j)
                        for j in range(len(labels) - 1)] for i in range(storage.getSize())])
    return storage.getName(), labels, times, values, bool(storage.isInDegrees())


@pytest.mark.parametrize(("float_format", "rtol"), [(FLOAT_FORMAT, 1e-9), ("%.12g", 1e-11),
                                                    ("%.17g", 0.0)])
def test_sto_round_trip_through_opensim(tmp_path: Path, float_format: str, rtol: float) -> None:
    """``write_sto`` -> OpenSim's ``Storage`` and ``TimeSeriesTable``: labels, times, values to
    the written precision (exactly with ``%.17g``), ``inDegrees`` and the header name; the file
    is the text of ``format_sto``; ``read_sto`` reads it back."""
    rng = np.random.default_rng(7)
    time_s = np.round(np.arange(40) / 120.0, 12)
    data = rng.normal(scale=[1.0, 50.0, 1e-3], size=(40, 3))
    for in_degrees in (True, False):
        table = StoTable(time_s, ("hip_flexion_r", "knee_angle_r", "pelvis_tx"), data,
                         name="trial walk1", in_degrees=in_degrees)
        path = tmp_path / f"ik_{in_degrees}.mot"
        write_sto(path, table, float_format=float_format)
        assert path.read_text() == format_sto(table, float_format=float_format)
        name, labels, times, values, degrees = _storage(path)
        assert (name, labels, degrees) == ("trial walk1", ["time", *table.labels], in_degrees)
        np.testing.assert_allclose(times, time_s, rtol=rtol, atol=0)
        np.testing.assert_allclose(values, data, rtol=rtol, atol=0)
        os_table = opensim.TimeSeriesTable(str(path))
        assert os_table.getTableMetaDataAsString("inDegrees") == ("yes" if in_degrees else "no")
        np.testing.assert_allclose(_values(os_table), data, rtol=rtol, atol=0)
        back = read_sto(path)
        assert (back.labels, back.name, back.in_degrees) == (table.labels, table.name, in_degrees)
        np.testing.assert_allclose(back.data, data, rtol=rtol, atol=0)
    if float_format == "%.17g":
        np.testing.assert_array_equal(back.data, data)


def test_sto_writer_names_nan_and_shapes(tmp_path: Path) -> None:
    """The header name falls back to the file's stem; NaN samples are written as ``NaN`` and
    read back by OpenSim's ``TimeSeriesTable`` as missing; a data/labels mismatch is refused
    before anything is written."""
    data = np.array([[1.0, np.nan], [2.0, 4.0]])
    path = tmp_path / "gappy.sto"
    write_sto(path, StoTable(np.array([0.0, 0.5]), ("a", "b"), data))
    assert path.read_text().splitlines()[0] == "gappy"
    assert "NaN" in path.read_text()
    os_table = opensim.TimeSeriesTable(str(path))
    np.testing.assert_array_equal(_values(os_table), data)
    np.testing.assert_array_equal(read_sto(path).data, data)
    assert format_sto(StoTable(np.array([0.0]), ("a",), np.zeros((1, 1)))).startswith("table\n")
    with pytest.raises(ValueError, match="2 data columns for 3 labels"):
        write_sto(tmp_path / "bad.sto", StoTable(np.array([0.0, 0.5]), ("a", "b", "c"), data))
    assert not (tmp_path / "bad.sto").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gappy.sto"]
