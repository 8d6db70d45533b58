"""Checkpoint loading: SSD and SupContrast layouts, DataParallel prefixes, safe loading, clear errors."""

import argparse

import pytest
import torch
from torch import nn

from ssdlib.models import SSLNet, SupNet, resnet
from ssdlib.models.load import CheckpointError, load_checkpoint, read_checkpoint


def trained_like(model, seed):
    """Random weights and BN statistics, so a load that skips anything is visible."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for t in model.state_dict().values():
            if t.is_floating_point():
                t.copy_(torch.rand(t.shape, generator=g) + 0.5)
    return model


def dataparallel_keys(state_dict):
    """Keys as SSD saves them: the encoder wrapped in nn.DataParallel."""
    return {k.replace("encoder.", "encoder.module.", 1): v for k, v in state_dict.items()}


def assert_same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        torch.testing.assert_close(sa[k], sb[k], rtol=0, atol=0, msg=k)


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_ssd_train_file_loads(arch, tmp_path):
    source = trained_like(SSLNet(resnet(arch, width=8)), seed=1)
    state = dataparallel_keys(source.state_dict())
    assert all(k.startswith(("encoder.module.", "head.")) for k in state)
    path = tmp_path / "checkpoint.pth.tar"
    torch.save({"epoch": 500, "arch": arch, "state_dict": state, "best_prec1": 91.2, "optimizer": {}}, path)
    target = SSLNet(resnet(arch, width=8))
    meta = load_checkpoint(path, target)
    assert_same_weights(target, source)
    assert meta == {"epoch": 500, "arch": arch, "best_prec1": 91.2}


@pytest.mark.parametrize("arch", ["resnet18", "resnet50"])
def test_supcontrast_file_needs_trust(arch, tmp_path):
    source = trained_like(SSLNet(resnet(arch, width=8)), seed=2)
    opt = argparse.Namespace(model=arch, temp=0.5, batch_size=900)
    path = tmp_path / "last.pth"
    torch.save({"opt": opt, "model": dataparallel_keys(source.state_dict()), "optimizer": {}, "epoch": 500}, path)
    target = SSLNet(resnet(arch, width=8))
    before = {k: v.clone() for k, v in target.state_dict().items()}
    with pytest.raises(CheckpointError, match=r"argparse\.Namespace.*trust=True.*--trust-checkpoint"):
        load_checkpoint(path, target)
    assert all(torch.equal(before[k], v) for k, v in target.state_dict().items())  # nothing half-loaded
    meta = load_checkpoint(path, target, trust=True)
    assert_same_weights(target, source)
    assert meta["opt"].batch_size == 900 and meta["epoch"] == 500


def test_raw_state_dicts_with_leading_module_and_without_prefix(tmp_path):
    source = trained_like(SSLNet(resnet("resnet18", width=8)), seed=3)
    for name, state in {
        "whole_model_dataparallel.pth": {f"module.{k}": v for k, v in source.state_dict().items()},
        "single_gpu.pth": source.state_dict(),
    }.items():
        torch.save(state, tmp_path / name)
        target = SSLNet(resnet("resnet18", width=8))
        load_checkpoint(tmp_path / name, target)
        assert_same_weights(target, source)


def test_supcontrast_ce_fc_becomes_head(tmp_path):
    source = trained_like(SupNet(resnet("resnet18", width=8), num_classes=10), seed=4)
    file_state = {k.replace("head.", "fc."): v for k, v in dataparallel_keys(source.state_dict()).items()}
    assert {"fc.weight", "fc.bias"} <= set(file_state)
    torch.save({"model": file_state, "epoch": 100}, tmp_path / "ce.pth")
    target = SupNet(resnet("resnet18", width=8), num_classes=10)
    load_checkpoint(tmp_path / "ce.pth", target)
    assert_same_weights(target, source)


def test_head_that_does_not_fit_is_skipped_only_when_asked(tmp_path):
    source = trained_like(SSLNet(resnet("resnet18", width=8)), seed=5)
    torch.save({"state_dict": dataparallel_keys(source.state_dict())}, tmp_path / "ssl.pth")
    target = SupNet(resnet("resnet18", width=8), num_classes=10)
    head_before = target.head.weight.clone()
    with pytest.raises(
        CheckpointError, match=r"encoder_only=True(.|\n)*missing: head\.weight(.|\n)*unexpected: head\.0"
    ):
        load_checkpoint(tmp_path / "ssl.pth", target)
    with pytest.warns(UserWarning, match="head skipped"):
        load_checkpoint(tmp_path / "ssl.pth", target, encoder_only=True)
    assert_same_weights(target.encoder, source.encoder)
    assert torch.equal(target.head.weight, head_before)


def test_wrong_arch_or_width_names_the_keys(tmp_path):
    torch.save(SSLNet(resnet("resnet18", width=8)).state_dict(), tmp_path / "r18.pth")
    torch.save(SSLNet(resnet("resnet50", width=8)).state_dict(), tmp_path / "r50.pth")
    with pytest.raises(CheckpointError) as err:
        load_checkpoint(tmp_path / "r18.pth", SSLNet(resnet("resnet50", width=8)))
    message = str(err.value)
    assert "r18.pth" in message and "wrong arch" in message
    assert "198 missing: encoder.layer1.0.conv3.weight" in message and "(193 more)" in message
    assert "shape mismatches: encoder.layer1.0.conv1.weight: file (8, 8, 3, 3), model (8, 8, 1, 1)" in message
    with pytest.raises(CheckpointError, match=r"198 unexpected: encoder\.layer1\.0\.conv3\.weight"):
        load_checkpoint(tmp_path / "r50.pth", SSLNet(resnet("resnet18", width=8)))
    with pytest.raises(
        CheckpointError, match=r"shape mismatches: encoder\.conv1\.weight: file \(8, 3, 3, 3\), model \(16, 3, 3, 3\)"
    ):
        load_checkpoint(tmp_path / "r18.pth", SSLNet(resnet("resnet18", width=16)))


def test_unreadable_files_are_named(tmp_path):
    path = tmp_path / "half.pth"
    torch.save(SSLNet(resnet("resnet18", width=8)).state_dict(), path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    model = SSLNet(resnet("resnet18", width=8))
    with pytest.raises(CheckpointError, match=r"half\.pth: cannot be read.*corrupt or truncated"):
        load_checkpoint(path, model)
    with pytest.raises(CheckpointError, match=r"half\.pth: cannot be read"):
        load_checkpoint(path, model, trust=True)
    with pytest.raises(CheckpointError, match=r"nowhere\.pth: no such checkpoint file"):
        load_checkpoint(tmp_path / "nowhere.pth", model)
    torch.save({"epoch": 3}, tmp_path / "empty.pth")
    with pytest.raises(CheckpointError, match="found no state dict"):
        load_checkpoint(tmp_path / "empty.pth", model)


def test_wrapped_model_is_unwrapped(tmp_path):
    source = trained_like(SSLNet(resnet("resnet18", width=8)), seed=6)
    torch.save(source.state_dict(), tmp_path / "m.pth")
    target = nn.DataParallel(SSLNet(resnet("resnet18", width=8)))
    load_checkpoint(tmp_path / "m.pth", target)
    assert_same_weights(target.module, source)


class _RunsACommand:
    """What a hostile checkpoint holds: unpickling it would call os.system."""

    def __reduce__(self):
        import os

        return (os.system, ("true",))


def test_a_file_that_would_run_code_is_refused_as_such_not_as_corrupt(tmp_path):
    path = tmp_path / "hostile.pt"
    torch.save({"model": _RunsACommand()}, path)
    with pytest.raises(CheckpointError, match=r"beyond tensors \(posix\.system.*--trust-checkpoint") as err:
        read_checkpoint(path)
    assert "corrupt" not in str(err.value)


def test_random_bytes_and_a_plain_pickle_each_get_their_own_advice(tmp_path):
    """torch advises "re-running with weights_only=False will likely succeed" for both: right for neither
    random bytes (not a checkpoint at all) nor a plain pickle (full unpickling runs its code)."""
    import os
    import pickle

    noise, plain, empty = tmp_path / "noise.pt", tmp_path / "plain.pkl", tmp_path / "empty.pt"
    noise.write_bytes(b"\x13" + os.urandom(2000))
    plain.write_bytes(pickle.dumps({"model": _RunsACommand()}))
    empty.write_bytes(b"")
    for path, said in [
        (noise, "noise.pt: not a PyTorch checkpoint (neither a zip archive nor a pickle: it starts with b'\\x13"),
        (empty, "empty.pt: not a PyTorch checkpoint (neither a zip archive nor a pickle: it is empty)"),
        (plain, "plain.pkl: a plain pickle (not a PyTorch zip archive) that safe loading cannot read"),
    ]:
        with pytest.raises(CheckpointError) as err:
            read_checkpoint(path)
        message = str(err.value)
        assert message.startswith(f"{tmp_path}/{said}") and "will likely succeed" not in message
        assert "\n" not in message and ("--trust-checkpoint" in message) == (path == plain)


def test_trusting_a_checkpoint_says_so(tmp_path, caplog):
    path = tmp_path / "supcontrast.pth"
    torch.save({"opt": argparse.Namespace(lr=0.1), "model": SSLNet(resnet("resnet18", width=8)).state_dict()}, path)
    read_checkpoint(path, trust=True)
    assert f"{path}: unpickled fully (--trust-checkpoint): any code hidden in the file runs now" in caplog.text
