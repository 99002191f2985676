"""Chapter 3's experiments on step sizes: curvature, the descent lemma, rates, other norms, SGD noise.

One function per experiment, a frozen config in and a frozen result out. Every training run goes
through `engine.train`, with full batches (batch_size = n: one gradient-descent step per epoch)
unless the article's own mini-batches are the point. The closed forms and the Taylor checks are in
`taylor`.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd
import torch

from . import data, engine, taylor, theory
from .experiments import ToyConfig
from .taylor import Quadratic, fmt

ARTICLE_LR = 0.0003  # section 五: the step on the mean loss of a mini-batch of 10
ARTICLE_BATCH = 10
TOY = ToyConfig()  # 问题1: lr 0.3, batches of one, sgd dividing by 10 ⇒ effective_lr 0.03
FLOAT32_MAX = float(torch.finfo(torch.float32).max)


def _vector(v) -> str:
    return "(" + ", ".join(f"{round(x, 3) + 0.0:.3f}" for x in v) + ")"  # + 0.0: no "−0.000"


def _first_below(curve: np.ndarray, level: float) -> int | None:
    """First index where curve ≤ level, or None."""
    hits = np.flatnonzero(curve <= level)
    return int(hits[0]) if len(hits) else None


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
    constants: pd.DataFrame  # one row per loss: L, mu, kappa, two_over_L, lr, step, batch_curvature, ...
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
        """The constants, one column per loss, formatted for the report."""
        c = self.constants.set_index("name")
        rows = {"L = λmax(H)": c.L.map(fmt), "μ = λmin(H)": c.mu.map(fmt), "κ = L/μ": c.kappa.map(fmt),
                "2/L": c.two_over_L.map(fmt), "article's lr": c.lr.map(fmt),
                "step taken, η": c.step.map(fmt), "η·L": (c.step * c.L).map(fmt),
                "step taken on the loss of": c.batch,
                "largest curvature of that loss": c.batch_curvature.map(fmt),
                "2 / that curvature": (2 / c.batch_curvature).map(fmt)}
        names = {"baseline": "baseline (½ loss; w1, w2, b)", "toy": "toy w·x", "toy_bias": "toy w·x + b"}
        return pd.DataFrame(rows).T.rename(columns=names).rename_axis("quantity")

    def toy_table(self) -> pd.DataFrame:
        """The toy's step-size variants and what the engine made of them, formatted."""
        t = self.toy_runs
        outcome = [f"diverged at step {r.diverged_step}" if r.diverged
                   else f"loss {r.final_loss:f} after {r.steps} steps" for r in t.itertuples()]
        return pd.DataFrame({"update": t.variant, "step η": t.step.map(fmt),
                             "curvature of the loss stepped on": t.curvature.map(fmt),
                             "η × curvature": (t.step * t.curvature).map(fmt),
                             "outcome": outcome}).set_index("update")


def _constants(name: str, q: Quadratic, lr: float, step: float, batch: str, batch_curv: float) -> dict:
    L, mu = taylor.curvature_bounds(q.hessian)
    return {"name": name, "L": L, "mu": mu, "kappa": L / mu, "two_over_L": 2 / L, "lr": lr, "step": step,
            "batch": batch, "batch_curvature": batch_curv}


