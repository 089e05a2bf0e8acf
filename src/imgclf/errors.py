"""Exceptions raised by imgclf.

Every error a user can cause derives from :class:`ImgclfError`, so a caller
(the command line among them) can catch the whole family at once::

    ImgclfError
     ├── DatasetError (ValueError)      a data source could not be read
     │    ├── FormatError               a file is not in the format it claims
     │    │                             (bad magic number, truncated, bad pickle)
     │    └── UnsafePickleError         a pickle asks for code outside the allow-list
     ├── DownloadError (OSError)         a download failed or its checksum differs
     ├── ModelFileError (ValueError)    a model file is truncated, tampered or unknown
     └── SigningKeyError (ValueError)   a model-signing key (file or variable) is unusable

Messages name the file or argument, the value found and what was expected.
Estimators raise scikit-learn's ``NotFittedError`` (re-exported here) when
used before ``fit``, so that scikit-learn tooling recognises it. It is
imported on first use, so that importing this module stays cheap.
"""

__all__ = [
    "DatasetError",
    "DownloadError",
    "FormatError",
    "ImgclfError",
    "ModelFileError",
    "NotFittedError",  # noqa: F822 (scikit-learn's, imported on first use: __getattr__)
    "SigningKeyError",
    "UnsafePickleError",
]


class ImgclfError(Exception):
    """Base class of every error imgclf raises on purpose."""


class DatasetError(ImgclfError, ValueError):
    """A data source (file, folder, spec) could not be turned into a Dataset."""


class FormatError(DatasetError):
    """A file is not in the format it claims to be: wrong magic, truncated, corrupt."""


class UnsafePickleError(FormatError):
    """A pickle refers to a global outside the allow-list; nothing in it was run."""


class DownloadError(ImgclfError, OSError):
    """A download failed, or the file received does not match its checksum."""


class ModelFileError(ImgclfError, ValueError):
    """A model file is truncated, tampered with, or of an unknown format version."""


class SigningKeyError(ImgclfError, ValueError):
    """A key for signing model files is missing, unreadable or not a hex key of 16+ bytes."""


def __getattr__(name: str):
    if name == "NotFittedError":  # scikit-learn's own, loaded only when asked for
        from sklearn.exceptions import NotFittedError

        return NotFittedError
    raise AttributeError(f"module 'imgclf.errors' has no attribute {name!r}")
