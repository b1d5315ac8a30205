"""HTML assembly of the report: one self-contained file, figures embedded (base64 PNG / SVG)."""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from html import escape
from pathlib import Path

from pipeline.calibrate.generalisation import R2_DROP
from pipeline.report.summary import MethodSummary, flag_counts

CSS = """
body{font-family:"DejaVu Sans",Arial,sans-serif;margin:0 auto;max-width:1280px;padding:0 24px 48px;
color:#222;line-height:1.4}
h1{margin:24px 0 4px}h2{margin-top:40px;border-bottom:2px solid #0072B2;padding-bottom:4px}
h3{margin:24px 0 8px;color:#0072B2}
.meta{color:#555;font-size:0.9em}
table{border-collapse:collapse;font-size:0.88em;margin:8px 0 16px}
th,td{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f0f4f8}td.num{text-align:right;font-variant-numeric:tabular-nums}
td.flag{color:#a00000}.ok{color:#007a4d}
figure{margin:16px 0 28px;padding:0}figure img,figure svg{max-width:100%;height:auto;
border:1px solid #eee}
figcaption{font-size:0.9em;color:#333;margin-top:4px;max-width:1000px}
nav ul{columns:3;font-size:0.9em}code{font-size:0.85em}
"""


def _num(value: float | None, fmt: str) -> str:
    return "n/a" if value is None or value != value else format(value, fmt)


def embed_figure(path: Path) -> str:
    """The figure at ``path`` as an HTML fragment: ``<img>`` with a data URI, or inline SVG."""
    if path.suffix.lower() == ".svg":
        text = path.read_text(encoding="utf-8")
        text = re.sub(r"^<\?xml[^>]*>\s*", "", text)
        text = re.sub(r"<!DOCTYPE[^>]*>\s*", "", text)
        return text
    data = base64.b64encode(path.read_bytes()).decode("ascii")
    return f'<img alt="{escape(path.stem)}" src="data:image/png;base64,{data}">'


def summary_table(rows: Sequence[MethodSummary]) -> str:
    """Study summary: per subject and method, validation RMSE and R² per DOF, time, flags."""
    head = ("<tr><th>Subject</th><th>Method</th><th>DOF</th><th>Validation RMSE (N·m)</th>"
            "<th>Validation R²</th><th>Calibration time (s)</th><th>Iterations / evaluations</th>"
            "<th>At a bound</th><th>Identifiability flags</th></tr>")
    body = []
    for row in rows:
        dofs = list(row.per_dof.items()) + [("mean", (row.mean_rmse_nm, row.mean_r2))]
        if row.missing:
            dofs = [("—", (None, None))]
        span = len(dofs)
        for i, (dof, (rmse, r2)) in enumerate(dofs):
            cells = []
            if i == 0:
                cells.append(f'<td rowspan="{span}">{escape(row.subject)}</td>'
                             f'<td rowspan="{span}">{escape(row.method)}</td>')
            label = f"<b>{escape(dof)}</b>" if dof == "mean" else escape(dof)
            r2_class = "num flag" if dof in row.not_carried_over else "num"
            cells.append(f"<td>{label}</td><td class=num>{_num(rmse, '.3g')}</td>"
                         f'<td class="{r2_class}">{_num(r2, ".3f")}</td>')
            if i == 0:
                bound = folded_list(row.at_bound)
                flags = flags_cell(row)
                note = f"<br><i>{escape(row.missing)}</i>" if row.missing else ""
                cells.append(
                    f'<td rowspan="{span}" class=num>{_num(row.wall_s, ".3g")}</td>'
                    f'<td rowspan="{span}" class=num>'
                    f'{row.iterations if row.iterations is not None else "n/a"}</td>'
                    f'<td rowspan="{span}" class="{"flag" if row.at_bound else "ok"}">'
                    f"{bound}</td>"
                    f'<td rowspan="{span}" class="{flags_class(row)}">'
                    f"{flags}{note}</td>")
            body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table>{head}{''.join(body)}</table>"


def folded_list(items: Sequence[str]) -> str:
    """A count per parameter kind, the full list folded away ("none" when empty)."""
    if not items:
        return "none"
    counts = ", ".join(f"{kind} ×{n}" for kind, n in flag_counts(items).items())
    return (f"{len(items)} ({escape(counts)})<details><summary>list</summary><small>"
            f"{escape('; '.join(items))}</small></details>")


def flags_cell(row: MethodSummary) -> str:
    """Identifiability flags: a count per parameter kind, the full lists folded away."""
    if row.n_parameters is None and not row.flags and not row.pairs:
        return "no analysis ran"
    if not row.flags and not row.pairs:
        return "none"
    total = f" of {row.n_parameters}" if row.n_parameters else ""
    counts = ", ".join(f"{kind} ×{n}" for kind, n in flag_counts(row.flags).items())
    parts = [f"{len(row.flags)}{total} parameters poorly identified"
             + (f" ({escape(counts)})" if counts else "")]
    if row.pairs:
        parts.append(f"{len(row.pairs)} highly correlated pair(s)")
    details = escape("; ".join(row.flags + row.pairs))
    return ("; ".join(parts) + f"<details><summary>list</summary><small>{details}</small>"
            "</details>")


