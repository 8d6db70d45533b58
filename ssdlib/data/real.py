"""Real datasets through torchvision's own classes, read from ``data.root`` or ``$SSDLIB_DATA``.

Layout under the root (SSD's, except STL-10, which SSD reads from ``svhn/`` by mistake):
``cifar10/``, ``cifar100/``, ``svhn/``, ``stl10/`` (torchvision's files), ``dtd/images/<class>/``
(Textures; torchvision's ``dtd/dtd/images`` also works), ``lsun/``, ``isun/``, ``places365/``
(folders of class folders of images) and ``imagenet/{train,val}/<class>/``. Every image is
resized (shorter side) and centre-cropped to the image size, by the recipe of its scale
(:mod:`ssdlib.data.preprocessing`: as SSD reads Textures at CIFAR scale, resize 256 + centre crop
224 at ImageNet scale), and yielded as float [0, 1]. Only torchvision's downloadable sets are fetched, and only when
``data.download`` is true; any other missing set raises :class:`DatasetNotFoundError` naming the
folder looked in and how to obtain the data.

Smoke runs read tiny files in these formats (:mod:`ssdlib.data.tiny`), which cannot match the md5
sums torchvision checks the CIFAR, SVHN and STL-10 files against. Only while a set is opened from
the root that ``$SSDLIB_SMOKE_DATA`` names (the smoke runner sets it to its temporary root) does
torchvision check the sums that root's manifest records; every other read keeps the published ones.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, UnidentifiedImageError
from torch.utils.data import Dataset

from ssdlib.data.checksums import registered_checksums, smoke_root_active, torchvision_dataset
from ssdlib.data.preprocessing import evaluation_transform


class DatasetNotFoundError(FileNotFoundError):
    """A dataset is not where it was looked for; the message says where and how to obtain it."""


class BadImageError(ValueError):
    """An image file that cannot be read; the message names it and says what to do."""


def read_image(path: str) -> Image.Image:
    """torchvision's ImageFolder loader (PIL, RGB) that names the file it cannot read: PIL's own errors
    ("Truncated File Read", "cannot identify image file <_io.BufferedReader ...>") do not."""
    try:
        with open(path, "rb") as fh:
            return Image.open(fh).convert("RGB")
    except (OSError, SyntaxError, ValueError) as err:  # what PIL raises for a broken file
        reason = "not an image file" if isinstance(err, UnidentifiedImageError) else str(err) or type(err).__name__
        raise BadImageError(f"{path}: not a readable image ({reason}); remove or replace that file") from None


DRY_RUN_IMAGES = 5000  # images of a folder set that a dry run decodes: all of a smaller set, else this many


def bad_images(dataset: Dataset, limit: int = DRY_RUN_IMAGES) -> tuple[int, int, list[str]]:
    """Decode the images of a folder set (every one, or ``limit`` spread evenly over its sorted files):
    (checked, total, one message per bad file). (0, 0, []) for a set that is not a folder of images."""
    paths = [path for path, _ in getattr(dataset, "samples", [])]
    step = max(1, -(-len(paths) // limit))  # ceil: at most ``limit`` files
    bad = []
    for path in paths[::step]:
        try:
            read_image(path)
        except BadImageError as err:
            bad.append(str(err).split("; remove or replace")[0])
    return len(paths[::step]), len(paths), bad


Stats = tuple[tuple[float, float, float], tuple[float, float, float]]
IDENTITY: Stats = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))  # SSD does not normalise SVHN and STL-10


@dataclass(frozen=True)
class RealSet:
    """One dataset: where it lives, how to open a split, its statistics and how to obtain it."""

    folder: str
    description: str
    how_to_get: str
    open: Callable[[Path, str, Callable, bool], Dataset]
    stats: Stats | None = None  # normalisation when it is the ID set (None: computed from train)
    downloadable: bool = False
    test_split: str = "test"
    aliases: tuple[str, ...] = ()  # other folder names accepted (the archive's own spelling)
    expected: dict[str, int] = field(default_factory=dict)  # images per split of the published set ("": no splits)


def _cifar(cls: str):
    return lambda path, split, tf, download: torchvision_dataset(cls)(
        str(path), train=split == "train", transform=tf, download=download
    )


def _split_arg(cls: str):
    return lambda path, split, tf, download: torchvision_dataset(cls)(
        str(path), split=split, transform=tf, download=download
    )


def _image_folder(path: Path, split: str, tf, download: bool) -> Dataset:
    return torchvision_dataset("ImageFolder")(str(path / split if split else path), transform=tf, loader=read_image)


def _textures(path: Path, split: str, tf, download: bool) -> Dataset:
    """SSD's ``dtd/images``, else torchvision's ``dtd/dtd/images`` (which ``download`` creates)."""
    for images in (path / "images", path / "dtd" / "images"):
        if images.is_dir():
            return torchvision_dataset("ImageFolder")(str(images), transform=tf, loader=read_image)
    if download:
        torchvision_dataset("DTD")(str(path.parent), download=True)
        return torchvision_dataset("ImageFolder")(str(path / "dtd" / "images"), transform=tf, loader=read_image)
    raise FileNotFoundError(f"neither {path / 'images'} nor {path / 'dtd' / 'images'} exists")


_ODIN = "one of ODIN's OOD sets (github.com/facebookresearch/odin)"
_FOLDER_LAYOUT = "images in at least one sub-folder, e.g. {path}/test/*.jpg"

REAL_SETS: dict[str, RealSet] = {
    "cifar10": RealSet(
        "cifar10",
        "CIFAR-10: 32x32 photos of 10 object classes",
        "set data.download: true, or run torchvision.datasets.CIFAR10('{path}', download=True) "
        "(or extract https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz there)",
        _cifar("CIFAR10"),
        ((0.491, 0.482, 0.447), (0.202, 0.199, 0.201)),
        downloadable=True,
        expected={"train": 50000, "test": 10000},
    ),
    "cifar100": RealSet(
        "cifar100",
        "CIFAR-100: 32x32 photos of 100 object classes (near-OOD for CIFAR-10)",
        "set data.download: true, or run torchvision.datasets.CIFAR100('{path}', download=True) "
        "(or extract https://www.cs.toronto.edu/~kriz/cifar-100-python.tar.gz there)",
        _cifar("CIFAR100"),
        ((0.5071, 0.4867, 0.4408), (0.2675, 0.2565, 0.2761)),
        downloadable=True,
        expected={"train": 50000, "test": 10000},
    ),
    "svhn": RealSet(
        "svhn",
        "SVHN: house-number digits cropped from Street View",
        "set data.download: true, or run torchvision.datasets.SVHN('{path}', split='train'/'test', download=True) "
        "(files {path}/train_32x32.mat and test_32x32.mat from http://ufldl.stanford.edu/housenumbers/)",
        _split_arg("SVHN"),
        IDENTITY,
        downloadable=True,
        expected={"train": 73257, "test": 26032},
    ),
    "stl10": RealSet(
        "stl10",
        "STL-10: 96x96 photos of 10 object classes, derived from ImageNet",
        "set data.download: true, or run torchvision.datasets.STL10('{path}', download=True) "
        "(extracts {path}/stl10_binary/ from http://ai.stanford.edu/~acoates/stl10/stl10_binary.tar.gz)",
        _split_arg("STL10"),
        IDENTITY,
        downloadable=True,
        expected={"train": 5000, "test": 8000},
    ),
    "textures": RealSet(
        "dtd",
        "Describable Textures Dataset (DTD): 5 640 texture images of 47 classes",
        "set data.download: true (torchvision.datasets.DTD fetches it into {path}/dtd/images), or extract "
        "https://www.robots.ox.ac.uk/~vgg/data/dtd/download/dtd-r1.0.1.tar.gz so that "
        "{path}/images/<class>/*.jpg exists",
        _textures,
        downloadable=True,
        test_split="",
        expected={"": 5640},
    ),
    "lsun": RealSet(
        "lsun",
        "LSUN (crop): scene photos, " + _ODIN,
        "download https://www.dropbox.com/s/fhtsw1m3qxlwj6h/LSUN.tar.gz and extract it as {path}, with "
        + _FOLDER_LAYOUT,
        _image_folder,
        test_split="",
        aliases=("LSUN",),
        expected={"": 10000},
    ),
    "isun": RealSet(
        "isun",
        "iSUN: scene photos from SUN, " + _ODIN,
        "download https://www.dropbox.com/s/ssz7qxfqae0cca5/iSUN.tar.gz and extract it as {path}, with "
        + _FOLDER_LAYOUT,
        _image_folder,
        test_split="",
        aliases=("iSUN",),
        expected={"": 8925},
    ),
    "places365": RealSet(
        "places365",
        "Places365: scene photos of 365 place categories",
        "place Places365 images (e.g. the test set http://data.csail.mit.edu/places/places365/test_256.tar, "
        "or a 10 000-image subset of it as used in KNN/CIDER) under {path}, with " + _FOLDER_LAYOUT,
        _image_folder,
        test_split="",
        aliases=("Places365", "places"),
    ),
    "imagenet": RealSet(
        "imagenet",
        "ImageNet-1k (ILSVRC-2012): photos of 1 000 object classes",
        "obtain ILSVRC2012_img_train.tar, ILSVRC2012_img_val.tar and ILSVRC2012_devkit_t12.tar.gz from "
        "https://image-net.org/download.php into {path} and run torchvision.datasets.ImageNet('{path}', "
        "split='train') and split='val' once: that unpacks {path}/train/<wnid>/ and {path}/val/<wnid>/",
        _image_folder,
        ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
        test_split="val",
        expected={"train": 1281167, "val": 50000},
    ),
}
ID_CAPABLE = ("cifar10", "cifar100", "svhn", "stl10", "imagenet")  # the sets with train and test splits
IMAGEFOLDER = "imagefolder:"


def data_root(root: str | None) -> Path:
    """``data.root``, else ``$SSDLIB_DATA``; an error saying how to set one if neither is set."""
    chosen = root or os.environ.get("SSDLIB_DATA")
    if not chosen:
        raise DatasetNotFoundError(
            "real datasets need a data root: set data.root in the params file or export SSDLIB_DATA=/path/to/datasets"
        )
    return Path(chosen).expanduser()


def _imagefolder_set(spec: str, root: str | None) -> tuple[RealSet, Path]:
    """``imagefolder:<path>``: absolute (or ~) paths as given; relative ones under the data root if
    one is set, else under the current directory."""
    folder = Path(spec[len(IMAGEFOLDER) :]).expanduser()
    if not folder.is_absolute():
        base = root or os.environ.get("SSDLIB_DATA")
        folder = (Path(base).expanduser() if base else Path.cwd()) / folder
    entry = RealSet(
        str(folder),
        f"the images under {folder}",
        "put images in class sub-folders: {path}/<class>/*.png for an OOD set, or "
        "{path}/train/<class>/ and {path}/val/<class>/ (or test/) for the ID set",
        _image_folder,
        test_split="val" if (folder / "val").is_dir() else "test",
    )
    return entry, folder


def resolve(name: str, root: str | None) -> tuple[RealSet, Path]:
    """The entry of a real set's name and the folder it lives in."""
    if name.startswith(IMAGEFOLDER):
        return _imagefolder_set(name, root)
    entry, base = REAL_SETS[name], data_root(root)
    candidates = [base / folder for folder in (entry.folder, *entry.aliases)]
    return entry, next((path for path in candidates if path.is_dir()), candidates[0])


