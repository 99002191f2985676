"""The batched engine against the article's autograd loop, closed-form gradients and itself."""

import os
import subprocess
import sys

import pytest
import torch
from bounds import (
    assert_losses_within_bound,
    drift,
    gradient_bound,
    gradient_step_bound,
    largest_step_curvature,
    loss_and_bound,
    lstsq_bound,
    unit_roundoff,
)
from hypothesis import given, settings
from hypothesis import strategies as st

from sgdlab import d2l, data, engine, kernels, theory
from sgdlab.experiments import article_start

TOY_MODELS = [
    engine.Model(bias=False),
    engine.Model(bias=True),
    engine.Model(bias=False, jump_at=3.0, jump_height=0.1),
]


def test_one_step_equals_closed_form_gradient():
    """θ1 = θ0 − lr · Xᵀ(Xθ0 − y)/B for D2L's ½ loss, computed independently in float64."""
    ds, _, theta0 = article_start(20)
    order = torch.arange(ds.n).unsqueeze(0)
    traj = engine.train(ds.X, ds.y, theta0, 0.1, order, batch_size=ds.n, record_steps=True)
    Xa = engine.augment(ds.X.double(), True)
    grad = Xa.T @ (Xa @ theta0.double().squeeze(1) - ds.y.double()) / ds.n
    expected = theta0.double().squeeze(1) - 0.1 * grad
    # float32's rounding of one step over 1000 samples (bounds.py); float64's own error is 2⁻²⁹ times smaller
    bound = gradient_step_bound(Xa, ds.y, theta0.squeeze(1), 0.1, ds.n, torch.float32)
    assert ((traj.step_params[1, :, 0].double() - expected).abs() <= bound).all()


def test_toy_runs_are_bit_identical_to_the_article_loop():
    """With batches of one, every operation is a single product or sum: no summation order to differ."""
    for noisy in (False, True):
        ds = data.toy_data(noisy)
        orders = data.batch_orders(ds.n, 50, data.generator(3, "order"))
        for model in TOY_MODELS:
            ref = d2l.scratch(ds.X, ds.y, torch.tensor([2.0]), 0.0, 0.3, orders, batch_size=1,
                              model=model, loss="plain", grad_divisor=10)
            theta0 = torch.tensor([[2.0]] + ([[0.0]] if model.bias else []))
            traj = engine.train(ds.X, ds.y, theta0, 0.3, orders, batch_size=1, model=model,
                                loss="plain", grad_divisor=10, record_steps=True)
            assert torch.equal(traj.step_params[:, :, 0], ref), model


def test_baseline_follows_the_article_loop_within_rounding():
    """Mini-batches of 10: autograd's matmul (BLAS, fused multiply-adds) and the engine's
    multiply-then-sum round differently in the last bit; gradient descent contracts those
    errors instead of amplifying them, so 300 epochs stay within a few float32 ulps of |θ| ≈ 4."""
    ds, w0, theta0 = article_start(20)
    orders = data.batch_orders(ds.n, 20, data.generator(20, "order"))
    ref = d2l.scratch(ds.X, ds.y, w0, 0.0, 0.03, orders, batch_size=10)
    traj = engine.train(ds.X, ds.y, theta0, 0.03, orders, batch_size=10, record_steps=True)
    assert largest_step_curvature(engine.augment(ds.X, True), orders, 10, 0.03, 10) <= 2  # the model's premise
    # the drift model of bounds.py: 4 ulps of |θ| ≤ 4.2 (b* = 4.2)
    assert (traj.step_params[:, :, 0] - ref).abs().max() < drift(4.2, torch.float32, 4)


