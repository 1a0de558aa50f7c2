"""``hotline serve``: the HTTP API and pages under uvicorn."""
from __future__ import annotations

from typing import Optional

import typer

from serve.cli._common import app


@app.command()
def serve(
    host: Optional[str] = typer.Option(None, help="Interface to listen on (default HOTLINE_HOST, 127.0.0.1)"),
    port: Optional[int] = typer.Option(None, help="Port (default HOTLINE_PORT, 8000)"),
    workers: int = typer.Option(1, help="Worker processes (one per core)"),
) -> None:
    """Run the HTTP API and pages with uvicorn."""
    import uvicorn

    from serve.config import get_settings

    from pydantic import ValidationError

    from serve.auth import check_bind
    from serve.config import settings_error

    try:
        s = get_settings()
    except ValidationError as exc:
        typer.echo(f"error: {settings_error(exc)}", err=True)
        raise typer.Exit(2) from None
    host, port = host or s.host, port or s.port
    try:
        check_bind(host, s.key_ring)
    except ValueError as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from None
    uvicorn.run("serve.app:create_app", factory=True, host=host, port=port, workers=workers, log_level="info", access_log=s.access_log,
                timeout_keep_alive=s.keep_alive_s)
