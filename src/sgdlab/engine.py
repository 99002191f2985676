"""Batched SGD for linear regression: K independent runs trained at once, analytic gradients.

Every experiment trains through `train`; one run is K = 1. Parameters are laid out runs-last,
theta: (p, K), with p = d (+1 for the bias, carried as a column of ones so that w and b update
together). Data shared by all runs stay (n, p) and each step is two small matrix products
(B, p) @ (p, K) and (p, B) @ (B, K); data that differ per run are (n, p, K) and each step is an
elementwise product and a sum.

The update is D2L's `sgd`, operation for operation: theta -= (lr * grad) / grad_divisor, with
grad the gradient of the *summed* mini-batch loss. grad_divisor is the batch size, except in the
article's toy loop, which divides by its global batch_size = 10 while drawing batches of one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from . import progress

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

    epoch_params: torch.Tensor  # (E+1, p, K) parameters after each epoch
    epoch_loss: torch.Tensor  # (E+1, K) full-data training loss after each epoch
    step_params: torch.Tensor | None  # (T+1, p, K) after each step, if recorded
    diverged_step: torch.Tensor  # (K,) first step after which the loss is inf/NaN; -1 if never
    steps_per_epoch: int

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
    orders: torch.Tensor,
    *,
    batch_size: int,
    model: Model = LINEAR,
    loss: str = "half",
    grad_divisor: float | None = None,
    lr_decay_steps: float | None = None,
    record_steps: bool = False,
    device: str | torch.device | None = None,
) -> Trajectory:
    """Run SGD for K runs at once; see the module docstring for the update rule.

    X: (n, d) shared or (K, n, d) per run; y: (n,) or (K, n); theta0: (p, K) with p = d (+1 if
    model.bias, b last); lr: scalar or (K,); orders: (E, n) one batch order per epoch shared by
    all runs, or (E, K, n) one per run. lr_decay_steps = t0 gives lr_t = lr * t0 / (t0 + t).
    A run whose loss becomes inf/NaN is flagged with its step; the other runs carry on.
    device: where to compute (default: X's device); results come back on that device.
    """
    if device is not None:
        X, y, theta0, orders = X.to(device), y.to(device), theta0.to(device), orders.to(device)
    Xd, yd = runs_last(augment(X, model.bias), y)
    p, K = theta0.shape
    n, epochs = Xd.shape[0], orders.shape[0]
    lr = torch.as_tensor(lr, dtype=Xd.dtype, device=Xd.device).expand(K).contiguous()
    steps_per_epoch = -(-n // batch_size)
    make_stepper = _Stepper.factory(model, batch_size, grad_divisor, GRAD_SCALE[loss], lr_decay_steps, Xd)
    step = make_stepper(lr)

    theta = theta0.to(Xd).clone()
    epoch_params = theta.new_empty(epochs + 1, p, K)
    epoch_loss = theta.new_empty(epochs + 1, K)
    step_params = theta.new_empty(epochs * steps_per_epoch + 1, p, K) if record_steps else None
    if step_params is not None:
        step_params[0] = theta
    epoch_params[0] = theta
    epoch_loss[0] = full_loss(model, Xd, yd, theta, loss)
    diverged_step = torch.full((K,), -1, dtype=torch.int64)  # on the CPU: read once per epoch

    chunk = _chunk_epochs(n, p, K)
    for first in range(0, epochs, chunk):
        last = min(first + chunk, epochs)
        for epoch, (Xe, XeT, ye) in enumerate(epoch_data(Xd, yd, orders[first:last].to(Xd.device)), start=first):
            step.epoch(Xe, XeT, ye, theta, epoch * steps_per_epoch, step_params)
            epoch_params[epoch + 1] = theta
        # Losses and the divergence check once per chunk of epochs, vectorised: on a tiny data set
        # (the article's four points) per-epoch bookkeeping would cost more than the steps.
        epoch_loss[first + 1 : last + 1] = full_loss(model, Xd, yd, epoch_params[first + 1 : last + 1], loss)
        blown = ~torch.isfinite(epoch_loss[first + 1 : last + 1]).cpu()  # (chunk, K)
        newly = blown.any(0) & (diverged_step < 0)
        for k in newly.nonzero().flatten().tolist():
            epoch = first + int(blown[:, k].nonzero()[0, 0])
            one = slice(k, k + 1)
            Xe, XeT, ye = _one_run(*next(epoch_data(Xd, yd, orders[epoch : epoch + 1].to(Xd.device))), k)
            Xk, _, yk = _one_run(Xd, None, yd, k)
            diverged_step[k] = make_stepper(lr[one]).locate_divergence(
                Xe, XeT, ye, epoch_params[epoch, :, one], epoch * steps_per_epoch, Xk, yk, loss
            )
        if bool(newly.any()) and bool((diverged_step >= 0).all()):
            # Every run has diverged: stop, and mark what was never computed as such.
            epoch_params[last + 1 :] = float("nan")
            epoch_loss[last + 1 :] = float("nan")
            if step_params is not None:
                step_params[last * steps_per_epoch + 1 :] = float("nan")
            break
        progress.advance(last, epochs)
    return Trajectory(epoch_params, epoch_loss, step_params, diverged_step, steps_per_epoch)


def _chunk_epochs(n: int, p: int, K: int, budget: int = 1 << 22, most: int = 256) -> int:
    """Epochs shuffled and checked together: their data copies and losses stay within `budget` floats."""
    return max(1, min(most, budget // (n * p * K)))


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


def _one_run(X, XT, y, k: int):
    """Run k's data: per-run X (n, p, K) and y (n, K) are sliced; shared (n, p), its XT and (n, 1) pass through."""
    one = slice(k, k + 1)
    X1 = X[..., one].contiguous() if X.dim() == 3 else X
    return X1, XT, (y[:, one].contiguous() if y.shape[1] > 1 else y)


class _Stepper:
    """The hot loop, with its scratch buffers allocated once per train() call."""

    @classmethod
    def factory(cls, model, batch_size, grad_divisor, scale, lr_decay_steps, like):
        divisor = like.new_tensor(float(batch_size if grad_divisor is None else grad_divisor))
        return lambda lr: cls(model, batch_size, divisor, scale, lr_decay_steps, like, lr)

    def __init__(self, model, batch_size, divisor, scale, lr_decay_steps, like, lr):
        self.model, self.batch_size, self.divisor, self.scale = model, batch_size, divisor, scale
        self.lr, self.lr_decay_steps = lr, lr_decay_steps
        p, K = like.shape[1], lr.shape[0]
        self.r = like.new_empty(batch_size, K)  # (B, K) residuals
        self.grad = like.new_empty(p, K)
        self.prod = like.new_empty(batch_size, p, K)  # per-run data only: (Xb * theta) before the sum
        self.lr_t = lr.clone()

    def epoch(self, Xe, XeT, ye, theta, t, step_params, check=None):
        """One pass over the (already shuffled) data, updating theta in place; returns the step count.

        Shared data come with XeT (p, n), so that batches of Xᵀ are contiguous slices.
        """
        model, B, n, r, grad = self.model, self.batch_size, ye.shape[0], self.r, self.grad
        shared = Xe.dim() == 2
        for s in range(0, n, B):
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
            if step_params is not None:
                step_params[t] = theta
            if check is not None and check(theta):
                return t
        return t

    def locate_divergence(self, Xe, XeT, ye, theta, t0, Xd, yd, loss):
        """Replay one epoch of one run step by step: the first step whose full-data loss is inf/NaN."""

        def blown(th):
            return not bool(torch.isfinite(full_loss(self.model, Xd, yd, th, loss)).all())

        return self.epoch(Xe, XeT, ye, theta.clone(), t0, None, check=blown)