def expected_count(name: str, split: str) -> int | None:
    """Images in ``split`` of the published set ``name`` ("" for a set without splits); None if unknown."""
    entry = REAL_SETS.get(name)
    return entry.expected.get(split) if entry else None


def _smoke_checksums(root: str | None):
    """torchvision's md5 lists as the tiny files' while a smoke run reads its own root, else untouched."""
    chosen = root or os.environ.get("SSDLIB_DATA")
    if chosen and smoke_root_active(chosen):
        return registered_checksums(chosen)
    return contextlib.nullcontext()


CHECKED_FILES = {"cifar10": "CIFAR10", "cifar100": "CIFAR100", "svhn": "SVHN", "stl10": "STL10"}  # md5-listed


def corrupt_files(name: str, path: Path) -> list[Path]:
    """The files of torchvision set ``name`` under ``path`` that are there but do not match their md5 sum:
    torchvision says "not found or corrupted" of a set with one bad file, naming none."""
    if name not in CHECKED_FILES:
        return []
    from torchvision.datasets.utils import check_integrity  # local: importing torchvision takes seconds

    cls = torchvision_dataset(CHECKED_FILES[name])
    folder = path / getattr(cls, "base_folder", "")
    listed = [*getattr(cls, "train_list", []), *getattr(cls, "test_list", [])]
    listed += [(file, md5) for _url, file, md5 in getattr(cls, "split_list", {}).values()]
    meta = getattr(cls, "meta", None)
    if isinstance(meta, dict):  # CIFAR's class names
        listed.append((meta["filename"], meta["md5"]))
    return [folder / f for f, md5 in listed if (folder / f).is_file() and not check_integrity(str(folder / f), md5)]


