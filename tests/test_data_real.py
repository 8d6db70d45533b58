"""Real loaders: tiny files in each set's real on-disk format, read through torchvision via get_datasets.

torchvision checks the md5 of the CIFAR, SVHN and STL-10 files against the published archives; the
fixtures register the checksums of the files they write (``registered_md5``), so the check still runs.
"""

import hashlib
import pickle

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image
from torchvision import datasets

from ssdlib.data import DatasetNotFoundError, get_datasets
from ssdlib.params import DataParams

CIFAR10_STATS = ((0.491, 0.482, 0.447), (0.202, 0.199, 0.201))
RNG = np.random.default_rng(0)


def md5(path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


def images(n, size=32):
    return RNG.integers(0, 256, (n, 3, size, size), dtype=np.uint8)


def pickle_to(path, obj):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(pickle.dumps(obj))
    return path


@pytest.fixture
def cifar10(tmp_path, monkeypatch):
    """5 train batches of 2 images and a test batch of 3, as cifar-10-batches-py holds them."""
    folder = tmp_path / "cifar10" / "cifar-10-batches-py"
    train_x, test_x = images(10), images(3)
    train_y, test_y = [i % 10 for i in range(10)], [7, 0, 3]
    batches = [
        pickle_to(
            folder / f"data_batch_{b + 1}",
            {"data": train_x[2 * b : 2 * b + 2].reshape(2, -1), "labels": train_y[2 * b : 2 * b + 2]},
        )
        for b in range(5)
    ]
    test = pickle_to(folder / "test_batch", {"data": test_x.reshape(3, -1), "labels": test_y})
    names = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]
    meta = pickle_to(folder / "batches.meta", {"label_names": names})
    monkeypatch.setattr(datasets.CIFAR10, "train_list", [[p.name, md5(p)] for p in batches])
    monkeypatch.setattr(datasets.CIFAR10, "test_list", [[test.name, md5(test)]])
    monkeypatch.setattr(datasets.CIFAR10, "meta", {"filename": meta.name, "key": "label_names", "md5": md5(meta)})
    return {"train": (train_x, train_y), "test": (test_x, test_y), "names": names}


@pytest.fixture
def cifar100(tmp_path, monkeypatch):
    folder = tmp_path / "cifar100" / "cifar-100-python"
    test_x, test_y = images(4), [99, 0, 42, 5]
    train = pickle_to(folder / "train", {"data": images(2).reshape(2, -1), "fine_labels": [1, 2]})
    test = pickle_to(folder / "test", {"data": test_x.reshape(4, -1), "fine_labels": test_y})
    meta = pickle_to(folder / "meta", {"fine_label_names": [f"c{i}" for i in range(100)]})
    monkeypatch.setattr(datasets.CIFAR100, "train_list", [["train", md5(train)]])
    monkeypatch.setattr(datasets.CIFAR100, "test_list", [["test", md5(test)]])
    monkeypatch.setattr(datasets.CIFAR100, "meta", {"filename": "meta", "key": "fine_label_names", "md5": md5(meta)})
    return test_x, test_y


@pytest.fixture
def svhn(tmp_path, monkeypatch):
    """SVHN's .mat files: X [32, 32, 3, N], y [N, 1] with 10 standing for the digit 0."""
    folder = tmp_path / "svhn"
    folder.mkdir()
    split_list = dict(datasets.SVHN.split_list)
    written = {}
    for split, n in [("train", 5), ("test", 4)]:
        x, y = images(n), np.array([[10], [1], [2], [9], [10]][:n], dtype=np.uint8)
        path = folder / f"{split}_32x32.mat"
        scipy.io.savemat(path, {"X": x.transpose(2, 3, 1, 0), "y": y})
        split_list[split] = [split_list[split][0], path.name, md5(path)]
        written[split] = (x, [int(v) % 10 for v in y[:, 0]])
    monkeypatch.setattr(datasets.SVHN, "split_list", split_list)
    return written


@pytest.fixture
def stl10(tmp_path, monkeypatch):
    """stl10_binary: uint8 images stored column-major (N, 3, 96, 96 transposed), labels 1-10."""
    folder = tmp_path / "stl10" / "stl10_binary"
    folder.mkdir(parents=True)
    written = {}
    for split, labels in [("train", [1, 10, 4]), ("test", [2, 3])]:
        x = images(len(labels), 96)
        (folder / f"{split}_X.bin").write_bytes(x.transpose(0, 1, 3, 2).tobytes())
        (folder / f"{split}_y.bin").write_bytes(np.array(labels, dtype=np.uint8).tobytes())
        written[split] = (x, [v - 1 for v in labels])
    (folder / "unlabeled_X.bin").write_bytes(images(1, 96).tobytes())
    names = ["airplane", "bird", "car", "cat", "deer", "dog", "horse", "monkey", "ship", "truck"]
    (folder / "class_names.txt").write_text("\n".join(names) + "\n")
    for attribute, files in [
        ("train_list", ["train_X.bin", "train_y.bin", "unlabeled_X.bin"]),
        ("test_list", ["test_X.bin", "test_y.bin"]),
    ]:
        monkeypatch.setattr(datasets.STL10, attribute, [[f, md5(folder / f)] for f in files])
    return written


