"""Running the app: models loaded and checked at start, uvicorn with uvloop and httptools.

:func:`serve` loads every model file (a bad one stops the start with its
error), binds the socket itself (so a busy port is a clear error and port 0
picks a free one, which it reports), then runs uvicorn: in this process, or in
``workers`` worker processes that share the socket, each loading the models
again. SIGTERM lets in-flight requests finish, then :func:`serve` returns
(the command exits 0); Ctrl-C does the same and the command reports it.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import tempfile
from collections.abc import Callable
from dataclasses import asdict

from imgclf._memory import release_free_memory
from imgclf.errors import ImgclfError
from imgclf.serve.app import App, Settings
from imgclf.serve.models import ServedModel, load_data_images, load_models

__all__ = ["app_from_environment", "build_app", "describe_model", "serve"]

CONFIG_ENV = "IMGCLF_SERVE_CONFIG"  # how worker processes learn what to serve


def build_app(
    model_paths, *, data: str | None = None, settings: Settings | None = None, key=None
) -> App:
    """An :class:`~imgclf.serve.app.App` serving ``model_paths`` (``--data``: pictures)."""
    from imgclf import __version__

    models = load_models(model_paths, key=key)
    if data is not None:
        _attach(models, data)
    for model in models.values():
        model.warm_up()
    app = App(models, settings, version=__version__)  # (measures which models batch)
    release_free_memory()  # what loading and those trials freed, back to the system
    return app


def _attach(models: dict[str, ServedModel], data: str) -> None:
    """Give ``--data``'s images to every model of the same image shape."""
    images = load_data_images(data)
    shape = (images.train if images.train is not None else images.test).shape[1:]
    matching = [m for m in models.values() if m.image_shape == shape]
    if not matching:
        wanted = ", ".join(
            f"{m.name}: {'x'.join(map(str, m.image_shape))}" for m in models.values()
        )
        raise ImgclfError(
            f"--data {data}: its images are {'x'.join(map(str, shape))}; no model takes them "
            f"({wanted})"
        )
    for model in matching:
        model.attach_data(images)


def describe_model(model: ServedModel) -> str:
    """One line: ``model knn ready: knn (k=3), 10 classes, 32x32x3 images, scores: ...``."""
    kind = model.saved.model_type + (f" (k={model.k})" if model.is_knn else "")
    shape = "x".join(map(str, model.image_shape))
    signed = ", signature verified" if model.saved.verified else ""
    return (
        f"model {model.name} ready: {kind}, {len(model.classes)} classes, {shape} images, "
        f"scores: {model.score_kind} ({model.path}{signed})"
    )


def app_from_environment() -> App:
    """The app of a worker process, from what :func:`serve` put in ``$IMGCLF_SERVE_CONFIG``."""
    config = json.loads(os.environ[CONFIG_ENV])
    key = bytes.fromhex(config["key"]) if config["key"] else None
    return build_app(
        config["models"], data=config["data"], settings=Settings(**config["settings"]), key=key
    )


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket (IPv6 when ``host`` is an IPv6 address)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise OSError(f"cannot listen on {host}:{port} ({exc.strerror or exc})") from None
    sock.set_inheritable(True)
    return sock


def serve(
    model_paths,
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    data: str | None = None,
    settings: Settings | None = None,
    key: bytes | None = None,
    say: Callable[[str], None] = print,
) -> None:
    """Serve the models until SIGTERM or Ctrl-C.

    Parameters
    ----------
    model_paths : sequence of path
        Model files (``NAME=PATH`` to name one); each is loaded and checked first.
    host, port : str, int
        Where to listen; port 0 picks a free port (reported by ``say``).
    workers : int
        Worker processes (1: this process).
    data : str, optional
        Dataset spec whose images the page shows (random test images, neighbours).
    settings : Settings, optional
    key : bytes, optional
        Refuse model files not signed with this key.
    say : callable
        Receives the start-up lines (one per model, then where it listens).
    """
    settings = settings or Settings()
    app = build_app(model_paths, data=data, settings=settings, key=key)
    for model in app.models.values():
        batches = "one call per batch" if app.batched(model) else "one call per image"
        say(f"{describe_model(model)}; {batches}")
    sock = bind(host, port)
    address = sock.getsockname()
    shown = f"[{address[0]}]" if ":" in address[0] else address[0]
    try:
        if workers == 1:
            say(f"serving on http://{shown}:{address[1]}/ (Ctrl-C or SIGTERM stops)")
            _run_here(app, sock)
        else:
            del app  # each worker loads its own copy
            say(f"serving on http://{shown}:{address[1]}/ with {workers} worker processes")
            _run_workers(model_paths, data, settings, key, workers, sock)
    finally:
        sock.close()


def _uvicorn_config(app, workers: int = 1):
    import uvicorn

    return uvicorn.Config(
        app,
        loop="uvloop",
        http="httptools",
        ws="none",
        lifespan="on",
        access_log=False,
        log_level="warning",
        proxy_headers=False,
        server_header=False,
        workers=workers,
        factory=workers > 1,
        timeout_graceful_shutdown=30,
    )


def _run_here(app: App, sock: socket.socket) -> None:
    import uvicorn

    server = uvicorn.Server(_uvicorn_config(app))
    with _sigterm_exits_cleanly():
        server.run(sockets=[sock])


@contextlib.contextmanager
def _sigterm_exits_cleanly():
    """uvicorn re-raises the signal that stopped it: make that SIGTERM a no-op (exit 0)."""
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _run_workers(model_paths, data, settings, key, workers, sock) -> None:
    from uvicorn.supervisors import Multiprocess

    config = {
        "models": [os.fspath(p) for p in model_paths],
        "data": data,
        "settings": asdict(settings),
        "key": key.hex() if key else None,
    }
    metrics_dir = None
    if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        metrics_dir = tempfile.mkdtemp(prefix="imgclf-metrics-")
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir
    os.environ[CONFIG_ENV] = json.dumps(config)
    try:
        uvicorn_config = _uvicorn_config("imgclf.serve.server:app_from_environment", workers)
        Multiprocess(uvicorn_config, sockets=[sock]).run()
    finally:
        os.environ.pop(CONFIG_ENV, None)
        if metrics_dir is not None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(metrics_dir, ignore_errors=True)
