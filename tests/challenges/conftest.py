"""Small synthetic images for the challenges tests: smooth, like photographs, not noise.

Neighbouring pixels of a photograph are alike, so a larger shift or rotation
moves an image further; in white noise every shift is as far as any other.
"""

import numpy as np
import pytest
from scipy.ndimage import gaussian_filter


def smooth_images(n=24, side=16, channels=3, seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.normal(size=(n, side, side, channels))
    smooth = gaussian_filter(noise, sigma=(0, side / 6, side / 6, 0), mode="wrap")
    smooth /= smooth.std(axis=(1, 2, 3), keepdims=True)
    return np.clip(128 + 50 * smooth, 0, 255).astype(np.uint8)


def bordered_images(n=6, side=16, seed=0) -> np.ndarray:
    """A uniform background of one colour per image and a textured square object in the middle."""
    rng = np.random.default_rng(seed)
    images = np.empty((n, side, side, 3), np.uint8)
    images[:] = rng.integers(0, 256, (n, 1, 1, 3))
    quarter = side // 4
    inner = side - 2 * quarter
    # the object's colours stay 88+ grey levels from the background's (mod 256)
    texture = rng.integers(-40, 41, (n, inner, inner, 3))
    images[:, quarter:-quarter, quarter:-quarter] = (images[:, :1, :1] + 128 + texture) % 256
    return images


@pytest.fixture
def smooth():
    return smooth_images()


@pytest.fixture
def bordered():
    return bordered_images()
