"""Every picture imgclf draws, as matplotlib Figures saved to PNG (Agg, no window).

``cv``      cv_curve: accuracy against k, one dot per fold, mean ± std, best marked
"""

from imgclf.plots.cv import cv_curve

__all__ = ["cv_curve"]
