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
            y_hat = torch.matmul(Xd, theta)
        else:
            y_hat = (Xd * theta.unsqueeze(-3)).sum(-2)
        if self.jump_at is not None:
            # The jump is piecewise constant: it moves ŷ but adds nothing to dŷ/dθ = x.
            y_hat = y_hat + self.jump_height * (y_hat >= self.jump_at).to(y_hat.dtype)
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


def runs_last(Xa: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Engine layout: shared data stay (n, p) / (n, 1); per-run (K, n, p) / (K, n) -> (n, p, K) / (n, K)."""
    Xd = Xa if Xa.dim() == 2 else Xa.permute(1, 2, 0).contiguous()
    yd = y.unsqueeze(1) if y.dim() == 1 else y.T.contiguous()
    return Xd, yd


def full_loss(model: Model, Xd: torch.Tensor, yd: torch.Tensor, theta: torch.Tensor, loss: str) -> torch.Tensor:
    """Mean training loss per run, (..., K), for theta (..., p, K): the article's `train_l.mean()`."""
    residual = model.predict(Xd, theta)  # a fresh tensor: safe to update in place (saves passes)
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

    for epoch in range(epochs):
        Xe, ye = shuffle(Xd, yd, orders[epoch].to(Xd.device))
        step.epoch(Xe, ye, theta, epoch * steps_per_epoch, step_params)
        epoch_params[epoch + 1] = theta
        epoch_loss[epoch + 1] = full_loss(model, Xd, yd, theta, loss)
        blown = (~torch.isfinite(epoch_loss[epoch + 1])).cpu() & (diverged_step < 0)
        for k in blown.nonzero().flatten().tolist():
            one = slice(k, k + 1)
            replay = make_stepper(lr[one])
            diverged_step[k] = replay.locate_divergence(
                *_one_run(Xe, ye, k), epoch_params[epoch, :, one], epoch * steps_per_epoch, *_one_run(Xd, yd, k), loss
            )
        if bool(blown.any()) and bool((diverged_step >= 0).all()):
            # Every run has diverged: stop, and mark what was never computed as such.
            epoch_params[epoch + 2 :] = float("nan")
            epoch_loss[epoch + 2 :] = float("nan")
            if step_params is not None:
                step_params[(epoch + 1) * steps_per_epoch + 1 :] = float("nan")
            break
    return Trajectory(epoch_params, epoch_loss, step_params, diverged_step, steps_per_epoch)


def shuffle(Xd: torch.Tensor, yd: torch.Tensor, order: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Data in this epoch's batch order: one shared order (n,) or one per run (K, n)."""
    if order.dim() == 1:
        return Xd.index_select(0, order), yd.index_select(0, order)
    K = order.shape[0]
    idx = order.T  # (n, K)
    Xk = Xd.unsqueeze(-1).expand(*Xd.shape, K) if Xd.dim() == 2 else Xd
    Xe = torch.gather(Xk, 0, idx.unsqueeze(1).expand(-1, Xk.shape[1], -1))
    return Xe, torch.gather(yd.expand(-1, K), 0, idx)


def _one_run(X: torch.Tensor, y: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Run k's data: per-run X (n, p, K) and y (n, K) are sliced; shared (n, p) and (n, 1) pass through."""
    one = slice(k, k + 1)
    return (X[..., one].contiguous() if X.dim() == 3 else X), (y[:, one].contiguous() if y.shape[1] > 1 else y)


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

    def epoch(self, Xe, ye, theta, t, step_params, check=None):
        """One pass over the (already shuffled) data, updating theta in place; returns the step count."""
        model, B, n, r, grad = self.model, self.batch_size, ye.shape[0], self.r, self.grad
        shared = Xe.dim() == 2
        XeT = Xe.T.contiguous() if shared else None  # (p, n): batches of Xᵀ as contiguous slices
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

    def locate_divergence(self, Xe, ye, theta, t0, Xd, yd, loss):
        """Replay one epoch of one run step by step: the first step whose full-data loss is inf/NaN."""

        def blown(th):
            return not bool(torch.isfinite(full_loss(self.model, Xd, yd, th, loss)).all())

        return self.epoch(Xe, ye, theta.clone(), t0, None, check=blown)
