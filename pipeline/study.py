"""The study folder: ``config.yaml`` + ``subjects.tsv`` + ``trials.tsv``, loaded and validated.

``load_study(dir)`` merges the study's ``config.yaml`` onto the commented defaults (the package's
``resources/config/config.yaml``, printed by ``python -m pipeline defaults``), validates config
and sheets against the JSON schemas next to it and runs the cross-checks a schema cannot express.
Every problem is reported at once, each naming the file, the key or row, and the fix. Rows are
the line numbers of the sheet as a text editor shows them (comment lines count).
"""

from __future__ import annotations

import copy
import csv
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline import resources
from pipeline.errors import ConfigError
from pipeline.study_checks import (
    SAFE_LOADER,
    check_config,
    check_sheets,
    load_schema,
    schema_problems_once,
)

log = logging.getLogger(__name__)

SHEET_COLUMNS = {
    "subjects.tsv": ("subject", "mass_kg", "height_m", "model"),
    "trials.tsv": ("subject", "trial", "file", "kind", "role"),
}
MODEL_SETUP_DEFAULTS: dict[str, Any] = {
    "emg_channels": {},
    "excitations": {},
    "dofs": [],
    "tracked_dofs": None,      # None: every dof
    "calibrated_mtus": None,   # None: every MTU under excitations
    "force_plates": False,
    "unrecorded": [],
    "marker_set": None,
    "measurement_set": None,
    "marker_names": {},
    "strip_marker_prefix": False,
    "add_markers": {},
    "drop_emg": [],
    "foot_bodies": {"right": "calcn_r", "left": "calcn_l"},
    "scaling": {"axes": "uniform", "pairs": {}, "static_pose_deg": {}},
}


class _UniqueKeyLoader(SAFE_LOADER):  # type: ignore[misc,valid-type]
    """A YAML loader that refuses duplicate keys (PyYAML silently keeps the last one)."""


def _construct_mapping(loader: _UniqueKeyLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: dict[Any, int] = {}
    for key_node, _ in node.value:
        key = loader.construct_object(key_node)
        if key in seen:
            raise yaml.constructor.ConstructorError(
                None, None, f"duplicate key {key!r} (first on line {seen[key] + 1})",
                key_node.start_mark,
            )
        seen[key] = key_node.start_mark.line
    return loader.construct_mapping(node)


_UniqueKeyLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, _construct_mapping
)


