"""`sgdlab bench`: the article's loops against the engine, batched and sequential.

Batched: the baseline problem (n = 1000, batches of 10) with K = 1 and K = 1000 runs, in this
process. Sequential: toy-noisy's 30000 epochs of batches of one, each as a whole process
(start-up, imports and the compiled loop's loading counted): the article's code as printed, its
autograd loop d2l.scratch, and `sgdlab run toy-noisy`. Each timing is the best of a few repeats
(the least disturbed by other processes), with the spread; nothing here is asserted anywhere,
since these machines are noisy.
"""

from __future__ import annotations

import os
import platform
import random
import resource
import subprocess
import sys
import time

from . import d2l, data, engine, kernels
from ._lazy import torch
from .experiments import TOY_RUNS, article_start

BATCH_SIZE = 10
LR = 0.0003


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def article_toy_loop(epochs: int, verbatim: bool = True, seed: int = 20) -> torch.Tensor:
    """The article's 问题1 loop on toy-noisy's data (last label 3.1); returns the final w.

    verbatim: its code as printed — data_iter (random.shuffle, seeded here), one autograd step per
    sample, and after each step the loss over the four points printed. Otherwise d2l.scratch, the
    loop the engine is tested against, without the printing.
    """
    config, ds = TOY_RUNS["toy-noisy"], data.toy_data(noisy=True)
    if not verbatim:
        orders = data.batch_orders(ds.n, epochs, data.generator(seed, "order"))
        return d2l.scratch(ds.X, ds.y, torch.tensor([2.0]), 0.0, config.lr, orders, batch_size=1,
                           model=config.model, loss="plain", grad_divisor=config.grad_divisor)[-1]
    rng = random.Random(seed)
    simple_feature, simple_labels = ds.X.flatten(), ds.y
    simple_w = torch.tensor([2], requires_grad=True, dtype=torch.float)
    loss = d2l.simple_squared_loss
    for epoch in range(epochs):
        for X, y in d2l.data_iter(1, simple_feature, simple_labels, rng):
            l = loss(X * simple_w, y)  # noqa: E741 (the article's name)
            l.sum().backward()
            d2l.sgd([simple_w], config.lr, config.grad_divisor)
            with torch.no_grad():
                train_l = loss(simple_feature * simple_w, simple_labels)
                print(f"epoch {epoch + 1}, loss {float(train_l.mean()):f}")
    return simple_w.detach()


SEQUENTIAL = {  # whole processes: python -c CODE ARGS, stdout to /dev/null
    "article_verbatim": "import sys; from sgdlab import bench; bench.article_toy_loop(int(sys.argv[1]))",
    "article_scratch": "import sys; from sgdlab import bench;"
                       " bench.article_toy_loop(int(sys.argv[1]), verbatim=False)",
    # Never a results-cache hit (--no-cache: an earlier bench stored these seeds); a new seed per
    # repeat all the same. entry() is what the `sgdlab` command runs (it ends the process without
    # unloading torch).
    "sgdlab_run": "import sys; from sgdlab.cli import entry; sys.argv = ['sgdlab', 'run', 'toy-noisy', '--epochs',"
                  " sys.argv[1], '--seed', sys.argv[2], '--json', '--no-cache']; entry()",
}


def _process(code: str, *args: str) -> tuple[float, float]:
    """Wall and CPU (user + system) seconds of one child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", code, *args], check=True, stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def sequential(epochs: int = TOY_RUNS["toy-noisy"].epochs, repeats: int = 3) -> dict:
    """Whole-process seconds per epoch of toy-noisy (K = 1, batches of one): best, worst, CPU at best."""
    report = {}
    for name, code in SEQUENTIAL.items():
        runs = [_process(code, str(epochs), str(1000 + i)) for i in range(repeats)]
        walls = sorted(w for w, _ in runs)
        report[name] = {"us_per_epoch": walls[0] / epochs * 1e6, "us_per_epoch_worst": walls[-1] / epochs * 1e6,
                        "cpu_us_per_epoch": min(c for _, c in runs) / epochs * 1e6, "seconds": walls[0]}
    report["speedup_vs_verbatim"] = report["article_verbatim"]["us_per_epoch"] / report["sgdlab_run"]["us_per_epoch"]
    report["speedup_vs_scratch"] = report["article_scratch"]["us_per_epoch"] / report["sgdlab_run"]["us_per_epoch"]
    report["epochs"] = epochs
    return report


def reference_loop(ds, w0, epochs: int, seed: int = 0) -> None:
    """The article's section 五 loop, verbatim but for a seeded random.Random in data_iter."""
    rng = random.Random(seed)
    w = w0.clone().requires_grad_(True)
    b = torch.zeros(1, requires_grad=True)
    features, labels = ds.X, ds.y.reshape(-1, 1)
    for _ in range(epochs):
        for X, y in d2l.data_iter(BATCH_SIZE, features, labels, rng):
            l = d2l.squared_loss(d2l.linreg(X, w, b), y)  # noqa: E741 (D2L's name)
            l.sum().backward()
            d2l.sgd([w, b], LR, BATCH_SIZE)
        with torch.no_grad():
            d2l.squared_loss(d2l.linreg(features, w, b), labels).mean()


def engine_runs(ds, theta0, K: int, epochs: int, device: str = "cpu") -> None:
    """K baseline runs at once (a learning-rate sweep), one shared batch order per epoch."""
    orders = data.batch_orders(ds.n, epochs, data.generator(20, "order"))
    lrs = torch.linspace(LR / 3, 3 * LR, K)
    engine.train(ds.X, ds.y, theta0.repeat(1, K), lrs, orders, batch_size=BATCH_SIZE, device=device)
    if device != "cpu":
        torch.cuda.synchronize()


