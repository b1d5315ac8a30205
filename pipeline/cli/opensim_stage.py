"""OpenSim stage subcommands: scale, ik, id, muscle-analysis, collect.

Each reads the study's settings (``--study``, usually ``.`` since Snakemake runs inside the study),
calls one OpenSim tool function of :mod:`pipeline.osim` and sends OpenSim's own log to ``--log``.
"""

from __future__ import annotations

import argparse
import logging
from collections.abc import Collection
from pathlib import Path
from typing import Any

import numpy as np

from pipeline import __version__, resources
from pipeline._gc import lasting_imports
from pipeline.cli._common import add_command
from pipeline.errors import ConfigError, MuscleAnalysisError, ScalingError, describe
from pipeline.provenance import config_sha256, study_provenance

log = logging.getLogger(__name__)


def _study(args: argparse.Namespace) -> Any:
    from pipeline.study import load_study

    return load_study(args.study, check_files=False)


def _template(value: str | None, study_root: Path) -> Path | None:
    """A setting naming a file: absolute, relative to the study, or a packaged template."""
    if not value:
        return None
    candidates = [Path(value)] if Path(value).is_absolute() else [
        study_root / value, resources.template_dir() / value,
        resources.opensim_template_dir() / value]
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise ConfigError(describe(study_root / "config.yaml", f"file {value!r} not found (looked "
                               f"in the study folder and the packaged templates)",
                               "correct the path in opensim.scale / models.<model>"))


def _builtin_template(model: str, kind: str) -> Path | None:
    try:
        from pipeline.osim import models
    except ImportError:
        return None
    if not models.is_builtin(model):
        return None
    path = models.template_path(model, kind)
    return path if path.is_file() else None


def _generic_model(study: Any, subject: str) -> Path:
    from pipeline.osim.models import resolve_model

    return resolve_model(study.subject(subject)["model"], study.root)


def _dofs(study: Any, subject: str) -> list[str]:
    setup = study.model_setup(subject)
    dofs = list(setup.get("dofs") or [])
    if not dofs:
        model = study.subject(subject)["model"]
        try:
            from pipeline.osim.models import default_dofs, is_builtin

            if is_builtin(model):
                dofs = list(default_dofs(model))
        except ImportError:
            pass
    if not dofs:
        raise ConfigError(describe(study.root / "config.yaml", "no calibrated coordinates",
                                   "list them in models.<model>.dofs"))
    return dofs


def _scale(args: argparse.Namespace) -> None:
    with lasting_imports("opensim"):
        from pipeline.osim.scale import scale_model

    study = _study(args)
    row = study.subject(args.subject)
    statics = study.trials_of(args.subject, kind="static")
    if not statics:
        raise ScalingError(describe(study.root / "trials.tsv", f"subject {args.subject!r} has "
                                    "no static trial", "add a row with kind static for it"))
    static = statics[0]
    setup = study.model_setup(args.subject)
    scale_cfg = study.config["opensim"]["scale"]
    model = row["model"]
    marker_set = _template(setup.get("marker_set") or scale_cfg.get("marker_set"), study.root)
    measurement_set = (_template(setup.get("measurement_set")
                                 or scale_cfg.get("measurement_set"), study.root)
                       or _builtin_template(model, "measurements"))
    time_range = None
    if static.get("start_s") is not None and static.get("end_s") is not None:
        time_range = (float(static["start_s"]), float(static["end_s"]))
    scaling = setup.get("scaling") or {}
    added = dict(setup.get("add_markers") or {})
    weights = dict(study.config["opensim"]["ik"].get("task_weights") or {})
    if added:
        marker_set = _with_added_markers(_generic_model(study, args.subject), marker_set, added,
                                         Path(args.out).parent / "marker_set.xml")
        # Placed from the static trial (the marker placer moves every free marker onto the
        # data) but not tracked while posing the static: their initial location is a guess.
        weights.update(dict.fromkeys(added, 0.0))
    source = "file"
    if measurement_set is None:
        measurement_set = _derived_measurements(
            _generic_model(study, args.subject), marker_set, args.static_trc, scaling,
            Path(args.out).parent / "measurement_set.xml", exclude=set(added))
        source = "derived"
    scale_model(
        _generic_model(study, args.subject), args.static_trc, out_model=args.out,
        report_path=args.report, mass_kg=float(row["mass_kg"]),
        height_m=row.get("height_m"), marker_set=marker_set, measurement_set=measurement_set,
        task_set=_builtin_template(model, "ik_tasks"),
        task_weights=weights, time_range_s=time_range,
        max_marker_error_m=float(scale_cfg["max_marker_error_m"]),
        subject=args.subject, provenance=study_provenance(study.config, [args.static_trc]),
        static_pose_deg=scaling.get("static_pose_deg") or {}, measurement_source=source)


