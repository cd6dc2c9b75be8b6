"""Shared pytest fixtures. Each area adds its fixtures in its own clearly headed section."""
