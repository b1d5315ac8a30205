"""The one reader per OpenSim text format (pipeline/io/opensim_files.py) against OpenSim's own
readers on real files: ``.trc`` against ``TimeSeriesTableVec3``, ``.mot``/``.sto`` against
``TimeSeriesTable`` and ``Storage`` (CRLF line endings and ``inDegrees`` included)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

opensim = pytest.importorskip("opensim")

from pipeline.io.opensim_files import (  # noqa: E402
    OpenSimFileError,
    read_storage,
    read_table,
    read_trc,
)

TRC_FILES = [
    "opensim-models-gait2392/subject01_static.trc",
    "opensim-models-gait2392/subject01_walk1.trc",
    "opensim-core/models/gait10dof18musc_walk_CRLF_line_ending.trc",
    "opensim-core/rajagopal-walk/markers_walk.trc",
]
STORAGE_FILES = [
    "opensim-models-gait2392/subject01_walk1_grf.mot",
    "opensim-models-gait2392/OutputReference/subject01_walk1_ik.mot",
    "opensim-models-gait2392/OutputReference/ResultsInverseDynamics/InverseDynamicsOutput.sto",
    "opensim-core/models/gait10dof18musc_ik_CRLF_line_ending.mot",
    "opensim-core/emg-tracking/coordinates.mot",
    "opensim-core/rajagopal-walk/electromyography.sto",
]
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
    lf_table, crlf_table = read_storage(shared_data / STORAGE_FILES[3]), read_storage(mot)
    assert crlf_table.labels == lf_table.labels and crlf_table.in_degrees
    np.testing.assert_array_equal(crlf_table.values, lf_table.values)
    assert crlf_table.labels == tuple(opensim.TimeSeriesTable(str(mot)).getColumnLabels())
    assert read_table(mot).in_degrees


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


@pytest.mark.parametrize("name", STORAGE_FILES)
def test_storage_matches_opensim_readers(shared_data: Path, name: str) -> None:
    path = shared_data / name
    mine = read_storage(path)
    table = opensim.TimeSeriesTable(str(path))
    assert mine.labels == tuple(table.getColumnLabels())
    np.testing.assert_array_equal(mine.times_s, np.array(table.getIndependentColumn()))
    np.testing.assert_allclose(mine.values, np.array(table.getMatrix().to_numpy()),
                               rtol=0, atol=1e-12)
    storage = opensim.Storage(str(path))
    assert mine.in_degrees == bool(storage.isInDegrees())
    # the Storage-backed reader agrees with the text reader
    via_storage = read_table(path)
    assert via_storage.in_degrees == mine.in_degrees
    np.testing.assert_array_equal(via_storage.time_s, mine.times_s)
    if via_storage.labels == mine.labels:
        np.testing.assert_allclose(via_storage.data, mine.values, rtol=0, atol=1e-12)


def test_in_degrees_read_from_header(shared_data: Path) -> None:
    degrees = read_storage(shared_data / STORAGE_FILES[3])
    radians = read_storage(shared_data / "opensim-core/rajagopal-walk/coordinates.sto")
    assert degrees.in_degrees and not radians.in_degrees
    # degrees really are degrees: a hip flexion over 1 rad only makes sense in degrees
    assert np.abs(degrees.column("hip_flexion_r")).max() > 2 * np.pi
