"""Sphinx extension: the built book works offline, with live-looking sliders and readable code.

- Math: by default Sphinx loads MathJax from a public CDN, so a reader offline sees raw LaTeX.
  This extension fetches MathJax once from the npm registry at build time (`npm pack`), keeps
  it under `_build/.offline_js/` (outside git: no third-party JavaScript is committed) and
  serves it from the book's `_static/`. Where npm or the registry is missing, the build still
  succeeds and math falls back to the CDN (it renders whenever the reader is online).
- Sliders: the kernels that execute the chapters get `NATURALDREAMER_STATIC_SLIDERS=1`, so
  `naturaldreamer.sliders.interactive_figure` draws each slider's figures in advance and emits
  plain HTML with its own few lines of JavaScript. No widget manager is loaded (`embed.js`),
  and the widget state that execution records is dropped.
- Figures: the kernels use matplotlib's inline backend even when the build runs with
  `MPLBACKEND=Agg` (as CI does), because with Agg `plt.show()` puts no figure on the page.
- Outputs: stylesheet links to other hosts in HTML outputs (matplotlib animations link Font
  Awesome from a CDN) are removed; the theme serves Font Awesome itself.
- Style: `book/_static/naturaldreamer.css` widens the column and wraps long lines of code.
"""

import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from docutils import nodes
from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

from naturaldreamer.sliders import STATIC_ENV

LOGGER = logging.getLogger(__name__)

MATHJAX_PACKAGE = "mathjax@3.2.2"
STATIC_DIR = Path(__file__).resolve().parent.parent / "_static"
INLINE_BACKEND = "module://matplotlib_inline.backend_inline"
EXTERNAL_LINK = re.compile(r"<link\b[^>]*\bhref=[\"']https?://[^>]*>\s*", re.IGNORECASE)


def _npm_unpack(spec: str, workdir: Path) -> Path | None:
    """Download `spec` with `npm pack` into `workdir`; returns the unpacked folder or None."""
    npm = shutil.which("npm")
    if npm is None:
        return None
    try:
        result = subprocess.run(
            [npm, "pack", spec, "--silent"],
            cwd=workdir, capture_output=True, text=True, timeout=120, check=True,
        )
    except (subprocess.SubprocessError, OSError) as error:
        LOGGER.warning("offline_book: npm pack %s failed (%s)", spec, error)
        return None
    tarball = workdir / result.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as archive:
        archive.extractall(workdir / "unpacked", filter="data")
    return workdir / "unpacked" / "package"


def _fetch_mathjax(static_root: Path) -> None:
    """Fill `static_root/mathjax/` with MathJax's CHTML bundle and fonts unless already there."""
    mathjax = static_root / "mathjax"
    if (mathjax / "tex-chtml.js").exists():
        return
    with tempfile.TemporaryDirectory() as tmp:
        package = _npm_unpack(MATHJAX_PACKAGE, Path(tmp))
        if package is not None:
            mathjax.mkdir(parents=True, exist_ok=True)
            shutil.copy2(package / "es5" / "tex-chtml.js", mathjax)
            shutil.copytree(package / "es5" / "output" / "chtml" / "fonts",
                            mathjax / "output" / "chtml" / "fonts", dirs_exist_ok=True)


def _configure(app: Sphinx, config: Config) -> None:
    static_root = Path(app.outdir).parent / ".offline_js"
    static_root.mkdir(parents=True, exist_ok=True)
    _fetch_mathjax(static_root)
    config.html_static_path = [*config.html_static_path, str(static_root), str(STATIC_DIR)]
    config.nb_ipywidgets_js = {}  # the sliders are plain HTML; no widget manager is needed
    # Without a default the theme finds an empty light/dark mode on a reader's first visit and
    # logs a console error before it falls back to "auto".
    config.html_context = {**config.html_context, "default_mode": "auto"}
    if (static_root / "mathjax" / "tex-chtml.js").exists():
        config.mathjax_path = "mathjax/tex-chtml.js"
    else:
        LOGGER.warning("offline_book: MathJax unavailable offline; math loads from the CDN")


def _drop_widget_state(app: Sphinx, doctree) -> None:
    """Forget the ipywidgets state that nbclient saved for a chapter (it records every slider
    object the kernel made). The page shows the sliders as plain HTML, and with no widget
    manager the state would be dead weight. myst-nb keeps it in its per-page js_files."""
    js_files = getattr(app.env, "nb_metadata", {}).get(app.env.docname, {}).get("js_files", {})
    js_files.pop("ipywidgets_state", None)


def _drop_external_stylesheets(app: Sphinx, doctree: nodes.document) -> None:
    """Remove `<link href="https://...">` from HTML outputs. matplotlib's JavaScript animations
    link Font Awesome from a CDN for their buttons; the theme already ships Font Awesome, and
    a page must not fetch anything while it is read."""
    for node in doctree.findall(nodes.raw):
        if "html" not in node.get("format", "").split():
            continue
        text = node.astext()
        if EXTERNAL_LINK.search(text):
            node.replace(node[0], nodes.Text(EXTERNAL_LINK.sub("", text)))


def _drop_duplicate_scripts(app: Sphinx, pagename: str, templatename: str, context: dict,
                            doctree) -> None:
    """Keep one copy of each page script. Sphinx 7.4 lists an inline script added after the
    builder started twice (file name None, then ''), and sphinx-thebe's second
    `const THEBE_JS_URL = ...` is a console error on every page."""
    seen, unique = set(), []
    for script in context.get("script_files", []):
        key = (script.filename or "", tuple(sorted(script.attributes.items())))
        if key not in seen:
            seen.add(key)
            unique.append(script)
    context["script_files"][:] = unique


def setup(app: Sphinx) -> dict:
    # Kernels started by myst-nb inherit this process's environment.
    os.environ[STATIC_ENV] = "1"
    os.environ["MPLBACKEND"] = INLINE_BACKEND
    app.connect("config-inited", _configure, priority=400)
    app.connect("doctree-read", _drop_widget_state)
    app.connect("doctree-read", _drop_external_stylesheets)
    app.connect("html-page-context", _drop_duplicate_scripts, priority=900)
    app.add_css_file("naturaldreamer.css")
    return {"parallel_read_safe": True, "parallel_write_safe": True}