def image_tree(folder, classes: dict[str, int], size=(32, 32)):
    """PNG files under folder/<class>/; returns the pixel arrays [3, H, W] in ImageFolder's order."""
    out = []
    for name in sorted(classes):
        (folder / name).mkdir(parents=True, exist_ok=True)
        for i in range(classes[name]):
            pixels = RNG.integers(0, 256, (*size, 3), dtype=np.uint8)
            Image.fromarray(pixels).save(folder / name / f"{i:03d}.png")
            out.append(pixels.transpose(2, 0, 1))
    return out


def as_float(x):
    return torch.from_numpy(np.asarray(x)).float() / 255


def data(tmp_path, id_dataset="cifar10", ood=(), **kw):
    return DataParams(id_dataset=id_dataset, ood_datasets=list(ood), root=str(tmp_path), **kw)


def test_cifar10_as_id(tmp_path, cifar10):
    bundle = get_datasets(data(tmp_path))
    assert len(bundle.train) == 10 and len(bundle.test) == 3
    for split, (x, y) in [("train", cifar10["train"]), ("test", cifar10["test"])]:
        ds = getattr(bundle, split)
        for i in range(len(ds)):
            image, label = ds[i]
            assert image.dtype == torch.float32 and torch.equal(image, as_float(x[i])) and label == y[i]
    assert bundle.class_names == cifar10["names"] and bundle.num_classes == 10
    assert (bundle.mean, bundle.std) == CIFAR10_STATS  # SSD's constants


def test_ood_sets_get_the_id_statistics(tmp_path, cifar10, cifar100, svhn):
    """OOD images stay raw [0, 1]; the one normalisation is the ID set's, applied by the model."""
    bundle = get_datasets(data(tmp_path, ood=["cifar100", "svhn"]))
    x, y = cifar100
    assert [bundle.ood["cifar100"][i][1] for i in range(4)] == y
    assert torch.equal(bundle.ood["cifar100"][2][0], as_float(x[2]))
    svhn_x, svhn_y = svhn["test"]
    image, label = bundle.ood["svhn"][0]
    assert torch.equal(image, as_float(svhn_x[0])) and label == 0  # SVHN's 10 is the digit 0
    assert [bundle.ood["svhn"][i][1] for i in range(4)] == svhn_y
    assert bundle.sizes()["labels"].tolist() == [10, 10, 100, 4]  # SVHN test holds the digits 0, 1, 2, 9
    mean, std = (torch.tensor(s).view(3, 1, 1) for s in CIFAR10_STATS)
    torch.testing.assert_close(bundle.normalize()(image[None])[0], (image - mean) / std)


def test_svhn_as_id_is_not_normalised(tmp_path, svhn):
    bundle = get_datasets(data(tmp_path, "svhn"))
    assert (bundle.mean, bundle.std) == ((0.0,) * 3, (1.0,) * 3)  # as SSD
    assert bundle.class_names == [str(d) for d in range(10)]
    assert torch.equal(bundle.train[3][0], as_float(svhn["train"][0][3])) and bundle.train[3][1] == 9


def test_stl10_native_and_resized(tmp_path, stl10):
    bundle = get_datasets(data(tmp_path, "stl10", image_size=96))
    x, y = stl10["test"]
    assert torch.equal(bundle.test[1][0], as_float(x[1])) and bundle.test[1][1] == y[1]
    assert [bundle.train[i][1] for i in range(3)] == [0, 9, 3] and bundle.class_names[2] == "car"
    small = get_datasets(data(tmp_path, "stl10", image_size=32))
    assert small.train[0][0].shape == (3, 32, 32)


@pytest.mark.parametrize("layout", ["dtd/images", "dtd/dtd/images"])
def test_textures_is_dtd_with_a_real_id_set(tmp_path, cifar10, layout):
    pixels = image_tree(tmp_path / layout, {"banded": 2, "zigzagged": 1})
    textures = get_datasets(data(tmp_path, ood=["textures"])).ood["textures"]
    assert isinstance(textures, datasets.ImageFolder) and textures.classes == ["banded", "zigzagged"]
    assert [textures[i][1] for i in range(3)] == [0, 0, 1]
    assert torch.equal(textures[2][0], as_float(pixels[2]))


