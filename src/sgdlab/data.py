"""Synthetic data: D2L's y = Xw + b + noise, the article's four-point toy sets, batch orders."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ._lazy import torch

TRUE_W = (2.0, -3.4)  # D2L 3.2's true_w
TRUE_B = 4.2
NUM_EXAMPLES = 1000
NOISE_STD = 0.01

TOY_X = (0.0, 1.0, 2.0, 3.0)
TOY_Y_CLEAN = (0.0, 1.0, 2.0, 3.0)
TOY_Y_NOISY = (0.0, 1.0, 2.0, 3.1)  # the article's "wrong label" on the last point


@dataclass(frozen=True)
class Dataset:
    """Features X (n, d) and labels y (n,), both float32 unless asked otherwise."""

    X: torch.Tensor  # np.ndarray in a result: see numpy()
    y: torch.Tensor

    @property
    def n(self) -> int:
        return self.X.shape[0]

    @property
    def d(self) -> int:
        return self.X.shape[1]

    def numpy(self) -> Dataset:
        """The same numbers as numpy arrays, for results: reading a cached result must not import torch."""
        return Dataset(self.X.numpy(), self.y.numpy())


def synthetic_data(
    w: torch.Tensor, b: float, num_examples: int, generator: torch.Generator, noise_std: float = NOISE_STD
) -> Dataset:
    """D2L's `synthetic_data`, drawing from `generator` in the same order as the book.

    With a generator seeded s this gives exactly the tensors that `torch.manual_seed(s)`
    followed by D2L's code gives: X first, then the noise.
    """
    X = torch.normal(0, 1, (num_examples, len(w)), generator=generator)  # (n, d)
    y = torch.matmul(X, w) + b
    y += torch.normal(0, noise_std, y.shape, generator=generator)
    return Dataset(X, y)


def d2l_data(generator: torch.Generator, noise_std: float = NOISE_STD, n: int = NUM_EXAMPLES) -> Dataset:
    """The article's section 二 data set: true w = [2, -3.4], b = 4.2, n = 1000."""
    return synthetic_data(torch.tensor(TRUE_W), TRUE_B, n, generator, noise_std)


def toy_data(noisy: bool, dtype: torch.dtype | None = None) -> Dataset:
    """The article's 问题1 set: x = 0, 1, 2, 3 and y = x (or the last label 3.1).

    float32 (the default) for training, as in the article; float64 for closed forms, where 3.1 is nearest.
    """
    dtype = torch.float32 if dtype is None else dtype  # not a default argument: that would import torch
    X = torch.tensor(TOY_X, dtype=dtype).reshape(-1, 1)
    y = torch.tensor(TOY_Y_NOISY if noisy else TOY_Y_CLEAN, dtype=dtype)
    return Dataset(X, y)


def generator(seed: int, stream: str = "data") -> torch.Generator:
    """An independent torch.Generator per (seed, stream).

    The "data" stream is seeded with `seed` itself, so that it replays the article's
    `torch.manual_seed(seed)`: X, then the noise, then the initial w. Other streams (the batch
    order, which the article left to Python's unseeded `random.shuffle`) get a seed hashed from
    (seed, stream), stable across processes and platforms.
    """
    if stream == "data":
        return torch.Generator().manual_seed(seed)
    digest = hashlib.sha256(f"{seed}/{stream}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") >> 1)


def batch_orders(n: int, epochs: int, generator: torch.Generator) -> torch.Tensor:
    """One random permutation of range(n) per epoch, shape (epochs, n).

    Replaces D2L's `data_iter`, whose `random.shuffle` uses Python's unseeded global RNG.
    """
    orders = torch.empty(epochs, n, dtype=torch.int64)
    for epoch in range(epochs):  # drawn into place: half the cost of stacking new tensors (30000 toy epochs)
        torch.randperm(n, generator=generator, out=orders[epoch])
    return orders


class LazyOrders:
    """batch_orders(n, epochs, generator), drawn a slice at a time: the same permutations in O(slice) memory.

    engine.train reads its orders chunk by chunk, in order; so may any caller, each epoch once.
    """

    def __init__(self, n: int, epochs: int, generator: torch.Generator):
        self.n, self.epochs, self.generator, self.drawn = n, epochs, generator, 0

    def __len__(self) -> int:
        return self.epochs

    @property
    def shape(self) -> tuple[int, int]:
        return (self.epochs, self.n)

    def __getitem__(self, epochs: slice) -> torch.Tensor:
        start, stop, step = epochs.indices(self.epochs)
        if step != 1 or start != self.drawn:
            raise IndexError(f"LazyOrders are read in order: next epoch {self.drawn}, asked for {start}")
        self.drawn = max(start, stop)
        return batch_orders(self.n, self.drawn - start, self.generator)
