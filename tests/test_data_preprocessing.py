"""The two preprocessing recipes (ssdlib.data.preprocessing) on real-format files: CIFAR scale resizes and
centre-crops to the size, ImageNet scale evaluates at resize 256 + centre crop 224 and trains SSOD on
RandomResizedCrops of the full decoded image. Expected images are computed here with PIL alone."""

import numpy as np
import pytest
import torch
from PIL import Image

from ssdlib import profiles
from ssdlib.data import checksums, get_datasets, preprocessing, tiny
from ssdlib.data.memory import as_float
from ssdlib.params import DataParams
from ssdlib.ssod import build, runs

BORDER = 24  # px of the red frame of a 512 px image: inside the 32 px (16 px after resizing) that the centre crop drops


def as_tensor(image: Image.Image) -> torch.Tensor:
    return torch.from_numpy(np.asarray(image).transpose(2, 0, 1).copy()).float() / 255


@pytest.fixture
def root(tmp_path, monkeypatch):
    monkeypatch.setenv(checksums.SMOKE_DATA_ENV, str(tmp_path))
    return tmp_path


@pytest.mark.parametrize(
    "size, height_width, resized_width_height, top_left",
    [
        (32, (40, 48), (38, 32), (0, 3)),  # CIFAR scale: shorter side 40 -> 32, 48 -> int(38.4); centre 32
        (224, (320, 400), (320, 256), (16, 48)),  # ImageNet scale: shorter side 320 -> 256, 400 -> 320; centre 224
    ],
)
def test_evaluation_is_resize_then_centre_crop(root, size, height_width, resized_width_height, top_left):
    """ImageNet's val split and the ImageNet-scale OOD folders alike (iNaturalist / SUN as image folders,
    Places, Textures); CIFAR-scale sets as before."""
    ood = ["imagefolder:SUN", "places365", "textures"]
    written = tiny.write_sets(ood, root, id_dataset="imagenet", per_class=1, classes=2, image_size=height_width)
    bundle = get_datasets(DataParams(id_dataset="imagenet", ood_datasets=ood, root=str(root), image_size=size))
    top, left = top_left
    for dataset, split in [(bundle.test, written["imagenet"]["val"]), *((bundle.ood[n], written[n][""]) for n in ood)]:
        pixels = split.images[-1].transpose(1, 2, 0)
        window = np.asarray(Image.fromarray(pixels).resize(resized_width_height, Image.BILINEAR))
        expected = as_tensor(window[top : top + size, left : left + size])
        assert torch.equal(dataset[len(dataset) - 1][0], expected)


@pytest.fixture
def framed(root):
    """ImageNet with one 512 px image: blue, in a red frame that the evaluation's centre crop leaves out."""
    pixels = np.zeros((512, 512, 3), dtype=np.uint8)
    pixels[..., 0] = 255
    pixels[BORDER:-BORDER, BORDER:-BORDER] = (0, 0, 255)
    for split in ("train", "val"):
        (root / "imagenet" / split / "n00000000").mkdir(parents=True)
        Image.fromarray(pixels).save(root / "imagenet" / split / "n00000000" / "framed.png")
    return Image.fromarray(pixels)


def test_training_crops_come_from_the_full_image(root, framed):
    bundle = get_datasets(DataParams(id_dataset="imagenet", root=str(root), image_size=224))
    evaluated = bundle.train[0][0]
    assert evaluated.shape == (3, 224, 224) and evaluated[0].max() == 0  # no red: the frame is cropped away

    whole = preprocessing.random_crops(bundle.train, 224, (1.0, 1.0), views=2)[0][0]
    assert whole.shape == (2, 3, 224, 224) and whole.dtype == torch.uint8  # decoded to float on the device
    for view in as_float(whole):  # area 1 of a square image: the whole image, frame included, resized to 224
        assert torch.equal(view, as_tensor(framed.resize((224, 224), Image.BILINEAR)))
    assert whole[0, 0, 0, 0] == 255

    torch.manual_seed(0)
    crops = [preprocessing.random_crops(bundle.train, 224, (0.08, 1.0), views=1)[0][0][0] for _ in range(20)]
    assert any(c[0].max() > 128 for c in crops)  # crops reach the frame, outside the centre 224 window
    assert len({c[0].sum().item() for c in crops}) > 1  # and they differ (in how much frame they hold)


def ssod_params(root, image_size, **ssod):
    data = {"id_dataset": "imagenet", "root": str(root), "image_size": image_size}
    return profiles.validate({"profile": "t", "data": data, "ssod": {"val_fraction": 0.25, **ssod}})


def test_ssod_streams_crops_at_imagenet_scale_and_holds_cifar_scale_in_memory(root):
    tiny.write_sets([], root, id_dataset="imagenet", per_class=2, classes=2, image_size=(60, 80))
    P = ssod_params(root, 224, supcon_weight=1.0)
    bundle = get_datasets(P.data)
    for supcon, views in [(False, 1), (True, 2)]:  # SSOD (w/) crops every image twice
        train, val = runs.training_data(P, build.settings(P, supcon=supcon), bundle)
        assert (len(train), len(val)) == (3, 1) and not set(train.indices) & set(val.indices)
        assert train[0][0].shape == (views, 3, 224, 224)
        assert torch.equal(val[0][0], bundle.train[val.indices[0]][0])  # held out as evaluated

    small = ssod_params(root, 32)
    train, val = runs.training_data(small, build.settings(small), get_datasets(small.data))
    assert train[0].shape == (3, 3, 32, 32) and val[0].shape == (1, 3, 32, 32)  # tensors, cropped on the device