def _with_added_markers(generic: Path, marker_set: Path | None, added: dict[str, str],
                        out: Path) -> Path:
    """Write a marker set: the model's (or ``marker_set``'s) markers plus ``added`` (marker ->
    body), free markers at the body origin that the marker placer moves onto the static trial."""
    from pipeline.fileio import atomic_path
    from pipeline.osim.model_io import load_model

    model = load_model(generic, error_cls=ScalingError, fix="check the model column of "
                       "subjects.tsv")
    bodies = {model.getBodySet().get(i).getName() for i in range(model.getBodySet().getSize())}
    unknown = sorted({b for b in added.values() if b not in bodies})
    if unknown:
        raise ConfigError(describe(generic, f"models.<model>.add_markers names bodies the model "
                                   f"lacks: {', '.join(unknown)}",
                                   f"use bodies of the model ({', '.join(sorted(bodies))})"))
    import opensim as osim

    if marker_set is not None:
        model.updateMarkerSet(osim.MarkerSet(str(marker_set)))
    markers = model.updMarkerSet()
    clash = sorted(name for name in added if markers.contains(name))
    if clash:
        raise ConfigError(describe(marker_set or generic, f"add_markers names markers the model "
                                   f"already has: {', '.join(clash)}",
                                   "map those C3D markers in models.<model>.marker_names instead"))
    for name, body in added.items():
        model.addMarker(osim.Marker(name, model.getBodySet().get(body), osim.Vec3(0.0)))
    model.finalizeConnections()
    with atomic_path(out) as tmp:
        markers.printToXML(str(tmp))
    return out


def _derived_measurements(generic: Path, marker_set: Path | None, static_trc: str,
                          scaling: dict[str, Any], out: Path, *,
                          exclude: Collection[str] = ()) -> Path:
    """Write the MeasurementSet derived from the model's markers present in the static trial
    (pipeline.osim.measurements) to ``out`` and return its path."""
    import opensim as osim

    from pipeline.io.opensim_files import read_trc
    from pipeline.osim.measurements import derive_measurements, write_measurement_set
    from pipeline.osim.model_io import load_model
    from pipeline.osim.scale import static_markers

    model = load_model(generic, error_cls=ScalingError, fix="check the model column of "
                       "subjects.tsv")
    if marker_set is not None:
        model.updateMarkerSet(osim.MarkerSet(str(marker_set)))
    in_trial = set(static_markers(read_trc(static_trc, error_cls=ScalingError)))
    mset = model.getMarkerSet()
    names = [mset.get(i).getName() for i in range(mset.getSize())
             if mset.get(i).getName() in in_trial and mset.get(i).getName() not in exclude]
    measurements = derive_measurements(
        model, names, pairs=scaling.get("pairs") or {}, axes=scaling.get("axes", "uniform"),
        file=static_trc)
    if not measurements:
        raise ScalingError(describe(static_trc, "no marker pair to scale any body with: the "
                                    "static trial has no two mapped markers on a body",
                                    "map more C3D markers to model markers in "
                                    "models.<model>.marker_names, or give "
                                    "opensim.scale.measurement_set"))
    for m in measurements:
        log.info("scaling %s from %s (%s)", ", ".join(m.bodies),
                 "; ".join(f"{a}-{b}" for a, b in m.pairs), m.source)
    return write_measurement_set(out, measurements)


