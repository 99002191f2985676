"""Turn a parsed, executed chapter into Pandoc markdown for one output format (html | typst)."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from pathlib import Path

from .book import Chapter, RenderError
from .crossref import Numbering
from .execute import ChapterRun, cell_options
from .output import data_image, display_mime, html_to_markdown, markdown_for
from .qmd import CODE_SPAN, INLINE_EXPR, REF, Doc, Event, prose_parts
from .subset import CROSSREF_KINDS, crossref_kind
from .words import words

CALLOUT_KINDS = ("note", "tip", "warning", "important")
CALLOUT_COLOURS = {"note": "#0758e5", "tip": "#00a047", "warning": "#ffa500", "important": "#cc1914"}
# A bracketed group holding `@`: `[@fig-a]`, `[-@eq-b]`, `[@smith2020, p. 3]` (not a link).
BRACKET = re.compile(r"\[([^\[\]]*@[^\[\]]*)\](?![(\[{])")
FOOTNOTE = re.compile(r"\[\^([^\]\s]+)\]")
NOT_PROSE = re.compile(r"^\s*(\$\$|:::|```|~~~|\||\+[-=]|#|<|: |!\[)")
# A Markdown table's rule line: a pipe table's (`|--:|` for a one-character column, as
# notebook.markdown_table writes it: Pandoc needs one dash), a grid table's or a simple table's.
TABLE_RULE = re.compile(r"^\s*(\|\s*:?-+:?\s*\||\|?\s*:?-{3,}|\+[-=:+]{3,}|-{3,}(\s+-{3,})+)", re.M)


@dataclass
class Ctx:
    """What rewriting a chapter needs to know."""

    fmt: str  # "html" or "typst"
    ch: Chapter
    numbering: Numbering
    build: Path  # figures are written under build/figures, referenced relative to build
    code_fold: bool = False  # `format: html: code-fold: true`: echoed code in a <details>
    names: dict[str, str] = field(default_factory=words)  # Quarto's words in the book's language (words.py)
    switch: list[tuple[str, str, str]] = field(default_factory=list)  # HTML: (name, lang, href) per other edition
    note: tuple[str, str] | None = None  # (title, text) opening this chapter: not translated yet

    @property
    def home(self) -> bool:
        """The book's unnumbered home page, where Quarto turns off section numbers (book-render.ts), so
        that a reference to a section prints its caption (book-crossrefs.ts, formatCrossref)."""
        return Path(self.ch.rel).name.startswith("index.") and self.numbering.chapter_numbers.get(self.ch.rel) is None


def ref_markdown(m: re.Match, ctx: Ctx) -> str:
    """`@fig-x` -> `[Figure 1.1](#fig-x)`; `-@fig-x` -> `[1.1](#fig-x)`."""
    kind = crossref_kind(m.group(2))
    if kind not in CROSSREF_KINDS:
        return m.group(0)  # a citation: left to pandoc --citeproc
    key = kind + m.group(2)[len(kind):]
    target = ctx.numbering.labels.get(key)
    if target is None:
        raise RenderError(f"{ctx.ch.rel}: unresolved cross-reference @{key}")
    if kind == "sec" and ctx.home:  # the heading as it reads: "1  Title", "Appendix A — Title", "Title"
        text = heading_caption(target, ctx.names)
    elif m.group(1) and target.number:
        text = target.number
    else:  # a no-break space after a float's or theorem's name, a space after a section's (as Quarto)
        text = target.text(ctx.names, " " if kind == "sec" else "\u00a0")
    return f"[{text}](#{key})"


def heading_caption(target, names: dict[str, str]) -> str:
    """A heading's text with its number as Quarto shows it in the heading itself."""
    if target.number is None:
        return target.title
    if target.chapter == "appendix":
        return f"{names['crossref-apx-prefix']} {target.number} — {target.title}"
    return f"{target.number}\u00a0 {target.title}" if target.chapter else target.title


