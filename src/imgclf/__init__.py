"""imgclf: data-driven image classification.

Load an image set (:mod:`imgclf.datasets`), train a classifier, choose its
hyperparameters on validation data, evaluate once on the test set, and look
at what it learned.

``import imgclf`` is cheap: the public names below are imported on first use
(PEP 562), so the command line answers ``--help`` before NumPy, scikit-learn
or matplotlib are loaded.
"""

from __future__ import annotations

import importlib

__all__ = ["Dataset", "ImgclfError", "NotFittedError", "__version__", "load"]

# The one place the version is written: pyproject.toml reads it from here (a dynamic
# version), so the installed metadata, `imgclf --version` and model files always agree,
# from a wheel or from a source tree alike. CHANGELOG.md says what each version changed.
__version__ = "0.1.0"

# public name -> the module that defines it
_LAZY = {
    "Dataset": "imgclf.datasets",
    "load": "imgclf.datasets",
    "ImgclfError": "imgclf.errors",
    "NotFittedError": "imgclf.errors",
}


def __getattr__(name: str):
    if name not in _LAZY:
        raise AttributeError(f"module 'imgclf' has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
