"""Pandoc (markdown -> self-contained HTML, -> Typst) and Typst (-> PDF): the conversion glue."""

from __future__ import annotations

import base64
import dataclasses
import re
import subprocess
import sys
from html import escape
from pathlib import Path

import pypandoc
import typst
import yaml

from ..notebook import NUMBER
from .book import Book, RenderError
from .words import base_language, html_lang, words

HERE = Path(__file__).parent
# Warnings that mean a reader would see something broken; other pandoc warnings are cosmetic.
FATAL_WARNINGS = ("Could not fetch resource", "Could not find", "Citeproc: citation")
CJK = re.compile(r"[\u3000-\u303f\u3400-\u4dbf\u4e00-\u9fff\uff00-\uffef]")
CJK_FONT = re.compile(r"CJK|Source Han|WenQuanYi|WQY|Droid Sans Fallback|AR PL|Noto S[a-z]+ [ST]C", re.I)


def pandoc(args: list[str], text: str, cwd: Path) -> str:
    """Run the pandoc binary of pypandoc_binary; fail with its message."""
    proc = subprocess.run([pypandoc.get_pandoc_path(), *args], input=text, cwd=cwd,
                          capture_output=True, text=True, encoding="utf-8")
    bad = [w for w in proc.stderr.splitlines() if any(f in w for f in FATAL_WARNINGS)]
    if proc.returncode != 0 or bad:
        tail = "\n".join((bad or proc.stderr.strip().splitlines())[-15:])
        raise RenderError(f"pandoc {' '.join(args[:4])} failed:\n{tail}")
    return proc.stdout


# pandas puts a named index in a second header row (`<th>name</th><th></th>...`); a pipe table
# has one header row, so the name moves into the empty corner cell of the first.
INDEX_NAME_ROW = re.compile(
    r"(<thead>\s*<tr[^>]*>\s*)<th></th>(.*?</tr>)\s*<tr[^>]*>\s*<th>([^<]*)</th>(?:\s*<th></th>)*\s*</tr>",
    re.S)




def _align_numbers(table: str) -> str:
    """Right-align the pipe-table columns whose body cells are all numbers."""
    rows = [[c.strip() for c in line.strip().strip("|").split("|")] for line in table.splitlines()]
    if len(rows) < 3 or not set(table.splitlines()[1]) <= set("|-: "):
        return table  # not a simple pipe table: leave it to pandoc as it is
    numeric = [all(NUMBER.fullmatch(r[j]) for r in rows[2:] if j < len(r)) for j in range(len(rows[0]))]
    # keep each column's dashes: for long tables pandoc reads relative widths from them
    dashes = table.splitlines()[1].strip().strip("|").split("|")
    rule = "|" + "|".join(d[:-1] + ":" if num else d for d, num in zip(dashes, numeric, strict=False)) + "|"
    return "\n".join([table.splitlines()[0], rule, *table.splitlines()[2:]])


def html_to_markdown(html: str) -> str:
    """An HTML fragment (a DataFrame's table) as a markdown pipe table, like Quarto converts it."""
    html = INDEX_NAME_ROW.sub(r"\1<th>\3</th>\2", html, count=1)
    fmt = "markdown-simple_tables-multiline_tables-grid_tables-raw_html-native_divs-native_spans"
    return _align_numbers(pandoc(["-f", "html", "-t", fmt, "--wrap=none"], html, Path.cwd()).strip())


