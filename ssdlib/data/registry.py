"""Dataset names to datasets, resolved in the context of the ID set.

With ``id_dataset: offline``, ``textures`` is the generated texture set and ``near``,
``digits``, ``scenes`` are the offline benchmark's; with a real ID set ``textures`` is DTD.
The synthetic sets (``blobs``, ``gaussian``, ``uniform``) exist for every ID set at its image
size, and every real set can serve as OOD (its test split). All names are checked, and every
set opened, before anything is returned, so a typo or a missing folder stops a run at once.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from torch.utils.data import Dataset

from ssdlib.data import offline, real, synthetic
from ssdlib.data.memory import channel_stats
from ssdlib.data.normalize import Normalize
from ssdlib.params import DataParams, ParamsError

SYNTHETIC = tuple(synthetic.DESCRIPTIONS)
IMAGEFOLDER_NAME = real.IMAGEFOLDER + "<path>"
ID_NAMES = ("offline", *real.ID_CAPABLE, IMAGEFOLDER_NAME)
STATS_SAMPLE = 1000  # images an image folder's mean and std are computed from


class UnknownDatasetError(ValueError):
    """A dataset name that does not exist in the context of the chosen ID set."""


@dataclass
class DatasetBundle:
    """The ID set (train / test), its OOD sets, and what a model needs to know about them.

    Every dataset yields (float tensor [3, H, W] in [0, 1], int label). OOD sets keep their own
    labels where they have them (digit, texture source, held-out class; else 0): few-shot SSD_k
    picks k images per OOD class.
    """

    name: str
    train: Dataset
    test: Dataset
    ood: dict[str, Dataset]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: list[str]
    descriptions: dict[str, str] = field(default_factory=dict)
    normalized: bool = True

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def normalize(self) -> Normalize:
        """The first layer of every model: the ID set's statistics (identity when normalisation is off)."""
        return Normalize(self.mean, self.std) if self.normalized else Normalize.identity()

    def require_ood(self, key: str, names: str | list[str] | None) -> None:
        """Stop before any training when the params key ``key`` names OOD sets this bundle lacks
        (the notebooks' checks and SSOD's ablations read them at the end); None names none."""
        missing = [n for n in ([names] if isinstance(names, str) else names or []) if n not in self.ood]
        if missing:
            raise ParamsError(
                f"{key} names OOD sets {missing} that data.ood_datasets {list(self.ood)} does not load: "
                f"add them to data.ood_datasets or change {key}"
            )

    def catalogue(self, include_test: bool = True) -> dict[str, tuple[Dataset, str]]:
        """Every set under a display label ("<id> train", "<id> test", then the OOD names),
        with the line on what it stands in for."""
        about = self.descriptions[self.name]
        sets = {f"{self.name} train": (self.train, about)}
        if include_test:
            sets[f"{self.name} test"] = (self.test, about)
        return {**sets, **{name: (ds, self.descriptions[name]) for name, ds in self.ood.items()}}

    def sizes(self) -> pd.DataFrame:
        """One row per set: its number of images, of labels, and what it stands in for."""
        return pd.DataFrame(
            [
                {"set": label, "images": len(ds), "labels": _label_count(ds), "stands in for": about}
                for label, (ds, about) in self.catalogue().items()
            ]
        )


def _label_count(dataset: Dataset) -> int:
    """Number of classes: the named ones, else the distinct labels torchvision holds (SVHN), else 1."""
    names = getattr(dataset, "class_names", None) or getattr(dataset, "classes", None)
    if names:
        return len(names)
    labels = getattr(dataset, "labels", None)
    return len(np.unique(np.asarray(labels))) if labels is not None else 1


def ood_names(id_dataset: str) -> list[str]:
    """The OOD set names valid with this ID set."""
    if id_dataset == "offline":
        shadowed = set(offline.OOD_SETS)
        return [*offline.OOD_SETS, *SYNTHETIC, *(n for n in real.REAL_SETS if n not in shadowed), IMAGEFOLDER_NAME]
    return [*(n for n in real.REAL_SETS if n != id_dataset), *SYNTHETIC, IMAGEFOLDER_NAME]


