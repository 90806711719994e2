"""How the reference relay and the webhook receiver run under uvicorn: one place, both servers.

uvicorn's httptools parser answers a request carrying ``Upgrade: h2c`` (Java's HttpClient sends it
by default, so does ``curl --http2``) by logging "Unsupported upgrade request" and dropping the
body, so the handler sees an empty POST. h11 ignores the upgrade offer and reads the body, as
HTTP/1.1 allows. We therefore always use h11, whichever parsers are installed: the Airflow
environment has httptools, the Prefect one does not, and both must behave the same.

The access log goes through :mod:`relay_integrations.access_log`, so no query string or URL
secret reaches it.
"""

from __future__ import annotations

from typing import Any

from relay_integrations.access_log import install_access_filter

HTTP_IMPLEMENTATION = "h11"


def run(app: Any, *, host: str, port: int, log_level: str, access_log: bool = True) -> None:
    """Serve ``app`` until stopped, with the settings both servers share."""
    import uvicorn

    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, access_log=access_log,
                            http=HTTP_IMPLEMENTATION)  # configures logging, so the filter goes on after it
    install_access_filter()
    uvicorn.Server(config).run()
