"""Preprocessing subcommands: markers, forceplates, emg-envelope, emg-maxima, emg-normalise, events.

Each reads the study's merged config, calls the pure functions in :mod:`pipeline.signals`, and
writes its outputs atomically (nothing is left behind on error).
"""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path
from typing import Any

from pipeline.cli._common import add_command
from pipeline.errors import C3DError, ConfigError, describe
from pipeline.fileio import write_json_atomic
from pipeline.provenance import study_provenance

log = logging.getLogger(__name__)


def _study(args: argparse.Namespace) -> Any:
    from pipeline.study import load_study

    return load_study(args.study)


def _optional_time(value: Any) -> float | None:
    """A start_s/end_s cell: None when empty or NaN."""
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return None if value != value else value


def _trial_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--study", required=True, help="study folder")
    parser.add_argument("--subject", required=True)
    parser.add_argument("--trial", required=True)


def cmd_markers(args: argparse.Namespace) -> None:
    from pipeline.io.c3d import read_c3d, require_markers
    from pipeline.io.opensim_files import write_trc
    from pipeline.signals.markers import process_markers
    from pipeline.study_data_checks import MIN_CALIBRATION_FRAMES as MIN_DYNAMIC_FRAMES

    study = _study(args)
    cfg = study.config["markers"]
    recording = read_c3d(study.c3d_path(args.subject, args.trial))
    static = study.trial(args.subject, args.trial)["kind"] == "static"
    require_markers(recording, min_frames=1 if static else MIN_DYNAMIC_FRAMES)
    recording = _mapped_markers(study, args.subject, recording)
    table = process_markers(
        recording, lab_frame=study.config["lab_frame"], cutoff_hz=cfg["cutoff_hz"],
        filter_order=cfg["filter_order"], correct_double_pass=cfg["correct_double_pass"],
        max_gap_s=cfg["max_gap_s"], long_gap=cfg["long_gap"])
    from pipeline.signals.frame_check import check_lab_frame

    check_lab_frame(table.xyz_m, lab_frame=study.config["lab_frame"], file=recording.path)
    write_trc(args.out, table, orig_start_frame=recording.first_frame + 1)
    log.info("wrote %s (%d markers, %d frames)", args.out, len(table.labels), len(table.times_s))


def _mapped_markers(study: Any, subject: str, recording: Any) -> Any:
    """The recording with its markers renamed per ``models.<model>.marker_names`` (unmapped
    markers dropped; subject prefixes removed with ``strip_marker_prefix``)."""
    import dataclasses

    from pipeline.signals.marker_names import select_markers

    setup = study.model_setup(subject)
    names = setup.get("marker_names") or {}
    strip = bool(setup.get("strip_marker_prefix"))
    if not names and not strip:
        return recording
    markers = recording.markers
    chosen = select_markers(markers.labels, names=names, strip_marker_prefix=strip,
                            file=recording.path)
    idx = list(chosen.indices)
    selected = dataclasses.replace(markers, labels=chosen.names, xyz_m=markers.xyz_m[:, idx],
                                   residuals=markers.residuals[:, idx])
    return dataclasses.replace(recording, markers=selected)


def cmd_forceplates(args: argparse.Namespace) -> None:
    from pipeline.io.c3d import read_c3d, require_markers
    from pipeline.io.opensim_files import write_sto
    from pipeline.osim.external_loads import write_external_loads
    from pipeline.signals.grf import ground_reactions

    study = _study(args)
    cfg = study.config["force_plates"]
    recording = read_c3d(study.c3d_path(args.subject, args.trial))
    override = study.plate_assignment(args.subject, args.trial)
    if override is None:  # the automatic plate -> foot assignment needs the foot markers
        require_markers(recording)
    grf = ground_reactions(
        recording, lab_frame=study.config["lab_frame"], threshold_n=cfg["threshold_n"],
        cutoff_hz=cfg["cutoff_hz"], filter_order=cfg["filter_order"],
        correct_double_pass=cfg["correct_double_pass"], foot_markers=cfg["foot_markers"],
        assignment=override)
    feet = study.model_setup(args.subject).get("foot_bodies") or {}
    bodies = {"r": args.right_body or feet.get("right", "calcn_r"),
              "l": args.left_body or feet.get("left", "calcn_l")}
    write_sto(args.mot, grf.table)
    try:
        write_external_loads(args.xml, datafile=Path(args.mot).name, bodies=bodies)
    except BaseException:
        Path(args.mot).unlink(missing_ok=True)
        raise
    log.info("wrote %s and %s (%d contacts)", args.mot, args.xml, len(grf.contacts))


