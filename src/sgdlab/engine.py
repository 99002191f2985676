"""Batched SGD for linear regression: K independent runs trained at once, analytic gradients.

Every experiment trains through `train`; one run is K = 1. Tensors are laid out runs-last,
(n, p, K), so that a mini-batch is a contiguous slice and every kernel vectorises across runs.
p = d (+1 for the bias, carried as a column of ones so that w and b update in one step).

The update is D2L's `sgd`, operation for operation: theta -= (lr * grad) / grad_divisor, with
grad the gradient of the *summed* mini-batch loss. grad_divisor is the batch size, except in the
article's toy loop, which divides by its global batch_size = 10 while drawing batches of one.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

GRAD_SCALE = {"half": 1.0, "plain": 2.0}  # d/dŷ of (ŷ-y)²/2 and of (ŷ-y)², per residual


@dataclass(frozen=True)
class Model:
    """ŷ = Xw (+ b), plus the article's piecewise jump: + jump_height where ŷ ≥ jump_at."""

    bias: bool = True
    jump_at: float | None = None
    jump_height: float = 0.0

    def predict(self, Xa: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Predictions (..., K) for augmented features Xa (..., p, K) and parameters (p, K)."""
        y_hat = (Xa * theta).sum(-2)
        if self.jump_at is not None:
            # The jump is piecewise constant: it moves ŷ but adds nothing to dŷ/dθ = x.
            y_hat = y_hat + self.jump_height * (y_hat >= self.jump_at)
        return y_hat


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


def runs_last(Xa: torch.Tensor, y: torch.Tensor, K: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Shared (n, p) / (n,) or per-run (K, n, p) / (K, n) data -> (n, p, K) and (n, K)."""
    Xr = Xa.unsqueeze(-1).expand(*Xa.shape, K) if Xa.dim() == 2 else Xa.permute(1, 2, 0)
    yr = y.unsqueeze(-1).expand(*y.shape, K) if y.dim() == 1 else y.T
    return Xr.contiguous(), yr.contiguous()


def full_loss(model: Model, Xr: torch.Tensor, yr: torch.Tensor, theta: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean training loss per run, (..., K), for theta (..., p, K): the article's `train_l.mean()`."""
    residual = model.predict(Xr, theta.unsqueeze(-3)) - yr
    squared = residual**2
    return (squared / 2 if loss == "half" else squared).mean(-2)


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
) -> Trajectory:
    """Run SGD for K runs at once; see the module docstring for the update rule.

    X: (n, d) shared or (K, n, d) per run; y: (n,) or (K, n); theta0: (p, K) with p = d (+1 if
    model.bias, b last); lr: scalar or (K,); orders: (E, n) one batch order per epoch shared by
    all runs, or (E, K, n) one per run. lr_decay_steps = t0 gives lr_t = lr * t0 / (t0 + t).
    """
    Xa = augment(X, model.bias)
    p, K = theta0.shape
    Xr, yr = runs_last(Xa, y, K)
    n = Xr.shape[0]
    lr = torch.as_tensor(lr, dtype=Xr.dtype, device=Xr.device).expand(K).contiguous()
    divisor = float(batch_size if grad_divisor is None else grad_divisor)
    scale = GRAD_SCALE[loss]
    epochs = orders.shape[0]
    steps_per_epoch = -(-n // batch_size)

    theta = theta0.to(Xr).clone()
    epoch_params = torch.empty(epochs + 1, p, K, dtype=Xr.dtype, device=Xr.device)
    epoch_loss = torch.empty(epochs + 1, K, dtype=Xr.dtype, device=Xr.device)
    step_params = None
    if record_steps:
        step_params = torch.empty(epochs * steps_per_epoch + 1, p, K, dtype=Xr.dtype, device=Xr.device)
        step_params[0] = theta
    epoch_params[0] = theta
    epoch_loss[0] = full_loss(model, Xr, yr, theta, loss)
    diverged_step = torch.full((K,), -1, dtype=torch.int64)
    stepper_args = (model, batch_size, divisor, scale, lr_decay_steps, p, Xr)
    step = _Stepper(*stepper_args, lr)

    for epoch in range(epochs):
        Xe, ye = _shuffle(Xr, yr, orders[epoch].to(Xr.device))
        start_theta = theta.clone()
        step.epoch(Xe, ye, theta, epoch * steps_per_epoch, step_params)
        epoch_params[epoch + 1] = theta
        epoch_loss[epoch + 1] = full_loss(model, Xr, yr, theta, loss)
        bad = (~torch.isfinite(epoch_loss[epoch + 1])).cpu() & (diverged_step < 0)
        if bad.any():
            for k in bad.nonzero().flatten().tolist():
                one = slice(k, k + 1)
                replay = _Stepper(*stepper_args, lr[one])
                diverged_step[k] = _locate_divergence(
                    replay, Xe[..., one], ye[:, one], start_theta[:, one],
                    Xr[..., one], yr[:, one], epoch * steps_per_epoch, loss,
                )
            if bool((diverged_step >= 0).all()):
                epoch_params[epoch + 2 :] = float("nan")
                epoch_loss[epoch + 2 :] = float("nan")
                break
    return Trajectory(epoch_params, epoch_loss, step_params, diverged_step, steps_per_epoch)


def _shuffle(Xr: torch.Tensor, yr: torch.Tensor, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Data in this epoch's batch order: one shared order (n,) or one per run (K, n)."""
    if order.dim() == 1:
        return Xr.index_select(0, order), yr.index_select(0, order)
    idx = order.T  # (n, K)
    Xe = torch.gather(Xr, 0, idx.unsqueeze(1).expand(-1, Xr.shape[1], -1))
    return Xe, torch.gather(yr, 0, idx)


class _Stepper:
    """The hot loop, with its scratch buffers allocated once."""

    def __init__(self, model, batch_size, divisor, scale, lr_decay_steps, p, like, lr):
        self.model, self.batch_size, self.divisor, self.scale = model, batch_size, divisor, scale
        self.lr, self.lr_decay_steps = lr, lr_decay_steps
        K = lr.shape[0]
        self.prod = like.new_empty(batch_size, p, K)  # (B, p, K)
        self.r = like.new_empty(batch_size, K)  # (B, K)
        self.grad = like.new_empty(p, K)
        self.lr_t = lr.clone()

    def epoch(self, Xe, ye, theta, t, step_params, check=None):
        """One pass over the (already shuffled) data; returns the global step count after it."""
        model, B, n = self.model, self.batch_size, ye.shape[0]
        prod, r, grad, lr, lr_t = self.prod, self.r, self.grad, self.lr, self.lr_t
        for start in range(0, n, B):
            Xb, yb = Xe[start : start + B], ye[start : start + B]  # (b, p, K), (b, K)
            b = Xb.shape[0]
            torch.mul(Xb, theta, out=prod[:b])
            torch.sum(prod[:b], 1, out=r[:b])  # ŷ
            rb = r[:b]
            if model.jump_at is not None:
                rb += model.jump_height * (rb >= model.jump_at)
            rb -= yb  # residual ŷ - y
            if self.scale != 1.0:
                rb *= self.scale
            torch.mul(Xb, rb.unsqueeze(1), out=prod[:b])
            torch.sum(prod[:b], 0, out=grad)  # gradient of the summed mini-batch loss
            if self.lr_decay_steps is None:
                grad *= lr
            else:
                torch.mul(lr, self.lr_decay_steps / (self.lr_decay_steps + t), out=lr_t)
                grad *= lr_t
            grad /= self.divisor
            theta -= grad
            t += 1
            if step_params is not None:
                step_params[t] = theta
            if check is not None and check(theta):
                return t
        return t


def _locate_divergence(step, Xe, ye, theta, Xr, yr, t0, loss):
    """Replay one epoch of one run step by step: the first step whose full-data loss is inf/NaN."""

    def blown(th):
        return not bool(torch.isfinite(full_loss(step.model, Xr, yr, th, loss)).all())

    return step.epoch(Xe.contiguous(), ye.contiguous(), theta.clone(), t0, None, check=blown)