def test_concise_follows_scratch_within_rounding():
    """nn.MSELoss + optim.SGD at lr·b/(2·divisor) takes the same step as scratch, rounded differently."""
    ds, w0, _ = article_start(20, n=200)
    orders = data.batch_orders(ds.n, 10, data.generator(1, "order"))
    ref = d2l.scratch(ds.X, ds.y, w0, 0.0, 0.03, orders, batch_size=10)
    con = d2l.concise(ds.X, ds.y, w0, 0.0, 0.03, orders, batch_size=10)
    assert largest_step_curvature(engine.augment(ds.X, True), orders, 10, 0.03, 10) <= 2  # the model's premise
    assert (con - ref).abs().max() < drift(4.2, torch.float32, 4)  # bounds.py's drift model, as above


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    n=st.integers(2, 40),
    batch_size=st.integers(1, 8),
    lr=st.floats(1e-3, 0.2),
    bias=st.booleans(),
    loss=st.sampled_from(["half", "plain"]),
)
def test_engine_tracks_autograd_over_random_configs(seed, n, batch_size, lr, bias, loss):
    """Property: any config, a run inside a batch of K = 3 follows the autograd loop within rounding."""
    batch_size = min(batch_size, n)
    gen = data.generator(seed)
    ds = data.d2l_data(gen, n=n)
    w0 = torch.normal(0, 1, size=(2, 1), generator=gen)
    orders = data.batch_orders(n, 5, data.generator(seed, "order"))
    model = engine.Model(bias=bias)
    ref = d2l.scratch(ds.X, ds.y, w0, 0.5, lr, orders, batch_size=batch_size, model=model, loss=loss)
    theta0 = torch.cat([w0.flatten(), torch.tensor([0.5])]) if bias else w0.flatten()
    lrs = torch.tensor([lr * 0.5, lr, lr * 0.25])  # the run under test is the middle one
    traj = engine.train(ds.X, ds.y, theta0.unsqueeze(1).repeat(1, 3), lrs, orders,
                        batch_size=batch_size, model=model, loss=loss, record_steps=True)
    # The drift model of bounds.py with a wide margin, 84 ulps (1e-5 / eps): a batch of one with an
    # outlying x and lr near 0.2 can have η·λmax(H_B) > 2, a step that expands the difference.
    scale = ref.abs().max().clamp(min=1.0)
    assert torch.allclose(traj.step_params[:, :, 1], ref, rtol=0, atol=drift(float(scale), torch.float32, 84))


def test_full_batch_gradient_descent_converges_to_least_squares():
    ds, _, theta0 = article_start(20)
    fit = theory.least_squares(ds.X, ds.y, bias=True)
    order = torch.arange(ds.n).repeat(400, 1)
    traj = engine.train(ds.X.double(), ds.y.double(), theta0.double(), 0.5, order, batch_size=ds.n)
    # float64 GD stalls where its computed step vanishes: within (‖gradient rounding‖/n + u·‖θ‖·√p/η)/μ of θ*
    # (the update rounds θ too), after the contraction ρ⁴⁰⁰ of the start; lstsq is within lstsq_bound of θ*.
    Xa, u = engine.augment(ds.X.double(), True), unit_roundoff(torch.float64)
    eig = torch.linalg.eigvalsh(fit.hessian)
    mu, rho = float(eig[0]), float((1 - 0.5 * eig).abs().max())
    stall = (float(gradient_bound(Xa, ds.y, fit.theta, torch.float64).norm()) / ds.n
             + u * float(fit.theta.norm()) * 3**0.5 / 0.5) / mu
    start = rho**400 * float((theta0.double().squeeze(1) - fit.theta).norm())
    off = float((traj.epoch_params[-1, :, 0] - fit.theta).norm())
    assert off <= stall + start + lstsq_bound(Xa, ds.y, fit.theta)
    # The two losses: each evaluation within loss_and_bound, and ½δᵀHδ ≤ ½L‖δ‖² between the points.
    _, at_gd = loss_and_bound(Xa, ds.y, traj.epoch_params[-1], torch.float64)
    _, at_fit = loss_and_bound(Xa, ds.y, fit.theta.unsqueeze(1), torch.float64)
    gap = 0.5 * float(eig[-1]) * off**2
    assert abs(float(traj.epoch_loss[-1, 0]) - fit.loss_floor) <= float(at_gd + at_fit) + gap