def _toy_runs(config: CurvatureConfig, sample_curvature: float, mean_curvature: float
              ) -> tuple[pd.DataFrame, np.ndarray]:
    """The clean toy from w = 2 under the article's update and three variants; w per epoch of the article's."""
    ds = data.toy_data(noisy=False)
    orders = data.batch_orders(ds.n, config.diverge_epochs, data.generator(config.seed, "order"))
    variants = [  # name, batch size, lr, grad_divisor, epochs
        ("article: batches of 1, lr 0.3, sgd ÷ 10", 1, TOY.lr, TOY.grad_divisor, config.toy_epochs),
        ("batches of 1, lr 0.3, no ÷ 10", 1, TOY.lr, 1, config.diverge_epochs),
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


def curvature(config: CurvatureConfig = CurvatureConfig()) -> CurvatureResult:
    """Where the article's learning rates sit relative to 2/L, for the mean loss and the loss stepped on."""
    q, _ = taylor.baseline_problem(config.seed)
    orders = data.batch_orders(q.n, config.baseline_epochs, data.generator(config.seed, "order"))
    mini = taylor.batch_curvature(q, orders, ARTICLE_BATCH)  # (batches,)
    rows = [_constants("baseline", q, ARTICLE_LR, ARTICLE_LR, "a mini-batch of 10", float(mini.max()))]
    for name, bias in (("toy", False), ("toy_bias", True)):
        t, _ = taylor.toy_problem(noisy=bias, bias=bias)  # the article's toy-clean and toy-bias; H ignores y
        one = float(taylor.per_sample_curvature(t).max())
        rows.append(_constants(name, t, TOY.lr, TOY.effective_lr, "one sample", one))

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
    epochs: int = 1000  # full-batch steps; η·L = 2.1 overflows float32 after about 450
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

    def summary(self) -> dict:
        """Keys: L, two_over_L, best_eta, zero_eta, bound_holds, converged_factors, diverged_factors, ..."""
        s = self.sweep
        return {"experiment": "steepest-descent-lemma", **asdict(self.config), "L": self.L,
                "two_over_L": 2 / self.L, "best_eta": self.best_eta, "zero_eta": self.zero_eta,
                "bound_holds": bool((self.one_step.loss_after <= self.one_step.bound + 1e-12).all()),
                "converged_factors": s.factor[s.steps_to_tol.notna()].tolist(),
                "diverged_factors": s.factor[s.diverged].tolist(),
                "diverged_steps": s.diverged_step[s.diverged].tolist(),
                "steps_within_bound": bool((s.steps_to_tol <= s.steps_bound).where(s.steps_to_tol.notna(), True).all())}


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
                     "steps_to_tol": None if diverged else _first_below(e[:, k], config.tolerance * e[0, k]),
                     # f − f* ≤ ρ^(2k)(f0 − f*): the theorem's guarantee on the steps needed
                     "steps_bound": math.ceil(math.log(config.tolerance) / (2 * math.log(rho))) if rho < 1 else None,
                     "final_excess": None if diverged else float(e[-1, k]),
                     # f − f* grows like ρ^(2k)(f0 − f*) when ρ > 1: roughly when float32 overflows
                     "overflow_estimate": math.log(FLOAT32_MAX / e[0, k]) / (2 * math.log(rho)) if rho > 1 else None})
    sweep = pd.DataFrame(rows).astype({"steps_to_tol": "Float64", "steps_bound": "Float64",
                                       "final_excess": "Float64", "overflow_estimate": "Float64"})
    return DescentLemmaResult(config, one_step, sweep, L, f0, gg, gg / gHg, 2 * gg / gHg)


# --------------------------------------------------------------------------- linear rate


@dataclass(frozen=True)
class RateConfig:
    """Full-batch GD on the baseline at η = 1/L and η = 2/(μ+L), in float64 to see many steps."""

    seed: int = 20
    steps: int = 40
    floor: float = 1e-24  # ratios are read while excess/initial > floor (float64 rounding sits near 1e-31)
    reduction: float = 1e-12  # steps until the excess has shrunk by this factor
    article_reduction: float = 1e-6  # the reduction quoted for the article's lr


@dataclass(frozen=True)
class RateResult:
    """Excess loss per step (run, step, excess, bound) and per-run predicted vs measured contraction."""

    config: RateConfig
    curves: pd.DataFrame
    rates: pd.DataFrame  # run, eta, rho, predicted (ρ²), measured (last e_{k+1}/e_k), steps_to_reduction
    L: float
    mu: float
    article_rho: float  # ρ at the article's lr 0.0003 (full batch)
    article_steps: int  # steps the rate guarantees to cut the excess by article_reduction at that lr

    @property
    def kappa(self) -> float:
        return self.L / self.mu

    def summary(self) -> dict:
        """Keys: L, mu, kappa, predicted, measured (per run), article_rho, article_steps."""
        r = self.rates.set_index("run")
        return {"experiment": "steepest-rate", **asdict(self.config), "L": self.L, "mu": self.mu,
                "kappa": self.kappa, "predicted": r.predicted.to_dict(), "measured": r.measured.to_dict(),
                "article_rho": self.article_rho, "article_steps": self.article_steps}

    def table(self) -> pd.DataFrame:
        """Predicted against measured contraction, formatted."""
        r = self.rates
        return pd.DataFrame({"step size": r.run, "η": r.eta.map(fmt), "ρ": r.rho.map(fmt),
                             "predicted ρ²": r.predicted.map(fmt), "measured e(k+1)/e(k)": r.measured.map(fmt),
                             f"steps to e(k) ≤ {taylor.sci(self.config.reduction)} e(0)": r.steps_to_reduction}
                            ).set_index("step size")


