"""Checks shared by the picture tests."""

from pathlib import Path

from PIL import Image

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def assert_png(path: Path, min_size=(200, 150)) -> tuple[int, int]:
    """``path`` is a complete, decodable PNG at least ``min_size`` pixels; returns its size."""
    assert path.read_bytes()[:8] == PNG_SIGNATURE
    with Image.open(path) as image:
        image.load()  # decodes every byte: a truncated file fails here
        assert image.format == "PNG"
        assert image.size[0] >= min_size[0] and image.size[1] >= min_size[1]
        return image.size
