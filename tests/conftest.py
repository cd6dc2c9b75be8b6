"""Shared pytest fixtures. Each area adds its fixtures in its own clearly headed section."""
import os

# No machine here reaches a model hub; make the reference libraries fail fast instead of
# retrying the network when a test loads them from a local directory.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
