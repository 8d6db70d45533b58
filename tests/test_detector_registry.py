"""The detector registry: a new detector is one declaration, which params and the suite then know."""

import numpy as np
import pytest
import torch
from pydantic import Field
from test_baselines_suite import SIZE, C, Encoder, coloured

from ssdlib import params, profiles
from ssdlib.data.synthetic import SyntheticImages
from ssdlib.detectors import registry
from ssdlib.detectors.base import Detector, FeatureSet
from ssdlib.detectors.registry import Method, MethodParams
from ssdlib.evaluation import baselines as bl
from ssdlib.models.heads import SupNet


class ScaledMaxLogit(Detector):
    """A made-up detector: the largest logit times a scale (what a user's new file would hold)."""

    name = "ScaledMaxLogit"

    def __init__(self, scale: float) -> None:
        super().__init__()
        self.scale = scale

    def _fit(self, train: FeatureSet) -> None:
        pass

    def _score(self, data: FeatureSet) -> np.ndarray:
        return self.scale * data.require("logits", self.name).max(1)


class ScaledParams(MethodParams):
    scale: float = Field(1.0, gt=0)
    grid: dict[str, list] = Field(default_factory=lambda: {"scale": [0.5, 2.0]})


SCALED = Method("scaled", "Scaled", ScaledParams, lambda s, _model: ScaledMaxLogit(s.scale), fits=False, needs="logits")


@pytest.fixture
def scaled():
    """The new detector's registration (its file's one call), undone after the test."""
    registry.methods()  # load the package's own detectors first
    yield registry.register(SCALED)
    del registry._METHODS["scaled"], params.DETECTOR_SECTIONS["scaled"]


def test_a_new_detector_needs_no_edit_elsewhere(scaled):
    torch.manual_seed(0)
    model = SupNet(Encoder(), C).eval()
    cache = bl.FeatureCache(
        model,
        {"train": coloured(60, 0), "test": coloured(30, 1), "uniform": SyntheticImages("uniform", 20, SIZE, seed=0)},
    )
    P = profiles.validate({"profile": "t", "baselines": {"methods": ["msp", "scaled"], "scaled": {"scale": 3.0}}})
    assert P.baselines.scaled.scale == 3.0 and P.baselines.odin.temperature == 1000.0  # defaults fill the rest
    [scored] = bl.run(["scaled"], P.baselines, cache, ["uniform"], image_size=SIZE, seed=0)
    assert scored.method == "Scaled" and scored.setting == "scaled_scale=3.0"
    np.testing.assert_allclose(scored.id_scores, 3.0 * cache.plain("test").logits.max(1), rtol=1e-6)


@pytest.mark.parametrize(
    "section, message",
    [
        ({"odinn": {}}, r"unknown key\(s\) 'odinn'"),
        ({"methods": ["msp", "nope"]}, r"methods: unknown detector\(s\) 'nope'"),
        ({"odin": {"temperature": -1}}, r"odin\.temperature: Input should be greater than 0"),
        ({"odin": {"tau": 1}}, r"odin\.tau: Extra inputs are not permitted"),
        ({"knn": {"grid": {"kk": [1]}}}, r"grid\.kk: not a hyper-parameter of this method; it has k, backend"),
        ({"knn": {"grid": {"k": [0, 5]}}}, r"greater than or equal to 1"),
    ],
)
def test_bad_detector_sections_name_the_key(section, message):
    with pytest.raises(params.ParamsError, match=message):
        profiles.validate({"profile": "t", "baselines": section})


def test_every_registered_detector_declares_a_valid_default_section():
    for key, method in registry.methods().items():
        section = method.params()
        assert key.isidentifier() and method.name and method.needs
        assert set(section.grid) <= set(section.hyper_parameters()), key
        assert section.fit_split() in ("train", "val"), key
