"""`sgdlab list | run | render | bench | cache | claims`: the command line of docs/DESIGN.md.

Every command ends with one line and no traceback on what a user can cause: bad input (exit 2),
a diverged run (exit 3), Ctrl-C (exit 130, "sgdlab: interrupted"); `claims` exits 1 when a claim
the book states for every seed fails for one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
from pathlib import Path

EXIT_CLAIM_FAILED = 1  # `sgdlab claims`: a claim the book states for every seed fails for some seed
EXIT_BAD_INPUT = 2
EXIT_DIVERGED = 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports a command ended by Ctrl-C


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
    run.add_argument("--no-cache", action="store_true", help="compute, neither reading nor writing the results cache")
    render = sub.add_parser("render", help="render the report (Quarto, or the built-in engine)")
    render.add_argument("--engine", choices=["auto", "quarto", "builtin"], default="auto")
    render.add_argument("--to", choices=["html", "pdf", "all"], default="all")
    render.add_argument("--lang", choices=["en", "zh", "all"], default="all",
                        help="the edition(s): English (_book/), Chinese (_book-zh/, copied to _book/zh/), or both")
    render.add_argument("--no-cache", action="store_true", help="recompute every experiment (SGDLAB_NO_CACHE=1)")
    render.add_argument("--jobs", "-j", type=int, metavar="N",
                        help="built-in engine: chapters executed at once; Quarto: with 2 or more, HTML and PDF"
                             " rendered at once (default: the CPUs available)")
    cache = sub.add_parser("cache", help="where the results cache is, its entries, size, hits and misses")
    cache.add_argument("action", nargs="?", choices=["show", "clear", "prune"], default="show")
    cache.add_argument("--clear", action="store_true", help="delete every entry (the same as `cache clear`)")
    cache.add_argument("--prune", action="store_true",
                       help="delete the entries made by other sources or library versions (`cache prune`)")
    cache.add_argument("--json", action="store_true")
    claims = sub.add_parser("claims", help="re-check every claim the book makes about a random outcome")
    claims.add_argument("--seeds", type=int, metavar="N",
                        help="check every claim on the article's seed 20 and the N − 1 after it"
                             " (default: each claim's own, as the book)")
    claims.add_argument("--json", action="store_true", help="print one JSON object (README, Claims)")
    bench = sub.add_parser("bench", help="time the reference loop against the batched engine")
    bench.add_argument("--json", action="store_true")
    bench.add_argument("--device", default="cpu", help="where the engine runs (the reference loop stays on the CPU)")
    bench.add_argument("--sequential-epochs", type=int, default=30000,
                       help="epochs of the whole-process toy-noisy timings (0: skip them)")
    return parser


def _writable_dir(path: Path) -> str | None:
    """A reason --out cannot be written, or None. Nothing is created yet: a failed run leaves no trace."""
    if path.exists() and not path.is_dir():
        return f"--out {path} exists and is not a directory"
    existing = next((p for p in [path, *path.absolute().parents] if p.exists()), None)
    if existing is None or not existing.is_dir():
        return f"--out {path} cannot be created: {existing} is not a directory"
    try:  # a real probe: permission bits say nothing about root, read-only mounts or /proc
        os.rmdir(tempfile.mkdtemp(dir=existing, prefix=".sgdlab-probe-"))
    except OSError:
        return f"--out {path} is not writable" if existing == path else f"--out {path} cannot be created in {existing}"
    return None


def cmd_list(args) -> int:
    from .registry import EXPERIMENTS

    width = max(map(len, EXPERIMENTS))
    for name, experiment in EXPERIMENTS.items():
        print(f"{name:<{width}}  {experiment.description}")
    return 0


def cmd_run(args) -> int:
    from . import cache, experiments, kernels, progress, registry

    if args.out is not None and (reason := _writable_dir(args.out)):
        return _fail(reason)
    overrides = {"seed": args.seed, "lr": args.lr, "epochs": args.epochs, "batch_size": args.batch_size,
                 "device": args.device}
    try:
        with progress.reporting(args.name), cache.disabled() if args.no_cache else contextlib.nullcontext():
            result = registry.run(args.name, **overrides)
    except (experiments.ConfigError, kernels.KernelChoiceError) as err:
        return _fail(str(err))
    except experiments.Diverged as err:
        return _fail(str(err), EXIT_DIVERGED)
    summary = result.summary()
    if args.out is not None:
        try:
            written = _install(args.out, lambda tmp: _write_outputs(
                result, summary, registry.EXPERIMENTS[args.name].figure, tmp, args.name))
        except OSError as err:
            return _fail(f"--out {args.out}: {err.strerror or err}")
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


def _install(out: Path, write) -> list[Path]:
    """Call write(tmp) on a temporary directory beside `out`, then move its files into `out`.

    A new `out` is one rename; an existing one gets each file replaced by a rename, with Ctrl-C held
    back meanwhile. Either way an interrupted run leaves `out` as it was or complete, never half-written.
    """
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.partial-"))
    umask = os.umask(0)
    os.umask(umask)
    tmp.chmod(0o777 & ~umask)  # mkdtemp's 0700 would become --out's own mode
    try:
        names = [p.name for p in write(tmp)]
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            if out.exists():
                for name in names:
                    os.replace(tmp / name, out / name)
            else:
                os.replace(tmp, out)
        finally:
            signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
        return [out / name for name in names]
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def cmd_render(args) -> int:
    from .render import RenderError, render

    if args.jobs is not None and args.jobs < 1:
        return _fail(f"--jobs must be ≥ 1, got {args.jobs}")
    if args.no_cache:
        os.environ["SGDLAB_NO_CACHE"] = "1"  # inherited by Quarto and by every kernel that runs a chapter
    try:
        paths = render(Path.cwd(), engine=args.engine, to=args.to, progress=sys.stderr.isatty(), jobs=args.jobs,
                       lang=args.lang)
    except RenderError as err:
        return _fail(str(err))
    for path in paths:
        print(f"wrote {path}")
    return 0


def cmd_bench(args) -> int:
    from .bench import run_bench
    from .experiments import ConfigError, check_device
    from .kernels import KernelChoiceError

    try:
        check_device(args.device)
    except ConfigError as err:
        return _fail(str(err))
    if args.sequential_epochs < 0:
        return _fail(f"--sequential-epochs must be ≥ 0, got {args.sequential_epochs}")
    try:
        report = run_bench(device=args.device, sequential_epochs=args.sequential_epochs)
    except KernelChoiceError as err:
        return _fail(str(err))
    text = report.pop("text")
    print(json.dumps(report) if args.json else text)
    return 0


def cmd_claims(args) -> int:
    from . import claims, progress

    if args.seeds is not None and not 2 <= args.seeds <= claims.MAX_SEEDS:
        return _fail(f"--seeds must be between 2 and {claims.MAX_SEEDS}, got {args.seeds}")
    with progress.reporting("claims"):
        checked = [claims.check(claim_id, args.seeds) for claim_id in claims.CLAIMS]
    failed = [c for c in checked if not c.ok]
    if args.json:
        print(json.dumps({"seeds": args.seeds, "ok": not failed, "claims": [c.summary() for c in checked]}))
    else:
        width = max(len(c.id) for c in checked)
        for c in checked:
            holds = "statistic only" if c.count is None else f"holds in {c.count} of {c.n}"
            mark = " (every seed)" if c.claim.universal else ""
            print(f"{c.id:<{width}}  {holds + mark:<32}  {c.claim.statistic}: {c.mean:.4g} ± {c.se:.2g}"
                  f" ({c.n} seeds)")
    for c in failed:
        print(f"sgdlab: claim {c.id} fails for seed{'s' * (len(c.failing) > 1)} {', '.join(map(str, c.failing))};"
              " the book says it holds for every seed", file=sys.stderr)
    return EXIT_CLAIM_FAILED if failed else 0


def cmd_cache(args) -> int:
    from . import cache, display

    if args.clear or args.action == "clear":
        count = cache.clear()
        print(f"cleared {count} entries from {cache.cache_dir()}")
        return 0
    if args.prune or args.action == "prune":
        count = cache.clear(stale_only=True)
        print(f"pruned {count} entries made by other sources or library versions from {cache.cache_dir()}")
        return 0
    stats = cache.stats()
    if args.json:
        print(json.dumps(stats.as_dict()))
        return 0
    state = "off (SGDLAB_NO_CACHE is set)" if not cache.enabled() else "on"
    print(f"location: {stats.path}\nstate: {state}\nentries: {stats.entries} ({stats.bytes / 2**20:.1f} MiB)")
    figures = sum(n for name, n in stats.misses_by_function.items() if name.startswith(display.PREFIX))
    print(f"since it was last cleared: {stats.misses - figures} experiments computed and {figures} figures drawn"
          f" (display.py), {stats.hits} read back")
    for name, count in sorted(stats.misses_by_function.items()):
        print(f"  computed {count:>3} × {name}")
    return 0


def main(argv: list[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        commands = {"list": cmd_list, "run": cmd_run, "render": cmd_render, "bench": cmd_bench, "cache": cmd_cache,
                    "claims": cmd_claims}
        return commands[args.command](args)
    except BrokenPipeError:  # `sgdlab run X --json | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print("sgdlab: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


QUICK_EXIT = ("list", "run", "cache", "claims")  # commands that start no subprocess and leave nothing open


def entry() -> None:
    """The `sgdlab` command: main(), then, for the quick commands, exit without unloading modules.

    Tearing the interpreter down after torch was imported takes about 0.4 s, a fifth of a whole
    `sgdlab run toy-noisy`. By then every file a command writes is closed (`--out` is written
    atomically) and stdout/stderr are flushed here; `render` and `bench`, which start kernels and
    subprocesses, exit the usual way.
    """
    code = main()
    if len(sys.argv) > 1 and sys.argv[1] in QUICK_EXIT:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a reader that left (`| head`) is not an error here
                stream.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
