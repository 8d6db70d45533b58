"""The one batch reader of the trainers and monitors: tensors held in memory and the same images as a
streamed Dataset give the same batches; uint8 images become float [0, 1] only on the device."""

import torch

from ssdlib.data.memory import ImageTensorDataset
from ssdlib.training import batches


def test_held_and_streamed_sets_give_the_same_batches():
    g = torch.Generator().manual_seed(0)
    stored = torch.randint(0, 256, (10, 3, 4, 4), generator=g, dtype=torch.uint8)
    labels = torch.arange(10) % 3
    held = (stored.float() / 255, labels)
    streamed = ImageTensorDataset(stored, labels)
    assert batches.size(held) == batches.size(streamed) == 10
    index = [torch.tensor([3, 1, 4]), torch.tensor([9, 0])]
    for data in (held, streamed):
        read = [batches.on_device(x, y, torch.device("cpu")) for x, y in batches.read(data, index, num_workers=0)]
        assert [len(y) for _, y in read] == [3, 2]
        for (x, y), idx in zip(read, index):
            assert torch.equal(x, held[0][idx]) and torch.equal(y, labels[idx])
    assert [i.tolist() for i in batches.in_order(held, 4)] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]


def test_on_device_converts_uint8_and_leaves_float_batches_uncopied():
    x = torch.rand(2, 3, 4, 4)
    same, y = batches.on_device(x, torch.tensor([1, 0], dtype=torch.int32), torch.device("cpu"))
    assert same is x and y.dtype == torch.long
    stored = torch.tensor([[[[0, 255]]]], dtype=torch.uint8)
    assert torch.equal(
        batches.on_device(stored, torch.tensor([0]), torch.device("cpu"))[0], torch.tensor([[[[0.0, 1.0]]]])
    )