def flags_class(row: MethodSummary) -> str:
    """Red with flags, grey when no identifiability analysis ran, green when it found none."""
    if row.flags or row.pairs:
        return "flag"
    return "meta" if row.n_parameters is None else "ok"


def provenance_line(summary: MethodSummary) -> str:
    p = summary.provenance
    commit = p.get("git_commit", "n/a") or "not a git checkout"
    version = p.get("package_version", "n/a")
    return (f"<li><b>{escape(summary.method)}</b>: package {escape(str(version))}, commit "
            f"<code>{escape(str(commit)[:12])}</code>, config "
            f"<code>{escape(str(p.get('config_sha256', 'n/a'))[:12])}</code>, seed "
            f"{escape(str(p.get('seed', 'n/a')))}</li>")


def scale_table(report: Mapping | None) -> str:
    """Per body: scale factors, the marker pairs that measured them, and the warnings."""
    if not report:
        return ("<p class=flag>No scale report "
                "(results/&lt;subject&gt;/model/scale_report.json).</p>")
    bodies = report.get("bodies") or {}
    rows = []
    for body, row in bodies.items():
        factors = " ".join(f"{v:.3f}" for v in row.get("factors", []))
        pairs = "; ".join(" – ".join(p) for p in row.get("pairs", [])) or "none"
        warn = row.get("warning")
        rows.append(f"<tr><td>{escape(body)}</td><td class=num>{factors}</td>"
                    f"<td>{escape(pairs)}</td><td>{escape(str(row.get('source', '')))}</td>"
                    f'<td class="{"flag" if warn else "ok"}">{escape(warn or "ok")}</td></tr>')
    rms = report.get("marker_rms_error_m")
    worst = report.get("marker_max_error_m")
    head = (f"<p>Static trial marker error of the scaled model before marker placement: RMS "
            f"{_num(None if rms is None else rms * 1000, '.1f')} mm, largest "
            f"{_num(None if worst is None else worst * 1000, '.1f')} mm "
            f"({escape(str(report.get('max_error_marker', 'n/a')))}).")
    removed = report.get("unplaced_markers_removed") or []
    if removed:
        head += (" Markers the static trial could not place (left out of IK): "
                 f"{escape(', '.join(removed))}.")
    head += "</p>"
    return (head + "<table><tr><th>Body</th><th>Scale factors x y z</th><th>Marker pairs</th>"
            "<th>Pairs from</th><th>Check</th></tr>" + "".join(rows) + "</table>")


def _timing_cell(entries: Sequence[Mapping]) -> str:
    """``0.612 s (23 % of cycle 1)`` per onset or offset; a time in no cycle shows alone."""
    parts = []
    for e in entries:
        where = (f" ({e['percent']:.0f} % of cycle {e['cycle']})"
                 if e.get("percent") is not None else " (no cycle)")
        parts.append(f"{e['time_s']:.3f} s{where}")
    return escape(", ".join(parts)) or "none"


def emg_timing_table(rows: Sequence[Mapping]) -> str:
    """Per trial and EMG channel: flags, SNR, and the envelope's onsets and offsets in s and as
    % of the movement cycle they fall in (rows: trial, channel, flags, snr, onsets, offsets;
    onsets/offsets: ``{"time_s", "cycle", "percent"}``, percent None outside every cycle)."""
    if not rows:
        return "<p class=meta>No EMG quality files (emg_quality.json).</p>"
    body = []
    for r in rows:
        flags = ", ".join(r["flags"])
        body.append(f"<tr><td>{escape(r['trial'])}</td><td>{escape(r['channel'])}</td>"
                    f'<td class="{"flag" if flags else "ok"}">{escape(flags or "ok")}</td>'
                    f"<td class=num>{_num(r.get('snr'), '.1f')}</td>"
                    f"<td>{_timing_cell(r['onsets'])}</td><td>{_timing_cell(r['offsets'])}</td>"
                    "</tr>")
    return ("<details><summary>EMG onsets and offsets per channel (envelope through 25 % of its "
            f"range; % of the cycle of events.json they fall in): {len(rows)} channel(s)"
            "</summary><table><tr><th>Trial</th><th>EMG</th><th>Flags</th><th>SNR</th>"
            "<th>Onsets</th><th>Offsets</th></tr>" + "".join(body) + "</table></details>")


