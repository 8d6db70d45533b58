"""Real loaders: tiny files in each set's real on-disk format (ssdlib.data.tiny), read through torchvision via
get_datasets.

torchvision checks the md5 of the CIFAR, SVHN and STL-10 files against the published archives; with
$SSDLIB_SMOKE_DATA naming the test's root, real.py registers the sums of the files written there, so the check
still runs.
"""

import numpy as np
import pytest
import torch
from PIL import Image
from torchvision import datasets

from ssdlib.data import DatasetNotFoundError, checksums, get_datasets, real, tiny
from ssdlib.params import DataParams

CIFAR10_STATS = ((0.491, 0.482, 0.447), (0.202, 0.199, 0.201))
TARGET = (32, 32)  # folder images at the target size: no resizing, so the pixels read are the pixels written


@pytest.fixture
def root(tmp_path, monkeypatch):
    """The test's data root, declared as a smoke root so torchvision checks the tiny files' sums."""
    monkeypatch.setenv(checksums.SMOKE_DATA_ENV, str(tmp_path))
    return tmp_path


def written(root, name, **kw):
    return tiny.write_sets([name], root, **kw)[name]


@pytest.fixture
def cifar10(root):
    return written(root, "cifar10")


@pytest.fixture
def cifar100(root):
    return written(root, "cifar100")


@pytest.fixture
def svhn(root):
    return written(root, "svhn")


@pytest.fixture
def stl10(root):
    return written(root, "stl10")


def as_float(x):
    return torch.from_numpy(np.asarray(x)).float() / 255


def data(tmp_path, id_dataset="cifar10", ood=(), **kw):
    return DataParams(id_dataset=id_dataset, ood_datasets=list(ood), root=str(tmp_path), **kw)


def test_cifar10_as_id(tmp_path, cifar10):
    bundle = get_datasets(data(tmp_path))
    assert (len(bundle.train), len(bundle.test)) == (len(cifar10["train"].labels), len(cifar10["test"].labels))
    for split, (x, y) in cifar10.items():
        ds = getattr(bundle, split)
        for i in range(len(ds)):
            image, label = ds[i]
            assert image.dtype == torch.float32 and torch.equal(image, as_float(x[i])) and label == y[i]
    assert bundle.class_names == tiny.CIFAR10_CLASSES and bundle.num_classes == 10
    assert (bundle.mean, bundle.std) == CIFAR10_STATS  # SSD's constants


def test_ood_sets_get_the_id_statistics(tmp_path, cifar10, cifar100, svhn):
    """OOD images stay raw [0, 1]; the one normalisation is the ID set's, applied by the model."""
    bundle = get_datasets(data(tmp_path, ood=["cifar100", "svhn"]))
    x, y = cifar100["test"]
    assert [bundle.ood["cifar100"][i][1] for i in range(len(y))] == y and max(y) == 99
    assert torch.equal(bundle.ood["cifar100"][2][0], as_float(x[2]))
    svhn_x, svhn_y = svhn["test"]
    image, label = bundle.ood["svhn"][0]
    assert torch.equal(image, as_float(svhn_x[0])) and label == svhn_y[0] == 0  # stored as SVHN's 10
    assert [bundle.ood["svhn"][i][1] for i in range(len(svhn_y))] == svhn_y
    assert bundle.sizes()["labels"].tolist() == [10, 10, 100, len(set(svhn_y))]  # SVHN: the digits it holds
    mean, std = (torch.tensor(s).view(3, 1, 1) for s in CIFAR10_STATS)
    torch.testing.assert_close(bundle.normalize()(image[None])[0], (image - mean) / std)


def test_svhn_as_id_is_not_normalised(tmp_path, svhn):
    bundle = get_datasets(data(tmp_path, "svhn"))
    assert (bundle.mean, bundle.std) == ((0.0,) * 3, (1.0,) * 3)  # as SSD
    assert bundle.class_names == [str(d) for d in range(10)]
    x, y = svhn["train"]
    assert torch.equal(bundle.train[2][0], as_float(x[2])) and bundle.train[2][1] == y[2] == 9


def test_stl10_native_and_resized(tmp_path, stl10):
    bundle = get_datasets(data(tmp_path, "stl10", image_size=96))
    x, y = stl10["test"]
    assert torch.equal(bundle.test[1][0], as_float(x[1])) and bundle.test[1][1] == y[1]
    train_labels = stl10["train"].labels
    assert [bundle.train[i][1] for i in range(len(train_labels))] == train_labels and 9 in train_labels
    assert bundle.class_names[2] == "car"
    small = get_datasets(data(tmp_path, "stl10", image_size=32))
    assert small.train[0][0].shape == (3, 32, 32)


