"""`python -m bench` (`make bench`): run every benchmark, print them, write BENCHMARKS.md.

python -m bench                   # everything, full sizes, writes BENCHMARKS.md
python -m bench --quick           # small sizes, a smoke run (prints only)
python -m bench --only backfill --events 200000
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from rich.console import Console

from bench.harness import (
    Context,
    PeakLoad,
    discover,
    failed,
    load_average,
    machine,
    run_all,
    scratch,
)
from bench.report import markdown, print_goals, print_table
from feature_store.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUTPUT = ROOT / "BENCHMARKS.md"


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--only", metavar="NAME", help="run one benchmark (e.g. backfill)")
    parser.add_argument(
        "--events",
        type=int,
        metavar="N",
        help="events to simulate (default: each benchmark's full size, 1,000,000 for the backfill)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: a smoke run")
    parser.add_argument("--seed", type=int, default=7, help="simulator seed (default 7)")
    parser.add_argument(
        "--output",
        type=Path,
        metavar="PATH",
        help="where to write the report (default: BENCHMARKS.md for a full "
        "run of every benchmark; partial and quick runs only print)",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    if args.events is not None and args.events <= 0:
        print(f"--events must be positive, got {args.events}", file=sys.stderr)
        return 2
    console = Console()
    try:
        modules = discover(args.only)
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    facts = machine()
    with scratch() as workdir, PeakLoad() as peak:
        ctx = Context(events=args.events, quick=args.quick, seed=args.seed, workdir=Path(workdir))
        rows = run_all(modules, ctx)
    facts["load average at end"] = load_average()
    facts["highest load average during the run"] = peak.describe()
    print_table(rows, console)
    print_goals(ctx.goals, console)
    broken = failed(rows)
    partial = args.only is not None or args.quick
    output = args.output or (None if partial else DEFAULT_OUTPUT)
    if broken and output is not None:
        console.print(f"a benchmark failed: {output.name} left as it is")
    elif output is None:
        console.print("partial or quick run: BENCHMARKS.md left as it is (use --output)")
    else:
        command = " ".join(["python -m bench", *(argv if argv is not None else sys.argv[1:])])
        output.write_text(
            markdown(modules, rows, ctx.sections, facts, command.strip(), ctx.goals),
            encoding="utf-8",
        )
        console.print(f"wrote {output.name}")
    if broken:
        console.print(f"[red]failed: {', '.join(broken)}[/red]")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
