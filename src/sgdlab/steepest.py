"""Chapter 3's experiments on step sizes: curvature against the article's steps, the descent lemma, rates.

One function per experiment, a frozen config in and a frozen result out. Every training run goes
through `engine.train`, with full batches (batch_size = n: one gradient-descent step per epoch)
unless the article's own mini-batches are the point. The closed forms and the Taylor checks are in
`taylor`; other norms, Newton and mini-batch noise in `norms`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from . import data, engine, roundoff, taylor
from ._lazy import torch
from .cache import cached
from .experiments import ToyConfig
from .fmt import num, within
from .i18n import t
from .taylor import Quadratic

ARTICLE_LR = 0.0003  # section 五: the step on the mean loss of a mini-batch of 10
ARTICLE_BATCH = 10
TOY = ToyConfig()  # 问题1: lr 0.3, batches of one, sgd dividing by 10 ⇒ effective_lr 0.03
FLOAT32_MAX = float(np.finfo(np.float32).max)  # as torch.finfo gives it, without importing torch
LOSS_NAMES = {"baseline": "baseline", "toy": "toy w·x", "toy_bias": "toy w·x + b"}  # table headers


# --------------------------------------------------------------------------- curvature and step sizes


@dataclass(frozen=True)
class CurvatureConfig:
    """L, μ and 2/L of the article's losses; the toy's step-size variants run long enough to diverge."""

    seed: int = 20
    baseline_epochs: int = 300  # batch orders scanned for the largest mini-batch curvature (the article's 300)
    toy_epochs: int = 8  # the article's clean toy run prints 0.000000 in epoch 8
    diverge_epochs: int = 600  # full-batch GD at lr 0.3 grows ×1.1 per step: float32 overflows near step 460
    safe_full_batch_lr: float = 0.25  # just below 2/L = 2/7 for the toy mean loss


@dataclass(frozen=True)
class CurvatureResult:
    """Curvature constants beside the article's steps, and the toy's step-size variants on the engine."""

    config: CurvatureConfig
    constants: pd.DataFrame  # one row per loss: L, mu, kappa, two_over_L, lr, step, batch_size, batch_curvature
    per_sample: pd.DataFrame  # toy: x, curvature 2x², |1 − η·2x²| at the step taken and at lr
    toy_runs: pd.DataFrame  # variant, batch_size, step, curvature, diverged, diverged_step, final_loss
    epoch_contraction: float  # predicted Π|1 − η·2x_i²|: |w − 1| shrinks by this per epoch (clean toy)
    epoch_contraction_measured: float  # ((w_E − 1)/(w_0 − 1))^(1/E) of the article's run
    epoch_factor_at_lr: float  # the same product at the nominal lr 0.3, had sgd not divided by 10
    predicted_final_loss: float  # f at w = 1 + (w0 − 1)·contraction^E: the loss after the article's epochs
    baseline_batches: int  # mini-batches scanned for the baseline's largest batch curvature

    def row(self, name: str) -> pd.Series:
        return self.constants.set_index("name").loc[name]

    def summary(self) -> dict:
        """Keys: L, mu, kappa, two_over_L, step, batch_curvature (per loss), toy_diverged_step, epoch_contraction*."""
        c = self.constants.set_index("name")
        per_loss = {k: {name: float(v) for name, v in c[k].items()}
                    for k in ("L", "mu", "kappa", "two_over_L", "step", "batch_curvature")}
        return {"experiment": "steepest-curvature", **asdict(self.config), **per_loss,
                "toy_diverged_step": {r.variant: int(r.diverged_step) for r in self.toy_runs.itertuples()},
                "epoch_contraction": self.epoch_contraction,
                "epoch_contraction_measured": self.epoch_contraction_measured,
                "epoch_factor_at_lr": self.epoch_factor_at_lr, "predicted_final_loss": self.predicted_final_loss}

    def constants_table(self) -> pd.DataFrame:
        """The constants, one column per loss, one row per quantity, formatted for the report."""
        c = self.constants.set_index("name")
        rows = {"L = λmax(H)": c.L, "μ = λmin(H)": c.mu, "κ = L/μ": c.kappa, "2/L": c.two_over_L,
                t("lr (article)"): c.lr, t("step η taken"): c.step, "η·L": c.step * c.L,
                t("batch size B"): c.batch_size, t(r"$L_{\max}$ (largest $L_B$)"): c.batch_curvature,
                r"$2/L_{\max}$": 2 / c.batch_curvature}
        table = pd.DataFrame({label: v.map(num) for label, v in rows.items()}).T
        table.columns = [t(LOSS_NAMES[name]) for name in c.index]  # a plain header row: no columns name
        return table.rename_axis(t("quantity"))

    def toy_table(self) -> pd.DataFrame:
        """The toy's step-size variants and what the engine made of them, formatted (rows ≤ 72 characters)."""
        runs = self.toy_runs
        loss = [f"{x:f}" if x < 1 else f"{x:.3g}" for x in runs.final_loss]  # as the article prints it, if small
        outcome = [t("diverges at step {}").format(r.diverged_step) if r.diverged
                   else t("loss {} ({} steps)").format(x, r.steps)
                   for r, x in zip(runs.itertuples(), loss, strict=True)]
        return pd.DataFrame({"η": runs.step.map(num).to_numpy(),
                             t("η × curv."): (runs.step * runs.curvature).map(num).to_numpy(),
                             t("outcome"): outcome}, index=pd.Index(runs.variant.map(t), name=t("update")))


