"""The demo-study generator: a synthetic, physically consistent study with known truth.

``generate_demo_study(directory, *, seed=0, small=False)`` writes C3D files, the study sheets,
``config.yaml`` and ``truth.json``. See :mod:`pipeline.synth.study` for the layout and
:mod:`pipeline.synth.subject` for how consistency is achieved.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pathlib import Path

__all__ = ["generate_demo_study"]


def generate_demo_study(directory: str | Path, *, seed: int = 0, small: bool = False) -> Path:
    """Write the demo study to ``directory`` (imports OpenSim and torch lazily)."""
    from pipeline.synth.study import generate_demo_study as _generate

    return _generate(directory, seed=seed, small=small)


