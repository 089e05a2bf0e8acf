"""Image features: raw pixels, mean image, standardization, HOG, colour histogram, k-means patches.

Every feature is a scikit-learn transformer, so it slots into a
:class:`~sklearn.pipeline.Pipeline` in front of any classifier. Inputs are
images ``(n, H, W, C)`` (uint8 0-255, or float 0-1), greyscale ``(n, H, W)``,
or their flattened rows ``(n, H*W*C)`` together with ``image_shape``.

======================  =======================================================
:class:`Pixels`         the pixels as rows, dtype kept (uint8 stays uint8)
:class:`MeanImage`      :class:`imgclf.linear.MeanImage` (subtract the mean image)
:class:`Standardize`    centre and divide by the std, per feature (learned)
:class:`HOG`            histograms of oriented gradients of the grey image
:class:`ColorHistogram` histogram of the hue (HSV), fraction of pixels per bin
:class:`KMeansFeatures` patches encoded against k-means centroids of whitened
                        patches, pooled by quadrant (Coates, Lee & Ng, 2011; learned)
:class:`FeatureSet`     named features side by side (``make_features``)
======================  =======================================================

HOG and the colour histogram are stateless (``fit`` only checks shapes) and
vectorized over blocks of images, spread over threads: NumPy releases the GIL
in its loops. Their outputs equal scikit-image's ``skimage.feature.hog`` and
``skimage.color.rgb2hsv`` + ``numpy.histogram`` run image by image, to
rounding (see ``tests/features/``), and are several times faster (see
``benchmarks/bench_features_net.py``). :class:`KMeansFeatures` learns from
unlabeled images; its transform is one float32 matrix product per block of
images (``benchmarks/bench_kmeans_features.py``). A :class:`FeatureSet` with
``cache=True`` keeps the features of large inputs in the imgclf cache, keyed
by a digest of the pixels and the parameters (:mod:`imgclf.datasets.cache`).

One module per concern: ``_images`` (shapes, blocks on threads, the base
class), ``pixels``, ``hog``, ``color``, ``kmeans`` with ``_patches`` (patch
sampling, whitening, the encoding kernel), ``combine`` (FeatureSet).

Examples
--------
>>> import numpy as np
>>> images = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 3), dtype=np.uint8)
>>> make_features(["hog", "color"]).fit_transform(images).shape   # 3x3 blocks x 36 + 10
(5, 334)
"""

from imgclf.features.color import ColorHistogram
from imgclf.features.combine import FEATURES, FeatureSet, learned_patches, make_features
from imgclf.features.hog import BLOCK_NORMS, HOG
from imgclf.features.kmeans import KMeansFeatures
from imgclf.features.pixels import Pixels, Standardize
from imgclf.preprocessing import MeanImage

__all__ = [
    "BLOCK_NORMS",
    "FEATURES",
    "ColorHistogram",
    "FeatureSet",
    "HOG",
    "KMeansFeatures",
    "MeanImage",
    "Pixels",
    "Standardize",
    "learned_patches",
    "make_features",
]
