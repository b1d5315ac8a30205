"""All figures of one subject: read the results, draw, save, and write ``manifest.json``.

The manifest lists every figure file with its title, a one-sentence caption and the numbers the
figure shows (see :func:`pipeline.plots.style.record`); the HTML report is built from it.
"""

from __future__ import annotations

import functools
import json
import logging
import math
import multiprocessing
import os
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from pipeline import layout
from pipeline._gc import one_collection
from pipeline.errors import ConfigError, describe
from pipeline.fileio import write_json_atomic
from pipeline.plots.calibration import loss_figure, method_comparison_figure, parameters_figure
from pipeline.plots.experiment import grf_figure, marker_error_figure
from pipeline.plots.gait import (
    emg_figure,
    grf_bw_figure,
    joint_angles_figure,
    moments_per_kg_figure,
    side_of,
)
from pipeline.plots.load import load_gait_trials, load_method, load_recordings
from pipeline.plots.muscles import (
    excitation_activation_figure,
    fiber_length_figure,
    muscle_force_figure,
)
from pipeline.plots.style import annotations_of, save_figure
from pipeline.plots.tracking import moment_tracking_figure
from pipeline.provenance import study_provenance
from pipeline.study import Study

log = logging.getLogger(__name__)
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class FigureJob:
    """One figure to draw: output stem, title, caption and a zero-argument drawing function."""

    stem: str
    title: str
    caption: str
    draw: Callable[[], Figure]
    method: str | None = None


