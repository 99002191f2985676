"""Tables the report shows, built from experiment results (formatted here, not in the report)."""

from __future__ import annotations

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
        ("toy", t("one example's (ŷ − y)² at x = 3: L_B"), 1, toy.step, toy.batch_curvature),
        ("toy", t("D2L's ½ mean loss on the toy"), 0.5, 2 * toy.step, toy.L / 2),
    ]
    return pd.DataFrame({t("loss"): [r[1] for r in rows], "L": [num(r[4], ".4g") for r in rows],
                         "2/L": [num(2 / r[4], ".4g") for r in rows],
                         t("step η on it"): [num(r[3], ".4g") for r in rows],
                         "η·L": [num(r[3] * r[4], ".3g") for r in rows]},
                        index=pd.Index([t(r[0]) for r in rows], name=t("problem")))


NOTATION = [  # symbol, meaning (Markdown, math in $…$): one meaning each, across the book; words-zh.yml has each
    (r"$n$, $p$", r"number of examples; number of parameters ($b$'s column of ones included)"),
    (r"$x_i$, $y_i$, $X$", r"example $i$'s input row (with its 1 for $b$) and label; the $n \times p$ matrix of rows"),
    (r"$\theta$, $\theta^*$, $\theta_\text{true}$",
     r"parameters $(w, b)$; the least-squares minimiser; the parameters that made the labels"),
    (r"$\ell$, $f$, $f_i$, $f^*$",
     r"the training loss (chapter 3 calls any loss $f$); one example's loss; the least loss, the floor"),
    (r"$\gamma$", r"the scale of a squared loss $f = (\gamma/n)\lVert X\theta - y\rVert^2$: ½ (D2L), 1 (the toy)"),
    (r"$r_i$", r"residual at the optimum, $x_i^\top\theta^* - y_i$"),
    (r"$\varepsilon$, $\sigma$", r"label noise; its standard deviation"),
    (r"$P$", r"the orthogonal projection onto the columns of $X$"),
    (r"$H$, $H_B$", r"the Hessian of the loss at hand, $(2\gamma/n)X^\top X$ for a squared loss; of a batch's loss"),
    (r"$L$, $\mu$, $\kappa$", r"$\lambda_{\max}(H)$ (smoothness), $\lambda_{\min}(H)$ (strong convexity), $L/\mu$"),
    (r"$L_B$", r"the largest curvature of a mini-batch's mean loss"),
    (r"$\lambda_i$, $v_i$, $\zeta_i$",
     r"eigenvalues and unit eigenvectors of $H$; the coordinates of $\theta_0 - \theta^*$ along the $v_i$"),
    (r"$\eta$, `lr`", r"the step on the mean loss of a batch; the code's learning rate (the toy steps lr/10)"),
    (r"$B$, $\mathcal{B}$", r"batch size; a batch"),
    (r"$g$, $g_B$", r"a stochastic gradient; the mini-batch gradient"),
    (r"$\xi$", r"gradient noise $g - \nabla f$ ($\xi_B$: a batch's mean gradient at $\theta^*$, where $\nabla f = 0$)"),
    (r"$\Sigma_1$", r"the covariance of one example's gradient at $\theta^*$"),
    (r"$e$, $\delta$", r"the error $w - w^*$ (a scalar: the toy); $\theta - \theta^*$ (a vector)"),
    (r"$a_i$, $c_i$", r"one toy step $e \leftarrow a_i e + c_i$: factor $1 - 2\eta x_i^2$, push $-2\eta x_i r_i$"),
    (r"$A(\eta)$, $c(\pi)$",
     r"one toy epoch in the order $\pi$: $e \leftarrow A(\eta)\,e + c(\pi)$, $A(\eta) = \prod_i a_i$"),
    (r"$C$", r"the stationary covariance of $\delta$ under constant-step SGD"),
    (r"$\mathcal{T}_\eta$", r"the map of $\mathbb{E}\,\delta\delta^\top$ over one SGD step (independent batches)"),
    (r"$d$, $h$", r"a unit direction; a short step length along it"),
    (r"$\rho$", r"the contraction factor of the error per gradient step"),
    (r"$\nu$, $\nu_G$, $M$, $M_V$", r"the constants of Bottou, Curtis and Nocedal's fixed-step theorem"),
    (r"$\operatorname{Var}[g]$",
     r"of a random vector: $\mathbb{E}\lVert g - \mathbb{E}g\rVert^2 = \operatorname{tr}\operatorname{Cov}(g)$"),
    (r"$\alpha$, $\beta$", r"the heavy ball's step and momentum"),
    (r"$\Lambda$, $\tau$", r"the features' covariance (double descent); a ridge penalty"),
    (r"$\operatorname{eps}$", r"float32's machine epsilon: $1 + \operatorname{eps}$ is the next float32 above 1"),
]


def notation() -> pd.DataFrame:
    """The book's symbols, one meaning each (the meanings in the document's language)."""
    return pd.DataFrame({t("meaning"): [t(m) for _, m in NOTATION]},
                        index=pd.Index([s for s, _ in NOTATION], name=t("symbol")))
