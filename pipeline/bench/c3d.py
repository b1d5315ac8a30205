"""Benchmark: read and preprocess a synthetic 10 s C3D (60 markers, 2 plates, 16 EMG at 2 kHz).

``python -m pipeline bench c3d --json FILE`` writes ``{"read_s", "markers_s", "forceplates_s",
"emg_s", "total_s", ...}`` (medians of repeated runs). :func:`write_synthetic_c3d` is also the
test fixture: its plates carry a known ground reaction (half-sine vertical force, moving COP,
known free moment) so the force-plate maths can be checked against the truth.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from pipeline.fileio import write_json_atomic

NAME = "c3d"
HELP = "time C3D reading + marker/force-plate/EMG preprocessing on a synthetic 10 s trial"
log = logging.getLogger(__name__)

LAB_FRAME = {"x": "+x", "y": "+z", "z": "-y"}
# AMTI-like plates: corner 1 at (+x, +y); plate x = c1 - c2 = lab -y, plate z into the floor.
PLATE_SIZE_MM = (508.0, 464.0)
PLATE_CENTRES_MM = ((300.0, 250.0, 0.0), (900.0, -250.0, 0.0))
ORIGIN_MM = (1.5, -0.8, 38.0)  # surface centre -> sensor origin, plate coordinates


def plate_corners_mm(centre: tuple[float, float, float]) -> np.ndarray:
    cx, cy, cz = centre
    hx, hy = PLATE_SIZE_MM[0] / 2, PLATE_SIZE_MM[1] / 2
    return np.array([[cx + hx, cy + hy, cz], [cx + hx, cy - hy, cz],
                     [cx - hx, cy - hy, cz], [cx - hx, cy + hy, cz]])


def true_contact(times_s: np.ndarray, *, plate: int, duration_s: float) -> dict[str, np.ndarray]:
    """Known reaction on plate ``plate`` (0-based) in the lab frame, SI: force, cop, free moment."""
    t0 = 0.2 * duration_s + 0.3 * duration_s * plate
    t1 = t0 + 0.35 * duration_s
    phase = np.clip((times_s - t0) / (t1 - t0), 0.0, 1.0)
    on = (times_s > t0) & (times_s < t1)
    fz = np.where(on, 700.0 * np.sin(np.pi * phase), 0.0)
    centre = np.array(PLATE_CENTRES_MM[plate]) * 1e-3
    force = np.column_stack([0.15 * fz * np.cos(np.pi * phase), 0.05 * fz, fz])
    cop = np.column_stack([centre[0] - 0.1 + 0.2 * phase, centre[1] + 0.02 * np.sin(
        2 * np.pi * phase), np.full_like(phase, centre[2])])
    free = np.column_stack([np.zeros_like(fz), np.zeros_like(fz), 0.004 * fz])
    return {"force_n": force, "cop_m": np.where(on[:, None], cop, 0.0), "free_nm": free,
            "on": on}


def _plate_channels(contact: dict[str, np.ndarray], corners_mm: np.ndarray) -> np.ndarray:
    """Fx Fy Fz (N) and Mx My Mz (N mm) about the sensor origin, plate coordinates."""
    from pipeline.signals.forceplates import plate_axes

    rot = plate_axes(corners_mm * 1e-3)
    centre = corners_mm.mean(axis=0) * 1e-3
    f_p = contact["force_n"] @ rot
    r_p = np.where(contact["on"][:, None], (contact["cop_m"] - centre) @ rot, 0.0)
    m_c = np.cross(r_p, f_p) + contact["free_nm"] @ rot
    d = np.array(ORIGIN_MM) * 1e-3
    m_o = m_c + np.cross(f_p, d)
    return np.column_stack([f_p, m_o * 1e3])


def write_synthetic_c3d(path: str | Path, *, duration_s: float = 10.0, n_markers: int = 60,
                        point_rate_hz: float = 100.0, analog_rate_hz: float = 2000.0,
                        n_plates: int = 2, n_emg: int = 16, seed: int = 0,
                        gap: tuple[int, int, int] | None = None) -> dict[str, Any]:
    """Write a synthetic trial with ezc3d; return its truth (times, EMG envelopes, contacts).

    Markers: RHEE and LHEE stand on plates 1 and 2 during their contacts; the rest are smooth
    random trajectories (mm). ``gap`` = (marker, first frame, n frames) blanks samples.
    EMG ``EMG01``.. are band-limited noise (20-450 Hz) times a known envelope (mV).
    """
    import ezc3d
    from scipy import signal

    rng = np.random.default_rng(seed)
    n_frames = int(round(duration_s * point_rate_hz))
    ratio = int(round(analog_rate_hz / point_rate_hz))
    t_pt = np.arange(n_frames) / point_rate_hz
    t_an = np.arange(n_frames * ratio) / analog_rate_hz
    labels = ["RHEE", "LHEE"] + [f"M{i:02d}" for i in range(n_markers - 2)]
    xyz = np.empty((n_frames, n_markers, 3))
    for m in range(n_markers):
        freq = rng.uniform(0.3, 1.5, 3)
        xyz[:, m] = rng.uniform(-500, 500, 3) + 50 * np.sin(2 * np.pi * np.outer(t_pt, freq))
        xyz[:, m, 2] += 1000
    analog_blocks, analog_labels, units, contacts = [], [], [], []
    for k in range(n_plates):
        contact = true_contact(t_an, plate=k, duration_s=duration_s)
        contacts.append(contact)
        corners = plate_corners_mm(PLATE_CENTRES_MM[k])
        analog_blocks.append(_plate_channels(contact, corners))
        analog_labels += [f"{q}{k + 1}" for q in ("Fx", "Fy", "Fz", "Mx", "My", "Mz")]
        units += ["N"] * 3 + ["Nmm"] * 3
        heel = 0 if k == 0 else 1
        cop_pt = np.column_stack([np.interp(t_pt, t_an, contact["cop_m"][:, j]) for j in range(3)])
        on_pt = np.interp(t_pt, t_an, contact["on"].astype(float)) > 0.5
        xyz[on_pt, heel] = cop_pt[on_pt] * 1e3 + [0.0, 0.0, 60.0]
    sos = signal.butter(4, (20.0, 450.0), btype="bandpass", fs=analog_rate_hz, output="sos")
    envelopes = np.empty((len(t_an), n_emg))
    for c in range(n_emg):
        envelopes[:, c] = 0.1 + 0.9 * (0.5 + 0.5 * np.sin(2 * np.pi * (0.4 + 0.05 * c) * t_an
                                                            + c)) ** 2
        noise = signal.sosfilt(sos, rng.normal(size=len(t_an)))
        analog_blocks.append((envelopes[:, c] * noise / noise.std() * 0.5 + 0.02)[:, None])
        analog_labels.append(f"EMG{c + 1:02d}")
        units.append("mV")
    if gap is not None:
        xyz[gap[1]:gap[1] + gap[2], gap[0]] = 0.0
    c3d = ezc3d.c3d()
    params = c3d["parameters"]
    params["POINT"]["RATE"]["value"] = [point_rate_hz]
    params["POINT"]["LABELS"]["value"] = labels
    params["POINT"]["UNITS"]["value"] = ["mm"]
    params["ANALOG"]["RATE"]["value"] = [analog_rate_hz]
    params["ANALOG"]["LABELS"]["value"] = analog_labels
    params["ANALOG"]["UNITS"]["value"] = units
    points = np.ones((4, n_markers, n_frames))
    points[:3] = np.transpose(xyz, (2, 1, 0))
    c3d["data"]["points"] = points
    c3d["data"]["analogs"] = np.column_stack(analog_blocks).T[None]
    if n_plates:
        corners = np.stack([plate_corners_mm(PLATE_CENTRES_MM[k]).T for k in range(n_plates)], 2)
        c3d.add_parameter("FORCE_PLATFORM", "USED", [n_plates])
        c3d.add_parameter("FORCE_PLATFORM", "TYPE", [2] * n_plates)
        c3d.add_parameter("FORCE_PLATFORM", "CORNERS", corners.tolist())
        c3d.add_parameter("FORCE_PLATFORM", "ORIGIN",
                          np.tile(np.array(ORIGIN_MM)[:, None], (1, n_plates)).tolist())
        channel = np.arange(1, 6 * n_plates + 1).reshape(n_plates, 6).T
        c3d.add_parameter("FORCE_PLATFORM", "CHANNEL", channel.tolist())
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    c3d.write(str(path))
    return {"analog_times_s": t_an, "marker_times_s": t_pt, "emg_envelopes": envelopes,
            "contacts": contacts, "labels": labels}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--repeats", type=int, default=3, help="timed runs (median reported)")


def _once(path: Path) -> dict[str, float]:
    from pipeline.io.c3d import read_c3d
    from pipeline.signals.emg import envelope_table
    from pipeline.signals.grf import ground_reactions
    from pipeline.signals.markers import process_markers

    t0 = time.perf_counter()
    rec = read_c3d(path)
    t1 = time.perf_counter()
    process_markers(rec, lab_frame=LAB_FRAME, cutoff_hz=6.0)
    t2 = time.perf_counter()
    ground_reactions(rec, lab_frame=LAB_FRAME, threshold_n=20.0, cutoff_hz=6.0,
                     foot_markers={"right": ["RHEE"], "left": ["LHEE"]})
    t3 = time.perf_counter()
    envelope_table(rec.analogs, {f"EMG{c + 1:02d}": f"m{c}" for c in range(16)},
                   first_time_s=rec.first_time_s, options={})
    t4 = time.perf_counter()
    return {"read_s": t1 - t0, "markers_s": t2 - t1, "forceplates_s": t3 - t2,
            "emg_s": t4 - t3, "total_s": t4 - t0}


def run(args: argparse.Namespace) -> dict[str, Any]:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "bench.c3d"
        write_synthetic_c3d(path)
        runs = [_once(path) for _ in range(max(1, args.repeats))]
    result: dict[str, Any] = {k: float(np.median([r[k] for r in runs])) for k in runs[0]}
    result.update({"duration_s": 10.0, "n_markers": 60, "n_plates": 2, "n_emg": 16,
                   "analog_rate_hz": 2000.0, "repeats": len(runs)})
    if getattr(args, "json", None):
        write_json_atomic(args.json, result)
    log.info("c3d benchmark: total %.3f s (read %.3f s)", result["total_s"], result["read_s"])
    return result
