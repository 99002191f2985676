"""Figures and tables in the reader's language: which edition's chapter this process draws, its words, a CJK font.

- `language()`: `SGDLAB_LANG` when set, else the language of the document a kernel executes. Quarto
  gives every kernel `QUARTO_DOCUMENT_FILE` (the built-in engine does the same), and a translation
  is named `X.<lang>.qmd` (render/editions.py). So a chapter that is not translated yet keeps its
  English figures in the Chinese edition, like its text, and Quarto's freeze, which keeps a
  chapter's outputs by its file, is right for both editions.
- `t(text)`: a figure's or table's words in that language, from `assets/words-<lang>.yml`; symbols,
  numbers and any text not listed come back unchanged. A label with a value in it is looked up as
  its template: `t("SGD ({})").format(name)`.
- `use_fonts()`: for Chinese, Noto Sans SC from the `pylopdf-fonts-zh-cn` wheel (a dependency: no
  system font is assumed) registered with matplotlib and put after DejaVu Sans in `font.family`:
  Latin letters, digits and symbols keep the English figures' glyphs, and matplotlib falls back to
  Noto for each CJK character. Mathtext does not fall back (it sets the words around `$…$` in the
  first family's file only), so `fit_fonts(fig)`, called as a figure is drawn, puts Noto first for
  the texts that mix Chinese and math; the math itself keeps its fonts.
"""

from __future__ import annotations

import functools
import os
import re
from importlib import resources

import yaml

LANGUAGES = ("en", "zh")
ENV = "SGDLAB_LANG"
TRANSLATION = re.compile(r"\.([A-Za-z]+)\.qmd$")
FONT_FAMILY = ["DejaVu Sans", "Noto Sans SC"]
CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")


def language(environ: dict | None = None) -> str:
    """The language of this process's figures: SGDLAB_LANG, else that of QUARTO_DOCUMENT_FILE, else en."""
    env = os.environ if environ is None else environ
    explicit = env.get(ENV, "")
    if explicit:
        if explicit not in LANGUAGES:
            raise ValueError(f"{ENV}={explicit!r}: use one of {', '.join(LANGUAGES)}")
        return explicit
    m = TRANSLATION.search(env.get("QUARTO_DOCUMENT_FILE", ""))
    return m.group(1) if m and m.group(1) in LANGUAGES else "en"


@functools.cache
def vocabulary(lang: str) -> dict[str, str]:
    """English text -> its translation, for one language (empty for English)."""
    if lang == "en":
        return {}
    text = resources.files("sgdlab").joinpath("assets", f"words-{lang}.yml").read_text(encoding="utf-8")
    return {str(k): str(v) for k, v in (yaml.safe_load(text) or {}).items()}


def t(text: str, lang: str | None = None) -> str:
    """text in the current language (unchanged when English, or when it has no translation)."""
    return vocabulary(lang or language()).get(text, text)


def words(keys: list[str], lang: str | None = None) -> dict[str, str]:
    """The translations of keys that have one, for a script that looks its words up itself (explore.js)."""
    found = vocabulary(lang or language())
    return {k: found[k] for k in keys if k in found}


@functools.cache
def _register_cjk_font() -> bool:
    try:
        import pylopdf_fonts_zh_cn as zh
    except ImportError:
        return False
    from matplotlib import font_manager

    font_manager.fontManager.addfont(str(zh.sans_path()))
    return True


_english_family: list | None = None  # font.family before Chinese figures changed it


def use_fonts() -> None:
    """Give matplotlib the fonts of the current language: before a figure is drawn, and before a cached
    figure's key is taken (display.py), whose rcParams must be those it is drawn with."""
    global _english_family
    if language() == "zh" and _register_cjk_font():
        import matplotlib

        if _english_family is None:
            _english_family = list(matplotlib.rcParams["font.family"])
        matplotlib.rcParams["font.family"] = FONT_FAMILY
    elif _english_family is not None:  # back to English in the same process (tests, a reader's notebook)
        import matplotlib

        matplotlib.rcParams["font.family"], _english_family = _english_family, None


def fit_fonts(fig) -> None:
    """Before a Figure is drawn: Noto Sans SC first for each text that mixes Chinese and `$…$` math."""
    if language() != "zh" or not _register_cjk_font():
        return
    from matplotlib.text import Text

    for text in fig.findobj(Text):
        s = text.get_text()
        if "$" in s and CJK.search(s):
            text.set_fontfamily(FONT_FAMILY[::-1])