def _common(book: Book, build: Path, fmt: str) -> list[str]:
    """Arguments shared by both outputs: metadata, bibliography, table of contents (a metadata
    file per format: the two conversions run at once)."""
    meta = {"title": book.title, "lang": html_lang(book.lang), "link-citations": True,
            "toc-title": words(book.lang, book.language)["toc-title-document"], **book.meta}
    if fmt == "html" and book.site and book.site.description:
        meta["description"] = book.site.description  # Pandoc's <meta name="description">, as Quarto's
    (build / f"metadata-{fmt}.yaml").write_text(yaml.safe_dump(meta, allow_unicode=True), encoding="utf-8")
    args = ["-f", "markdown", "--standalone", "--toc", "--toc-depth=2",
            f"--metadata-file=metadata-{fmt}.yaml", f"--resource-path=.:{book.root}"]
    for lua in book.pandoc_filters():  # the book's own, as Quarto runs them: before the engine's
        if not lua.is_file():
            raise RenderError(f"filter {lua} (from _quarto.yml) does not exist")
        args.append(f"--lua-filter={lua}")
    args.append(f"--lua-filter={HERE / 'math.lua'}")
    for bib in book.bibliography:
        if not bib.is_file():
            raise RenderError(f"bibliography {bib} (from _quarto.yml) does not exist")
        args.append(f"--bibliography={bib}")
    if book.bibliography:
        args.append("--citeproc")
    return args


def write_html(markdown: str, book: Book, build: Path, switch: str = "") -> Path:
    """One self-contained page: MathML, embedded images and CSS, no network at view time.

    switch: the language switch's HTML (editions.py), at the top of the page.
    """
    out = build / "index.html"
    args = [f"--css={css}" for css in [HERE / "style.css", *book.css()] if css.is_file()]
    # The tools of Quarto's sidebar: the repository (`repo-url`) and `book: downloads: [pdf]`.
    said = words(book.lang, book.language)
    repo = book.site.repo_url if book.site else ""
    source = said["code-tools-source-code"]
    tools = [f'<a class="source" href="{escape(repo)}" title="{source}">{source}</a>'] if repo else []
    if "pdf" in book.downloads:
        label = f"{said['tools-download']} PDF"
        tools.append(f'<a href="{book.slug}.pdf" title="{label}">{label}</a>')
    nav = f'<nav id="downloads">{" ".join(tools)}</nav>\n' if tools else ""
    if nav or switch:
        (build / "before-body.html").write_text(switch + nav, encoding="utf-8")
        args.append("--include-before-body=before-body.html")
    footer = book.site.footer_markdown() if book.site else ""
    if footer:  # after the footnotes, which Pandoc puts at the end of the body
        body = pandoc(["-f", "markdown", "-t", "html5", "--wrap=none"], footer, build)
        (build / "footer.html").write_text(f'<footer class="footer">\n{body}</footer>\n', encoding="utf-8")
        args.append("--include-after-body=footer.html")
    site = book.site
    if site and site.description:  # Quarto renders the description as Markdown (smart quotes) first
        plain = pandoc(["-f", "markdown", "-t", "plain", "--wrap=none"], site.description, build).strip()
        site = dataclasses.replace(site, description=plain)
    tags = site.meta_tags() if site else ""
    if tags:  # link previews: Open Graph and Twitter Card
        (build / "meta.html").write_text(tags, encoding="utf-8")
        args.append("--include-in-header=meta.html")
    pandoc([*_common(book, build, "html"), "-t", "html5", "--embed-resources", "--mathml", "--wrap=none",
            *args, "-o", out.name], markdown, build)
    out.write_text(drop_repeated_assets(out.read_text(encoding="utf-8")), encoding="utf-8")
    return out


def write_pdf(markdown: str, book: Book, build: Path) -> Path:
    """Pandoc's Typst writer and template, then the Typst compiler of the `typst` wheel."""
    src = build / "book.typ"
    # Pandoc's Typst template sets the text's lang from `lang` (zh-Hans: "zh", CJK line breaking) and its
    # region from the lang's region, which zh-Hans lacks (the template then says "US"): mainland China's.
    region = ["-V", "region=CN"] if base_language(book.lang) == "zh" else []
    pandoc([*_common(book, build, "typst"), "-t", "typst", f"--include-in-header={HERE / 'header.typ'}",
            "-V", "papersize=a4", "-V", "page-numbering=1", "-V", "fontsize=11pt", *region,
            "-o", src.name], markdown, build)
    out = build / f"{book.slug}.pdf"
    font_paths = _cjk_font_paths()
    if CJK.search(markdown) and not font_paths and not any(CJK_FONT.search(f) for f in typst.Fonts().families()):
        # Typst's embedded fonts have no CJK glyphs and it falls back silently to boxes.
        print("warning: the PDF shows boxes for Chinese/Japanese/Korean characters: no CJK font"
              " is installed (e.g. `apt-get install fonts-noto-cjk`)", file=sys.stderr)
    try:
        typst.compile(str(src), output=str(out), root=str(build), font_paths=font_paths)
    except Exception as e:  # typst.TypstError carries the compiler's diagnostics
        raise RenderError(f"typst could not compile {src.name}: {e}") from None
    return out