def read_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; syntax errors and duplicate keys become a :class:`ConfigError`."""
    try:
        data = yaml.load(path.read_text(encoding="utf-8"), Loader=_UniqueKeyLoader)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start}). Fix: save "
                          "the file as UTF-8 in a text editor") from exc
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: file not found. Fix: run `python -m pipeline new-study "
                          f"{path.parent}` to create the templates") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({exc}). Fix: correct the syntax at the "
                          "position shown (indent with spaces, quote strings with ':')") from exc
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: top level must be a mapping of keys. Fix: start from "
                          "the template that `python -m pipeline new-study DIR` writes")
    return data


def deep_merge(base: dict[str, Any], override: dict[str, Any]) -> dict[str, Any]:
    """Return ``base`` updated by ``override``: mappings merge recursively, the rest replaces."""
    merged = copy.deepcopy(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


def _schema_errors(data: Any, schema: dict[str, Any], where: str) -> list[str]:
    import jsonschema  # imported here: 0.1 s that commands which load no study need not pay

    validator = jsonschema.Draft202012Validator(schema)
    problems = []
    for err in sorted(validator.iter_errors(data), key=lambda e: list(map(str, e.path))):
        key = ".".join(str(p) for p in err.absolute_path) or "(top level)"
        problems.append(f"{where} key {key}: {err.message}. Fix: use a value allowed by "
                        "the schema (each key is documented in the config.yaml that "
                        "`python -m pipeline new-study DIR` writes)")
    return problems


def read_sheet(path: Path) -> list[dict[str, Any]]:
    """Read a tab-separated sheet: one dict per data row, keyed by the header's names.

    Lines starting with ``#`` are comments; blank lines are skipped. Cells are stripped strings
    (an empty cell is ``""``, nothing becomes NaN; a short row is padded with ``""``); quoted
    cells may hold tabs. ``_row`` is the row's line number as a text editor shows it.
    """
    if not path.exists():
        raise ConfigError(f"{path}: file not found. Fix: create it with `python -m "
                          "pipeline new-study DIR` and copy it into the study")
    try:
        lines = _sheet_lines(path)
    except (ValueError, csv.Error) as exc:  # UnicodeDecodeError is a ValueError
        raise ConfigError(f"{path}: cannot be parsed as a tab-separated sheet ({exc}). "
                          "Fix: separate columns with tabs, one row per line") from exc
    header = _header_names(lines[0][1]) if lines else []
    missing = [c for c in SHEET_COLUMNS[path.name] if c not in header]
    if missing:
        raise ConfigError(f"{path}: missing column(s) {', '.join(missing)}. Fix: the header "
                          f"must contain {', '.join(SHEET_COLUMNS[path.name])} (tab-separated)")
    rows: list[dict[str, Any]] = []
    for line_no, cells in lines[1:]:
        cells = cells + [""] * (len(header) - len(cells))  # a short row: empty cells
        row: dict[str, Any] = {name: cell.strip() for name, cell in zip(header, cells, strict=True)}
        row["_row"] = line_no
        rows.append(row)
    return rows


def _sheet_lines(path: Path) -> list[tuple[int, list[str]]]:
    """(line number, cells) of the header and data lines; a ValueError for a line with more
    cells than the header. Lines starting with ``#`` and blank lines are skipped."""
    text = path.read_text(encoding="utf-8-sig")  # a spreadsheet's byte-order mark is no cell
    out: list[tuple[int, list[str]]] = []
    for line_no, line in enumerate(text.split("\n"), start=1):
        if not line.strip() or line.startswith("#"):
            continue
        try:
            cells = next(csv.reader([line], delimiter="\t", strict=True))
        except csv.Error as exc:
            if "end of data" in str(exc):
                raise ValueError(f"a quoted cell in line {line_no} has no closing quote") from None
            cells = next(csv.reader([line], delimiter="\t"))  # "a"b reads as ab, as in pandas
        if out and len(cells) > len(out[0][1]):
            raise ValueError(f"Expected {len(out[0][1])} fields in line {line_no}, "
                             f"saw {len(cells)}")
        out.append((line_no, cells))
    return out


def _header_names(cells: list[str]) -> list[str]:
    """Stripped column names; an empty one is ``Unnamed: <index>``, a repeated one gets
    ``.1``, ``.2``, ... (as pandas names them)."""
    names: list[str] = []
    for i, cell in enumerate(cells):
        name = cell.strip() or f"Unnamed: {i}"
        base, n = name, 0
        while name in names:
            n += 1
            name = f"{base}.{n}"
        names.append(name)
    return names


def _typed_record(row: dict[str, Any], numeric: tuple[str, ...]) -> dict[str, Any]:
    record: dict[str, Any] = {}
    for key, value in row.items():
        if key == "_row":
            continue
        if value == "":
            continue
        if key in numeric:
            try:
                record[str(key)] = float(value)
            except ValueError:
                record[str(key)] = value
        else:
            record[str(key)] = value
    return record


@dataclass(frozen=True)
class Study:
    """A validated study. Rows are plain dicts with typed values."""

    root: Path
    config: dict[str, Any]
    subjects: tuple[dict[str, Any], ...]
    trials: tuple[dict[str, Any], ...]

    def subject(self, name: str) -> dict[str, Any]:
        for row in self.subjects:
            if row["subject"] == name:
                return row
        raise ConfigError(f"{self.root / 'subjects.tsv'}: no subject {name!r}. Fix: add a row "
                          "for it or correct the name")

    def trial(self, subject: str, trial: str) -> dict[str, Any]:
        for row in self.trials:
            if row["subject"] == subject and row["trial"] == trial:
                return row
        raise ConfigError(f"{self.root / 'trials.tsv'}: no trial {trial!r} for subject "
                          f"{subject!r}. Fix: add a row for it or correct the name")

    def trials_of(self, subject: str, *, kind: str | None = None,
                  role: str | None = None) -> list[dict[str, Any]]:
        return [r for r in self.trials if r["subject"] == subject
                and (kind is None or r["kind"] == kind) and (role is None or r["role"] == role)]

    def plate_assignment(self, subject: str, trial: str) -> dict[str, str] | None:
        """The trial's ``force_plates.assignment`` entry (``<subject>/<trial>``; a trial that a
        ``split`` row yields takes its row's entry)."""
        row = self.trial(subject, trial)
        assignment = self.config["force_plates"].get("assignment") or {}
        return assignment.get(f"{subject}/{row.get('split_from', trial)}")

    def c3d_path(self, subject: str, trial: str) -> Path:
        return self.root / self.trial(subject, trial).get("file", "")

    def static_trial(self, subject: str) -> dict[str, Any]:
        static = self.trials_of(subject, kind="static")
        if not static:
            raise ConfigError(f"{self.root / 'trials.tsv'}: subject {subject!r} has no static "
                              "trial. Fix: add a row with kind static (needed for scaling)")
        return static[0]

    def model_setup(self, subject: str) -> dict[str, Any]:
        model = self.subject(subject)["model"]
        return deep_merge(MODEL_SETUP_DEFAULTS, self.config["models"].get(model, {}))

    @property
    def subject_names(self) -> list[str]:
        return [r["subject"] for r in self.subjects]


