"""Training of SSD's encoders (SimCLR, SupCon) and of supervised CE classifiers (SupCE, GODIN).

- :mod:`~ssdlib.training.skeleton`: what every trainer shares (device, precision, generators, NaN stop, checkpoints)
- :mod:`~ssdlib.training.loop`: :class:`Recipe`, :class:`Trainer`, :func:`train`, :class:`History`
- :mod:`~ssdlib.training.schedule`: warm-up + cosine per iteration (and SSD's momentum bug, optional)
- :mod:`~ssdlib.training.objectives`: the per-mode views and losses (and SSD's loss-scale bug, optional)
- :mod:`~ssdlib.training.checkpoint`: atomic checkpoints with every random state
- :mod:`~ssdlib.training.monitor`: kNN and top-1 monitors
- :mod:`~ssdlib.training.distributed`: torchrun / DDP helpers
"""

from ssdlib.training.checkpoint import CheckpointError
from ssdlib.training.checkpoint import load as load_checkpoint
from ssdlib.training.loop import History, Recipe, Trainer, train
from ssdlib.training.monitor import classifier_accuracy, encoder_features, knn_accuracy
from ssdlib.training.skeleton import NonFiniteLossError, TrainingInterrupted

__all__ = [
    "CheckpointError",
    "History",
    "NonFiniteLossError",
    "Recipe",
    "Trainer",
    "TrainingInterrupted",
    "classifier_accuracy",
    "encoder_features",
    "knn_accuracy",
    "load_checkpoint",
    "train",
]
