"""The study's HTML report: summary table for all subjects + per-subject figures.

:func:`write_report` reads ``results/<subject>/calibration/<method>/{parameters,metrics}.json``
and ``results/<subject>/figures/manifest.json`` (written by ``python -m pipeline figures``) and
writes one self-contained HTML file (figures embedded, no external resources).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from html import escape
from pathlib import Path

import pipeline
from pipeline import layout
from pipeline.fileio import write_text_atomic
from pipeline.plots.subject import MANIFEST
from pipeline.provenance import config_sha256, git_commit
from pipeline.report.html import (
    emg_timing_table,
    emg_verdict_table,
    page,
    scale_table,
    subject_section,
    summary_table,
    warnings_list,
)
from pipeline.report.summary import MethodSummary, study_summary
from pipeline.signals.emg_quality import channel_verdicts
from pipeline.study import Study

log = logging.getLogger(__name__)

__all__ = ["MethodSummary", "build_report", "study_summary", "write_report"]


def _manifest(figure_dir: Path) -> dict | None:
    path = figure_dir / MANIFEST
    if not path.exists():
        log.warning("%s: not found; the report will show no figures for this subject", path)
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def _read_optional(path: Path) -> dict | None:
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:
        log.warning("%s: not valid JSON; left out of the report", path)
        return None


def _data_checks(study: Study, subject: str) -> str:
    """Scale table, scaling warnings and EMG quality warnings of one subject."""
    base = study.root / layout.subject_dir(subject)
    scale = _read_optional(base / "model" / "scale_report.json")
    emg_warnings: list[str] = []
    timing: list[dict] = []
    qualities: dict[str, dict] = {}
    for row in study.trials_of(subject, kind="mvc"):
        quality = _read_optional(base / "trials" / row["trial"] / "emg_quality.json")
        if quality:
            qualities[row["trial"]] = quality
    for row in study.trials_of(subject, kind="dynamic"):
        folder = base / "trials" / row["trial"]
        quality = _read_optional(folder / "emg_quality.json") or {}
        qualities[row["trial"]] = quality
        emg_warnings += quality.get("warnings") or []
        timing += emg_cycle_timing(row["trial"], quality,
                                   _read_optional(folder / "events.json") or {})
    return ("<h3>Scaling</h3>" + scale_table(scale)
            + warnings_list("Scaling warnings", (scale or {}).get("warnings") or [])
            + "<h3>EMG quality</h3>" + emg_verdict_table(channel_verdicts(qualities))
            + warnings_list("EMG warnings", emg_warnings)
            + emg_timing_table(timing))


def emg_cycle_timing(trial: str, quality: dict, events: dict) -> list[dict]:
    """Rows of :func:`pipeline.report.html.emg_timing_table` for one trial: each channel's
    onsets and offsets (emg_quality.json) placed in the cycles of its events.json (numbered as
    events.json numbers them: ``cycle_numbers`` when the trial selects cycles), only the
    cycles of the channel's leg when its name tells it (``_r``/``_l``)."""
    from pipeline.plots.gait import side_of
    from pipeline.signals.emg_quality import cycle_timing

    windows = events.get("windows") or []
    sides = events.get("sides") or []
    numbers = events.get("cycle_numbers") or list(range(1, len(windows) + 1))
    rows = []
    for name, q in (quality.get("channels") or {}).items():
        placed = {}
        for what in ("onsets", "offsets"):
            times = q.get(f"{what}_s") or []
            inside = {e["time_s"]: e for e in cycle_timing(times, windows, sides=sides,
                                                            side=side_of(name))}
            placed[what] = [{**inside[t], "cycle": numbers[inside[t]["cycle"] - 1]}
                            if t in inside else {"time_s": t, "cycle": None, "percent": None}
                            for t in map(float, times)]
        flags = list(q.get("flags") or []) + (["dropped"] if name in (quality.get("dropped")
                                                                       or []) else [])
        rows.append({"trial": trial, "channel": name, "flags": flags, "snr": q.get("snr"),
                     **placed})
    return rows


def build_report(study: Study, *, methods: Sequence[str]) -> str:
    """The report's HTML text."""
    subjects = study.subject_names
    log.info("report: summarising %d subject(s) x %d method(s)", len(subjects), len(methods))
    rows = study_summary(study.root, subjects, methods)
    sections = []
    for subject in subjects:
        figure_dir = study.root / layout.figures_dir(subject)
        manifest = _manifest(figure_dir)
        n_figures = len(manifest.get("figures", [])) if manifest else 0
        log.info("report: %s: embedding %d figure(s) from %s", subject, n_figures, figure_dir)
        sections.append(subject_section(subject, study.subject(subject), manifest, figure_dir,
                                        [r for r in rows if r.subject == subject],
                                        preamble=_data_checks(study, subject)))
    commit = git_commit()
    intro = (f"Study <code>{escape(str(study.root))}</code>: {len(subjects)} subject(s), "
             f"calibration method(s) {escape(', '.join(methods))}. Pipeline "
             f"{escape(pipeline.__version__)}, commit <code>{escape(str(commit)[:12])}</code>, "
             f"config sha256 <code>{config_sha256(study.config)[:12]}</code>.")
    return page("EMG-driven calibration report", intro, summary_table(rows), sections, subjects)


def write_report(study: Study, out: str | Path, *, methods: Sequence[str]) -> Path:
    """Build the report and write it atomically to ``out``."""
    out = Path(out)
    text = build_report(study, methods=methods)
    write_text_atomic(out, text)
    log.info("report: wrote %s (%.1f MiB)", out, len(text.encode()) / 2**20)
    return out
