"""The PNG fast path decodes exactly as Pillow does, or declines (returns None).

PNGs are made by Pillow (its adaptive filters, every compression level) and by a
small encoder here that writes each of the five row filters on purpose; every
answer is compared with Pillow's decoding of the same bytes. Mutated files must
never decode to other pixels than Pillow's: the fast path may only decline.
"""

from __future__ import annotations

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from imgclf.serve.png import decode_png


def pillow_pixels(data: bytes, mode: str) -> np.ndarray:
    """Pillow's pixels as ``(H, W, C)``."""
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        pixels = np.asarray(image.convert(mode))
    return pixels[..., None] if pixels.ndim == 2 else pixels


def pillow_png(pixels: np.ndarray, **options) -> bytes:
    out = io.BytesIO()
    Image.fromarray(pixels.squeeze(-1) if pixels.shape[-1] == 1 else pixels).save(
        out, format="PNG", **options
    )
    return out.getvalue()


def chunk(kind: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))


def paeth(a, b, c):
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))


def filtered(pixels: np.ndarray, filters) -> bytes:
    """Rows of ``pixels`` (H, W, C) filtered as PNG does, filter ``filters[y]`` on row y."""
    height, width, bpp = pixels.shape
    rows = pixels.reshape(height, width * bpp).astype(np.int32)
    out = []
    for y, kind in enumerate(filters):
        x = rows[y]
        up = rows[y - 1] if y else np.zeros_like(x)
        left = np.concatenate([np.zeros(bpp, np.int32), x[:-bpp]])
        upleft = np.concatenate([np.zeros(bpp, np.int32), up[:-bpp]])
        predicted = [0, left, up, (left + up) // 2, paeth(left, up, upleft)][kind]
        out.append(bytes([kind]) + ((x - predicted) % 256).astype(np.uint8).tobytes())
    return b"".join(out)


def handmade_png(pixels, filters, *, extra=(), header=None, idat_parts=1) -> bytes:
    height, width, channels = pixels.shape
    colour = {1: 0, 3: 2}[channels]
    ihdr = header or struct.pack(">IIBBBBB", width, height, 8, colour, 0, 0, 0)
    data = zlib.compress(filtered(pixels, filters))
    cut = np.linspace(0, len(data), idat_parts + 1).astype(int)
    idats = b"".join(chunk(b"IDAT", data[a:b]) for a, b in zip(cut[:-1], cut[1:], strict=True))
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + b"".join(extra) + idats
        + chunk(b"IEND", b"")
    )  # fmt: skip


@pytest.mark.parametrize("shape", [(32, 32, 3), (7, 5, 3), (1, 1, 3), (28, 28, 1), (3, 9, 1)])
@pytest.mark.parametrize("level", [0, 1, 6, 9])
def test_pillows_pngs_decode_as_pillow(shape, level):
    rng = np.random.default_rng(level)
    smooth = np.cumsum(rng.integers(-6, 7, shape), axis=1) % 256  # (filters other than none)
    for pixels in (rng.integers(0, 256, shape, dtype=np.uint8), smooth.astype(np.uint8)):
        data = pillow_png(pixels, compress_level=level)
        got = decode_png(data, shape[0], shape[1], shape[2])
        np.testing.assert_array_equal(got, pixels)
        np.testing.assert_array_equal(got, pillow_pixels(data, "RGB" if shape[2] == 3 else "L"))


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("kind", [0, 1, 2, 3, 4, "mixed"])
def test_every_row_filter(channels, kind):
    rng = np.random.default_rng(3)
    pixels = rng.integers(0, 256, (9, 11, channels), dtype=np.uint8)
    filters = rng.integers(0, 5, 9) if kind == "mixed" else [kind] * 9
    data = handmade_png(pixels, filters, idat_parts=3)
    np.testing.assert_array_equal(decode_png(data, 9, 11, channels), pixels)
    np.testing.assert_array_equal(pillow_pixels(data, "RGB" if channels == 3 else "L"), pixels)


def test_harmless_chunks_are_read_past():
    pixels = np.random.default_rng(0).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    text = chunk(b"tEXt", b"Comment\x00hello")
    data = handmade_png(pixels, [1] * 4, extra=[text, chunk(b"pHYs", bytes(9))])
    np.testing.assert_array_equal(decode_png(data, 4, 4, 3), pixels)


