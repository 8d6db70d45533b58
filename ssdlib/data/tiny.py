"""Tiny files in each real dataset's on-disk format, for smoke runs and for tests of the real loaders.

A smoke run (:mod:`ssdlib.smoke`) executes a paper profile end to end on a CPU, and the tests of
:mod:`ssdlib.data.real` check that what torchvision reads equals what was written: both need the
CIFAR pickles, SVHN's .mat files, STL-10's binaries and the folders of images that the real sets
ship as, only with a few images each. :func:`write_sets` writes them in the layout
:mod:`ssdlib.data.real` reads.

torchvision checks the CIFAR, SVHN and STL-10 files against the published archives' md5 sums, which
tiny files cannot match: :func:`write_sets` records the sums of the files it writes in the root's
manifest, which :mod:`ssdlib.data.checksums` hands to torchvision while a smoke run reads that root.
"""

from __future__ import annotations

import hashlib
import pickle
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import scipy.io
from PIL import Image

from ssdlib.data import offline, real
from ssdlib.data.checksums import Checksums, merge_manifest, torchvision_dataset

FOLDER_IMAGE_SIZE = (40, 48)  # (height, width) of the folder sets' images: unlike any target, so all are resized

CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
CIFAR100_CLASSES = (
    "apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus butterfly camel can "
    "castle caterpillar cattle chair chimpanzee clock cloud cockroach couch crab crocodile cup dinosaur dolphin "
    "elephant flatfish forest fox girl hamster house kangaroo keyboard lamp lawn_mower leopard lion lizard lobster "
    "man maple_tree motorcycle mountain mouse mushroom oak_tree orange orchid otter palm_tree pear pickup_truck "
    "pine_tree plain plate poppy porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk "
    "skyscraper snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television tiger "
    "tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm"
).split()
STL10_CLASSES = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
SVHN_DIGITS = 10
CIFAR_ROW = 3 * 32 * 32  # bytes of one CIFAR image

# The real archives' image file extensions (ImageFolder reads any); image folders get lossless PNG.
EXTENSIONS = {"textures": ".jpg", "lsun": ".jpg", "isun": ".jpeg", "places365": ".jpg", "imagenet": ".JPEG"}


class Split(NamedTuple):
    """What a split holds, in the order its loader yields it: uint8 images [N, 3, H, W] and their labels."""

    images: np.ndarray
    labels: list[int]


@dataclass
class _Plan:
    """How much one set gets, and its own random stream (so which other sets are written changes nothing)."""

    per_class: int
    classes: int
    image_size: tuple[int, int]
    rng: np.random.Generator

    def labels(self, class_count: int) -> list[int]:
        """``per_class`` images of each of ``classes`` labels spread over the whole range, so that the
        highest label occurs (SVHN's class count is the highest label + 1)."""
        chosen = np.unique(np.linspace(0, class_count - 1, min(self.classes, class_count)).round().astype(int))
        return [int(label) for label in np.tile(chosen, self.per_class)]

    def images(self, n: int, height: int, width: int) -> np.ndarray:
        return self.rng.integers(0, 256, (n, 3, height, width), dtype=np.uint8)

    def split(self, class_count: int, side: int) -> Split:
        labels = self.labels(class_count)
        return Split(self.images(len(labels), side, side), labels)


def _md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def _pickle_to(path: Path, obj: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))
    return path


_CIFAR = {  # set name -> (torchvision class, label key, class names)
    "cifar10": ("CIFAR10", "labels", CIFAR10_CLASSES),
    "cifar100": ("CIFAR100", "fine_labels", CIFAR100_CLASSES),
}


