"""sgdlab.fmt: numbers as 1.8 × 10⁻⁷ in math, Python's digits, one unbreakable unit, inserted as Markdown."""

from __future__ import annotations

import math
import re
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from sgdlab import notebook
from sgdlab.fmt import MATH, MINUS, Markdown, mean_se, minus_signs, num, plain


def value(shown: str) -> float:
    """The number a reader reads in num's output (the inverse of num, for the round trip)."""
    m = MATH.fullmatch(shown)
    if m:
        sign, mantissa, n = m.groups()
        return float(f"{sign}{mantissa or 1}e{n}")
    return float(shown.replace(MINUS, "-"))


@pytest.mark.parametrize("x, spec, shown", [
    (1.8e-7, ".1e", r"${1.8 \times 10^{-7}}$"),
    (6.475295e-08, ".6e", r"${6.475295 \times 10^{-8}}$"),
    (4.97e-14, ".2e", r"${4.97 \times 10^{-14}}$"),
    (-1.3e-4, "+.1e", r"${-1.3 \times 10^{-4}}$"),  # TeX's minus, inside the group
    (4.3e-5, "+.1e", r"${+4.3 \times 10^{-5}}$"),
    (5.25e4, ".3g", r"${5.25 \times 10^{4}}$"),
    (1e-6, ".1e", r"${10^{-6}}$"),  # an exact power of ten: 10⁻⁶, as the config says it
    (1e-5, "g", r"${10^{-5}}$"),
    (1.04e-6, ".1e", r"${1.0 \times 10^{-6}}$"),  # rounds to 1.0, but is not a power of ten
    (10.0, ".1e", "10"),
    (25.0, ".1e", r"${2.5 \times 10^{1}}$"),  # an e spec stays scientific (table columns line up)
    (0.25, ".1e", r"${2.5 \times 10^{-1}}$"),
    (3.14159, ".2e", "3.14"),  # × 10⁰ dropped
    (-3.14159, ".2e", "−3.14"),
    (0.0, ".3e", "0"),  # zero's mantissa digits under an e spec say nothing
    (-0.0, ".1e", "0"),
    (-0.0119, "+.4f", "−0.0119"),  # no exponent: text, with the minus sign
    (0.000049, "f", "0.000049"),  # the article's printed digits stay as they are
    (-2.65, ".3g", "−2.65"),
    (Fraction(-1, 50), "", "−1/50"),
    (None, ".3e", "—"),
    (math.nan, ".3e", "—"),
    (math.inf, "g", "—"),
])
def test_num(x, spec, shown):
    assert num(x, spec) == shown


def test_plain_reads_the_formulas_as_text():
    assert plain(num(4.076e-15, ".1e")) == "4.1 × 10⁻¹⁵"
    assert plain(num(1e-6, ".1e")) == "10⁻⁶"
    assert plain(f"{num(-1.3e-4, '+.1e')} ± {num(5.2e-5, '.1e')}") == "−1.3 × 10⁻⁴ ± 5.2 × 10⁻⁵"


def test_an_inline_value_is_inserted_as_markdown_not_escaped():
    """Quarto 1.7 escapes an inline str (asEscapedMarkdown: `\\times` would show); num's value is Markdown."""
    formula = num(1.8e-7, ".1e")
    assert isinstance(formula, Markdown)
    assert notebook.inline_markdown(formula) == r"${1.8 \times 10^{-7}}$"
    assert notebook.inline_markdown(str(formula)) != str(formula)  # the same text as a str would break
    assert notebook.inline_markdown(Markdown(" or ".join([num(1.3e-7, ".1e"), num(3.5e-7, ".1e")]))) == \
        r"${1.3 \times 10^{-7}}$ or ${3.5 \times 10^{-7}}$"


def test_minus_signs_outside_code_and_math():
    assert minus_signs("(0.349, -0.580) and -.5") == "(0.349, −0.580) and −.5"
    assert minus_signs("toy-clean, 2026-12-02, f(x)-1, x[1]-2, -") == "toy-clean, 2026-12-02, f(x)-1, x[1]-2, -"
    assert minus_signs(r"`f(-1)` ${-1.3 \times 10^{-4}}$ -2") == r"`f(-1)` ${-1.3 \times 10^{-4}}$ −2"


finite = st.floats(allow_nan=False, allow_infinity=False, width=64)


