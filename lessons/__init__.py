"""Runnable lessons on contextual embeddings: python -m lessons <name>."""
