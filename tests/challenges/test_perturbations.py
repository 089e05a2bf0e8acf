"""Perturbations: identity at severity 0, distance growing with severity, NumPy references."""

import numpy as np
import pytest

from imgclf.challenges import PERTURBATIONS, default_severities, perturb
from imgclf.challenges.calibration import l2_distances
from imgclf.challenges.perturbations import BLOCK, estimated_background
from tests.challenges.conftest import bordered_images, smooth_images

ALL = list(PERTURBATIONS)

# Increasing severities per perturbation (positive side of two-sided ones).
LADDERS = {
    "shift": [0.5, 1, 2, 3],
    "flip": [0.2, 0.5, 0.8, 1.0],
    "rotate": [3, 10, 20, 40],
    "brightness": [0.05, 0.1, 0.3, 0.6],
    "contrast": [0.1, 0.3, 0.6, 1.0],
    "tint": [2, 10, 30, 60],
    "occlude": [2, 4, 8, 12],
    "noise": [2, 8, 16, 32],
    "elastic": [0.25, 0.5, 1, 2],
    "background": [0.2, 0.4, 0.7, 1.0],
}


def images_for(name):
    return bordered_images(n=24) if name == "background" else smooth_images()


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("shape", [(5, 16, 16, 3), (3, 9, 7, 1)])
def test_severity_zero_is_the_identity(name, shape):
    images = np.random.default_rng(1).integers(0, 256, shape, dtype=np.uint8)
    out = perturb(images, name, 0.0, seed=4)
    assert out.dtype == np.uint8 and np.array_equal(out, images)
    assert out is not images


@pytest.mark.parametrize("name", ALL)
def test_distance_grows_with_severity(name):
    images = images_for(name)
    distances = [
        l2_distances(perturb(images, name, s, seed=2), images).mean() for s in LADDERS[name]
    ]
    assert np.all(np.diff(distances) > 0), distances
    assert distances[0] > 0


@pytest.mark.parametrize("name", ALL)
def test_seeded_and_shape_preserving(name):
    images = images_for(name)[:8]
    severity = default_severities(name, images.shape[1:])[-1]
    a, b = perturb(images, name, severity, seed=5), perturb(images, name, severity, seed=5)
    assert a.shape == images.shape and a.dtype == np.uint8 and np.array_equal(a, b)


@pytest.mark.parametrize("name", ["shift", "rotate", "tint", "occlude", "noise", "elastic"])
def test_seeds_draw_different_choices(name):
    images = smooth_images(n=16)
    assert not np.array_equal(perturb(images, name, 3, seed=0), perturb(images, name, 3, seed=1))


def edge_shift(image, dy, dx):
    """NumPy reference: move by whole pixels, the edge pixel filling what is uncovered."""
    rows = np.clip(np.arange(image.shape[0]) - dy, 0, image.shape[0] - 1)
    cols = np.clip(np.arange(image.shape[1]) - dx, 0, image.shape[1] - 1)
    return image[rows][:, cols]


@pytest.mark.parametrize("pixels", [1, 3])
def test_whole_pixel_shift_is_an_edge_padded_translation(smooth, pixels):
    out = perturb(smooth, "shift", pixels, seed=0)
    seen = set()
    for image, moved in zip(smooth, out, strict=True):
        moves = [(0, pixels), (0, -pixels), (pixels, 0), (-pixels, 0)]
        hits = [m for m in moves if np.array_equal(moved, edge_shift(image, *m))]
        assert len(hits) == 1
        seen.add(hits[0])
    assert len(seen) == 4  # every direction is drawn


def test_fractional_shift_blends_the_whole_pixel_shifts(smooth):
    half = perturb(smooth, "shift", 1.5, seed=0).astype(float)
    one, two = perturb(smooth, "shift", 1, seed=0), perturb(smooth, "shift", 2, seed=0)
    assert np.abs(half - (one.astype(float) + two) / 2).max() <= 1.0  # dithered rounding


def test_rotation_by_a_right_angle_is_rot90(smooth):
    out = perturb(smooth, "rotate", 90, seed=0).astype(int)
    for image, turned in zip(smooth.astype(int), out, strict=True):
        candidates = [np.rot90(image, 1), np.rot90(image, -1)]
        assert min(np.abs(turned - c).max() for c in candidates) <= 1


def test_flip_mirrors_the_chosen_share(smooth):
    assert np.array_equal(perturb(smooth, "flip", 1.0), smooth[:, :, ::-1])
    half = perturb(smooth, "flip", 0.5, seed=3)
    flipped = [np.array_equal(h, s[:, ::-1]) for h, s in zip(half, smooth, strict=True)]
    unchanged = [np.array_equal(h, s) for h, s in zip(half, smooth, strict=True)]
    assert all(f or u for f, u in zip(flipped, unchanged, strict=True))
    assert 0 < sum(flipped) < len(smooth)