def _cjk_font_paths() -> list[str]:
    """Noto Serif/Sans SC from the pylopdf-fonts-zh-cn wheel (a dependency): Typst falls back to
    them for the article's Chinese quotations, so the PDF needs no system font."""
    try:
        import pylopdf_fonts_zh_cn
    except ImportError:
        return []
    return [str(pylopdf_fonts_zh_cn.serif_path().parent)]


# --------------------------------------------------------------------------- display data, as Quarto chooses

# Quarto 1.7 (src/core/jupyter/display-data.ts, displayDataMimeType): one priority for every format,
# with the HTML types in front for HTML and the LaTeX types after it for the PDF (our Typst PDF).
_MIME_BASE = ["text/markdown", "image/svg+xml", "image/png", "image/jpeg"]
_MIME_HTML = ["application/vnd.jupyter.widget-state+json", "application/vnd.jupyter.widget-view+json",
              "application/javascript", "text/html"]
TABLE_TAGS = re.compile(r"<table.*</table", re.S | re.I)


def display_mime(data: dict, fmt: str) -> str | None:
    """The mime type Quarto renders from a display output's data, for fmt "html" or "typst" (the PDF)."""
    order = [*_MIME_HTML, *_MIME_BASE] if fmt == "html" else [*_MIME_BASE, "text/latex", "application/pdf"]
    if "text/html" not in order and TABLE_TAGS.search(str(data.get("text/html", ""))):
        order.append("text/html")  # an HTML table: Quarto reads it into the document for every format
    return next((m for m in [*order, "text/plain"] if m in data), None)


# Quarto's conditional content, in the one form cell outputs use (explorable figures): a div
# `::: {.content-hidden when-format="html"}` / `.content-visible` with when-format or unless-format.
CONDITIONAL = re.compile(r'^::: \{\.content-(hidden|visible) (when|unless)-format="([a-z]+)"\}\n(.*?)\n:::$',
                         re.S | re.M)
RAW_HTML = re.compile(r"^```\{=html\}\n.*?\n```$", re.S | re.M)
DATA_IMAGE = re.compile(r"^!\[[^\]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)(\{[^}]*\})?$")


def markdown_for(md: str, fmt: str) -> str:
    """A Markdown output as Quarto leaves it for fmt: conditional divs resolved, raw HTML only in HTML."""
    def resolve(m: re.Match) -> str:
        target = m.group(3)
        matches = fmt == "html" if target == "html" else fmt == "typst" and target in ("pdf", "latex", "typst")
        shown = matches if m.group(2) == "when" else not matches
        return m.group(4) if shown == (m.group(1) == "visible") else ""

    md = CONDITIONAL.sub(resolve, md)
    return md if fmt == "html" else RAW_HTML.sub("", md)


def data_image(md: str) -> bytes | None:
    """The PNG of a Markdown output that is one data-URI image and nothing else (Quarto's PDF
    writes such an image to a file through its mediabag); None otherwise."""
    m = DATA_IMAGE.match(md.strip())
    return base64.b64decode(m.group(1)) if m else None


REPEATED_ASSET = re.compile(r'<(script|style) id="([\w-]+)">.*?</\1>\n?', re.S)


def drop_repeated_assets(html: str) -> str:
    """Keep the first `<script id=…>` / `<style id=…>` of each id: a script that several figures
    carry (interactive.ASSET_IDS) is loaded once on the built-in engine's one page."""
    seen: set[str] = set()

    def keep_first(m: re.Match) -> str:
        if m.group(2) in seen:
            return ""
        seen.add(m.group(2))
        return m.group(0)

    return REPEATED_ASSET.sub(keep_first, html)