def _write_cifar(name: str, folder: Path, plan: _Plan) -> tuple[dict[str, Split], Checksums]:
    """The python pickles: rows of 3072 bytes (channels, rows, columns), the train split spread over
    torchvision's train files (CIFAR-10's 5 batches), and the class names in the meta file."""
    cls_name, label_key, class_names = _CIFAR[name]
    cls = torchvision_dataset(cls_name)
    base = folder / cls.base_folder
    written = {split: plan.split(len(class_names), 32) for split in ("train", "test")}
    lists = {}
    for split, attribute in [("train", "train_list"), ("test", "test_list")]:
        files = [file for file, _ in getattr(cls, attribute)]
        rows = np.array_split(np.arange(len(written[split].labels)), len(files))
        for file, index in zip(files, rows):
            data = written[split].images[index].reshape(len(index), CIFAR_ROW)
            _pickle_to(base / file, {"data": data, label_key: [written[split].labels[i] for i in index]})
        lists[attribute] = [[file, _md5(base / file)] for file in files]
    meta = _pickle_to(base / cls.meta["filename"], {cls.meta["key"]: class_names})
    lists["meta"] = {**cls.meta, "md5": _md5(meta)}
    return written, {cls_name: lists}


def _write_svhn(folder: Path, plan: _Plan) -> tuple[dict[str, Split], Checksums]:
    """``<split>_32x32.mat``: X [32, 32, 3, N], y [N, 1] with 10 standing for the digit 0."""
    folder.mkdir(parents=True, exist_ok=True)
    split_list = {split: list(entry) for split, entry in torchvision_dataset("SVHN").split_list.items()}
    written = {}
    for split in ("train", "test"):
        written[split] = plan.split(SVHN_DIGITS, 32)
        stored = np.array([[label or 10] for label in written[split].labels], dtype=np.uint8)
        path = folder / split_list[split][1]
        scipy.io.savemat(path, {"X": written[split].images.transpose(2, 3, 1, 0), "y": stored})
        split_list[split][2] = _md5(path)
    return written, {"SVHN": {"split_list": split_list}}


def _write_stl10(folder: Path, plan: _Plan) -> tuple[dict[str, Split], Checksums]:
    """``stl10_binary``: uint8 images stored column-major, labels 1-10, the class names, and the
    unlabelled split (which ssdlib does not read, but torchvision checks)."""
    cls = torchvision_dataset("STL10")
    base = folder / cls.base_folder
    base.mkdir(parents=True, exist_ok=True)
    written = {split: plan.split(len(STL10_CLASSES), 96) for split in ("train", "test")}
    for split, (images, labels) in written.items():
        (base / f"{split}_X.bin").write_bytes(images.transpose(0, 1, 3, 2).tobytes())
        (base / f"{split}_y.bin").write_bytes((np.array(labels, dtype=np.uint8) + 1).tobytes())
    (base / "unlabeled_X.bin").write_bytes(plan.images(plan.per_class, 96, 96).tobytes())
    (base / cls.class_names_file).write_text("\n".join(STL10_CLASSES) + "\n")
    lists = {
        attribute: [[file, _md5(base / file)] for file, _ in getattr(cls, attribute)]
        for attribute in ("train_list", "test_list")
    }
    return written, {"STL10": lists}


def _save_image(pixels: np.ndarray, path: Path) -> np.ndarray:
    """Save CHW ``pixels``; return them as the file decodes (JPEG is lossy), CHW."""
    Image.fromarray(pixels.transpose(1, 2, 0)).save(path)
    with Image.open(path) as image:
        return np.asarray(image.convert("RGB")).transpose(2, 0, 1)


def _write_image_tree(folder: Path, class_names: list[str], extension: str, plan: _Plan) -> Split:
    """``folder/<class>/<i><extension>``, written in ImageFolder's order (sorted classes, sorted files)."""
    images, labels = [], []
    for label, class_name in enumerate(class_names):
        (folder / class_name).mkdir(parents=True, exist_ok=True)
        for i, pixels in enumerate(plan.images(plan.per_class, *plan.image_size)):
            images.append(_save_image(pixels, folder / class_name / f"{i:03d}{extension}"))
            labels.append(label)
    return Split(np.stack(images), labels)