def test_runs_are_independent():
    """Changing one run's learning rate leaves every other run's trajectory bit-identical."""
    ds, _, theta0 = article_start(20, n=100)
    orders = data.batch_orders(ds.n, 5, data.generator(0, "order"))
    lrs = torch.tensor([0.01, 0.02, 0.03, 0.04])
    a = engine.train(ds.X, ds.y, theta0.repeat(1, 4), lrs, orders, batch_size=10)
    lrs[2] = 0.5
    b = engine.train(ds.X, ds.y, theta0.repeat(1, 4), lrs, orders, batch_size=10)
    keep = [0, 1, 3]
    assert torch.equal(a.epoch_params[..., keep], b.epoch_params[..., keep])
    assert not torch.equal(a.epoch_params[..., 2], b.epoch_params[..., 2])


def test_per_run_orders_and_data():
    """(E, K, n) orders and (K, n, d) data: run k equals a K = 1 run with its own order and data."""
    K, n = 3, 30
    X = torch.randn(K, n, 2, generator=data.generator(5))
    y = torch.randn(K, n, generator=data.generator(6))
    orders = torch.stack([data.batch_orders(n, 4, data.generator(k, "order")) for k in range(K)], dim=1)
    theta0 = torch.zeros(3, K)
    batched = engine.train(X, y, theta0, 0.05, orders, batch_size=7)
    for k in range(K):
        single = engine.train(X[k], y[k], theta0[:, :1], 0.05, orders[:, k], batch_size=7)
        if kernels.usable(X, 3):  # the compiled loop does the same operations in the same order for both layouts
            assert torch.equal(batched.epoch_params[..., k], single.epoch_params[..., 0])
        else:  # torch's loop: elementwise sums for per-run data, a matmul for shared data (bounds.py's drift)
            largest = float(single.epoch_params.abs().max())
            assert torch.allclose(batched.epoch_params[..., k], single.epoch_params[..., 0], rtol=0,
                                  atol=drift(largest, torch.float32, 8))


def test_divergence_is_flagged_with_its_step_and_does_not_poison_other_runs():
    ds, _, theta0 = article_start(20, n=100)
    orders = data.batch_orders(ds.n, 200, data.generator(0, "order"))
    lrs = torch.tensor([0.05, 5.0, 0.1])
    traj = engine.train(ds.X, ds.y, theta0.repeat(1, 3), lrs, orders, batch_size=10, record_steps=True)
    assert traj.diverged.tolist() == [False, True, False]
    step = int(traj.diverged_step[1])
    Xr, yr = engine.runs_last(engine.augment(ds.X, True), ds.y)
    before = engine.full_loss(engine.Model(), Xr, yr, traj.step_params[step - 1, :, 1:2], "half")
    at = engine.full_loss(engine.Model(), Xr, yr, traj.step_params[step, :, 1:2], "half")
    assert torch.isfinite(before).all() and not torch.isfinite(at).all()
    assert torch.isfinite(traj.epoch_loss[:, [0, 2]]).all()
    assert float(traj.epoch_loss[-1, 0]) < 1e-3 and float(traj.epoch_loss[-1, 2]) < 1e-3


def test_decaying_step_follows_robbins_monro_schedule():
    """lr_t = lr · t0/(t0 + t): the first full-batch steps use exactly those step sizes."""
    ds, _, theta0 = article_start(20, n=50)
    order = torch.arange(ds.n).repeat(3, 1)
    traj = engine.train(ds.X.double(), ds.y.double(), theta0.double(), 0.2, order, batch_size=ds.n,
                        lr_decay_steps=2.0, record_steps=True)
    Xa = engine.augment(ds.X.double(), True)
    theta = theta0.double().squeeze(1)
    # Both computations round each step within gradient_step_bound (float64); an earlier difference is carried
    # by I − η_t·H, whose ∞-norm is below 1 here (H ≈ I, η_t ≤ 0.2), so the bounds add up.
    assert float((torch.eye(3, dtype=torch.float64) - 0.2 * Xa.T @ Xa / ds.n).abs().sum(1).max()) < 1
    bound = torch.zeros(3, dtype=torch.float64)
    for t in range(3):
        lr_t = 0.2 * 2.0 / (2.0 + t)
        bound += 2 * gradient_step_bound(Xa, ds.y, theta, lr_t, ds.n, torch.float64)
        theta = theta - lr_t * Xa.T @ (Xa @ theta - ds.y.double()) / ds.n
        assert ((traj.step_params[t + 1, :, 0] - theta).abs() <= bound).all()


