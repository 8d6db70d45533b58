"""``./run bench``: how fast ssdlib trains and scores on this device, beside SSD's own pipeline.

Everything is measured in one run on one device, so the ratios compare like with like:

- **SimCLR training** (:mod:`~ssdlib.bench.simclr`), two ways with the same model, batch and image size:
  ssdlib's pipeline (:class:`ssdlib.training.loop.Trainer`: the training set on the device, batched
  augmentations there; on CUDA bf16 autocast, channels-last, fused SGD, deferred loss reads and
  torch.compile, which is also timed switched off) and an SSD-style pipeline (SSD's ``train.py`` +
  ``data.py``: torchvision's PIL transforms in a DataLoader with 4 workers and pinned memory, fp32, the
  loss read every step). Images/s (training images, each giving two views), the ratio, and model FLOP
  utilisation: FLOPs of one step counted with ``torch.utils.flop_counter`` over the peak of the device
  (:mod:`~ssdlib.bench.device`: a table of known GPUs, else a measured matmul). A breakdown
  (:mod:`~ssdlib.bench.breakdown`) times a step's parts: augmentation and the model's step, eager and
  compiled.
- **SSD fit + score** (:mod:`~ssdlib.bench.ssd`): 50 000 x 2048 train features, 10 000 test features,
  one cluster; numpy (``SSD()``) and torch on the device (``SSD(device=...)``), with the largest score
  difference.
- **SSOD training** steps at 224 px (:mod:`~ssdlib.bench.ssod`; ResNet-18 and ResNet-50, ImageNet stem:
  32 px images upsampled in the model, as ``params/cifar10_ssod.yaml``), and **feature extraction**
  (:mod:`~ssdlib.bench.extraction`, ``ssdlib.features.extract``) of 32 px images.

:mod:`~ssdlib.bench.report` writes ``bench.json`` and ``bench.md`` to the output folder after each
section (a run stopped half-way keeps what it measured). The sizes are :mod:`~ssdlib.bench.sizes`'s;
``quick=True`` shrinks every size so the whole run takes seconds (the tests run it); its figures say
nothing about speed. The command itself (``configure``/``run``, which the ``ssdlib`` dispatcher finds
here) is :mod:`~ssdlib.bench.cli`.
"""

from ssdlib.bench.cli import configure, run

__all__ = ["configure", "run"]
