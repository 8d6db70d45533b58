"""CSI's score (Tack et al. 2020, Sec. 2.3; the alinlab/CSI repository's ``evals/ood_pre.py``).

For each shift y (a rotation by 90 y degrees) a test image x gives z_y, the mean of the raw projections
of ``samples`` augmented views of T_y(x), and the mean shift logits. With the training images' unit
mean projections under shift y as the bank U_y (M rows):

    s(x) = 1/4 * sum_y [ max_m <z_y, U_y[m]> * lambda_y + logit_y(x) * mu_y ]

where logit_y(x) is the shift head's logit of the right shift y, lambda_y = 1 / mean_m ||z_y(train m)||
and mu_y = 1 / mean_m logit_y(train m): both terms weigh about 1 on ID training images. Higher = more ID.
The views are the repository's: a random flip, the rotation, then SimCLR's colour jitter and grey with
a crop of fixed area ``crop`` (its CIFAR evaluation: 10 samples, area 0.54), each sample's draws
from a generator seeded with its index, as the repository reseeds for each sample.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from ssdlib.detectors.base import Detector, FeatureSet
from ssdlib.features import loader
from ssdlib.models.csi import SHIFTS, rotations
from ssdlib.training import augment as aug


class CSI(Detector):
    """CSI's score on a :class:`ssdlib.models.csi.CSINet`; fitted on the training images' views."""

    name = "CSI"
    input_space = True  # the views are made from the images

    def __init__(self, samples: int = 10, crop: float = 0.54, batch_size: int = 256) -> None:
        super().__init__()
        if samples < 1 or not 0 < crop <= 1:
            raise ValueError(f"CSI needs samples >= 1 and 0 < crop <= 1, got {samples} and {crop}")
        self.samples, self.crop, self.batch_size = samples, crop, batch_size

    def extract(self, model, data, device="cpu") -> FeatureSet:
        """Per shift, the mean raw projection [N, 4 * D] and the mean shift logits [N, 4 * 4] over the views."""
        if not callable(getattr(model, "project_and_shift", None)):
            raise TypeError(f"CSI scores a CSINet (ssdlib.models.csi); {type(model).__name__} has none")
        was_training = model.training
        model.eval()
        projections, logits, labels = [], [], []
        try:
            with torch.no_grad():
                for batch in loader(data, self.batch_size):
                    x = (batch[0] if isinstance(batch, (list, tuple)) else batch).to(device)
                    z, s = self._views_mean(model, x)
                    projections.append(z.flatten(1).cpu())
                    logits.append(s.flatten(1).cpu())
                    if isinstance(batch, (list, tuple)) and len(batch) > 1:
                        labels.append(torch.as_tensor(batch[1]))
        finally:
            model.train(was_training)
        return FeatureSet(
            features=torch.cat(projections).double().numpy(),
            logits=torch.cat(logits).double().numpy(),
            labels=torch.cat(labels).numpy().astype(np.int64) if labels else None,
        )

    def _views_mean(self, model, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Mean over the samples of the raw projections [B, 4, D] and shift logits [B, 4, 4] of x's views."""
        z_sum = s_sum = 0
        for sample in range(self.samples):
            generator = torch.Generator().manual_seed(sample)
            flip = (torch.rand(len(x), generator=generator) < 0.5).to(x.device)
            shifted = rotations(torch.where(flip.view(-1, 1, 1, 1), x.flip(3), x))
            views = aug.simclr_augment(shifted, generator=generator, scale=(self.crop, self.crop), flip_p=0.0)
            z, s = model.project_and_shift(views)
            z_sum = z_sum + z.float().view(SHIFTS, len(x), -1).transpose(0, 1)
            s_sum = s_sum + s.float().view(SHIFTS, len(x), -1).transpose(0, 1)
        return z_sum / self.samples, s_sum / self.samples

    @staticmethod
    def _split(data: FeatureSet) -> tuple[np.ndarray, np.ndarray]:
        z = data.require("features", "CSI")
        s = data.require("logits", "CSI")
        return z.reshape(len(z), SHIFTS, -1), s.reshape(len(s), SHIFTS, SHIFTS)

    def _fit(self, train: FeatureSet) -> None:
        z, s = self._split(train)
        self.bank = F.normalize(torch.from_numpy(z), dim=-1).numpy()  # [M, 4, D]
        self.weight_sim = 1 / np.linalg.norm(z, axis=-1).mean(axis=0)  # [4]
        self.weight_shift = 1 / s[:, np.arange(SHIFTS), np.arange(SHIFTS)].mean(axis=0)  # [4]

    def _score(self, data: FeatureSet) -> np.ndarray:
        z, s = self._split(data)
        nearest = np.concatenate(  # [N, 4], in blocks of rows: a CIFAR-size bank would not fit at once
            [
                np.stack([(part[:, y] @ self.bank[:, y].T).max(axis=1) for y in range(SHIFTS)], 1)
                for part in np.array_split(z, max(1, len(z) // 1024))
            ]
        )
        right_shift = s[:, np.arange(SHIFTS), np.arange(SHIFTS)]  # [N, 4]
        return (nearest * self.weight_sim + right_shift * self.weight_shift).mean(axis=1)
