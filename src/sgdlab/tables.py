"""Tables the report shows, built from experiment results (formatted here, not in the report)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from .data import NUM_EXAMPLES
from .experiments import ARTICLE_BASELINE, BaselineResult, OrderSpreadResult
from .fmt import num
from .i18n import t
from .steepest import CurvatureResult

IMPLEMENTATION_NAMES = {
    "scratch": "scratch (hand-written sgd)",
    "concise": "concise (nn.Linear + optim.SGD)",
    "closed_form": "closed form (least squares)",
}


def baseline_comparison(result: BaselineResult) -> pd.DataFrame:
    """One column per implementation plus the article's printed numbers, one row per quantity."""
    rows = result.final.set_index("implementation")
    table = pd.DataFrame({
        t(IMPLEMENTATION_NAMES[name]): [
            f"{r.final_loss:.6f}", f"{r.w1_error:+.4f}", f"{r.w2_error:+.4f}", f"{r.b_error:+.4f}",
            num(r.final_loss, ".3e"),
        ]
        for name, r in rows.iterrows()
    }, index=[t(q) for q in ("training loss (printed as the article)", "w₁ error", "w₂ error", "b error",
                             "training loss")])
    table[t("the article (published)")] = [
        f"{ARTICLE_BASELINE['final_loss']:.6f}", f"{ARTICLE_BASELINE['w_error'][0]:+.4f}",
        f"{ARTICLE_BASELINE['w_error'][1]:+.4f}", f"{ARTICLE_BASELINE['b_error']:+.4f}", "—",
    ]
    table.index.name = t("quantity")
    return table


def order_spread(result: OrderSpreadResult) -> pd.DataFrame:
    """Range of the final numbers over batch orders, beside the article's published ones."""
    f = result.final
    rows = [
        ("training loss", "final_loss", ARTICLE_BASELINE["final_loss"], ".4e", "{:.6f}"),
        ("w₁ error", "w1_error", ARTICLE_BASELINE["w_error"][0], "+.6f", "{:+.4f}"),
        ("w₂ error", "w2_error", ARTICLE_BASELINE["w_error"][1], "+.6f", "{:+.4f}"),
        ("b error", "b_error", ARTICLE_BASELINE["b_error"], "+.6f", "{:+.4f}"),
    ]
    return pd.DataFrame(
        [{t("quantity"): t(label), t("min over orders"): num(f[col].min(), spec),
          t("max over orders"): num(f[col].max(), spec),
          t("printed (all orders)"): " / ".join(sorted({printed.format(v) for v in f[col]})),
          t("the article"): printed.format(article)} for label, col, article, spec, printed in rows]
    ).set_index(t("quantity"))


def loss_over_floor(result: BaselineResult, epoch: int, implementation: str = "scratch") -> float:
    """Training loss after `epoch` epochs divided by the closed-form floor (1 means: on the floor)."""
    h = result.history
    loss = h[(h.implementation == implementation) & (h.epoch == epoch)].loss
    return float(loss.iloc[0]) / result.loss_floor


def implementation_gap(result: BaselineResult, first: str = "scratch", second: str = "concise") -> float:
    """Largest |difference| of any parameter between two implementations over all epoch ends (float32 rounding)."""
    h = result.history.set_index(["implementation", "epoch"])[["w1", "w2", "b"]]
    return float((h.loc[first] - h.loc[second]).abs().to_numpy().max())


GAP_ULPS = 4  # the trajectory model of tests/bounds.py: two roundings of the same steps stay a few ulps apart


def implementation_gap_bound(result: BaselineResult, ulps: int = GAP_ULPS) -> float:
    """The float32 rounding bound that `implementation_gap` is held to: `ulps` units in the last place
    (float32's eps each) of the largest |parameter| at any epoch end of the run.

    The gap itself is rounding, and its digits change with the CPU's kernel dispatch: the text prints
    only this bound.
    """
    h = result.history[["w1", "w2", "b"]]
    return ulps * float(np.finfo(np.float32).eps) * float(h.abs().to_numpy().max())


def excess_factor_per_epoch(result: BaselineResult, first: int, last: int, implementation: str = "scratch") -> float:
    """The mean factor per epoch by which the run's loss over the floor shrank from epoch `first` to `last`."""
    start, end = (loss_over_floor(result, e, implementation) - 1 for e in (first, last))
    return (end / start) ** (1 / (last - first))


