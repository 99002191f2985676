"""Synthetic data: D2L's y = Xw + b + noise, the article's four-point toy sets, batch orders."""

from __future__ import annotations

import hashlib
import math
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
    """One random permutation of range(n) per epoch, shape (epochs, n): torch.randperm(n) epochs times.

    Replaces D2L's `data_iter`, whose `random.shuffle` uses Python's unseeded global RNG.
    """
    if n <= len(_SWAP_MODULI):  # the toy's 30000 epochs: one vectorised draw instead of 30000 randperm calls
        return fisher_yates(swap_draws(n, epochs, generator))
    orders = torch.empty(epochs, n, dtype=torch.int64)
    for epoch in range(epochs):  # drawn into place: half the cost of stacking new tensors
        torch.randperm(n, generator=generator, out=orders[epoch])
    return orders


# lcm(1, …, n) for n = 1 … 22: the largest below 2**32 (lcm(1, …, 23) is not).
_SWAP_MODULI = tuple(math.lcm(*range(1, n + 1)) for n in range(1, 23))


def swap_draws(n: int, epochs: int, generator: torch.Generator) -> torch.Tensor:
    """The random numbers that `epochs` calls of torch.randperm(n) draw, (epochs, n − 1), for n ≤ 22.

    On the CPU, randperm's Fisher–Yates swaps position i with i + random() % (n − i), one 32-bit
    draw per i; randint(0, m) draws random() % m from the same stream, one per element, and for
    m = lcm(1, …, n) that number mod (n − i) is random() % (n − i). The generator ends where the
    randperm calls would leave it (tests/test_data.py compares both, and the draws after them).
    """
    return torch.randint(0, _SWAP_MODULI[n - 1], (epochs, n - 1), generator=generator)


def fisher_yates(draws: torch.Tensor) -> torch.Tensor:
    """The permutations, (epochs, n), that randperm builds from `swap_draws` (epochs, n − 1)."""
    epochs, n = draws.shape[0], draws.shape[1] + 1
    orders = torch.arange(n).repeat(epochs, 1)
    for i in range(n - 1):  # vectorised over the epochs
        j = (i + draws[:, i] % (n - i)).unsqueeze(1)
        at_i = orders[:, i].clone()
        orders[:, i] = orders.gather(1, j).squeeze(1)
        orders.scatter_(1, j, at_i.unsqueeze(1))
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
