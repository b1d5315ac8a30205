"""Subcommands ``figures`` (one subject's figures) and ``report`` (the study's HTML report)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from pipeline import layout
from pipeline._gc import lasting_imports
from pipeline.cli._common import add_command
from pipeline.errors import ConfigError
from pipeline.study import load_study

log = logging.getLogger(__name__)
METHOD_CHOICES = ("gradient", "annealing", "synergy_hybrid", "motion")


def _methods(args: argparse.Namespace, study_methods: list[str]) -> list[str]:
    return list(args.methods) if args.methods else list(study_methods)


def _figures(args: argparse.Namespace) -> int:
    with lasting_imports():
        from pipeline.plots.subject import write_subject_figures

    study = load_study(args.study, check_files=False)
    if args.subject not in study.subject_names:
        raise ConfigError(f"{study.root / 'subjects.tsv'}: no subject {args.subject!r}. Fix: "
                          f"use one of {', '.join(study.subject_names)}")
    methods = _methods(args, study.config["calibration"]["methods"])
    if args.part:
        log.info("figures of %s, part %s -> %s", args.subject, args.part, args.out_dir)
    else:
        log.info("figures for %s (methods: %s) -> %s", args.subject, ", ".join(methods),
                 args.out_dir)
    write_subject_figures(study, args.subject, Path(args.out_dir), methods=methods,
                          fmt=args.format, workers=max(1, args.threads),
                          part=args.part, parts=args.parts or ())
    return 0


def _report(args: argparse.Namespace) -> int:
    with lasting_imports():
        from pipeline.report import write_report

    study = load_study(args.study, check_files=False)
    methods = _methods(args, study.config["calibration"]["methods"])
    log.info("report for %d subject(s) (methods: %s) -> %s", len(study.subject_names),
             ", ".join(methods), args.out)
    write_report(study, Path(args.out), methods=methods)
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = add_command(subparsers, "figures", _figures,
                         "draw one subject's figures from its results (PNG or SVG) and write "
                         "figures/manifest.json")
    parser.add_argument("--study", default=".", help="study folder (default: .)")
    parser.add_argument("--subject", required=True, help="subject name from subjects.tsv")
    parser.add_argument("--out-dir", required=True, help="folder for the figure files")
    parser.add_argument("--methods", nargs="+", choices=METHOD_CHOICES, default=None,
                        help="calibration methods to plot (default: calibration.methods)")
    parser.add_argument("--format", choices=("png", "svg"), default="png",
                        help="figure file format (default: png)")
    parser.add_argument("--threads", type=int, default=1,
                        help="processes drawing figures at once (default: 1)")
    parts = parser.add_mutually_exclusive_group()
    parts.add_argument("--part", default=None, metavar="NAME",
                       help="draw one part only: 'data' (the movement data's figures, no "
                            "calibration needed) or a method's figures")
    parts.add_argument("--parts", nargs="+", default=None, metavar="DIR",
                       help="take the figures from --part folders (the data's and each "
                            "method's) and draw only the convergence and method comparison")
    parser = add_command(subparsers, "report", _report,
                         "build the self-contained HTML report (figures embedded) of a study")
    parser.add_argument("--study", default=".", help="study folder (default: .)")
    parser.add_argument("--out", default=layout.REPORT,
                        help=f"HTML file to write (default: {layout.REPORT})")
    parser.add_argument("--methods", nargs="+", choices=METHOD_CHOICES, default=None,
                        help="calibration methods to report (default: calibration.methods)")