def emg_verdict_table(verdicts: Sequence[Mapping]) -> str:
    """Channels flagged ``dead`` (low SNR) in some trial, judged across the subject's trials
    (:func:`pipeline.signals.emg_quality.channel_verdicts`)."""
    if not verdicts:
        return "<p class=ok>EMG channels with a low SNR in any trial: none.</p>"

    def trials(snr_of: Mapping[str, float]) -> str:
        return escape(", ".join(f"{t} ({v:.1f})" for t, v in snr_of.items())) or "none"

    body = []
    for v in verdicts:
        dead = v["verdict"] == "dead"
        text = ("low in every trial: check the electrode and cable, or drop it with "
                "models.<model>.drop_emg" if dead else
                "active in other trials: the muscle is quiet in the trials listed, not a "
                "fault")
        body.append(f"<tr><td>{escape(v['channel'])}</td>"
                    f'<td class="{"flag" if dead else "ok"}">{escape(text)}</td>'
                    f"<td>{trials(v['quiet'])}</td><td>{trials(v['active'])}</td></tr>")
    return ("<table><caption>EMG channels with a low SNR (envelope peak / resting baseline) in "
            "some trial, compared across the subject's trials (SNR in brackets)</caption>"
            "<tr><th>EMG</th><th>Verdict</th><th>Low in</th><th>Active in</th></tr>"
            + "".join(body) + "</table>")


def warnings_list(title: str, warnings: Sequence[str]) -> str:
    """A folded list of warnings with their fixes (none: says so)."""
    if not warnings:
        return f"<p class=ok>{escape(title)}: none.</p>"
    items = "".join(f"<li>{escape(w)}</li>" for w in warnings)
    return (f"<details open><summary class=flag>{escape(title)}: {len(warnings)}</summary>"
            f"<ul>{items}</ul></details>")


def validation_warnings(summaries: Sequence[MethodSummary]) -> str:
    """Whether each method's calibration carries over to the held-out trials: the warnings, and
    the methods for which no check ran (never an all-clear for those)."""
    not_checked = [f"{s.method}: not checked ({s.generalisation_not_checked})"
                   for s in summaries if s.generalisation_not_checked]
    warnings = [s.generalisation_warning for s in summaries if s.generalisation_warning]
    if not_checked and not warnings:
        return (f"<p class=meta>Validation warnings: {escape('; '.join(not_checked))}.</p>")
    return warnings_list("Validation warnings", warnings) + (
        f"<p class=meta>{escape('; '.join(not_checked))}.</p>" if not_checked else "")


def subject_section(subject: str, info: Mapping, manifest: Mapping | None, figure_dir: Path,
                    summaries: Sequence[MethodSummary], *, preamble: str = "") -> str:
    """One subject: anthropometrics, provenance per method, ``preamble`` (scale table, data
    checks) and every figure with its caption."""
    parts = [f'<section id="subject-{escape(subject)}"><h2>Subject {escape(subject)}</h2>']
    facts = ", ".join(f"{k}: {escape(str(v))}" for k, v in info.items() if k != "subject")
    parts.append(f'<p class="meta">{facts}</p>')
    parts.append("<p class=meta>Provenance:</p><ul class=meta>"
                 + "".join(provenance_line(s) for s in summaries) + "</ul>")
    parts.append(validation_warnings(summaries))
    if preamble:
        parts.append(preamble)
    if not manifest:
        parts.append(f"<p class=flag>No figures found in {escape(str(figure_dir))}.</p>")
    else:
        current_method = object()
        for entry in manifest.get("figures", []):
            if entry.get("method") != current_method:
                current_method = entry.get("method")
                seen_method = any("<h3>Method: " in part for part in parts)
                heading = (f"Method: {current_method}" if current_method
                           else "All methods" if seen_method else "Movement data")
                parts.append(f"<h3>{escape(heading)}</h3>")
            path = figure_dir / entry["file"]
            if not path.exists():
                parts.append(f"<p class=flag>Missing figure {escape(str(path))}.</p>")
                continue
            parts.append(f"<figure>{embed_figure(path)}<figcaption><b>"
                         f"{escape(entry.get('title', path.stem))}.</b> "
                         f"{escape(entry.get('caption', ''))}</figcaption></figure>")
    parts.append("</section>")
    return "\n".join(parts)


def page(title: str, intro: str, summary_html: str, sections: Sequence[str],
         subjects: Sequence[str]) -> str:
    nav = "".join(f'<li><a href="#subject-{escape(s)}">{escape(s)}</a></li>' for s in subjects)
    return (f"<!DOCTYPE html>\n<html lang=en><head><meta charset=utf-8>"
            f"<meta name=viewport content='width=device-width, initial-scale=1'>"
            f"<title>{escape(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{escape(title)}</h1><p class=meta>{intro}</p>"
            f"<h2>Study summary</h2><p>Validation accuracy is the mean over held-out trials of "
            f"the joint-moment RMSE and R² per degree of freedom; a calibrated DOF's R² is red "
            f"when, pooled over the held-out trials, it is below 0 or more than {R2_DROP} below "
            f"the calibration trials' (each subject's validation warnings say more); "
            f"identifiability flags come from the Gauss-Newton analysis at the calibrated "
            f"optimum.</p>{summary_html}"
            f"<nav><p>Subjects:</p><ul>{nav}</ul></nav>" + "\n".join(sections)
            + "</body></html>\n")
