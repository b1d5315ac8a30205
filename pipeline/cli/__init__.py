"""Subcommands. Each module defines ``register(subparsers)``; ``pipeline.__main__`` finds them all.

Shared argument helpers live in :mod:`pipeline.cli._common` (modules whose name starts with an
underscore are not subcommand modules).
"""
