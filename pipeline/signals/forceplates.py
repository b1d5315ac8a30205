"""Force plates: ground reaction force, centre of pressure and free moment, per plate and per foot.

Plate frame (C3D convention, as ezc3d and BTK): x = corner1 - corner2, y = corner1 - corner4,
z = x cross y (into the plate for the usual corner order); its origin is the centre of the working
surface (mean of the corners). In plate coordinates, for a wrench (F, M_c) about the surface
centre, the centre of pressure on the surface is ``x = -M_cy / F_z``, ``y = M_cx / F_z`` and the
free moment is ``T_z = M_cz - (x F_y - y F_x)``.

Types 2/4: FORCE_PLATFORM:ORIGIN ``d`` is the vector from the surface centre to the sensor origin
(in plate coordinates, z into the plate, so d_z > 0); ``M_c = M_o + F x (-d)``. Vendors that store
the opposite vector (d_z < 0) are handled by flipping it (as ezc3d does). Type 1 gives the COP
and T_z directly; type 3 (Kistler, 8 channels) uses the sensor offsets a, b = ORIGIN x, y.

Processing order: the unloaded offset of each channel is removed; COP and free moment are computed
from the unfiltered wrench where the normal force exceeds the threshold (NaN elsewhere); the force
is low-pass filtered over the whole trial, the COP and free moment within each contact only; then
every sample whose normal force is under the threshold is set to zero (force, free moment, COP).
Filtering the COP inside each contact (instead of computing it from a filtered wrench, whose
ratio M/F misbehaves where the filtered force ramps up) keeps it on the plate at contact edges.

The output is the reaction on the body: when a plate reports the action force (normal component
peaks the wrong way), the whole wrench is negated.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from pipeline.errors import C3DError, describe
from pipeline.io.c3d import C3DRecording, ForcePlate
from pipeline.signals.filters import design_sos, filtfilt_nan, finite_runs

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PlateWrench:
    """One plate's ground reaction in the lab frame at the analog rate (SI units).

    ``force_n``, ``cop_m`` and ``free_moment_nm`` are (sample, 3); the free moment is along the
    plate normal. ``normal_force_n`` is the reaction component along the upward plate normal;
    ``loaded`` is where it exceeds the threshold. All three arrays are zero where not loaded.
    """

    number: int
    rate_hz: float
    force_n: np.ndarray
    cop_m: np.ndarray
    free_moment_nm: np.ndarray
    normal_force_n: np.ndarray
    loaded: np.ndarray
    corners_m: np.ndarray
    up: np.ndarray


def plate_axes(corners_m: np.ndarray) -> np.ndarray:
    """Rotation R (columns = plate x, y, z in lab coordinates) with ``v_lab = R @ v_plate``."""
    x = corners_m[0] - corners_m[1]
    y = corners_m[0] - corners_m[3]
    z = np.cross(x, y)
    y = np.cross(z, x)
    return np.column_stack([v / np.linalg.norm(v) for v in (x, y, z)])


def centre_wrench(plate: ForcePlate) -> tuple[np.ndarray, np.ndarray]:
    """Force and moment about the working surface's centre, plate coordinates, (sample, 3)."""
    ch = plate.channels_si
    if plate.plate_type in (2, 4):
        force, moment = ch[:, :3], ch[:, 3:6]
        d = plate.origin_m if plate.origin_m[2] >= 0 else -plate.origin_m
        return force, moment + np.cross(force, -d)
    if plate.plate_type == 1:
        force, px, py, tz = ch[:, :3], ch[:, 3], ch[:, 4], ch[:, 5]
        r = np.column_stack([px, py, np.zeros_like(px)])
        moment = np.cross(r, force)
        moment[:, 2] += tz
        return force, moment
    # Type 3: fx12 fx34 fy14 fy23 fz1 fz2 fz3 fz4 with sensor offsets a, b and depth az0.
    a, b = plate.origin_m[0], plate.origin_m[1]
    az0 = -abs(plate.origin_m[2])
    force = np.column_stack([ch[:, 0] + ch[:, 1], ch[:, 2] + ch[:, 3], ch[:, 4:8].sum(axis=1)])
    moment = np.column_stack([
        b * (ch[:, 4] + ch[:, 5] - ch[:, 6] - ch[:, 7]),
        a * (ch[:, 5] + ch[:, 6] - ch[:, 4] - ch[:, 7]),
        b * (ch[:, 1] - ch[:, 0]) + a * (ch[:, 2] - ch[:, 3]),
    ])
    return force, moment + np.cross(force, np.array([0.0, 0.0, az0]))


