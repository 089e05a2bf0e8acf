"""Fuzz image decoding (``read_image``, shared by folders and ``predict``).

Seeded mutations of small valid PNG, JPEG, GIF, BMP, TIFF, WebP and PGM files: bit
flips, truncation, header size fields set huge (PNG with its CRC recomputed, so that
Pillow reads on), chunk splicing between files. Every case runs in the harness's worker
under a 1 GiB address-space cap and a 5 s timer and must end in pixels or a DatasetError.
"""

import io
import random
import struct
import zlib
from pathlib import Path

import numpy as np
from PIL import Image, features

from tests.fuzz._harness import cases_per_reader, run_reader


def seeds() -> dict[str, bytes]:
    """Small valid files, one per format and pixel kind: suffix-tagged name -> bytes."""
    rng = np.random.default_rng(0)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    found = {}

    def save(name, image, fmt, **options):
        out = io.BytesIO()
        image.save(out, fmt, **options)
        found[name] = out.getvalue()

    save("rgb.png", Image.fromarray(rgb), "PNG")
    save("grey.png", Image.fromarray(rgb[..., 0]), "PNG")
    save("deep.png", Image.fromarray(rgb[..., 0].astype(np.uint16) * 257), "PNG")
    save("palette.png", Image.fromarray(rgb).convert("P"), "PNG")
    save("photo.jpg", Image.fromarray(rgb), "JPEG", quality=80)
    save("progressive.jpg", Image.fromarray(rgb), "JPEG", progressive=True)
    save("anim.gif", Image.fromarray(rgb).convert("P"), "GIF")
    save("rgb.bmp", Image.fromarray(rgb), "BMP")
    save("rgb.tif", Image.fromarray(rgb), "TIFF", compression="tiff_lzw")
    save("deep.tif", Image.fromarray(rgb[..., 0].astype(np.uint16) * 100), "TIFF")
    save("float.tif", Image.fromarray(rgb[..., 0].astype(np.float32) / 255), "TIFF")
    save("grey.pgm", Image.fromarray(rgb[..., 0]), "PPM")
    if features.check("webp"):
        save("rgb.webp", Image.fromarray(rgb), "WEBP", quality=80)
    return found


def fix_png_crcs(data: bytes) -> bytes:
    """Recompute every chunk's CRC, so that a mutation reaches the chunk's reader."""
    out, pos = bytearray(data[:8]), 8
    while pos + 8 <= len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        body = data[pos + 4 : pos + 8 + length]
        if pos + 12 + length > len(data):
            return bytes(out) + data[pos:]
        out += data[pos : pos + 8 + length] + struct.pack(">I", zlib.crc32(body))
        pos += 12 + length
    return bytes(out + data[pos:])


def huge_sizes(rng: random.Random, name: str, data: bytes) -> bytes:
    """Set the format's width/height fields to large values (or a random field elsewhere)."""
    big = rng.choice([0, 1, 2**15, 9000, 2**16 - 1, 50_000, 2**31 - 1, 2**32 - 1])
    data = bytearray(data)

    def put(at: int, field: bytes) -> None:
        data[at : at + len(field)] = field

    if name.endswith(".png"):  # IHDR width or height, CRC made right again
        put(16 + 4 * rng.randrange(2), struct.pack(">I", big))
        return fix_png_crcs(bytes(data))
    if name.endswith(".bmp"):
        put(18 + 4 * rng.randrange(2), struct.pack("<I", big))
    elif name.endswith(".gif"):  # logical screen, or the first image's descriptor
        descriptor = data.find(b"\x2c")
        at = rng.choice([6, 8] + ([descriptor + 5, descriptor + 7] if descriptor > 0 else []))
        put(at, struct.pack("<H", big & 0xFFFF))
    elif name.endswith(".jpg"):  # the frame header's height or width
        sof = max(data.find(b"\xff\xc0"), data.find(b"\xff\xc2"))
        if sof > 0:
            put(sof + 5 + 2 * rng.randrange(2), struct.pack(">H", big & 0xFFFF))
    elif name.endswith(".pgm"):
        return bytes(data).replace(b"16 12", f"{big} {big}".encode(), 1)
    else:  # TIFF, WebP: any 4-byte field near the start
        put(rng.randrange(4, min(len(data), 128) - 4), struct.pack("<I", big))
    return bytes(data)


def mutate(rng: random.Random, files: dict[str, bytes]) -> tuple[str, bytes]:
    name = rng.choice(sorted(files))
    data = bytearray(files[name])
    kind = rng.choice(["flip", "flip", "truncate", "huge", "huge", "splice"])
    if kind == "flip":
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "truncate":
        del data[rng.randrange(len(data)) :]
    elif kind == "huge":
        data = bytearray(huge_sizes(rng, name, bytes(data)))
    else:  # a piece of another file in place of a piece of this one
        other = files[rng.choice(sorted(files))]
        start, size = rng.randrange(len(other)), rng.randint(1, 200)
        at = rng.randrange(len(data))
        data[at : at + rng.randint(0, 200)] = other[start : start + size]
    if name.endswith(".png") and rng.random() < 0.5:
        data = bytearray(fix_png_crcs(bytes(data)))
    return name, bytes(data)


def test_fuzz_read_image(tmp_path: Path):
    rng = random.Random(12)
    files = seeds()
    paths = []
    for name, data in files.items():  # the seeds themselves must read
        (tmp_path / f"seed-{name}").write_bytes(data)
        paths.append(tmp_path / f"seed-{name}")
    for i in range(cases_per_reader(200)):
        name, data = mutate(rng, files)
        path = tmp_path / f"case{i:05d}-{name}"
        path.write_bytes(data)
        paths.append(path)
    report = run_reader("image", paths)
    assert report.failures == []
    assert all(r["outcome"] == "ok" for r in report.records[: len(files)])
    assert report.count("ok") > len(files) and report.count("error") > 0  # both reached
