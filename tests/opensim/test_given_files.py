"""Given OpenSim files (pipeline/osim/given.py): headers and columns checked with clear errors;
the files placed at their contract paths."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("opensim")

from pipeline.errors import ConfigError, IDError, IKError  # noqa: E402
from pipeline.io.opensim_files import StoTable, read_sto, write_sto  # noqa: E402
from pipeline.osim import given  # noqa: E402

TIME = np.arange(0.0, 0.5, 0.01)


def _sto(path: Path, labels: tuple[str, ...], data: np.ndarray, *, header: str) -> Path:
    body = "\n".join("\t".join(f"{v:.6f}" for v in (t, *row)) for t, row in zip(TIME, data,
                                                                               strict=True))
    sizes = f"version=1\nnRows={len(TIME)}\nnColumns={len(labels) + 1}\n"
    path.write_text(f"{header}{sizes}endheader\ntime\t" + "\t".join(labels) + "\n" + body + "\n")
    return path


def test_coordinates_need_their_units_and_dofs(tmp_path: Path) -> None:
    data = np.column_stack([10 * np.sin(TIME), 5 + 0 * TIME])
    labels = ("/jointset/knee/knee_angle/value", "ankle_angle")
    bare = _sto(tmp_path / "bare.mot", labels, data, header="Coordinates\n")
    with pytest.raises(IKError, match="inDegrees=yes or inDegrees=no"):
        given.place_coordinates(bare, tmp_path / "ik.mot", dofs=["knee_angle"])
    good = _sto(tmp_path / "good.sto", labels, data, header="Coordinates\ninDegrees=yes\n")
    with pytest.raises(IKError, match="no coordinate column 'hip_angle'"):
        given.place_coordinates(good, tmp_path / "ik.mot", dofs=["hip_angle"])
    assert not (tmp_path / "ik.mot").exists()
    given.place_coordinates(good, tmp_path / "ik.mot", dofs=["knee_angle", "ankle_angle"])
    placed = read_sto(tmp_path / "ik.mot")
    assert placed.labels == ("knee_angle", "ankle_angle") and placed.in_degrees
    np.testing.assert_allclose(placed.data, data, atol=1e-6)


def test_moments_envelopes_and_loads_are_checked(tmp_path: Path) -> None:
    ident = _sto(tmp_path / "id.sto", ("knee_angle_moment",), np.sin(TIME)[:, None],
                 header="ID\ninDegrees=no\n")
    with pytest.raises(IDError, match="no column ankle_angle_moment"):
        given.place_moments(ident, tmp_path / "out_id.sto", dofs=["ankle_angle"])
    given.place_moments(ident, tmp_path / "out_id.sto", dofs=["knee_angle"])
    assert (tmp_path / "out_id.sto").read_bytes() == ident.read_bytes()

    loud = tmp_path / "emg.sto"
    write_sto(loud, StoTable(TIME, ("soleus", "tibant"), np.column_stack(
        [np.linspace(0.0, 1.3, len(TIME)), 0.2 + 0 * TIME])))
    with pytest.raises(ConfigError, match=r"not \[0, 1\].*emg.input: raw"):
        given.place_envelopes(loud, tmp_path / "out_emg.sto", emg_names=["soleus"])
    with pytest.raises(ConfigError, match="no EMG column 'soleu'"):
        given.place_envelopes(loud, tmp_path / "out_emg.sto", emg_names=["soleu"])
    given.place_envelopes(loud, tmp_path / "out_emg.sto", emg_names=["tibant"])
    assert read_sto(tmp_path / "out_emg.sto").labels == ("tibant",)

    columns = tuple(f"ground_force_r_{k}{a}" for k in "vp" for a in "xyz")
    grf = _sto(tmp_path / "grf.mot", columns, np.zeros((len(TIME), 6)),
               header="grf\ninDegrees=no\n")
    xml = tmp_path / "loads.xml"
    xml.write_text(
        "<OpenSimDocument Version=\"30000\"><ExternalLoads name=\"x\"><objects>"
        "<ExternalForce name=\"r\"><applied_to_body>calcn_r</applied_to_body>"
        "<force_identifier>ground_force_r_v</force_identifier>"
        "<point_identifier>ground_force_r_p</point_identifier>"
        "<torque_identifier>ground_torque_r_</torque_identifier></ExternalForce>"
        "</objects><datafile>elsewhere.mot</datafile></ExternalLoads></OpenSimDocument>")
    with pytest.raises(IDError, match="ground_torque_r_x"):
        given.place_grf(grf, xml, mot_out=tmp_path / "r" / "grf.mot",
                        xml_out=tmp_path / "r" / "external_loads.xml")
    assert not (tmp_path / "r" / "grf.mot").exists()


def test_rajagopal_state_path_coordinates_are_placed(shared_data: Path, tmp_path: Path) -> None:
    src = shared_data / "opensim-core" / "rajagopal-walk" / "coordinates.sto"
    given.place_coordinates(src, tmp_path / "ik.mot", dofs=["knee_angle_r", "ankle_angle_r"])
    placed = read_sto(tmp_path / "ik.mot")
    assert "ankle_angle_r" in placed.labels and not placed.in_degrees
    assert not any(label.startswith("/") for label in placed.labels)
    assert placed.time_s[0] == pytest.approx(0.45)
