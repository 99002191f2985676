"""Batched SGD for linear regression: K independent runs trained at once, analytic gradients.

Every experiment trains through `train`; one run is K = 1. Parameters are laid out runs-last,
theta: (p, K), with p = d (+1 for the bias, carried as a column of ones so that w and b update
together). Data shared by all runs stay (n, p) and each step is two small matrix products
(B, p) @ (p, K) and (p, B) @ (B, K); data that differ per run are (n, p, K) and each step is an
elementwise product and a sum.

The update is D2L's `sgd`, operation for operation: theta -= (lr * grad) / grad_divisor, with
grad the gradient of the *summed* mini-batch loss. grad_divisor is the batch size, except in the
article's toy loop, which divides by its global batch_size = 10 while drawing batches of one.

The steps run in C where it can (kernels.py; on the CPU in float32/float64), else in torch
(_TorchLoop), chunk by chunk: the same operations in the same order (README, Performance).
"""

from __future__ import annotations

from dataclasses import dataclass

from . import kernels, progress
from ._lazy import torch

GRAD_SCALE = {"half": 1.0, "plain": 2.0}  # d/dŷ of (ŷ-y)²/2 and of (ŷ-y)², per residual


@dataclass(frozen=True)
class Model:
    """ŷ = Xw (+ b), plus the article's piecewise jump: + jump_height where ŷ ≥ jump_at."""

    bias: bool = True
    jump_at: float | None = None
    jump_height: float = 0.0

    def predict(self, Xd: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Predictions (..., n, K) for data (n, p) or (n, p, K) and parameters (..., p, K)."""
        if Xd.dim() == 2:
            return _by_columns(Xd, theta, self.jump).movedim(0, -2).reshape(*theta.shape[:-2], Xd.shape[0], -1)
        return self.jump((Xd * theta.unsqueeze(-3)).sum(-2))

    def jump(self, y_hat: torch.Tensor) -> torch.Tensor:
        """The piecewise jump, if any. It moves ŷ but, constant by pieces, adds nothing to dŷ/dθ = x."""
        if self.jump_at is None:
            return y_hat
        return y_hat + self.jump_height * (y_hat >= self.jump_at).to(y_hat.dtype)


def _by_columns(Xd: torch.Tensor, theta: torch.Tensor, jump) -> torch.Tensor:
    """ŷ for shared data and any batch of θ as one (n, p) @ (p, M) product, laid out (n, M, K).

    torch.matmul's batched broadcast is far slower here: it expands Xd per θ and runs a bmm.
    """
    p, K = theta.shape[-2:]
    return jump(Xd @ theta.movedim(-2, 0).reshape(p, -1)).view(Xd.shape[0], -1, K)


LINEAR = Model()


@dataclass(frozen=True)
class Trajectory:
    """What `train` records. Index 0 of the epoch/step axes is the initial point."""

    epoch_params: torch.Tensor  # (E+1, p, K) parameters after each epoch (the kept ones: kept_epochs)
    epoch_loss: torch.Tensor  # (E+1, K) full-data training loss after each epoch (idem)
    step_params: torch.Tensor | None  # (T+1, p, K) after each step, if recorded
    # (K,) -1 if never. The loss is checked at epoch ends: in the first epoch that ends inf/NaN, the first step
    # whose full-data loss is inf/NaN (the epoch's last if none is). A loss that is inf mid-epoch and finite
    # again at the epoch's end is not flagged (batches of one past the edge can do that).
    diverged_step: torch.Tensor
    steps_per_epoch: int
    kept_epochs: torch.Tensor  # (E'+1,) the epoch of each row of epoch_params/epoch_loss: all, unless keep_every

    @property
    def diverged(self) -> torch.Tensor:
        return self.diverged_step >= 0


def augment(X: torch.Tensor, bias: bool) -> torch.Tensor:
    """Append the ones column for b: (n, d) -> (n, p), or (K, n, d) -> (K, n, p)."""
    if not bias:
        return X
    return torch.cat([X, torch.ones_like(X[..., :1])], dim=-1)


def runs_last(Xa: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Engine layout: shared data stay (n, p) / (n, 1); per-run (K, n, p) / (K, n) -> (n, p, K) / (n, K)."""
    Xd = Xa if Xa.dim() == 2 else Xa.permute(1, 2, 0).contiguous()
    yd = y.unsqueeze(1) if y.dim() == 1 else y.T.contiguous()
    return Xd, yd


def full_loss(model: Model, Xd: torch.Tensor, yd: torch.Tensor, theta: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean training loss per run, (..., K), for theta (..., p, K): the article's `train_l.mean()`."""
    if Xd.dim() == 2:
        residual = _by_columns(Xd, theta, model.jump)  # (n, M, K), a fresh tensor: updated in place
        residual -= yd.unsqueeze(1)
        mean_squared = residual.square_().mean(0).reshape(theta.shape[:-2] + theta.shape[-1:])
    else:
        residual = model.predict(Xd, theta)
        residual -= yd
        mean_squared = residual.square_().mean(-2)
    return mean_squared / 2 if loss == "half" else mean_squared


def train(
    X: torch.Tensor,
    y: torch.Tensor,
    theta0: torch.Tensor,
    lr: torch.Tensor | float,
    orders,
    *,
    batch_size: int,
    model: Model = LINEAR,
    loss: str = "half",
    grad_divisor: float | None = None,
    lr_decay_steps: float | None = None,
    record_steps: bool = False,
    keep_every: int = 1,
    device: str | torch.device | None = None,
) -> Trajectory:
    """Run SGD for K runs at once; see the module docstring for the update rule.

    X: (n, d) shared or (K, n, d) per run; y: (n,) or (K, n); theta0: (p, K) with p = d (+1 if
    model.bias, b last); lr: scalar or (K,); orders: (E, n) one batch order per epoch shared by
    all runs, or (E, K, n) one per run — or anything whose len is E and whose slices [a:b] give
    those epochs in turn (data.LazyOrders). lr_decay_steps = t0 gives lr_t = lr * t0 / (t0 + t).
    A run whose loss becomes inf/NaN is flagged with its step; the other runs carry on.
    keep_every = k keeps epochs 0, k, 2k, … and the last (Trajectory.kept_epochs): without
    record_steps, memory is then O(E / k) plus a chunk, whatever the epochs.
    device: where to compute (default: X's device); results come back on that device.
    """
    if device is not None:
        X, y, theta0 = X.to(device), y.to(device), theta0.to(device)
    Xd, yd = runs_last(augment(X, model.bias), y)
    p, K = theta0.shape
    n, epochs = Xd.shape[0], len(orders)
    lr = torch.as_tensor(lr, dtype=Xd.dtype, device=Xd.device).expand(K).contiguous()
    steps_per_epoch = -(-n // batch_size)
    make_loop = _loop_factory(model, batch_size, grad_divisor, loss, lr_decay_steps, Xd, yd)
    hot = make_loop(lr, Xd, yd)

    theta = theta0.to(Xd).contiguous().clone()
    kept_epochs = _kept(epochs, keep_every)
    epoch_params = theta.new_empty(len(kept_epochs), p, K)
    epoch_loss = theta.new_empty(len(kept_epochs), K)
    step_params = theta.new_empty(epochs * steps_per_epoch + 1, p, K) if record_steps else None
    if step_params is not None:
        step_params[0] = theta
    epoch_params[0] = theta
    epoch_loss[0] = hot.loss(theta)
    diverged_step = torch.full((K,), -1, dtype=torch.int64)  # on the CPU: read once per chunk

    chunk = _chunk_epochs(n, p, K, len(orders.shape) == 3, hot)
    for first in range(0, epochs, chunk):
        last = min(first + chunk, epochs)
        chunk_orders = torch.as_tensor(orders[first:last]).to(Xd.device)
        start = theta.clone()
        steps = None if step_params is None else step_params[first * steps_per_epoch + 1 : last * steps_per_epoch + 1]
        params, losses = hot.epochs(chunk_orders, theta, first * steps_per_epoch, steps)  # (C, p, K), (C, K)
        # Only the kept epochs leave the chunk; losses are checked once per chunk, vectorised.
        rows = _rows_in(kept_epochs, first, last)
        epoch_params[rows] = params[kept_epochs[rows] - first - 1]
        epoch_loss[rows] = losses[kept_epochs[rows] - first - 1]
        blown = ~torch.isfinite(losses).cpu()  # (C, K)
        newly = blown.any(0) & (diverged_step < 0)
        for k in newly.nonzero().flatten().tolist():
            c = int(blown[:, k].nonzero()[0, 0])
            before = start if c == 0 else params[c - 1]
            diverged_step[k] = _locate_divergence(make_loop, model, loss, lr, Xd, yd, chunk_orders[c : c + 1],
                                                  before, k, (first + c) * steps_per_epoch)
        if bool(newly.any()) and bool((diverged_step >= 0).all()):
            # Every run has diverged: stop, and mark what was never computed as such.
            epoch_params[rows.stop :] = float("nan")
            epoch_loss[rows.stop :] = float("nan")
            if step_params is not None:
                step_params[last * steps_per_epoch + 1 :] = float("nan")
            break
        progress.advance(last, epochs)
    return Trajectory(epoch_params, epoch_loss, step_params, diverged_step, steps_per_epoch, kept_epochs)


def _kept(epochs: int, keep_every: int) -> torch.Tensor:
    """Epochs 0, k, 2k, … and the last: the rows of epoch_params and epoch_loss."""
    if not (isinstance(keep_every, int) and keep_every >= 1):
        raise ValueError(f"keep_every must be an integer ≥ 1, got {keep_every!r}")
    kept = torch.arange(0, epochs + 1, keep_every)
    return kept if kept[-1] == epochs else torch.cat([kept, torch.tensor([epochs])])


def _rows_in(kept_epochs: torch.Tensor, first: int, last: int) -> slice:
    """The rows of kept_epochs for epochs first + 1 … last (they are sorted)."""
    lo, hi = torch.searchsorted(kept_epochs, torch.tensor([first + 1, last + 1])).tolist()
    return slice(lo, hi)


def _chunk_epochs(n: int, p: int, K: int, per_run_orders: bool, hot, budget: int = 1 << 22, most: int = 256) -> int:
    """Epochs run and checked together: their buffers stay within `budget` numbers.

    The torch loop gathers each epoch's data (n·p·K with per-run data) and its loss residuals
    (n·K); the compiled loop holds only parameters, losses and the orders.
    """
    orders = n * K if per_run_orders else n
    per_epoch = (p + 1) * K + orders if isinstance(hot, kernels.Chunk) else n * p * K
    return max(1, min(most, budget // per_epoch))


def _loop_factory(model, batch_size, grad_divisor, loss, lr_decay_steps, Xd, yd):
    """make_loop(lr, Xd, yd): the compiled loop where it applies, else the torch one (same interface)."""
    divisor = float(batch_size if grad_divisor is None else grad_divisor)
    compiled = kernels.usable(Xd, Xd.shape[1])

    def make_loop(lr, Xd, yd):
        if compiled:
            return kernels.Chunk(model, batch_size, divisor, GRAD_SCALE[loss], loss == "half", lr_decay_steps,
                                 Xd, yd, lr)
        return _TorchLoop(model, batch_size, Xd.new_tensor(divisor), GRAD_SCALE[loss], lr_decay_steps,
                          Xd, yd, lr, loss)

    return make_loop


def _locate_divergence(make_loop, model, loss, lr, Xd, yd, order, theta, k, t0) -> int:
    """Replay one epoch of run k step by step from theta: the first step whose full-data loss is inf/NaN."""
    one = slice(k, k + 1)
    Xk = Xd[..., one].contiguous() if Xd.dim() == 3 else Xd
    yk = yd[:, one].contiguous() if yd.shape[1] > 1 else yd
    order = order[:, one] if order.dim() == 3 else order
    loop = make_loop(lr[one], Xk, yk)
    steps = -(-Xd.shape[0] // loop.batch_size)
    trail = theta.new_empty(steps, theta.shape[0], 1)
    loop.epochs(order, theta[:, one].contiguous().clone(), t0, trail)
    blown = ~torch.isfinite(full_loss(model, Xk, yk, trail, loss)[:, 0])
    return t0 + 1 + int(blown.nonzero()[0, 0]) if bool(blown.any()) else t0 + steps


def epoch_data(Xd: torch.Tensor, yd: torch.Tensor, orders: torch.Tensor):
    """Yield each epoch's data in batch order, (Xe, XeT, ye), for orders (C, n) or (C, K, n).

    Shared orders gather all C epochs in one call, and for shared data also the transposes that
    the gradient's matrix product reads as contiguous slices (XeT is None for per-run data).
    """
    if orders.dim() == 2:
        C, n = orders.shape
        flat = orders.reshape(-1)  # index_select on the flat order: much cheaper than X[orders]
        Xc = Xd.index_select(0, flat).view(C, n, *Xd.shape[1:])  # (C, n, p[, K])
        yc = yd.index_select(0, flat).view(C, n, -1)  # (C, n, K or 1)
        XcT = Xc.transpose(1, 2).contiguous() if Xd.dim() == 2 else None  # (C, p, n)
        for i in range(orders.shape[0]):
            yield Xc[i], None if XcT is None else XcT[i], yc[i]
        return
    for order in orders:  # (K, n): one order per run
        idx = order.T  # (n, K)
        K = order.shape[0]
        Xk = Xd.unsqueeze(-1).expand(*Xd.shape, K) if Xd.dim() == 2 else Xd
        Xe = torch.gather(Xk, 0, idx.unsqueeze(1).expand(-1, Xk.shape[1], -1))
        yield Xe, None, torch.gather(yd.expand(-1, K), 0, idx)


class _TorchLoop:
    """The hot loop in torch (any device and dtype), its scratch buffers allocated once per train() call."""

    def __init__(self, model, batch_size, divisor, scale, lr_decay_steps, Xd, yd, lr, loss):
        self.model, self.batch_size, self.divisor, self.scale, self.loss_kind = model, batch_size, divisor, scale, loss
        self.Xd, self.yd, self.lr, self.lr_decay_steps = Xd, yd, lr, lr_decay_steps
        p, K = Xd.shape[1], lr.shape[0]
        self.r = Xd.new_empty(batch_size, K)  # (B, K) residuals
        self.grad = Xd.new_empty(p, K)
        self.prod = Xd.new_empty(batch_size, p, K)  # per-run data only: (Xb * theta) before the sum
        self.lr_t = lr.clone()

    def loss(self, theta: torch.Tensor) -> torch.Tensor:
        return full_loss(self.model, self.Xd, self.yd, theta, self.loss_kind)

    def epochs(self, orders, theta, t, step_params):
        """Run len(orders) epochs from theta (in place); their params (C, p, K) and losses (C, K).

        step_params, if given, receives the parameters after each step, (C·steps, p, K).
        """
        params = theta.new_empty(orders.shape[0], *theta.shape)
        steps = -(-self.Xd.shape[0] // self.batch_size)
        for c, (Xe, XeT, ye) in enumerate(epoch_data(self.Xd, self.yd, orders)):
            record = None if step_params is None else step_params[c * steps : (c + 1) * steps]
            t = self.epoch(Xe, XeT, ye, theta, t, record)
            params[c] = theta
        return params, self.loss(params)

    def epoch(self, Xe, XeT, ye, theta, t, record):
        """One pass over the (already shuffled) data, updating theta in place; returns the step count.

        Shared data come with XeT (p, n), so that batches of Xᵀ are contiguous slices.
        """
        model, B, n, r, grad = self.model, self.batch_size, ye.shape[0], self.r, self.grad
        shared = Xe.dim() == 2
        for i, s in enumerate(range(0, n, B)):
            b = min(B, n - s)
            rb = r[:b]
            if shared:
                torch.mm(Xe[s : s + b], theta, out=rb)  # ŷ, (b, K)
            else:
                torch.mul(Xe[s : s + b], theta, out=self.prod[:b])
                torch.sum(self.prod[:b], 1, out=rb)
            if model.jump_at is not None:
                rb += model.jump_height * (rb >= model.jump_at).to(rb.dtype)  # in rb's dtype: exact in float64 too
            rb -= ye[s : s + b]  # residual ŷ − y
            if self.scale != 1.0:
                rb *= self.scale
            if shared:
                torch.mm(XeT[:, s : s + b], rb, out=grad)  # gradient of the summed mini-batch loss
            else:
                torch.mul(Xe[s : s + b], rb.unsqueeze(1), out=self.prod[:b])
                torch.sum(self.prod[:b], 0, out=grad)
            if self.lr_decay_steps is None:
                grad *= self.lr
            else:
                torch.mul(self.lr, self.lr_decay_steps / (self.lr_decay_steps + t), out=self.lr_t)
                grad *= self.lr_t
            theta.addcdiv_(grad, self.divisor, value=-1)  # theta − (lr·grad)/divisor, rounded as D2L's sgd
            t += 1
            if record is not None:
                record[i] = theta
        return t