def unloaded_baseline(force: np.ndarray, moment: np.ndarray, /, *, threshold_n: float,
                      rate_hz: float) -> np.ndarray | None:
    """Median (F, M) over the plate's quiet samples, or None when it is never quiet long enough.

    Quiet samples are within ``threshold_n / 2`` of the typical unloaded normal force (found
    among samples under 50 N or twice the threshold). Amplifier offsets of 10-20 N and 1-2 N m are
    common (e.g. Vicon exports without FORCE_PLATFORM:ZERO) and put the COP tens of centimetres
    off the plate at light loads when left in.
    """
    fz = force[:, 2]
    candidates = np.abs(fz) < max(50.0, 2 * threshold_n)
    if candidates.sum() < max(0.05 * rate_hz, 0.05 * len(fz)):
        return None
    quiet = np.abs(fz - np.median(fz[candidates])) < threshold_n / 2
    if quiet.sum() < max(0.05 * rate_hz, 0.05 * len(fz)):
        return None
    return np.median(np.column_stack([force, moment])[quiet], axis=0)


def plate_wrench(plate: ForcePlate, /, *, threshold_n: float, cutoff_hz: float | None,
                 filter_order: int = 4, correct_double_pass: bool = True,
                 remove_baseline: bool = True, file: str | Path | None = None) -> PlateWrench:
    """Ground reaction of one plate in the lab frame (see the module notes for the order).

    ``remove_baseline`` subtracts the unloaded offset of every channel (types 2-4; type 1 plates
    report the COP directly), see :func:`unloaded_baseline`.
    """
    force, moment = centre_wrench(plate)
    if remove_baseline and plate.plate_type != 1:
        baseline = unloaded_baseline(force, moment, threshold_n=threshold_n, rate_hz=plate.rate_hz)
        if baseline is not None:
            log.debug("%s: plate %d baseline %s", file, plate.number, np.round(baseline, 3))
            force, moment = force - baseline[:3], moment - baseline[3:]
    n = force.shape[0]
    if not plate.geometry_ok:
        if np.nanmax(np.abs(force[:, 2]), initial=0.0) > threshold_n:
            raise C3DError(describe(file, f"force plate {plate.number} is loaded but its "
                                    "FORCE_PLATFORM:CORNERS are invalid",
                                    "re-export the trial with the force plate calibration"))
        log.warning("%s: plate %d has invalid corners and no load; output as zero", file,
                    plate.number)
        zeros = np.zeros((n, 3))
        return PlateWrench(plate.number, plate.rate_hz, zeros, zeros, zeros, np.zeros(n),
                           np.zeros(n, bool), plate.corners_m, np.array([0.0, 0.0, 1.0]))
    rotation = plate_axes(plate.corners_m)
    # Reaction on the body points away from the surface, along -z (plate z points into it).
    # The larger excursion of F_z tells the convention (offsets of tens of N do not).
    if n and np.nanmax(force[:, 2]) > max(threshold_n, -np.nanmin(force[:, 2])):
        log.info("%s: plate %d reports the action force; negated to the ground reaction", file,
                 plate.number)
        force, moment = -force, -moment
    loaded_raw = -force[:, 2] > threshold_n
    with np.errstate(divide="ignore", invalid="ignore"):
        x = np.where(loaded_raw, -moment[:, 1] / force[:, 2], np.nan)
        y = np.where(loaded_raw, moment[:, 0] / force[:, 2], np.nan)
    tz = moment[:, 2] - (x * force[:, 1] - y * force[:, 0])
    if cutoff_hz is not None:
        # Force over the whole trial; COP and free moment within each contact only (NaN
        # elsewhere), so the filter never mixes the COP with the zeros outside contact.
        sos = design_sos(cutoff_hz, rate_hz=plate.rate_hz, order=filter_order,
                         correct_double_pass=correct_double_pass)
        force = filtfilt_nan(sos, force)
        x, y, tz = filtfilt_nan(sos, np.column_stack([x, y, tz])).T
    loaded = (-force[:, 2] > threshold_n) & loaded_raw & np.isfinite(x) & np.isfinite(y)
    centre = plate.corners_m.mean(axis=0)
    flat = np.zeros(n)
    cop_plate = np.column_stack([x, y, flat])
    free_plate = np.column_stack([flat, flat, tz])
    mask = loaded[:, None]
    return PlateWrench(
        number=plate.number, rate_hz=plate.rate_hz,
        force_n=np.where(mask, force @ rotation.T, 0.0),
        cop_m=np.where(mask, cop_plate @ rotation.T + centre, 0.0),
        free_moment_nm=np.where(mask, free_plate @ rotation.T, 0.0),
        normal_force_n=np.where(loaded, -force[:, 2], 0.0), loaded=loaded,
        corners_m=plate.corners_m, up=-rotation[:, 2],
    )