@pytest.mark.parametrize(
    "name, folder",
    [
        ("lsun", "lsun/test"),
        ("lsun", "LSUN/test"),
        ("isun", "iSUN/iSUN_patches"),
        ("places365", "places365/test_subset"),
    ],
)
def test_scene_folders(tmp_path, cifar10, name, folder):
    pixels = image_tree((tmp_path / folder).parent, {(tmp_path / folder).name: 3})
    ood = get_datasets(data(tmp_path, ood=[name])).ood[name]
    assert len(ood) == 3 and torch.equal(ood[1][0], as_float(pixels[1])) and ood[1][1] == 0


def test_images_are_resized_and_centre_cropped(tmp_path, cifar10):
    folder = tmp_path / "lsun" / "test"
    folder.mkdir(parents=True)
    Image.new("RGB", (50, 40), (200, 100, 0)).save(folder / "wide.png")
    image, _ = get_datasets(data(tmp_path, ood=["lsun"])).ood["lsun"][0]
    assert image.shape == (3, 32, 32)
    torch.testing.assert_close(image, torch.tensor([200, 100, 0]).view(3, 1, 1).expand(3, 32, 32) / 255)


def test_imagenet(tmp_path):
    image_tree(tmp_path / "imagenet" / "train", {"n01440764": 2, "n01443537": 2}, size=(48, 48))
    val = image_tree(tmp_path / "imagenet" / "val", {"n01440764": 1, "n01443537": 1}, size=(24, 24))
    bundle = get_datasets(data(tmp_path, "imagenet", image_size=24))
    assert bundle.class_names == ["n01440764", "n01443537"] and len(bundle.train) == 4
    assert torch.equal(bundle.test[1][0], as_float(val[1])) and bundle.test[1][1] == 1
    assert bundle.mean == (0.485, 0.456, 0.406) and bundle.std == (0.229, 0.224, 0.225)


def test_any_image_folder_as_id_and_as_ood(tmp_path):
    train = image_tree(tmp_path / "mine" / "train", {"a": 2, "b": 1})
    image_tree(tmp_path / "mine" / "test", {"a": 1, "b": 1})
    outliers = image_tree(tmp_path / "elsewhere", {"x": 2})
    bundle = get_datasets(data(tmp_path, "imagefolder:mine", ood=[f"imagefolder:{tmp_path / 'elsewhere'}"]))
    assert bundle.class_names == ["a", "b"] and len(bundle.test) == 2
    stacked = np.stack(train).transpose(1, 0, 2, 3).reshape(3, -1) / 255
    np.testing.assert_allclose(bundle.mean, stacked.mean(1), atol=1e-6)  # computed from train
    np.testing.assert_allclose(bundle.std, stacked.std(1), atol=1e-6)
    ood = bundle.ood[f"imagefolder:{tmp_path / 'elsewhere'}"]
    assert torch.equal(ood[1][0], as_float(outliers[1]))


def test_missing_sets_name_the_path_and_how_to_get_them(tmp_path, cifar10):
    with pytest.raises(DatasetNotFoundError) as err:
        get_datasets(data(tmp_path, ood=["svhn", "lsun", "textures"]))
    message = str(err.value)
    assert str(tmp_path / "svhn") in message and "download" in message
    assert str(tmp_path / "lsun") in message and "LSUN.tar.gz" in message
    assert str(tmp_path / "dtd") in message and "dtd-r1.0.1.tar.gz" in message
    with pytest.raises(DatasetNotFoundError, match=str(tmp_path / "cifar100")):
        get_datasets(data(tmp_path, "cifar100"))


def test_no_root_says_how_to_set_one(monkeypatch):
    monkeypatch.delenv("SSDLIB_DATA", raising=False)
    with pytest.raises(DatasetNotFoundError, match="SSDLIB_DATA"):
        get_datasets(DataParams(id_dataset="cifar10"))


def test_ssdlib_data_env_is_honoured(tmp_path, cifar10, monkeypatch):
    monkeypatch.setenv("SSDLIB_DATA", str(tmp_path))
    assert len(get_datasets(DataParams(id_dataset="cifar10")).test) == 3


def test_download_goes_through_torchvision_only_when_asked(tmp_path, monkeypatch):
    class Asked(Exception):
        pass

    def fake_download(self):
        raise Asked

    monkeypatch.setattr(datasets.SVHN, "download", fake_download)
    with pytest.raises(Asked):
        get_datasets(data(tmp_path, "svhn", download=True))
    with pytest.raises(DatasetNotFoundError):
        get_datasets(data(tmp_path, "svhn", download=False))