def _open(name: str, split: str, root: str | None, size: int, download: bool) -> Dataset:
    entry, path = resolve(name, root)
    how = entry.how_to_get.format(path=path)
    with _smoke_checksums(root):  # torchvision checks the files when constructed
        try:
            return entry.open(path, split, evaluation_transform(size), download and entry.downloadable)
        except (RuntimeError, FileNotFoundError) as err:
            corrupt = corrupt_files(name, path)
            if len(corrupt) == 1:
                raise DatasetNotFoundError(
                    f"{name}: {corrupt[0]} corrupt (not the published file: its md5 sum differs); "
                    f"delete it and obtain it again: {how}"
                ) from None
            if corrupt:
                names = ", ".join(p.name for p in corrupt)
                raise DatasetNotFoundError(
                    f"{name}: {len(corrupt)} files in {corrupt[0].parent} corrupt ({names}: not the published files, "
                    f"their md5 sums differ); delete them and obtain them again: {how}"
                ) from None
            raise DatasetNotFoundError(f"{name}: not found in {path} ({err}). To obtain it: {how}") from None


def open_id(name: str, root: str | None, size: int, download: bool) -> tuple[Dataset, Dataset]:
    """The (train, test) splits of a real ID set."""
    test_split = resolve(name, root)[0].test_split
    return _open(name, "train", root, size, download), _open(name, test_split, root, size, download)


def open_ood(name: str, root: str | None, size: int, download: bool) -> Dataset:
    """A real set used as OOD: its test split, or all its images when it has no splits."""
    split = "" if name.startswith(IMAGEFOLDER) else resolve(name, root)[0].test_split
    return _open(name, split, root, size, download)


def class_names(dataset: Dataset) -> list[str]:
    """The class names torchvision knows, else the label values (SVHN: the digits)."""
    names = getattr(dataset, "classes", None)
    if names is None:
        names = [str(i) for i in range(int(max(dataset.labels)) + 1)]
    return list(names)