def test_cuda_matches_cpu_within_float_rounding():
    import pytest

    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    ds, _, theta0 = article_start(20)
    orders = data.batch_orders(ds.n, 10, data.generator(0, "order"))
    lrs = torch.tensor([0.01, 0.03])
    cpu = engine.train(ds.X, ds.y, theta0.repeat(1, 2), lrs, orders, batch_size=10)
    gpu = engine.train(ds.X, ds.y, theta0.repeat(1, 2), lrs, orders, batch_size=10, device="cuda")
    # cuBLAS sums in its own order: bounds.py's drift model, 20 ulps of |θ| ≤ 4.2
    assert torch.allclose(gpu.epoch_params.cpu(), cpu.epoch_params, rtol=0, atol=drift(4.2, torch.float32, 20))


def test_all_runs_diverged_stops_early_and_marks_the_rest_nan():
    ds = data.toy_data(noisy=False)
    orders = data.batch_orders(ds.n, 500, data.generator(0, "order"))
    traj = engine.train(ds.X, ds.y, torch.tensor([[2.0, 2.0]]), torch.tensor([30.0, 40.0]), orders,
                        batch_size=1, model=engine.Model(bias=False), loss="plain", grad_divisor=10,
                        record_steps=True)
    assert traj.diverged.all()
    last = int(traj.diverged_step.max())
    assert last < 500 * 4  # stopped long before the 500 epochs
    assert torch.isnan(traj.step_params[-1]).all() and torch.isnan(traj.epoch_loss[-1]).all()


# --------------------------------------------------------------------------- compiled loop, keep_every, lazy orders

compiled = pytest.mark.skipif(kernels._kernels is None, reason="sgdlab._kernels was not built here")


def _both_loops(*args, **kwargs):
    """train() through the compiled loop and through the torch loop."""
    assert kernels.usable(args[0], args[2].shape[0])
    fast = engine.train(*args, **kwargs)
    kernels.enabled = False
    try:
        slow = engine.train(*args, **kwargs)
    finally:
        kernels.enabled = True
    return fast, slow


@compiled
def test_compiled_loop_is_bit_identical_on_the_toy_runs_and_to_the_torch_loop():
    for noisy in (False, True):
        ds = data.toy_data(noisy)
        orders = data.batch_orders(ds.n, 300, data.generator(7, "order"))
        for model in TOY_MODELS:
            theta0 = torch.tensor([[2.0, 1.0, -0.5]] + ([[0.0, 0.3, 1.0]] if model.bias else []))
            lrs = torch.tensor([0.3, 0.1, 0.05])
            fast, slow = _both_loops(ds.X, ds.y, theta0, lrs, orders, batch_size=1, model=model, loss="plain",
                                     grad_divisor=10, record_steps=True)
            assert torch.equal(fast.step_params, slow.step_params), model
            assert torch.equal(fast.epoch_params, slow.epoch_params), model
            # Epoch losses: the same sum, in double instead of float32's cascade, and torch's matmul may fuse
            # the bias in: each is the loss at its parameters within float32's evaluation bound (bounds.py).
            jump = None if model.jump_at is None else (model.jump_at, model.jump_height)
            for traj in (fast, slow):
                assert_losses_within_bound(traj, engine.augment(ds.X, model.bias), ds.y, torch.float32,
                                           half=False, jump=jump)


