"""Study-folder contract: templates validate; each kind of bad input is refused clearly."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.errors import ConfigError
from pipeline.study import deep_merge, load_study, read_sheet


def _edit_config(study: Path, patch: dict) -> None:
    path = study / "config.yaml"
    path.write_text(yaml.safe_dump(deep_merge(yaml.safe_load(path.read_text()), patch)))


def _edit_sheet(study: Path, name: str, old: str, new: str) -> None:
    path = study / name
    text = path.read_text()
    assert old in text, f"{old!r} not in {name}"
    path.write_text(text.replace(old, new, 1))


def test_template_study_validates(template_study: Path) -> None:
    study = load_study(template_study)
    assert study.subject_names == ["s01"]
    assert study.subject("s01")["mass_kg"] == pytest.approx(72.5)
    assert [r["trial"] for r in study.trials_of("s01", role="calibration")] == ["flex1"]
    assert study.trial("s01", "flex2")["end_s"] == pytest.approx(8.0)
    assert study.static_trial("s01")["trial"] == "static"
    # the study's values override the defaults, the rest comes from the packaged defaults
    assert study.config["calibration"]["tendon"] == "elastic"
    assert study.config["emg"]["bandpass_hz"] == [30.0, 300.0]
    assert study.model_setup("s01")["dofs"] == ["shoulder_elev", "elbow_flex"]


def test_initial_value_of_a_fixed_parameter_is_not_checked(template_study: Path) -> None:
    """damping is not calibrated by default: its initial value outside the bounds is harmless."""
    _edit_config(template_study, {"calibration": {"initial": {"damping": 5.0}}})
    load_study(template_study, check_data=True)


def test_read_sheet_rows(tmp_path: Path) -> None:
    """Comments and blank lines are skipped (yet counted in ``_row``), cells and header names
    are stripped, empty and missing cells are "" (never NaN), quotes may hold a tab."""
    path = tmp_path / "trials.tsv"
    path.write_text("# a comment\n"
                    " subject \ttrial\tfile\tkind\trole\tstart_s\n"
                    "\n"
                    "s01\t static \tc3d/s01/static.c3d\tstatic\tnone\t\n"
                    "# another comment\n"
                    "   \n"
                    "s01\tflex1\tc3d/s01/flex1.c3d\tdynamic\tcalibration\t 0.5 \n"
                    "s01\tNA\t\"c3d/a\tb.c3d\"\tdynamic\n", encoding="utf-8")
    assert read_sheet(path) == [
        {"subject": "s01", "trial": "static", "file": "c3d/s01/static.c3d", "kind": "static",
         "role": "none", "start_s": "", "_row": 4},
        {"subject": "s01", "trial": "flex1", "file": "c3d/s01/flex1.c3d", "kind": "dynamic",
         "role": "calibration", "start_s": "0.5", "_row": 7},
        {"subject": "s01", "trial": "NA", "file": "c3d/a\tb.c3d", "kind": "dynamic",
         "role": "", "start_s": "", "_row": 8},
    ]


def test_read_sheet_refuses_a_row_longer_than_the_header(tmp_path: Path) -> None:
    path = tmp_path / "trials.tsv"
    path.write_text("# comment\nsubject\ttrial\tfile\tkind\trole\n\n"
                    "s01\tflex1\tc3d/s01/flex1.c3d\tdynamic\tcalibration\textra\n")
    with pytest.raises(ConfigError) as err:
        read_sheet(path)
    assert str(err.value) == (
        f"{path}: cannot be parsed as a tab-separated sheet (Expected 5 fields in line 4, "
        "saw 6). Fix: separate columns with tabs, one row per line")


@pytest.mark.parametrize(("content", "cause"), [
    (b"subject\ttrial\tfile\tkind\trole\ns01\t\xff\tf.c3d\tdynamic\tnone\n",
     "can't decode byte 0xff"),
    (b'subject\ttrial\tfile\tkind\trole\ns01\t"flex1\tf.c3d\tdynamic\tnone\n',
     "a quoted cell in line 2 has no closing quote"),
])
def test_read_sheet_refuses_unparsable_text(tmp_path: Path, content: bytes, cause: str) -> None:
    path = tmp_path / "trials.tsv"
    path.write_bytes(content)
    with pytest.raises(ConfigError, match="cannot be parsed as a tab-separated sheet") as err:
        read_sheet(path)
    assert cause in str(err.value) and "Fix: separate columns with tabs" in str(err.value)


@pytest.mark.parametrize("content", ["", "# only a comment\n", "subject\ttrial\n"])
def test_read_sheet_names_missing_columns(tmp_path: Path, content: str) -> None:
    path = tmp_path / "trials.tsv"
    path.write_text(content)
    with pytest.raises(ConfigError, match=r"missing column\(s\) .*file, kind, role\. Fix: the "
                       "header must contain subject, trial, file, kind, role"):
        read_sheet(path)


def test_deep_merge_does_not_mutate() -> None:
    base = {"a": {"b": 1, "c": 2}, "d": [1]}
    merged = deep_merge(base, {"a": {"b": 5}, "d": [2]})
    assert merged == {"a": {"b": 5, "c": 2}, "d": [2]}
    assert base == {"a": {"b": 1, "c": 2}, "d": [1]}


# (id, how to break the study, fragments the message must contain)
BAD_CASES = [
    ("missing_mass", lambda s: _edit_sheet(s, "subjects.tsv", "\t72.5\t", "\t\t"),
     ["subjects.tsv row", "mass_kg is missing", "Fix:"]),
    ("mass_not_number", lambda s: _edit_sheet(s, "subjects.tsv", "\t72.5\t", "\theavy\t"),
     ["subjects.tsv row", "mass_kg 'heavy' is not a number"]),
    ("unknown_kind", lambda s: _edit_sheet(s, "trials.tsv", "\tdynamic\tcalibration",
                                          "\twalking\tcalibration"),
     ["trials.tsv row 7", "kind", "walking"]),
    ("duplicate_trial", lambda s: _edit_sheet(s, "trials.tsv", "s01\tflex2\t", "s01\tflex1\t"),
     ["trials.tsv row 8", "duplicate subject/trial s01 / flex1", "also row 7"]),
    ("missing_file", lambda s: (s / "c3d/s01/flex2.c3d").unlink(),
     ["trials.tsv row 8: file c3d/s01/flex2.c3d does not exist"]),
    ("unknown_subject", lambda s: _edit_sheet(s, "trials.tsv", "s01\tflex2", "s02\tflex2"),
     ["trials.tsv row 8", "subject 's02' is not in subjects.tsv"]),
    ("no_static", lambda s: _edit_sheet(s, "trials.tsv", "\tstatic\tnone", "\tmvc\tnone"),
     ["subject 's01' has no static trial"]),
    ("cutoff_above_nyquist", lambda s: _edit_config(s, {"markers": {"cutoff_hz": 60.0}}),
     ["markers.cutoff_hz", "Nyquist", "50 Hz", "Fix: lower the cut-off"]),
    ("emg_mapped_twice", lambda s: _edit_config(
        s, {"models": {"demo-arm": {"emg_channels": {"EMG9": "biceps"}}}}),
     ["emg_channels", "'biceps' is mapped twice", "'EMG3'", "'EMG9'"]),
    ("unknown_calibration_parameter", lambda s: _edit_config(
        s, {"calibration": {"parameters": ["c1", "stiffness"]}}),
     ["calibration.parameters.1", "'stiffness' is not one of"]),
    ("bound_min_above_max", lambda s: _edit_config(
        s, {"calibration": {"bounds": {"strength": {"lower": 3.0, "upper": 1.0}}}}),
     ["calibration.bounds.strength", "lower 3.0 is above upper 1.0", "swap"]),
    ("initial_outside_bounds", lambda s: _edit_config(
        s, {"calibration": {"initial": {"c1": -0.99}}}),
     ["calibration.initial.c1", "outside the bounds"]),
    ("unknown_tendon", lambda s: _edit_config(s, {"calibration": {"tendon": "rigid"}}),
     ["calibration.tendon", "'rigid' is not one of"]),
    ("excitation_unknown_emg", lambda s: _edit_config(
        s, {"models": {"demo-arm": {"excitations": {"brachialis": {"brachi": 1.0}}}}}),
     ["excitations.brachialis", "EMG 'brachi' is not defined"]),
    ("model_without_setup", lambda s: _edit_sheet(s, "subjects.tsv", "\tdemo-arm", "\tdemo-leg"),
     ["subjects.tsv row 4", "model 'demo-leg' has no entry under models:"]),
    ("unknown_top_key", lambda s: _edit_config(s, {"makers": {"cutoff_hz": 6}}),
     ["(top level)", "'makers' was unexpected"]),
    ("yaml_duplicate_key", lambda s: (s / "config.yaml").write_text(
        "markers:\n  cutoff_hz: 6\n  cutoff_hz: 8\n"),
     ["config.yaml", "duplicate key 'cutoff_hz'"]),
    ("yaml_not_utf8", lambda s: (s / "config.yaml").write_bytes(
        "markers:\n  cutoff_hz: 6 # \u00b0\n".encode("latin-1")),
     ["config.yaml", "not UTF-8 text", "save the file as UTF-8"]),
    ("window_reversed", lambda s: _edit_sheet(s, "trials.tsv", "\t0.5\t8.0", "\t8.0\t0.5"),
     ["trials.tsv row 8", "end_s 0.5 is not after start_s 8.0"]),
    ("static_with_role", lambda s: _edit_sheet(s, "trials.tsv", "\tstatic\tnone",
                                              "\tstatic\tcalibration"),
     ["trials.tsv row 5", "a static trial cannot have role calibration"]),
    ("unrecorded_not_mapped", lambda s: _edit_config(
        s, {"models": {"demo-arm": {"unrecorded": ["anconeus"]}}}),
     ["unrecorded", "'anconeus' is not an MTU listed under excitations"]),
    ("strength_group_unknown_mtu", lambda s: _edit_config(
        s, {"calibration": {"groups": {"flexors": ["biceps_long", "bicep_short"]}}}),
     ["calibration.groups.flexors", "['bicep_short'] is not an MTU of any model"]),
    ("bandpass_reversed", lambda s: _edit_config(s, {"emg": {"bandpass_hz": [300.0, 30.0]}}),
     ["emg.bandpass_hz", "is not below high"]),
    ("emg_lowpass_above_nyquist", lambda s: _edit_config(s, {"emg": {"lowpass_hz": 600.0}}),
     ["emg.lowpass_hz", "Nyquist frequency (500 Hz)", "c3d/s01/mvc1.c3d (trials.tsv row 6)"]),
    ("id_cutoff_above_ik_rate", lambda s: _edit_config(s, {"opensim": {"id": {"cutoff_hz": 55}}}),
     ["opensim.id.cutoff_hz", "IK (marker-rate)", "50 Hz"]),
    ("emg_label_not_in_c3d", lambda s: _edit_sheet(s, "config.yaml", '"EMG1": delt_ant',
                                                    '"EMG_1": delt_ant'),
     ["emg_channels: channel 'EMG_1' is not an analog label of c3d/s01/mvc1.c3d",
      "did you mean 'EMG1'?", "EMG1, EMG2, EMG3, EMG4"]),
    ("start_beyond_end_of_recording", lambda s: _edit_sheet(s, "trials.tsv", "	0.5	8.0",
                                                             "	12.0	14.0"),
     ["trials.tsv row 8: start_s 12 s lies outside the recording of c3d/s01/flex2.c3d",
      "0 to 8.99 s"]),
    ("window_too_short", lambda s: _edit_sheet(s, "trials.tsv", "	0.5	8.0", "	0.5	0.54"),
     ["trials.tsv row 8", "5 marker frame(s), fewer than the 20 needed to calibrate"]),
    ("zero_span_bound", lambda s: _edit_config(
        s, {"calibration": {"bounds": {"strength": {"lower": 1.0, "upper": 1.0}}}}),
     ["calibration.bounds.strength", "zero span", "remove strength from"]),
    ("dof_not_in_model", lambda s: _edit_config(
        s, {"models": {"demo-arm": {"dofs": ["shoulder_elev", "elbow_flexion"]}}}),
     ["models.demo-arm.dofs: 'elbow_flexion' is not a coordinate", "did you mean 'elbow_flex'"]),
    ("mtu_not_in_model", lambda s: _edit_config(
        s, {"models": {"demo-arm": {"excitations": {"biceps_lng": {"biceps": 1.0}}}}}),
     ["excitations: 'biceps_lng' is not a muscle", "did you mean 'biceps_long'"]),
    ("dof_no_mtu_crosses", lambda s: (
        _edit_sheet(s, "subjects.tsv", "\tdemo-arm", "\tdemo-leg"),
        _edit_config(s, {"models": {"demo-leg": {
            "emg_channels": {"EMG1": "rf"}, "excitations": {"rect_fem_r": {"rf": 1.0}},
            "dofs": ["knee_angle_r", "ankle_angle_r"]}}})),
     ["models.demo-leg.dofs: no MTU under excitations crosses 'ankle_angle_r'"]),
    ("partial_calibration_with_synergy_hybrid", lambda s: _edit_config(
        s, {"calibration": {"methods": ["gradient", "synergy_hybrid"]},
            "models": {"demo-arm": {"tracked_dofs": ["elbow_flex"]}}}),
     ["tracked_dofs are not supported by the synergy_hybrid method",
      "remove synergy_hybrid from calibration.methods"]),
    ("marker_set_missing", lambda s: _edit_config(
        s, {"opensim": {"scale": {"marker_set": "markers/lab.xml"}}}),
     ["opensim.scale.marker_set", "'markers/lab.xml' not found"]),
    ("measurement_set_not_xml", lambda s: (
        (s / "meas.xml").write_text("not xml <"),
        _edit_config(s, {"opensim": {"scale": {"measurement_set": "meas.xml"}}})),
     ["opensim.scale.measurement_set", "meas.xml cannot be parsed as XML"]),
    ("model_file_not_osim_xml", lambda s: (
        (s / "my.osim").write_text("<OpenSimDocument><Model></Model></OpenSimDocument>"),
        _edit_sheet(s, "subjects.tsv", "	demo-arm", "	my.osim"),
        _edit_config(s, {"models": {"my.osim": {"dofs": ["elbow_flex"]}}})),
     ["model file my.osim has no coordinates"]),
]


@pytest.mark.parametrize(("breaker", "fragments"), [c[1:] for c in BAD_CASES],
                         ids=[c[0] for c in BAD_CASES])
def test_bad_study_is_refused(template_study: Path, breaker, fragments: list[str]) -> None:
    breaker(template_study)
    with pytest.raises(ConfigError) as info:
        load_study(template_study, check_data=True)
    message = str(info.value)
    for fragment in fragments:
        assert fragment in message, message
    assert "Fix:" in message


def test_cli_reports_without_traceback(template_study: Path) -> None:
    (template_study / "c3d/s01/flex2.c3d").unlink()
    result = subprocess.run([sys.executable, "-m", "pipeline", "validate-study",
                             str(template_study)], capture_output=True, text=True)
    assert result.returncode == 2
    assert "trials.tsv row 8: file c3d/s01/flex2.c3d does not exist" in result.stderr
    assert "Traceback" not in result.stderr


def test_new_study_never_overwrites(template_study: Path) -> None:
    from pipeline.cli.study import new_study

    before = (template_study / "config.yaml").read_text()
    (template_study / "config.yaml").write_text(before + "\n# my edit\n")
    with pytest.raises(ConfigError, match="already exists"):
        new_study(template_study)
    assert (template_study / "config.yaml").read_text().endswith("# my edit\n")


def test_help_lists_subcommands() -> None:
    result = subprocess.run([sys.executable, "-m", "pipeline", "--help"], capture_output=True,
                            text=True, check=True)
    for command in ("new-study", "validate-study"):
        assert command in result.stdout


def test_a_config_that_validated_is_remembered_and_a_bad_one_never(template_study: Path,
                                                                    tmp_path: Path) -> None:
    """The schema check is cached by content: a job that loads a config already found valid does
    not import jsonschema; any change (a bad value here) is checked again and reported."""
    import os

    cache = tmp_path / "cache"
    probe = ("import sys; from pipeline.study import load_config; "
             f"load_config(__import__('pathlib').Path({str(template_study)!r})); "
             "print('jsonschema' in sys.modules)")

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              env={**os.environ, "PIPELINE_CACHE_DIR": str(cache)})

    assert run().stdout.split() == ["True"]  # checked, then remembered
    assert len(list((cache / "valid-configs").iterdir())) == 1
    assert run().stdout.split() == ["False"]  # remembered: no schema check
    _edit_config(template_study, {"calibration": {"tendon": "rubber"}})
    for _ in range(2):
        result = run()
        assert result.returncode != 0
        assert "calibration.tendon" in result.stderr and "rubber" in result.stderr
    assert len(list((cache / "valid-configs").iterdir())) == 1


def test_the_validation_cache_is_keyed_by_the_installed_jsonschema(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """The key names the installed jsonschema by its package file's path, modification time and
    size (os.stat is the oracle), so an upgrade validates again, without importlib.metadata."""
    import os

    import jsonschema

    from pipeline import study_checks

    stat = os.stat(jsonschema.__file__)
    assert study_checks._installed_jsonschema() == (
        f"{jsonschema.__file__}:{stat.st_mtime_ns}:{stat.st_size}")
    monkeypatch.setenv("PIPELINE_CACHE_DIR", str(tmp_path))
    here = study_checks._validation_stamp({"a": 1}, {"type": "object"})
    assert here == study_checks._validation_stamp({"a": 1}, {"type": "object"})
    monkeypatch.setattr(study_checks, "_installed_jsonschema", lambda: "/elsewhere:1:2")
    upgraded = study_checks._validation_stamp({"a": 1}, {"type": "object"})
    assert here is not None and upgraded is not None and here != upgraded
    monkeypatch.setattr(study_checks, "_installed_jsonschema", lambda: None)
    assert study_checks._validation_stamp({"a": 1}, {"type": "object"}) is None


def test_sheets_that_validated_are_remembered_and_a_bad_row_never(template_study: Path,
                                                                  tmp_path: Path) -> None:
    """Like the config, the sheets' row check is cached by content: a second load of the same
    study imports no jsonschema at all; a bad row is checked and reported every time."""
    import os

    cache = tmp_path / "cache"
    probe = ("import sys; from pipeline.study import load_study; "
             f"load_study({str(template_study)!r}); print('jsonschema' in sys.modules)")

    def run() -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                              env={**os.environ, "PIPELINE_CACHE_DIR": str(cache)})

    assert run().stdout.split() == ["True"]
    assert len(list((cache / "valid-configs").iterdir())) == 3  # config, subjects, trials
    assert run().stdout.split() == ["False"]
    trials = template_study / "trials.tsv"
    trials.write_text(trials.read_text().replace("\tdynamic\tvalidation\t", "\tdynamic\tmaybe\t"))
    for _ in range(2):
        result = run()
        assert result.returncode != 0
        assert "role" in result.stderr and "maybe" in result.stderr
    assert len(list((cache / "valid-configs").iterdir())) == 3


def test_a_second_study_check_decodes_no_c3d_and_loads_no_opensim(template_study: Path,
                                                                  tmp_path: Path) -> None:
    """The data checks (the workflow's, before any job) remember each C3D file's summary (by
    path, modification time and size): the second check of the same study decodes no file (ezc3d
    is never imported) and, for the built-in models, never imports OpenSim; a changed file is
    decoded again."""
    import os

    cache = tmp_path / "cache"
    probe = ("import sys; from pipeline.study import load_study; "
             f"load_study({str(template_study)!r}, check_data=True); "
             "print('ezc3d' in sys.modules, 'opensim' in sys.modules)")

    def run() -> list[str]:
        result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                                env={**os.environ, "PIPELINE_CACHE_DIR": str(cache)})
        assert result.returncode == 0, result.stderr
        return result.stdout.split()

    from pipeline.study import read_sheet

    n_files = len({row["file"] for row in read_sheet(template_study / "trials.tsv")})
    assert run() == ["True", "False"]
    assert len(list((cache / "c3d-summaries").iterdir())) == n_files
    assert run() == ["False", "False"]
    c3d = next((template_study).rglob("*.c3d"))
    stat = c3d.stat()
    os.utime(c3d, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert run() == ["True", "False"]  # that file is decoded again
    assert len(list((cache / "c3d-summaries").iterdir())) == n_files + 1