def load_config(study_dir: Path) -> dict[str, Any]:
    """Merged and schema-validated config of a study (no cross-checks against sheets)."""
    path = study_dir / "config.yaml"
    merged = deep_merge(read_yaml(resources.default_config()), read_yaml(path))
    schema = load_schema("config.schema.yaml")
    problems = schema_problems_once(merged, schema,
                                    lambda: _schema_errors(merged, schema, str(path)))
    if problems:
        raise ConfigError(_join(problems))
    return merged


def load_study(study_dir: str | Path, *, check_files: bool = True,
               check_data: bool = False) -> Study:
    """Load and validate a study folder; raise :class:`ConfigError` listing every problem.

    ``check_files``: the files named in the sheets exist. ``check_data``: also open them (C3D
    rates, labels and durations, model, marker-set and measurement-set files; see
    :mod:`pipeline.study_data_checks`), as ``validate-study`` and the workflow do before any job.
    """
    root = Path(study_dir).resolve()
    if not root.is_dir():
        raise ConfigError(f"{root}: study folder does not exist. Fix: create it with "
                          f"`python -m pipeline new-study {study_dir}`")
    config = load_config(root)
    subjects = read_sheet(root / "subjects.tsv")
    trials = read_sheet(root / "trials.tsv")
    problems = check_sheets(root, config, subjects, trials, check_files=check_files)
    problems += check_config(root, config, subjects, trials, check_files=check_files)
    if check_data and check_files:
        from pipeline.study_data_checks import check_data as data_problems

        problems += data_problems(root, config, subjects, trials)
    if problems:
        raise ConfigError(_join(problems))
    return Study(
        root=root,
        config=config,
        subjects=tuple(_typed_record(r, ("mass_kg", "height_m")) for r in subjects),
        trials=tuple(split_rows([_typed_record(r, ("start_s", "end_s")) for r in trials],
                                config["cycles"])),
    )


#: The roles a ``split`` row of trials.tsv yields, with the ``cycles`` config key of each.
SPLIT_ROLES = ("calibration", "validation")


def split_trial_name(trial: str, role: str) -> str:
    """The name of the trial a ``split`` row yields for ``role``: ``<trial>-<role>``."""
    return f"{trial}-{role}"


def split_rows(rows: list[dict[str, Any]], cycles: dict[str, Any]) -> list[dict[str, Any]]:
    """``rows`` with each ``split`` row replaced by one row per role whose ``cycles`` config
    key selects cycles: trial ``<trial>-<role>``, that role, those cycles, and ``split_from``
    naming the row (the two share the C3D; each gets its own results folder)."""
    out: list[dict[str, Any]] = []
    for row in rows:
        if row.get("role") != "split":
            out.append(row)
            continue
        for role in SPLIT_ROLES:
            spec = str(cycles.get(role) or "").strip()
            if spec:
                out.append({**row, "trial": split_trial_name(row["trial"], role), "role": role,
                            "cycles": spec, "split_from": row["trial"]})
    return out


def _join(problems: list[str]) -> str:
    if len(problems) == 1:
        return problems[0]
    return f"{len(problems)} problems found:\n  - " + "\n  - ".join(problems)