def check_names(data: DataParams) -> None:
    """Every name known in this context, no duplicates, the ID set not among the OOD sets."""
    valid_id = data.id_dataset in ID_NAMES or data.id_dataset.startswith(real.IMAGEFOLDER)
    if not valid_id:
        raise UnknownDatasetError(f"data.id_dataset: unknown ID set {data.id_dataset!r}; valid: {', '.join(ID_NAMES)}")
    valid = ood_names(data.id_dataset)
    for name in data.ood_datasets:
        if name == data.id_dataset:
            raise UnknownDatasetError(f"data.ood_datasets: {name!r} is the ID set; remove it from the OOD list")
        if name not in valid and not name.startswith(real.IMAGEFOLDER):
            raise UnknownDatasetError(
                f"data.ood_datasets: unknown OOD set {name!r} with id_dataset {data.id_dataset!r}; "
                f"valid: {', '.join(valid)}"
            )
    repeated = sorted({n for n in data.ood_datasets if data.ood_datasets.count(n) > 1})
    if repeated:
        raise UnknownDatasetError(f"data.ood_datasets: {repeated} listed more than once")


@dataclass
class _IDSet:
    train: Dataset
    test: Dataset
    description: str
    class_names: list[str]
    stats: tuple | None  # (mean, std), None: computed from train once every set is known to exist
    generated: dict[str, Dataset]  # the offline benchmark's OOD sets ({} for a real ID set)


def _open_id(data: DataParams) -> _IDSet:
    if data.id_dataset == "offline":
        sets = offline.load_benchmark(data.offline, data.image_size)
        return _IDSet(
            sets["train"],
            sets["test"],
            offline.DESCRIPTIONS["offline"],
            sets["train"].class_names,
            channel_stats(sets["train"]),
            {name: sets[name] for name in offline.OOD_SETS},
        )
    train, test = real.open_id(data.id_dataset, data.root, data.image_size, data.download)
    entry, _ = real.resolve(data.id_dataset, data.root)
    return _IDSet(train, test, entry.description, real.class_names(train), entry.stats, {})


def _open_ood(name: str, data: DataParams, generated: dict[str, Dataset]) -> tuple[Dataset, str]:
    if name in SYNTHETIC:
        images = synthetic.SyntheticImages(name, data.synthetic_per_set, data.image_size, data.offline.seed)
        return images, synthetic.DESCRIPTIONS[name]
    if name in generated:
        return generated[name], offline.DESCRIPTIONS[name]
    dataset = real.open_ood(name, data.root, data.image_size, data.download)
    return dataset, real.resolve(name, data.root)[0].description


def get_datasets(data: DataParams) -> DatasetBundle:
    """Open the ID set and every OOD set of ``data``; if any is missing, raise one
    :class:`~ssdlib.data.real.DatasetNotFoundError` that lists them all.

    Real sets are read from ``data.root`` or ``$SSDLIB_DATA``; the offline benchmark comes from
    its cache under ``outputs/cache/`` (``$SSDLIB_CACHE``) or is generated in seconds.
    """
    check_names(data)
    missing: list[str] = []
    id_set = None
    try:
        id_set = _open_id(data)
    except real.DatasetNotFoundError as err:
        missing.append(str(err))
    ood: dict[str, Dataset] = {}
    descriptions: dict[str, str] = {}
    for name in data.ood_datasets:
        try:
            ood[name], descriptions[name] = _open_ood(name, data, id_set.generated if id_set else {})
        except real.DatasetNotFoundError as err:
            missing.append(str(err))
    if missing:
        raise real.DatasetNotFoundError("\n".join(dict.fromkeys(missing)))  # one line per missing set

    mean, std = id_set.stats or channel_stats(id_set.train, max_images=STATS_SAMPLE)
    return DatasetBundle(
        data.id_dataset,
        id_set.train,
        id_set.test,
        ood,
        tuple(mean),
        tuple(std),
        list(id_set.class_names),
        {data.id_dataset: id_set.description, **descriptions},
        normalized=data.normalize,
    )