@pytest.mark.parametrize("severity", [-0.3, 0.3])
def test_brightness_scales_intensities(smooth, severity):
    expected = np.clip(smooth * (1 + severity), 0, 255)
    assert np.abs(perturb(smooth, "brightness", severity) - expected).max() < 1.0


def test_contrast_one_flattens_each_image_to_its_mean(smooth):
    out = perturb(smooth, "contrast", 1.0).astype(float)
    means = smooth.mean(axis=(1, 2, 3))
    assert np.abs(out - means[:, None, None, None]).max() < 1.0


def test_tint_and_noise_have_the_stated_size():
    grey = np.full((64, 16, 16, 3), 128, np.uint8)
    tinted = perturb(grey, "tint", 20.0, seed=1).astype(float) - 128
    per_image = tinted.mean(axis=(1, 2))  # (n, C): one colour per image
    assert np.allclose(np.sqrt((per_image**2).mean(axis=1)), 20.0, atol=0.3)
    assert tinted.std(axis=(1, 2)).max() < 0.6  # the same colour on every pixel (dither only)
    noisy = perturb(grey, "noise", 10.0, seed=1).astype(float) - 128
    assert abs(noisy.std() - 10.0) < 0.2 and abs(noisy.mean()) < 0.2


@pytest.mark.parametrize("side", [4, 5.5])
def test_occlusion_covers_a_box_of_the_given_area(side):
    white = np.full((20, 16, 16, 1), 255, np.uint8)
    covered = (255 - perturb(white, "occlude", side, seed=0).astype(float)) / 255
    assert np.allclose(covered.sum(axis=(1, 2, 3)), side**2, rtol=0.03)
    rows, cols = np.nonzero(covered[0, :, :, 0] > 0.99)
    assert np.ptp(rows) <= side and np.ptp(cols) <= side  # one box, not scattered pixels


def test_background_is_found_on_a_uniform_border_and_replaced_there_only(bordered):
    masks = estimated_background(bordered)
    quarter = bordered.shape[1] // 4
    expected = np.ones(bordered.shape[:3], bool)
    expected[:, quarter:-quarter, quarter:-quarter] = False
    assert np.array_equal(masks, expected)
    out = perturb(bordered, "background", 1.0, seed=0)
    inside = (slice(None), slice(quarter, -quarter), slice(quarter, -quarter))
    assert np.array_equal(out[inside], bordered[inside])
    assert (out[~expected] == bordered[~expected]).all()
    assert (out != bordered).any(axis=-1)[expected].mean() > 0.5  # clutter from other images


def test_background_leaves_images_without_a_uniform_border_unchanged():
    textured = np.random.default_rng(0).integers(0, 256, (4, 16, 16, 3), dtype=np.uint8)
    assert not estimated_background(textured).any()
    assert np.array_equal(perturb(textured, "background", 1.0), textured)


def test_background_uses_given_masks(smooth):
    masks = np.zeros(smooth.shape[:3], bool)
    masks[:, :4] = True
    out = perturb(smooth, "background", 1.0, masks=masks)
    assert np.array_equal(out[:, 4:], smooth[:, 4:]) and (out[:, :4] != smooth[:, :4]).any()


def test_blocks_do_not_change_the_first_block():
    images = smooth_images(n=BLOCK + 5, side=8)
    whole = perturb(images, "noise", 5.0, seed=3)
    assert np.array_equal(whole[:10], perturb(images[:10], "noise", 5.0, seed=3))
    assert not np.array_equal(whole[BLOCK : BLOCK + 5], whole[:5])


def test_default_severities_scale_pixels_with_the_image_side():
    assert default_severities("shift") == (1, 2, 4)
    assert default_severities("shift", (64, 64, 3)) == (2, 4, 8)
    assert default_severities("brightness", (64, 64, 3)) == (-0.3, 0.3, 0.6)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda x: perturb(x, "blur", 1), "perturbation must be one of 'shift'"),
        (lambda x: perturb(x, "flip", 2), r"severity of flip must be a number in \[0, 1\]"),
        (lambda x: perturb(x, "shift", -1), "got -1"),
        (lambda x: perturb(x, "brightness", float("nan")), "got nan"),
        (lambda x: perturb(x.astype(float), "shift", 1), "must be uint8 images"),
        (lambda x: perturb(x[0], "shift", 1), r"\(n, H, W, C\)"),
        (lambda x: perturb(x, "shift", 1, masks=x[..., 0] > 0), "background perturbation only"),
        (lambda x: perturb(x, "background", 1, masks=x[:2, ..., 0] > 0), "masks must have shape"),
    ],
)
def test_errors_name_the_argument_and_value(smooth, call, message):
    with pytest.raises(ValueError, match=message):
        call(smooth)
