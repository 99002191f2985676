"""`sgdlab list | run | render | bench`: the command line of DESIGN.md."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage dump
        self.exit(EXIT_BAD_INPUT, f"sgdlab: error: {message}\n")


def _fail(message: str, status: int = EXIT_BAD_INPUT) -> int:
    print(f"sgdlab: error: {message}", file=sys.stderr)
    return status


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="sgdlab", description="Why SGD's loss stalls, and why minus the gradient is steepest.")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    sub.add_parser("list", help="experiments with one-line descriptions")
    run = sub.add_parser("run", help="run one experiment")
    run.add_argument("name")
    run.add_argument("--seed", type=int)
    run.add_argument("--lr", type=float)
    run.add_argument("--epochs", type=int)
    run.add_argument("--batch-size", type=int)
    run.add_argument("--device", help="where the engine computes: cpu (default) or cuda")
    run.add_argument("--out", type=Path, help="write history.csv, summary.json and the figure here")
    run.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    render = sub.add_parser("render", help="render the report (Quarto, or the built-in engine)")
    render.add_argument("--engine", choices=["auto", "quarto", "builtin"], default="auto")
    render.add_argument("--to", choices=["html", "pdf", "all"], default="all")
    bench = sub.add_parser("bench", help="time the reference loop against the batched engine")
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--device", default="cpu", help="where the engine runs (the reference loop stays on the CPU)")
    bench.add_argument("--sequential-epochs", type=int, default=30000,
                       help="epochs of the whole-process toy-noisy timings (0: skip them)")
    return parser


def _writable_dir(path: Path) -> str | None:
    """Create path if needed; return a reason it cannot be written, or None."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        return f"--out {path} cannot be created: {err.strerror}"
    if not os.access(path, os.W_OK):
        return f"--out {path} is not writable"
    return None


def cmd_list(args) -> int:
    from .registry import EXPERIMENTS

    width = max(map(len, EXPERIMENTS))
    for name, experiment in EXPERIMENTS.items():
        print(f"{name:<{width}}  {experiment.description}")
    return 0


def cmd_run(args) -> int:
    from . import experiments, registry

    if args.out is not None and (reason := _writable_dir(args.out)):
        return _fail(reason)
    overrides = {"seed": args.seed, "lr": args.lr, "epochs": args.epochs, "batch_size": args.batch_size,
                 "device": args.device}
    try:
        result = registry.run(args.name, **overrides)
    except experiments.ConfigError as err:
        return _fail(str(err))
    except experiments.Diverged as err:
        return _fail(str(err), EXIT_DIVERGED)
    summary = result.summary()
    if args.out is not None:
        written = _write_outputs(result, summary, registry.EXPERIMENTS[args.name].figure, args.out, args.name)
    if args.json:
        print(json.dumps(summary))
    else:
        for key, value in summary.items():
            print(f"{key:>18}: {value}")
        if args.out is not None:
            print(f"wrote {', '.join(str(p) for p in written)}", file=sys.stderr)
    return 0


def _write_outputs(result, summary: dict, figure, out: Path, name: str) -> list[Path]:
    """summary.json, every DataFrame of the result as CSV (`history` as history.csv), the figure."""
    import dataclasses

    import pandas as pd

    from .plots.style import save

    written = [out / "summary.json"]
    written[0].write_text(json.dumps(summary, indent=2) + "\n")
    for f in dataclasses.fields(result):
        frame = getattr(result, f.name)
        if isinstance(frame, pd.DataFrame):
            written.append(out / f"{f.name}.csv")
            frame.to_csv(written[-1], index=not isinstance(frame.index, pd.RangeIndex))
    if figure is not None:
        written.append(out / f"{name}.png")
        save(figure(result), written[-1])
    return written


def cmd_render(args) -> int:
    from .render import RenderError, render

    try:
        paths = render(Path.cwd(), engine=args.engine, to=args.to, progress=sys.stderr.isatty())
    except RenderError as err:
        return _fail(str(err))
    for path in paths:
        print(f"wrote {path}")
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench
    from .experiments import ConfigError, check_device

    try:
        check_device(args.device)
    except ConfigError as err:
        return _fail(str(err))
    if args.sequential_epochs < 0:
        return _fail(f"--sequential-epochs must be ≥ 0, got {args.sequential_epochs}")
    report = run_bench(device=args.device, sequential_epochs=args.sequential_epochs)
    text = report.pop("text")
    print(json.dumps(report) if args.json else text)
    return 0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    commands = {"list": cmd_list, "run": cmd_run, "render": cmd_render, "bench": cmd_bench}
    try:
        return commands[args.command](args)
    except BrokenPipeError:  # `sgdlab run X --json | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main())