def cmd_emg_envelope(args: argparse.Namespace) -> None:
    from pipeline.io.c3d import read_c3d
    from pipeline.io.opensim_files import write_sto
    from pipeline.signals.emg import envelope_table

    study = _study(args)
    setup = study.model_setup(args.subject)
    dropped = set(setup.get("drop_emg") or [])
    if dropped:
        log.info("EMG dropped by models.<model>.drop_emg (their MTUs count as unrecorded): %s",
                 ", ".join(sorted(dropped)))
    if args.emg_sto:
        analogs, first_time_s = _raw_emg_analogs(study, args, dropped=dropped)
        kept = {n: n for n in analogs.labels if n not in dropped}
        channels, path = {n: n for n in analogs.labels}, Path(args.emg_sto)
    else:
        path = study.c3d_path(args.subject, args.trial)
        recording = read_c3d(path)
        if not recording.analogs.labels:
            raise C3DError(describe(path, "has no analog channels, so no EMG",
                                    "export the trial with its EMG channels"))
        analogs, first_time_s = recording.analogs, recording.first_time_s
        channels = dict(setup["emg_channels"])
        kept = {label: name for label, name in channels.items() if name not in dropped}
    # The quality step names each flagged channel once (trial, channel, fix); the envelope's
    # own channel checks then speak only of the channels it did not flag.
    quality = (_emg_quality(args, study, analogs, first_time_s, channels, path, dropped)
               if args.quality else None)
    flagged = set() if quality is None else {
        n for n, q in quality["channels"].items() if q["flags"]}
    table = envelope_table(analogs, kept, first_time_s=first_time_s,
                           options=study.config["emg"], file=path, quiet_channels=flagged)
    if quality is not None:
        write_json_atomic(args.quality, quality)
    write_sto(args.out, table)
    log.info("wrote %s (%d channels%s)", args.out, len(table.labels),
             f", from {args.emg_sto}" if args.emg_sto else "")


def _emg_quality(args: argparse.Namespace, study: Any, analogs: Any, first_time_s: float,
                 channels: dict[str, str], path: Path, dropped: set[str]) -> dict[str, Any]:
    """emg_quality.json of every configured channel (dropped ones too: the report shows why)."""
    import numpy as np

    from pipeline.signals.emg import emg_envelope, select_channels
    from pipeline.signals.emg_quality import trial_quality

    opts = study.config["emg"]
    names, raw = select_channels(analogs, channels, file=path)
    env = emg_envelope(raw, rate_hz=analogs.rate_hz, file=path,
                       bandpass_hz=tuple(opts["bandpass_hz"]),
                       bandpass_order=int(opts["bandpass_order"]),
                       lowpass_hz=float(opts["lowpass_hz"]),
                       lowpass_order=int(opts["lowpass_order"]),
                       remove_offset=bool(opts["remove_offset"]),
                       correct_double_pass=bool(opts["correct_double_pass"]))
    times = first_time_s + np.arange(env.shape[0]) / analogs.rate_hz
    quality = trial_quality(names, list(channels), raw, env, rate_hz=analogs.rate_hz,
                            times_s=times, options=opts.get("quality") or {},
                            trial=f"{args.subject}/{args.trial}", dropped=dropped)
    quality["dropped"] = sorted(dropped)
    quality["provenance"] = study_provenance(study.config, [path])
    return quality


def _raw_emg_analogs(study: Any, args: argparse.Namespace, *,
                     dropped: set[str]) -> tuple[Any, float]:
    """The raw EMG ``.sto`` of ``--emg-sto`` as analog channels, and its first time.

    Channels in ``dropped`` (``drop_emg``) need not be in the file; where they are, they come
    last (for the quality report), and the envelopes leave them out.
    """
    import numpy as np

    from pipeline.cli.given_files import emg_names
    from pipeline.io.c3d import Analogs
    from pipeline.osim.given import raw_emg_table

    names = emg_names(study.model_setup(args.subject))
    raw, rate_hz = raw_emg_table(args.emg_sto, emg_names=[n for n in names if n not in dropped],
                                 optional_names=[n for n in names if n in dropped])
    analogs = Analogs(raw.labels, rate_hz, ("",) * len(raw.labels), np.asarray(raw.data))
    return analogs, float(raw.time_s[0])


