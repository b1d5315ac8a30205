"""Subcommands that place a study's given OpenSim files at their contract paths.

``import-model`` (``subjects.tsv`` column ``scaled_model``) and ``import-file`` (``trials.tsv``
columns ``markers_file``, ``grf_file`` + ``external_loads_file``, ``ik_file``, ``id_file``,
``emg_file``). The checks are in :mod:`pipeline.osim.given`.
"""

from __future__ import annotations

import argparse
import logging
from typing import Any

from pipeline.cli._common import add_command
from pipeline.errors import ConfigError, describe
from pipeline.logs import route_opensim_log

log = logging.getLogger(__name__)

KINDS = ("markers", "grf", "ik", "id", "emg")


def _study(args: argparse.Namespace) -> Any:
    from pipeline.study import load_study

    route_opensim_log(getattr(args, "log", None))
    return load_study(args.study, check_files=False)


def emg_names(setup: dict[str, Any]) -> list[str]:
    """EMG names the model's excitations use (else every mapped C3D channel's name)."""
    names: list[str] = []
    for weights in (setup.get("excitations") or {}).values():
        names += [n for n in weights or {} if n not in names]
    return names or list((setup.get("emg_channels") or {}).values())


def _import_model(args: argparse.Namespace) -> None:
    from pipeline.osim.given import place_model

    study = _study(args)
    setup = study.model_setup(args.subject)
    place_model(args.source, args.out, mtus=list(setup.get("excitations") or {}),
                dofs=list(setup.get("dofs") or []))
    log.info("placed the given scaled model %s at %s", args.source, args.out)


def _import_file(args: argparse.Namespace) -> None:
    from pipeline.osim import given

    study = _study(args)
    study.trial(args.subject, args.trial)
    setup = study.model_setup(args.subject)
    dofs = list(setup.get("dofs") or [])
    if args.kind == "markers":
        given.place_markers(args.source, args.out)
    elif args.kind == "grf":
        if not (args.xml_source and args.xml_out):
            raise ConfigError(describe(None, "import-file grf needs --xml-source and --xml-out",
                                       "pass the ExternalLoads .xml and where to write it"))
        given.place_grf(args.source, args.xml_source, mot_out=args.out, xml_out=args.xml_out)
    elif args.kind == "ik":
        given.place_coordinates(args.source, args.out, dofs=dofs)
    elif args.kind == "id":
        given.place_moments(args.source, args.out, dofs=dofs)
    else:
        # drop_emg as for C3D EMG: the dropped envelopes are left out of emg.sto (the file need
        # not hold them), so their MTUs get no EMG and count as unrecorded.
        dropped = set(setup.get("drop_emg") or [])
        if dropped:
            log.info("EMG dropped by models.<model>.drop_emg (their MTUs count as unrecorded): "
                     "%s", ", ".join(sorted(dropped)))
        given.place_envelopes(args.source, args.out,
                              emg_names=[n for n in emg_names(setup) if n not in dropped])
    log.info("placed the given %s file %s at %s", args.kind, args.source, args.out)


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "import-model", _import_model,
                    "check a subject's given scaled .osim and place it as model/scaled.osim")
    p.add_argument("--study", default=".", help="study folder (default: .)")
    p.add_argument("--subject", required=True)
    p.add_argument("--source", required=True, help="the given scaled .osim")
    p.add_argument("--out", required=True, help="results/<subject>/model/scaled.osim")

    p = add_command(subparsers, "import-file", _import_file,
                    "check a trial's given OpenSim file (units, columns) and place it at its "
                    "contract path")
    p.add_argument("kind", choices=KINDS, help="which file: markers (.trc), grf (.mot + "
                   "ExternalLoads .xml), ik (.mot/.sto), id (.sto), emg (envelopes .sto)")
    p.add_argument("--study", default=".", help="study folder (default: .)")
    p.add_argument("--subject", required=True)
    p.add_argument("--trial", required=True)
    p.add_argument("--source", required=True, help="the given file")
    p.add_argument("--xml-source", default=None, help="grf: the given ExternalLoads .xml")
    p.add_argument("--out", required=True, help="contract path of the file")
    p.add_argument("--xml-out", default=None, help="grf: contract path of external_loads.xml")
