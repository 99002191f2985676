"""The article's code, kept as close to it as possible: the references the engine is tested against.

`scratch` is D2L 3.2 (linreg, squared_loss, a hand-written sgd, autograd), with the batch order
passed in instead of drawn by `random.shuffle`. `concise` is D2L 3.3 (nn.Linear, nn.MSELoss,
torch.optim.SGD) with its step size matched to scratch's. Both are slow Python loops, kept for
fidelity and for tests; experiments train through `engine.train`.
"""

from __future__ import annotations

from ._lazy import torch
from .engine import GRAD_SCALE, Model


def data_iter(batch_size, features, labels, rng):
    """D2L's minibatch iterator; `rng` is a random.Random (the article used the unseeded global one)."""
    num_examples = len(features)
    indices = list(range(num_examples))
    rng.shuffle(indices)
    for i in range(0, num_examples, batch_size):
        batch_indices = torch.tensor(indices[i : min(i + batch_size, num_examples)])
        yield features[batch_indices], labels[batch_indices]


def linreg(X, w, b):
    """D2L's linear model; b may be None for the article's bias-free toy model."""
    y_hat = torch.matmul(X, w)
    return y_hat if b is None else y_hat + b


def squared_loss(y_hat, y):
    """D2L's loss, with the ½."""
    return (y_hat - y.reshape(y_hat.shape)) ** 2 / 2


def simple_squared_loss(y_hat, y):
    """The article's toy loss, without the ½."""
    return (y_hat - y.reshape(y_hat.shape)) ** 2


def simple_non_linearity(y_hat, jump_at=3.0, jump_height=0.1):
    """The article's piecewise "activation": + 0.1 where the output is ≥ 3 (vectorised, same arithmetic)."""
    return y_hat + jump_height * (y_hat >= jump_at)


def sgd(params, lr, batch_size):
    """D2L's minibatch SGD: divides by the global batch_size, whatever the batch drawn."""
    with torch.no_grad():
        for param in params:
            param -= lr * param.grad / batch_size
            param.grad.zero_()


LOSSES = {"half": squared_loss, "plain": simple_squared_loss}
PLAIN_LINEAR = Model()


def _forward(model: Model, X, w, b):
    y_hat = linreg(X, w, b)
    return y_hat if model.jump_at is None else simple_non_linearity(y_hat, model.jump_at, model.jump_height)


def scratch(X, y, w0, b0, lr, orders, *, batch_size, model=PLAIN_LINEAR, loss="half", grad_divisor=None):
    """The article's training loop. Returns parameters after every step, (T+1, p)."""
    w = w0.clone().reshape(-1, 1).requires_grad_(True)  # (d, 1)
    b = torch.tensor([float(b0)], dtype=X.dtype).requires_grad_(True) if model.bias else None
    params = [w] if b is None else [w, b]
    divisor = batch_size if grad_divisor is None else grad_divisor
    loss_fn = LOSSES[loss]
    trail = [_flat(params)]
    for order in orders:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            l = loss_fn(_forward(model, X[idx], w, b), y[idx])
            l.sum().backward()
            sgd(params, lr, divisor)
            trail.append(_flat(params))
    return torch.stack(trail)


def concise(X, y, w0, b0, lr, orders, *, batch_size, model=PLAIN_LINEAR, loss="half", grad_divisor=None):
    """D2L 3.3's training loop, step-matched to `scratch`. Returns parameters per step, (T+1, p).

    nn.MSELoss averages (ŷ-y)² over the b samples of a batch, so its gradient is (2/b) Σ x r;
    scratch steps by lr·scale/divisor · Σ x r. The optimiser's lr is set per batch to make the
    two equal: lr · scale · b / (2 · divisor).
    """
    nn = torch.nn  # D2L's `from torch import nn`, here so that importing this module does not import torch
    net = nn.Linear(X.shape[1], 1, bias=model.bias, dtype=X.dtype)
    with torch.no_grad():
        net.weight.copy_(w0.reshape(1, -1))
        if model.bias:
            net.bias.fill_(float(b0))
    mse = nn.MSELoss()
    trainer = torch.optim.SGD(net.parameters(), lr=lr)
    divisor = batch_size if grad_divisor is None else grad_divisor
    trail = [_flat(list(net.parameters()))]
    for order in orders:
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            y_hat = net(X[idx])
            if model.jump_at is not None:
                y_hat = simple_non_linearity(y_hat, model.jump_at, model.jump_height)
            trainer.param_groups[0]["lr"] = lr * GRAD_SCALE[loss] * len(idx) / (2 * divisor)
            trainer.zero_grad()
            mse(y_hat, y[idx].reshape(y_hat.shape)).backward()
            trainer.step()
            trail.append(_flat(list(net.parameters())))
    return torch.stack(trail)


def _flat(params):
    return torch.cat([p.detach().flatten() for p in params]).clone()
