"""The operator's error for a spec that cannot be served as written.

Its own module so that everything that parses a part of the spec (the spec itself, the
routers' settings, the analysis) can raise it without importing one another.
"""

from __future__ import annotations


class SpecError(ValueError):
    """The spec cannot be served as written; the message tells the user what to change."""
