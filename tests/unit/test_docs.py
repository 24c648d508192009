"""README.md is a guide with a contents list; the reference is in docs/, every page reached by a link,
and every relative link and #anchor of README.md and docs/ resolves (GitHub's anchors)."""

import re
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st
from tests import docs

README = docs.ROOT / "README.md"
GUIDE_LINES = 400


def test_readme_is_a_guide_under_400_lines() -> None:
    assert len(README.read_text().splitlines()) < GUIDE_LINES


def test_readme_contents_lists_every_section_of_the_readme() -> None:
    listed = {target for _, target in docs.links(docs.section("README.md", "## Contents"))}
    sections = [docs.slug(text) for level, text in docs.headings(README.read_text()) if level == 2]
    missing = [f"#{anchor}" for anchor in sections if anchor != "contents" and f"#{anchor}" not in listed]
    assert missing == []


def test_readme_guide_sections_come_in_a_newcomers_order() -> None:
    sections = [text for level, text in docs.headings(README.read_text()) if level == 2]
    assert sections == [
        "Contents",
        "Quick start",
        "Try it locally: `make up`",
        "Deploy",
        "Operate",
        "How it works",
    ]


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve() for _, target in docs.links(README.read_text())
    }
    pages = sorted((docs.ROOT / "docs").glob("*.md"))
    assert pages, "the reference pages live in docs/"
    assert [page.name for page in pages if page.resolve() not in linked] == []


def test_every_relative_link_and_anchor_resolves() -> None:
    assert docs.broken_links() == []


# ---------------------------------------------------------------------------- the checker itself


def write(root: Path, name: str, text: str) -> None:
    (root / name).parent.mkdir(parents=True, exist_ok=True)
    (root / name).write_text(text)


def test_broken_links_finds_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    write(
        tmp_path,
        "README.md",
        "# Guide\n\nSee [api](docs/api.md#routes), [gone](docs/gone.md), [here](#guide), [there](#nowhere).\n",
    )
    write(tmp_path, "docs/api.md", "# API\n\n## The routes\n\nBack to [the guide](../README.md#guide).\n")
    assert docs.broken_links(tmp_path) == [
        "README.md:3: docs/api.md#routes: no such anchor",
        "README.md:3: docs/gone.md: no such file",
        "README.md:3: #nowhere: no such anchor",
    ]


def test_broken_links_skips_code_and_external_links(tmp_path: Path) -> None:
    write(
        tmp_path,
        "README.md",
        "# Guide\n\n```md\n[in a block](missing.md)\n```\n\n`[in a span](missing.md)` and [out](https://example.com/x#y)\n",
    )
    assert docs.broken_links(tmp_path) == []


def test_a_link_whose_text_spans_lines_is_checked(tmp_path: Path) -> None:
    write(
        tmp_path,
        "README.md",
        "# Guide\n\nSee [the local\nstack](docs/local.md) and `code\nspan [x](y.md)`.\n",
    )
    assert docs.broken_links(tmp_path) == ["README.md:3: docs/local.md: no such file"]


def test_an_anchor_to_a_file_that_is_not_markdown_is_broken(tmp_path: Path) -> None:
    write(tmp_path, "README.md", "# Guide\n\n[policy](docs/policy.json#statement)\n")
    write(tmp_path, "docs/policy.json", "{}\n")
    assert docs.broken_links(tmp_path) == ["README.md:3: docs/policy.json#statement: no such anchor"]


def test_headings_in_code_blocks_are_not_anchors() -> None:
    text = "# Title\n\n```bash\n# a comment\n```\n\n   ```bash\n   # indented\n   ```\n\n## Next\n"
    assert docs.anchors(text) == ["title", "next"]


# ---------------------------------------------------------------------------- GitHub's anchors


def test_slug_is_githubs_for_the_headings_of_these_docs() -> None:
    assert docs.slug("Try it locally: `make up`") == "try-it-locally-make-up"
    assert docs.slug("Calling `POST /copies` and `GET /tasks` with your AWS credentials") == (
        "calling-post-copies-and-get-tasks-with-your-aws-credentials"
    )
    assert docs.slug("Exactly once, never lost") == "exactly-once-never-lost"
    assert docs.slug("`dedupeId`") == "dedupeid"
    assert docs.slug("Why the local stack provisions the template itself") == (
        "why-the-local-stack-provisions-the-template-itself"
    )
    assert docs.slug("Putting kie2s3 in front — step by step") == "putting-kie2s3-in-front--step-by-step"
    assert docs.slug("snake_case and [a link](x.md)") == "snake_case-and-a-link"


def test_repeated_headings_are_suffixed_as_github_does() -> None:
    text = "# A\n\n## A\n\n## A\n\n## A-1\n"
    assert docs.anchors(text) == ["a", "a-1", "a-2", "a-1-1"]


@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=40))
def test_slug_is_lower_case_letters_digits_underscores_and_hyphens(heading: str) -> None:
    anchor = docs.slug(heading)
    assert anchor == anchor.lower()
    assert all(c.isalnum() or c in "-_" for c in anchor)
    assert docs.slug(anchor) == anchor


