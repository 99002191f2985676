"""`sgdlab bench`: the article's loop against the batched engine, on the baseline problem.

Each timing is the best of a few repeats (the least disturbed by other processes); nothing here
is asserted anywhere, since these machines are noisy.
"""

from __future__ import annotations

import os
import platform
import random
import time

import torch

from . import d2l, data, engine
from .experiments import article_start

BATCH_SIZE = 10
LR = 0.0003


def _best_of(fn, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


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


def run_bench(repeats: int = 3, device: str = "cpu") -> dict:
    """Time (a) the article's loop, (b) the engine with K = 1, (c) with K = 1000; return a report."""
    ds, w0, theta0 = article_start(20)
    steps_per_epoch = ds.n // BATCH_SIZE
    ref_epochs, k1_epochs, k1000_epochs = 3, 20, 5
    reference = _best_of(lambda: reference_loop(ds, w0, ref_epochs), repeats) / (ref_epochs * steps_per_epoch)
    k1 = _best_of(lambda: engine_runs(ds, theta0, 1, k1_epochs, device), repeats) / (k1_epochs * steps_per_epoch)
    k1000 = _best_of(lambda: engine_runs(ds, theta0, 1000, k1000_epochs, device), repeats) / (
        k1000_epochs * steps_per_epoch * 1000
    )
    gflops = matmul_gflops()
    floor_ns = flops_per_run_step() / gflops  # FLOP / (GFLOP/s) = ns
    report = {
        "reference_us_per_step": reference * 1e6,
        "engine_k1_us_per_step": k1 * 1e6,
        "engine_k1000_us_per_run_step": k1000 * 1e6,
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
        f" (c) is {r['engine_k1000_us_per_run_step'] * 1e3 / r['floor_ns_per_run_step']:.0f}× the floor",
    ])