def _constants(name: str, q: Quadratic, lr: float, step: float, batch_size: int, batch_curv: float) -> dict:
    L, mu = taylor.curvature_bounds(q.hessian)
    return {"name": name, "L": L, "mu": mu, "kappa": L / mu, "two_over_L": 2 / L, "lr": lr, "step": step,
            "batch_size": batch_size, "batch_curvature": batch_curv}


def _toy_runs(config: CurvatureConfig, sample_curvature: float, mean_curvature: float
              ) -> tuple[pd.DataFrame, np.ndarray]:
    """The clean toy from w = 2 under the article's update and three variants; w per epoch of the article's."""
    ds = data.toy_data(noisy=False)
    orders = data.batch_orders(ds.n, config.diverge_epochs, data.generator(config.seed, "order"))
    variants = [  # name, batch size, lr, grad_divisor, epochs
        ("article: B = 1, ÷ 10", 1, TOY.lr, TOY.grad_divisor, config.toy_epochs),
        ("B = 1, no ÷ 10", 1, TOY.lr, 1, config.diverge_epochs),
        ("full batch, lr 0.3", ds.n, TOY.lr, ds.n, config.diverge_epochs),
        (f"full batch, lr {config.safe_full_batch_lr:g}", ds.n, config.safe_full_batch_lr, ds.n,
         config.diverge_epochs),
    ]
    runs, article_w = [], None
    for name, B, lr, divisor, epochs in variants:
        traj = engine.train(ds.X, ds.y, torch.tensor([[2.0]]), lr, orders[:epochs], batch_size=B,
                            model=engine.Model(bias=False), loss="plain", grad_divisor=divisor)
        article_w = traj.epoch_params[:, 0, 0].double().numpy() if article_w is None else article_w
        runs.append({"variant": name, "batch_size": B, "step": lr * B / divisor,  # on the loss stepped on
                     "curvature": sample_curvature if B == 1 else mean_curvature,
                     "diverged": bool(traj.diverged[0]), "diverged_step": int(traj.diverged_step[0]),
                     "final_loss": float(traj.epoch_loss[-1, 0]), "steps": epochs * traj.steps_per_epoch})
    return pd.DataFrame(runs), article_w