def rewrite(text: str, values: list[str], ctx: Ctx) -> str:
    """Substitute inline `{python}` values (consumed from values) and cross-references."""
    out = []
    for is_code, part in prose_parts(text):
        m = CODE_SPAN.fullmatch(part) if is_code else None
        expr = INLINE_EXPR.match(m.group(2)) if m and not m.group(3) else None
        if expr and expr.group(1) == "python":
            out.append(values.pop(0) if values else part)  # not evaluated (a caption): as Quarto
        elif is_code:
            out.append(part)
        else:
            def group(g: re.Match) -> str:
                keys = [k for _, k in REF.findall(g.group(1))]
                if keys and all(crossref_kind(k) in CROSSREF_KINDS for k in keys):
                    return REF.sub(lambda r: ref_markdown(r, ctx), g.group(1))  # Quarto drops []
                return g.group(0)

            part = BRACKET.sub(group, part)
            # Footnote labels are per chapter in Quarto; in one page `[^1]` of two chapters collide.
            part = FOOTNOTE.sub(lambda f: f"[^{Path(ctx.ch.rel).stem}-{f.group(1)}]", part)
            out.append(REF.sub(lambda r: ref_markdown(r, ctx), part))
    return "".join(out)


def _fence(text: str, attrs: str) -> list[str]:
    """A fenced code block that survives backticks inside text."""
    ticks = "`" * max(3, max((len(t) for t in re.findall(r"`+", text)), default=0) + 1)
    return ["", f"{ticks} {attrs}", text.rstrip("\n"), ticks, ""]


def _chunks(outputs: list, asis: bool, fmt: str) -> list[tuple[str, object]]:
    """Cell outputs as (kind, payload): image (PNG bytes), table/md (markdown), text; by Quarto's mime choice."""
    chunks: list[tuple[str, object]] = []
    for o in outputs:
        if o.output_type == "stream":
            if chunks and chunks[-1][0] == f"stream-{o.name}":
                chunks[-1] = (chunks[-1][0], chunks[-1][1] + o.text)
            else:
                chunks.append((f"stream-{o.name}", o.text))
            continue
        data = o.get("data", {})
        mime = display_mime(data, fmt)
        if mime == "image/png":
            png = base64.b64decode(data["image/png"])
            if ("image", png) not in chunks:  # a pyplot figure returned by a cell shows twice
                chunks.append(("image", png))
        elif mime == "text/markdown":
            md = markdown_for(data["text/markdown"], fmt)
            png = data_image(md)
            chunks.append(("image", png) if png else ("table" if TABLE_RULE.search(md) else "md", md))
        elif mime == "text/html":
            table = re.search(r"<table.*?</table>", data["text/html"], re.S | re.I)
            chunks.append(("table", html_to_markdown(table.group(0))) if table
                          else ("md", html_to_markdown(data["text/html"])))
        elif mime == "text/plain":
            chunks.append(("text", data["text/plain"]))
    if asis:
        return [("md", p) if k != "image" else (k, p) for k, p in chunks]
    return chunks


def cell_markdown(i: int, ev: Event, run: ChapterRun, doc: Doc, ctx: Ctx, execute: dict) -> list[str]:
    """Markdown for a cell: its code (echo) and outputs, figures and tables captioned."""
    c = ev.cell
    opts = cell_options(c.options, execute, doc.meta.get("execute"))
    if not opts["include"]:
        return []
    lines = _fence(c.code, "{.python .cell-code}") if opts["echo"] else []
    if lines and ctx.code_fold and ctx.fmt == "html":  # as Quarto's code-fold: closed, "Code"
        lines = ["", '<details class="code-fold">', f"<summary>{ctx.names['code-summary']}</summary>", *lines,
                 "</details>", ""]
    if not opts["output"] or i not in run.outputs:
        return lines
    if opts["output"] == "asis":  # raw markdown, as Quarto leaves it: no wrapper
        return lines + _outputs(i, ev, run, opts, ctx)
    # Quarto's wrapper: a wide table scrolls inside it (assets/book.css)
    return [*lines, "", "::: {.cell-output-display}", *_outputs(i, ev, run, opts, ctx), ":::", ""]