def flops_per_run_step(batch_size: int = BATCH_SIZE, p: int = 3) -> int:
    """Arithmetic of one SGD step: ŷ = Xθ (2Bp), ŷ − y (B), Xᵀr (2Bp), lr·g, /divisor, θ − (3p)."""
    return 4 * batch_size * p + batch_size + 3 * p


def matmul_gflops(size: int = 512, repeats: int = 5) -> float:
    """This machine's float32 matrix-multiply rate, in GFLOP/s, with torch's current threads."""
    a = torch.randn(size, size, generator=data.generator(0))
    b = torch.randn(size, size, generator=data.generator(1))
    a @ b
    return 2 * size**3 / _best_of(lambda: a @ b, repeats) / 1e9


def run_bench(repeats: int = 3, device: str = "cpu", sequential_epochs: int = TOY_RUNS["toy-noisy"].epochs) -> dict:
    """Time (a) the article's loop, (b) the engine with K = 1, (c) with K = 1000, and the sequential
    whole processes (skipped if sequential_epochs is 0); return a report."""
    ds, w0, theta0 = article_start(20)
    steps_per_epoch = ds.n // BATCH_SIZE
    ref_epochs, k1_epochs, k1000_epochs = 3, 20, 5
    reference = _best_of(lambda: reference_loop(ds, w0, ref_epochs), repeats) / (ref_epochs * steps_per_epoch)
    k1 = _best_of(lambda: engine_runs(ds, theta0, 1, k1_epochs, device), repeats) / (k1_epochs * steps_per_epoch)
    k1000_runs = []
    for _ in range(repeats):
        k1000_runs.append(_best_of(lambda: engine_runs(ds, theta0, 1000, k1000_epochs, device), 1)
                          / (k1000_epochs * steps_per_epoch * 1000))
    k1000 = min(k1000_runs)
    gflops = matmul_gflops()
    floor_ns = flops_per_run_step() / gflops  # FLOP / (GFLOP/s) = ns
    report = {
        "reference_us_per_step": reference * 1e6,
        "engine_k1_us_per_step": k1 * 1e6,
        "engine_k1000_us_per_run_step": k1000 * 1e6,
        "engine_k1000_us_per_run_step_worst": max(k1000_runs) * 1e6,
        "compiled_loop": kernels.usable(ds.X.to(device), 3),
        "kernel_isa": kernels.isa(),  # the instruction set of the compiled copy timed
        "speedup_k1": reference / k1,
        "speedup_k1000": reference / k1000,
        "floor_ns_per_run_step": floor_ns,
        "flops_per_run_step": flops_per_run_step(),
        "matmul_gflops": gflops,
        "device": device,
        "threads": torch.get_num_threads(),
        "cpus": os.cpu_count(),
        "torch": torch.__version__,
        "machine": platform.machine(),
        "sequential": sequential(sequential_epochs, repeats) if sequential_epochs else None,
    }
    report["text"] = _text(report)
    return report


def _text(r: dict) -> str:
    return "\n".join([
        f"baseline problem: n = 1000, batch {BATCH_SIZE}, torch {r['torch']}, {r['threads']} threads,"
        f" {r['machine']}, engine on {r['device']}",
        f"(a) reference loop (the article's)   {r['reference_us_per_step']:10.2f} µs per step",
        f"(b) engine, K = 1                     {r['engine_k1_us_per_step']:10.2f} µs per step"
        f"        {r['speedup_k1']:8.1f}× (a)",
        f"(c) engine, K = 1000                  {r['engine_k1000_us_per_run_step'] * 1e3:10.2f} ns per run-step"
        f"    {r['speedup_k1000']:8.0f}× (a)",
        f"arithmetic floor: {r['flops_per_run_step']} FLOP per run-step at {r['matmul_gflops']:.1f} GFLOP/s"
        f" (matmul) = {r['floor_ns_per_run_step']:.2f} ns per run-step;"
        f" (c) is {r['engine_k1000_us_per_run_step'] * 1e3 / r['floor_ns_per_run_step']:.1f}× the floor"
        f" (worst repeat {r['engine_k1000_us_per_run_step_worst'] * 1e3 / r['floor_ns_per_run_step']:.1f}×)",
        "engine loop: " + (f"compiled (sgdlab._kernels, its {r['kernel_isa']} copy)" if r["compiled_loop"]
                           else "torch (no compiled loop here)"),
        *_sequential_text(r["sequential"]),
    ])


def _sequential_text(s: dict | None) -> list[str]:
    if s is None:
        return []
    rows = [("the article's code as printed", "article_verbatim"),
            ("its autograd loop, d2l.scratch", "article_scratch"), ("sgdlab run toy-noisy", "sgdlab_run")]
    return [f"sequential: toy-noisy, {s['epochs']} epochs of 4 batches of one, K = 1, whole processes:",
            *(f"  {label:<32} {s[key]['us_per_epoch']:9.2f} µs per epoch (worst {s[key]['us_per_epoch_worst']:.2f},"
              f" CPU {s[key]['cpu_us_per_epoch']:.2f})" for label, key in rows),
            f"  sgdlab run is {s['speedup_vs_verbatim']:.1f}× the printed loop,"
            f" {s['speedup_vs_scratch']:.1f}× d2l.scratch"]
