"""The registry on the offline profile: names resolved per ID set, statistics, Normalize, tensors, the grid figure."""

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from ssdlib import plots, profiles
from ssdlib.data import ImageTensorDataset, Normalize, get_datasets, ood_names, tensors
from ssdlib.data.synthetic import SyntheticImages
from ssdlib.params import DataParams, OfflineBenchmark, ParamsError

ALL_OFFLINE = ["near", "textures", "digits", "scenes", "blobs", "gaussian", "uniform"]


def tiny(**kw) -> DataParams:
    kw.setdefault("ood_datasets", ALL_OFFLINE)
    return DataParams(
        offline=OfflineBenchmark(train_per_class=3, test_per_class=2, ood_per_set=8), synthetic_per_set=5, **kw
    )


def read(**data):
    """A profile with this ``data`` section, as the loader reads it."""
    return profiles.validate({"profile": "t", "data": tiny(**data).model_dump()})


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("SSDLIB_CACHE", str(tmp_path / "cache"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("SSDLIB_CACHE", str(tmp_path_factory.mktemp("cache")))
        return get_datasets(tiny())


def test_offline_bundle(bundle):
    assert bundle.name == "offline" and bundle.num_classes == 10 and len(bundle.class_names) == 10
    assert (len(bundle.train), len(bundle.test)) == (30, 20)
    assert list(bundle.ood) == ALL_OFFLINE
    assert {n: len(d) for n, d in bundle.ood.items()} == {
        **dict.fromkeys(ALL_OFFLINE[:4], 8),
        **dict.fromkeys(ALL_OFFLINE[4:], 5),
    }
    assert set(bundle.descriptions) == {"offline", *ALL_OFFLINE}
    assert "CIFAR-10" in bundle.descriptions["offline"] and "SVHN" in bundle.descriptions["digits"]
    assert isinstance(bundle.ood["textures"], ImageTensorDataset)  # the generated textures, not DTD
    for name, (ds, _) in bundle.catalogue().items():
        x, y = ds[0]
        assert x.shape == (3, 32, 32) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1, name
        assert isinstance(y, int), name


def test_offline_statistics_are_the_train_pixels(bundle):
    pixels = np.stack([bundle.train[i][0].numpy() for i in range(len(bundle.train))]).transpose(1, 0, 2, 3)
    np.testing.assert_allclose(bundle.mean, pixels.reshape(3, -1).mean(1), atol=1e-6)
    np.testing.assert_allclose(bundle.std, pixels.reshape(3, -1).std(1), atol=1e-6)


def test_normalize_layer(bundle):
    layer = bundle.normalize()
    x = torch.rand(2, 3, 4, 4)
    expected = (x - torch.tensor(bundle.mean).view(1, 3, 1, 1)) / torch.tensor(bundle.std).view(1, 3, 1, 1)
    torch.testing.assert_close(layer(x), expected)
    assert layer.state_dict() == {}  # non-persistent: no checkpoint keys
    assert layer.to(torch.float64).mean.dtype == torch.float64  # buffers follow the module


def test_normalize_off_is_identity(tmp_path):
    layer = get_datasets(tiny(ood_datasets=[], normalize=False)).normalize()
    x = torch.rand(2, 3, 4, 4)
    assert torch.equal(layer(x), x)


def test_normalize_rejects_bad_statistics():
    with pytest.raises(ValueError, match="std"):
        Normalize([0.5] * 3, [0.2, 0.0, 0.2])
    with pytest.raises(ValueError, match="channels"):
        Normalize([0.5] * 3, [0.2] * 2)


def test_sizes_table(bundle):
    table = bundle.sizes()
    assert table["set"].tolist() == ["offline train", "offline test", *ALL_OFFLINE]
    assert table["images"].tolist() == [30, 20, 8, 8, 8, 8, 5, 5, 5]
    assert table["labels"].tolist() == [10, 10, 6, 3, 10, 4, 1, 1, 1]
    assert table["stands in for"].str.len().min() > 10


@pytest.mark.parametrize("id_dataset, name", [("cifar10", "near"), ("offline", "nonsense"), ("offline", "textures ")])
def test_unknown_names_list_the_valid_ones(id_dataset, name):
    """Refused when the params are read, before any folder exists or any file is opened."""
    with pytest.raises(ParamsError, match=f"unknown OOD set '{name}'.*valid: .*blobs, gaussian, uniform"):
        read(id_dataset=id_dataset, ood_datasets=[name])


def test_name_errors():
    with pytest.raises(ParamsError, match="unknown ID set 'cifar11'.*cifar10"):
        read(id_dataset="cifar11")
    with pytest.raises(ParamsError, match="more than once"):
        read(ood_datasets=["blobs", "near", "blobs"])
    with pytest.raises(ParamsError, match="is the ID set"):
        read(id_dataset="cifar10", ood_datasets=["cifar10"])


def test_names_depend_on_the_id_set():
    offline_names, cifar_names = ood_names("offline"), ood_names("cifar10")
    assert {"near", "digits", "scenes", "textures", "blobs", "svhn", "lsun"} <= set(offline_names)
    assert {"textures", "cifar100", "svhn", "blobs", "gaussian", "uniform"} <= set(cifar_names)
    assert "near" not in cifar_names and "cifar10" not in cifar_names


def test_tensors_of_lazy_and_in_memory_sets(bundle):
    for ds in (bundle.ood["blobs"], bundle.ood["digits"]):
        x, y = tensors(ds, batch_size=3)
        assert x.dtype == torch.float32 and y.dtype == torch.long and x.shape == (len(ds), 3, 32, 32)
        for i in range(len(ds)):
            assert torch.equal(x[i], ds[i][0]) and y[i] == ds[i][1]
    x, _ = tensors(bundle.train)
    x.zero_()  # the caller's copy: the dataset keeps its images
    assert bundle.train[0][0].max() > 0


def test_tensors_shows_a_bar_for_large_sets_where_someone_watches(capsys, monkeypatch):
    from ssdlib import progress

    monkeypatch.setattr(progress, "someone_watching", lambda: True)  # a terminal, or JupyterLab
    tensors(SyntheticImages("uniform", 4, 8), progress=True)
    assert "loading images" in capsys.readouterr().err
    monkeypatch.setattr(progress, "someone_watching", lambda: False)  # a batch run: no frames in its output
    tensors(SyntheticImages("uniform", 4, 8), progress=True)
    assert "loading images" not in capsys.readouterr().err


def test_dataset_grid_shows_samples_of_every_set(bundle):
    sets = bundle.catalogue(include_test=False)
    fig = plots.dataset_grid(sets, per_set=4)
    rows = np.array(fig.axes).reshape(len(sets), 4)
    for row, (ds, about) in zip(rows, sets.values()):
        shown = [ax.images[0].get_array() for ax in row]
        first, target = ds[0]
        np.testing.assert_allclose(shown[0], first.numpy().transpose(1, 2, 0))
        assert about in row[0].texts[0].get_text()
        names = getattr(ds, "class_names", None)
        assert row[0].get_title() == (names[target] if names else "")
    plt.close(fig)


def test_require_ood_names_the_key_and_the_missing_sets():
    bundle = get_datasets(tiny(ood_datasets=["gaussian", "blobs"]))
    bundle.require_ood("checks.ssd_auroc_sets", ["gaussian", "blobs"])
    with pytest.raises(ParamsError, match=r"checks.ssod_ood_set names OOD sets \['places365'\].*add them"):
        bundle.require_ood("checks.ssod_ood_set", "places365")


def test_plots_save_writes_a_png_named_after_the_figure(tmp_path):
    fig, ax = plt.subplots()
    ax.plot([0, 1], [1, 0])
    path = plots.save(fig, tmp_path, "line")
    assert path == tmp_path / "line.png" and path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