@given(st.lists(st.sampled_from(["Deploy", "Deploy!", "deploy", "Operate", "A b", "a-b"]), max_size=12))
def test_anchors_of_a_page_are_distinct_and_the_first_of_each_is_plain(titles: list[str]) -> None:
    found = docs.anchors("".join(f"## {title}\n\n" for title in titles))
    assert len(set(found)) == len(found)
    firsts: dict[str, str] = {}
    for title, anchor in zip(titles, found, strict=True):
        firsts.setdefault(docs.slug(title), anchor)
    assert all(base == anchor for base, anchor in firsts.items())


def test_section_ends_at_the_next_heading_of_its_level_or_above(tmp_path: Path) -> None:
    write(tmp_path, "p.md", "# P\n\n## A\n\na\n\n### A1\n\n```bash\n# not a heading\n```\n\n## B\n\nb\n")
    assert docs.section("p.md", "## A", root=tmp_path) == "\na\n\n### A1\n\n```bash\n# not a heading\n```\n\n"


# Shell keywords and builtins, and the GNU core utilities: on every machine the prerequisites describe.
SHELL_AND_COREUTILS = {
    "do",
    "done",
    "eval",
    "for",
    "break",
    "export",
    "printf",
    "echo",
    "date",
    "seq",
    "sleep",
}
SHELL_AND_COREUTILS |= {"base64", "cat", "head", "ls"}
# A command's name where a command starts: a line, after | ; & ( $( do then {; not an assignment.
COMMAND = re.compile(
    r"(?:^|[|;&(]|\$\(|\bdo\b|\bthen\b|\{)\s*(?!(?:do|then)\s)([A-Za-z_./][\w./-]*)(?=\s|$|\))", re.M
)


def commands_run(text: str) -> set[str]:
    """The commands a page's bash blocks run (comments and line continuations taken out)."""
    found = set()
    for block in re.findall(r"```bash\n(.*?)```", text, flags=re.S):
        joined = re.sub(r"\\\n", " ", block)
        code = "\n".join(re.sub(r"(^|\s)#.*$", "", line) for line in joined.splitlines())
        found.update(COMMAND.findall(code))
    return found


def test_commands_run_finds_pipelines_substitutions_and_loops_not_assignments() -> None:
    text = (
        "```bash\nX=1; Y=$(date +%s) # curl\nfor a in $(seq 2); do jq . <f | openssl dgst \\\n; done\n```\n"
    )
    assert commands_run(text) == {"date", "for", "seq", "jq", "openssl", "done"}


def test_readme_prerequisites_name_every_command_its_examples_run() -> None:
    prerequisites = docs.section("README.md", "### Prerequisites")
    needed = commands_run(README.read_text()) - SHELL_AND_COREUTILS
    assert {"make", "curl", "jq", "openssl", "aws"} <= needed
    assert sorted(name for name in needed if f"`{name}`" not in prerequisites) == []


REAL_ACCOUNT = "## What is proved locally, what only a real account proves"


def test_the_deploy_guide_links_what_only_a_real_account_proves() -> None:
    deploy = docs.section("README.md", "## Deploy")
    anchor = "docs/deploy.md#" + docs.slug(REAL_ACCOUNT.lstrip("# "))
    assert anchor in [target for _, target in docs.links(deploy)]
    assert "make e2e STACK_NAME=" in deploy


def test_make_e2e_as_documented_takes_the_variables_the_makefile_and_the_tests_read() -> None:
    section = docs.section("docs/deploy.md", "### Checking a deployed stack: `make e2e`")
    named = set(re.findall(r"\b([A-Z][A-Z0-9_]*[A-Z0-9])=", section))
    assert {"STACK_NAME", "KIE_TASK_ID", "KIE_FAMILY", "KIE_WEBHOOK_HMAC_KEY", "REGION"} <= named
    e2e_recipe = re.search(r"^e2e:.*?(?=^\S)", (docs.ROOT / "Makefile").read_text(), flags=re.M | re.S)
    assert e2e_recipe is not None
    read = e2e_recipe.group(0) + (docs.ROOT / "tests" / "e2e" / "conftest.py").read_text()
    read += (docs.ROOT / "tests" / "e2e" / "test_api.py").read_text()
    unread = sorted(name for name in named - {"REGION"} if f"$({name})" not in read and name not in read)
    assert unread == []


# Targets for working on kie2s3 itself (make test runs them; make help and docs/ describe them).
DEVELOPMENT_TARGETS = {"dev", "lint", "layer-check", "audit", "validate", "build", "unit", "integration"}
DEVELOPMENT_TARGETS |= {"soak", "soak-short", "openapi", "clean"}


def test_readme_names_every_command_a_user_runs() -> None:
    targets = re.findall(r"^([A-Za-z0-9_-]+):[^=\n]*## ", (docs.ROOT / "Makefile").read_text(), flags=re.M)
    readme = README.read_text()
    named = [t for t in targets if re.search(rf"make (-s )?{re.escape(t)}(?![\w-])", readme)]
    assert sorted(set(targets) - DEVELOPMENT_TARGETS - set(named)) == []
    assert {"call", "sam-event", "invoke", "e2e"} <= set(named)
