"""The built HTML book, read the way a reader reads it: in headless Chromium, offline.

The pages of `_build/html` (or of the folder named by NATURALDREAMER_BOOK_HTML) are served on
127.0.0.1 and every other host is unresolvable, so anything the book would fetch from the
internet shows up as a console error. Each page is loaded at a 1280 px wide window and checked:
no console errors, no raw Markdown tables or raw math in the text, no code or output box wider
than the column, no broken images; on every page with sliders, moving each slider changes the
figure. Needs `chromium` and `chromium-driver` (Debian packages) and selenium.

Locally the test is skipped when the book or the browser is missing; with CI=true it fails.
"""

import functools
import http.server
import os
import re
import shutil
import tempfile
import threading
from pathlib import Path

import ipywidgets as widgets
import matplotlib.pyplot as plt
import pytest

from naturaldreamer.sliders import static_html

ROOT = Path(__file__).resolve().parent.parent
BOOK = Path(os.environ.get("NATURALDREAMER_BOOK_HTML", ROOT / "_build" / "html"))
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTH, HEIGHT = 1280, 900

# The rendered text of a page without code, math and scripts: what must read as prose.
TEXT_JS = """
const article = document.querySelector('article') || document.body;
const copy = article.cloneNode(true);
copy.querySelectorAll('pre, code, script, style, mjx-container, .MathJax, .highlight')
    .forEach(node => node.remove());
document.body.appendChild(copy);  // innerText needs the copy in the document
const text = copy.innerText;
copy.remove();
return text;
"""
# Boxes of code or output whose content is wider than the box (after opening folded cells).
OVERFLOW_JS = """
document.querySelectorAll('details').forEach(d => { d.open = true; });
const wide = [];
document.querySelectorAll('article pre').forEach(pre => {
  if (pre.scrollWidth > pre.clientWidth + 1) {
    wide.push(pre.scrollWidth + ' > ' + pre.clientWidth + ': ' + pre.innerText.slice(0, 60));
  }
});
return wide;
"""
BROKEN_IMAGES_JS = """
return Array.from(document.querySelectorAll('article img'))
  .filter(img => !(img.complete && img.naturalWidth > 0))
  .map(img => img.src.slice(0, 80));
"""
WAIT_FOR_MATH_JS = """
const done = arguments[arguments.length - 1];
if (window.MathJax && MathJax.startup && MathJax.startup.promise) {
  MathJax.startup.promise.then(() => done(true), () => done(false));
} else { done(true); }
"""
VISIBLE_FRAME_JS = """
const frames = arguments[0].querySelectorAll('img.nd-slider-frame');
return Array.from(frames).filter(img => !img.hidden && img.offsetWidth > 0)
  .map(img => img.src);
"""
RAW_TABLE = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*\|", re.MULTILINE)
RAW_MATH = re.compile(r"\$[^$\s][^$]*\$|\\\(|\\\[|\$\$")


def unavailable(reason: str) -> None:
    """Skip with `reason`, except in CI, where a browser test that cannot run must fail."""
    if os.environ.get("CI") == "true":
        pytest.fail(f"{reason} (CI=true, so the browser test must run)")
    pytest.skip(reason)


