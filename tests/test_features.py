"""Feature extraction: values equal a direct forward pass; eval mode; logits and labels when present."""

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ssdlib.detectors.base import FeatureSet
from ssdlib.features import extract, subset


class TinyClassifier(nn.Module):
    """Pooled features through BatchNorm (so eval vs train mode changes them), then a linear head."""

    def __init__(self):
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.bn = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 2)

    def features(self, x):
        return self.bn(self.conv(x).mean((2, 3)))

    def classify(self, f):
        return self.head(f)


class TinyEncoder(nn.Module):
    def features(self, x):
        return x.flatten(1)[:, :5]


@pytest.fixture
def images():
    torch.manual_seed(0)
    return torch.rand(10, 3, 6, 6), torch.arange(10) % 3


def test_features_logits_labels_equal_a_direct_forward_in_eval_mode(images):
    x, y = images
    model = TinyClassifier()
    model.bn.running_mean.fill_(0.3)  # running stats differ from batch stats: train mode would change values
    model.train()
    fs = extract(model, TensorDataset(x, y), batch_size=4)
    assert model.training, "extract() must leave the model in the mode it found it in"
    model.eval()
    with torch.no_grad():
        f = model.features(x)
        np.testing.assert_allclose(fs.features, f.numpy(), rtol=1e-6, atol=1e-6)
        np.testing.assert_allclose(fs.logits, model.classify(f).numpy(), rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(fs.labels, y.numpy())
    assert fs.features.dtype == np.float32 and fs.labels.dtype == np.int64


def test_workers_and_cpu_autocast_change_no_value(images):
    """Workers decode in other processes, in the same order; autocast only acts on CUDA."""
    x, y = images
    model = TinyClassifier().eval()
    plain = extract(model, TensorDataset(x, y), batch_size=4)
    other = extract(model, TensorDataset(x, y), batch_size=4, num_workers=2, amp=True)
    for a, b in ((plain.features, other.features), (plain.logits, other.logits), (plain.labels, other.labels)):
        np.testing.assert_array_equal(a, b)


def test_loader_tensor_and_unlabelled_inputs(images):
    x, y = images
    model = TinyEncoder()
    from_loader = extract(model, DataLoader(TensorDataset(x, y), batch_size=3))
    from_tensor = extract(model, x)
    np.testing.assert_array_equal(from_loader.features, x.flatten(1)[:, :5].numpy())
    np.testing.assert_array_equal(from_tensor.features, from_loader.features)
    assert from_tensor.labels is None and from_tensor.logits is None


def test_bad_inputs_are_explained(images):
    with pytest.raises(TypeError, match="Dataset, a DataLoader or an image tensor"):
        extract(TinyEncoder(), [1, 2, 3])
    with pytest.raises(ValueError, match="empty"):
        extract(TinyEncoder(), torch.empty(0, 3, 6, 6))


def test_subset_takes_the_same_rows_everywhere():
    fs = FeatureSet(features=np.arange(12).reshape(6, 2), logits=np.arange(6)[:, None], labels=np.arange(6) * 10)
    part = subset(fs, np.array([4, 1]))
    assert part.features.tolist() == [[8, 9], [2, 3]] and part.logits.ravel().tolist() == [4, 1]
    assert part.labels.tolist() == [40, 10]
    assert subset(FeatureSet(features=fs.features), [0]).labels is None
