"""Image folders: layouts, decoding, resizing, errors and the cache."""

import contextlib
import json
import os
import resource
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from imgclf.datasets import cache, load, load_folder
from imgclf.datasets.folder import image_size, read_image
from imgclf.errors import DatasetError


def write_image(path: Path, pixels: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


def solid(value: int, shape=(6, 5, 3)) -> np.ndarray:
    return np.full(shape, value, np.uint8)


@pytest.fixture
def flat_folder(tmp_path):
    """root/<class>/<image>: 3 cats, 2 dogs, as lossless PNG so pixels are exact."""
    root = tmp_path / "pets"
    for i in range(3):
        write_image(root / "cat" / f"{i}.png", solid(10 + i))
    for i in range(2):
        write_image(root / "dog" / f"{i}.png", solid(100 + i))
    (root / "dog" / "notes.txt").write_text("not an image, ignored")
    return root


def test_flat_layout_gives_one_split_with_exact_pixels(flat_folder):
    splits = load_folder(flat_folder, workers=1)
    assert list(splits) == ["train"]
    ds = splits["train"]
    assert ds.classes == ("cat", "dog")
    assert ds.images.shape == (5, 6, 5, 3) and ds.images.dtype == np.uint8
    assert ds.images.flags.c_contiguous
    np.testing.assert_array_equal(ds.labels, [0, 0, 0, 1, 1])
    np.testing.assert_array_equal(ds.images[:, 0, 0, 0], [10, 11, 12, 100, 101])


def test_train_test_layout_gives_both_splits(tmp_path):
    for split, n in (("train", 3), ("test", 1)):
        for cls in ("a", "b"):
            for i in range(n):
                write_image(tmp_path / split / cls / f"{i}.png", solid(i))
    splits = load_folder(tmp_path)
    assert sorted(splits) == ["test", "train"]
    assert len(splits["train"]) == 6 and len(splits["test"]) == 2
    assert splits["test"].class_counts() == {"a": 1, "b": 1}


def test_nested_groups_name_classes_group_slash_class(tmp_path):
    for group in ("Greek", "Latin"):
        for char in ("character01", "character02"):
            write_image(tmp_path / group / char / "x.png", solid(1, (4, 4)))
    ds = load_folder(tmp_path, mode="L")["train"]
    assert ds.classes == (
        "Greek/character01",
        "Greek/character02",
        "Latin/character01",
        "Latin/character02",
    )
    assert ds.images.shape == (4, 4, 4, 1)


def test_greyscale_and_resize(flat_folder):
    ds = load_folder(flat_folder, size=(3, 2), mode="L")["train"]
    assert ds.images.shape == (5, 3, 2, 1)


def test_mixed_sizes_without_size_name_the_file(flat_folder):
    odd = write_image(flat_folder / "dog" / "big.png", solid(0, (9, 9, 3)))
    with pytest.raises(DatasetError, match="size=") as info:
        load_folder(flat_folder)
    assert "big.png" in str(info.value)
    assert load_folder(flat_folder, size=(6, 5))["train"].images.shape[0] == 6
    odd.unlink()


def test_corrupt_image_raises_naming_file_or_is_skipped(flat_folder):
    bad = flat_folder / "cat" / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.raises(DatasetError, match="broken.jpg"):
        load_folder(flat_folder, workers=1)
    with pytest.warns(UserWarning, match="skipped 1 image"):
        ds = load_folder(flat_folder, on_error="skip")["train"]
    assert len(ds) == 5
    assert "broken.jpg" in ds.meta["skipped"][0]


def test_decompression_bomb_is_refused(flat_folder, monkeypatch):
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 20)  # 6x5 = 30 pixels is now a "bomb"
    with pytest.raises(DatasetError, match="decompression|exceeds|pixels"):
        load_folder(flat_folder, workers=1, use_cache=False)


def test_image_size_reads_the_header_without_decoding(tmp_path, monkeypatch):
    path = write_image(tmp_path / "wide.png", solid(7, shape=(6, 9, 3)))
    assert image_size(path) == (6, 9) == read_image(path).shape[:2]
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("pixels decoded"))
    assert image_size(path) == (6, 9)


