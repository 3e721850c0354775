"""The handoff's error: an operation that cannot be done, with the HTTP status the API answers (an ``ApiError``)."""

from __future__ import annotations

from api_errors import ApiError


class HandoffError(ApiError):
    """An agent operation that cannot be done; ``status`` is the HTTP status the API answers."""