@cached
def curvature(config: CurvatureConfig = CurvatureConfig()) -> CurvatureResult:
    """Where the article's learning rates sit relative to 2/L, for the mean loss and the loss stepped on."""
    q, _ = taylor.baseline_problem(config.seed)
    orders = data.batch_orders(q.n, config.baseline_epochs, data.generator(config.seed, "order"))
    mini = taylor.batch_curvature(q, orders, ARTICLE_BATCH)  # (batches,)
    rows = [_constants("baseline", q, ARTICLE_LR, ARTICLE_LR, ARTICLE_BATCH, float(mini.max()))]
    for name, bias in (("toy", False), ("toy_bias", True)):
        t, _ = taylor.toy_problem(noisy=bias, bias=bias)  # the article's toy-clean and toy-bias; H ignores y
        one = float(taylor.per_sample_curvature(t).max())
        rows.append(_constants(name, t, TOY.lr, TOY.effective_lr, 1, one))

    toy, _ = taylor.toy_problem(noisy=False, bias=False)
    curv = taylor.per_sample_curvature(toy).numpy()  # each sample's curvature 2x²
    per_sample = pd.DataFrame({"x": toy.X[:, 0].numpy(), "curvature": curv,
                               "factor_step": np.abs(1 - TOY.effective_lr * curv),
                               "factor_lr": np.abs(1 - TOY.lr * curv)})
    runs, article_w = _toy_runs(config, float(curv.max()), rows[1]["L"])
    measured = abs((article_w[-1] - 1) / (article_w[0] - 1)) ** (1 / config.toy_epochs)
    contraction = float(np.prod(per_sample.factor_step))  # all f_i share w = 1: factors multiply exactly
    w_end = torch.tensor([1 + (2 - 1) * contraction**config.toy_epochs], dtype=torch.float64)  # from w0 = 2
    return CurvatureResult(config, pd.DataFrame(rows), per_sample, runs, contraction,
                           float(measured), float(np.prod(per_sample.factor_lr)), float(toy.value(w_end)), len(mini))


# --------------------------------------------------------------------------- descent lemma and 2/L


@dataclass(frozen=True)
class DescentLemmaConfig:
    """One step from θ0 against the descent lemma, and a full-batch sweep of η·L across 2."""

    seed: int = 20
    num_etas: int = 261  # one-step curve on η·L ∈ [0, 2.6]
    lr_factors: tuple[float, ...] = tuple(round(0.1 * k, 1) for k in range(1, 26))  # η·L = 0.1 … 2.5
    epochs: int = 600  # full-batch steps; η·L = 2.1 overflows float32 after about 450
    tolerance: float = 1e-6  # converged: excess loss ≤ tolerance × initial excess


@dataclass(frozen=True)
class DescentLemmaResult:
    """The one-step curve (eta, loss_after, bound) and the sweep (one row per η)."""

    config: DescentLemmaConfig
    one_step: pd.DataFrame  # eta, eta_L, loss_after, bound
    sweep: pd.DataFrame  # factor, lr, rho, diverged, diverged_step, steps_to_tol, steps_bound, final_excess, ...
    L: float
    loss0: float  # f(θ0)
    grad_norm_sq: float  # ‖∇f(θ0)‖²
    best_eta: float  # argmin of f(θ0 − η∇f) = ‖g‖²/gᵀHg (the bound's best is 1/L)
    zero_eta: float  # where f(θ0 − η∇f) = f(θ0) again: 2‖g‖²/gᵀHg ≥ 2/L

    def decrease(self, eta: float) -> float:
        """f(θ0) − f(θ0 − η∇f) = η‖g‖² − ½η²gᵀHg exactly (a quadratic), with gᵀHg = ‖g‖²/best_eta."""
        return eta * self.grad_norm_sq - 0.5 * eta**2 * self.grad_norm_sq / self.best_eta

    def summary(self) -> dict:
        """Keys: L, two_over_L, best_eta, zero_eta, bound_holds, converged_factors, diverged_factors, ..."""
        s = self.sweep
        return {"experiment": "steepest-descent-lemma", **asdict(self.config), "L": self.L,
                "two_over_L": 2 / self.L, "best_eta": self.best_eta, "zero_eta": self.zero_eta,
                "bound_holds": bool((self.one_step.loss_after <= self.one_step.bound + 1e-12).all()),
                "converged_factors": s.factor[s.steps_to_tol.notna()].tolist(),
                "diverged_factors": s.factor[s.diverged].tolist(),
                "diverged_steps": s.diverged_step[s.diverged].tolist(),
                "overflow_predicted": [int(v) for v in s.overflow_predicted[s.diverged]],
                "steps_within_bound": bool((s.steps_to_tol <= s.steps_bound).where(s.steps_to_tol.notna(), True).all())}


