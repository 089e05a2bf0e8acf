"""imgclf: data-driven image classification.

Load an image set (:mod:`imgclf.datasets`), train a classifier, choose its
hyperparameters on validation data, evaluate once on the test set, and look
at what it learned.
"""

from importlib.metadata import PackageNotFoundError, version

from imgclf.datasets import Dataset, load
from imgclf.errors import ImgclfError, NotFittedError

try:
    __version__ = version("imgclf")
except PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0.0.0+unknown"

__all__ = ["Dataset", "ImgclfError", "NotFittedError", "__version__", "load"]
