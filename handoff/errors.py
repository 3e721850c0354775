"""The handoff's one error type: an operation that cannot be done, with the HTTP status the API answers."""

from __future__ import annotations


class HandoffError(Exception):
    """An agent operation that cannot be done; ``status`` is the HTTP status the API answers."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
