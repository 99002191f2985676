r"""Numbers as the report prints them, in prose and in table cells: 1.8 × 10⁻⁷, never 1.8e-07.

`num(x, spec)` takes Python's format spec (".3e", "+.1e", ".4g", "f", ...), so the digits are
exactly Python's; an exponent becomes TeX math, `${1.8 \times 10^{-7}}$`:

- 10ⁿ alone for an exact power of ten (a config's 1e-6: 10⁻⁶; 10 for n = 1), × 10⁰ dropped;
- zero is 0 under an e spec (its mantissa digits say nothing); None, NaN and ±inf are "—";
- a number without an exponent stays text, its minus sign U+2212: TeX may break a line after
  a hyphen, never after a minus sign, nor inside the formula, which is one brace group (in
  Typst, render/math.lua sets such a formula as one box).

The result is `Markdown`, a str that Quarto and the built-in engine insert into the page as
Markdown: an inline `{python}` str is escaped instead (Quarto 1.7's asEscapedMarkdown: its `\`
and braces would show). Table cells hold num's results as they are (sgdlab.notebook sizes a
column by `plain`, what a formula shows); `minus_signs` gives the other numbers of a cell their
minus sign. Numbers the article printed (`loss 0.000049`) keep its digits: they are not num's.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable

from .i18n import t

SUPERSCRIPT = str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹")
MISSING = "—"
MINUS = "\N{MINUS SIGN}"
# What num writes for a number with an exponent; groups: sign, mantissa (absent for 10ⁿ), exponent.
MATH = re.compile(r"\$\{([-+]?)(?:(\d+(?:\.\d+)?) \\times )?10\^\{(-?\d+)\}\}\$")


class Markdown(str):
    """A str whose inline `{python}` value is its Markdown (IPython's text/markdown), not escaped text."""

    def _repr_markdown_(self) -> str:
        return str(self)


def num(x: float | None, spec: str = ".4g") -> Markdown:
    """x formatted by spec, an exponent written × 10ⁿ in math (module docstring)."""
    if x is None or not math.isfinite(x):
        return Markdown(MISSING)
    text = format(x, spec)
    if "e" not in text:
        return Markdown(text.replace("-", MINUS))
    mantissa, exponent = text.split("e")
    n = int(exponent)
    sign = mantissa[0] if mantissa[0] in "+-" else ""
    mantissa = mantissa.lstrip("+-")
    if float(mantissa) == 0:
        return Markdown("0")
    if n == 0:
        return Markdown(sign.replace("-", MINUS) + mantissa)
    if math.isclose(abs(x), 10.0**n, rel_tol=1e-9):  # an exact power: its trailing zeros say nothing
        return Markdown(f"{sign.replace('-', MINUS)}10" if n == 1 else f"${{{sign}10^{{{n}}}}}$")
    return Markdown(f"${{{sign}{mantissa} \\times 10^{{{n}}}}}$")


def or_list(items: Iterable[str]) -> Markdown:
    """The items joined by "or" in the document's language (i18n.t: "a or b", in Chinese "a 或 b")."""
    return Markdown(t(" or ").join(items))


# A hyphen-minus that is a number's sign: not after a word, a point or a bracket (x-1, 2026-12, f(x)-1).
SIGN = re.compile(r"(?<![\w.)\]])-(?=\.?\d)")


def within(x: float, bound: float) -> Markdown:
    """x to the decimal of bound's leading digit: the digits a value known within ±bound carries."""
    decimals = max(0, -math.floor(math.log10(bound)))
    return num(x, f".{decimals}f")


def minus_signs(text: str) -> str:
    """Markdown text with each number's hyphen-minus sign written U+2212, outside code and math."""
    parts = re.split(r"(`[^`]*`|\$[^$]*\$)", text)  # odd parts: code spans and formulas, kept
    return "".join(p if i % 2 else SIGN.sub(MINUS, p) for i, p in enumerate(parts))


def plain(text: str) -> str:
    """text with each of num's formulas as a reader sees it (4.1 × 10⁻¹⁵): for widths and tests."""
    def shown(m: re.Match) -> str:
        sign, mantissa, n = m.groups()
        power = "10" + n.translate(SUPERSCRIPT)
        return sign.replace("-", MINUS) + (f"{mantissa} × {power}" if mantissa else power)

    return MATH.sub(shown, text)


def _last_digit(se: float, digits: int) -> int:
    """The decimal exponent q of the last of `digits` significant digits of se, after rounding (0.0995 → 0.10)."""
    q = math.floor(math.log10(se)) - (digits - 1)
    if round(se / 10.0**q) >= 10**digits:  # rounding carried into a new leading digit
        q += 1
    return q


def mean_se(mean: float | None, se: float | None, digits: int | None = None) -> Markdown:
    """ "−0.003 ± 0.011": a mean ± its standard error, with only the digits the error supports.

    The se keeps `digits` significant digits; by default one, or two when it starts with 1 or 2
    (there one digit would move it by up to a third). The mean is rounded to the se's last digit.
    Both are num's numbers: plain decimals while that last digit is 10⁻⁶ or coarser and the larger of
    the two is between 10⁻⁴ and 10⁵ (0.008405 ± 0.000005), otherwise each × 10ⁿ, the mean with as
    many digits as reach down to the se's last one.
    A zero se keeps the mean's num(mean) digits ("… ± 0"); a missing or infinite value is "—".
    """
    if mean is None or se is None or not (math.isfinite(mean) and math.isfinite(se)) or se < 0:
        return Markdown(MISSING)
    if se == 0:
        return Markdown(f"{num(mean)} ± 0")
    if digits is None:
        q = _last_digit(se, 2)
        digits = 2 if round(se / 10.0**q) < 30 else 1
    q = _last_digit(se, digits)
    m, s = round(mean / 10.0**q) * 10.0**q, round(se / 10.0**q) * 10.0**q
    if q >= -6 and 1e-4 <= max(abs(m), s) < 1e5:
        places = max(0, -q)
        return Markdown(f"{num(m + 0.0, f'.{places}f')} ± {num(s, f'.{places}f')}")
    if m == 0:
        shown = "0"
    else:
        shown = num(m, f".{max(0, math.floor(math.log10(abs(m))) - q)}e")
    return Markdown(f"{shown} ± {num(s, f'.{digits - 1}e')}")
