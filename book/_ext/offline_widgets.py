"""Sphinx extension: make the book's widgets and math render without an internet connection.

By default the HTML pages load the ipywidgets manager and MathJax from public CDNs, so a reader
who opens the built book offline sees empty widget areas and raw LaTeX. This extension fetches
both libraries once from the npm registry (`npm pack`), keeps them under `_build/.offline_js/`
(outside git: no third-party JavaScript is committed), serves them from the book's `_static/`,
and points myst-nb and Sphinx at the local copies.

Where npm or the registry is missing, the build still succeeds: widgets fall back to their static
text, and math falls back to the CDN (it renders whenever the reader is online).
"""

import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from sphinx.application import Sphinx
from sphinx.config import Config
from sphinx.util import logging

LOGGER = logging.getLogger(__name__)

# ipywidgets 8.1 pairs with @jupyter-widgets/html-manager 1.0.x.
WIDGET_PACKAGE = "@jupyter-widgets/html-manager@1.0.15"
MATHJAX_PACKAGE = "mathjax@3.2.2"


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
        LOGGER.warning("offline_widgets: npm pack %s failed (%s)", spec, error)
        return None
    tarball = workdir / result.stdout.strip().splitlines()[-1]
    with tarfile.open(tarball) as archive:
        archive.extractall(workdir / "unpacked", filter="data")
    return workdir / "unpacked" / "package"


def _fetch(static_root: Path) -> None:
    """Fill `static_root` with `widgets/` and `mathjax/` unless they are already there."""
    widgets = static_root / "widgets"
    mathjax = static_root / "mathjax"
    if not (widgets / "embed.js").exists():
        with tempfile.TemporaryDirectory() as tmp:
            package = _npm_unpack(WIDGET_PACKAGE, Path(tmp))
            if package is not None:
                shutil.copytree(package / "dist", widgets, dirs_exist_ok=True,
                                ignore=shutil.ignore_patterns("*.map", "*amd*"))
    if not (mathjax / "tex-chtml.js").exists():
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
    _fetch(static_root)
    config.html_static_path = [*config.html_static_path, str(static_root)]
    if (static_root / "widgets" / "embed.js").exists():
        config.nb_ipywidgets_js = {"widgets/embed.js": {}}
    else:
        LOGGER.warning("offline_widgets: widget manager unavailable; widgets render as text")
        config.nb_ipywidgets_js = {}
    if (static_root / "mathjax" / "tex-chtml.js").exists():
        config.mathjax_path = "mathjax/tex-chtml.js"


def setup(app: Sphinx) -> dict:
    app.connect("config-inited", _configure, priority=400)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