def cmd_emg_maxima(args: argparse.Namespace) -> None:
    from pipeline.io.opensim_files import read_sto
    from pipeline.signals.emg import envelope_maxima

    study = _study(args)
    study.subject(args.subject)  # an unknown subject is named as such
    mvc = study.trials_of(args.subject, kind="mvc")
    source = "mvc" if mvc else "dynamic"
    if not mvc:
        log.warning("subject %s has no MVC trial: EMG is normalised by the maximum envelope of "
                    "its dynamic trials", args.subject)
    if not args.envelopes:
        raise ConfigError(describe(Path(args.study) / "trials.tsv", f"subject {args.subject} "
                                   "has no MVC or dynamic trial to normalise EMG with",
                                   "add an MVC trial (kind mvc) for the subject"))
    maxima = envelope_maxima(read_sto(p) for p in args.envelopes)
    write_json_atomic(args.out, {
        "subject": args.subject, "source": source, "units": "envelope units of the C3D channel",
        "envelopes": [str(p) for p in args.envelopes], "maxima": maxima,
        "provenance": study_provenance(study.config, args.envelopes),
    })
    log.info("wrote %s from %d %s envelope(s)", args.out, len(args.envelopes), source)


def cmd_emg_normalise(args: argparse.Namespace) -> None:
    from pipeline.io.opensim_files import read_sto, read_trc, write_sto
    from pipeline.signals.emg import normalise

    maxima = json.loads(Path(args.maxima).read_text(encoding="utf-8"))["maxima"]
    if args.markers_trc:
        times = read_trc(args.markers_trc).times_s
    elif args.time_base:
        times = read_sto(args.time_base).time_s
    else:
        raise ConfigError(describe(None, "emg-normalise needs a time base",
                                   "pass --markers-trc or --time-base"))
    table = normalise(read_sto(args.envelope), maxima, times_s=times, file=args.envelope)
    write_sto(args.out, table)
    log.info("wrote %s (%d channels, %d rows)", args.out, len(table.labels), len(times))


def cmd_events(args: argparse.Namespace) -> None:
    from pipeline.io.c3d import read_c3d
    from pipeline.signals.events import stance_phases, trial_windows
    from pipeline.signals.forceplates import plate_wrenches

    study = _study(args)
    row = study.trial(args.subject, args.trial)
    recording = read_c3d(study.c3d_path(args.subject, args.trial))
    fp = study.config["force_plates"]
    side = study.config["cycles"]["side"]
    stance, stance_sides = None, None
    if recording.plates and study.model_setup(args.subject)["force_plates"]:
        wrenches = plate_wrenches(recording, threshold_n=fp["threshold_n"],
                                  cutoff_hz=fp["cutoff_hz"], filter_order=fp["filter_order"],
                                  correct_double_pass=fp["correct_double_pass"])
        stance = {str(w.number): stance_phases(recording.analog_times_s, w.normal_force_n,
                                               threshold_n=fp["threshold_n"]) for w in wrenches}
        stance_sides = _contact_sides(study, args, recording, wrenches, required=side != "any")
    ev = study.config["events"]
    result = trial_windows(
        source=ev["source"], events=recording.events, stance=stance,
        kinematics=(recording.marker_times_s, recording.markers.xyz_m),
        start_s=_optional_time(row.get("start_s")),
        end_s=_optional_time(row.get("end_s")), min_cycle_s=ev["min_cycle_s"],
        file=str(recording.path), stance_sides=stance_sides, side=side)
    spec = str(row.get("cycles") or "").strip()
    if spec:
        from pipeline.signals.events import select_cycles

        result["all_windows"], all_sides = result["windows"], result["sides"]
        result["windows"], result["cycle_numbers"] = select_cycles(
            result["windows"], spec, file=str(recording.path))
        result["sides"] = [all_sides[i - 1] for i in result["cycle_numbers"]]
        result["cycles"] = spec
        log.info("%s/%s: cycles %s of %d%s: %s", args.subject, args.trial, spec,
                 len(result["all_windows"]), "" if side == "any" else f" {side}-foot",
                 result["windows"])
    result["provenance"] = study_provenance(study.config, [recording.path])
    write_json_atomic(args.out, result)
    log.info("wrote %s (%d windows from %s)", args.out, len(result["windows"]), result["source"])