@dataclass(frozen=True)
class Overflow:
    """When full-batch GD with ρ = |1 − ηL| > 1 overflows float32, from the exact iterates (float64)."""

    eta: float
    rho: float  # |1 − ηL| > 1: each step flips the top eigen-component of θ − θ* and multiplies it by ρ
    top_growth: float  # ½L·a_L², a_L the top eigen-coordinate of θ0 − θ*: f_k − f* ≈ ½L·a_L²·ρ^(2k)
    initial_excess: float  # f(θ0) − f*, the factor Eq. 3.12's bound grows from
    bound_step: float  # k where the bound ρ^(2k)(f(θ0) − f*) passes the limit (not the loss: an upper bound)
    loss_step: float  # k where ½L·a_L²·ρ^(2k) passes it: the loss itself overflows there
    sum_step: float  # k where Σr² = (n/c)·½L·a_L²·ρ^(2k) passes it: the float32 loss of the engine is inf
    flag_step: int  # the first step whose exact Σr² = (n/c)·f(θ_k) exceeds the limit: what the engine flags


def overflow(q: Quadratic, theta0: torch.Tensor, eta: float, limit: float = FLOAT32_MAX) -> Overflow:
    """Past 2/L, f(θ_k) − f* = ½ Σ λ_i a_i² (1 − ηλ_i)^(2k) (a: eigen-coordinates of θ0 − θ*) is ruled by its top term.

    The engine's full-data loss sums the squared residuals in float32 before dividing by n (engine.full_loss;
    the compiled loop adds its float32 blocks in double, then rounds the sum to float32): it is inf once
    Σr² = (n/c)·f exceeds FLT_MAX, not f itself (c: ½ for D2L's loss, 1 for the toy's).
    """
    lam, U = torch.linalg.eigh(q.hessian)
    a = U.T @ (theta0.double() - q.fit.theta)
    rho = abs(1 - eta * float(lam[-1]))
    if rho <= 1:
        raise ValueError(f"η·L = {eta * float(lam[-1]):.4g} ≤ 2: gradient descent does not diverge")
    top = 0.5 * float(lam[-1] * a[-1] ** 2)
    e0 = 0.5 * float(lam @ a**2)
    to_sum = q.n / q.c  # Σr² = n·mean r² = (n/c)·f

    def crossing(start: float, level: float) -> float:  # start·ρ^(2k) = level
        return math.log(level / start) / (2 * math.log(rho))

    last = math.ceil(crossing(top, limit / to_sum)) + 2  # the whole sum, at least its top term, has passed by then
    k = torch.arange(last + 1, dtype=torch.float64)
    excess = (0.5 * lam * a**2 * (1 - eta * lam) ** (2 * k[:, None])).sum(1)  # exact, (last + 1,), below 1e308
    flag = int(torch.nonzero(to_sum * (q.fit.loss_floor + excess) > limit)[0, 0])
    return Overflow(eta, rho, top, e0, crossing(e0, limit), crossing(top, limit), crossing(top, limit / to_sum), flag)