@compiled
def test_compiled_loop_follows_the_torch_loop_on_minibatches_per_run_data_and_float64():
    ds, _, theta0 = article_start(20, n=200)
    orders = data.batch_orders(ds.n, 30, data.generator(0, "order"))
    lrs = torch.linspace(0.005, 0.05, 40)  # 40 runs: two full groups of 16 and a partial one
    fast, slow = _both_loops(ds.X, ds.y, theta0.repeat(1, 40), lrs, orders, batch_size=10, record_steps=True)
    Xa = engine.augment(ds.X, True)
    # BLAS sums each batch's gradient in its own order: bounds.py's drift model, 8 ulps of |θ| ≤ 4.2
    assert largest_step_curvature(Xa, orders, 10, lrs, 10) <= 2  # the model's premise
    assert (fast.step_params - slow.step_params).abs().max() < drift(4.2, torch.float32, 8)
    # Each loop's epoch loss is the loss at its own parameters within float32's evaluation bound: residuals
    # near 0.01 on labels near 5 lose about 2γ₃·|y|/|r| of relative accuracy, whatever kernels run.
    for traj in (fast, slow):
        assert_losses_within_bound(traj, Xa, ds.y, torch.float32)
    K, n = 5, 30
    X = torch.randn(K, n, 2, generator=data.generator(5), dtype=torch.float64)
    y = torch.randn(K, n, generator=data.generator(6), dtype=torch.float64)
    per_run = torch.stack([data.batch_orders(n, 6, data.generator(k, "order")) for k in range(K)], dim=1)
    fast, slow = _both_loops(X, y, torch.zeros(3, K, dtype=torch.float64), 0.05, per_run, batch_size=7,
                             lr_decay_steps=3.0, record_steps=True)
    largest = float(slow.step_params.abs().max())
    # torch's elementwise sums may pair terms in another order: the drift model, 8 ulps of the largest |θ|
    assert torch.allclose(fast.step_params, slow.step_params, rtol=0, atol=drift(largest, torch.float64, 8))
    for traj in (fast, slow):
        assert_losses_within_bound(traj, engine.augment(X, True), y, torch.float64)


@compiled
def test_compiled_loop_refuses_orders_outside_the_data():
    ds = data.toy_data(True)
    with pytest.raises(IndexError):
        engine.train(ds.X, ds.y, torch.tensor([[2.0]]), 0.3, torch.tensor([[0, 1, 2, 4]]), batch_size=1,
                     model=engine.Model(bias=False))


def test_keep_every_keeps_those_epochs_and_the_last_bit_for_bit():
    ds, _, theta0 = article_start(20, n=100)
    orders = data.batch_orders(ds.n, 23, data.generator(0, "order"))
    lrs = torch.tensor([0.01, 0.03])
    every = engine.train(ds.X, ds.y, theta0.repeat(1, 2), lrs, orders, batch_size=10)
    some = engine.train(ds.X, ds.y, theta0.repeat(1, 2), lrs, orders, batch_size=10, keep_every=5)
    assert some.kept_epochs.tolist() == [0, 5, 10, 15, 20, 23]
    assert torch.equal(every.kept_epochs, torch.arange(24))
    assert torch.equal(some.epoch_params, every.epoch_params[some.kept_epochs])
    assert torch.equal(some.epoch_loss, every.epoch_loss[some.kept_epochs])
    with pytest.raises(ValueError):
        engine.train(ds.X, ds.y, theta0, 0.01, orders, batch_size=10, keep_every=0)


class _CountingOrders(data.LazyOrders):
    """LazyOrders that remember the largest slice train() asked for."""

    largest = 0

    def __getitem__(self, epochs):
        out = super().__getitem__(epochs)
        self.largest = max(self.largest, out.shape[0])
        return out


def test_lazy_orders_give_the_same_run_in_bounded_memory():
    """Orders drawn chunk by chunk and keep_every = E: nothing in train() grows with the epochs."""
    ds = data.toy_data(True)
    epochs = 5000
    args = (ds.X, ds.y, torch.tensor([[2.0]]), 0.3)
    kwargs = {"batch_size": 1, "model": engine.Model(bias=False), "loss": "plain", "grad_divisor": 10}
    eager = engine.train(*args, data.batch_orders(4, epochs, data.generator(1, "order")), **kwargs)
    lazy_orders = _CountingOrders(4, epochs, data.generator(1, "order"))
    lazy = engine.train(*args, lazy_orders, keep_every=epochs, **kwargs)
    assert lazy.epoch_params.shape[0] == 2 and lazy.kept_epochs.tolist() == [0, epochs]
    assert torch.equal(lazy.epoch_params, eager.epoch_params[[0, -1]])
    assert torch.equal(lazy.epoch_loss, eager.epoch_loss[[0, -1]])
    assert lazy_orders.largest <= 256  # one chunk at a time
    with pytest.raises(IndexError):  # read in order only: a second pass would draw other permutations
        lazy_orders[0:1]