def _folder_splits(name: str, is_id: bool) -> tuple[str, ...]:
    """The splits :func:`ssdlib.data.real.open_id` (train and test) or ``open_ood`` reads."""
    if name.startswith(real.IMAGEFOLDER):
        return ("train", "val") if is_id else ("",)
    test_split = real.REAL_SETS[name].test_split
    return ("train", test_split) if is_id else (test_split,)


def _write_folder_set(name: str, folder: Path, is_id: bool, plan: _Plan) -> tuple[dict[str, Split], Checksums]:
    """Class folders of images (ImageNet's named like wnids), one tree per split; DTD's under ``images/``."""
    class_names = [f"n{k:08d}" if name == "imagenet" else f"class{k:03d}" for k in range(plan.classes)]
    extension = EXTENSIONS.get(name, ".png")
    images_under = folder / "images" if name == "textures" else folder
    written = {
        split: _write_image_tree(images_under / split, class_names, extension, plan)
        for split in _folder_splits(name, is_id)
    }
    return written, {}


def _is_real(name: str, id_dataset: str | None) -> bool:
    """A set read from files; with the offline ID set, ``textures`` is the generated one."""
    if id_dataset == "offline" and name in offline.OOD_SETS:
        return False
    return name in real.REAL_SETS or name.startswith(real.IMAGEFOLDER)


def _folder_of(name: str, root: Path) -> Path:
    """Where :mod:`ssdlib.data.real` looks for ``name`` under ``root``; image folders must lie inside it."""
    if name.startswith(real.IMAGEFOLDER) and Path(name[len(real.IMAGEFOLDER) :]).expanduser().is_absolute():
        raise ValueError(f"{name}: tiny image folders are written under the data root; give a relative path")
    return real.resolve(name, str(root))[1]


def _write_set(name: str, folder: Path, is_id: bool, plan: _Plan) -> tuple[dict[str, Split], Checksums]:
    if name in _CIFAR:
        return _write_cifar(name, folder, plan)
    if name == "svhn":
        return _write_svhn(folder, plan)
    if name == "stl10":
        return _write_stl10(folder, plan)
    return _write_folder_set(name, folder, is_id, plan)


def write_sets(
    names: list[str],
    root: str | Path,
    *,
    per_class: int = 2,
    classes: int = 3,
    seed: int = 0,
    id_dataset: str | None = None,
    image_size: tuple[int, int] = FOLDER_IMAGE_SIZE,
) -> dict[str, dict[str, Split]]:
    """Write every real set among ``names`` (and ``id_dataset``) under ``root`` as :mod:`ssdlib.data.real`
    reads it; other names (offline, near, blobs, ...) are skipped.

    Sets with a fixed class count (CIFAR, SVHN, STL-10) get both splits, ``per_class`` images of
    ``classes`` of their labels each, and their real class names; folder sets get ``classes`` class
    folders of ``per_class`` images of ``image_size`` (height, width), train and test/val for the ID
    set, else only what ``open_ood`` reads. Returns set name -> split name (as ``open_id`` and
    ``open_ood`` name them, "" for none) -> :class:`Split`. The md5 sums go to the root's manifest
    (:mod:`ssdlib.data.checksums`), merged with those already there.
    """
    root = Path(root).expanduser()
    written: dict[str, dict[str, Split]] = {}
    checksums: Checksums = {}
    for name in dict.fromkeys([*([id_dataset] if id_dataset else []), *names]):
        if not _is_real(name, id_dataset):
            continue
        rng = np.random.default_rng([seed, zlib.crc32(name.encode())])
        plan = _Plan(per_class, classes, image_size, rng)
        written[name], sums = _write_set(name, _folder_of(name, root), name == id_dataset, plan)
        checksums.update(sums)
    merge_manifest(root, checksums)
    return written
