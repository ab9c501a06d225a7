"""Command line: ``python -m numba_pool warmup [--dtypes ...] [--jobs N]``."""

from __future__ import annotations

import argparse
import sys

from .warmup import ALL_DTYPES, DEFAULT_DTYPES, warmup


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m numba_pool")
    commands = parser.add_subparsers(dest="command", required=True)
    warm = commands.add_parser(
        "warmup", help="compile every kernel family into Numba's on-disk cache")
    warm.add_argument("--dtypes", nargs="+", default=list(DEFAULT_DTYPES), metavar="DTYPE",
                      choices=list(ALL_DTYPES),
                      help=f"dtypes to compile for (default: {' '.join(DEFAULT_DTYPES)})")
    warm.add_argument("--jobs", type=int, default=None,
                      help="parallel processes (default: number of CPUs)")
    warm.add_argument("--families", nargs="+", default=None, metavar="WORD",
                      help="only families whose name contains one of these words "
                           "(e.g. forward, backward, overlapping)")
    args = parser.parse_args(argv)
    try:
        warmup(args.dtypes, args.jobs, families=args.families)
    except ValueError as exc:
        parser.error(str(exc))
    return 0


if __name__ == "__main__":
    sys.exit(main())
