"""Beyond the Euclidean ruler: level sets, steepest directions in other norms (Newton), mini-batch noise.

The level sets of a quadratic loss are the spheres of the H-norm around θ*; in that norm the steepest
direction is Newton's, which lands on θ* in one step (`level_sets`, `norms`). The mini-batch gradient
is an unbiased but noisy estimate of the gradient: the descent holds on average (`sgd_noise`).
One function per experiment, a frozen config in and a frozen result out; float64 throughout.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import pandas as pd

from . import data, roundoff, taylor, theory
from ._lazy import torch
from .cache import cached
from .fmt import num
from .i18n import t
from .steepest import ARTICLE_BATCH, ARTICLE_LR
from .taylor import Quadratic, curvature_bounds, first_below, full_batch_gd

# --------------------------------------------------------------------------- closed forms


def _vector(v) -> str:
    return "(" + ", ".join(f"{round(x, 3) + 0.0:.3f}" for x in v) + ")"  # + 0.0: no "−0.000"


def steepest_l2(g: torch.Tensor) -> torch.Tensor:
    """The ℓ2 unit vector minimising gᵀd: −g/‖g‖."""
    return -g / g.norm()


def steepest_l1(g: torch.Tensor) -> torch.Tensor:
    """An ℓ1 unit vector minimising gᵀd: −sign(g_i)·e_i at the largest |g_i|."""
    i = int(g.abs().argmax())
    return -torch.sign(g[i]) * torch.nn.functional.one_hot(torch.tensor(i), len(g)).to(g)


def steepest_linf(g: torch.Tensor) -> torch.Tensor:
    """An ℓ∞ unit vector minimising gᵀd: −sign(g), with gᵀd = −‖g‖₁ (sign descent, signSGD)."""
    return -torch.sign(g)


def steepest_hnorm(g: torch.Tensor, H: torch.Tensor) -> torch.Tensor:
    """The unit vector of ‖d‖_H = √(dᵀHd) minimising gᵀd: −H⁻¹g / √(gᵀH⁻¹g)."""
    newton = torch.linalg.solve(H, g)
    return -newton / torch.sqrt(g @ newton)


def newton_step(q: Quadratic, theta: torch.Tensor) -> torch.Tensor:
    """θ − H⁻¹∇f(θ): on a quadratic, θ* (up to rounding)."""
    return theta - torch.linalg.solve(q.hessian, q.gradient(theta))


def minibatch_variance(per_sample: torch.Tensor, batch_size: int) -> float:
    """tr Cov of the mean of B of the n per-sample gradients drawn without replacement: (n−B)/(B(n−1))·tr Σ₁."""
    n = per_sample.shape[0]
    trace_one = float(((per_sample - per_sample.mean(0)) ** 2).sum(1).mean())  # tr Σ₁ (1/n-normalised)
    return trace_one * (n - batch_size) / (batch_size * (n - 1))


# --------------------------------------------------------------------------- level sets


@dataclass(frozen=True)
class LevelSetConfig:
    """Gradient descent with η = 2/(μ+L) on two 2-D losses, drawn over their level sets."""

    seed: int = 20
    steps: int = 25
    grid: int = 161  # contour grid points per axis


@dataclass(frozen=True)
class LevelSetResult:
    """Paths (panel, step, x, y, loss, gx, gy) and loss grids (panel, x, y, loss) for two 2-D slices."""

    config: LevelSetConfig
    paths: pd.DataFrame
    grids: pd.DataFrame
    optima: pd.DataFrame  # panel, x, y, kappa, eta
    max_angle_error: float  # max |angle(∇f, level-set tangent) − 90°| over the path, degrees
    angle_error_bound: float  # the float64 rounding bound on it at the same points (roundoff.angle_error)

    def summary(self) -> dict:
        """Keys: max_angle_error, kappa (per panel), final_loss (per panel)."""
        last = self.paths.groupby("panel").loss.last()
        return {"experiment": "steepest-level-sets", **asdict(self.config),
                "max_angle_error": self.max_angle_error,
                "kappa": {r.panel: float(r.kappa) for r in self.optima.itertuples()},
                "final_loss": {k: float(v) for k, v in last.items()}}


def _tangent_angle(q: Quadratic, theta: torch.Tensor) -> float:
    """Angle in degrees between ∇f(θ) and the tangent of the level-set ellipse {f = f(θ)} at θ.

    The ellipse is θ* + r·H^(-1/2)(cos t, sin t), built from θ* and H. For a quadratic its tangent is
    perpendicular to ∇f = H(θ − θ*) identically: the angle checks that the code's θ*, H and gradient
    describe the same quadratic (rounding only), it does not test the theorem.
    """
    lam, V = torch.linalg.eigh(q.hessian)
    z = torch.sqrt(lam) * (V.T @ (theta - q.fit.theta))  # (cos t, sin t)·r
    tangent = V @ (torch.stack([-z[1], z[0]]) / torch.sqrt(lam))
    g = q.gradient(theta)
    cos = float(g @ tangent / (g.norm() * tangent.norm()))
    return math.degrees(math.acos(max(-1.0, min(1.0, cos))))


@cached
def level_sets(config: LevelSetConfig = LevelSetConfig()) -> LevelSetResult:
    """GD paths on the baseline's (w1, w2) slice at b = b* and on the toy's (w, b), with their level sets."""
    base, theta0 = taylor.baseline_problem(config.seed)
    b_star = float(base.fit.theta[-1])
    sliced = Quadratic(base.X, base.y - b_star, bias=False, loss="half")  # f(w1, w2, b*): 2-D
    toy, toy0 = taylor.toy_problem(noisy=True, bias=True)
    paths, grids, optima, angles, bounds = [], [], [], [], []
    u = roundoff.unit_roundoff(torch.float64)
    for panel, q, start in (("baseline (w1, w2), b = b*", sliced, theta0[:2]), ("toy (w, b)", toy, toy0)):
        L, mu = curvature_bounds(q.hessian)
        eta = 2 / (mu + L)
        traj = full_batch_gd(q, start, [eta], config.steps, dtype=torch.float64)
        theta = traj.epoch_params[:, :, 0]  # (E+1, 2)
        g = q.gradient(theta)
        paths.append(pd.DataFrame({"panel": panel, "step": range(len(theta)), "x": theta[:, 0], "y": theta[:, 1],
                                   "loss": q.value(theta), "gx": g[:, 0], "gy": g[:, 1]}))
        moving = g.norm(dim=1) > 1e-6 * g[0].norm()  # near θ* the ellipse degenerates to a point
        angles += [abs(_tangent_angle(q, t) - 90) for t in theta[moving]]
        bounds += [roundoff.angle_error(q, t, u) for t in theta[moving]]
        star = q.fit.theta
        half = 1.1 * float((theta - star).norm(dim=1).max())  # the whole level set through θ0 fits
        axis = [torch.linspace(float(star[i]) - half, float(star[i]) + half, config.grid, dtype=torch.float64)
                for i in range(2)]
        gx, gy = torch.meshgrid(*axis, indexing="xy")
        grid_theta = torch.stack([gx, gy], -1)  # (G, G, 2)
        loss = q.fit.loss_floor + theory.excess_loss(grid_theta, q.fit)  # f = f* + ½ΔᵀHΔ: exact, and cheap
        grids.append(pd.DataFrame({"panel": panel, "x": gx.flatten(), "y": gy.flatten(), "loss": loss.flatten()}))
        optima.append({"panel": panel, "x": float(star[0]), "y": float(star[1]), "kappa": L / mu, "eta": eta})
    return LevelSetResult(config, pd.concat(paths, ignore_index=True), pd.concat(grids, ignore_index=True),
                          pd.DataFrame(optima), float(max(angles)), float(max(bounds)))


# --------------------------------------------------------------------------- other norms, Newton


@dataclass(frozen=True)
class NormsConfig:
    """Steepest unit directions in ℓ2, ℓ1, ℓ∞ and the H-norm at θ0; Newton's one step against GD."""

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
    newton_bound: dict  # problem -> its float64 rounding bound (roundoff.newton_error)
    gd_steps: dict  # "problem, method" -> steps until ‖θ_k − θ*‖ ≤ tolerance·‖θ0 − θ*‖

    def summary(self) -> dict:
        """Keys: slopes (problem -> norm -> gᵀd), newton_error, gd_steps."""
        slopes = {p: dict(zip(f.norm, f.slope, strict=True)) for p, f in self.directions.groupby("problem")}
        return {"experiment": "steepest-norms", **asdict(self.config), "slopes": slopes,
                "newton_error": self.newton_error, "gd_steps": self.gd_steps}

    def table(self) -> pd.DataFrame:
        """The steepest unit direction per loss and norm, its slope and minus the dual norm, formatted."""
        d = self.directions
        return pd.DataFrame({t("steepest unit d"): d.d.map(_vector).to_numpy(), "∇fᵀd": d.slope.map(num).to_numpy(),
                             "−‖∇f‖*": (-d.dual_norm).map(num).to_numpy()},
                            index=pd.Index([t("{}, {}").format(t(p), n)
                                            for p, n in zip(d.problem, d.norm, strict=True)],
                                           name=t("loss, norm")))


