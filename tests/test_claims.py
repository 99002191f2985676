"""The claims registry: universal claims hold, the text and the registry cite each other, each seed's row is
that seed's own experiment, the same seeds give the same numbers, and `sgdlab claims` keeps its contract."""

import json
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from bounds import gamma, unit_roundoff

from sgdlab import claims, cli, data, experiments, explore, registry, seeds, steepest, theory
from sgdlab._lazy import torch
from sgdlab.loss_floor import exact_least_squares
from sgdlab.render.book import load_book
from sgdlab.render.crossref import number_book, parse_chapters

ROOT = Path(__file__).resolve().parents[1]
CITATION = re.compile(r"""\bclaim\(\s*["']([^"']+)["']\s*\)""")  # how a chapter cites a claim


def _citations() -> dict[str, set[str]]:
    """Claim ids cited per book file."""
    chapters = parse_chapters(load_book(ROOT))
    return {ch.rel: set(CITATION.findall((ROOT / ch.rel).read_text())) for ch, _ in chapters}


@pytest.mark.parametrize("claim_id", [c.id for c in claims.CLAIMS.values() if c.universal])
def test_every_universal_claim_holds_on_its_seeds(claim_id):
    checked = claims.check(claim_id)
    assert checked.n == claims.CLAIMS[claim_id].seeds >= 33 and checked.seeds[0] == seeds.ARTICLE_SEED
    assert checked.failing == [] and checked.count == checked.n


def test_every_claim_is_cited_in_the_chapter_of_its_section_and_every_citation_is_a_claim():
    cited = _citations()
    labels = number_book(parse_chapters(load_book(ROOT))).labels
    assert set().union(*cited.values()) - claims.CLAIMS.keys() == set()  # a citation of no registered claim
    for c in claims.CLAIMS.values():
        assert c.section in labels, f"{c.id}: no section {c.section}"
        assert c.id in cited[labels[c.section].file], f"{c.id} is not cited in {labels[c.section].file}"


def test_every_claim_rests_on_a_registered_experiment_and_shares_its_seeds():
    """Claims on one batched experiment check the same seeds: a cold render computes each experiment once."""
    by_outcomes: dict = {}
    for c in claims.CLAIMS.values():
        assert c.experiment in registry.EXPERIMENTS
        assert by_outcomes.setdefault(c.outcomes, c.seeds) == c.seeds, c.id
        assert c.outcomes(seeds.first(2)).experiment == c.experiment


def test_same_seeds_same_numbers_and_a_seed_does_not_depend_on_its_batch():
    for outcomes in (seeds.toy_ends, seeds.explore_ends, seeds.baseline_ends, seeds.noise_sgd):
        small, again, large = outcomes((20, 21)), outcomes((20, 21)), outcomes((20, 21, 22))
        for name, value in small.values.items():
            assert np.array_equal(value, again.values[name]), (outcomes.__name__, name)
            assert np.array_equal(value, large.values[name][:2]), (outcomes.__name__, name)


def test_the_toy_seeds_are_the_toy_experiments_bit_for_bit():
    """The 30000-epoch runs are replayed from θ* over their last epochs (seeds.REPLAY): the same float32 run."""
    got = seeds.toy_ends((20, 21))
    for name in ("toy-noisy", "toy-bias"):
        toy = experiments.TOY_RUNS[name]
        ds64 = data.toy_data(True, dtype=torch.float64)
        fit = theory.least_squares(ds64.X, ds64.y, bias=toy.bias, loss="plain")
        for k, seed in enumerate(got.seeds):
            last = experiments.toy(name, replace(toy, seed=seed)).history.iloc[-1]
            theta = torch.tensor([last.w] + ([last.b] if toy.bias else []), dtype=torch.float64)
            assert float(theory.excess_loss(theta, fit)) == got.values[f"{name[4:]}_gap"][k]
    for name in ("toy-clean", "toy-piecewise"):
        want = [experiments.toy(name, replace(experiments.TOY_RUNS[name], seed=s)).first_zero_epoch for s in got.seeds]
        assert got.values[f"{name[4:]}_zero_epoch"].tolist() == want


