"""The ASGI app: routes, the predict endpoint, pictures, metrics and the web page.

Bare ASGI on purpose: the README's "Serving" section gives the measurements
(routing by a dictionary and a path split costs microseconds; a framework's
request objects and validation cost more than classifying a 32x32 image).

Routes
------
======  ==========================================  ======================================
GET     ``/``, ``/static/{file}``                    the web page
GET     ``/metrics``                                 Prometheus text format
GET     ``/v1/models``, ``/v1/models/{name}``        what is served
POST    ``/v1/models/{name}/predict?top=5``          one image (``image/*`` or
                                                     ``application/octet-stream``) or a
                                                     ``multipart/form-data`` form of files;
                                                     ``&neighbors=0``: k-NN without them
GET     ``/v1/models/{name}/train/{i}.png``          a training image (k-NN neighbours)
GET     ``/v1/models/{name}/test/{i}.png``           a test image of ``--data``
GET     ``/v1/models/{name}/templates/{i}.png``      a linear model's class template
GET     ``/v2``, ``/v2/health/{live,ready}``,        Open Inference Protocol (KServe v2),
        ``/v2/models/{name}[/versions/1][/ready]``   see :mod:`imgclf.serve.protocol_v2`
POST    ``/v2/models/{name}[/versions/1]/infer``
======  ==========================================  ======================================

Every error a client causes is a 4xx ``{"error": "..."}`` naming what was
wrong; anything else is logged and answered 500: no request stops the server.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources

from imgclf.serve import protocol_v2
from imgclf.serve._http import (
    JSON_TYPE,
    Request,
    RequestError,
    error_body,
    read_body,
    send_bytes,
    send_json,
)
from imgclf.serve.batching import MicroBatcher
from imgclf.serve.metrics import Metrics
from imgclf.serve.models import ServedModel, png_bytes
from imgclf.serve.multipart import parse_multipart

__all__ = ["App", "Settings"]

log = logging.getLogger("imgclf.serve")
# A request that starts this long after the last one ended, with none in flight, is
# answered at once: at one connection the client's round trip (>= 0.1 ms) separates
# requests, under load the next one starts as the last ends (see MicroBatcher.submit)
QUIET_GAP = 50e-6

_STATIC_TYPES = {
    ".html": b"text/html; charset=utf-8",
    ".js": b"text/javascript; charset=utf-8",
    ".css": b"text/css; charset=utf-8",
}
_IMAGE_ENDINGS = {
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "image/bmp": ".bmp",
    "image/tiff": ".tif",
    "image/webp": ".webp",
}
_PNG = b"image/png"
_CLOSE = [(b"connection", b"close")]


@dataclass
class Settings:
    """What a server accepts and how it batches.

    Attributes
    ----------
    max_body_size : int
        Bytes of one request body (413 above).
    body_timeout : float
        Seconds to receive one body (408 above).
    max_files : int
        Files in one multipart form.
    max_decoded_bytes : int
        Decoded pixels of one upload, in bytes (400 above: a decompression bomb).
    max_batch : int
        Rows in one model call.
    max_wait : float
        Seconds an idle model waits for more rows (0: one event-loop turn).
    batch_float_models : bool
        Rank the rows of a batch in one call for every model, not only for those whose
        answers cannot depend on it (:attr:`ServedModel.batch_invariant`): faster under
        load, but float scores may then differ from one-at-a-time in their last bits.
    batch_thread : bool
        Run batches on a thread, so that the loop reads requests meanwhile.
    inline_decode_bytes : int
        Uploads up to this size are decoded on the loop; larger ones on a thread.
    """

    max_body_size: int = 10_000_000
    body_timeout: float = 30.0
    max_files: int = 64
    max_decoded_bytes: int = 64 << 20
    max_batch: int = 32
    max_wait: float = 0.0
    batch_float_models: bool = False
    batch_thread: bool = False
    inline_decode_bytes: int = 64 << 10


class App:
    """The ASGI application serving ``models``.

    Parameters
    ----------
    models : dict of str to ServedModel
    settings : Settings, optional
    metrics : Metrics, optional
        Default: a fresh registry (``$PROMETHEUS_MULTIPROC_DIR`` honoured).
    version : str, optional
        Reported by ``GET /v2``.
    """

    def __init__(
        self,
        models: dict[str, ServedModel],
        settings: Settings | None = None,
        metrics: Metrics | None = None,
        version: str = "",
    ):
        self.models, self.settings = models, settings or Settings()
        self.metrics = metrics or Metrics()
        self.version = version
        self._executor = (
            ThreadPoolExecutor(1, "imgclf-batch") if self.settings.batch_thread else None
        )
        self._batched: dict[str, bool] = {}
        # whether the server is answering one request after a pause (the batchers ask)
        self._in_flight, self._last_done, self._after_pause = 0, 0.0, False
        self.batchers = {name: self._batcher(model) for name, model in models.items()}
        self._static = _static_files()
        self._pictures: dict[tuple, bytes] = {}

    def batched(self, model: ServedModel) -> bool:
        """Whether a batch's rows go through ``model`` in one call (else one call per row).

        Only when it cannot change an answer (:attr:`ServedModel.batch_invariant`) and is
        faster (:meth:`ServedModel.batches_faster`, measured at start), or when
        ``batch_float_models`` says so.
        """
        if model.name not in self._batched:
            self._batched[model.name] = self.settings.batch_float_models or (
                model.batch_invariant and model.batches_faster()
            )
        return self._batched[model.name]

    def _batcher(self, model: ServedModel) -> MicroBatcher:
        def on_batch(size: int, seconds: float) -> None:
            self.metrics.batch(model.name, size, seconds)

        def run(rows, options: tuple[int, bool]) -> list[dict]:
            return model.predict_rows(rows, *options)

        return MicroBatcher(
            run,
            max_batch=self.settings.max_batch,
            max_wait=self.settings.max_wait,
            together=self.batched(model),
            executor=self._executor,
            on_batch=on_batch,
            crowded=lambda: self._in_flight > 1 or not self._after_pause,
        )

    # --- ASGI -------------------------------------------------------------------------------

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http":
            await self._http(scope, receive, send)
        elif scope["type"] == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive, send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                _freeze_loaded_objects()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                if self._executor is not None:
                    self._executor.shutdown(wait=True)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope, receive, send) -> None:
        start = time.perf_counter()
        request = Request(scope)
        endpoint, status = "unmatched", 500
        self._in_flight += 1
        self._after_pause = self._in_flight == 1 and start - self._last_done > QUIET_GAP
        try:
            endpoint, handler, args = self._route(request)
            status = await handler(request, receive, send, *args)
        except RequestError as exc:
            endpoint = request.endpoint or endpoint
            status = exc.status
            close = _CLOSE if status in (408, 413) else []  # the rest of the body is not read
            await send_bytes(send, status, error_body(str(exc)), JSON_TYPE, exc.headers + close)
        except Exception:  # noqa: BLE001 - a bug answers 500 and is logged; the server goes on
            log.exception("%s %s failed", request.method, request.path)
            await send_bytes(send, 500, error_body("internal server error"), JSON_TYPE)
        finally:
            self._in_flight -= 1
            self._last_done = time.perf_counter()
            self.metrics.request(endpoint, request.method, status, time.perf_counter() - start)

    # --- routing ----------------------------------------------------------------------------

    def _route(self, request: Request):
        """``(endpoint pattern, handler, args)`` for a request, or a 404 / 405."""
        parts = request.path.strip("/").split("/")
        head = parts[0]
        if head == "v1":
            return self._route_v1(request, parts[1:])
        if head == "v2":
            return self._route_v2(request, parts[1:])
        if request.path == "/":
            return _fixed(request, "/", "GET", self._index)
        if head == "static" and len(parts) == 2:
            return _fixed(request, "/static/{file}", "GET", self._static_file, (parts[1],))
        if request.path == "/metrics":
            return _fixed(request, "/metrics", "GET", self._metrics)
        raise RequestError(404, f"no such path: {request.path[:200]}")

    def _model(self, name: str) -> ServedModel:
        model = self.models.get(name)
        if model is None:
            known = ", ".join(self.models) or "none"
            raise RequestError(404, f"no model named {name[:100]!r}; this server has: {known}")
        return model

    def _route_v1(self, request: Request, parts: list[str]):
        if parts == ["models"]:
            return _fixed(request, "/v1/models", "GET", self._list)
        if len(parts) < 2 or parts[0] != "models":
            raise RequestError(404, f"no such path: {request.path[:200]}")
        rest = parts[2:]
        if not rest:
            found = ("/v1/models/{name}", "GET", self._describe, ())
        elif rest == ["predict"]:
            found = ("/v1/models/{name}/predict", "POST", self._predict, ())
        elif len(rest) == 2 and rest[0] in ("train", "test", "templates"):
            found = (f"/v1/models/{{name}}/{rest[0]}/{{i}}.png", "GET", self._picture, tuple(rest))
        else:
            raise RequestError(404, f"no such path: {request.path[:200]}")
        return self._model_route(request, parts[1], *found)

    def _route_v2(self, request: Request, parts: list[str]):
        if not parts or parts == [""]:
            return _fixed(request, "/v2", "GET", self._v2_server)
        if parts[0] == "health" and len(parts) == 2 and parts[1] in ("live", "ready"):
            return _fixed(request, f"/v2/health/{parts[1]}", "GET", self._v2_health, (parts[1],))
        if parts[0] != "models" or len(parts) < 2:
            raise RequestError(404, f"no such path: {request.path[:200]}")
        rest = parts[2:]
        if len(rest) >= 2 and rest[0] == "versions":
            if rest[1] != "1":
                raise RequestError(404, f"model {parts[1][:100]!r} has one version, 1")
            rest = rest[2:]
        if not rest:
            found = ("/v2/models/{name}", "GET", self._v2_model)
        elif rest == ["ready"]:
            found = ("/v2/models/{name}/ready", "GET", self._v2_ready)
        elif rest == ["infer"]:
            found = ("/v2/models/{name}/infer", "POST", self._v2_infer)
        else:
            raise RequestError(404, f"no such path: {request.path[:200]}")
        return self._model_route(request, parts[1], *found)

    def _model_route(self, request: Request, name: str, endpoint, method, handler, extra=()):
        """A route on one model: its endpoint is known (for metrics) before the model is."""
        request.endpoint = endpoint
        return endpoint, _method(request, method, handler), (self._model(name), *extra)

    # --- v1 ---------------------------------------------------------------------------------

    async def _list(self, request, receive, send) -> int:
        await send_json(send, 200, {"models": [m.describe() for m in self.models.values()]})
        return 200

    async def _describe(self, request, receive, send, model: ServedModel) -> int:
        await send_json(send, 200, model.describe())
        return 200

    async def _predict(self, request, receive, send, model: ServedModel) -> int:
        options = (
            request.int_param("top", 5, 1, len(model.classes)),
            bool(request.int_param("neighbors", 1, 0, 1)),
        )
        multipart, uploads = await self._uploads(request, receive)
        rows = [await self._decode(model, data, name) for name, data in uploads]
        batcher = self.batchers[model.name]
        if len(rows) == 1:
            answers = [await batcher.submit(rows[0][0], options)]
        else:
            answers = await asyncio.gather(*(batcher.submit(row, options) for row, _ in rows))
        results = [
            _v1_answer(model, answer, resized, name)
            for answer, (_, resized), (name, _) in zip(answers, rows, uploads, strict=True)
        ]
        payload = {"predictions": results} if multipart else results[0]
        await send_json(send, 200, {"model": model.name, **payload})
        return 200

    async def _uploads(self, request: Request, receive) -> tuple[bool, list[tuple[str, bytes]]]:
        """``(multipart?, [(file name, bytes)])`` of a predict request; 415 for other types."""
        kind, params = request.content_type()
        multipart = kind == "multipart/form-data"
        if not (multipart or kind.startswith("image/") or kind == "application/octet-stream"):
            raise RequestError(
                415,
                f"unsupported media type {kind or '(none)'!r}: send an image (image/* or "
                "application/octet-stream) or a multipart/form-data form of image files",
            )
        settings = self.settings
        body = await read_body(receive, request, settings.max_body_size, settings.body_timeout)
        if not multipart:
            if not body:
                raise RequestError(400, "empty request body: expected an image")
            return False, [("upload" + _IMAGE_ENDINGS.get(kind, ""), body)]
        parts = parse_multipart(body, params.get("boundary"), settings.max_files)
        files = [(_upload_name(p.filename, i), p.data) for i, p in enumerate(parts) if p.filename]
        if not files:
            raise RequestError(400, "multipart form without a file: add one or more image files")
        return True, files

    async def _decode(self, model: ServedModel, data: bytes, name: str):
        """``(row, resized)``; large uploads decode on a thread, so the loop goes on."""
        budget = self.settings.max_decoded_bytes
        try:
            if len(data) <= self.settings.inline_decode_bytes:
                return model.decode(data, name, budget)
            loop = asyncio.get_running_loop()
            return await loop.run_in_executor(None, model.decode, data, name, budget)
        except (ValueError, OSError) as exc:  # DatasetError and Pillow's own
            raise RequestError(400, str(exc)) from None

    async def _picture(self, request, receive, send, model: ServedModel, kind: str, item: str):
        index = _png_index(item)
        key = (model.name, kind, index)
        body = self._pictures.get(key)
        label = None
        images = model.images
        if kind == "templates":
            if not model.has_templates():
                raise RequestError(404, f"model {model.name} has no class templates (linear only)")
            stack, labels = self._templates(model), None
        elif images is None or getattr(images, kind) is None:
            raise RequestError(404, f"model {model.name} has no {kind} images (start with --data)")
        else:
            stack, labels = getattr(images, kind), getattr(images, f"{kind}_labels")
        if index >= len(stack):
            raise RequestError(404, f"{kind} image {index} of model {model.name}: out of range")
        if labels is not None:
            label = images.classes[int(labels[index])]
        if body is None:
            body = png_bytes(stack[index])
            if len(self._pictures) < 4096:
                self._pictures[key] = body
        headers = [(b"cache-control", b"max-age=3600")]
        if label is not None:
            headers.append((b"x-imgclf-class", label.encode("ascii", "backslashreplace")))
        await send_bytes(send, 200, body, _PNG, headers)
        return 200

    def _templates(self, model: ServedModel):
        key = (model.name, "templates", "all")
        if key not in self._pictures:
            self._pictures[key] = model.templates()
        return self._pictures[key]

    # --- v2 ---------------------------------------------------------------------------------

    async def _v2_server(self, request, receive, send) -> int:
        await send_json(send, 200, protocol_v2.server_metadata(self.version))
        return 200

    async def _v2_health(self, request, receive, send, which: str) -> int:
        await send_json(send, 200, {which: True})
        return 200

    async def _v2_model(self, request, receive, send, model: ServedModel) -> int:
        await send_json(send, 200, protocol_v2.model_metadata(model))
        return 200

    async def _v2_ready(self, request, receive, send, model: ServedModel) -> int:
        await send_json(send, 200, {"name": model.name, "ready": True})
        return 200

    async def _v2_infer(self, request, receive, send, model: ServedModel) -> int:
        if request.header(b"content-encoding", b"identity") != b"identity":
            raise RequestError(415, "compressed infer requests are not supported")
        settings = self.settings
        body = await read_body(receive, request, settings.max_body_size, settings.body_timeout)
        parsed = protocol_v2.parse_infer_request(
            body, request.headers.get(protocol_v2.HEADER_LENGTH), model, settings.max_batch * 32
        )
        batcher = self.batchers[model.name]
        options = (parsed.top, not {"neighbors", "distances"}.isdisjoint(parsed.outputs))
        answers = await asyncio.gather(*(batcher.submit(row, options) for row in parsed.rows))
        out, headers = protocol_v2.infer_response(parsed, answers, model)
        kind = b"application/octet-stream" if headers else JSON_TYPE
        await send_bytes(send, 200, out, kind, headers)
        return 200

    # --- page and metrics -------------------------------------------------------------------

    async def _index(self, request, receive, send) -> int:
        return await self._static_file(request, receive, send, "index.html")

    async def _static_file(self, request, receive, send, name: str) -> int:
        found = self._static.get(name)
        if found is None:
            raise RequestError(404, f"no such file: /static/{name[:100]}")
        await send_bytes(send, 200, found[0], found[1], [(b"cache-control", b"no-cache")])
        return 200

    async def _metrics(self, request, receive, send) -> int:
        body, kind = self.metrics.render()
        await send_bytes(send, 200, body, kind)
        return 200


def _fixed(request: Request, endpoint: str, method: str, handler, args: tuple = ()):
    """A route's ``(endpoint, handler, args)``, its endpoint noted first (metrics label)."""
    request.endpoint = endpoint
    return endpoint, _method(request, method, handler), args


