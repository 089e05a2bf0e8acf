"""The lecture's arguments, measured on real data.

- :mod:`~imgclf.challenges.perturbations`: seeded, vectorized perturbations of
  uint8 image batches (viewpoint, illumination, occlusion, deformation,
  background clutter, noise), each with a severity; 0 is the identity.
- :mod:`~imgclf.challenges.calibration`: versions of an image at one L2
  distance, by bisection on their severity (the lecture's same-distance picture).
- :mod:`~imgclf.challenges.robustness`: a model's accuracy per perturbation and
  severity, as a record with ``to_records`` / ``to_json``.
- :mod:`~imgclf.challenges.dimensionality`: distance concentration and 1-NN
  accuracy as images are down-sampled (the curse of dimensionality).
- :mod:`~imgclf.challenges.embedding`: 2D t-SNE maps of images.
"""

from imgclf.challenges.calibration import Calibrated, calibrate, same_distance_versions
from imgclf.challenges.dimensionality import concentration, coverage_points
from imgclf.challenges.embedding import tsne
from imgclf.challenges.perturbations import PERTURBATIONS, default_severities, perturb
from imgclf.challenges.robustness import RobustnessResult, parse_perturbations, robustness

__all__ = [
    "PERTURBATIONS",
    "Calibrated",
    "RobustnessResult",
    "calibrate",
    "concentration",
    "coverage_points",
    "default_severities",
    "parse_perturbations",
    "perturb",
    "robustness",
    "same_distance_versions",
    "tsne",
]