def _ik(args: argparse.Namespace) -> None:
    with lasting_imports("opensim"):
        from pipeline.osim.ik import marker_time_range, run_inverse_kinematics

    study = _study(args)
    cfg = study.config["opensim"]["ik"]
    model = study.subject(args.subject)["model"]
    row = study.trial(args.subject, args.trial)
    time_range = marker_time_range(
        args.trc, start_s=row.get("start_s"), end_s=row.get("end_s"),
        min_marker_fraction=float(cfg.get("min_marker_fraction", 0.75)))
    run_inverse_kinematics(
        args.model, args.trc, out_mot=args.out, task_set=_builtin_template(model, "ik_tasks"),
        task_weights=cfg.get("task_weights") or {}, time_range_s=time_range,
        max_rms_error_m=float(cfg["max_rms_error_m"]), on_error=cfg["on_error"])


def _id(args: argparse.Namespace) -> None:
    with lasting_imports("opensim"):
        from pipeline.osim.inverse_dynamics import run_inverse_dynamics

    study = _study(args)
    if (args.external_loads is None) != (args.grf is None):
        raise ConfigError(describe(None, "--external-loads and --grf go together",
                                   "give both or neither"))
    run_inverse_dynamics(args.model, args.ik, out_sto=args.out,
                         external_loads=args.external_loads, grf=args.grf,
                         cutoff_hz=float(study.config["opensim"]["id"]["cutoff_hz"]))
    _warn_implausible_moments(args.out, float(study.subject(args.subject)["mass_kg"]),
                              f"{args.subject}/{args.trial}")


#: Peak joint moments above this per kg of body mass hint at a units or mass mistake (walking
#: peaks near 1.5-2 N m/kg, sprinting and jumping near 3-4).
MAX_MOMENT_NM_PER_KG = 5.0


def _warn_implausible_moments(sto: str | Path, mass_kg: float, trial: str) -> None:
    import numpy as np

    from pipeline.io.opensim_files import read_sto

    table = read_sto(sto, fix="rerun the ID step")
    for i, label in enumerate(table.labels):
        if not label.endswith("_moment") or not len(table.time_s):
            continue
        peak = float(np.nanmax(np.abs(table.data[:, i])))
        if peak > MAX_MOMENT_NM_PER_KG * mass_kg:
            log.warning("%s: trial %s, %s peaks at %.1f N m = %.1f N m/kg, above the plausible "
                        "%.0f N m/kg for a %.1f kg subject. Fix: check mass_kg in subjects.tsv, "
                        "the C3D units (POINT:UNITS, force-plate units) and the force-plate "
                        "assignment", sto, trial, label, peak, peak / mass_kg,
                        MAX_MOMENT_NM_PER_KG, mass_kg)


def _muscle_analysis(args: argparse.Namespace) -> None:
    with lasting_imports("opensim"):
        from pipeline.osim.muscle_analysis import run_muscle_analysis

    study = _study(args)
    mtus = (args.muscles or list(study.model_setup(args.subject).get("excitations") or {})
            or None)
    window = None
    if args.start_s is not None or args.end_s is not None:
        window = (-np.inf if args.start_s is None else args.start_s,
                  np.inf if args.end_s is None else args.end_s)
    run_muscle_analysis(args.model, args.ik, out_dir=args.out_dir, mtu_names=mtus,
                        coordinate_names=args.coordinates or _dofs(study, args.subject),
                        time_range_s=window)


def _collect(args: argparse.Namespace) -> None:
    with lasting_imports():
        from pipeline.io.nms_inputs import write_nms_trial
        from pipeline.osim.collect import analysis_window, collect_nms_trial

    study = _study(args)
    setup = study.model_setup(args.subject)
    dropped = set(setup.get("drop_emg") or [])
    excitations = {mtu: {e: w for e, w in (mapping or {}).items() if e not in dropped}
                   for mtu, mapping in (setup.get("excitations") or {}).items()}
    if not excitations:
        raise MuscleAnalysisError(describe(study.root / "config.yaml", "no MTUs mapped to EMG",
                                           "fill models.<model>.excitations"))
    row = study.trial(args.subject, args.trial)
    window = analysis_window(args.events, start_s=row.get("start_s"), end_s=row.get("end_s"))
    meta = {"subject": args.subject, "trial": args.trial, "role": row.get("role"),
            "model": study.subject(args.subject)["model"], "package_version": __version__,
            "config_sha256": config_sha256(study.config),
            "ik": args.ik, "events": args.events}
    trial = collect_nms_trial(args.emg, args.id, args.muscle_analysis_dir,
                              excitations=excitations, dofs=_dofs(study, args.subject),
                              window_s=window, meta=meta)
    from pipeline.study_data_checks import MIN_CALIBRATION_FRAMES

    if row.get("role") in ("calibration", "validation") and (
            len(trial.time_s) < MIN_CALIBRATION_FRAMES):
        raise MuscleAnalysisError(describe(
            args.events or study.root / "trials.tsv", f"trial {args.subject}/{args.trial} "
            f"({row.get('role')}) has {len(trial.time_s)} frame(s) in its analysis window, fewer "
            f"than the {MIN_CALIBRATION_FRAMES} needed to calibrate",
            "widen start_s/end_s in trials.tsv, check the trial's events, or set role none"))
    write_nms_trial(args.out, trial)
    log.info("NMS inputs of %s/%s: %d MTUs x %d DOFs x %d frames -> %s", args.subject,
             args.trial, len(trial.mtu_names), len(trial.dof_names), len(trial.time_s),
             args.out)