def _method(request: Request, allowed: str, handler):
    """``handler`` when the request's method is ``allowed``, else a 405."""
    if request.method != allowed:
        raise RequestError(
            405,
            f"{request.method} is not allowed on {request.path[:200]}; use {allowed}",
            [(b"allow", allowed.encode())],
        )
    return handler


def _png_index(item: str) -> int:
    stem, dot, ending = item.rpartition(".")
    if not dot or ending != "png" or not stem.isdigit() or len(stem) > 9:
        raise RequestError(404, f"expected {{index}}.png, got {item[:100]!r}")
    return int(stem)


def _upload_name(filename: str, index: int) -> str:
    """A client's file name, made safe to show: printable, at most 200 characters."""
    shown = "".join(c if c.isprintable() else "?" for c in filename.replace("\\", "/"))
    return shown.rsplit("/", 1)[-1][:200] or f"file{index}"


def _v1_answer(model: ServedModel, answer: dict, resized, name: str) -> dict:
    """The predict endpoint's answer for one image."""
    result = {"file": name, "label": answer["top"][0]["class"], "resized": resized,
              "score": answer["score"], "top": answer["top"]}  # fmt: skip
    if "neighbors" in answer:
        result["neighbors"] = answer["neighbors"]
    return result


def _static_files() -> dict[str, tuple[bytes, bytes]]:
    """The web page's files, read once: name -> (bytes, content type)."""
    files = {}
    for entry in resources.files("imgclf.serve").joinpath("static").iterdir():
        ending = "." + entry.name.rpartition(".")[2]
        if ending in _STATIC_TYPES:
            files[entry.name] = (entry.read_bytes(), _STATIC_TYPES[ending])
    return files


def _freeze_loaded_objects() -> None:
    """Collect, then exempt every object alive at start-up from later collections.

    A loaded server holds ~150,000 objects (numpy, scikit-learn, numba, the models)
    that live as long as it does; each full collection walked them all, 112 ms on
    CIFAR-10's linear model, a stall for whichever request was in flight. Frozen, the
    collector only looks at what requests allocate.
    """
    gc.collect()
    gc.freeze()
