"""Why an upload cannot become a logo: one exception per reason, each with its HTTP status."""

from __future__ import annotations


class RejectedImage(ValueError):
    """An upload that cannot become a logo; ``str(exc)`` is safe to show to the uploader."""

    status_code: int = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImageTooLarge(RejectedImage):
    """The file has more bytes than allowed."""

    status_code = 413


class NotAnImage(RejectedImage):
    """The file is not an image, or is an image in a format that is not accepted."""

    status_code = 415


class TooManyPixels(RejectedImage):
    """Width x height is over the limit (this is how decompression bombs are stopped)."""

    status_code = 422


class CorruptImage(RejectedImage):
    """The file claims an accepted format but is truncated or cannot be decoded."""

    status_code = 422
