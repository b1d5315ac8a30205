"""``bench``: run one benchmark of :mod:`pipeline.bench` and write its JSON result."""

from __future__ import annotations

import argparse
import logging
from types import ModuleType
from typing import Any

from pipeline import bench
from pipeline.cli._common import add_command
from pipeline.fileio import write_json_atomic

log = logging.getLogger(__name__)

#: Benchmark name -> module (``NAME``, ``HELP``, ``add_arguments``, ``run``), filled by ``register``
#: from every module of :mod:`pipeline.bench`; add a benchmark by adding a module there.
BENCHMARKS: dict[str, ModuleType] = {}


def _run(args: argparse.Namespace) -> int:
    result = args.bench_module.run(args)
    write_json_atomic(args.json, result)
    log.info("bench %s: wrote %s: %s", args.bench_module.NAME, args.json, result)
    return 0


def _missing(args: argparse.Namespace) -> int:
    args.bench_parser.print_help()
    return 1


def register(subparsers: Any) -> None:
    parser = add_command(subparsers, "bench", _missing, "Run a benchmark; write its JSON result.")
    parser.set_defaults(bench_parser=parser)
    benchmarks = parser.add_subparsers(dest="benchmark", metavar="BENCHMARK")
    BENCHMARKS.update(bench.discover())
    for name, module in BENCHMARKS.items():
        sub = add_command(benchmarks, name, _run, module.HELP)
        sub.add_argument("--json", required=True, help="write the result to this JSON file")
        module.add_arguments(sub)
        sub.set_defaults(bench_module=module)
