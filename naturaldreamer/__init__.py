"""naturaldreamer: a readable DreamerV3 in PyTorch, built chapter by chapter in a Jupyter Book."""

__version__ = "0.1.0"
