"""Versions of an image at one L2 distance: within 1% of the target, found by bisection."""

import numpy as np
import pytest

from imgclf.challenges import calibrate, same_distance_versions
from imgclf.challenges.calibration import default_target, l2_distances
from imgclf.challenges.perturbations import perturb
from tests.challenges.conftest import smooth_images


def test_l2_distances_match_numpy():
    rng = np.random.default_rng(0)
    a, b = rng.integers(0, 256, (2, 7, 5, 4, 3), dtype=np.uint8)
    expected = np.linalg.norm(a.reshape(7, -1).astype(float) - b.reshape(7, -1), axis=1)
    assert np.allclose(l2_distances(a, b), expected)


@pytest.mark.parametrize("seed", range(4))
def test_same_distance_versions_are_within_one_percent_of_the_target(seed):
    image = smooth_images(n=1, side=32, seed=seed)[0]
    target = default_target(image, seed=seed)
    versions = same_distance_versions(image, seed=seed)
    assert [v.perturbation for v in versions] == ["occlude", "shift", "tint"]
    for version in versions:
        actual = l2_distances(version.image[None], image[None])[0]
        assert actual == pytest.approx(version.distance)
        assert abs(actual - target) <= 0.01 * target, version.label
        again = perturb(image[None], version.perturbation, version.severity, seed=seed)[0]
        assert np.array_equal(again, version.image)  # the severity reproduces the version


@pytest.mark.parametrize("name", ["rotate", "noise", "elastic", "brightness"])
@pytest.mark.parametrize("target", [300.0, 900.0])
def test_any_growing_perturbation_can_be_calibrated(name, target):
    image = smooth_images(n=1, side=24, seed=9)[0]
    version = calibrate(image, name, target, seed=1)
    assert abs(version.distance - target) <= 0.01 * target and version.severity > 0


def test_the_default_target_is_a_two_pixel_shift_at_32x32():
    image = smooth_images(n=1, side=32, seed=2)[0]
    shifted = perturb(image[None], "shift", 2, seed=0)
    assert default_target(image) == pytest.approx(l2_distances(shifted, image[None])[0])


def test_unreachable_target_and_flat_images_are_refused():
    image = smooth_images(n=1, side=16)[0]
    with pytest.raises(ValueError, match="out of reach"):
        calibrate(image, "flip", 1e6)
    with pytest.raises(ValueError, match="target must be a positive number"):
        calibrate(image, "tint", 0)
    with pytest.raises(ValueError, match="image is flat"):
        same_distance_versions(np.full((16, 16, 3), 7, np.uint8), names=("shift",))