def test_the_article_seed_is_the_books_own_run():
    """Seed 20's row is the number the book prints for seed 20: the grid's last w, the baseline, its L_B."""
    grid = explore.floor_grid()
    frames = grid.frames.reset_index(drop=True)
    ends = seeds.explore_ends((20,))
    w_star = float(exact_least_squares(data.TOY_X, data.TOY_Y_NOISY, bias=False)[0])
    for schedule, column in (("constant", "constant_excess"), ("Robbins–Monro", "rm_excess"),
                             ("Polyak–Ruppert", "averaged_excess")):
        row = frames.index[(frames.labels == "3.1") & (frames.model == "w·x") & (frames.sampling == "reshuffled")
                           & (frames.schedule == schedule) & np.isclose(frames.lr, explore.TOY_ETA)][0]
        w = float(grid.trace[row][-1])  # float32 w, widened
        assert ends.values[column][0] == 3.5 * (w - w_star) ** 2  # the gap: mean x² · (w − w*)², in float64
    # the cycle's width, w's mean range within an epoch over the last epochs (float32): the same ranges, their
    # mean of `tail` terms summed in float32 in possibly another order, γ_tail relative of the sum
    for sampling, column in (("reshuffled", "width_reshuffled"), ("with replacement", "width_replacement")):
        width = grid.at(sampling=sampling).width
        assert abs(ends.values[column][0] - width) <= gamma(grid.config.tail, unit_roundoff(torch.float32)) * width
    base = seeds.baseline_ends((20,))
    assert base.values["final_loss"][0] == experiments.baseline().summary()["final_loss"]
    assert base.values["batch_curvature"][0] == steepest.curvature().row("baseline").batch_curvature


def test_claims_json_has_the_documented_keys_and_a_bad_seed_count_is_one_line():
    out = subprocess.run([sys.executable, "-m", "sgdlab.cli", "claims", "--seeds", "3", "--json"],
                         capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    report = json.loads(out.stdout)
    assert report.keys() == {"seeds", "ok", "claims"} and report["seeds"] == 3 and report["ok"] is True
    assert [c["id"] for c in report["claims"]] == list(claims.CLAIMS)
    keys = {"id", "text", "section", "experiment", "universal", "statistic", "seeds", "first_seed", "holds",
            "failing_seeds", "mean", "se", "median", "q10", "q90", "article_seed", "article_value"}
    assert all(c.keys() == keys and c["seeds"] == 3 and c["first_seed"] == 20 for c in report["claims"])
    bad = subprocess.run([sys.executable, "-m", "sgdlab.cli", "claims", "--seeds", "1"], capture_output=True, text=True)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "--seeds" in bad.stderr


def test_a_universal_claim_that_fails_exits_1_naming_the_seed(monkeypatch, capsys):
    def outcomes(seed_list):
        return seeds.Outcomes("toy-clean", seed_list, {"x": np.array([float(s) for s in seed_list])})

    fake = claims.Claim("every-seed-below-21", "every seed is below 21", "sec-baseline", "toy-clean", outcomes,
                        "the seed", lambda v: v["x"], lambda v: v["x"] < 21, universal=True)
    monkeypatch.setattr(claims, "CLAIMS", {fake.id: fake})
    assert cli.main(["claims", "--seeds", "3"]) == cli.EXIT_CLAIM_FAILED
    out = capsys.readouterr()
    assert "holds in 1 of 3" in out.out
    assert out.err == ("sgdlab: claim every-seed-below-21 fails for seeds 21, 22;"
                       " the book says it holds for every seed\n")


def test_explore_constant_excess_is_the_mean_over_the_first_seeds():
    values = seeds.explore_ends(seeds.first(8)).values["constant_excess"]
    mean, se = claims.grid_constant_excess_over(8)
    assert mean == pytest.approx(float(values.mean()), rel=1e-12) and se == pytest.approx(
        float(values.std(ddof=1) / 8**0.5), rel=1e-12)  # the same sums, possibly in another order
