"""naturaldreamer: a readable DreamerV3 in PyTorch, built chapter by chapter in a Jupyter Book."""

__version__ = "0.1.0"

from naturaldreamer.agent import load_policy  # noqa: E402  (the stable entry point for users)

__all__ = ["__version__", "load_policy"]
