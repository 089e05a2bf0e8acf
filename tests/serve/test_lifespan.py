"""The ASGI lifespan: start-up leaves the loaded objects out of later garbage collections."""

from __future__ import annotations

import asyncio
import gc

from imgclf.serve.server import build_app


def _run_lifespan(app) -> list[str]:
    """Start the app up and shut it down as a server does; the messages it sent."""

    async def drive() -> list[str]:
        incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[str] = []

        async def receive():
            return incoming.pop(0)

        async def send(message):
            sent.append(message["type"])

        await app({"type": "lifespan"}, receive, send)
        return sent

    return asyncio.run(drive())


def test_start_up_freezes_what_is_loaded(digits_files):
    app = build_app([str(digits_files["models"]["linear"])])
    assert gc.get_freeze_count() == 0
    try:
        sent = _run_lifespan(app)
        assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
        # the app and its model are among the frozen objects: no collection walks them
        assert gc.get_freeze_count() > 1000
    finally:
        gc.unfreeze()
