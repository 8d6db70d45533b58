"""OOD detectors on one interface (see :mod:`ssdlib.detectors.base`)."""

from ssdlib.detectors.base import Detector, FeatureSet, MissingInputError, NotFittedError

__all__ = ["Detector", "FeatureSet", "MissingInputError", "NotFittedError"]