@pytest.mark.parametrize("read", [image_size, read_image], ids=["image_size", "read_image"])
def test_single_image_readers_name_a_corrupt_or_bomb_file(tmp_path, monkeypatch, read):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 this is not really a jpeg")
    with pytest.raises(DatasetError, match="broken.jpg"):
        read(bad)
    big = write_image(tmp_path / "big.png", solid(1))
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 10)  # 30 pixels is over twice the limit
    with pytest.raises(DatasetError, match="big.png"):
        read(big)


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda root: root.mkdir(), "no class folders"),
        (lambda root: (root / "cat").mkdir(parents=True), "holds no images"),
        (lambda root: None, "not a folder"),
    ],
    ids=["empty-folder", "empty-class", "missing"],
)
def test_unusable_folders_say_what_is_wrong(tmp_path, make, message):
    root = tmp_path / "data"
    make(root)
    with pytest.raises(DatasetError, match=message):
        load_folder(root)


@pytest.mark.parametrize(
    "option, value",
    [("mode", "CMYK"), ("on_error", "ignore"), ("size", (0, 4)), ("size", (1, 2, 3))],
)
def test_bad_options_name_the_argument(flat_folder, option, value):
    with pytest.raises(ValueError, match=option):
        load_folder(flat_folder, **{option: value})


def test_second_load_comes_from_cache_and_matches(flat_folder):
    first = load_folder(flat_folder)["train"]
    second = load_folder(flat_folder)["train"]
    assert "cached" not in first.meta and second.meta["cached"]
    np.testing.assert_array_equal(first.images, second.images)
    np.testing.assert_array_equal(first.labels, second.labels)
    assert first.classes == second.classes


@pytest.mark.parametrize("change", ["modify", "add", "remove"])
def test_a_changed_folder_invalidates_the_cache(flat_folder, change):
    load_folder(flat_folder)
    target = flat_folder / "cat" / "0.png"
    if change == "modify":
        write_image(target, solid(77))
        os.utime(target, ns=(time.time_ns(), time.time_ns() + 10**9))
    elif change == "add":
        write_image(flat_folder / "cat" / "9.png", solid(77))
    else:
        target.unlink()
    ds = load_folder(flat_folder)["train"]
    assert "cached" not in ds.meta
    assert len(ds) == {"modify": 5, "add": 6, "remove": 4}[change]
    if change != "remove":
        assert 77 in ds.images[:, 0, 0, 0]


def cache_entry():
    """The one folder-cache entry (a Zarr store) the test's loads wrote."""
    (key,) = (cache.cache_dir() / "folders").iterdir()
    (entry,) = key.glob("*.zarr")
    return entry


def test_corrupt_cache_entry_is_rebuilt_not_trusted(flat_folder):
    expected = load_folder(flat_folder)["train"].images
    chunk = cache_entry() / "train_images" / "c" / "0" / "0" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:100])  # truncate
    ds = load_folder(flat_folder)["train"]
    assert "cached" not in ds.meta
    np.testing.assert_array_equal(ds.images, expected)
    assert load_folder(flat_folder)["train"].meta["cached"]  # rewritten whole


def test_failed_load_leaves_no_cache_file(flat_folder):
    (flat_folder / "cat" / "broken.png").write_bytes(b"garbage")
    with pytest.raises(DatasetError):
        load_folder(flat_folder)
    folders = cache.cache_dir() / "folders"
    assert not folders.exists() or not any(folders.iterdir())


def test_unwritable_cache_warns_but_loads(flat_folder, monkeypatch, tmp_path):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    monkeypatch.setenv("IMGCLF_CACHE", str(blocker))
    with pytest.warns(UserWarning, match="could not write the image cache"):
        assert len(load_folder(flat_folder)["train"]) == 5


def test_cache_key_depends_on_options(flat_folder):
    load_folder(flat_folder)
    assert "cached" not in load_folder(flat_folder, mode="L")["train"].meta