# sweep column -> Overflow field. overflow_estimate: where Eq. 3.12's bound ρ^(2k)(f0 − f*) passes FLT_MAX (the
# loss stays below it: only the top eigen-component grows); overflow_loss: where f does; overflow_predicted:
# where Σr² of the exact iterates does, the step the engine flags.
OVERFLOW_COLUMNS = {"overflow_estimate": "bound_step", "overflow_loss": "loss_step", "overflow_sum": "sum_step",
                    "overflow_predicted": "flag_step", "top_growth": "top_growth", "initial_excess": "initial_excess"}


def _overflow_columns(q: Quadratic, theta0: torch.Tensor, eta: float, rho: float) -> dict:
    if rho <= 1:
        return dict.fromkeys(OVERFLOW_COLUMNS)
    o = overflow(q, theta0, eta)
    return {column: getattr(o, name) for column, name in OVERFLOW_COLUMNS.items()}


@cached
def descent_lemma(config: DescentLemmaConfig = DescentLemmaConfig()) -> DescentLemmaResult:
    """f(θ0 − η∇f) against f(θ0) − η(1 − Lη/2)‖∇f‖², and GD for η·L from 0.1 to 2.5 on the engine."""
    q, theta0 = taylor.baseline_problem(config.seed)
    L, mu = taylor.curvature_bounds(q.hessian)
    g = q.gradient(theta0)
    f0, gg, gHg = float(q.value(theta0)), float(g @ g), float(g @ q.hessian @ g)
    etas = torch.linspace(0, 2.6 / L, config.num_etas, dtype=torch.float64)
    one_step = pd.DataFrame({"eta": etas.numpy(), "eta_L": etas.numpy() * L,
                             "loss_after": q.value(theta0 - etas.unsqueeze(1) * g).numpy(),
                             "bound": taylor.descent_bound(f0, gg, L, etas.numpy())})

    lrs = [f / L for f in config.lr_factors]
    traj = taylor.full_batch_gd(q, theta0, lrs, config.epochs)  # float32, like the article: overflow ⇒ diverged
    e = taylor.excess_curves(q, traj)
    rows = []
    for k, factor in enumerate(config.lr_factors):
        rho = float(taylor.gd_contraction(lrs[k], mu, L))
        diverged = bool(traj.diverged[k])
        rows.append({"factor": factor, "lr": lrs[k], "rho": rho, "diverged": diverged,
                     "diverged_step": int(traj.diverged_step[k]),
                     "steps_to_tol": None if diverged else taylor.first_below(e[:, k], config.tolerance * e[0, k]),
                     # f − f* ≤ ρ^(2k)(f0 − f*): the theorem's guarantee on the steps needed
                     "steps_bound": math.ceil(math.log(config.tolerance) / (2 * math.log(rho))) if rho < 1 else None,
                     "final_excess": None if diverged else float(e[-1, k]),
                     **_overflow_columns(q, theta0, lrs[k], rho)})
    sweep = pd.DataFrame(rows).astype({"steps_to_tol": "Float64", "steps_bound": "Float64", "final_excess": "Float64",
                                       **dict.fromkeys(OVERFLOW_COLUMNS, "Float64")})
    return DescentLemmaResult(config, one_step, sweep, L, f0, gg, gg / gHg, 2 * gg / gHg)


# --------------------------------------------------------------------------- linear rate


@dataclass(frozen=True)
class RateConfig:
    """Full-batch GD on the baseline at η = 1/L and η = 2/(μ+L), in float64 to see many steps."""

    seed: int = 20
    steps: int = 40
    ratio_precision: float = 1e-4  # the ratio e_{k+1}/e_k is read at the last step where float64 rounding can
    # change it by at most this fraction (roundoff.excess_relative_error of both); the excess's plateau is near 1e-31
    reduction: float = 1e-12  # steps until the excess has shrunk by this factor
    article_reduction: float = 1e-6  # the reduction quoted for the article's lr


