"""``imgclf serve``: saved models over HTTP (extra ``serve``).

======================  ==============================================================
``server``              start-up: load and check the models, bind, run uvicorn
                        (uvloop + httptools), one process or several workers
``app``                 the ASGI app: routes, the predict endpoint, pictures, the page
``protocol_v2``         Open Inference Protocol (KServe v2) REST, binary-data extension
``batching``            micro-batching: requests arriving together, one model call
``metrics``             Prometheus counters and histograms (``GET /metrics``)
``models``              a served model: decode and rank through :mod:`imgclf.predict`
``png``                 the fast path for plain PNG uploads at the model's size
``multipart``           ``multipart/form-data`` uploads, bounded
``_http``               requests, bounded bodies, JSON answers and errors
``static/``             the web page (HTML, JS, CSS; nothing from a CDN)
======================  ==============================================================

Nothing here is imported by ``import imgclf``; the command imports it when it runs.
"""

__all__ = ["App", "Settings", "build_app", "serve"]


def __getattr__(name: str):
    if name in ("App", "Settings"):
        from imgclf.serve import app

        return getattr(app, name)
    if name in ("build_app", "serve"):
        from imgclf.serve import server

        return getattr(server, name)
    raise AttributeError(f"module 'imgclf.serve' has no attribute {name!r}")
