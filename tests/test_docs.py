"""The README and docs/ stay short, linked and true to the tree.

* README.md is at most 150 lines, and its test command is exactly the one ``.ci/run`` runs;
* every relative link (and image) in README.md and docs/*.md points at a file that exists, and a ``#fragment`` at a
  heading of that file; every docs/*.md is linked from README.md;
* docs/layout.md names every package under ``core/`` (each folder with an ``__init__.py``), every recipe family folder
  of ``core/recipes/`` and every file of ``pages/`` and ``ui/``;
* every repository path the docs write in backticks (``core/...``, ``tests/...``, ``benchmarks/...``, ...) exists.

Only files are read: nothing is imported or run, so this takes well under a second.
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]
MAX_README_LINES = 150

FENCE = re.compile(r"^ *```.*?^ *```[^\n]*$", re.S | re.M)
CODE_SPAN = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[(?:[^\[\]]|\[[^\]]*\])*\]\(([^()\s]+)(?:\s+\"[^\"]*\")?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.+?)\s*#*\s*$", re.M)
# the folders and files of the repository whose paths the docs write in backticks
PATH_ROOTS = ("core/", "ui/", "pages/", "tests/", "benchmarks/", "scripts/", "data/", "docs/", ".ci/", ".streamlit/")
# paths the docs name that a person makes, so they are not in the checkout, each with its reason
MADE_BY_YOU = {".streamlit/secrets.toml": "the sign-in settings each deployment writes and keeps out of git (docs/hosting.md)"}


def rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def prose(text: str) -> str:
    """``text`` without its fenced code blocks (links and paths there are examples, not references)."""
    return FENCE.sub("", text)


def links(path: Path) -> list[str]:
    """The link targets of a markdown file, outside code blocks and code spans."""
    return LINK.findall(CODE_SPAN.sub("", prose(path.read_text(encoding="utf-8"))))


def relative_links(path: Path) -> list[str]:
    return [t for t in links(path) if not re.match(r"^[a-z][a-z0-9+.-]*:", t, re.I)]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, inline markup and punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link keeps its words
    text = text.replace("`", "").strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    out, seen = set(), {}
    for _, title in HEADING.findall(prose(path.read_text(encoding="utf-8"))):
        base = slug(title)
        n = seen.get(base, 0)
        out.add(base if n == 0 else f"{base}-{n}")
        seen[base] = n + 1
    return out


def readme_test_command() -> str:
    """The one command in the bash block under the README's 'Run the tests' heading."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Run the tests"):]
    block = section.split("```bash\n", 1)[1].split("\n```", 1)[0]
    lines = [line.strip() for line in block.splitlines() if line.strip() and not line.strip().startswith("#")]
    assert len(lines) == 1, f"the README's test block should hold one command, not {lines}"
    return lines[0]


def ci_test_command() -> str:
    """The command of ``.ci/run`` that runs pytest (comments and blank lines left out)."""
    lines = [line.strip() for line in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()]
    runs = [line for line in lines if line and not line.startswith("#") and "pytest" in line]
    assert len(runs) == 1, f".ci/run should run pytest in one command, not {runs}"
    return runs[0]


def packages() -> list[str]:
    """Every package under core/, as its path ('core/', 'core/recipes/llamacpp/', ...)."""
    found = [p.parent for p in (ROOT / "core").rglob("__init__.py") if "__pycache__" not in p.parts]
    return sorted(rel(p) + "/" for p in found)


def defines_family(init: Path) -> bool:
    tree = ast.parse(init.read_text(encoding="utf-8"))
    return any(isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "FAMILY" for t in node.targets)
               for node in tree.body)


def family_folders() -> list[str]:
    """The folders of core/recipes/ whose __init__.py declares a FAMILY."""
    recipes = ROOT / "core" / "recipes"
    return sorted(d.name for d in recipes.iterdir() if (d / "__init__.py").is_file() and defines_family(d / "__init__.py"))


def registry_families() -> set[str]:
    """The family packages core/recipes/registry.py imports (``from . import genai, llamacpp, ...``)."""
    tree = ast.parse((ROOT / "core" / "recipes" / "registry.py").read_text(encoding="utf-8"))
    names = {a.name for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level == 1 and node.module is None
             for a in node.names}
    return {n for n in names if (ROOT / "core" / "recipes" / n / "__init__.py").is_file()}


def code_spans(path: Path) -> list[str]:
    return CODE_SPAN.findall(prose(path.read_text(encoding="utf-8")))


