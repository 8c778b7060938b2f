"""naturaldreamer.sliders: the values drawn in advance, the static HTML and the live view."""

import base64
import io
import json
import math
import re

import ipywidgets as widgets
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402  (after choosing the headless backend)
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402

from naturaldreamer import sliders  # noqa: E402


def steps_of(slider, values: list[float]) -> np.ndarray:
    """Each value's position on the slider in units of its step (log sliders: in the exponent)."""
    positions = np.array([math.log(v, slider.base) if isinstance(slider, widgets.FloatLogSlider)
                          else v for v in values])
    return (positions - slider.min) / slider.step


@pytest.mark.parametrize("slider, frames", [
    (widgets.FloatSlider(value=-2.0, min=-6.0, max=0.0, step=0.1), 13),
    (widgets.FloatSlider(value=0.997, min=0.8, max=1.0, step=0.001), 21),
    (widgets.FloatSlider(value=0.33, min=0.0, max=0.95, step=0.01), 20),
    (widgets.IntSlider(value=4, min=1, max=17), 10),
    (widgets.IntSlider(value=0, min=0, max=3), 21),
    (widgets.FloatLogSlider(value=20.0, base=10, min=0, max=4, step=0.05), 21),
])
def test_slider_grid_covers_the_range_on_steps(slider, frames):
    values, default = sliders.slider_grid(slider, frames)
    steps = steps_of(slider, values)
    assert values[default] == slider.value
    others = np.delete(steps, default)  # the default is the live value, on a step or not
    assert np.allclose(others, np.round(others), atol=1e-6)    # on the slider's own steps
    assert np.all(np.diff(steps) > 0)                           # increasing, no repeats
    assert steps[0] == pytest.approx(0) and values[-1] == pytest.approx(
        slider.base ** slider.max if isinstance(slider, widgets.FloatLogSlider) else slider.max)
    assert len(values) <= frames + 2                            # ends and default may add two
    n_steps = round((slider.max - slider.min) / slider.step)
    # strides are 1, 2, 5, 10, ... steps: never more than 2.5 times the budget's stride
    assert len(values) >= min(frames, n_steps + 1) / 2.5
    # between the ends, the values are the multiples of one such stride (round numbers)
    absolute = np.round(steps + slider.min / slider.step).astype(int)  # steps from zero
    inner = np.delete(absolute, [0, len(absolute) - 1])
    stride = min(s for s in (1, 2, 5, 10, 20, 50, 100) if s * (frames - 1) >= n_steps)
    on_grid = inner[inner % stride == 0]
    assert len(inner) - len(on_grid) <= 1                       # at most the default is off
    if len(on_grid):
        assert list(on_grid) == list(range(on_grid[0], on_grid[-1] + 1, stride))
        assert on_grid[0] - absolute[0] <= stride and absolute[-1] - on_grid[-1] <= stride


def test_slider_grid_needs_two_frames():
    with pytest.raises(ValueError, match="at least 2"):
        sliders.slider_grid(widgets.FloatSlider(), 1)


def colour_figure(red: float, blue: int) -> plt.Figure:
    """A figure filled with the colour (red, 0, blue / 4): its pixels name the arguments."""
    fig = plt.figure(figsize=(1, 1))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_facecolor((red, 0.0, blue / 4))
    ax.set_xticks([])
    ax.set_yticks([])
    return fig


def test_static_html_shows_the_figure_drawn_at_each_value():
    red = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.05, description="red")
    blue = widgets.IntSlider(value=1, min=0, max=4, description="blue")
    page = sliders.static_html(colour_figure, {"red": red, "blue": blue}, frames=6, dpi=20)
    data = json.loads(re.search(r'nd-sliders-data">(.*?)</script>', page).group(1))
    images = re.findall(r'<img class="nd-slider-frame"[^>]*base64,([A-Za-z0-9+/=]+)"', page)
    assert re.findall(r"<img[^>]*>", page)[0].count("hidden") == 0  # the default shows first
    assert page.count(" hidden ") == len(images) - 1
    for k, (name, slider) in enumerate([("red", red), ("blue", blue)]):
        values, default = sliders.slider_grid(slider, 6)
        assert data["defaults"][k] == default
        assert data["labels"][k] == [format(v, slider.readout_format) for v in values]
        for value, frame in zip(values, data["frames"][k]):
            picture = Image.open(io.BytesIO(base64.b64decode(images[frame]))).convert("RGB")
            pixel = np.array(picture)[picture.height // 2, picture.width // 2]
            args = {"red": red.value, "blue": blue.value, name: value}
            expected = 255 * np.array([args["red"], 0.0, args["blue"] / 4])
            assert np.all(np.abs(pixel - expected) <= 3), (name, value, pixel, expected)
    assert "each slider moves on its own" in page
    assert plt.get_fignums() == []  # every drawn figure was closed


def test_interactive_figure_static_only_while_the_book_builds(monkeypatch):
    red = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.5)
    blue = widgets.IntSlider(value=2, max=4)
    monkeypatch.setenv(sliders.STATIC_ENV, "1")
    page = sliders.interactive_figure(colour_figure, red=red, blue=blue)
    assert "<script>" in page.data and "nd-slider-frame" in page.data
    monkeypatch.delenv(sliders.STATIC_ENV)
    assert isinstance(sliders.interactive_figure(colour_figure, red=red, blue=blue), widgets.VBox)


def test_live_widget_redraws_with_the_moved_value(monkeypatch):
    calls = []

    def record(red: float, blue: int) -> plt.Figure:
        calls.append((red, blue))
        return colour_figure(red, blue)

    red = widgets.FloatSlider(value=0.5, min=0.0, max=1.0, step=0.25)
    blue = widgets.IntSlider(value=2, min=0, max=4)
    view = sliders.live_widget(record, {"red": red, "blue": blue})
    assert list(view.children[0].children) == [red, blue]
    red.value = 0.75
    blue.value = 3
    assert calls == [(0.5, 2), (0.75, 2), (0.75, 3)]
    plt.close("all")


def test_interactive_figure_needs_a_slider():
    with pytest.raises(ValueError, match="at least one slider"):
        sliders.interactive_figure(colour_figure)
