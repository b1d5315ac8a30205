"""Loading OpenSim models and listing what they hold."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pipeline.errors import ModelError, PipelineError, describe


def load_model(path: str | Path, *, error_cls: type[PipelineError] = ModelError,
               fix: str | None = None) -> Any:
    """Load an ``.osim`` file and initialise its system; raise ``error_cls`` with a fix if not.

    Keep a Python reference to the returned model for as long as anything uses it.
    """
    import opensim as osim

    path = Path(path)
    fix = fix or ("check the path, or delete the file and rerun the step that writes it "
                  "(the scale step for results/<subject>/model/scaled.osim)")
    if not path.is_file():
        raise error_cls(describe(path, "model file does not exist", fix))
    try:
        model = osim.Model(str(path))
        model.initSystem()
    except RuntimeError as exc:
        first = " ".join(str(exc).split())[:300]
        raise error_cls(describe(path, f"not a valid OpenSim model ({first})", fix)) from exc
    return model


def muscle_names(model: Any) -> list[str]:
    muscles = model.getMuscles()
    return [muscles.get(i).getName() for i in range(muscles.getSize())]


def coordinate_names(model: Any) -> list[str]:
    coords = model.getCoordinateSet()
    return [coords.get(i).getName() for i in range(coords.getSize())]
