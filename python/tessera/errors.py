"""The one exception type of the client."""
from typing import Optional


class TesseraError(Exception):
    """A request or command failed.

    `str(error)` is the server's `{"error": …}` text (or the binary's error output) unchanged;
    for failures that never reached a server it says what URL or command failed and how.
    `status` is the HTTP status, or None when there was no HTTP answer.
    """

    def __init__(self, message: str, status: Optional[int] = None) -> None:
        super().__init__(message)
        self.status = status