def _common(parser: argparse.ArgumentParser, *, trial: bool) -> None:
    parser.add_argument("--study", default=".", help="study folder (default: .)")
    parser.add_argument("--subject", required=True)
    if trial:
        parser.add_argument("--trial", required=True)


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "scale", _scale,
                    "scale the subject's generic model to its static trial (ScaleTool)")
    _common(p, trial=False)
    p.add_argument("--static-trc", required=True, help="static trial markers (.trc)")
    p.add_argument("--out", required=True, help="scaled model (.osim)")
    p.add_argument("--report", required=True, help="JSON report: scale factors, marker errors")

    p = add_command(subparsers, "ik", _ik, "inverse kinematics of a trial (.trc -> .mot)")
    _common(p, trial=True)
    p.add_argument("--model", required=True, help="scaled model (.osim)")
    p.add_argument("--trc", required=True, help="trial markers (.trc)")
    p.add_argument("--out", required=True, help="coordinates (.mot)")

    p = add_command(subparsers, "id", _id, "inverse dynamics of a trial (.mot -> .sto)")
    _common(p, trial=True)
    p.add_argument("--model", required=True)
    p.add_argument("--ik", required=True, help="coordinates (.mot) from the ik step")
    p.add_argument("--external-loads", default=None, help="ExternalLoads XML (optional)")
    p.add_argument("--grf", default=None, help="GRF .mot named by the external loads")
    p.add_argument("--out", required=True, help="generalized forces (.sto)")

    p = add_command(subparsers, "muscle-analysis", _muscle_analysis,
                    "MTU lengths and moment arms of the mapped MTUs about the calibrated DOFs")
    _common(p, trial=False)
    p.add_argument("--trial", default=None, help="trial name (for the log only)")
    p.add_argument("--model", required=True)
    p.add_argument("--ik", required=True)
    p.add_argument("--out-dir", required=True,
                   help="folder for mtu_length.sto and moment_arm_<coord>.sto")
    p.add_argument("--start-s", type=float, default=None,
                   help="analyse frames from this time on (default: the first)")
    p.add_argument("--end-s", type=float, default=None,
                   help="analyse frames up to this time (default: the last)")
    p.add_argument("--muscles", nargs="+", default=None,
                   help="MTUs to analyse (default: those of models.<model>.excitations)")
    p.add_argument("--coordinates", nargs="+", default=None,
                   help="coordinates for moment arms (default: models.<model>.dofs)")

    p = add_command(subparsers, "collect", _collect,
                    "collect a trial's EMG, lengths, moment arms and ID moments (NMS inputs)")
    _common(p, trial=True)
    p.add_argument("--emg", required=True, help="EMG excitations (.sto, columns = EMG names)")
    p.add_argument("--ik", default=None, help="coordinates (.mot; recorded as a source only)")
    p.add_argument("--id", required=True, help="ID generalized forces (.sto)")
    p.add_argument("--muscle-analysis-dir", required=True,
                   help="muscle-analysis output folder, or a folder of OpenSim AnalyzeTool "
                        "MuscleAnalysis outputs (*_Length.sto, *_MomentArm_<coordinate>.sto)")
    p.add_argument("--events", default=None, help='events.json ({"windows": [[t0, t1], ...]})')
    p.add_argument("--out", required=True, help="NMS input file (.npz)")