def _declined_cases():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    good = handmade_png(rgb, [4] * 4)
    return {
        "another size": (good, (4, 5, 3)),
        "grey model, RGB file": (good, (4, 4, 1)),
        "RGBA": (pillow_png(rng.integers(0, 256, (4, 4, 4), dtype=np.uint8)), (4, 4, 3)),
        "palette": (_palette_png(rgb), (4, 4, 3)),
        "16-bit": (
            handmade_png(rgb, [0] * 4, header=struct.pack(">IIBBBBB", 4, 4, 16, 2, 0, 0, 0)),
            (4, 4, 3),
        ),  # noqa: E501
        "interlaced": (
            handmade_png(rgb, [0] * 4, header=struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 1)),
            (4, 4, 3),
        ),  # noqa: E501
        "transparency chunk": (
            handmade_png(rgb, [0] * 4, extra=[chunk(b"tRNS", bytes(6))]),
            (4, 4, 3),
        ),  # noqa: E501
        "bad checksum": (good[:-5] + bytes([good[-5] ^ 1]) + good[-4:], (4, 4, 3)),
        "truncated": (good[: len(good) // 2], (4, 4, 3)),
        "unknown filter": (_with_filter_byte(rgb, 7), (4, 4, 3)),
        "not a PNG": (b"GIF89a" + bytes(40), (4, 4, 3)),
        "JPEG": (_jpeg(rgb), (4, 4, 3)),
        "empty": (b"", (4, 4, 3)),
    }


def _palette_png(rgb):
    out = io.BytesIO()
    Image.fromarray(rgb).convert("P").save(out, format="PNG")
    return out.getvalue()


def _with_filter_byte(pixels, value):
    height, width, _ = pixels.shape
    rows = bytearray(filtered(pixels, [0] * height))
    rows[0] = value
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(rows)))
            + chunk(b"IEND", b""))  # fmt: skip


def _jpeg(rgb):
    out = io.BytesIO()
    Image.fromarray(rgb).save(out, format="JPEG")
    return out.getvalue()


@pytest.mark.parametrize("case", list(_declined_cases()))
def test_declines_what_it_does_not_decode_as_pillow(case):
    data, shape = _declined_cases()[case]
    assert decode_png(data, *shape) is None


def test_image_data_longer_or_shorter_than_the_image_is_declined():
    pixels = np.random.default_rng(2).integers(0, 256, (4, 4, 3), dtype=np.uint8)
    taller = np.concatenate([pixels, pixels[:1]])  # one row more than the header says
    ihdr = struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0)
    for body in (filtered(taller, [0] * 5), filtered(pixels, [0] * 4)[:-1]):
        data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(body))
                + chunk(b"IEND", b""))  # fmt: skip
        assert decode_png(data, 4, 4, 3) is None


def test_mutated_files_decode_as_pillow_or_are_declined():
    """1,000 mutated PNGs: bytes flipped anywhere (checksums then fail), or the filtered
    rows changed and the file rebuilt with valid checksums (filter types past 4 among
    them). Whenever the fast path answers, Pillow decodes the same pixels."""
    rng = np.random.default_rng(7)
    pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    original = handmade_png(pixels, rng.integers(0, 5, 8))
    ihdr = struct.pack(">IIBBBBB", 8, 8, 8, 2, 0, 0, 0)
    answered = 0
    for trial in range(1000):
        if trial % 2:
            data = bytearray(original)
        else:
            data = bytearray(filtered(pixels, rng.integers(0, 5, 8)))
        for _ in range(rng.integers(1, 4)):
            data[rng.integers(0, len(data))] = rng.integers(0, 256)
        if trial % 2 == 0:  # a valid file around the changed rows
            data = (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr)
                    + chunk(b"IDAT", zlib.compress(bytes(data))) + chunk(b"IEND", b""))  # fmt: skip
        elif trial % 5 == 1:
            data = data[: rng.integers(0, len(data))]
        got = decode_png(bytes(data), 8, 8, 3)
        if got is None:
            continue
        answered += 1
        np.testing.assert_array_equal(got, pillow_pixels(bytes(data), "RGB"))
    assert answered > 100  # the rebuilt files with filter types 0-4 all decode
