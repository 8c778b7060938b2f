"""Draw the book's figure of the whole agent: python book/figures/architecture.py.

Writes book/images/architecture.png. Top: the world model learning from a replayed sequence of
real observations. Bottom: a dream that starts from one of its states, with the actor, the
critic and its slow copy. The names are those of the package's modules.
"""

from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
from matplotlib.patches import FancyArrowPatch, FancyBboxPatch  # noqa: E402

OUT = Path(__file__).resolve().parents[1] / "images" / "architecture.png"
COLOURS = {"world": "#dbe9f6", "latent": "#fde7c7", "behavior": "#dff0d8", "data": "#eeeeee"}


def box(ax, x: float, y: float, text: str, kind: str, width: float = 1.5,
        height: float = 0.55) -> tuple[float, float, float, float]:
    """A rounded box centred at (x, y); returns its extent for the arrows."""
    ax.add_patch(FancyBboxPatch((x - width / 2, y - height / 2), width, height,
                                boxstyle="round,pad=0.02,rounding_size=0.08",
                                facecolor=COLOURS[kind], edgecolor="#555555", lw=0.8))
    ax.text(x, y, text, ha="center", va="center", fontsize=8.5)
    return x, y, width, height


def edge_point(extent, towards: tuple[float, float]) -> tuple[float, float]:
    """Where the line from a box's centre towards a point leaves the box."""
    x, y, width, height = extent
    dx, dy = towards[0] - x, towards[1] - y
    scale = min(width / 2 / abs(dx) if dx else float("inf"),
                height / 2 / abs(dy) if dy else float("inf"))
    return x + dx * scale, y + dy * scale


def arrow(ax, start, end, colour: str = "#333333", style: str = "-|>",
          dashed: bool = False, bend: float = 0.0) -> None:
    """An arrow from box `start` to box `end`, drawn between their edges."""
    a = edge_point(start, end[:2])
    b = edge_point(end, start[:2])
    ax.add_patch(FancyArrowPatch(a, b, arrowstyle=style, mutation_scale=9, color=colour,
                                 lw=0.9, linestyle="--" if dashed else "-",
                                 connectionstyle=f"arc3,rad={bend}"))


def world_model_row(ax, top: float) -> list:
    """Three replayed steps: encoder, recurrent model, prior and posterior, and the heads."""
    states = []
    for k, t in enumerate(("t−1", "t", "t+1")):
        x = 2.3 + 4.2 * k
        obs = box(ax, x - 0.9, top, f"observation $x_{{{t}}}$", "data", width=1.5)
        enc = box(ax, x - 0.9, top - 1.0, "encoder", "world", width=1.2)
        post = box(ax, x - 0.9, top - 2.0, f"posterior\n$q(z_{{{t}}} \\mid h, x)$", "latent")
        deter = box(ax, x + 0.9, top - 2.0, f"$h_{{{t}}}$\nrecurrent state", "latent",
                    width=1.4)
        prior = box(ax, x + 0.9, top - 1.0, f"prior\n$p(z_{{{t}}} \\mid h)$", "latent",
                    width=1.4)
        heads = box(ax, x, top - 3.85, "decoder $\\hat x$ · reward $\\hat r$ · continue $\\hat c$",
                    "world", width=3.3)
        arrow(ax, obs, enc)
        arrow(ax, enc, post)
        arrow(ax, deter, post)
        arrow(ax, deter, prior)
        arrow(ax, prior, post, colour="#b03030", style="<|-|>", dashed=True)
        ax.text(x + 0.12, top - 1.62, "KL dyn, rep", fontsize=7, color="#b03030", ha="left")
        arrow(ax, post, heads)
        arrow(ax, deter, heads)
        states.append((post, deter))
    for (post, deter), (_, next_deter) in zip(states, states[1:]):
        recurrent = box(ax, deter[0] + 1.2, top - 2.95, "recurrent model\n$f(h, z, a)$", "world",
                        width=1.6, height=0.5)
        arrow(ax, post, recurrent)
        arrow(ax, deter, recurrent)
        arrow(ax, recurrent, next_deter)
        ax.text(recurrent[0] + 0.85, recurrent[1] - 0.05, "+ real\naction $a$", fontsize=7,
                ha="left", va="center")
    return states


def dream_row(ax, top: float, start_state) -> None:
    """A dream of three steps from a posterior state: actor, prior, heads, critic, λ-return."""
    previous = start_state
    for k, t in enumerate(("0", "1", "2")):
        x = 2.3 + 4.2 * k
        state = box(ax, x, top, f"state $s_{t} = (h_{t}, z_{t})$", "latent", width=2.0)
        if k == 0:
            arrow(ax, previous, state, colour="#777777", dashed=True)
            ax.text(x + 0.2, top + 0.75, "dreams start from replayed states", fontsize=7,
                    color="#777777")
        else:
            arrow(ax, previous, state)
        actor = box(ax, x + 1.0, top - 1.1, f"actor\n$\\pi(a_{t} \\mid s_{t})$", "behavior",
                    width=1.3)
        critic = box(ax, x - 1.0, top - 1.1, f"critic $v(s_{t})$\nslow critic", "behavior",
                     width=1.5)
        heads = box(ax, x, top - 2.2, f"reward $\\hat r_{t}$ · continue $\\hat c_{t}$", "world",
                    width=2.6)
        arrow(ax, state, actor)
        arrow(ax, state, critic)
        arrow(ax, state, heads)
        if k < 2:
            step = box(ax, x + 2.1, top, "recurrent model\n+ prior", "world", width=1.5,
                       height=0.5)
            arrow(ax, state, step)
            arrow(ax, actor, step)
            ax.text(x + 1.75, top - 0.55, f"$a_{t}$", fontsize=8)
            previous = step
    returns = box(ax, 6.5, top - 3.3,
                  "λ-returns $R_t = r_t + \\gamma c_t((1-\\lambda)v_{t+1} + \\lambda R_{t+1})$"
                  " → advantages $(R_t - v_t)/S$ train the actor; $R_t$ trains the critic",
                  "behavior", width=11.5, height=0.5)
    ax.annotate("", xy=(returns[0], returns[1] + 0.25), xytext=(returns[0], top - 2.5),
                arrowprops={"arrowstyle": "-|>", "color": "#333333", "lw": 0.9})


def main() -> None:
    fig, ax = plt.subplots(figsize=(10, 8.6), dpi=110)
    ax.set_xlim(0, 13)
    ax.set_ylim(-0.4, 9.9)
    ax.axis("off")
    ax.text(0.1, 9.65, "World model: learns from replayed real sequences (chapters 3–4)",
            fontsize=10.5, weight="bold")
    states = world_model_row(ax, top=8.9)
    ax.plot([0.1, 12.9], [4.5, 4.5], color="#999999", lw=0.6)
    ax.text(0.1, 4.2, "Behaviour: the actor and critic learn in dreams (chapters 5–7)",
            fontsize=10.5, weight="bold")
    dream_row(ax, top=3.3, start_state=states[1][0])
    fig.tight_layout()
    OUT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(OUT, dpi=110)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
