"""Markdown → HTML of the report (`synthgap.report.render`): the page, its tables and figures, and the CSS."""

from __future__ import annotations

from synthgap.report.render import cell_kind, markdown_to_html


def test_html_lets_text_cells_wrap_and_keeps_numbers_on_one_line():
    html = markdown_to_html("| run | top-1 |\n|---|---|\n| a-long-run-name | 1.00 |", title="t")
    assert "td:not(.num):not(.none), th:not(.num) { white-space: normal;" in html
    assert "white-space: nowrap" in html and '<td class="num">1.00</td>' in html


def test_html_wraps_tables_in_a_scroll_box_and_shows_names_as_text():
    markdown = "# t\n\n| class | top-1 |\n|---|---|\n| <script>x</script> | 1 |\n\n**bold** and ünïcode − ±"
    html = markdown_to_html(markdown, title="a <report>")
    assert '<div class="table-scroll">\n<table>' in html and "</table>\n</div>" in html
    assert ".table-scroll {" in html and "overflow-x: auto" in html and "max-width: 100%" in html
    assert "<td>&lt;script&gt;x&lt;/script&gt;</td>" in html and "<script>" not in html
    assert '<th class="num">top-1</th>' in html and '<td class="num">1</td>' in html and "<th>class</th>" in html
    assert '<meta charset="utf-8">' in html and "<title>a &lt;report&gt;</title>" in html
    assert "<strong>bold</strong> and ünïcode − ±" in html


def test_cell_kinds_align_numbers_right_and_text_left():
    for number in ("80.00 ± 1.41 (n=3)", "-3.32 [-3.32, -3.32]", "1/8", "+5.30", "-2.82 (1 seed)", "1500"):
        assert cell_kind(number) == "num", number
    for text in ("cifake:real", "True", "transfer-n04-s0", "50 % of the images synthetic"):
        assert cell_kind(text) == "", text
    assert cell_kind("–") == "none"


def test_a_small_page_with_a_heading_an_image_and_a_three_column_table():
    markdown = (
        "# Results & <notes>\n\n![Layer-wise transfer](figures/layer_sweep.png)\n\n"
        "| run | target | top-1 |\n|---|---|---|\n| s2r-n08 | cifake:real | 71.50 |\n| r-base | data_set/x | – |\n"
    )
    html = markdown_to_html(markdown, title="synthgap report: <a & b>")
    assert html.startswith('<!doctype html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n')
    assert "<title>synthgap report: &lt;a &amp; b&gt;</title>" in html
    assert "<h1>Results &amp; &lt;notes&gt;</h1>" in html
    # the figure keeps its relative path and is a link to it
    img = '<img src="figures/layer_sweep.png" alt="Layer-wise transfer" />'
    assert f'<p><a class="figure" href="figures/layer_sweep.png">{img}</a></p>' in html
    # three columns: a numbered box that stacks into cards below its width (2 × (4 + 1.3) + 5 × .6 + 1.3 + 4.5 rem)
    assert '<div class="table-scroll stack" id="table-1">\n<table>' in html and "</table>\n</div>\n</body>" in html
    assert "@media (max-width: 20rem) {\n  #table-1 { width: auto;" in html
    assert '#table-1 td:nth-child(3)::before { content: "top\\2d 1"; }' in html  # "-" escaped in the CSS string
    assert '<th class="num">top-1</th>' in html and "<th>target</th>" in html
    assert "<td>cifake:<wbr>real</td>" in html and "<td>data_<wbr>set/<wbr>x</td>" in html
    assert '<td class="num">71.50</td>' in html and '<td class="none">–</td>' in html
    assert html.endswith("</body>\n</html>\n")
