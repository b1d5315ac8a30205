"""EMG onsets against the movement cycle in the report: the EMG figure marks them on the cycle
they fall in, and the EMG table gives them in s and as % of the cycle (numbered as events.json
numbers the trial's cycles). Synthetic envelope with a known onset and offset."""

from __future__ import annotations

import numpy as np

from pipeline.plots.data import Signals
from pipeline.plots.gait import GaitTrial, emg_figure
from pipeline.plots.style import annotations_of
from pipeline.report import emg_cycle_timing
from pipeline.report.html import emg_timing_table


def _trial() -> GaitTrial:
    t = np.linspace(0.0, 3.0, 301)
    envelope = np.where((t >= 1.3) & (t < 1.75), 0.8, 0.02)
    emg = Signals(time_s=t, names=("soleus_r",), values=envelope[None, :])
    return GaitTrial("walk1", "calibration", ((0.0, 1.0), (1.0, 2.0), (2.0, 3.0)),
                     ("r", "r", "r"), "c3d", emg=emg, emg_onsets_s={"soleus_r": [1.3]},
                     emg_offsets_s={"soleus_r": [1.75]})


def test_emg_figure_marks_onset_and_offset_in_their_cycle() -> None:
    notes = annotations_of(emg_figure([_trial()]))
    assert notes["emg/soleus_r/walk1/1/onsets_percent"] == [30.0]
    assert notes["emg/soleus_r/walk1/1/offsets_percent"] == [75.0]
    assert notes["emg/soleus_r/walk1/0/onsets_percent"] == []
    assert notes["emg/soleus_r/walk1/2/offsets_percent"] == []


def test_report_table_gives_percent_of_the_selected_cycle() -> None:
    quality = {"channels": {"soleus_r": {"snr": 40.0, "flags": [], "onsets_s": [1.3, 3.5],
                                         "offsets_s": [1.75]},
                            "tibant_r": {"snr": 1.2, "flags": ["dead"], "onsets_s": [],
                                         "offsets_s": []}},
               "dropped": ["tibant_r"]}
    # The trial selects cycles 3-4 of the walk (trials.tsv cycles "3-"), as events.json says.
    events = {"windows": [[0.4, 1.0], [1.0, 2.0]], "sides": ["r", "r"], "cycle_numbers": [3, 4]}
    rows = emg_cycle_timing("walk1", quality, events)
    soleus = next(r for r in rows if r["channel"] == "soleus_r")
    assert soleus["onsets"] == [{"time_s": 1.3, "cycle": 4, "percent": 30.0},
                                {"time_s": 3.5, "cycle": None, "percent": None}]
    assert soleus["offsets"] == [{"time_s": 1.75, "cycle": 4, "percent": 75.0}]
    html = emg_timing_table(rows)
    assert "1.300 s (30 % of cycle 4), 3.500 s (no cycle)" in html
    assert "1.750 s (75 % of cycle 4)" in html
    assert "dead, dropped" in html


def test_envelope_ending_within_a_sample_of_the_cycle_is_drawn() -> None:
    """A 200 Hz envelope ends at 3.190 s, the plate contact (1 kHz) at 3.1995 s: the cycle is
    drawn (np.interp holds the last sample for the last 9.5 ms); one further sample is not."""
    from pipeline.plots.gait import cycle_curves

    t = np.arange(0, 640) / 200.0
    assert len(cycle_curves(np.ones_like(t), t, [(0.0, 3.1995)])) == 1
    assert cycle_curves(np.ones_like(t), t, [(0.0, 3.2 + 0.006)]) == []
