"""Runnable lessons on contextual embeddings: python -m lessons <lesson> (or `all`).

Each lesson is one module that reads top to bottom like a notebook: numbered `# %%` cells that
load, compute and print, then the pictures in `_plot_*` functions at the bottom. Its `lesson()`
function returns the numbers it printed, so the tests can check their direction.
"""