def serve(folder: Path):
    """A local HTTP server for `folder` on 127.0.0.1, in a daemon thread; returns it."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args) -> None:  # keep pytest's output readable
            pass

        def do_GET(self) -> None:
            if self.path == "/favicon.ico":  # browsers ask every server; the book has none
                self.send_response(204)
                self.end_headers()
                return
            super().do_GET()

    handler = functools.partial(Quiet, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


@pytest.fixture(scope="module")
def browser():
    """Headless Chromium that can reach 127.0.0.1 only."""
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        unavailable("chromium and chromedriver are not installed "
                    "(apt-get install chromium chromium-driver)")
    try:
        from selenium import webdriver
    except ImportError:
        unavailable("selenium is not installed (pip install -r requirements.txt)")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    profile = tempfile.mkdtemp(prefix="nd-chromium-")
    for flag in ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                 "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage",
                 f"--window-size={WIDTH},{HEIGHT}", f"--user-data-dir={profile}",
                 "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options,
                              service=webdriver.ChromeService(str(CHROMEDRIVER)))
    driver.set_page_load_timeout(60)
    driver.set_script_timeout(60)
    yield driver
    driver.quit()
    shutil.rmtree(profile, ignore_errors=True)


def console_errors(driver) -> list[str]:
    return [entry["message"] for entry in driver.get_log("browser")
            if entry["level"] == "SEVERE"]


def load(driver, url: str) -> None:
    """Open `url` and wait until MathJax has typeset the page."""
    driver.get(url)
    driver.execute_async_script(WAIT_FOR_MATH_JS)


def move_every_slider(driver) -> list[str]:
    """Press End, then Home, on each slider of the page; returns what did not change the
    figure or the value shown next to the slider."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    failures = []
    for number, group in enumerate(driver.find_elements(By.CSS_SELECTOR, "div.nd-sliders")):
        inputs = group.find_elements(By.CSS_SELECTOR, "input.nd-slider")
        labels = group.find_elements(By.CSS_SELECTOR, "output.nd-slider-value")
        if not inputs:
            failures.append(f"slider group {number}: no slider")
        for slider, label in zip(inputs, labels):
            name = slider.get_attribute("aria-label")
            before = driver.execute_script(VISIBLE_FRAME_JS, group)
            value_before = label.text
            driver.execute_script("arguments[0].scrollIntoView({block: 'center'});", slider)
            key = Keys.HOME if slider.get_attribute("value") != "0" else Keys.END
            slider.send_keys(key)
            after = driver.execute_script(VISIBLE_FRAME_JS, group)
            if len(before) != 1 or len(after) != 1 or before == after:
                failures.append(f"{name}: figure did not change ({len(before)}, {len(after)}"
                                " visible frames)")
            if label.text == value_before:
                failures.append(f"{name}: value stayed {value_before}")
            slider.send_keys(Keys.END if key == Keys.HOME else Keys.HOME)
    return failures


@pytest.fixture(scope="module")
def book_report(browser):
    """Load every page of the built book once and collect what each check needs."""
    from selenium.webdriver.common.by import By

    if not (BOOK / "index.html").exists():
        unavailable(f"no built book in {BOOK}: run `jupyter-book build .` first")
    server = serve(BOOK)
    base = f"http://127.0.0.1:{server.server_address[1]}/"
    # Every page except the theme's own folders and redirect stubs (their target is a page).
    pages = sorted(p.relative_to(BOOK).as_posix() for p in BOOK.rglob("*.html")
                   if not p.relative_to(BOOK).parts[0].startswith("_")
                   and 'http-equiv="Refresh"' not in p.read_text(encoding="utf-8")[:500])
    report = {}
    try:
        console_errors(browser)  # drop anything logged before the first page
        for page in pages:
            load(browser, base + page)
            report[page] = {
                "text": browser.execute_script(TEXT_JS),
                "overflow": browser.execute_script(OVERFLOW_JS),
                "broken_images": browser.execute_script(BROKEN_IMAGES_JS),
                "images": len(browser.find_elements(By.CSS_SELECTOR, "article img")),
                "slider_groups": len(browser.find_elements(By.CSS_SELECTOR, "div.nd-sliders")),
                "widget_leftovers": len(browser.find_elements(
                    By.CSS_SELECTOR, ".jupyter-widgets, script[type*='widget']")),
                "slider_failures": move_every_slider(browser),
                "errors": console_errors(browser),
            }
    finally:
        server.shutdown()
    return report


def test_every_page_loads_without_console_errors(book_report):
    assert "book/intro.html" in book_report
    failures = {page: r["errors"] for page, r in book_report.items() if r["errors"]}
    assert not failures, failures


