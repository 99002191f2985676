"""Explorable figures: the grids are engine runs, the page embeds exactly them, and both engines
choose the output form Quarto 1.7 does (text/markdown: raw HTML for the web, the PNG elsewhere)."""

from __future__ import annotations

import json
import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from bounds import drift, gamma, unit_roundoff

from sgdlab import experiments, explore, interactive, norms, registry, taylor
from sgdlab.render.output import data_image, display_mime, drop_repeated_assets, markdown_for

U64 = unit_roundoff(torch.float64)
SMALL_FLOOR = explore.FloorGridConfig(epochs=30, tail=10, lr_half_octaves=(-4, 0, 7), loss_points=8)
SMALL_STEPS = explore.StepsGridConfig(steps=120, ratios=(0.5, 1.95, 2.5, 3.0), path_steps=10)


@pytest.fixture(scope="module")
def floor():
    return explore.floor_grid(SMALL_FLOOR)


@pytest.fixture(scope="module")
def steps():
    return explore.steps_grid(SMALL_STEPS)


def _embedded(fig: interactive.Explorable) -> dict:
    m = re.search(r'<script type="application/json" class="sx-data">(.*?)</script>', fig.html(), re.S)
    return json.loads(m.group(1))


# --------------------------------------------------------------------------- the grids


def test_floor_grid_article_frame_replays_the_article_run(floor):
    """(3.1, w·x, reshuffled, constant, η = 0.03) is the article's toy-noisy run: same orders, same update
    (lr 0.3 / divisor 10 there, η = 0.03 / 1 here: equal up to float32 rounding)."""
    f = floor.frames
    # np.isclose only picks the grid's η = 0.03 (the grid is 0.03·2^(k/2): neighbours are 41 % away)
    k = f.index[(f.labels == "3.1") & (f.model == "w·x") & (f.sampling == "reshuffled") & (f.schedule == "constant")
                & np.isclose(f.lr, 0.03)][0]
    toy = experiments.toy("toy-noisy", experiments.ToyConfig(noisy=True, epochs=SMALL_FLOOR.epochs))
    last = toy.history.w.to_numpy()[-floor.trace.shape[1]:]
    # (0.3·g)/10 and 0.03·g round differently: bounds.py's drift model, 16 ulps of |w| ≤ 1.03
    np.testing.assert_allclose(floor.trace[k], last, rtol=0, atol=drift(1.03, torch.float32, 16))


def test_floor_grid_averaging_and_divergence(floor):
    f = floor.frames
    assert len(f) == 3 * 2 * 2 * 2 * len(SMALL_FLOOR.lr_half_octaves)
    blown = f.diverged_step >= 0
    assert blown.any() and (f.lr[blown] > 0.2).all()  # only past the edge, and each with its step
    assert f[blown].width.isna().all() and np.isfinite(f[~blown][["width", "offset", "final_loss"]]).all().all()
    # Polyak–Ruppert is the constant run's running mean: it diverges with it, at its step
    const, avg = f[f.schedule == "constant"], f[f.schedule == "Polyak–Ruppert"]
    assert (const.diverged_step.to_numpy() == avg.diverged_step.to_numpy()).all()
    steps = torch.tensor([[[1.0]], [[3.0]], [[5.0]]])
    assert explore._averaged(steps).flatten().tolist() == [1.0, 2.0, 3.0]


def test_floor_grid_outcomes_classify_each_frame():
    """flagged by the engine; else grows when the final loss exceeds the starting loss; else ends below its start."""
    frames = pd.DataFrame({"labels": ["3.1"] * 3, "model": ["w·x"] * 3, "sampling": ["with replacement"] * 3,
                           "schedule": ["constant", "constant", "Polyak–Ruppert"], "lr": [0.1, 0.2, 0.2],
                           "floor": [1.0, 1.0, 1.0], "final_loss": [2.0, math.nan, 9.0], "diverged_step": [-1, 7, -1]})
    loss = np.array([[5.0, 2.0], [5.0, np.inf], [5.0, 9.0]])
    grid = explore.FloorGridResult(SMALL_FLOOR, frames, np.zeros((3, 2)), np.array([0, 1]), loss)
    assert grid.outcomes().tolist() == ["ends below its start", "flagged", "grows"]
    assert grid.count("flagged", lr=0.2) == (1, 2) and grid.count("grows", lr=(0.1, 0.2)) == (1, 3)
    assert grid.count("grows", schedule="constant") == (0, 2)
    assert grid.largest_excess(schedule="constant", lr=0.1) == 1.0


