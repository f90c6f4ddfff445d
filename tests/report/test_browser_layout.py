"""report.html in a real browser: at a desktop (1280 px), a tablet (768 px) and a phone (390 px) width, no table and
no figure is wider than the page, nothing scrolls sideways (neither the page nor a table in its box), and the tables
of three or more columns are tables on the desktop and cards, one per row, on the phone.

Headless Chromium loads a copy of report.html with a measuring script, in one iframe per width (a headless window is
never narrower than 500 px, an iframe is), and `--dump-dom` prints the outer page, into which each frame's script has
posted its measurements as JSON. No Python dependency beyond the standard library; skipped when no Chromium or Chrome
binary is found (`$SYNTHGAP_CHROMIUM` names one; Debian: `apt-get install -y chromium`, which `.ci/run` does)."""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from synthgap.report.build import build_report
from tests.report.records import make_record
from tests.report.test_ablation_report import results as ablation_results
from tests.report.test_per_class import RECORDS as PER_CLASS_RECORDS
from tests.report.test_per_class import write_folder
from tests.report.test_reduction import reduction_records

pytestmark = pytest.mark.slow

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")
WIDTHS = (1280, 768, 390)
HEIGHT = 900
SLACK = 0.5  # px: sub-pixel layout rounding

# Runs in the report's copy in each frame once it and its figures have loaded; posts what it measured to the outer page.
PROBE = """
window.addEventListener("load", () => {
  const page = document.documentElement.clientWidth;
  const box = (el) => { const r = el.getBoundingClientRect(); return {left: r.left, right: r.right, width: r.width}; };
  const result = {
    frame: window.innerWidth,
    page,
    scrollWidth: document.documentElement.scrollWidth,
    tables: [...document.querySelectorAll("table")].map((t) => ({
      ...box(t), head: t.rows[0].cells[0].textContent, stacked: getComputedStyle(t).display === "block",
      boxScroll: t.parentElement.scrollWidth, boxClient: t.parentElement.clientWidth,
    })),
    images: [...document.querySelectorAll("img")].map((i) => ({
      ...box(i), src: i.getAttribute("src"), natural: i.naturalWidth, complete: i.complete,
    })),
  };
  parent.postMessage(JSON.stringify(result), "*");
});
"""

# One frame per width, side by side; each frame's measurements arrive as a message and become a <pre> of JSON.
OUTER = """<!doctype html>
<html><head><meta charset="utf-8"></head><body style="margin:0;display:flex;align-items:flex-start">
{frames}
<script>
window.addEventListener("message", (event) => {{
  const pre = document.createElement("pre");
  pre.className = "layout-result";
  pre.textContent = event.data;
  document.body.appendChild(pre);
}});
</script>
</body></html>
"""
FRAME = '<iframe src="{page}" style="width:{width}px;height:{height}px;border:0;flex:none"></iframe>'


def find_browser() -> str | None:
    """`$SYNTHGAP_CHROMIUM`, else the first Chromium or Chrome on PATH."""
    explicit = os.environ.get("SYNTHGAP_CHROMIUM")
    if explicit:
        return shutil.which(explicit)
    return next((found for name in BROWSERS if (found := shutil.which(name))), None)


def layout_records() -> list:
    """A report with every kind of table and figure: baselines with per-class results and confusion matrices, a layer
    sweep, data reduction, the ablations, and a run with the long names real runs can have."""
    records = [*PER_CLASS_RECORDS, *reduction_records(seeds=(0,), r=False)]
    records += [r for r in ablation_results() if r.kind == "ablation"]
    long_name = "layer_transfer-cifake:synthetic-to-cifake:real+cifake:synthetic-n16-frozen-s0"
    records.append(make_record(run=long_name, side="real", target="folder:/data/a/rather/long/path/to/images/real"))
    return records


def measure(browser: str, folder: Path, widths: tuple[int, ...], profile: Path) -> dict[int, dict]:
    """Load `folder`/report.html in one frame per width; what the probe measured in each frame, by frame width."""
    page = (folder / "report.html").read_text(encoding="utf-8")
    assert page.count("</body>") == 1
    probe = folder / "_layout-probe.html"  # beside report.html, so its figures/ links resolve
    probe.write_text(page.replace("</body>", f"<script>{PROBE}</script>\n</body>"), encoding="utf-8")
    frames = "\n".join(FRAME.format(page=probe.name, width=width, height=HEIGHT) for width in widths)
    outer = folder / "_layout.html"
    outer.write_text(OUTER.format(frames=frames), encoding="utf-8")
    command = [
        browser,
        "--headless",
        "--no-sandbox",  # as root (CI containers) Chromium refuses to start with its sandbox
        "--disable-gpu",
        "--no-first-run",
        f"--user-data-dir={profile}",
        f"--window-size={sum(widths) + 100},{HEIGHT + 100}",
        "--virtual-time-budget=10000",  # run until the frames and their figures have loaded and the probes posted
        "--dump-dom",
        outer.as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120)
    found = [json.loads(html.unescape(m)) for m in re.findall(r'<pre class="layout-result">(.*?)</pre>', done.stdout)]
    assert found, f"no measurements from {browser} (exit {done.returncode}): {done.stderr[-2000:]}"
    return {result["frame"]: result for result in found}


@pytest.fixture(scope="module")
def measured(tmp_path_factory) -> tuple[str, dict[int, dict]]:
    """The report's HTML and its measurements at each width, from one browser run."""
    browser = find_browser()
    if browser is None:
        pytest.skip("no chromium or google-chrome binary found (Debian: apt-get install -y chromium)")
    folder = tmp_path_factory.mktemp("layout-report")
    write_folder(folder, layout_records())
    build_report(folder)
    page = (folder / "report.html").read_text(encoding="utf-8")
    return page, measure(browser, folder, WIDTHS, tmp_path_factory.mktemp("chromium-profile"))


@pytest.mark.parametrize("width", WIDTHS)
def test_no_table_or_figure_is_wider_than_the_page(measured, width):
    page, results = measured
    assert width in results, f"no measurements for the {width} px frame: {sorted(results)}"
    result = results[width]
    assert width - 20 <= result["page"] <= width  # the frame's width, less a vertical scroll bar
    assert result["scrollWidth"] <= result["page"], "the page scrolls sideways"
    assert len(result["tables"]) == page.count("<table>") >= 8
    assert len(result["images"]) == page.count("<img ") >= 10
    right = result["page"] + SLACK
    for image in result["images"]:
        assert image["complete"] and image["natural"] > 0, f"{image['src']} did not load"
        assert image["left"] >= -SLACK and image["right"] <= right, f"{image['src']} is wider than the page: {image}"
    for table in result["tables"]:
        name = f"the table headed {table['head']!r}"
        assert table["left"] >= -SLACK and table["right"] <= right, f"{name} is wider than the page: {table}"
        assert table["boxScroll"] <= table["boxClient"], f"{name} scrolls sideways in its box: {table}"


def test_wide_tables_are_tables_on_a_desktop_and_cards_on_a_phone(measured):
    _, results = measured
    assert not any(table["stacked"] for table in results[1280]["tables"])
    stacked = [table["stacked"] for table in results[390]["tables"]]
    assert any(stacked) and not all(stacked)  # the 2-column tables stay tables
