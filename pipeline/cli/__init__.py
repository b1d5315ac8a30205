"""Subcommands. Each module defines ``register(subparsers)``; ``pipeline.__main__`` finds them all.

:data:`COMMANDS` names the module of each subcommand, so a call imports only its own module (a
workflow job should not pay for importing every other command's dependencies); a test checks it
against what the modules register.

Shared argument helpers live in :mod:`pipeline.cli._common` (modules whose name starts with an
underscore are not subcommand modules).
"""

#: Subcommand -> module of :mod:`pipeline.cli` that registers it.
COMMANDS = {
    "bench": "bench", "calibrate": "calibrate", "execute": "calibrate",
    "ceinms-export": "ceinms", "ceinms-evaluate": "ceinms", "demo-study": "demo",
    "import-model": "given_files", "import-file": "given_files", "scale": "opensim_stage",
    "ik": "opensim_stage", "id": "opensim_stage", "muscle-analysis": "opensim_stage",
    "collect": "opensim_stage", "markers": "preprocess", "forceplates": "preprocess",
    "emg-envelope": "preprocess", "emg-maxima": "preprocess", "emg-normalise": "preprocess",
    "events": "preprocess", "figures": "report", "report": "report", "new-study": "study",
    "validate-study": "study", "calibrate-synergy": "synergies", "experiment": "synergies",
    "run": "workflow", "defaults": "workflow",
}
