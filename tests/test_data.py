"""data.batch_orders: the vectorised draw for small n is torch.randperm's own, permutation for permutation."""

import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from sgdlab import data


def _randperms(n: int, epochs: int, generator: torch.Generator) -> torch.Tensor:
    out = torch.empty(epochs, n, dtype=torch.int64)
    for epoch in range(epochs):
        torch.randperm(n, generator=generator, out=out[epoch])
    return out


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 30), epochs=st.integers(0, 40), seed=st.integers(0, 2**62))
def test_batch_orders_are_randperms_and_leave_the_generator_where_randperm_does(n, epochs, seed):
    ours, theirs = data.generator(seed, "order"), data.generator(seed, "order")
    assert torch.equal(data.batch_orders(n, epochs, ours), _randperms(n, epochs, theirs))
    assert torch.equal(torch.randint(0, 2**31, (8,), generator=ours), torch.randint(0, 2**31, (8,), generator=theirs))


def test_every_small_n_uses_the_vectorised_draw():
    """n = 22 is the largest whose lcm(1, …, n) is below 2**32 (what randint's one-draw path needs)."""
    assert len(data._SWAP_MODULI) == 22 and data._SWAP_MODULI[-1] < 2**32 <= data._SWAP_MODULI[-1] * 23
    g, h = data.generator(3, "order"), data.generator(3, "order")
    assert torch.equal(data.fisher_yates(data.swap_draws(22, 1000, g)), _randperms(22, 1000, h))