@dataclass(frozen=True)
class RateResult:
    """Excess loss per step (run, step, excess, bound) and per-run predicted vs measured contraction."""

    config: RateConfig
    curves: pd.DataFrame
    # run, eta, rho, predicted (ρ²), measured (e_{k+1}/e_k at measured_step k), measured_bound (its rounding bound,
    # absolute), steps_to_reduction
    rates: pd.DataFrame
    L: float
    mu: float
    article_rho: float  # ρ at the article's lr 0.0003 (full batch)
    article_steps: int  # steps the rate guarantees to cut the excess by article_reduction at that lr
    eigenvalues: tuple[float, ...]  # of H, ascending: μ, …, L

    @property
    def kappa(self) -> float:
        return self.L / self.mu

    def summary(self) -> dict:
        """Keys: L, mu, kappa, eigenvalues, predicted, measured (per run), article_rho, article_steps."""
        r = self.rates.set_index("run")
        return {"experiment": "steepest-rate", **asdict(self.config), "L": self.L, "mu": self.mu,
                "kappa": self.kappa, "eigenvalues": list(self.eigenvalues),
                "predicted": r.predicted.to_dict(), "measured": r.measured.to_dict(),
                "article_rho": self.article_rho, "article_steps": self.article_steps}

    def table(self) -> pd.DataFrame:
        """Predicted against measured contraction, one row per step size, formatted."""
        r = self.rates
        return pd.DataFrame({"ρ²": r.predicted.map(num).to_numpy(),
                             t("measured"): [within(m, b) for m, b in zip(r.measured, r.measured_bound, strict=True)],
                             t("step k"): r.measured_step.map(num).to_numpy(),
                             t("steps to {}").format(num(self.config.reduction, '.1e')):
                                 r.steps_to_reduction.map(num).to_numpy()},
                            index=pd.Index(r.run.map(t), name=t("step size")))


@cached
def rate(config: RateConfig = RateConfig()) -> RateResult:
    """Linear convergence: the excess loss shrinks by ρ² per step, ρ = 1 − 1/κ or (κ−1)/(κ+1)."""
    q, theta0 = taylor.baseline_problem(config.seed)
    L, mu = taylor.curvature_bounds(q.hessian)
    runs = {"η = 1/L": 1 / L, "η = 2/(μ+L)": 2 / (mu + L)}
    traj = taylor.full_batch_gd(q, theta0, list(runs.values()), config.steps, dtype=torch.float64)
    e = taylor.excess_curves(q, traj)
    curves, rates, u = [], [], roundoff.unit_roundoff(torch.float64)
    for k, (run, eta) in enumerate(runs.items()):
        rho = float(taylor.gd_contraction(eta, mu, L))
        steps = np.arange(config.steps + 1)
        curves.append(pd.DataFrame({"run": run, "step": steps, "excess": e[:, k],
                                    "bound": rho ** (2 * steps) * e[0, k]}))  # @thm-linear-rate's guarantee
        path = traj.epoch_params[:, :, k]  # (E+1, p)
        rel = roundoff.excess_relative_error(q, path, roundoff.gd_drift(q, path, eta, u), u).numpy()
        ratio_rel = (rel[:-1] + rel[1:]) * (1 + rel[:-1])  # of e_{k+1}/e_k, both within rel
        j = int(np.flatnonzero(ratio_rel <= config.ratio_precision)[-1])
        ratio = float(e[j + 1, k] / e[j, k])
        rates.append({"run": run, "eta": eta, "rho": rho, "predicted": rho**2, "measured": ratio,
                      "measured_step": j, "measured_bound": ratio * float(ratio_rel[j]),
                      "steps_to_reduction": taylor.first_below(e[:, k], config.reduction * e[0, k])})
    article_rho = float(taylor.gd_contraction(ARTICLE_LR, mu, L))
    article_steps = math.ceil(math.log(config.article_reduction) / (2 * math.log(article_rho)))
    return RateResult(config, pd.concat(curves, ignore_index=True), pd.DataFrame(rates), L, mu,
                      article_rho, article_steps, tuple(torch.linalg.eigvalsh(q.hessian).tolist()))