def written_paths(path: Path) -> list[str]:
    """Repository paths a page writes in backticks: no spaces, placeholders or globs, under one of PATH_ROOTS (or app.py)."""
    out = []
    for span in code_spans(path):
        if any(c in span for c in " <>*=?{}$") or span.startswith(("core/..", "tests/..")):
            continue
        if span == "app.py" or span.startswith(PATH_ROOTS):
            out.append(span.split(":", 1)[0].split("#", 1)[0])
    return out


# -- the README ------------------------------------------------------------------------------------------
def test_the_readme_is_at_most_150_lines():
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/ (at most {MAX_README_LINES})"


def test_the_readmes_test_command_is_exactly_what_ci_runs():
    readme, ci = readme_test_command(), ci_test_command()
    assert shlex.split(readme) == shlex.split(ci) and readme == ci, f"README: {readme!r}\n.ci/run: {ci!r}"
    assert "python -m pytest" in readme and "ruff check ." in readme


def test_the_readme_keeps_the_start_command_and_the_fast_inner_loop():
    text = README.read_text(encoding="utf-8")
    assert "```bash\npip install -r requirements.txt && streamlit run app.py\n```" in text
    assert 'python -m pytest -m "not slow and not cluster and not browser"' in text
    markers = ROOT.joinpath("pyproject.toml").read_text(encoding="utf-8")
    for marker in ("slow", "cluster", "browser"):
        assert f'"{marker}:' in markers, f"the README's inner loop names the marker {marker}, which pyproject.toml does not declare"


def test_every_docs_page_is_linked_from_the_readme():
    linked = {(README.parent / t.split("#", 1)[0]).resolve() for t in relative_links(README) if not t.startswith("#")}
    assert DOCS, "docs/ has no pages"
    missing = [rel(p) for p in DOCS if p.resolve() not in linked]
    assert not missing, f"README.md does not link {missing}"


# -- links and paths -------------------------------------------------------------------------------------
@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_relative_link_points_at_an_existing_file_and_heading(page):
    bad = []
    for target in relative_links(page):
        file_part, _, fragment = target.partition("#")
        dest = (page.parent / file_part).resolve() if file_part else page.resolve()
        if not dest.exists():
            bad.append(f"{target}: no such file")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            bad.append(f"{target}: {rel(dest)} has no heading #{fragment}")
    assert not bad, f"{rel(page)}: " + "; ".join(bad)


@pytest.mark.parametrize("page", PAGES, ids=rel)
def test_every_path_the_docs_name_exists(page):
    missing = sorted({p for p in written_paths(page) if not (ROOT / p).exists() and p not in MADE_BY_YOU})
    assert not missing, f"{rel(page)} names paths that do not exist: {missing}"


def test_the_link_and_slug_helpers_on_known_cases():
    assert slug("The quality budget, and the measure it is on") == "the-quality-budget-and-the-measure-it-is-on"
    assert slug("A variant wrong at one shape: openvino-int8 in bf16 on AMX") == "a-variant-wrong-at-one-shape-openvino-int8-in-bf16-on-amx"
    assert slug("OpenVINO (`core/recipes/openvino/`)") == "openvino-corerecipesopenvino"
    assert LINK.findall("see [a](x.md#y) and ![img](screenshots/a.png) and [b](https://e.org)") == ["x.md#y", "screenshots/a.png", "https://e.org"]
    assert prose("a\n```bash\n[x](nowhere.md)\n```\nb") == "a\n\nb"


# -- the layout page against the tree --------------------------------------------------------------------
def test_the_layout_names_every_core_package():
    spans = set(code_spans(ROOT / "docs" / "layout.md"))
    found = packages()
    assert "core/" in found and "core/recipes/" in found and len(found) > 10, found
    missing = [p for p in found if p not in spans]
    assert not missing, f"docs/layout.md does not name these packages of core/: {missing}"


def test_the_layout_names_every_recipe_family():
    families = family_folders()
    assert set(families) == registry_families(), (families, registry_families())
    assert {"llamacpp", "openvino"} <= set(families)
    spans = set(code_spans(ROOT / "docs" / "layout.md"))
    missing = [f for f in families if f"core/recipes/{f}/" not in spans]
    assert not missing, f"docs/layout.md does not name these recipe families: {missing}"


def test_the_layout_names_every_page_and_ui_module():
    spans = set(code_spans(ROOT / "docs" / "layout.md"))
    files = [p for folder in ("pages", "ui") for p in sorted((ROOT / folder).glob("*.py")) if p.name != "__init__.py"]
    assert files
    missing = [rel(p) for p in files if rel(p) not in spans]
    assert not missing, f"docs/layout.md does not name {missing}"