def rate(config: RateConfig = RateConfig()) -> RateResult:
    """Linear convergence: the excess loss shrinks by ρ² per step, ρ = 1 − 1/κ or (κ−1)/(κ+1)."""
    q, theta0 = taylor.baseline_problem(config.seed)
    L, mu = taylor.curvature_bounds(q.hessian)
    runs = {"η = 1/L": 1 / L, "η = 2/(μ+L)": 2 / (mu + L)}
    traj = taylor.full_batch_gd(q, theta0, list(runs.values()), config.steps, dtype=torch.float64)
    e = taylor.excess_curves(q, traj)
    curves, rates = [], []
    for k, (run, eta) in enumerate(runs.items()):
        rho = float(taylor.gd_contraction(eta, mu, L))
        steps = np.arange(config.steps + 1)
        curves.append(pd.DataFrame({"run": run, "step": steps, "excess": e[:, k],
                                    "bound": rho ** (2 * steps) * e[0, k]}))  # @thm-linear-rate's guarantee
        seen = np.flatnonzero(e[1:, k] / e[0, k] > config.floor)  # ratio e_{k+1}/e_k while above the floor
        rates.append({"run": run, "eta": eta, "rho": rho, "predicted": rho**2,
                      "measured": float(e[seen[-1] + 1, k] / e[seen[-1], k]),
                      "steps_to_reduction": _first_below(e[:, k], config.reduction * e[0, k])})
    article_rho = float(taylor.gd_contraction(ARTICLE_LR, mu, L))
    article_steps = math.ceil(math.log(config.article_reduction) / (2 * math.log(article_rho)))
    return RateResult(config, pd.concat(curves, ignore_index=True), pd.DataFrame(rates), L, mu,
                      article_rho, article_steps)


# --------------------------------------------------------------------------- other norms, Newton


@dataclass(frozen=True)
class NormsConfig:
    """Steepest unit directions in ℓ2, ℓ1 and the H-norm at θ0; Newton's one step against GD."""

    seed: int = 20
    max_steps: int = 400  # the toy with b has κ ≈ 14: GD at η = 1/L needs ~370 steps to reach the tolerance
    tolerance: float = 1e-10  # GD arrives when ‖θ_k − θ*‖ ≤ tolerance·‖θ0 − θ*‖
    toy_start: tuple[float, float] = (1.5, 1.0)  # (w, b) off the w axis: from the article's (2, 0) the ℓ1 and
    # Newton directions nearly coincide (θ* ≈ (1.03, −0.02) lies almost straight along −w)


@dataclass(frozen=True)
class NormsResult:
    """Directions (problem, norm, d, slope, dual_norm), errors ‖θ_k − θ*‖ per method, the toy's geometry."""

    config: NormsConfig
    directions: pd.DataFrame
    errors: pd.DataFrame  # problem, method, step, error
    toy_grid: pd.DataFrame  # w, b, loss: the toy's level sets around θ0 and θ*
    toy_theta0: tuple[float, ...]
    toy_optimum: tuple[float, ...]
    toy_hessian: tuple[tuple[float, ...], ...]
    toy_loss0: float  # f(θ0) and f(θ*) of the toy, for its level sets
    toy_floor: float
    newton_error: dict  # problem -> ‖θ0 − H⁻¹∇f(θ0) − θ*‖
    gd_steps: dict  # "problem, method" -> steps until ‖θ_k − θ*‖ ≤ tolerance·‖θ0 − θ*‖

    def summary(self) -> dict:
        """Keys: slopes (problem -> norm -> gᵀd), newton_error, gd_steps."""
        slopes = {p: dict(zip(f.norm, f.slope, strict=True)) for p, f in self.directions.groupby("problem")}
        return {"experiment": "steepest-norms", **asdict(self.config), "slopes": slopes,
                "newton_error": self.newton_error, "gd_steps": self.gd_steps}

    def table(self) -> pd.DataFrame:
        """The steepest unit direction per norm and its slope, formatted."""
        d = self.directions
        return pd.DataFrame({"loss": d.problem, "norm of a step": d.norm,
                             "steepest unit direction d": d.d.map(_vector),
                             "slope ∇fᵀd": d.slope.map(fmt), "−(dual norm of ∇f)": (-d.dual_norm).map(fmt)}
                            ).set_index("loss")


