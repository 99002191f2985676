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
