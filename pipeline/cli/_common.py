"""Helpers shared by subcommand modules."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

Handler = Callable[[argparse.Namespace], Any]


def add_command(
    subparsers: Any, name: str, handler: Handler, help_text: str
) -> argparse.ArgumentParser:
    """Add a subcommand whose arguments the caller then declares; ``handler(args)`` runs it."""
    parser = subparsers.add_parser(name, help=help_text, description=help_text)
    parser.set_defaults(func=handler)
    return parser