@cached
def norms(config: NormsConfig = NormsConfig()) -> NormsResult:
    """Steepest descent in three norms at θ0; Newton (steepest in ‖·‖_H) lands on θ* in one step."""
    base, base0 = taylor.baseline_problem(config.seed)
    toy, _ = taylor.toy_problem(noisy=True, bias=True)
    toy0 = torch.tensor(config.toy_start, dtype=torch.float64)
    directions, errors, newton_error, newton_bound, gd_steps = [], [], {}, {}, {}
    for problem, q, theta0 in (("baseline", base, base0), ("toy w·x + b", toy, toy0)):
        g, H = q.gradient(theta0), q.hessian
        Hinv_g = torch.linalg.solve(H, g)
        duals = {"ℓ2": float(g.norm()), "ℓ1": float(g.abs().max()), "ℓ∞": float(g.abs().sum()),
                 "H": float(torch.sqrt(g @ Hinv_g))}
        steepest = {"ℓ2": steepest_l2(g), "ℓ1": steepest_l1(g), "ℓ∞": steepest_linf(g), "H": steepest_hnorm(g, H)}
        for norm, d in steepest.items():
            directions.append({"problem": problem, "norm": norm, "d": d.tolist(), "slope": float(g @ d),
                               "dual_norm": duals[norm]})
        star = q.fit.theta
        L, mu = curvature_bounds(H)
        runs = {"GD, η = 1/L": 1 / L, "GD, η = 2/(μ+L)": 2 / (mu + L)}
        traj = full_batch_gd(q, theta0, list(runs.values()), config.max_steps, dtype=torch.float64)
        dist = (traj.epoch_params - star.unsqueeze(1)).norm(dim=1).numpy()  # (E+1, K)
        for k, method in enumerate(runs):
            errors.append(pd.DataFrame({"problem": problem, "method": method, "step": range(len(dist)),
                                        "error": dist[:, k]}))
            gd_steps[f"{problem}, {method}"] = first_below(dist[:, k], config.tolerance * dist[0, k])
        newton_error[problem] = float((newton_step(q, theta0) - star).norm())
        newton_bound[problem] = roundoff.newton_error(q, theta0, roundoff.unit_roundoff(torch.float64))
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
                       float(toy.value(toy0)), toy.fit.loss_floor, newton_error, newton_bound, gd_steps)


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
                "bound_holds": bool((self.one_step.exact <= self.one_step.bound).all()),  # the lemma bounds E f₁
                "kick_at_optimum": self.kick_at_optimum, "loss_floor": self.loss_floor}

    def table(self) -> pd.DataFrame:
        """At θ0: the exact gradient noise per batch size and the loss after one step against its bound."""
        v = self.variance[self.variance.point == "θ0"].set_index("batch_size")
        s = self.one_step.set_index("batch_size")
        return pd.DataFrame({"tr Cov(g_B)": v.predicted.map(num), t("mean f₁"): s.measured.map(num),
                             t("E f₁ (exact)"): s.exact.map(num), t("bound"): s.bound.map(num)}).rename_axis("B")


@cached
def sgd_noise(config: SgdNoiseConfig = SgdNoiseConfig()) -> SgdNoiseResult:
    """Measure tr Cov of mini-batch gradients over seeded shuffles at θ0 and θ*; check expected descent."""
    q, theta0 = taylor.baseline_problem(config.seed)
    if any(q.n % B for B in config.batch_sizes):
        raise ValueError(f"batch sizes must divide n = {q.n}: {config.batch_sizes}")
    L, _ = curvature_bounds(q.hessian)
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
            predicted = minibatch_variance(G, B)
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
        kick = L * ARTICLE_LR**2 / 2 * minibatch_variance(G, ARTICLE_BATCH)  # last G: at θ*
    return SgdNoiseResult(config, pd.DataFrame(variance), pd.DataFrame(one_step), L, eta,
                          float(q.value(theta0)), q.fit.loss_floor, kick)