def plate_wrenches(recording: C3DRecording, /, *, threshold_n: float, cutoff_hz: float | None,
                   filter_order: int = 4, correct_double_pass: bool = True,
                   remove_baseline: bool = True) -> list[PlateWrench]:
    """:func:`plate_wrench` for every plate of ``recording``."""
    return [plate_wrench(p, threshold_n=threshold_n, cutoff_hz=cutoff_hz,
                         filter_order=filter_order, correct_double_pass=correct_double_pass,
                         remove_baseline=remove_baseline, file=recording.path)
            for p in recording.plates]


@dataclass(frozen=True)
class Contact:
    plate: int
    start: int  # analog sample index
    stop: int
    foot: str  # "left", "right" or "none"


def assign_feet(wrenches: list[PlateWrench], /, *, foot_xyz_m: Mapping[str, np.ndarray | None],
                marker_times_s: np.ndarray, analog_times_s: np.ndarray,
                override: Mapping[str, str] | None = None, max_distance_m: float = 0.35,
                file: str | Path | None = None) -> list[Contact]:
    """Each contact (run of loaded samples on a plate) given to the nearer foot.

    ``foot_xyz_m`` maps "left"/"right" to a lab-frame marker trajectory (frame, 3) or None.
    ``override`` maps a plate number (as a string) to "left", "right" or "none".
    """
    override = {str(k): v for k, v in (override or {}).items()}
    contacts = []
    for w in wrenches:
        for start, stop in finite_runs(w.loaded):
            forced = override.get(str(w.number))
            if forced is not None:
                contacts.append(Contact(w.number, start, stop, forced))
                continue
            cop = w.cop_m[start:stop]
            t = analog_times_s[start:stop]
            distances = {}
            for foot, xyz in foot_xyz_m.items():
                if xyz is None:
                    continue
                pos = np.column_stack([np.interp(t, marker_times_s, xyz[:, k]) for k in range(3)])
                horizontal = (pos - cop) - np.outer((pos - cop) @ w.up, w.up)
                d = np.linalg.norm(horizontal, axis=1)
                if np.isfinite(d).any():
                    distances[foot] = float(np.nanmedian(d))
            if not distances:
                raise C3DError(describe(file, f"cannot tell which foot is on plate {w.number}: "
                                        "none of force_plates.foot_markers is in the file",
                                        "list this lab's heel/toe marker names in "
                                        "force_plates.foot_markers, or set force_plates."
                                        "assignment for this trial"))
            foot = min(distances, key=distances.__getitem__)
            if distances[foot] > max_distance_m:
                log.warning("%s: plate %d contact at %.2f s is %.2f m from the nearest foot; "
                            "ignored", file, w.number, t[0], distances[foot])
                foot = "none"
            contacts.append(Contact(w.number, start, stop, foot))
            log.info("%s: plate %d, %.3f-%.3f s -> %s", file, w.number, t[0], t[-1], foot)
    return contacts


def foot_wrench(wrenches: list[PlateWrench], contacts: list[Contact], foot: str, /, *,
                rotation: np.ndarray) -> dict[str, np.ndarray]:
    """Sum of the contacts given to ``foot``, in the OpenSim frame (Y up).

    Wrenches are summed about the OpenSim origin; the combined point of application lies on the
    plates' surface height and the torque is the free moment about the vertical (x, z = 0).
    Returns ``force_n``, ``point_m``, ``torque_nm`` (sample, 3).
    """
    n = wrenches[0].force_n.shape[0] if wrenches else 0
    by_number = {w.number: w for w in wrenches}
    force = np.zeros((n, 3))
    moment = np.zeros((n, 3))
    height_sum = np.zeros(n)
    for c in contacts:
        if c.foot != foot:
            continue
        w = by_number[c.plate]
        s = slice(c.start, c.stop)
        f = w.force_n[s] @ rotation.T
        p = w.cop_m[s] @ rotation.T
        force[s] += f
        moment[s] += np.cross(p, f) + w.free_moment_nm[s] @ rotation.T
        height_sum[s] += p[:, 1] * f[:, 1]
    fy = force[:, 1]
    on = np.abs(fy) > 1e-9
    point = np.zeros((n, 3))
    torque = np.zeros((n, 3))
    with np.errstate(divide="ignore", invalid="ignore"):
        h = np.where(on, height_sum / fy, 0.0)
        px = np.where(on, (moment[:, 2] + h * force[:, 0]) / fy, 0.0)
        pz = np.where(on, (h * force[:, 2] - moment[:, 0]) / fy, 0.0)
    point[:, 0], point[:, 1], point[:, 2] = px, h, pz
    torque[:, 1] = np.where(on, moment[:, 1] - (pz * force[:, 0] - px * force[:, 2]), 0.0)
    return {"force_n": force, "point_m": point, "torque_nm": torque}
