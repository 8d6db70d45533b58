"""SSOD (Pei et al. 2023): an OOD head trained on feature-map locations that the classifier's own
confidence labels as object (ID) or background (OOD). See ``docs/ssod.md`` for the choices made.

- :mod:`~ssdlib.ssod.model`: ``SSODNet`` (backbone, classifier, OOD head; per-location views)
- :mod:`~ssdlib.ssod.sampler`: Eq. 7, location labels from the target-class confidence map
- :mod:`~ssdlib.ssod.loss`: Eq. 9 with the LW / DR / LWB balance schemes
- :mod:`~ssdlib.ssod.train`: ``SSODTrainer`` (AdamW, step schedule, warm-up, selection, resume)
- :mod:`~ssdlib.ssod.runs`: the runs of a params profile, their evaluation and the ablations
- :mod:`~ssdlib.ssod.analysis`: Fig. 3 locality maps, where the picks lie, Fig. 2 embeddings
"""

from ssdlib.ssod.loss import BALANCES, ssod_loss
from ssdlib.ssod.model import SSODNet
from ssdlib.ssod.sampler import ID, IGNORED, OOD, sample
from ssdlib.ssod.train import SSODHistory, SSODTrainer

__all__ = ["BALANCES", "ID", "IGNORED", "OOD", "SSODHistory", "SSODNet", "SSODTrainer", "sample", "ssod_loss"]
