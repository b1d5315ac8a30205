"""Per-MTU initial values from a file (``subjects.tsv`` column ``initial_parameters``).

:func:`read_initial_values` returns ``{mtu: {key: value}}`` in SI units with the keys

=========================  ==================================================================
key                        meaning
=========================  ==================================================================
``optimal_fiber_length_m``  replaces the model's value (relative bounds are relative to it)
``tendon_slack_length_m``   replaces the model's value
``max_isometric_force_n``   replaces the model's force (the force at strength 1)
``strength``                initial strength coefficient (alias ``strength_coefficient``)
``c1``, ``c2``, ``shape_factor``, ``damping``   initial activation / damping values
=========================  ==================================================================

Readers by file suffix:

* ``.csv``: one row per MTU, a column ``mtu`` and any of the keys above;
* ``.json``: ``{"mtus": {mtu: {key: number or {"value": number}}}}``, so a previous run's
  ``parameters.json`` works (its ``max_isometric_force_n.generic_n``, the force at strength 1,
  is used with its ``strength_coefficient``);
* ``.xml``: a CEINMS 0.9 subject (:func:`pipeline.interop.ceinms_params.initial_values`).

Other formats plug in with :func:`register_reader` (suffix -> function(path) -> values); a
reader raises :class:`~pipeline.errors.ConfigError` naming the file, the cause and the fix.
"""

from __future__ import annotations

import csv
import json
import logging
import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from pipeline.errors import ConfigError, describe

log = logging.getLogger(__name__)

InitialValues = dict[str, dict[str, float]]
Reader = Callable[[Path], InitialValues]

KEYS = ("optimal_fiber_length_m", "tendon_slack_length_m", "max_isometric_force_n", "strength",
        "c1", "c2", "shape_factor", "damping")
ALIASES = {"strength_coefficient": "strength"}
POSITIVE = ("optimal_fiber_length_m", "tendon_slack_length_m", "max_isometric_force_n",
            "strength")
_READERS: dict[str, Reader] = {}


def register_reader(suffix: str, reader: Reader) -> None:
    """Read files ending in ``suffix`` (e.g. ``".xml"``) with ``reader``."""
    _READERS[suffix.lower()] = reader


def read_initial_values(path: str | Path) -> InitialValues:
    """Per-MTU initial values of ``path``, checked (known keys, finite, positive lengths)."""
    path = Path(path)
    reader = _READERS.get(path.suffix.lower())
    if reader is None:
        kind = path.suffix or "suffix-less"
        raise ConfigError(describe(path, f"no reader for {kind} initial values",
                                   f"give one of {', '.join(sorted(_READERS))}"))
    if not path.is_file():
        raise ConfigError(describe(path, "file does not exist", "correct the "
                                   "initial_parameters column of subjects.tsv"))
    values = reader(path)
    problems = []
    for mtu, entry in values.items():
        for key, value in entry.items():
            if key not in KEYS:
                problems.append(f"{mtu}: unknown key {key!r}")
            elif not math.isfinite(value) or (key in POSITIVE and value <= 0):
                problems.append(f"{mtu}: {key} = {value!r} is not a "
                                f"{'positive ' if key in POSITIVE else ''}finite number")
    if problems:
        raise ConfigError(describe(path, "; ".join(problems[:8]), f"use the keys {', '.join(KEYS)}"
                                   " with SI values"))
    return values


def select(values: Mapping[str, Mapping[str, float]], mtu_names: list[str] | tuple[str, ...],
           *, source: str | Path) -> InitialValues:
    """The values of ``mtu_names``; others in the file are ignored (logged)."""
    extra = sorted(set(values) - set(mtu_names))
    if extra:
        log.info("%s: values of MTUs not modelled are ignored: %s", source, ", ".join(extra))
    missing = [m for m in mtu_names if m not in values]
    if missing:
        log.info("%s: no initial values for %s (model / config values used)", source,
                 ", ".join(missing))
    return {m: dict(values[m]) for m in mtu_names if m in values}


def _number(path: Path, where: str, value: Any) -> float:
    if isinstance(value, Mapping):
        value = value.get("value")
    try:
        return float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(describe(path, f"{where}: {value!r} is not a number",
                                   "write plain numbers in SI units")) from exc


def read_csv_values(path: Path) -> InitialValues:
    """One row per MTU: column ``mtu`` plus any of :data:`KEYS` (empty cells are skipped)."""
    with open(path, encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(row for row in fh if not row.startswith("#")))
    if not rows or "mtu" not in rows[0]:
        raise ConfigError(describe(path, "no header with a column 'mtu'", "write a header "
                                   f"line: mtu,{','.join(KEYS[:3])},..."))
    values: InitialValues = {}
    for k, row in enumerate(rows, start=2):
        mtu = (row.pop("mtu") or "").strip()
        if not mtu:
            raise ConfigError(describe(path, f"row {k}: empty mtu", "name the MTU"))
        values[mtu] = {ALIASES.get(key.strip(), key.strip()): _number(path, f"row {k} {key}", v)
                       for key, v in row.items() if key and v not in (None, "")}
    return values


def read_json_values(path: Path) -> InitialValues:
    """``{"mtus": {mtu: {key: number | {"value": number}}}}`` (a ``parameters.json`` works)."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(describe(path, f"not valid JSON ({exc})", "correct the syntax")) \
            from exc
    mtus = document.get("mtus") if isinstance(document, dict) else None
    if not isinstance(mtus, dict):
        raise ConfigError(describe(path, "no \"mtus\" mapping", 'write {"mtus": {"<mtu>": '
                                   '{"optimal_fiber_length_m": 0.1, ...}}}'))
    values: InitialValues = {}
    for mtu, entry in mtus.items():
        if not isinstance(entry, dict):
            raise ConfigError(describe(path, f"mtus.{mtu} is not a mapping", "give key: value"))
        out: dict[str, float] = {}
        for raw_key, value in entry.items():
            key = ALIASES.get(str(raw_key), str(raw_key))
            if key == "pennation_at_optimal_rad":
                continue  # written by parameters.json; the model's pennation is kept
            if key == "max_isometric_force_n" and isinstance(value, Mapping) \
                    and "generic_n" in value:
                out[key] = _number(path, f"mtus.{mtu}.{key}.generic_n", value["generic_n"])
                continue
            out[key] = _number(path, f"mtus.{mtu}.{key}", value)
        values[str(mtu)] = out
    return values


def read_ceinms_subject_values(path: Path) -> InitialValues:
    """A CEINMS subject XML's per-MTU values."""
    from pipeline.interop.ceinms_params import initial_values

    return initial_values(path)


register_reader(".csv", read_csv_values)
register_reader(".json", read_json_values)
register_reader(".xml", read_ceinms_subject_values)
