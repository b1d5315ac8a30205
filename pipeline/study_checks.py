"""Cross-checks of a study that a JSON schema cannot express.

Each function returns a list of messages (empty when all is well); each message names the file,
the row or key, the cause and the fix.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

from pipeline import resources
from pipeline.plan import source_problems

log = logging.getLogger(__name__)

_NUMERIC = {"mass_kg", "height_m", "start_s", "end_s"}

#: A sheet as :func:`pipeline.study.read_sheet` returns it: one dict per row (stripped string
#: cells keyed by column, plus ``_row``, the line number).
Sheet = list[dict[str, Any]]


#: PyYAML's libyaml parser where the wheel has it (several times faster than the pure-Python one;
#: every CLI start reads the default config, the study's config and the schema).
SAFE_LOADER: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load_schema(name: str) -> dict[str, Any]:
    """One of the package's JSON schemas (written in YAML)."""
    return yaml.load(resources.schema(name).read_text(encoding="utf-8"), Loader=SAFE_LOADER)


def _row_record(row: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Typed record of a sheet row, plus problems converting numeric cells."""
    record: dict[str, Any] = {}
    bad: list[str] = []
    for key, value in row.items():
        if key == "_row" or value == "":
            continue
        if key in _NUMERIC:
            try:
                record[str(key)] = float(value)
            except ValueError:
                bad.append(f"{key} {value!r} is not a number")
        else:
            record[str(key)] = value
    return record, bad


def schema_problems_once(data: Any, schema: dict[str, Any],
                         check: Callable[[], list[str]]) -> list[str]:
    """``check()``'s problems with ``data`` against ``schema``, skipped when this very data
    already passed this very schema: validation is a pure function of the two and of the
    installed jsonschema, and remembering a pass spares each workflow job jsonschema's import
    (about 0.1 s). Failures are never remembered."""
    stamp = _validation_stamp(data, schema)
    if stamp is not None and stamp.exists():
        return []
    problems = check()
    if not problems:
        _remember(stamp)
    return problems


def _installed_jsonschema() -> str | None:
    """Which jsonschema is installed: its package file, with that file's modification time and
    size (an upgrade rewrites it; :func:`pipeline.fileio.file_stamp`). A stat instead of
    ``importlib.metadata.version``, whose import alone costs a small workflow job ~25 ms. None
    when jsonschema is not installed."""
    import importlib.util

    from pipeline.fileio import file_stamp

    spec = importlib.util.find_spec("jsonschema")
    if spec is None or spec.origin is None:
        return None
    return file_stamp(spec.origin)


def _validation_stamp(data: Any, schema: dict[str, Any]) -> Path | None:
    """Cache file that marks ``data`` as valid against ``schema`` with the installed jsonschema;
    None when the data cannot be keyed."""
    from pipeline.fileio import cache_entry

    installed = _installed_jsonschema()
    if installed is None:
        return None
    try:
        text = json.dumps([data, schema, installed], sort_keys=True)
    except (TypeError, ValueError):  # e.g. a YAML date: validate
        return None
    return cache_entry("valid-configs", text)


def _remember(stamp: Path | None) -> None:
    """Create the stamp; a cache that cannot be written only costs the next job the check."""
    if stamp is None:
        return
    try:
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()
    except OSError as exc:
        log.debug("config validation not cached (%s)", exc)


def _check_rows(path: Path, sheet: Sheet, schema_name: str) -> list[str]:
    schema = load_schema(schema_name)
    return schema_problems_once(sheet, schema, lambda: _row_problems(path, sheet, schema))


def _row_problems(path: Path, sheet: Sheet, schema: dict[str, Any]) -> list[str]:
    import jsonschema  # imported here, not at start-up (see pipeline.study._schema_errors)

    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for row in sheet:
        record, bad = _row_record(row)
        where = f"{path.name} row {row['_row']}"
        problems += [f"{where}: {b}. Fix: write a plain number in SI units" for b in bad]
        for err in validator.iter_errors(record):
            if err.validator == "required":
                missing = err.message.split("'")[1]
                problems.append(f"{where}: {missing} is missing. Fix: fill in the {missing} "
                                "column")
            else:
                column = ".".join(str(p) for p in err.absolute_path)
                problems.append(f"{where}: {column} {err.message}. Fix: see the allowed values "
                                f"in the comments of the {path.name} template "
                                "(python -m pipeline new-study DIR writes one)")
    return problems


def _duplicates(path: Path, sheet: Sheet, keys: list[str]) -> list[str]:
    """One message per row whose ``keys`` repeat an earlier row's, naming that first row."""
    problems = []
    first_row: dict[tuple[str, ...], Any] = {}
    for row in sheet:
        key = tuple(row[k] for k in keys)
        if key not in first_row:
            first_row[key] = row["_row"]
            continue
        first = first_row[key]
        ident = " / ".join(str(row[k]) for k in keys)
        problems.append(f"{path.name} row {row['_row']}: duplicate {'/'.join(keys)} {ident} "
                        f"(also row {first}). Fix: give each row a unique name")
    return problems


def _split_problems(config: dict[str, Any], trials: Sheet, row: dict[str, Any],
                    where: str) -> list[str]:
    """A ``split`` row: dynamic, no cycles cell, cycles config set, names that are free."""
    from pipeline.study import SPLIT_ROLES, split_trial_name

    problems = []
    if row["kind"] != "dynamic":
        problems.append(f"{where}: a {row['kind']} trial cannot have role split. Fix: set role "
                        "to none (only dynamic trials calibrate or validate)")
    if str(row.get("cycles") or "").strip():
        problems.append(f"{where}: role split takes its cycles from config.yaml's cycles."
                        "calibration and cycles.validation, not from the cycles cell. Fix: empty "
                        "the cycles cell, or give the row role calibration or validation")
    specs = {role: str(config["cycles"].get(role) or "").strip() for role in SPLIT_ROLES}
    if not any(specs.values()):
        problems.append(f"{where}: role split, but config.yaml sets neither cycles.calibration "
                        "nor cycles.validation. Fix: set them (e.g. cycles: {calibration: "
                        '"1-2", validation: "3-"})')
    names = {r["trial"] for r in trials if r["subject"] == row["subject"]}
    for role, spec in specs.items():
        name = split_trial_name(row["trial"], role)
        if spec and name in names:
            problems.append(f"{where}: role split names its {role} cycles trial {name!r}, "
                            "which another row of the subject already uses. Fix: rename one")
    return problems


def check_sheets(root: Path, config: dict[str, Any], subjects: Sheet,
                 trials: Sheet, *, check_files: bool = True) -> list[str]:
    """Row schemas, duplicates, references between the sheets, files and time windows."""
    problems = _check_rows(root / "subjects.tsv", subjects, "subjects.schema.yaml")
    problems += _check_rows(root / "trials.tsv", trials, "trials.schema.yaml")
    problems += _duplicates(root / "subjects.tsv", subjects, ["subject"])
    problems += _duplicates(root / "trials.tsv", trials, ["subject", "trial"])
    if not subjects:
        problems.append("subjects.tsv: no subjects. Fix: add one row per subject")
    known = {row["subject"] for row in subjects}
    for row in subjects:
        model = row["model"]
        if model and model not in config["models"]:
            problems.append(
                f"subjects.tsv row {row['_row']}: model {model!r} has no entry under models: "
                f"in config.yaml. Fix: add models: {{{model}: {{emg_channels, excitations, dofs}}}}"
                " (see `python -m pipeline defaults`)")
        if model.endswith(".osim") and check_files and not (root / model).exists():
            problems.append(f"subjects.tsv row {row['_row']}: model file {model} does not "
                            "exist. Fix: correct the path (relative to the study folder)")
    for row in trials:
        where = f"trials.tsv row {row['_row']}"
        if row["subject"] not in known:
            problems.append(f"{where}: subject {row['subject']!r} is not in subjects.tsv. "
                            "Fix: add the subject to subjects.tsv or correct the name")
        if row["kind"] in ("static", "mvc") and row["role"] not in ("none", ""):
            problems.append(f"{where}: a {row['kind']} trial cannot have role {row['role']}. "
                            "Fix: set role to none (only dynamic trials calibrate or validate)")
        if row["role"] == "split":
            problems += _split_problems(config, trials, row, where)
        start, end = row.get("start_s", ""), row.get("end_s", "")
        try:
            if start and end and float(end) <= float(start):
                problems.append(f"{where}: end_s {end} is not after start_s {start}. "
                                "Fix: swap them or correct the window")
        except ValueError:
            pass
    # Given files (C3D or OpenSim), and whether each trial has a source for what it needs.
    setups = {row["subject"]: config["models"].get(row["model"], {})
              for row in subjects}
    problems += source_problems(root, subjects, trials, setups=setups,
                                emg_input=config["emg"].get("input", "envelope"),
                                check_files=check_files)
    for subject in known:
        roles = {row["role"] for row in trials if row["subject"] == subject}
        if "split" in roles and str(config["cycles"].get("calibration") or "").strip():
            roles.add("calibration")
        if "calibration" not in roles:
            problems.append(f"trials.tsv: subject {subject!r} has no calibration trial. Fix: "
                            "set role calibration on at least one dynamic trial")
    return problems


def _check_bounds(config: dict[str, Any], where: str) -> list[str]:
    cal = config["calibration"]
    problems = []
    calibrated = set(cal["parameters"])
    for name, bound in cal["bounds"].items():
        if name not in cal["parameters"]:
            continue  # bounds of parameters that are not calibrated are never used
        if bound["lower"] > bound["upper"]:
            problems.append(f"{where} key calibration.bounds.{name}: lower {bound['lower']} is "
                            f"above upper {bound['upper']}. Fix: swap them")
        elif bound["lower"] == bound["upper"] and name in calibrated:
            problems.append(f"{where} key calibration.bounds.{name}: lower and upper are both "
                            f"{bound['lower']}, a zero span, so {name} cannot be calibrated. "
                            f"Fix: widen the bounds, or remove {name} from "
                            "calibration.parameters to keep it fixed")
        if bound.get("relative") and bound["lower"] <= 0:
            problems.append(f"{where} key calibration.bounds.{name}: a relative lower bound "
                            "must be a positive fraction of the model's value. Fix: use e.g. 0.8")
    for name, value in cal["initial"].items():
        bound = cal["bounds"].get(name)
        if (name in calibrated and bound and not bound.get("relative")
                and not bound["lower"] <= value <= bound["upper"]):
            problems.append(f"{where} key calibration.initial.{name}: {value} lies outside the "
                            f"bounds [{bound['lower']}, {bound['upper']}]. Fix: move the initial "
                            "value inside the bounds or widen them")
    for name in cal["parameters"]:
        if name not in cal["bounds"]:
            problems.append(f"{where} key calibration.parameters: {name} has no bounds. Fix: "
                            f"add calibration.bounds.{name}: {{lower, upper}}")
    low, high = config["emg"]["bandpass_hz"]
    if low >= high:
        problems.append(f"{where} key emg.bandpass_hz: low {low} Hz is not below high {high} Hz."
                        " Fix: write [low, high], e.g. [30, 300]")
    return problems


def _check_models(config: dict[str, Any], where: str) -> list[str]:
    problems = []
    for model, setup in config["models"].items():
        key = f"{where} key models.{model}"
        seen: dict[str, str] = {}
        for label, name in setup.get("emg_channels", {}).items():
            if name in seen:
                problems.append(f"{key}.emg_channels: EMG {name!r} is mapped twice (from "
                                f"{seen[name]!r} and {label!r}). Fix: give each C3D channel its "
                                "own EMG name")
            seen[name] = label
        excitations = setup.get("excitations", {})
        for mtu, weights in excitations.items():
            for emg in weights:
                # Without emg_channels, EMG comes as .sto files whose columns are EMG names.
                if seen and emg not in seen:
                    problems.append(f"{key}.excitations.{mtu}: EMG {emg!r} is not defined in "
                                    f"models.{model}.emg_channels. Fix: map a C3D channel to "
                                    f"{emg!r} or correct the name")
        for mtu in setup.get("unrecorded", []):
            if mtu not in excitations:
                problems.append(f"{key}.unrecorded: {mtu!r} is not an MTU listed under "
                                "excitations. Fix: list it under excitations first")
        for sub, full, name in (("tracked_dofs", setup.get("dofs") or [], "dofs"),
                                ("calibrated_mtus", excitations, "excitations")):
            unknown = [x for x in setup.get(sub) or [] if x not in full]
            if unknown:
                problems.append(f"{key}.{sub}: {unknown} not listed under models.{model}.{name}."
                                f" Fix: list them under {name} first, or correct the names")
        partial = [sub for sub in ("tracked_dofs", "calibrated_mtus") if setup.get(sub)]
        if partial and "synergy_hybrid" in config["calibration"]["methods"]:
            problems.append(f"{key}: {' and '.join(partial)} are not supported by the "
                            "synergy_hybrid method (it calibrates every MTU on every DOF). "
                            "Fix: remove synergy_hybrid from calibration.methods, or remove "
                            f"{' and '.join(partial)}")
        if excitations and not setup.get("dofs"):
            problems.append(f"{key}.dofs: no degrees of freedom to calibrate. Fix: list the "
                            "coordinates whose ID moments are tracked")
    # A study may use several models (e.g. an arm and a leg): a strength group applies to the
    # models whose MTUs it names, and each name must be an MTU of at least one model.
    known = {mtu for setup in config["models"].values() for mtu in setup.get("excitations", {})}
    for group, members in config["calibration"]["groups"].items():
        unknown = [m for m in members if known and m not in known]
        if unknown:
            problems.append(f"{where} key calibration.groups.{group}: {unknown} "
                            f"{'is not an MTU' if len(unknown) == 1 else 'are not MTUs'} of any "
                            "model of the study. Fix: name MTUs listed under "
                            "models.<model>.excitations")
    return problems


def check_config(root: Path, config: dict[str, Any], subjects: Sheet,
                 trials: Sheet, *, check_files: bool = True) -> list[str]:
    """Cross-field checks of the merged config (checks against data files: study_data_checks)."""
    where = str(root / "config.yaml")
    return _check_bounds(config, where) + _check_models(config, where)
