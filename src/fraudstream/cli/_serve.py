"""``fraudstream serve``: the synchronous decision API (FastAPI on uvicorn)."""

from __future__ import annotations

import logging

import typer

from fraudstream._redact import redact
from fraudstream.api import build_service, create_app, serving_model
from fraudstream.broker import free_port
from fraudstream.cli._app import app, kafka_client, load_settings

__all__ = ["serve"]

log = logging.getLogger(__name__)


@app.command()
def serve(
    host: str | None = typer.Option(None, help="Address to listen on (default 127.0.0.1)."),
    port: int | None = typer.Option(None, help="Port (default 8000; 0: a free port)."),
    budget_ms: int | None = typer.Option(
        None, help="Longest wait for the detector's decision before the fallback (default 100)."
    ),
    fallback: str | None = typer.Option(
        None, help="Decision answered when the budget runs out: allow, review or block."
    ),
    store_url: str | None = typer.Option(
        None, help="Store URL (default: FRAUDSTREAM_STORE__URL, else data/fraudstream.db)."
    ),
) -> None:
    """Answer POST /v1/decisions from the running detectors, within a time budget.

    Run it beside `fraudstream detect` (same topics, store and models directory); callers need
    an API key (`fraudstream apikey create`). OpenAPI documentation at /docs (docs/api.md).
    """
    import uvicorn

    settings = load_settings(
        store={"url": store_url},
        api={"host": host, "port": port, "budget_ms": budget_ms, "fallback_decision": fallback},
    )
    api = settings.api
    service = build_service(settings, kafka_client(settings))
    version, mode = serving_model(settings.models_dir)
    listen = api.port or free_port()
    extras = ", ".join(service.record_format.extra_names)
    log.info(
        "decision API at http://%s:%d (docs /docs): %s records%s, model %s, store %s, budget "
        "%d ms, fallback %s",
        api.host,
        listen,
        mode,
        f" with extra fields {extras}" if extras else "",
        version,
        redact(settings.store_url()),
        api.budget_ms,
        api.fallback_decision,
    )
    uvicorn.run(
        create_app(service, max_body_bytes=api.max_body_bytes),
        host=api.host,
        port=listen,
        log_config=None,  # fraudstream's own logging (no key ever reaches a line)
        access_log=False,
        lifespan="on",
        proxy_headers=False,  # the client's address is not used
        server_header=False,
    )