def _outputs(i: int, ev: Event, run: ChapterRun, opts: dict, ctx: Ctx) -> list[str]:
    """A cell's outputs: figures and tables captioned and numbered, text as output blocks."""
    c = ev.cell
    lines: list[str] = []
    chunks = _chunks(run.outputs[i], opts["output"] == "asis", ctx.fmt)
    kind = crossref_kind(c.label)
    number = ctx.numbering.numbers.get((ctx.ch.rel, i))
    cap_key = "fig-cap" if kind == "fig" or "fig-cap" in c.options else "tbl-cap"
    caption = " ".join(str(c.options.get(cap_key, "")).split())
    caption = rewrite(caption, [], ctx) if caption else ""
    want = "image" if cap_key == "fig-cap" else "table"
    captioned = max((k for k, (t, _) in enumerate(chunks) if t == want), default=None)
    if captioned is None and kind == "fig":  # a figure made of Markdown (raw HTML), as Quarto allows
        captioned = max((k for k, (t, _) in enumerate(chunks) if t == "md"), default=None)
    if (caption or kind in ("fig", "tbl")) and captioned is None:
        what = "figure" if want == "image" else "table (a DataFrame or Markdown)"
        raise RenderError(f"{ctx.ch.rel}: cell '{c.label or c.line}' (line {c.line}) has a caption"
                          f" or label but produced no {what}")
    name = ctx.names["crossref-fig-title" if want == "image" else "crossref-tbl-title"]
    prefix = f"{name}\u00a0{number}: " if number else ""
    for k, (t, payload) in enumerate(chunks):
        if t == "image":
            fig = ctx.build / "figures" / f"{Path(ctx.ch.rel).stem}-{c.label or c.line}-{k}.png"
            fig.parent.mkdir(parents=True, exist_ok=True)
            fig.write_bytes(payload)
            attrs = [f"#{c.label}"] if k == captioned and kind == "fig" else []
            alt = " ".join(str(c.options.get("fig-alt", "")).split()).replace('"', "'")
            attrs += [f'alt="{alt}"'] if alt else []
            cap = prefix + caption if k == captioned else ""
            lines += ["", f"![{cap}]({fig.relative_to(ctx.build).as_posix()})"
                      + (f"{{{' '.join(attrs)}}}" if attrs else ""), ""]
        elif t == "md" and k == captioned:
            lines += ["", f"::: {{#{c.label} .quarto-figure}}", "", payload.strip("\n"), "",
                      "::: {.figcaption}", prefix + caption, ":::", ":::", ""]
        elif t in ("table", "md"):  # Markdown of a cell, whose cross-references Quarto resolves as the prose's
            lines += ["", rewrite(payload.strip("\n"), [], ctx), ""]
            if k == captioned:
                lines += [f": {prefix}{caption}" + (f" {{#{c.label}}}" if kind == "tbl" else ""), ""]
        elif t == "stream-stderr":
            lines += _fence(payload, "{.cell-output .cell-output-stderr}")
        else:
            lines += _fence(payload, "{.cell-output .cell-output-stdout}")
    return lines


def _heading(i: int, ev: Event, text: str, ctx: Ctx, first: bool) -> list[str]:
    """A heading with Quarto's number written into it (pandoc then need not number anything)."""
    number = ctx.numbering.numbers.get((ctx.ch.rel, i))
    attrs = f" {{#{ev.ident}}}" if ev.ident else ""
    if number is None:
        return ["", f"{'#' * ev.level} {text}{attrs}", ""]
    if first and ctx.ch.appendix:
        return ["", f"# [{ctx.names['crossref-apx-prefix']} {number}]{{.appendix-number}} — {text}{attrs}", ""]
    cls = "chapter-number" if first else "header-section-number"
    return ["", f"{'#' * ev.level} [{number}]{{.{cls}}} {text}{attrs}", ""]


def _chapter_opening(ev: Event, ctx: Ctx) -> tuple[list[str], list[str]]:
    """Before a chapter's title, in HTML: its twin in each other edition (the language switch); after
    it: the note of a chapter not translated yet."""
    before = []
    if ctx.switch and ctx.fmt == "html":
        anchor = f"#{ev.ident}" if ev.ident else ""
        links = " · ".join(f'[{name}]({href}{anchor}){{hreflang="{lang}" lang="{lang}"}}'
                           for name, lang, href in ctx.switch)
        before = ["", "::: {.sgdlab-editions}", links, ":::", ""]
    after = []
    if ctx.note:
        title, text = ctx.note
        after = [*_callout_open("note", title, ctx.fmt), text, *_callout_close(ctx.fmt)]
    return before, after


def _math(i: int, ev: Event, ctx: Ctx) -> list[str]:
    """Display math; a labelled equation gets its number at the right, like Quarto's."""
    tex = "\n".join(line for line in ev.text.split("\n") if line.strip())
    number = ctx.numbering.numbers.get((ctx.ch.rel, i))
    if not ev.ident:
        return [f"$${tex}$$"]
    if ctx.fmt == "typst":
        return ["", "```{=typst}", f'#set math.equation(numbering: (..n) => "({number})")', "```", "",
                f"$${tex}$$ `<{ev.ident}>`{{=typst}}", "",
                "```{=typst}", "#set math.equation(numbering: none)", "```", ""]
    return ["", f"::: {{#{ev.ident} .equation}}", f"$${tex}$$ [({number})]{{.eq-number}}", ":::", ""]


