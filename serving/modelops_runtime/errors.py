"""What can go wrong with a request, as kinds: the core raises a kind, and each transport
maps it to its own status (an HTTP code in http/errors.py, a gRPC status code in
grpc/servicer.py), so the core never chooses a transport's numbers.

Each kind's `code` is its status in the protocol's REST binding. It is also the `code`
label of `modelops_requests_total`, which the alerts read (a 5xx is the server's fault),
so every transport counts a kind alike.
"""

from __future__ import annotations

MAX_MESSAGE = 1024
"""An error message is cut to this many characters: it may echo what the client sent (a
100 KB input name), and a gRPC status message that long fails at the client."""


class ServingError(Exception):
    """A request the server refuses or cannot serve. The message is for the client."""

    code = "500"

    def __init__(self, message: str, retry_after: float | None = None):
        if len(message) > MAX_MESSAGE:
            message = message[:MAX_MESSAGE - 15] + "... (truncated)"
        super().__init__(message)
        self.message = message
        self.retry_after = retry_after
        """Seconds after which the same request may succeed (a busy model)."""


class InvalidRequest(ServingError):
    """Bad input: the request breaks the protocol or the model's declared tensors. Never
    worth retrying unchanged."""

    code = "400"


class Unauthenticated(ServingError):
    code = "401"


class NotFound(ServingError):
    """No such model, version or endpoint here."""

    code = "404"


class TooSlow(ServingError):
    """The client took too long to send its request."""

    code = "408"


class Conflict(ServingError):
    """The server cannot do it in its present state (a reload that failed, still serving
    the previous versions)."""

    code = "409"


class TooLarge(ServingError):
    code = "413"


class ClientGone(ServingError):
    """The client went away before its request was complete (nginx's 499)."""

    code = "499"


class ModelFailed(ServingError):
    """The model's own fault, never the client's: counted, logged once with its traceback."""

    code = "500"


class Unavailable(ServingError):
    """Not ready, or at the concurrency limit: try again (after `retry_after`)."""

    code = "503"