def norms(config: NormsConfig = NormsConfig()) -> NormsResult:
    """Steepest descent in three norms at θ0; Newton (steepest in ‖·‖_H) lands on θ* in one step."""
    base, base0 = taylor.baseline_problem(config.seed)
    toy, _ = taylor.toy_problem(noisy=True, bias=True)
    toy0 = torch.tensor(config.toy_start, dtype=torch.float64)
    directions, errors, newton_error, gd_steps = [], [], {}, {}
    for problem, q, theta0 in (("baseline", base, base0), ("toy w·x + b", toy, toy0)):
        g, H = q.gradient(theta0), q.hessian
        Hinv_g = torch.linalg.solve(H, g)
        duals = {"ℓ2": float(g.norm()), "ℓ1": float(g.abs().max()), "H": float(torch.sqrt(g @ Hinv_g))}
        steepest = {"ℓ2": taylor.steepest_l2(g), "ℓ1": taylor.steepest_l1(g), "H": taylor.steepest_hnorm(g, H)}
        for norm, d in steepest.items():
            directions.append({"problem": problem, "norm": norm, "d": d.tolist(), "slope": float(g @ d),
                               "dual_norm": duals[norm]})
        star = q.fit.theta
        L, mu = taylor.curvature_bounds(H)
        runs = {"GD, η = 1/L": 1 / L, "GD, η = 2/(μ+L)": 2 / (mu + L)}
        traj = taylor.full_batch_gd(q, theta0, list(runs.values()), config.max_steps, dtype=torch.float64)
        dist = (traj.epoch_params - star.unsqueeze(1)).norm(dim=1).numpy()  # (E+1, K)
        for k, method in enumerate(runs):
            errors.append(pd.DataFrame({"problem": problem, "method": method, "step": range(len(dist)),
                                        "error": dist[:, k]}))
            gd_steps[f"{problem}, {method}"] = _first_below(dist[:, k], config.tolerance * dist[0, k])
        newton_error[problem] = float((taylor.newton_step(q, theta0) - star).norm())
        errors.append(pd.DataFrame({"problem": problem, "method": "Newton", "step": [0, 1],
                                    "error": [float((theta0 - star).norm()), newton_error[problem]]}))
    star = toy.fit.theta
    axis = [torch.linspace(float(min(star[i], toy0[i])) - 0.9, float(max(star[i], toy0[i])) + 0.9, 121,
                           dtype=torch.float64) for i in range(2)]
    gw, gb = torch.meshgrid(*axis, indexing="xy")
    loss = toy.fit.loss_floor + theory.excess_loss(torch.stack([gw, gb], -1), toy.fit)  # exact for a quadratic
    grid = pd.DataFrame({"w": gw.flatten(), "b": gb.flatten(), "loss": loss.flatten()})
    return NormsResult(config, pd.DataFrame(directions), pd.concat(errors, ignore_index=True), grid,
                       tuple(toy0.tolist()), tuple(star.tolist()), tuple(map(tuple, toy.hessian.tolist())),
                       float(toy.value(toy0)), toy.fit.loss_floor, newton_error, gd_steps)


# --------------------------------------------------------------------------- SGD: descent in expectation


@dataclass(frozen=True)
class SgdNoiseConfig:
    """The mini-batch gradient's variance against B, and the one-step expected descent at θ0."""

    seed: int = 20
    batch_sizes: tuple[int, ...] = (1, 2, 5, 10, 20, 50, 100, 200, 500)  # divisors of n = 1000
    epochs: int = 400  # shuffles drawn: B = 500 still gives 800 mini-batch gradients
    eta_factor: float = 1.0  # the one-step check uses η = eta_factor / L


