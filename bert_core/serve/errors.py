"""The server's error: an HTTP status, a TEI error type and one message naming the field, the value and what was
expected. Every bad request becomes one of these (JSON ``{"error": ..., "error_type": ...}``, TEI's shape)."""

from __future__ import annotations

from typing import Any, Dict

#: error_type -> its usual HTTP status (a ServeError may pick another, e.g. 413 for a too-long input)
STATUS = {
    "Empty": 400,  # an empty list of inputs
    "InvalidJSON": 400,  # the body is not JSON
    "Unsupported": 400,  # a route the served task has no meaning for
    "Validation": 422,  # a missing / unknown field, a wrong type, a bad option value (413 when too large)
    "Tokenizer": 422,  # the pipeline's preprocessing refused the input (no [MASK], empty question ...)
    "Backend": 424,  # the model failed on this request (the other requests of its batch are not affected)
    "NotFound": 404,
    "MethodNotAllowed": 405,
    "Overloaded": 429,  # more requests queued than --max-concurrent-requests
    "Unhealthy": 503,  # the inference worker is not running
}


class ServeError(Exception):
    """A request the server refuses or could not answer.

    Args:
        message: what is wrong (field, value, expected).
        error_type: one of :data:`STATUS`.
        status: the HTTP status; default ``STATUS[error_type]``.
    """

    def __init__(self, message: str, error_type: str = "Validation", status: int = 0):
        super().__init__(message)
        self.error_type = error_type
        self.status = status or STATUS[error_type]

    def payload(self) -> Dict[str, Any]:
        return {"error": str(self), "error_type": self.error_type}


def too_large(message: str) -> ServeError:
    """413 Validation (TEI's status for a too-long input, a too-large batch or body)."""
    return ServeError(message, "Validation", 413)
