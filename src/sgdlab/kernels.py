"""engine.train's compiled inner loop (`_kernels.c`): when it runs, and how it is called.

setuptools builds the C extension at `pip install` (pyproject's ext-modules, optional: without a
C compiler the install still succeeds and the module is absent). The engine then runs its torch
loop instead: the same arithmetic, bit-identical for batches of one (the article's toy runs) and
within float rounding for larger batches, whose gradient sums BLAS orders its own way.

The loop is compiled once per instruction set (avx512f, avx2, default); the best one this CPU runs
is used, or the one SGDLAB_KERNEL_ISA names (read here, at import), so that tests can run each.
"""

from __future__ import annotations

import os

from ._lazy import torch

try:
    from . import _kernels
except ImportError:  # not built (no C compiler at install time)
    _kernels = None

ISA_VARIABLE = "SGDLAB_KERNEL_ISA"
enabled = True  # tests and benchmarks switch the compiled loop off to compare it with the torch loop


class KernelChoiceError(ValueError):
    """SGDLAB_KERNEL_ISA names a copy of the compiled loop that this build or this CPU cannot run."""


def _choose(name: str) -> str | None:
    """Select the copy `name` (nothing if empty); the reason it cannot run, else None."""
    if not name:
        return None
    if _kernels is None:
        return f"{ISA_VARIABLE}={name}: the compiled loop (sgdlab._kernels) was not built here"
    try:
        _kernels.select(name)
    except ValueError as err:
        return f"{ISA_VARIABLE}={name}: {err}"
    return None


# Raised at first use, not at import: the command line turns it into one line (exit 2).
_choice_error = _choose(os.environ.get(ISA_VARIABLE, ""))


def isa() -> str | None:
    """The instruction set of the compiled copy that runs (avx512f, avx2, default); None if not built."""
    if _choice_error:
        raise KernelChoiceError(_choice_error)
    return None if _kernels is None else _kernels.isa()


def usable(Xd: torch.Tensor, p: int) -> bool:
    """The compiled loop covers CPU tensors in float32/float64 with at most PMAX parameters."""
    if _choice_error:  # a copy was asked for and cannot run: never fall back silently
        raise KernelChoiceError(_choice_error)
    return (enabled and _kernels is not None and Xd.device.type == "cpu"
            and Xd.dtype in (torch.float32, torch.float64) and p <= _kernels.PMAX)


class Chunk:
    """Runs chunks of epochs for one train() call: same interface as engine's torch loop.

    Xd (n, p) shared or (n, p, K) per run, yd (n, 1) or (n, K): the engine's layout.
    """

    def __init__(self, model, batch_size: int, divisor: float, scale: float, half: bool,
                 lr_decay_steps: float | None, Xd: torch.Tensor, yd: torch.Tensor, lr: torch.Tensor):
        self.Xd, self.yd, self.lr = Xd.contiguous(), yd.contiguous(), lr.contiguous()
        self.batch_size = batch_size
        n, p = Xd.shape[:2]
        K = lr.shape[0]
        per_run_x, per_run_y = Xd.dim() == 3, yd.shape[1] > 1
        self.n, self.p, self.K = n, p, K
        self.args = dict(
            is_double=Xd.dtype == torch.float64, X=self.Xd.data_ptr(),
            x_row=p * K if per_run_x else p, x_col=K if per_run_x else 1, x_lane=int(per_run_x),
            y=self.yd.data_ptr(), y_row=K if per_run_y else 1, y_lane=int(per_run_y),
            n=n, p=p, K=K, batch=batch_size, lr=self.lr.data_ptr(), divisor=float(divisor), scale=float(scale),
            jump=model.jump_at is not None, jump_at=float(model.jump_at or 0.0), jump_height=float(model.jump_height),
            half=half, decay=lr_decay_steps is not None, decay_t0=float(lr_decay_steps or 0.0),
            threads=torch.get_num_threads(),
        )

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        """Full-data loss per run (K,) at theta (p, K), rounded as the chunks' epoch losses."""
        out = theta.new_empty(self.K)
        no_epochs = torch.zeros(0, self.n, dtype=torch.int64)
        self._call(no_epochs, theta.contiguous().clone(), 0, out[:0], out[:0], None, first_loss=out)
        return out

    def epochs(self, orders: torch.Tensor, theta: torch.Tensor, t: int, step_params: torch.Tensor | None):
        """Run len(orders) epochs from theta (updated in place); return their params (C, p, K) and losses (C, K).

        step_params, if given, receives the parameters after each step, (C·steps, p, K).
        """
        orders = orders.to(torch.int64).contiguous()
        if orders.numel() and (int(orders.min()) < 0 or int(orders.max()) >= self.n):
            raise IndexError(f"batch orders must index the {self.n} samples")  # C would read out of bounds
        C = orders.shape[0]
        params, losses = theta.new_empty(C, self.p, self.K), theta.new_empty(C, self.K)
        self._call(orders, theta, t, params, losses, step_params)
        return params, losses

    def _call(self, orders, theta, t, params, losses, step_params, first_loss=None):
        assert theta.is_contiguous() and (step_params is None or step_params.is_contiguous())
        per_run = orders.dim() == 3
        _kernels.train_chunk(
            **self.args, orders=orders.data_ptr(), order_epoch=orders[0].numel() if len(orders) else self.n,
            order_lane=self.n if per_run else 0, epochs=orders.shape[0], theta=theta.data_ptr(), t=t,
            epoch_params=params.data_ptr(), epoch_loss=losses.data_ptr(),
            step_params=0 if step_params is None else step_params.data_ptr(),
            first_loss=0 if first_loss is None else first_loss.data_ptr(),
        )