def test_floor_grid_outcomes_on_the_engine():
    """At η = 0.34 (past every edge: the float32 runs overflow within 100 epochs) the constant and averaged frames
    are flagged; the decaying step never is, and at η = 0.0075 nothing is."""
    config = explore.FloorGridConfig(epochs=100, tail=10, lr_half_octaves=(-4, 7), loss_points=8)
    floor = explore.floor_grid(config)
    low, top = config.effective_lrs
    assert floor.count("flagged", lr=top, schedule=("constant", "Polyak–Ruppert")) == (16, 16)
    assert floor.count("flagged", schedule="Robbins–Monro") == (0, 16)
    assert floor.count("flagged", lr=low) == (0, 24)
    assert floor.loss_epochs[0] == 0 and (floor.loss[:, 0] > 3).all()  # the start, w = 2: loss 3.5 or 3.35


def test_floor_grid_samples_with_replacement():
    orders = explore._grid_orders(SMALL_FLOOR, [0, 1])  # (E, K, n)
    assert all(sorted(o.tolist()) == [0, 1, 2, 3] for o in orders[:, 0])  # reshuffled: permutations
    assert any(len(set(o.tolist())) < 4 for o in orders[:, 1])  # with replacement: repeats


def test_floor_grid_clean_constant_runs_reach_the_floor(floor):
    f = floor.frames
    ok = f[(f.labels == "clean") & (f.model == "w·x") & (f.schedule == "constant")
           & np.isclose(f.lr, 0.03)]  # picks η = 0.03 (neighbours 41 % away)
    # an epoch multiplies w − 1 by Π(1 − 2ηx²) ≈ 0.33 (both samplings shrink it alike), so 30 epochs leave 1e-14 of
    # it, or float32's stall near w = 1, a loss of 3.5·ulp(1)² ≈ 5e-14: far below 1e-9
    assert len(ok) == 2 and (ok.final_loss < 1e-9).all() and (ok.floor == 0).all()  # w·x + b: slower (κ ≈ 14)


def test_steps_grid_diverges_exactly_past_two_over_l(steps):
    r = steps.runs
    assert ((r.diverged_step >= 0) == (r.ratio > 2)).all()
    # the article's η·L, first: one product and the ratio's own rounding (γ₂)
    assert np.isclose(r.ratio.min(), explore.ARTICLE_LR * r.L.iloc[0], rtol=gamma(2, U64), atol=0)


def test_steps_grid_names_each_slices_own_l(steps):
    # the baseline's (w1, w2) slice: λ_max of the 2 × 2 block of the full loss's H, below the full L (interlacing)
    slice_L = steps.L("baseline (w1, w2), b = b*")
    base, _ = taylor.baseline_problem(steps.config.seed)
    block = base.hessian[:2, :2].double()
    # two float64 Gram matrices of n products each: every entry within γ_n of (|X|ᵀ|X|)/n, twice; a symmetric
    # eigenvalue moves by at most the perturbation's Frobenius norm; eigvalsh adds a few units of U64·‖H‖
    X = base.X[:, :2].double().abs()
    entry_bound = 2 * gamma(len(X), U64) * torch.linalg.matrix_norm(X.T @ X / len(X))
    tol = float(entry_bound + 16 * U64 * torch.linalg.matrix_norm(block, ord=2))
    assert abs(slice_L - float(torch.linalg.eigvalsh(block).max())) <= tol
    assert slice_L < float(torch.linalg.eigvalsh(base.hessian.double()).max())


def test_steepest_directions_reach_minus_the_dual_norm():
    g = torch.tensor([0.3, -1.2], dtype=torch.float64)
    assert torch.equal(explore.steepest_linf(g), torch.tensor([-1.0, 1.0], dtype=torch.float64))
    # dual of ℓ∞ is ℓ1: products with ±1 are exact, the two sums may round differently: γ₁
    assert float(g @ explore.steepest_linf(g)) == pytest.approx(-float(g.abs().sum()), rel=gamma(1, U64), abs=0)
    H = torch.tensor([[2.0, 0.5], [0.5, 1.0]], dtype=torch.float64)
    ones = torch.ones(33, dtype=torch.float64)
    # cos and sin within an ulp or two, a norm of 2 terms and a division: γ₈ relative
    for name, p in (("ℓ2", 2), ("ℓ1", 1), ("ℓ∞", math.inf)):
        ball = explore._ball(name, H, 32)
        assert torch.allclose(torch.linalg.vector_norm(ball, ord=p, dim=1), ones, rtol=gamma(8, U64), atol=0)
    # through eigh (backward stable, H^(-1/2) carries κ(H) ≈ 2.6 times γ₁₆) and the quadratic form: 4κ·γ₁₆
    ev = torch.linalg.eigvalsh(H)
    tol = 4 * float(ev[-1] / ev[0]) * gamma(16, U64)
    ball = explore._ball("H", H, 32)
    assert torch.allclose(torch.einsum("ki,ij,kj->k", ball, H, ball), ones, rtol=tol, atol=0)
    d = norms.steepest_hnorm(g, H)
    assert torch.allclose(d @ H @ d, torch.tensor(1.0).double(), rtol=tol, atol=0)