def test_plain_path_spec_detects_a_folder(flat_folder):
    assert load(str(flat_folder))["train"].classes == ("cat", "dog")
    assert load(f"folder:{flat_folder}", mode="L")["train"].images.shape[-1] == 1


@pytest.mark.slow
def test_shared_cifar10_jpeg_folder(cifar_splits):
    train, test = cifar_splits["train"], cifar_splits["test"]
    assert (len(train), len(test)) == (50_000, 10_000)
    assert train.classes == (
        "airplane",
        "automobile",
        "bird",
        "cat",
        "deer",
        "dog",
        "frog",
        "horse",
        "ship",
        "truck",
    )
    assert set(train.class_counts().values()) == {5000}
    assert set(test.class_counts().values()) == {1000}
    assert train.images.shape[1:] == (32, 32, 3) and train.images.dtype == np.uint8
    assert 0 < train.images.mean() < 255  # real pixels, not a blank array


# --- issue 12: hostile and unlucky input ---------------------------------------------------


@contextlib.contextmanager
def within(seconds: float):
    """Fail instead of hanging (a FIFO opened for reading blocks until a writer comes)."""

    def alarm(signum, frame):
        raise TimeoutError(f"took more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture(scope="module")
def giant_png(tmp_path_factory) -> bytes:
    """A 9000x9000 greyscale PNG of one colour: 81 MB decoded (243 MB as RGB), 0.4 MB."""
    path = tmp_path_factory.mktemp("giant") / "giant.png"
    Image.new("L", (9000, 9000), 7).save(path, compress_level=1)
    return path.read_bytes()


def giant_folder(root: Path, data: bytes, count: int) -> Path:
    (root / "big").mkdir(parents=True)
    for i in range(count):
        (root / "big" / f"{i}.png").write_bytes(data)
    return root


def run_capped(code: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh Python whose address space is capped at 1 GiB."""
    cap = 1 << 30

    def limit():
        resource.setrlimit(resource.RLIMIT_AS, (cap, cap))

    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=limit,
        env={**os.environ, "IMGCLF_PROGRESS": "0", "OMP_NUM_THREADS": "1", **(env or {})},
    )


def test_decompression_bomb_folder_is_refused_before_decoding_within_1_gib(tmp_path, giant_png):
    """Ten 9000x9000 PNGs (4 MB on disk) would be 2.4 GB of RGB pixels: refused
    from the headers by the default 2 GiB budget, in a process that could not decode them."""
    root = giant_folder(tmp_path / "bombs", giant_png, 10)
    assert sum(f.stat().st_size for f in (root / "big").iterdir()) < 4_000_000
    code = (
        "import resource\n"
        "from imgclf.datasets import load_folder\n"
        "from imgclf.errors import DatasetError\n"
        "try:\n"
        f"    load_folder({str(root)!r}, workers=1)\n"
        "except DatasetError as exc:\n"
        "    print('refused:', exc)\n"
        "print('peak MB', resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024)\n"
    )
    done = run_capped(code, {"IMGCLF_CACHE": str(tmp_path / "cache")})
    assert done.returncode == 0, done.stderr
    assert "refused:" in done.stdout, done.stdout
    message = done.stdout.splitlines()[0]
    assert str(root) in message and "2,430,000,000 bytes" in message
    assert f"{2 << 30:,}" in message and "IMGCLF_MAX_DECODED_BYTES" in message
    assert not (tmp_path / "cache").exists()  # nothing was decoded, nothing cached


def test_budget_is_overridable_and_names_folder_total_and_budget(tmp_path, giant_png, monkeypatch):
    root = giant_folder(tmp_path / "six", giant_png, 6)
    with pytest.raises(DatasetError) as info:
        load_folder(root, max_bytes=1 << 30)
    assert f"{6 * 9000 * 9000 * 3:,} bytes" in str(info.value)
    assert f"{1 << 30:,} bytes" in str(info.value) and str(root) in str(info.value)
    monkeypatch.setenv("IMGCLF_MAX_DECODED_BYTES", "100M")
    with pytest.raises(DatasetError, match=f"{100 << 20:,} bytes"):
        load_folder(root, mode="L")
    # resizing shrinks what is kept: 6 x 90x90 fits, decoded one at a time
    ds = load_folder(root, size=(90, 90), mode="L", use_cache=False, workers=1)["train"]
    assert ds.images.shape == (6, 90, 90, 1) and (ds.images == 7).all()


def test_budget_is_checked_before_any_decoding(flat_folder, monkeypatch):
    from imgclf.datasets import folder

    monkeypatch.setattr(folder, "_decode_all", lambda *a: pytest.fail("decoded"))
    with pytest.raises(DatasetError, match="over the decoded-pixel budget of 100 bytes"):
        load_folder(flat_folder, max_bytes=100)  # 5 images of 6x5x3 = 450 bytes


@pytest.mark.parametrize(
    "value, fits", [("449", False), ("450", True), ("1K", True), ("0.5KiB", True)]
)
def test_budget_from_the_environment(flat_folder, monkeypatch, value, fits):
    monkeypatch.setenv("IMGCLF_MAX_DECODED_BYTES", value)
    if fits:
        assert len(load_folder(flat_folder, use_cache=False)["train"]) == 5
    else:
        with pytest.raises(DatasetError, match="budget of 449 bytes"):
            load_folder(flat_folder, use_cache=False)


@pytest.mark.parametrize("value", ["lots", "0", "-5", "1X"])
def test_a_bad_budget_names_the_variable(flat_folder, monkeypatch, value):
    monkeypatch.setenv("IMGCLF_MAX_DECODED_BYTES", value)
    with pytest.raises(ValueError, match="IMGCLF_MAX_DECODED_BYTES"):
        load_folder(flat_folder)
    with pytest.raises(ValueError, match="max_bytes"):
        load_folder(flat_folder, max_bytes=0)


@pytest.mark.parametrize("read", [load_folder, read_image], ids=["load_folder", "read_image"])
def test_an_absurd_size_is_refused_up_front(flat_folder, read):
    target = flat_folder if read is load_folder else flat_folder / "cat" / "0.png"
    with pytest.raises(ValueError, match=r"size=99999x99999 makes 29,999,400,003 bytes"):
        read(target, size=(99999, 99999))


def test_one_image_over_the_budget_is_refused_from_its_header(tmp_path, giant_png, monkeypatch):
    path = tmp_path / "giant.png"
    path.write_bytes(giant_png)
    monkeypatch.setattr(Image.Image, "load", lambda self: pytest.fail("pixels decoded"))
    with pytest.raises(DatasetError, match=r"giant.png: a 9000x9000 L image takes 81,000,000"):
        read_image(path, size=(8, 8), max_bytes=10_000_000)


def write_16bit_png(path: Path, values) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.asarray(values, dtype=np.uint16)).save(path)
    return path


@pytest.mark.parametrize("suffix", [".png", ".tif", ".pgm"])
def test_16_bit_images_keep_their_high_byte(tmp_path, suffix):
    path = write_16bit_png(tmp_path / f"deep{suffix}", [[0, 255, 300, 30000, 65535]])
    expected = [0, 0, 1, 117, 255]  # value >> 8: 300 and 30000 are not 255
    np.testing.assert_array_equal(read_image(path, mode="L")[0, :, 0], expected)
    np.testing.assert_array_equal(read_image(path)[0, :, :], np.repeat([expected], 3, 0).T)


@pytest.mark.parametrize(
    "dtype, values, expected",
    [
        (np.int32, [0, 10, 200, 255], [0, 10, 200, 255]),  # within 8 bits: unchanged
        (np.int32, [0, 150, 300], [0, 128, 255]),  # scaled by the maximum, not clipped
        (np.int32, [0, 100, 70000], [0, 0, 255]),
        (np.float32, [0.0, 0.5, 1.0], [0, 128, 255]),  # floats: [0, 1] is black to white
        (np.float32, [0.0, 1.0, 4.0], [0, 64, 255]),
    ],
)
def test_32_bit_images_are_scaled_not_clipped(tmp_path, dtype, values, expected):
    path = tmp_path / "deep.tif"
    Image.fromarray(np.asarray([values], dtype=dtype)).save(path)
    np.testing.assert_array_equal(read_image(path, mode="L")[0, :, 0], expected)


@pytest.mark.parametrize("value", [-1.0, np.nan, np.inf])
def test_negative_or_non_finite_pixels_are_refused_by_name(tmp_path, value):
    path = tmp_path / "odd.tif"
    Image.fromarray(np.asarray([[0.5, value]], dtype=np.float32)).save(path)
    with pytest.raises(DatasetError, match="odd.tif: .*non-negative, finite"):
        read_image(path)


def test_a_folder_of_16_bit_images_trains_on_scaled_pixels(tmp_path):
    for cls, value in (("dim", 300), ("bright", 30000)):
        write_16bit_png(tmp_path / cls / "0.png", np.full((4, 4), value))
    ds = load_folder(tmp_path, mode="L")["train"]
    assert ds.classes == ("bright", "dim")
    np.testing.assert_array_equal(ds.images[:, 0, 0, 0], [117, 1])


NON_UTF8 = os.fsdecode(b"\xff\xfe.png")


def test_non_utf8_names_load_cache_and_are_named_readably(flat_folder):
    write_image(flat_folder / "cat" / NON_UTF8, solid(50))
    bad_class = flat_folder / os.fsdecode(b"\xe9t\xe9")
    write_image(bad_class / "ok.png", solid(60))
    (bad_class / NON_UTF8).write_bytes(b"not a png")
    with pytest.raises(DatasetError) as info:
        load_folder(flat_folder, workers=1)
    assert "\\xe9t\\xe9/\\xff\\xfe.png: " in str(info.value)
    str(info.value).encode("utf-8")  # printable: no lone surrogates
    with pytest.warns(UserWarning, match=r"\\xff\\xfe\.png") as caught:
        ds = load_folder(flat_folder, on_error="skip", workers=1)["train"]
    assert "\n" not in str(caught[0].message)
    assert ds.classes == ("cat", "dog", "\\xe9t\\xe9")
    assert ds.class_counts() == {"cat": 4, "dog": 2, "\\xe9t\\xe9": 1}
    again = load_folder(flat_folder, on_error="skip")["train"]
    assert again.meta["cached"] and again.classes == ds.classes
    np.testing.assert_array_equal(again.images, ds.images)


def test_the_skip_warning_stays_one_line(flat_folder):
    (flat_folder / "cat" / "two\nlines.png").write_bytes(b"\x89PNG\r\n\x1a\nbroken")
    with pytest.warns(UserWarning, match="skipped 1 image") as caught:
        load_folder(flat_folder, on_error="skip", use_cache=False)
    message = str(caught[0].message)
    assert "\n" not in message and "two\\nlines.png" in message


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_a_fifo_is_refused_not_waited_on(flat_folder):
    fifo = flat_folder / "cat" / "pipe.png"
    os.mkfifo(fifo)
    with within(10):
        for read in (read_image, image_size):
            with pytest.raises(DatasetError, match="pipe.png: not a regular file"):
                read(fifo)
        with pytest.raises(DatasetError, match="pipe.png: not a regular file"):
            load_folder(flat_folder, workers=1, use_cache=False)
        with pytest.warns(UserWarning, match="pipe.png: not a regular file"):
            ds = load_folder(flat_folder, on_error="skip", workers=1, use_cache=False)
    assert len(ds["train"]) == 5


def test_a_folder_given_as_an_image_is_refused(tmp_path):
    (tmp_path / "x.png").mkdir()
    with pytest.raises(DatasetError, match="x.png: not a regular file"):
        read_image(tmp_path / "x.png")


EPS = b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\nshowpage\n"


def test_only_raster_formats_are_read_eps_never_reaches_pillow(flat_folder, monkeypatch):
    from PIL import EpsImagePlugin

    monkeypatch.setattr(EpsImagePlugin.EpsImageFile, "_open", lambda self: pytest.fail("EPS"))
    (flat_folder / "cat" / "drawing.eps").write_bytes(EPS)
    (flat_folder / "cat" / "disguised.png").write_bytes(EPS)
    with pytest.raises(DatasetError, match="disguised.png: not an image in a format"):
        read_image(flat_folder / "cat" / "disguised.png")
    with pytest.raises(DatasetError, match="drawing.eps: not an image in a format"):
        read_image(flat_folder / "cat" / "drawing.eps")
    with pytest.warns(UserWarning, match="skipped 1 image"):  # the .eps is not even listed
        assert len(load_folder(flat_folder, on_error="skip")["train"]) == 5


def test_the_listing_takes_exactly_the_supported_endings():
    from imgclf.datasets.folder import FORMATS, image_extensions

    assert set(FORMATS) == {"PNG", "JPEG", "BMP", "GIF", "TIFF", "WEBP", "PPM"}
    assert {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp", ".ppm"} <= (
        image_extensions()
    )
    assert {".pgm", ".pbm"} <= image_extensions()
    assert not {".eps", ".ps", ".pdf", ".ico", ".psd", ".xpm"} & image_extensions()


def test_a_misnamed_image_still_reads(tmp_path):
    path = tmp_path / "photo.jpg"
    Image.fromarray(solid(42)).save(path, format="PNG")
    assert read_image(path)[0, 0, 0] == 42


def test_mixed_sizes_are_found_from_headers_even_when_skipping(flat_folder, monkeypatch):
    write_image(flat_folder / "dog" / "big.png", solid(0, (9, 9, 3)))
    with pytest.raises(DatasetError, match="big.png: image is 9x9, but .* 5x6; pass size="):
        load_folder(flat_folder, on_error="skip", workers=1)


@pytest.mark.parametrize(
    "damage",
    ["drop-array", "labels-out-of-range", "wrong-classes", "wrong-shape"],
)
def test_an_inconsistent_cache_entry_is_a_miss(flat_folder, damage):
    expected = load_folder(flat_folder)["train"]
    entry = cache_entry()
    if damage == "drop-array":
        shutil.rmtree(entry / "train_images")
    elif damage == "labels-out-of-range":
        chunk = entry / "train_labels" / "c" / "0"
        chunk.write_bytes((np.frombuffer(chunk.read_bytes(), "<i8") + 5).tobytes())
    elif damage == "wrong-classes":
        group = json.loads((entry / "zarr.json").read_text())
        group["attributes"]["imgclf_folder"]["splits"]["train"]["classes"] = ["cat", "cow"]
        (entry / "zarr.json").write_text(json.dumps(group))
    else:
        meta = json.loads((entry / "train_images" / "zarr.json").read_text())
        meta["shape"][2] = 2
        meta["chunk_grid"]["configuration"]["chunk_shape"][2] = 2
        (entry / "train_images" / "zarr.json").write_text(json.dumps(meta))
    ds = load_folder(flat_folder)["train"]
    assert "cached" not in ds.meta
    np.testing.assert_array_equal(ds.images, expected.images)
    assert load_folder(flat_folder)["train"].meta["cached"]


def test_decoding_workers_run_only_a_few_chunks_ahead_of_the_sinks():
    """Decoded chunks wait in the parent only ``ahead`` at a time, however slow the reader;
    results come in order, and the tasks not yet run are cancelled when the reader stops."""
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from imgclf.datasets.folder import _in_order_ahead

    started, lock = [], threading.Lock()

    def task(i, j):
        with lock:
            started.append(i)
        return i * j

    with ThreadPoolExecutor(4) as pool:
        results = _in_order_ahead(pool, task, 3, range(50), range(50))
        taken = []
        for result in results:
            time.sleep(0.002)  # a slow sink: the workers would race ahead with pool.map
            with lock:
                assert len(started) <= len(taken) + 1 + 3
            taken.append(result)
            if len(taken) == 20:
                break
        results.close()
    assert taken == [i * i for i in range(20)]
    assert len(started) <= 20 + 3  # the rest were never submitted or were cancelled
