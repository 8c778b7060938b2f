"""Sliders that redraw a figure, live in JupyterLab and on the book's static HTML pages.

In a running notebook `interactive_figure` shows ipywidgets sliders, and moving one redraws the
figure in the kernel. A built HTML page has no kernel, so when the book is built (its Sphinx
extension sets the environment variable `NATURALDREAMER_STATIC_SLIDERS=1` for the kernels it
starts) the figure is drawn in advance at a few values of each slider instead, and the page gets
plain HTML range inputs and a few lines of inline JavaScript that show the picture drawn for the
chosen value. Nothing is fetched when the page is read.

On the static page each slider moves on its own, from the defaults: drawing every combination
of several sliders would take too long and too much space. A note under the figure says so.
"""

import base64
import html
import io
import json
import math
import os
from collections.abc import Callable

import ipywidgets as widgets
import matplotlib.pyplot as plt
from IPython.display import HTML
from matplotlib.figure import Figure
from PIL import Image

STATIC_ENV = "NATURALDREAMER_STATIC_SLIDERS"
Slider = widgets.IntSlider | widgets.FloatSlider | widgets.FloatLogSlider

# Runs in the page for each slider group: moving one range input shows the frame drawn at its
# value and puts the other inputs back to their defaults, so the labels always match the figure.
_SCRIPT = """
(function () {
  var root = document.currentScript.parentElement;
  var data = JSON.parse(root.querySelector("script.nd-sliders-data").textContent);
  var inputs = root.querySelectorAll("input.nd-slider");
  var labels = root.querySelectorAll("output.nd-slider-value");
  var images = root.querySelectorAll("img.nd-slider-frame");
  function show(moved) {
    inputs.forEach(function (input, k) {
      if (k !== moved) { input.value = data.defaults[k]; }
      labels[k].textContent = data.labels[k][input.value];
    });
    var frame = data.frames[moved][inputs[moved].value];
    images.forEach(function (image, k) { image.hidden = k !== frame; });
  }
  inputs.forEach(function (input, k) {
    input.addEventListener("input", function () { show(k); });
  });
})();
"""


def static_mode() -> bool:
    """True while the book is being built (the kernel cannot serve widgets to the page)."""
    return os.environ.get(STATIC_ENV, "") == "1"


def slider_grid(slider: Slider, frames: int) -> tuple[list[float], int]:
    """About `frames` values of `slider` to draw in advance, and the index of its default.

    The values are every k-th step of the slider, with k = 1, 2, 5, 10, 20, ... as small as
    `frames` allows, placed on multiples of k steps (so that the values are round numbers),
    plus both ends and the default (its current value) where those fall between. A
    FloatLogSlider is stepped in its exponent.
    """
    if frames < 2:
        raise ValueError(f"frames must be at least 2 to draw both ends of a slider, got {frames}")
    log_base = slider.base if isinstance(slider, widgets.FloatLogSlider) else None
    position = math.log(slider.value, log_base) if log_base else slider.value
    steps = round((slider.max - slider.min) / slider.step)
    # the smallest stride of 1, 2 or 5 times a power of ten steps that keeps within `frames`
    stride = next(m * 10 ** k for k in range(9) for m in (1, 2, 5)
                  if m * 10 ** k * (frames - 1) >= steps)
    default_step = round((position - slider.min) / slider.step)
    first = -round(slider.min / slider.step) % stride  # multiples of the stride, not of min
    chosen = sorted({0, *range(first, steps + 1, stride), steps, default_step})
    positions = [slider.min + step * slider.step for step in chosen]
    if log_base:
        values = [float(log_base ** p) for p in positions]
    elif isinstance(slider, widgets.IntSlider):
        values = [int(round(p)) for p in positions]
    else:
        values = [round(p, 12) for p in positions]
    index = chosen.index(default_step)
    values[index] = slider.value  # exactly the live default, free of rounding
    return values, index


