"""The one error type for conditioning that cannot be used.

Raised by the pipelines, the preview warp and the engines alike; ``field``
uses the protocol's names (``"frame.keypoints"``, ``"reference"``,
``"params.overlap"``), so the server turns it into an ERROR reply that names
the field without parsing any message text.
"""
from __future__ import annotations


class InputError(ValueError):
    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.field = field
