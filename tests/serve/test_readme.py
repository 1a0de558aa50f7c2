"""The README's commands, run as written: the quick start's `curl` against a real server (its answer
has the README's shape and decision) and the analyst's worked example on the shipped corpus."""
from __future__ import annotations

import json
import re
import shlex
import subprocess

from tests.test_cli import ROOT, hotline

README = (ROOT / "README.md").read_text(encoding="utf-8")


def block_after(heading: str, lang: str) -> str:
    """The first fenced ``lang`` block after the line starting with ``heading``."""
    rest = README[README.index(heading):]
    m = re.search(rf"```{lang}\n(.*?)```", rest, re.S)
    assert m, f"no ```{lang} block after {heading!r}"
    return m.group(1)


def test_the_quick_start_curl_runs_as_written_and_answers_what_the_readme_shows(server):
    line = next(l for l in block_after("One call, from another terminal", "bash").splitlines() if l.startswith("curl "))
    shown = json.loads(block_after("The answer", "json"))
    cmd = line.replace("http://127.0.0.1:8000", server.url)
    assert cmd != line
    r = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    got = json.loads(r.stdout)
    assert set(got) == set(shown)
    for key in ("channel", "action", "danger", "police_first", "links"):  # the rules decide these, whatever the model
        assert got[key] == shown[key], key
    assert got["transfer"]["to_line"] == shown["transfer"]["to_line"] == "110" and got["advice"][0] == shown["advice"][0]
    assert "一键转接" in r.stdout  # printed as Chinese, not \\u escapes


def test_the_screenshots_the_readme_shows_exist():
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", README)
    assert {"docs/screenshots/calltaker-danger.png", "docs/screenshots/review.png"} <= set(images)
    for rel in images:
        assert (ROOT / rel).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", rel


def test_the_worked_example_runs_as_written_on_the_shipped_corpus(tmp_path):
    (tmp_path / "data").symlink_to(ROOT / "data")
    lines = [l.split("#")[0].strip() for l in block_after("### A worked example", "bash").splitlines()]
    lines = [l for l in lines if l]
    assert len(lines) >= 5 and all(l.startswith("hotline ") for l in lines)
    for line in lines:
        r = hotline(*shlex.split(line)[1:], cwd=tmp_path)
        assert r.returncode == 0, f"{line}\n{r.stderr}\n{r.stdout}"
    assert (tmp_path / "routed.xlsx").exists() and (tmp_path / "reports" / "v2").is_dir()
    assert (tmp_path / "challengers" / "hard" / "comparison.md").exists()
    assert "*" in r.stdout  # `hotline models` marks the current one