def _png(figure: Figure, dpi: int, colors: int = 64) -> str:
    """The figure as a base64 PNG, then closed so that the notebook does not show it again.

    A palette of `colors` colours (plots use few) makes each frame about 4x smaller.
    """
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=dpi, bbox_inches="tight")
    plt.close(figure)
    palette = Image.open(buffer).convert("RGB").quantize(
        colors=colors, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    small = io.BytesIO()
    palette.save(small, format="PNG", optimize=True)
    return base64.b64encode(small.getvalue()).decode("ascii")


def _label(slider: Slider, value: float) -> str:
    return format(value, slider.readout_format)


def static_html(draw: Callable[..., Figure], sliders: dict[str, Slider], frames: int = 21,
                dpi: int = 100) -> str:
    """A self-contained HTML slider group: the figure drawn at about `frames` values of each
    slider (the others at their defaults), range inputs and the script that switches frames."""
    defaults = {name: slider.value for name, slider in sliders.items()}
    images: list[str] = [_png(draw(**defaults), dpi)]
    frame_table, label_table, default_indices = [], [], []
    for name, slider in sliders.items():
        values, default_index = slider_grid(slider, frames)
        row = []
        for index, value in enumerate(values):
            if index == default_index:
                row.append(0)
                continue
            images.append(_png(draw(**{**defaults, name: value}), dpi))
            row.append(len(images) - 1)
        frame_table.append(row)
        label_table.append([_label(slider, value) for value in values])
        default_indices.append(default_index)

    controls = []
    for k, (name, slider) in enumerate(sliders.items()):
        description = html.escape(slider.description or name)
        controls.append(
            f'<label class="nd-slider-label">{description} '
            f'<input type="range" class="nd-slider" min="0" max="{len(label_table[k]) - 1}" '
            f'step="1" value="{default_indices[k]}" aria-label="{description}"> '
            f'<output class="nd-slider-value">{label_table[k][default_indices[k]]}</output>'
            f"</label>")
    alt = html.escape(", ".join(f"{slider.description or name} = {_label(slider, slider.value)}"
                                for name, slider in sliders.items()))
    pictures = [f'<img class="nd-slider-frame" alt="figure at {alt}"{"" if i == 0 else " hidden"}'
                f' src="data:image/png;base64,{image}">' for i, image in enumerate(images)]
    note = ('<p class="nd-sliders-note">On this page each slider moves on its own from the '
            "values shown first; in a running notebook they combine.</p>"
            if len(sliders) > 1 else "")
    data = json.dumps({"frames": frame_table, "labels": label_table, "defaults": default_indices})
    return (f'<div class="nd-sliders">'
            f'<div class="nd-slider-controls">{"".join(controls)}</div>'
            f'{"".join(pictures)}{note}'
            f'<script type="application/json" class="nd-sliders-data">{data}</script>'
            f"<script>{_SCRIPT}</script></div>")


def live_widget(draw: Callable[..., Figure], sliders: dict[str, Slider]) -> widgets.VBox:
    """The ipywidgets view: the sliders in wrapping rows above a figure redrawn on each move."""

    def redraw(**values: float) -> None:
        draw(**values)
        plt.show()

    controls = widgets.HBox(list(sliders.values()), layout=widgets.Layout(flex_flow="row wrap"))
    return widgets.VBox([controls, widgets.interactive_output(redraw, sliders)])


def interactive_figure(draw: Callable[..., Figure], frames: int = 21,
                       **sliders: Slider) -> widgets.VBox | HTML:
    """Sliders that redraw `draw(**values)`, which must draw one new figure and return it.

    Each keyword names an argument of `draw` and gives its slider; the slider's value is the
    default. Live this returns the ipywidgets view; while the book is built it returns the
    static HTML of `static_html` with up to `frames` pictures per slider.
    """
    if not sliders:
        raise ValueError("interactive_figure needs at least one slider, e.g. limit=FloatSlider()")
    if static_mode():
        return HTML(static_html(draw, sliders, frames))
    return live_widget(draw, sliders)
