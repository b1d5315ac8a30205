"""The lab's marker names: mapping, subject prefixes, unmapped markers ignored once at INFO."""

from __future__ import annotations

import logging

import pytest

from pipeline.errors import C3DError
from pipeline.signals.marker_names import select_markers, strip_prefix


def test_prefix_and_mapping(caplog):
    labels = ("Pat:RASI", "Pat:LASI", "Pat:RKNE", "Pat:C7")
    assert strip_prefix("Pat:RASI") == "RASI" and strip_prefix("RASI") == "RASI"
    with caplog.at_level(logging.INFO, logger="pipeline.signals.marker_names"):
        chosen = select_markers(labels, names={"RASI": "R.ASIS", "LASI": "L.ASIS",
                                               "RKNE": "R.Knee.Lat", "RHEE": "R.Heel"},
                                strip_marker_prefix=True, file="t.c3d")
    assert chosen.indices == (0, 1, 2)
    assert chosen.names == ("R.ASIS", "L.ASIS", "R.Knee.Lat")
    assert chosen.ignored == ("C7",)
    messages = [r.getMessage() for r in caplog.records]
    assert any("C7" in m and "ignored" in m for m in messages)
    assert any("RHEE" in m and "absent" in m for m in messages)


def test_no_mapping_keeps_every_marker():
    chosen = select_markers(("A:X", "A:Y"), names={}, strip_marker_prefix=True)
    assert chosen.names == ("X", "Y") and chosen.ignored == ()


def test_two_labels_on_one_model_marker_is_an_error():
    with pytest.raises(C3DError, match="'RASI' and 'RASIS' both map"):
        select_markers(("RASI", "RASIS"), names={"RASI": "R.ASIS", "RASIS": "R.ASIS"},
                       file="t.c3d")


def test_a_mapping_matching_nothing_names_the_labels():
    with pytest.raises(C3DError, match="Pat:RASI.*strip_marker_prefix"):
        select_markers(("Pat:RASI",), names={"RASI": "R.ASIS"}, file="t.c3d")
