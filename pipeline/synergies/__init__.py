"""Muscle synergies: NMF extraction, synergy-hybrid calibration, validation, channel removal.

Public API (paper 002, section III-C):

* :func:`extract_synergies`, :func:`nmf`, :func:`fit_primitives`, :func:`vaf`,
  :func:`vaf_per_muscle` (:mod:`pipeline.synergies.nmf`)
"""

from pipeline.synergies.nmf import (
    NMFResult,
    Synergies,
    extract_synergies,
    fit_primitives,
    nmf,
    vaf,
    vaf_per_muscle,
)

__all__ = [
    "NMFResult",
    "Synergies",
    "extract_synergies",
    "fit_primitives",
    "nmf",
    "vaf",
    "vaf_per_muscle",
]