@pytest.mark.parametrize("layout", ["dtd/images", "dtd/dtd/images"])
def test_textures_is_dtd_with_a_real_id_set(tmp_path, cifar10, layout):
    x, y = written(tmp_path, "textures", image_size=TARGET)[""]
    if layout != "dtd/images":  # torchvision's DTD layout
        (tmp_path / "dtd" / "dtd").mkdir()
        (tmp_path / "dtd" / "images").rename(tmp_path / layout)
    textures = get_datasets(data(tmp_path, ood=["textures"])).ood["textures"]
    assert isinstance(textures, datasets.ImageFolder) and textures.classes == ["class000", "class001", "class002"]
    assert [textures[i][1] for i in range(len(y))] == y
    assert torch.equal(textures[2][0], as_float(x[2]))


@pytest.mark.parametrize(
    "name, folder", [("lsun", "lsun"), ("lsun", "LSUN"), ("isun", "iSUN"), ("places365", "places")]
)
def test_scene_folders(tmp_path, cifar10, name, folder):
    """Each set's own folder or one of the archives' spellings of it."""
    x, y = written(tmp_path, name, image_size=TARGET)[""]
    (tmp_path / name).rename(tmp_path / folder)
    ood = get_datasets(data(tmp_path, ood=[name])).ood[name]
    assert len(ood) == len(y) and torch.equal(ood[3][0], as_float(x[3])) and ood[3][1] == y[3]


def test_images_are_resized_and_centre_cropped(tmp_path, cifar10):
    folder = tmp_path / "lsun" / "test"
    folder.mkdir(parents=True)
    Image.new("RGB", (50, 40), (200, 100, 0)).save(folder / "wide.png")
    image, _ = get_datasets(data(tmp_path, ood=["lsun"])).ood["lsun"][0]
    assert image.shape == (3, 32, 32)
    torch.testing.assert_close(image, torch.tensor([200, 100, 0]).view(3, 1, 1).expand(3, 32, 32) / 255)


def test_imagenet(root):
    sets = written(root, "imagenet", id_dataset="imagenet", image_size=(24, 24))
    bundle = get_datasets(data(root, "imagenet", image_size=24))
    assert bundle.class_names == ["n00000000", "n00000001", "n00000002"]
    assert len(bundle.train) == len(sets["train"].labels)
    x, y = sets["val"]
    assert torch.equal(bundle.test[3][0], as_float(x[3])) and bundle.test[3][1] == y[3] == 1
    assert bundle.mean == (0.485, 0.456, 0.406) and bundle.std == (0.229, 0.224, 0.225)


def test_any_image_folder_as_id_and_as_ood(root):
    sets = written(root, "imagefolder:mine", id_dataset="imagefolder:mine", image_size=TARGET)
    outliers = written(root / "other", "imagefolder:elsewhere", image_size=TARGET)[""]
    elsewhere = f"imagefolder:{root / 'other' / 'elsewhere'}"  # an absolute path
    bundle = get_datasets(data(root, "imagefolder:mine", ood=[elsewhere]))
    assert bundle.class_names == ["class000", "class001", "class002"]
    assert len(bundle.test) == len(sets["val"].labels)
    stacked = sets["train"].images.transpose(1, 0, 2, 3).reshape(3, -1) / 255
    np.testing.assert_allclose(bundle.mean, stacked.mean(1), atol=1e-6)  # computed from train
    np.testing.assert_allclose(bundle.std, stacked.std(1), atol=1e-6)
    assert torch.equal(bundle.ood[elsewhere][1][0], as_float(outliers.images[1]))


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
    assert len(get_datasets(DataParams(id_dataset="cifar10")).test) == len(cifar10["test"].labels)


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


def test_expected_counts_are_the_published_sets():
    assert real.expected_count("cifar10", "train") == 50000 and real.expected_count("imagenet", "val") == 50000
    assert real.expected_count("textures", "") == 5640 and real.expected_count("svhn", "test") == 26032
    assert real.expected_count("places365", "") is None and real.expected_count("imagefolder:mine", "") is None


def test_a_corrupt_file_of_a_set_is_named_not_called_missing(tmp_path, cifar10):
    """Random bytes under CIFAR-10's file names: torchvision says "not found or corrupted", naming none."""
    batch = tmp_path / "cifar10" / "cifar-10-batches-py" / "data_batch_1"
    batch.write_bytes(np.random.default_rng(0).bytes(batch.stat().st_size))
    with pytest.raises(DatasetNotFoundError) as err:
        get_datasets(data(tmp_path))
    message = str(err.value)
    assert message.startswith(f"cifar10: {batch} corrupt (not the published file: its md5 sum differs); delete it")
    assert "not found" not in message and "\n" not in message