@dataclass(frozen=True)
class SgdNoiseResult:
    """tr Cov(g_B) per point and B (measured, predicted, 1/B law); E f(θ0 − ηg_B) against the bound."""

    config: SgdNoiseConfig
    variance: pd.DataFrame  # point, batch_size, measured, predicted, one_over_B
    one_step: pd.DataFrame  # batch_size, measured (mean f after the step), exact, bound
    L: float
    eta: float
    loss0: float
    loss_floor: float
    kick_at_optimum: float  # (Lη²/2)·tr Cov(g_10) at θ* with the article's lr: the noise term left at θ*

    def summary(self) -> dict:
        """Keys: eta, loss0, max_relative_error (measured vs predicted variance), bound_holds, kick_at_optimum."""
        v = self.variance
        return {"experiment": "steepest-sgd-noise", **asdict(self.config), "eta": self.eta, "loss0": self.loss0,
                "max_relative_error": float((v.measured / v.predicted - 1).abs().max()),
                "bound_holds": bool((self.one_step.measured <= self.one_step.bound).all()),
                "kick_at_optimum": self.kick_at_optimum, "loss_floor": self.loss_floor}

    def table(self) -> pd.DataFrame:
        """Variance at θ0 and the one-step expected loss against its bound, formatted."""
        v = self.variance[self.variance.point == "θ0"].reset_index(drop=True)
        s = self.one_step
        return pd.DataFrame({"B": s.batch_size, "tr Cov: measured": v.measured.map(fmt),
                             "tr Cov: predicted": v.predicted.map(fmt), "tr Σ₁/B": v.one_over_B.map(fmt),
                             "f after: mean": s.measured.map(fmt), "f after: exact E": s.exact.map(fmt),
                             "f after: bound": s.bound.map(fmt)}).set_index("B")


def sgd_noise(config: SgdNoiseConfig = SgdNoiseConfig()) -> SgdNoiseResult:
    """Measure tr Cov of mini-batch gradients over seeded shuffles at θ0 and θ*; check expected descent."""
    q, theta0 = taylor.baseline_problem(config.seed)
    if any(q.n % B for B in config.batch_sizes):
        raise ValueError(f"batch sizes must divide n = {q.n}: {config.batch_sizes}")
    L, _ = taylor.curvature_bounds(q.hessian)
    H, eta = q.hessian, config.eta_factor / L
    orders = data.batch_orders(q.n, config.epochs, data.generator(config.seed, "order"))
    variance, one_step, kick = [], [], 0.0
    for point, theta in (("θ0", theta0), ("θ*", q.fit.theta)):
        G = q.per_sample_gradients(theta)  # (n, p)
        g, centred = G.mean(0), G - G.mean(0)
        sigma_one = centred.T @ centred / q.n  # Σ₁, the covariance of one sample's gradient
        shuffled = G[orders]  # (E, n, p): D2L's data_iter, consecutive batches of each shuffle
        for B in config.batch_sizes:
            gB = shuffled.reshape(-1, B, G.shape[1]).mean(1)  # every mini-batch gradient drawn
            predicted = taylor.minibatch_variance(G, B)
            variance.append({"point": point, "batch_size": B, "measured": float(((gB - g) ** 2).sum(1).mean()),
                             "predicted": predicted, "one_over_B": float(torch.trace(sigma_one)) / B})
            if point == "θ0":
                after = q.fit.loss_floor + theory.excess_loss(theta - eta * gB, q.fit)  # f = f* + ½ΔᵀHΔ
                fpc = predicted / float(torch.trace(sigma_one))
                # E f(θ − ηg_B) = f − η‖g‖² + η²/2·(gᵀHg + tr(H Cov g_B)), exactly, for a quadratic
                curvature_term = g @ H @ g + fpc * torch.trace(H @ sigma_one)
                exact = float(q.value(theta) - eta * g @ g + eta**2 / 2 * curvature_term)
                bound = taylor.descent_bound(float(q.value(theta)), float(g @ g), L, eta) + L * eta**2 / 2 * predicted
                one_step.append({"batch_size": B, "measured": float(after.mean()), "exact": exact, "bound": bound})
        kick = L * ARTICLE_LR**2 / 2 * taylor.minibatch_variance(G, ARTICLE_BATCH)  # last G: at θ*
    return SgdNoiseResult(config, pd.DataFrame(variance), pd.DataFrame(one_step), L, eta,
                          float(q.value(theta0)), q.fit.loss_floor, kick)
