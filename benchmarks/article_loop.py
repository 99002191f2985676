"""The article's toy loop (问题1, last label 3.1) for toy-noisy's epochs, as a whole process.

Times to compare, whole processes (start-up included):
    time .venv/bin/python benchmarks/article_loop.py > /dev/null            # the article's code as printed
    time .venv/bin/python benchmarks/article_loop.py --scratch > /dev/null  # its autograd loop, d2l.scratch
    time .venv/bin/sgdlab run toy-noisy > /dev/null
`sgdlab bench` runs all three (sgdlab.bench.sequential) and reports them per epoch.
"""

from __future__ import annotations

import argparse

from sgdlab import bench
from sgdlab.experiments import TOY_RUNS


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=TOY_RUNS["toy-noisy"].epochs)
    parser.add_argument("--scratch", action="store_true", help="d2l.scratch instead of the printed loop")
    args = parser.parse_args()
    bench.article_toy_loop(args.epochs, verbatim=not args.scratch)


if __name__ == "__main__":
    main()