def _json_safe(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


#: The part of a subject's figures that shows the movement data (the others are the methods').
DATA_PART = "data"


def figure_jobs(study: Study, subject: str, *, methods: Sequence[str]) -> list[FigureJob]:
    """The figures of ``subject`` for ``methods`` (data loaded now, drawn on demand): the
    movement data's (:func:`data_jobs`), each method's (:func:`method_jobs`), then the
    convergence and the methods compared (:func:`summary_jobs`)."""
    results = _results(study, subject, methods)
    return (data_jobs(study, subject) + _result_jobs(study, results)
            + _summary_jobs(results))


def part_jobs(study: Study, subject: str, part: str) -> list[FigureJob]:
    """The figures of one part: :data:`DATA_PART` or a method's name."""
    if part == DATA_PART:
        return data_jobs(study, subject)
    return method_jobs(study, subject, methods=[part])


def _results(study: Study, subject: str, methods: Sequence[str]) -> list:
    roles = _roles(study, subject)
    return [load_method(study.root, subject, m, roles) for m in methods]


def _roles(study: Study, subject: str) -> dict[str, str]:
    return {r["trial"]: r["role"] for r in study.trials_of(subject, kind="dynamic")}


def data_jobs(study: Study, subject: str) -> list[FigureJob]:
    """The figures of the movement data alone (no calibration result): per-cycle joint angles,
    moments, GRF and EMG, then the IK marker errors and the force plates."""
    roles = _roles(study, subject)
    jobs = gait_jobs(study, subject, roles)
    recordings = load_recordings(study.root, subject, roles)
    threshold = study.config.get("opensim", {}).get("ik", {}).get("max_rms_error_m")
    jobs.append(FigureJob("marker_errors", "IK marker errors",
                          "Root-mean-square and largest marker error of inverse kinematics per "
                          "frame in every dynamic trial, against the configured RMS threshold.",
                          _bind(marker_error_figure, recordings, max_rms_error_m=threshold)))
    if any(r.grf is not None for r in recordings):
        jobs.append(FigureJob("grf", "Ground reaction forces",
                              "Ground reaction force components and centre of pressure per "
                              "force plate in every dynamic trial with force plates.",
                              _bind(grf_figure, recordings)))
    return jobs


def method_jobs(study: Study, subject: str, *, methods: Sequence[str]) -> list[FigureJob]:
    """The figures of the calibration results of each of ``methods``."""
    return _result_jobs(study, _results(study, subject, methods))


def summary_jobs(study: Study, subject: str, *, methods: Sequence[str]) -> list[FigureJob]:
    """The convergence of ``methods`` and, with more than one, the methods compared."""
    return _summary_jobs(_results(study, subject, methods))


def _result_jobs(study: Study, results: Sequence) -> list[FigureJob]:
    band_cfg = study.config["calibration"]["penalties"]["fiber_length"]
    band = (float(band_cfg["lower"]), float(band_cfg["upper"]))
    jobs: list[FigureJob] = []
    for result in results:
        m, trials = result.method, result.trials
        jobs += [
            FigureJob(f"moments_{m}", f"Joint-moment tracking ({m})",
                      "Inverse-dynamics (black) and EMG-driven predicted (orange, dashed) joint "
                      "moments per trial and degree of freedom, with RMSE and R² per panel.",
                      _bind(moment_tracking_figure, trials, method=m), m),
            FigureJob(f"parameters_{m}", f"Calibrated parameters ({m})",
                      "Calibrated parameter values (dots, ± standard error from the "
                      "identifiability analysis) against initial values (open circles) and "
                      "bounds (grey); red marks a value at a bound or a poorly identified "
                      "parameter.", _bind(parameters_figure, result.parameters, method=m), m),
            FigureJob(f"forces_{m}", f"Muscle forces ({m})",
                      "Predicted musculotendon force of each MTU in every executed trial.",
                      _bind(muscle_force_figure, trials, method=m), m),
            FigureJob(f"fiber_lengths_{m}", f"Fibre-length ranges ({m})",
                      "Range of normalised fibre length per MTU and trial; the green band is "
                      "where calibration applies no fibre-length penalty.",
                      _bind(fiber_length_figure, trials, band=band, method=m), m),
        ]
        for trial in trials:
            if trial.excitations is None and trial.activations is None:
                continue
            jobs.append(FigureJob(
                f"excitations_{m}_{trial.name}", f"Excitations and activations: {trial.name} "
                f"({m})", "Recorded EMG excitations (black), "
                + ("synthesised excitations (pink, dashed) " if m == "synergy_hybrid" else "")
                + f"and model activations (orange) of every MTU in {trial.name} "
                f"({trial.role}).", _bind(excitation_activation_figure, trial, method=m), m))
    return jobs


def _summary_jobs(results: Sequence) -> list[FigureJob]:
    jobs = []
    jobs.append(FigureJob("loss", "Calibration convergence",
                          "Calibration loss against iteration and wall-clock time for each "
                          "method (log scale).", _bind(loss_figure, results)))
    if len(results) > 1:
        jobs.append(FigureJob("methods", "Calibration methods compared",
                              "Calibration wall time and mean validation RMSE and R² of each "
                              "method that ran.", _bind(method_comparison_figure, results)))
    return jobs


#: The figures forked workers draw (set just before the fork; children inherit it).
_PENDING: list[FigureJob] = []


def _draw_and_save(job: FigureJob, out_dir: Path, *, fmt: str, subject: str) -> dict:
    """Draw one figure, save it, and return its manifest entry (the figure's objects are
    collected once, when it is done: pipeline._gc.one_collection)."""
    with one_collection():
        fig = job.draw()
        path = save_figure(fig, out_dir / f"{job.stem}.{fmt}")
        log.info("%s: wrote %s (%.0f KiB)", subject, path, path.stat().st_size / 1024)
        entry = {"file": path.name, "title": job.title, "caption": job.caption,
                 "method": job.method, "annotations": _json_safe(annotations_of(fig))}
        del fig
    return entry


def _draw_pending(index: int, out_dir: Path, fmt: str, subject: str) -> dict | None:
    """Worker: one of :data:`_PENDING`; None if it failed (the parent draws it again and raises
    its error there, with the usual message)."""
    try:
        return _draw_and_save(_PENDING[index], out_dir, fmt=fmt, subject=subject)
    except Exception as exc:  # noqa: BLE001 - reported by the parent's own attempt
        log.debug("figure %s failed in a worker (%s); drawing it again in the parent",
                  _PENDING[index].stem, exc)
        return None


def _draw_all(jobs: list[FigureJob], out_dir: Path, *, fmt: str, subject: str,
              workers: int) -> list[dict]:
    """Every job's manifest entry, in job order (drawn by forked workers where possible)."""
    global _PENDING
    drawn: list[dict | None] = [None] * len(jobs)
    if workers > 1 and len(jobs) > 1 and "fork" in multiprocessing.get_all_start_methods():
        _PENDING = jobs
        try:
            with multiprocessing.get_context("fork").Pool(min(workers, len(jobs))) as pool:
                drawn = pool.map(functools.partial(_draw_pending, out_dir=out_dir, fmt=fmt,
                                                   subject=subject),
                                 range(len(jobs)), chunksize=1)
        finally:
            _PENDING = []
    return [entry if entry is not None else _draw_and_save(job, out_dir, fmt=fmt,
                                                             subject=subject)
            for job, entry in zip(jobs, drawn, strict=True)]


def gait_jobs(study: Study, subject: str, roles: dict[str, str]) -> list[FigureJob]:
    """Joint angles, moments per kg, GRF in body weights and EMG with quality flags, per cycle
    (the first figures of a subject's section)."""
    trials = load_gait_trials(study.root, subject, roles)
    if not trials:
        return []
    mass = float(study.subject(subject)["mass_kg"])
    dofs = list(study.model_setup(subject).get("dofs") or [])
    if not dofs:
        dofs = sorted({n for t in trials if t.angles is not None for n in t.angles.names})[:6]
    jobs = [
        FigureJob("angles", "Joint angles per cycle",
                  "Inverse-kinematics angles (degrees) of the calibrated degrees of freedom, "
                  "each cycle (events.json window) normalised to 0-100 %; solid: calibration "
                  "trials, dashed: validation.", _bind(joint_angles_figure, trials, dofs)),
        FigureJob("moments_per_kg", "Joint moments per kg per cycle",
                  f"Inverse-dynamics moments divided by body mass ({mass:g} kg), each cycle "
                  "normalised to 0-100 %. Adult walking peaks: ankle plantarflexion "
                  "1.2-1.7, knee and hip 0.4-1.2 N·m/kg.",
                  _bind(moments_per_kg_figure, trials, dofs, mass_kg=mass)),
    ]
    if study.model_setup(subject).get("force_plates"):
        jobs.append(FigureJob("grf_bw", "Ground reaction forces in body weights",
                              "Anterior (x), vertical (y) and right-ward (z) ground reaction "
                              "force of each foot in body weights, each cycle normalised to "
                              "0-100 %. Walking: vertical peaks 1.0-1.3 BW.",
                              _bind(grf_bw_figure, trials, mass_kg=mass)))
    sides = {side_of(d) for d in dofs} - {""}
    emg_side = sides.pop() if len(sides) == 1 else ""
    jobs.append(FigureJob("emg", "EMG envelopes and quality",
                          "Normalised EMG envelopes per channel and cycle; a red title names "
                          "the channel's quality flags (dead, flat, saturated, line_noise, "
                          "dropped) from emg_quality.json, whose warnings say what to do.",
                          _bind(emg_figure, trials, side=emg_side)))
    return jobs


def _bind(fn: Callable[..., Figure], *args: Any, **kwargs: Any) -> Callable[[], Figure]:
    def draw() -> Figure:
        return fn(*args, **kwargs)
    return draw


def write_subject_figures(study: Study, subject: str, out_dir: str | Path, *,
                          methods: Sequence[str], fmt: str = "png", workers: int = 1,
                          part: str | None = None, parts: Sequence[str | Path] = ()) -> dict:
    """Draw and save every figure of ``subject`` into ``out_dir``; return the manifest.

    ``workers`` > 1 draws the figures in that many forked processes (where the platform forks;
    the data are loaded once, before the fork). The files and the manifest are the same.

    The workflow draws a subject's figures in parts, each as soon as what it shows exists: the
    movement data's (``part`` :data:`DATA_PART`) once the trials are processed, and each
    method's (``part`` the method) once that calibration and validation ran; each part folder
    has its own manifest. Given ``parts`` (such folders, one for the data and one per method of
    ``methods``), the figures are taken from them (hard links where the file system allows,
    else copies) and only the convergence and method comparison are drawn. The folder and
    manifest are then the same as those drawn in one go.
    """
    out_dir = Path(out_dir)
    if part is not None:
        if part != DATA_PART and part not in methods:
            raise ConfigError(f"figures --part {part}: not the movement data ({DATA_PART}) nor "
                              f"one of the methods {', '.join(methods)}. Fix: give one of those")
        methods = [] if part == DATA_PART else [part]
        jobs = part_jobs(study, subject, part)
        taken: list[dict] = []
    elif parts:
        taken = take_parts([Path(p) for p in parts], out_dir, subject=subject,
                           methods=methods, fmt=fmt)
        jobs = summary_jobs(study, subject, methods=methods)
    else:
        jobs, taken = figure_jobs(study, subject, methods=methods), []
    out_dir.mkdir(parents=True, exist_ok=True)
    entries = taken + _draw_all(jobs, out_dir, fmt=fmt, subject=subject, workers=workers)
    figure_inputs = sorted(p for m in methods for p in
                           (study.root / layout.method_dir(subject, m)).glob("*.json"))
    manifest = {"subject": subject, "methods": list(methods), "figures": entries,
                "provenance": study_provenance(study.config, figure_inputs)}
    if part is not None:
        manifest["part"] = part
    write_json_atomic(out_dir / MANIFEST, manifest)
    log.info("%s: %d figures, manifest %s", subject, len(entries), out_dir / MANIFEST)
    return manifest


def take_parts(folders: Sequence[Path], out_dir: Path, *, subject: str,
               methods: Sequence[str], fmt: str) -> list[dict]:
    """The manifest entries of ``subject``'s part folders, the movement data's first and then
    one per method of ``methods`` in that order, their files linked into ``out_dir`` (copied
    where the file system has no hard links)."""
    found: dict[str, tuple[Path, list[dict]]] = {}
    for folder in folders:
        name, entries = _read_part(folder, subject=subject, fmt=fmt)
        if folder.resolve() == out_dir.resolve():
            raise ConfigError(describe(folder, "is both a part of the figures and the output",
                                       "give another --out-dir"))
        found[name] = (folder, entries)
    wanted = [DATA_PART, *methods]
    missing = [name for name in wanted if name not in found]
    if missing:
        raise ConfigError(f"figures of {subject}: no part folder for {', '.join(missing)} "
                          f"among {', '.join(str(f) for f in folders)}. Fix: draw them first "
                          f"(figures --part NAME --out-dir FOLDER) and give every folder")
    out_dir.mkdir(parents=True, exist_ok=True)
    taken: list[dict] = []
    for name in wanted:
        folder, entries = found[name]
        for entry in entries:
            source, target = folder / entry["file"], out_dir / entry["file"]
            target.unlink(missing_ok=True)
            try:
                os.link(source, target)
            except OSError:
                shutil.copyfile(source, target)
        taken += entries
    return taken


def _read_part(folder: Path, *, subject: str, fmt: str) -> tuple[str, list[dict]]:
    """A part folder's name and manifest entries, checked against ``subject`` and ``fmt``."""
    manifest_path = folder / MANIFEST
    fix = (f"draw that part of {subject}'s figures there first (figures --part NAME "
           f"--out-dir {folder})")
    try:
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        entries = list(manifest["figures"])
        files = [folder / entry["file"] for entry in entries]
        name, drawn_for = str(manifest["part"]), manifest["subject"]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ConfigError(describe(manifest_path, f"not the manifest of a part of the figures "
                                   f"({type(exc).__name__}: {exc})", fix)) from None
    if drawn_for != subject:
        raise ConfigError(describe(manifest_path, f"figures of subject {drawn_for}, not "
                                   f"{subject}", fix))
    wrong = [f.name for f in files if f.suffix != f".{fmt}" or not f.is_file()]
    if wrong:
        raise ConfigError(describe(folder, f"figures {', '.join(wrong)} are missing or not "
                                   f".{fmt}", f"draw that part again with --format {fmt}"))
    return name, entries
