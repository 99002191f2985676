"""Quarto's own words (reference names, captions, callout titles, ...) in the book's language.

Copied from quarto-cli 1.7.34, src/resources/language/_language.yml and _language-zh.yml, for the
keys the built-in engine writes, and checked against a real render with `lang: zh` (图 1.1, 章节 1,
定理 1.1 (标题), 证., 注记, 代码, 目录). A book's `language:` setting overrides them key by key, as
in Quarto (the Chinese edition sets tools-download, which Quarto's Chinese lacks).
"""

from __future__ import annotations

ENGLISH = {
    "crossref-fig-title": "Figure", "crossref-tbl-title": "Table", "crossref-eq-prefix": "Equation",
    "crossref-thm-title": "Theorem", "crossref-lem-title": "Lemma", "crossref-cor-title": "Corollary",
    "crossref-def-title": "Definition", "crossref-sec-prefix": "Section", "crossref-ch-prefix": "Chapter",
    "crossref-apx-prefix": "Appendix", "environment-proof-title": "Proof",
    "callout-note-title": "Note", "callout-tip-title": "Tip", "callout-warning-title": "Warning",
    "callout-important-title": "Important", "code-summary": "Code", "toc-title-document": "Table of contents",
    "tools-download": "Download", "section-title-appendices": "Appendices",
    "code-tools-source-code": "Source Code", "repo-action-links-edit": "Edit this page",
    "repo-action-links-source": "View source", "repo-action-links-issue": "Report an issue",
}
CHINESE = {
    "crossref-fig-title": "图", "crossref-tbl-title": "表", "crossref-eq-prefix": "式",
    "crossref-thm-title": "定理", "crossref-lem-title": "引理", "crossref-cor-title": "推论",
    "crossref-def-title": "定义", "crossref-sec-prefix": "小节", "crossref-ch-prefix": "章节",
    "crossref-apx-prefix": "附录", "environment-proof-title": "证",
    "callout-note-title": "注记", "callout-tip-title": "提示", "callout-warning-title": "警告",
    "callout-important-title": "重要", "code-summary": "代码", "toc-title-document": "目录",
    "section-title-appendices": "附录", "code-tools-source-code": "源代码",
    "repo-action-links-edit": "编辑该页面", "repo-action-links-source": "查看代码",
    "repo-action-links-issue": "反馈问题",
}
LANGUAGES = {"en": {}, "zh": CHINESE}
# The cross-reference kinds of the subset and their words.
KIND_KEYS = {"fig": "crossref-fig-title", "tbl": "crossref-tbl-title", "eq": "crossref-eq-prefix",
             "thm": "crossref-thm-title", "lem": "crossref-lem-title", "cor": "crossref-cor-title",
             "def": "crossref-def-title", "sec": "crossref-sec-prefix", "chapter": "crossref-ch-prefix",
             "appendix": "crossref-apx-prefix"}


def base_language(lang: str) -> str:
    """The language file Quarto reads for a `lang:` value: zh-Hans and zh-CN are zh, en-GB is en."""
    return lang.split("-")[0].lower()


def html_lang(lang: str) -> str:
    """The page's lang attribute: Quarto writes zh-Hans for `lang: zh` (pandoc.ts)."""
    return "zh-Hans" if lang == "zh" else lang


def words(lang: str = "en", overrides: dict | None = None) -> dict[str, str]:
    """Every word the engine writes, in lang: Quarto's translation over its English, then `language:`."""
    return {**ENGLISH, **LANGUAGES.get(base_language(lang), {}),
            **{str(k): str(v) for k, v in (overrides or {}).items()}}