def _contact_sides(study: Any, args: argparse.Namespace, recording: Any, wrenches: Any, *,
                   required: bool) -> dict[str, list[str]] | None:
    """Plate number -> the foot letter (r, l, ?) of each of its contacts, in time order, as the
    forceplates step assigns them; None when no foot can be told and ``required`` is False."""
    from pipeline.errors import PipelineError
    from pipeline.signals.forceplates import assign_feet
    from pipeline.signals.grf import SIDES, foot_trajectories

    fp = study.config["force_plates"]
    override = study.plate_assignment(args.subject, args.trial)
    feet = fp.get("foot_markers") or {}
    try:
        contacts = assign_feet(
            wrenches, foot_xyz_m=foot_trajectories(recording, feet),
            marker_times_s=recording.marker_times_s, analog_times_s=recording.analog_times_s,
            override=override, file=recording.path)
    except PipelineError:
        if required:
            raise
        return None
    sides: dict[str, list[str]] = {}
    for contact in sorted(contacts, key=lambda c: (c.plate, c.start)):
        sides.setdefault(str(contact.plate), []).append(SIDES.get(contact.foot, "?"))
    return sides


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "markers", cmd_markers,
                    "C3D markers -> gap-filled, filtered .trc in the OpenSim frame")
    _trial_args(p)
    p.add_argument("--out", required=True, help="output .trc")

    p = add_command(subparsers, "forceplates", cmd_forceplates,
                    "C3D force plates -> per-foot GRF .mot and ExternalLoads .xml")
    _trial_args(p)
    p.add_argument("--mot", required=True, help="output GRF .mot")
    p.add_argument("--xml", required=True, help="output ExternalLoads .xml")
    p.add_argument("--right-body", default=None, help="body the right GRF is applied to "
                   "(default: models.<model>.foot_bodies.right, else calcn_r)")
    p.add_argument("--left-body", default=None, help="body the left GRF is applied to "
                   "(default: models.<model>.foot_bodies.left, else calcn_l)")

    p = add_command(subparsers, "emg-envelope", cmd_emg_envelope,
                    "C3D EMG -> un-normalised linear envelopes .sto")
    _trial_args(p)
    p.add_argument("--emg-sto", default=None,
                   help="raw EMG .sto given by the study (columns = EMG names) instead of the C3D")
    p.add_argument("--out", required=True, help="output .sto")
    p.add_argument("--quality", default=None,
                   help="output JSON of EMG quality per channel (SNR, flags, warnings)")

    p = add_command(subparsers, "emg-maxima", cmd_emg_maxima,
                    "maximum envelope per EMG channel over a subject's MVC (or dynamic) trials")
    p.add_argument("--study", required=True, help="study folder")
    p.add_argument("--subject", required=True)
    p.add_argument("--envelopes", nargs="*", default=[], help="emg_envelope.sto files")
    p.add_argument("--out", required=True, help="output JSON")

    p = add_command(subparsers, "emg-normalise", cmd_emg_normalise,
                    "envelope / maxima on the marker time base, clipped to [0, 1] -> emg.sto")
    p.add_argument("--envelope", required=True, help="emg_envelope.sto of the trial")
    p.add_argument("--maxima", required=True, help="emg_maxima.json of the subject")
    p.add_argument("--markers-trc", default=None, help="markers.trc giving the time base")
    p.add_argument("--time-base", default=None,
                   help="or a .mot/.sto giving the time base (e.g. ik.mot)")
    p.add_argument("--out", required=True, help="output emg.sto")

    p = add_command(subparsers, "events", cmd_events,
                    "movement cycles and stance phases -> events.json of time windows")
    _trial_args(p)
    p.add_argument("--out", required=True, help="output JSON")
