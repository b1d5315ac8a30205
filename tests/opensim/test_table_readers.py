"""The one reader per OpenSim text format (pipeline/io/opensim_files.py) against OpenSim's own
readers on real files: ``.trc`` against ``TimeSeriesTableVec3``, ``.mot``/``.sto`` against
``TimeSeriesTable`` and ``Storage`` (IK in degrees, ID, EMG, GRF, a states file with state-path
labels, an old SIMM-style header; CRLF line endings, blank-separated columns, NaN, ``inDegrees``),
and the bad-input messages."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

opensim = pytest.importorskip("opensim")

from pipeline.errors import IDError  # noqa: E402
from pipeline.io.opensim_files import (  # noqa: E402
    OpenSimFileError,
    read_sto,
    read_trc,
    state_value_columns,
)

TRC_FILES = [
    "opensim-models-gait2392/subject01_static.trc",
    "opensim-models-gait2392/subject01_walk1.trc",
    "opensim-core/models/gait10dof18musc_walk_CRLF_line_ending.trc",
    "opensim-core/rajagopal-walk/markers_walk.trc",
]
STORAGE_FILES = [
    "opensim-models-gait2392/subject01_walk1_grf.mot",  # trailing tabs on the header lines
    "opensim-models-gait2392/OutputReference/subject01_walk1_ik.mot",  # SIMM-style: degrees
    "opensim-models-gait2392/OutputReference/ResultsInverseDynamics/InverseDynamicsOutput.sto",
    "opensim-core/models/gait10dof18musc_ik_CRLF_line_ending.mot",  # IK, inDegrees=yes
    "opensim-core/emg-tracking/coordinates.mot",
    "opensim-core/emg-tracking/emg.sto",  # version 3, blank first line
    "opensim-core/emg-tracking/grf.mot",
    "opensim-core/rajagopal-walk/electromyography.sto",
    "opensim-core/rajagopal-walk/id_walk.sto",  # ID
    "opensim-core/rajagopal-walk/grf_walk.mot",
    "opensim-core/rajagopal-walk/coordinates.sto",  # states: /jointset/<joint>/<coord>/value
]
SIMM_FILE = STORAGE_FILES[1]
UNITS_TO_M = {"mm": 1e-3, "cm": 1e-2, "m": 1.0}


@pytest.mark.parametrize("name", TRC_FILES)
def test_trc_matches_opensim_trc_adapter(shared_data: Path, name: str) -> None:
    path = shared_data / name
    mine = read_trc(path)
    table = opensim.TimeSeriesTableVec3(str(path))
    flat = table.flatten()  # keep a reference: getMatrix() views into it
    theirs = np.array(flat.getMatrix().to_numpy(), dtype=float)
    scale = UNITS_TO_M[table.getTableMetaDataAsString("Units").strip().lower()]
    assert mine.labels == tuple(table.getColumnLabels())
    np.testing.assert_array_equal(mine.times_s, np.array(table.getIndependentColumn()))
    np.testing.assert_allclose(mine.xyz_m.reshape(len(mine.times_s), -1), theirs * scale,
                               rtol=0, atol=1e-12)
    assert mine.rate_hz == pytest.approx(float(table.getTableMetaDataAsString("DataRate")))


def test_crlf_files_read_like_their_lf_twins(shared_data: Path, tmp_path: Path) -> None:
    """CRLF copies (as Windows tools write them; the stored ``*_CRLF_line_ending`` files may have
    been normalised to LF) read the same as the originals, and as OpenSim reads them."""
    trc, mot = tmp_path / "crlf.trc", tmp_path / "crlf.mot"
    for src, dst in ((TRC_FILES[2], trc), (STORAGE_FILES[3], mot)):
        text = (shared_data / src).read_bytes().replace(b"\r\n", b"\n")
        dst.write_bytes(text.replace(b"\n", b"\r\n"))
    lf_markers, crlf_markers = read_trc(shared_data / TRC_FILES[2]), read_trc(trc)
    assert crlf_markers.labels == lf_markers.labels
    np.testing.assert_array_equal(crlf_markers.xyz_m, lf_markers.xyz_m)
    theirs = opensim.TimeSeriesTableVec3(str(trc))
    assert crlf_markers.labels == tuple(theirs.getColumnLabels())
    lf_table, crlf_table = read_sto(shared_data / STORAGE_FILES[3]), read_sto(mot)
    assert crlf_table.labels == lf_table.labels and crlf_table.in_degrees
    np.testing.assert_array_equal(crlf_table.data, lf_table.data)
    np.testing.assert_array_equal(crlf_table.time_s, lf_table.time_s)
    _assert_matches_storage(crlf_table, mot)


def test_trc_missing_samples_become_nan(shared_data: Path, tmp_path: Path) -> None:
    """Empty fields are missing samples, as for OpenSim's adapter; a row cut short is an error
    (OpenSim refuses it too)."""
    lines = (shared_data / TRC_FILES[0]).read_text().splitlines()
    first = next(i for i in range(5, len(lines)) if lines[i].strip())  # first data row
    row = lines[first].split("\t")
    row[2:5] = ["", "", ""]  # first marker missing in the first frame
    lines[first] = "\t".join(row)
    row = lines[first + 1].split("\t")
    row[-4:-1] = ["", "", ""]  # last marker missing in the second frame (trailing tab kept)
    lines[first + 1] = "\t".join(row)
    path = tmp_path / "gaps.trc"
    path.write_text("\n".join(lines) + "\n")
    mine = read_trc(path)
    table = opensim.TimeSeriesTableVec3(str(path))
    flat = table.flatten()
    theirs = np.array(flat.getMatrix().to_numpy(), dtype=float) * 1e-3
    mine_flat = mine.xyz_m.reshape(len(mine.times_s), -1)
    assert np.isnan(mine.xyz_m[0, 0]).all() and np.isnan(mine.xyz_m[1, -1]).all()
    np.testing.assert_array_equal(np.isnan(mine_flat), np.isnan(theirs))
    np.testing.assert_allclose(mine_flat, theirs, rtol=0, atol=1e-12)
    lines[first + 2] = "\t".join(lines[first + 2].split("\t")[:-4])
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(OpenSimFileError, match=f"not a valid TRC file .line {first + 3} has"):
        read_trc(path)


def test_trc_bad_input_names_file_and_fix(tmp_path: Path) -> None:
    with pytest.raises(OpenSimFileError, match="missing.trc: marker file does not exist"):
        read_trc(tmp_path / "missing.trc")
    bad = tmp_path / "bad.trc"
    bad.write_text("PathFileType\t4\n")
    with pytest.raises(OpenSimFileError, match="bad.trc: not a valid TRC file"):
        read_trc(bad)


def _storage_arrays(path: Path) -> tuple[list[str], np.ndarray, np.ndarray, bool]:
    """Labels (time first), times, values and ``isInDegrees`` as ``opensim.Storage`` reads them."""
    storage = opensim.Storage(str(path))
    labels_os = storage.getColumnLabels()
    labels = [labels_os.get(i) for i in range(labels_os.getSize())]
    times = np.array([storage.getStateVector(i).getTime() for i in range(storage.getSize())])
    values = np.empty((storage.getSize(), len(labels) - 1))
    for i in range(storage.getSize()):
        row = storage.getStateVector(i).getData()
        values[i] = [row.get(j) for j in range(row.getSize())]
    return labels, times, values, bool(storage.isInDegrees())


def _assert_matches_storage(mine, path: Path) -> None:
    labels, times, values, in_degrees = _storage_arrays(path)
    assert ("time", *mine.labels) == tuple(labels)
    np.testing.assert_array_equal(mine.time_s, times)
    np.testing.assert_allclose(mine.data, values, rtol=0, atol=1e-12)
    assert mine.in_degrees == in_degrees


@pytest.mark.parametrize("name", STORAGE_FILES)
def test_storage_matches_opensim_readers(shared_data: Path, name: str) -> None:
    path = shared_data / name
    mine = read_sto(path)
    table = opensim.TimeSeriesTable(str(path))
    assert mine.labels == tuple(table.getColumnLabels())
    np.testing.assert_array_equal(mine.time_s, np.array(table.getIndependentColumn()))
    np.testing.assert_allclose(mine.data, np.array(table.getMatrix().to_numpy()),
                               rtol=0, atol=1e-12)
    _assert_matches_storage(mine, path)
    assert mine.name == path.read_text().splitlines()[0].strip()


def test_in_degrees_read_from_header(shared_data: Path) -> None:
    degrees = read_sto(shared_data / STORAGE_FILES[3])
    radians = read_sto(shared_data / "opensim-core/rajagopal-walk/coordinates.sto",
                       state_values=True)
    assert degrees.in_degrees and not radians.in_degrees
    # degrees really are degrees: a hip flexion over 1 rad only makes sense in degrees
    assert np.abs(degrees.column("hip_flexion_r")).max() > 2 * np.pi
    assert np.abs(radians.column("hip_flexion_r")).max() < np.pi / 2


def test_old_simm_header_is_in_degrees(shared_data: Path) -> None:
    """No ``version`` and no ``inDegrees`` line (SIMM-style header): degrees, as for Storage."""
    path = shared_data / SIMM_FILE
    header = path.read_text().split("endheader")[0]
    assert "version" not in header and "inDegrees" not in header
    mine = read_sto(path)
    assert mine.in_degrees and mine.name == "first trial"
    assert np.abs(mine.column("knee_angle_r")).max() > 2 * np.pi


def test_rajagopal_state_paths_name_the_model_coordinates(shared_data: Path) -> None:
    """``state_values``: each ``<coordinate path>/value`` column is named by the coordinate whose
    absolute path OpenSim gives it in the model."""
    walk = shared_data / "opensim-core/rajagopal-walk"
    model = opensim.Model(str(walk / "subject_walk_scaled.osim"))
    coordinates = model.getCoordinateSet()
    paths = {coordinates.get(i).getAbsolutePathString() + "/value": coordinates.get(i).getName()
             for i in range(coordinates.getSize())}
    raw = read_sto(walk / "coordinates.sto")
    named = read_sto(walk / "coordinates.sto", state_values=True)
    assert set(raw.labels) <= set(paths)
    assert named.labels == tuple(paths[label] for label in raw.labels)
    np.testing.assert_array_equal(named.data, raw.data)
    direct = state_value_columns(raw)  # the pure function the option applies
    assert direct.labels == named.labels and direct.in_degrees == named.in_degrees is False
    np.testing.assert_array_equal(direct.data, named.data)


def test_states_file_written_by_opensim(shared_data: Path, tmp_path: Path) -> None:
    """A states file from OpenSim's ``StatesTrajectory`` (coordinate values and speeds, muscle
    activations and fibre lengths): ``state_values`` keeps the values under coordinate names
    and drops speeds, activations and fibre lengths; without it, every column reads as
    ``Storage`` reads it."""
    model = opensim.Model(str(shared_data / "opensim-models-gait2392/gait2392_simbody.osim"))
    state = model.initSystem()
    coordinates = model.getCoordinateSet()
    names = [coordinates.get(i).getName() for i in range(coordinates.getSize())]
    trajectory = opensim.StatesTrajectory()
    expected = []
    for k in range(3):
        state.setTime(0.01 * k)
        for i in range(len(names)):
            coordinate = coordinates.get(i)
            if not coordinate.getLocked(state):
                coordinate.setValue(state, 0.01 * (k + 1) * ((i % 5) - 2), False)
        expected.append([coordinates.get(i).getValue(state) for i in range(len(names))])
        trajectory.append(state)
    path = tmp_path / "states.sto"
    opensim.STOFileAdapter.write(trajectory.exportToTable(model), str(path))
    everything = read_sto(path)
    _assert_matches_storage(everything, path)
    assert any(label.endswith("/speed") for label in everything.labels)
    assert any(label.endswith("/activation") for label in everything.labels)
    assert any(label.endswith("/fiber_length") for label in everything.labels)
    values = read_sto(path, state_values=True)
    assert values.labels == tuple(names)  # no other state kinds in gait2392
    np.testing.assert_allclose(values.data, np.array(expected), rtol=0, atol=1e-15)
    np.testing.assert_array_equal(values.time_s, [0.0, 0.01, 0.02])


def test_blank_separated_columns_and_nan(shared_data: Path, tmp_path: Path) -> None:
    """Columns separated by blanks instead of tabs read as Storage reads them; NaN samples read
    as TimeSeriesTable reads them (Storage itself misreads NaN, so it is not the reference)."""
    source = shared_data / STORAGE_FILES[4]
    text = source.read_text()
    head, _, body = text.partition("endheader\n")
    blanks = tmp_path / "blanks.mot"
    blanks.write_text(head + "endheader\n" + body.replace("\t", "   "))
    mine = read_sto(blanks)
    _assert_matches_storage(mine, blanks)
    original = read_sto(source)
    assert mine.labels == original.labels
    np.testing.assert_array_equal(mine.data, original.data)
    lines = text.splitlines()
    end = lines.index("endheader")
    for number, missing in ((end + 2, "NaN"), (end + 4, "nan")):
        fields = lines[number].split("\t")
        fields[3] = missing
        lines[number] = "\t".join(fields)
    gaps = tmp_path / "gaps.mot"
    gaps.write_text("\n".join(lines) + "\n")
    mine = read_sto(gaps)
    table = opensim.TimeSeriesTable(str(gaps))  # keep a reference: getMatrix() views into it
    theirs = np.array(table.getMatrix().to_numpy())
    assert np.isnan(mine.data[[0, 2], 2]).all() and np.isnan(mine.data).sum() == 2
    np.testing.assert_array_equal(np.isnan(mine.data), np.isnan(theirs))
    np.testing.assert_allclose(mine.data, theirs, rtol=0, atol=1e-12)


def test_window_keeps_the_rows_inside(shared_data: Path) -> None:
    table = read_sto(shared_data / STORAGE_FILES[3])
    t0, t1 = float(table.time_s[3]), float(table.time_s[8])
    part = table.window(t0, t1)
    np.testing.assert_array_equal(part.time_s, table.time_s[3:9])
    np.testing.assert_array_equal(part.data, table.data[3:9])
    assert (part.labels, part.name, part.in_degrees) == (table.labels, table.name, True)


def test_storage_bad_input_names_file_cause_and_fix(tmp_path: Path) -> None:
    fix = "rerun the ID step"
    with pytest.raises(IDError, match=r"missing.sto: file does not exist. Fix: rerun the ID"):
        read_sto(tmp_path / "missing.sto", error_cls=IDError, fix=fix)
    with pytest.raises(OpenSimFileError, match="missing.sto: file does not exist. Fix: rerun"):
        read_sto(tmp_path / "missing.sto")
    cases = {
        "noend.sto": ("name\nversion=1\ntime\ta\n0\t1\n", "no 'endheader' line"),
        "nolabels.sto": ("name\nendheader\n\n", "no column labels"),
        "short.sto": ("x\nendheader\ntime\ta\tb\n0\t1\t2\n0.1\t3\n", "columns"),
        "narrow.sto": ("x\nendheader\ntime\ta\tb\n0\t1\n0.1\t3\n", "2 values a row"),
        "words.sto": ("x\nendheader\ntime\ta\n0\tabc\n", "abc"),
    }
    for name, (text, cause) in cases.items():
        path = tmp_path / name
        path.write_text(text)
        with pytest.raises(IDError, match=rf"{name}: not a readable .sto/.mot table .*{cause}"
                                          rf".*Fix: rerun the ID step"):
            read_sto(path, error_cls=IDError, fix=fix)
    binary = tmp_path / "binary.sto"
    binary.write_bytes(b"\x89PNG\r\n\x1a\n\xff\xfe")
    with pytest.raises(IDError, match="binary.sto: not a readable .sto/.mot table"):
        read_sto(binary, error_cls=IDError, fix=fix)
    folder = tmp_path / "folder.sto"
    folder.mkdir()
    with pytest.raises(IDError, match="folder.sto: is a folder, not a file"):
        read_sto(folder, error_cls=IDError, fix=fix)
    empty = tmp_path / "empty.sto"
    empty.write_text("x\nversion=1\ninDegrees=no\nendheader\ntime\ta\tb\n")
    table = read_sto(empty)
    assert table.labels == ("a", "b") and table.data.shape == (0, 2) and not table.in_degrees
    with pytest.raises(IDError, match="empty.sto: table has no rows. Fix: rerun the ID step"):
        read_sto(empty, error_cls=IDError, fix=fix, require_rows=True)