def test_no_raw_markdown_tables_or_math(book_report):
    tables = {page: RAW_TABLE.findall(r["text"])[:3] for page, r in book_report.items()
              if RAW_TABLE.search(r["text"])}
    math = {page: RAW_MATH.findall(r["text"])[:3] for page, r in book_report.items()
            if RAW_MATH.search(r["text"])}
    assert not tables, f"raw Markdown tables: {tables}"
    assert not math, f"raw math: {math}"


def test_code_and_outputs_fit_the_column(book_report):
    failures = {page: r["overflow"][:3] for page, r in book_report.items() if r["overflow"]}
    assert not failures, failures


def test_images_load_and_chapters_have_figures(book_report):
    broken = {page: r["broken_images"] for page, r in book_report.items() if r["broken_images"]}
    assert not broken, broken
    chapters = [page for page in book_report if page.startswith("notebooks/")]
    assert chapters
    without = [page for page in chapters if book_report[page]["images"] == 0]
    assert not without, f"chapters without a single figure: {without}"


def test_every_slider_changes_its_figure(book_report):
    for notebook in sorted((ROOT / "notebooks").glob("*.ipynb")):
        page = f"notebooks/{notebook.stem}.html"
        if page not in book_report:
            continue
        expected = notebook.read_text(encoding="utf-8").count("interactive_figure(")
        assert book_report[page]["slider_groups"] == expected, page
        assert book_report[page]["widget_leftovers"] == 0, f"{page}: ipywidgets output left"
    failures = {page: r["slider_failures"] for page, r in book_report.items()
                if r["slider_failures"]}
    assert not failures, failures
    assert sum(r["slider_groups"] for r in book_report.values()) > 0


def test_slider_html_works_on_its_own(browser, tmp_path):
    """The helper's HTML in a bare page: moving one slider shows the frame drawn for its value
    and puts the other slider back to its default, so labels and figure always agree."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    def draw(red: float, blue: int) -> plt.Figure:
        fig, ax = plt.subplots(figsize=(2, 1))
        ax.set_facecolor((red, 0.0, blue / 4))
        ax.set_title(f"{red:.2f} {blue}")
        return fig

    red = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.25, description="red")
    blue = widgets.IntSlider(value=1, min=0, max=4, description="blue")
    (tmp_path / "index.html").write_text(
        '<!doctype html><html><head><link rel="icon" href="data:,"></head><body>'
        + static_html(draw, {"red": red, "blue": blue}, dpi=30) + "</body></html>",
        encoding="utf-8")
    server = serve(tmp_path)
    try:
        load(browser, f"http://127.0.0.1:{server.server_address[1]}/index.html")
        group = browser.find_element(By.CSS_SELECTOR, "div.nd-sliders")
        red_input, blue_input = group.find_elements(By.CSS_SELECTOR, "input.nd-slider")
        labels = group.find_elements(By.CSS_SELECTOR, "output.nd-slider-value")
        frames = group.find_elements(By.CSS_SELECTOR, "img.nd-slider-frame")
        first = browser.execute_script(VISIBLE_FRAME_JS, group)
        assert [label.text for label in labels] == ["0.50", "1"]
        red_input.send_keys(Keys.END)
        assert [label.text for label in labels] == ["1.00", "1"]
        moved = browser.execute_script(VISIBLE_FRAME_JS, group)
        assert len(moved) == 1 and moved != first
        blue_input.send_keys(Keys.ARROW_RIGHT)
        assert [label.text for label in labels] == ["0.50", "2"]  # red back at its default
        assert red_input.get_attribute("value") == "2"
        blue_input.send_keys(Keys.ARROW_LEFT)
        assert browser.execute_script(VISIBLE_FRAME_JS, group) == first
        assert len(frames) == 1 + 4 + 4  # the default, then 4 more values of each slider
        assert not console_errors(browser)
    finally:
        server.shutdown()