def conventions(curv: CurvatureResult, n: int = NUM_EXAMPLES) -> pd.DataFrame:
    """One update, several loss conventions: L and 2/L move by 2 or n, η·L (what decides stability) does not.

    Scaling a loss by s scales its Hessian, so L, by s; the same update is then a step of η/s on it.
    """
    c = curv.constants.set_index("name")
    base, toy = c.loc["baseline"], c.loc["toy"]
    rows = [  # (problem, loss, scale relative to the first loss of the problem, step on that loss, L of the loss)
        ("baseline", t("D2L's ½ mean loss ℓ, the book's f"), 1, base.step, base.L),
        ("baseline", t("nn.MSELoss: mean, no ½ (concise)"), 2, base.step / 2, 2 * base.L),
        ("baseline", t("½ loss summed over the n = {} examples").format(f"{n:,}"), n, base.step / n, n * base.L),
        ("toy", t("the toy's plain mean (ŷ − y)², its f; lr/10"), 1, toy.step, toy.L),
        ("toy", t("the same, stepped with the nominal lr"), 1, toy.lr, toy.L),
        ("toy", t("one example's (ŷ − y)² at x = 3: $L_B$"), 1, toy.step, toy.batch_curvature),
        ("toy", t("D2L's ½ mean loss on the toy"), 0.5, 2 * toy.step, toy.L / 2),
    ]
    return pd.DataFrame({t("loss"): [r[1] for r in rows], "L": [num(r[4], ".4g") for r in rows],
                         "2/L": [num(2 / r[4], ".4g") for r in rows],
                         t("step η on it"): [num(r[3], ".4g") for r in rows],
                         "η·L": [num(r[3] * r[4], ".3g") for r in rows]},
                        index=pd.Index([t(r[0]) for r in rows], name=t("problem")))


