"""Cycles with roles: one walk, two rows of trials.tsv selecting its cycles by number.

MOtoNMS Control1 Walking1 has two plate contacts (right foot on plate 1, left on plate 2). The
row with ``cycles: 1`` calibrates on the first contact, the row with ``cycles: 2-`` validates on
the second; their windows are the plates' contact times (vertical force above the threshold).
"""

from __future__ import annotations

import json
import subprocess
import sys

import ezc3d
import numpy as np
import pytest
from project_paths import PROJECT_ROOT

from pipeline.signals.events import parse_cycles, select_cycles


def test_parse_and_select():
    assert parse_cycles("1-2, 4, 6-") == [(1, 2), (4, 4), (6, None)]
    windows = [[3.0, 4.0], [1.0, 2.0], [5.0, 6.0]]
    assert select_cycles(windows, "2-") == ([[3.0, 4.0], [5.0, 6.0]], [2, 3])
    with pytest.raises(Exception, match="selects none"):
        select_cycles(windows, "4")


def _contacts(path, threshold_n=20.0):
    """Contact (first, last) times per plate straight from the C3D's Fz channels."""
    c3d = ezc3d.c3d(str(path))
    labels = c3d["parameters"]["ANALOG"]["LABELS"]["value"]
    rate = float(c3d["parameters"]["ANALOG"]["RATE"]["value"][0])
    analogs = c3d["data"]["analogs"][0]
    spans = []
    for name in ("Fz1", "Fz2"):
        fz = np.abs(analogs[labels.index(name)])
        on = np.flatnonzero(fz > threshold_n)
        spans.append((on[0] / rate, on[-1] / rate))
    return sorted(spans)


def test_cycle_rows_get_their_plate_contacts(shared_data, tmp_path):
    walk = shared_data / "real-sessions" / "motonms-unipd-control1" / "Walking1.c3d"
    static = walk.with_name("Static1.c3d")
    study = tmp_path / "study"
    study.mkdir()
    (study / "config.yaml").write_text(
        'lab_frame: {x: "+z", y: "+y", z: "-x"}\nevents: {source: grf}\n'
        "force_plates: {foot_markers: {left: [LCA], right: [RCA]}}\n"
        "models:\n  demo-leg:\n    force_plates: true\n    emg_channels:\n"
        '      "Right Soleus": soleus\n    excitations: {soleus_r: {soleus: 1}}\n'
        "    dofs: [ankle_angle_r]\n")
    (study / "subjects.tsv").write_text("subject\tmass_kg\theight_m\tmodel\n"
                                        "c1\t84\t1.8\tdemo-leg\n")
    (study / "trials.tsv").write_text(
        "subject\ttrial\tfile\tkind\trole\tcycles\n"
        f"c1\tstatic\t{static}\tstatic\tnone\t\n"
        f"c1\twalk1a\t{walk}\tdynamic\tcalibration\t1\n"
        f"c1\twalk1b\t{walk}\tdynamic\tvalidation\t2-\n")
    windows = {}
    for trial in ("walk1a", "walk1b"):
        out = tmp_path / f"{trial}.json"
        result = subprocess.run([sys.executable, "-m", "pipeline", "events", "--study",
                                 str(study), "--subject", "c1", "--trial", trial, "--out",
                                 str(out)], cwd=PROJECT_ROOT, capture_output=True, text=True,
                                timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
        windows[trial] = json.loads(out.read_text())
    contacts = _contacts(walk)
    assert windows["walk1a"]["cycle_numbers"] == [1]
    assert windows["walk1b"]["cycle_numbers"] == [2]
    # Filtered plate forces cross the threshold within two analog samples of the raw ones.
    np.testing.assert_allclose(windows["walk1a"]["windows"][0], contacts[0], atol=0.01)
    np.testing.assert_allclose(windows["walk1b"]["windows"][0], contacts[1], atol=0.01)
