"""Sentence pooling over token vectors, as sentence-transformers does it."""
