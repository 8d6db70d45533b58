"""ssdlib.data.tiny: every real set's tiny files open through get_datasets, and torchvision's md5 check is
relaxed only for the root that $SSDLIB_SMOKE_DATA declares."""

import json

import pytest
import torch
from PIL import Image
from torchvision import datasets

from ssdlib.data import DatasetNotFoundError, checksums, get_datasets, preprocessing, real, tiny
from ssdlib.params import DataParams

SIZE = 32
FOLDER_OOD = "imagefolder:outliers"


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv(checksums.SMOKE_DATA_ENV, str(tmp_path))
    return tmp_path


def ood_split(name: str) -> str:
    """The split real.open_ood reads."""
    return "" if name.startswith(real.IMAGEFOLDER) else real.REAL_SETS[name].test_split


def assert_read_as_written(dataset, split: tiny.Split):
    """As many images as written; the last (highest label) as the loader's transform makes of the written pixels."""
    assert len(dataset) == len(split.labels)
    image, label = dataset[len(dataset) - 1]
    expected = preprocessing.evaluation_transform(SIZE)(Image.fromarray(split.images[-1].transpose(1, 2, 0)))
    assert torch.equal(image, expected) and label == split.labels[-1]


@pytest.mark.parametrize("id_dataset", [*real.ID_CAPABLE, "imagefolder:mine"])
def test_every_real_set_round_trips(root, id_dataset):
    ood = [*(name for name in real.REAL_SETS if name != id_dataset), FOLDER_OOD]
    written = tiny.write_sets([*ood, "blobs"], root, id_dataset=id_dataset)
    assert set(written) == {id_dataset, *ood}
    bundle = get_datasets(DataParams(id_dataset=id_dataset, ood_datasets=ood, root=str(root), image_size=SIZE))
    train, test = written[id_dataset]["train"], written[id_dataset][real.resolve(id_dataset, str(root))[0].test_split]
    assert_read_as_written(bundle.train, train)
    assert_read_as_written(bundle.test, test)
    for name in ood:
        assert_read_as_written(bundle.ood[name], written[name][ood_split(name)])


def test_folder_images_are_of_another_size(root):
    """So that the loaders' resizing and centre cropping run."""
    images = tiny.write_sets(["lsun"], root)["lsun"][""].images
    assert images.shape[2:] == tiny.FOLDER_IMAGE_SIZE != (SIZE, SIZE)


def cifar10(root):
    return DataParams(id_dataset="cifar10", root=str(root))


def test_the_published_sums_hold_outside_the_declared_root(tmp_path, monkeypatch):
    tiny.write_sets(["cifar10"], tmp_path)
    published = datasets.CIFAR10.train_list
    monkeypatch.delenv(checksums.SMOKE_DATA_ENV, raising=False)
    with pytest.raises(DatasetNotFoundError, match="corrupt .*: not the published files"):  # torchvision's own check
        get_datasets(cifar10(tmp_path))
    monkeypatch.setenv(checksums.SMOKE_DATA_ENV, str(tmp_path / "elsewhere"))
    with pytest.raises(DatasetNotFoundError, match="corrupt .*: not the published files"):
        get_datasets(cifar10(tmp_path))
    monkeypatch.setenv(checksums.SMOKE_DATA_ENV, str(tmp_path))
    assert len(get_datasets(cifar10(tmp_path)).train) == 6
    assert datasets.CIFAR10.train_list is published  # restored once the set is open


def test_registered_checksums_are_the_manifests_while_active(tmp_path):
    tiny.write_sets(["svhn"], tmp_path)
    published = datasets.SVHN.split_list
    manifest = json.loads((tmp_path / checksums.CHECKSUMS_FILE).read_text())
    with checksums.registered_checksums(tmp_path):
        assert datasets.SVHN.split_list == manifest["SVHN"]["split_list"]
        assert datasets.SVHN.split_list != published
    assert datasets.SVHN.split_list is published


def test_the_manifest_merges_across_calls(root):
    tiny.write_sets(["cifar10"], root)
    tiny.write_sets(["svhn", "stl10"], root)
    assert set(json.loads((root / checksums.CHECKSUMS_FILE).read_text())) == {"CIFAR10", "SVHN", "STL10"}
    bundle = get_datasets(DataParams(id_dataset="cifar10", ood_datasets=["svhn", "stl10"], root=str(root)))
    assert [len(bundle.ood[name]) for name in ("svhn", "stl10")] == [6, 6]


def test_other_names_are_skipped(tmp_path):
    """With the offline ID set, textures is the generated set: nothing to write."""
    assert tiny.write_sets(["near", "textures", "blobs", "gaussian"], tmp_path, id_dataset="offline") == {}
    assert not any(tmp_path.iterdir())


def test_image_folders_stay_under_the_root(tmp_path):
    with pytest.raises(ValueError, match="relative"):
        tiny.write_sets([f"imagefolder:{tmp_path / 'x'}"], tmp_path)


def test_images_follow_the_seed(tmp_path):
    def images(seed, folder):
        return tiny.write_sets(["cifar10"], tmp_path / folder, seed=seed)["cifar10"]["test"].images

    assert (images(0, "a") == images(0, "b")).all() and not (images(0, "a") == images(1, "c")).all()
