"""Project instructions are markdown rendered safely: every bit of HTML in them is shown as text."""

from __future__ import annotations

from app.projects.markdown import render_markdown


def test_markdown_subset_becomes_markup():
    html = render_markdown("## Rules\nBox **every** cone,\nalso *small* ones.\n\n- `A` takes all\n1. first")
    assert str(html) == (
        "<h4>Rules</h4>\n<p>Box <strong>every</strong> cone, also <em>small</em> ones.</p>\n"
        "<ul>\n<li><code>A</code> takes all</li>\n</ul>\n<ol>\n<li>first</li>\n</ol>"
    )


def test_html_and_script_links_in_instructions_stay_text():
    html = str(
        render_markdown('<img src=x onerror=alert(1)> [x](javascript:alert(1)) [ok](https://a.example/"q)')
    )
    assert "<img" not in html and "&lt;img src=x onerror=alert(1)&gt;" in html
    assert 'href="javascript' not in html and "[x](javascript:alert(1))" in html
    assert '<a href="https://a.example/&quot;q" rel="noopener noreferrer"' in html  # the quote stays escaped


def test_empty_instructions_render_nothing():
    assert str(render_markdown("")) == "" and not render_markdown("   \n")
