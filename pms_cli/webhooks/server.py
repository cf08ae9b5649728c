"""Running the receiver: uvicorn in the foreground (`pms webhook serve`) or in a thread (tests).

Graceful shutdown lets in-flight requests finish (each is acknowledged only after its inbox row
is committed), then the lifespan shutdown lets the applier finish its batch. Whatever is still
unapplied stays in the inbox and is replayed on the next start.
"""

from pms_cli.serving import BackgroundServer, listening_socket, run

__all__ = ["BackgroundServer", "listening_socket", "run"]
