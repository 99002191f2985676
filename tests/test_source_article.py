"""The repository's copy of the source article is unchanged, and what the project quotes is in it."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from sgdlab.article_log import ARTICLE_FINAL, article_log
from sgdlab.experiments import ARTICLE_BASELINE

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "docs" / "source-article"
TEXT = (FOLDER / "article.zh.txt").read_text(encoding="utf-8")
# A passage the report quotes in Chinese: in straight or curly double quotes, on one line, opening
# with a Han character (an English caption that names 二 is not a quotation).
CHINESE_QUOTE = re.compile(r"[\"“]([\u4e00-\u9fff][^\"“”\n]*)[\"”]")
# A cell option's line: its quotes delimit a YAML string (a Chinese edition's caption), they quote nothing.
CELL_OPTION = re.compile(r"^#\|.*$", re.M)


def test_the_copy_has_the_digest_its_readme_states():
    stated = re.search(r"SHA-256 `([0-9a-f]{64})`", (FOLDER / "README.md").read_text(encoding="utf-8"))
    assert stated, "docs/source-article/README.md states no SHA-256"
    assert hashlib.sha256((FOLDER / "article.zh.txt").read_bytes()).hexdigest() == stated.group(1)


def test_every_printed_loss_the_package_quotes_is_the_articles_in_its_order():
    # The article prints `epoch N, loss X`: section 五's last epoch, the clean toy's log, the
    # noisy and bias runs after 30000 epochs, the piecewise toy's log.
    printed = re.findall(r"^epoch \d+, loss (\d+\.\d+)$", TEXT, re.M)
    quoted = [f"{ARTICLE_BASELINE['final_loss']:f}", *article_log("toy-clean"),
              f"{ARTICLE_FINAL['toy-noisy']['loss']:f}", f"{ARTICLE_FINAL['toy-bias']['loss']:f}",
              *article_log("toy-piecewise")]
    assert printed == quoted


def test_every_weight_and_error_the_package_quotes_is_the_articles():
    ws = re.findall(r"^tensor\(\[(\d\.\d+)\], requires_grad=True\)$", TEXT, re.M)  # the noisy, then the bias run
    assert ws == [f"{ARTICLE_FINAL[run]['w']:.4f}" for run in ("toy-noisy", "toy-bias")]
    w_error = re.search(r"^w的估计误差: tensor\(\[([^\]]+)\], grad_fn=<SubBackward0>\)$", TEXT, re.M)
    b_error = re.search(r"^b的估计误差: tensor\(\[([^\]]+)\], grad_fn=", TEXT, re.M)
    assert [float(v) for v in w_error.group(1).split(",")] == ARTICLE_BASELINE["w_error"]
    assert float(b_error.group(1)) == ARTICLE_BASELINE["b_error"]


def test_every_chinese_passage_the_report_quotes_is_in_the_article_word_for_word():
    sources = [ROOT / "index.qmd", *sorted((ROOT / "report").glob("*.qmd"))]
    quotes = {(src.relative_to(ROOT).as_posix(), q) for src in sources
              for q in CHINESE_QUOTE.findall(CELL_OPTION.sub("", src.read_text(encoding="utf-8")))}
    assert any(rel == "index.qmd" for rel, _ in quotes)  # the preface quotes the licence line
    missing = sorted(f"{rel}: {q}" for rel, q in quotes if q not in TEXT)
    assert not missing, "quoted but not in docs/source-article/article.zh.txt:\n" + "\n".join(missing)