NOTATION = [  # symbol, meaning (Markdown, math in $…$): one row per symbol, one meaning each; words-zh.yml has each
    (r"$n$", r"the number of examples"),
    (r"$p$", r"the number of parameters ($b$'s column of ones included)"),
    (r"$x_i$",
     r"example $i$'s input row, with its 1 for $b$ (on the toy: the number $x_i$, its row $(x_i, 1)$ with a bias)"),
    (r"$\mathbf{x}_i$", r"example $i$'s two features, without the 1 (chapter 1)"),
    (r"$y_i$", r"example $i$'s label"),
    (r"$y$", r"the vector of the $n$ labels"),
    (r"$X$", r"the $n \times p$ matrix of the rows $x_i^\top$"),
    (r"$m$", r"the labels' mean: $y = m + \varepsilon$, $m \in \mathbb{R}^n$"),
    (r"$\varepsilon$", r"the label noise $y - m$"),
    (r"$\sigma$", r"the standard deviation of the label noise"),
    (r"$w$", r"a linear model's weights (one number on the toy)"),
    (r"$b$", r"a linear model's bias"),
    (r"$\theta$", r"all parameters, $(w, b)$"),
    (r"$\theta^*$", r"the least-squares minimiser"),
    (r"$w^*$", r"the least-squares weight of the toy"),
    (r"$\theta_\text{true}$", r"the parameters that made the labels"),
    (r"$\ell$", r"the training loss of chapters 1 and 2 (D2L's has the ½, the toy's not)"),
    (r"$f$", r"the loss being minimised (chapter 3: any differentiable loss)"),
    (r"$f_i$", r"one example's loss"),
    (r"$f^*$", r"the least loss, the floor"),
    (r"$\gamma$", r"the scale of a squared loss $f = (\gamma/n)\lVert X\theta - y\rVert^2$: ½ (D2L), 1 (the toy)"),
    (r"$r_i$", r"the residual at the optimum, $x_i^\top\theta^* - y_i$"),
    (r"$r_i(\theta_k)$", r"the residual at an iterate, $x_i^\top\theta_k - y_i$"),
    (r"$P$", r"the orthogonal projection onto the columns of $X$"),
    (r"$H$", r"the Hessian of the loss at hand: $(2\gamma/n)X^\top X$ for a squared loss"),
    (r"$H_i$", r"example $i$'s curvature $x_i x_i^\top$ (on D2L's ½-loss $H$ is their mean)"),
    (r"$H_B$", r"the Hessian of one batch's mean loss"),
    (r"$L$", r"$\lambda_{\max}(H)$, the smoothness constant"),
    (r"$\mu$", r"$\lambda_{\min}(H)$, the strong-convexity constant"),
    (r"$\kappa$", r"the condition number $L/\mu$"),
    (r"$L_B$", r"$\lambda_{\max}(H_B)$: the largest curvature of one batch's mean loss"),
    (r"$L_{\max}$",
     r"the largest $L_B$ over a set of batches, always named (e.g. over all batches drawn with replacement: "
     r"$\max_i \lVert x_i\rVert^2$ on the ½-loss)"),
    (r"$\lambda_i$", r"the eigenvalues of $H$"),
    (r"$v_i$", r"the unit eigenvectors of $H$"),
    (r"$\zeta_i$", r"the coordinates of $\theta_0 - \theta^*$ along the $v_i$"),
    (r"$u_k$", r"the coordinate of $\theta_k - \theta^*$ along one eigenvector of $H$ (the heavy ball's proof)"),
    (r"$\eta$", r"the step on the mean loss of a batch"),
    (r"`lr`", r"the code's learning rate (the toy steps lr/10)"),
    (r"$B$", r"the batch size"),
    (r"$\mathcal{B}$", r"a batch"),
    (r"$g$", r"a stochastic gradient"),
    (r"$g_B$", r"a mini-batch's mean gradient"),
    (r"$\xi$", r"gradient noise $g - \nabla f$ ($\xi_B$: a batch's mean gradient at $\theta^*$, where $\nabla f = 0$)"),
    (r"$\Sigma_1$",
     r"the covariance of one example's gradient at $\theta^*$; at another $\theta$ it is written $\Sigma_1(\theta)$"),
    (r"$\Sigma$", r"the covariance of a stochastic gradient $g$ given the past (the expected-descent lemma)"),
    (r"$\operatorname{Var}$",
     r"of a random vector: $\operatorname{Var}[g] = \mathbb{E}\lVert g - \mathbb{E}g\rVert^2 = "
     r"\operatorname{tr}\operatorname{Cov}(g)$ (of a number, its variance)"),
    (r"$e$", r"the toy's error $w - w^*$, a number"),
    (r"$\delta$", r"the error $\theta - \theta^*$, a vector"),
    (r"$a_i$", r"a toy step's factor in $e \leftarrow a_i e + c_i$: $1 - 2\eta x_i^2$"),
    (r"$c_i$", r"a toy step's push in $e \leftarrow a_i e + c_i$: $-2\eta x_i r_i$"),
    (r"$A(\eta)$", r"a toy epoch's factor in $e \leftarrow A(\eta)\,e + c(\pi)$: $\prod_i a_i$"),
    (r"$c(\pi)$",
     r"an epoch's push in the order $\pi$ (a vector $c$ for $\delta$ in chapter 2's reshuffled closed form)"),
    (r"$C$", r"the stationary covariance of $\delta$ under constant-step SGD"),
    (r"$\mathcal{T}_\eta$", r"the map of $\mathbb{E}\,\delta\delta^\top$ over one SGD step (independent batches)"),
    (r"$\mathcal{A}$", r"the first-order part of $\mathcal{T}_\eta$: $\mathcal{A}(C) = HC + CH$"),
    (r"$\mathcal{K}$",
     r"the second-order part of $\mathcal{T}_\eta = I - \eta\mathcal{A} + \eta^2\mathcal{K}$: "
     r"$\mathcal{K}(C) = \mathbb{E}[H_B C H_B]$"),
    (r"$\vartheta$", r"a generalised eigenvalue, $\mathcal{K}V = \vartheta\mathcal{A}V$"),
    (r"$d$", r"a unit direction"),
    (r"$h$", r"a short step length along a direction"),
    (r"$\upsilon$", r"a change of a rescaled coordinate $s_j\theta_j$ (diagonal preconditioning)"),
    (r"$\omega(\eta)$",
     r"the remainder in $f(\theta - \eta\nabla f) = f(\theta) - \eta\lVert\nabla f\rVert^2 + \omega(\eta)$"),
    (r"$\rho$", r"the contraction factor of the error per gradient step"),
    (r"$\nu$",
     r"Bottou, Curtis and Nocedal's alignment constant: $\nabla f^\top\mathbb{E}\,g \ge \nu\lVert\nabla f\rVert^2$"),
    (r"$\nu_G$", r"their bound on the mean gradient: $\lVert\mathbb{E}\,g\rVert \le \nu_G\lVert\nabla f\rVert$"),
    (r"$M$", r"the constant part of their noise bound $\operatorname{Var}[g] \le M + M_V\lVert\nabla f\rVert^2$"),
    (r"$M_V$", r"the factor of $\lVert\nabla f\rVert^2$ in that noise bound"),
    (r"$M_G$", r"$M_V + \nu_G^2$, in their step limit $\eta \le \nu/(L M_G)$"),
    (r"$t_0$", r"the offset of the Robbins–Monro step $\eta_t = \eta\,t_0/(t_0 + t)$"),
    (r"$T_0$", r"the epoch from whose end Polyak–Ruppert averaging starts: the mean $\bar w^{(T_0)}_T$ up to step $T$"),
    (r"$\alpha$", r"the heavy ball's step"),
    (r"$\beta$", r"the heavy ball's momentum"),
    (r"$\Lambda$", r"the features' covariance (double descent)"),
    (r"$\tau$", r"a ridge penalty"),
    (r"$O(\cdot)$",
     r"a quantity is $O(\eta^q)$ when its absolute value is at most a fixed multiple of $\eta^q$ for all small $\eta$"),
    (r"$o(\cdot)$",
     r"a quantity is $o(\eta^q)$ when its ratio to $\eta^q$ tends to 0 as $\eta \to 0$"),
    (r"$\operatorname{eps}$", r"float32's machine epsilon: $1 + \operatorname{eps}$ is the next float32 above 1"),
]


def notation() -> pd.DataFrame:
    """The book's symbols, one meaning each (the meanings in the document's language)."""
    return pd.DataFrame({t("meaning"): [t(m) for _, m in NOTATION]},
                        index=pd.Index([s for s, _ in NOTATION], name=t("symbol")))