def _callout_open(kind: str, title: str, fmt: str) -> list[str]:
    """The start of a callout box (HTML: styled divs; Typst: a raw #block)."""
    if fmt == "typst":
        colour = CALLOUT_COLOURS[kind]
        return ["", "```{=typst}",
                f'#block(width: 100%, inset: 8pt, radius: 3pt, fill: rgb("{colour}").lighten(92%),'
                f' stroke: (left: 3pt + rgb("{colour}")))[', "```", "", f"**{title}**", ""]
    return ["", f"::: {{.callout .callout-{kind}}}", "::: {.callout-title}", title, ":::",
            "::: {.callout-body}", ""]


def _callout_close(fmt: str) -> list[str]:
    return ["", "```{=typst}", "]", "```", ""] if fmt == "typst" else ["", ":::", ":::", ""]


def chapter_markdown(doc: Doc, run: ChapterRun, ctx: Ctx, execute: dict) -> str:
    """The whole chapter as Pandoc markdown for ctx.fmt."""
    out: list[str] = []
    stack: list[str] = []  # kinds of the open divs
    pending = ""  # a theorem/proof title waiting for the first paragraph of its div
    last_prose = -1  # index in out of the last prose line (a QED square can end it)
    first_heading = True
    values = {i: list(v) for i, v in run.inline.items()}

    def flush() -> None:
        nonlocal pending
        if pending:
            out.extend(["", pending, ""])
            pending = ""

    for i, ev in enumerate(doc.events):
        vals = values.get(i, [])
        if ev.kind == "text":
            line = rewrite(ev.text, vals, ctx)
            if pending and line.strip():
                if NOT_PROSE.match(line):
                    flush()
                else:
                    line, pending = f"{pending} {line.lstrip()}", ""
            out.append(line)
            if line.strip() and not NOT_PROSE.match(line):
                last_prose = len(out) - 1
            continue
        flush()
        if ev.kind == "heading":
            first = ev.level == 1 and first_heading
            first_heading = first_heading and not first
            before, after = _chapter_opening(ev, ctx) if first else ([], [])
            out += [*before, *_heading(i, ev, rewrite(ev.text, vals, ctx), ctx, first), *after]
        elif ev.kind == "math":
            out += _math(i, ev, ctx)
        elif ev.kind == "code":
            out += ["", ev.text, ""]
        elif ev.kind == "cell":
            out += cell_markdown(i, ev, run, doc, ctx, execute)
        elif ev.kind == "div_open":
            title = rewrite(ev.title, vals, ctx) if ev.title else ""
            kind = ev.ident.split("-")[0]
            callout = next((c[8:] for c in ev.classes if c.startswith("callout-")), None)
            if ev.ident and kind in ("thm", "lem", "cor", "def"):
                target = ctx.numbering.labels[ev.ident]
                name = target.text(ctx.names) + (f" ({title})" if title else "")
                out += ["", f"::: {{#{ev.ident} .theorem .{kind}}}"]
                pending = f"[**{name}**]{{.theorem-title}}"
                stack.append("theorem")
            elif "proof" in ev.classes:
                out += ["", "::: {.proof}"]
                # as Quarto: the word in italics, the period after it ("*Proof*.", "*证*.")
                pending = f"[*{ctx.names['environment-proof-title']}*{f' ({title})' if title else ''}.]{{.proof-title}}"
                stack.append("proof")
            elif callout in CALLOUT_KINDS:
                out += _callout_open(callout, title or ctx.names[f"callout-{callout}-title"], ctx.fmt)
                stack.append("callout")
            else:
                out += ["", f"::: {ev.raw_attr}"]
                stack.append("div")
        elif ev.kind == "div_close":
            kind = stack.pop() if stack else "div"
            if kind == "proof":
                qed = "`#h(1fr)`{=typst}□" if ctx.fmt == "typst" else "[□]{.qed}"
                j = len(out) - 1
                while j >= 0 and not out[j].strip():
                    j -= 1
                if j >= 0 and j == last_prose:
                    out[j] += " " + qed
                else:
                    out += ["", qed]
            if kind == "callout":
                out += _callout_close(ctx.fmt)
            else:
                out += ["", ":::", ""]
    return "\n".join(out) + "\n"
