"""``tradeoffs theory ...``: exact quantities of the formal library from the command line."""

from __future__ import annotations

import argparse


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "theory",
        help="exact theory quantities (good radii, margins) for the toy families",
        description="Exact theory quantities for the toy families.",
    )
    parser.set_defaults(_parser=parser)
    parser.add_subparsers(dest="theory_command", metavar="SUBCOMMAND")