@given(finite, st.integers(0, 8), st.sampled_from(["", "+"]))
def test_e_spec_round_trips_python_digits_with_mantissa_in_1_10(x, digits, sign):
    spec = f"{sign}.{digits}e"
    shown = num(x, spec)
    assert not re.search(r"\de[-+]?\d", shown)
    assert value(shown) == float(format(x, spec))  # exactly Python's rounding to the stated digits
    m = MATH.fullmatch(shown)
    if m and m[2]:
        assert 1 <= float(m[2]) < 10
        assert len(m[2].replace(".", "")) == digits + 1  # the stated significant digits, no more, no fewer
    if x < 0 and float(format(x, spec)) != 0:
        assert shown.startswith((MINUS, "${-"))  # a minus sign, never a hyphen TeX may break after


@given(finite, st.integers(1, 8))
def test_g_spec_round_trips_and_never_prints_e_notation(x, digits):
    shown = num(x, f".{digits}g")
    assert value(shown) == float(format(x, f".{digits}g"))
    assert MATH.fullmatch(shown) or re.fullmatch(rf"{MINUS}?\d+(\.\d+)?", shown)


@given(finite.filter(lambda x: x != 0))
def test_a_formula_is_one_brace_group(x):
    """What keeps TeX (and Typst, through render/math.lua) from breaking a line inside it."""
    shown = num(x, ".3e")
    if shown.startswith("$"):
        body = shown[1:-1]
        depth = [body[: i + 1].count("{") - body[: i + 1].count("}") for i in range(len(body))]
        assert body[0] == "{" and depth[-1] == 0 and min(depth[:-1]) > 0


@pytest.mark.parametrize("mean, se, shown", [
    (-0.0032, 0.011, "−0.003 ± 0.011"),  # the se starts with 1: two digits, the mean to its last
    (0.016640, 0.0057, "0.017 ± 0.006"),  # starts with 5: one digit
    (0.0166404, 1.5e-6, r"${1.66404 \times 10^{-2}}$ ± ${1.5 \times 10^{-6}}$"),  # finer than 10⁻⁴: × 10ⁿ
    (-3.22e-5, 1.1e-4, "−0.00003 ± 0.00011"),
    (8.405e-3, 4.9e-6, "0.008405 ± 0.000005"),
    (2.931e-7, 1.94e-6, r"${3 \times 10^{-7}}$ ± ${1.9 \times 10^{-6}}$"),  # both below 10⁻⁴: × 10ⁿ
    (2.931e-5, 1.94e-6, r"${2.93 \times 10^{-5}}$ ± ${1.9 \times 10^{-6}}$"),
    (0.19342, 0.0296, "0.19 ± 0.03"),  # 0.0296 rounds to 0.030, which starts with 3: one digit
    (0.5, 0.0995, "0.50 ± 0.10"),  # rounding carries into a new leading digit, 1: two digits
    (12346.0, 230.0, "12350 ± 230"),
    (-0.0004, 0.011, "0.000 ± 0.011"),  # a mean below the se's last digit is 0, without a sign
    (-4e-7, 1.1e-5, r"0 ± ${1.1 \times 10^{-5}}$"),
    (0.25, 0.0, "0.25 ± 0"),
    (float("nan"), 0.1, "—"),
])
def test_mean_se(mean, se, shown):
    assert mean_se(mean, se) == shown


@given(st.floats(-1e6, 1e6), st.floats(1e-9, 1e3), st.sampled_from([1, 2, 3]))
def test_mean_se_keeps_the_mean_within_half_a_last_digit_of_the_se(mean, se, digits):
    m, s = (value(part) for part in mean_se(mean, se, digits).split(" ± "))
    q = math.floor(math.log10(s)) - (digits - 1)  # the shown se's last digit
    assert round(s / 10.0**q) < 10**digits  # no more significant digits than asked
    # rounded to the se's last digit: within half of it, plus float64 rounding (10.0**q, one division, one
    # product, the read-back: 5 roundings of at most u·(|mean| + 10^q) each; 8 of them bound it)
    slack = 8 * 2.0**-53 * (abs(mean) + se + 10.0**q)
    assert abs(m - mean) <= 10.0**q / 2 + slack
    assert abs(s - se) <= 10.0**q / 2 + slack