# --------------------------------------------------------------------------- the compiled copies (SGDLAB_KERNEL_ISA)


def _cpu_flags() -> set[str] | None:
    """The CPU's feature flags as Linux reports them, None elsewhere."""
    try:
        with open("/proc/cpuinfo") as info:
            return next((set(line.split(":", 1)[1].split()) for line in info if line.startswith("flags")), None)
    except OSError:
        return None


@compiled
def test_the_copy_that_runs_is_the_one_asked_for_or_the_best_this_cpu_runs():
    asked = os.environ.get(kernels.ISA_VARIABLE)
    assert kernels.isa() == (asked or kernels._kernels.supported()[0])
    assert kernels._kernels.supported()[-1] == "default" and set(kernels._kernels.supported()) <= set(
        kernels._kernels.compiled())
    flags = _cpu_flags()
    if flags is not None and "avx2" in kernels._kernels.compiled():  # x86 Linux: the kernel's own view of the CPU
        for isa in ("avx512f", "avx2"):
            assert (isa in kernels._kernels.supported()) == (isa in flags), isa


@compiled
def test_every_compiled_copy_gives_the_same_bits():
    """The copies differ in instruction set only: the same operations, no fused multiply-adds, the same bits."""
    ds, _, theta0 = article_start(20, n=200)
    orders = data.batch_orders(ds.n, 5, data.generator(0, "order"))
    toy = data.toy_data(True)
    toy_orders = data.batch_orders(4, 50, data.generator(7, "order"))
    X = torch.randn(5, 30, 2, generator=data.generator(5), dtype=torch.float64)
    y = torch.randn(5, 30, generator=data.generator(6), dtype=torch.float64)
    per_run = torch.stack([data.batch_orders(30, 3, data.generator(k, "order")) for k in range(5)], dim=1)

    def runs():
        return [
            engine.train(ds.X, ds.y, theta0.repeat(1, 20), torch.linspace(0.005, 0.05, 20), orders, batch_size=10,
                         record_steps=True),
            engine.train(toy.X, toy.y, torch.tensor([[2.0, 1.0, -0.5]]), torch.tensor([0.3, 0.1, 0.05]), toy_orders,
                         batch_size=1, model=TOY_MODELS[2], loss="plain", grad_divisor=10, record_steps=True),
            engine.train(X, y, torch.zeros(3, 5, dtype=torch.float64), 0.05, per_run, batch_size=7,
                         lr_decay_steps=3.0, record_steps=True),
        ]

    before = kernels.isa()
    results = {}
    try:
        for isa in kernels._kernels.supported():
            kernels._kernels.select(isa)
            results[isa] = runs()
    finally:
        kernels._kernels.select(before)
    first, *others = results.values()
    for isa, result in zip(list(results)[1:], others, strict=True):
        for a, b in zip(first, result, strict=True):
            for field in ("step_params", "epoch_params", "epoch_loss"):
                assert torch.equal(getattr(a, field), getattr(b, field)), (isa, field)


@pytest.mark.parametrize("isa", ["sse9", "unsupported"])
def test_a_copy_that_cannot_run_is_refused_in_one_line(isa):
    if isa == "unsupported":  # a copy compiled here that this CPU cannot run, if there is one
        missing = [] if kernels._kernels is None else sorted(set(kernels._kernels.compiled())
                                                               - set(kernels._kernels.supported()))
        if not missing:
            pytest.skip("this CPU runs every compiled copy")
        isa = missing[0]
    env = {**os.environ, kernels.ISA_VARIABLE: isa}
    out = subprocess.run([sys.executable, "-m", "sgdlab.cli", "run", "toy-clean", "--no-cache"], env=env,
                         capture_output=True, text=True)
    assert out.returncode == 2 and out.stdout == ""
    assert out.stderr.startswith(f"sgdlab: error: {kernels.ISA_VARIABLE}={isa}: ") and out.stderr.count("\n") == 1