def test_registered_with_summaries():
    for name in ("explore-floor", "explore-steps"):
        assert name in registry.EXPERIMENTS
    r = registry.EXPERIMENTS["explore-floor"].run(SMALL_FLOOR)
    s = r.summary()
    assert {"frames", "diverged", "article_width", "article_offset", "article_final_loss", "article_floor"} <= set(s)
    json.dumps(s)


# --------------------------------------------------------------------------- the page: data, form, offline


def test_embedded_floor_data_are_the_results(floor):
    fig = interactive.floor_figure(floor)
    data = _embedded(fig)["frames"]
    f = floor.frames
    assert data["diverged"] == f.diverged_step.tolist()
    assert data["width"] == interactive.rounded(f.width) and data["final"] == interactive.rounded(f.final_loss)
    assert data["dw"] == interactive.rounded(floor.trace - f.w_star.to_numpy()[:, None], 3)
    assert data["gap"] == interactive.rounded(floor.loss - f.floor.to_numpy()[:, None], 3)
    k = int(np.argmax(f.diverged_step.to_numpy() < 0))
    # three significant digits: within half a unit of the third, 5e-3 relative, plus the decimal round trip's u
    assert data["dw"][k][-1] == pytest.approx(floor.trace[k, -1] - f.w_star[k], rel=5e-3 + U64, abs=0)


def test_embedded_steps_data_are_the_results(steps):
    data = _embedded(interactive.steps_figure(steps))
    for p, problem in enumerate(data["problems"]):
        assert problem["diverged"] == steps.runs.diverged_step[steps.runs.problem == explore.PROBLEMS[p]].tolist()
        xs, ys = problem["paths"][0]
        assert xs == interactive.rounded(steps.paths[p, 0, :, 0], 4)
        assert ys == interactive.rounded(steps.paths[p, 0, :, 1], 4)


def test_initial_state_is_the_article_setting(floor, steps):
    html = interactive.floor_figure(floor).html()
    lr = re.search(r'data-control="lr"[^>]*', html).group(0)
    assert 'aria-valuetext="0.03"' in lr
    assert re.search(r'<option value="1" selected>last label 3.1', html)
    steps_html = interactive.steps_figure(steps).html()
    assert re.search(r'<input type="range" id="[\w-]+-ratio" min="0" max="\d+" step="1" value="0"', steps_html)


def test_bundle_is_the_form_quarto_passes_through(floor):
    """No text/html nor application/javascript key (either makes Quarto add require.js and jQuery from a
    CDN); text/markdown wins in both formats; the HTML is a raw block, the PNG shows outside HTML only."""
    bundle = interactive.floor_figure(floor)._repr_mimebundle_()
    assert set(bundle) == {"text/markdown", "image/png", "text/plain"}
    assert display_mime(bundle, "html") == display_mime(bundle, "typst") == "text/markdown"
    html_md, pdf_md = markdown_for(bundle["text/markdown"], "html"), markdown_for(bundle["text/markdown"], "typst")
    assert html_md.startswith("```{=html}\n") and "data:image/png" not in html_md
    assert data_image(pdf_md) == interactive.floor_figure(floor).png


def test_display_mime_follows_quarto_for_ordinary_outputs():
    figure = {"image/png": "...", "text/plain": "<Figure>"}
    frame = {"text/html": "<table><tr><td>1</td></tr></table>", "text/plain": "df"}
    markdown = {"text/markdown": "| a |\n|---|\n| 1 |", "text/plain": "md"}
    for fmt in ("html", "typst"):
        assert display_mime(figure, fmt) == "image/png"
        assert display_mime(frame, fmt) == "text/html"
        assert display_mime(markdown, fmt) == "text/markdown"
    assert display_mime({"text/html": "<b>x</b>", "text/plain": "x"}, "typst") == "text/plain"


def test_figure_html_fetches_nothing(floor, steps):
    for fig in (interactive.floor_figure(floor), interactive.steps_figure(steps)):
        html = fig.html()
        urls = set(re.findall(r"https?://[^\s\"'<>)]+", html))
        assert urls <= {"http://www.w3.org/2000/svg"}, urls  # the SVG namespace is a name, never fetched
        assert not re.search(r"\b(src|href)=|@import|url\(", html.replace('url(#"', ""))
        assert html.count('id="sgdlab-explore-js"') == 1 and html.count('id="sgdlab-explore-css"') == 1


def test_repeated_assets_are_kept_once():
    page = '<style id="a">x</style><p>1</p><style id="a">x</style><script id="b">y</script><script id="b">y</script>'
    assert drop_repeated_assets(page) == '<style id="a">x</style><p>1</p><script id="b">y</script>'


def test_conditional_content_by_format():
    md = '```{=html}\n<b>web</b>\n```\n\n::: {.content-visible when-format="pdf"}\nprint\n:::\n'
    assert markdown_for(md, "html").strip() == "```{=html}\n<b>web</b>\n```"
    assert markdown_for(md, "typst").strip() == "print"
