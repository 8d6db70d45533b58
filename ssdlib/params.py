"""The one parameter schema of ssdlib.

Every params file (``params/*.yaml``) and every notebook's ``parameters`` cell is checked here
before any work starts. Unknown keys, wrong types and out-of-range values stop at once with a
message that names the file, the key and what is allowed.

Sections: ``data`` (datasets), ``encoder`` (SSD encoder training), ``classifier`` (the supervised
CE model of the same size used by MSP and the post-hoc baselines), ``ssd`` (SSD / SSD+ / SSD_k
evaluation), ``ssod`` (SSOD joint training), ``baselines`` (post-hoc detectors) and ``checks``
(the sanity thresholds each notebook asserts at its end); ``notebooks`` says which notebooks a
profile runs.

This module is the bottom of ssdlib: it imports nothing of the package (nor torch), so any layer may
read the schema. What needs the registries above it (dataset names, detector keys, training methods)
is checked by the loader, :mod:`ssdlib.profiles`, which notebooks and the runner read profiles with.
The detectors' sections (``baselines.<key>``) are declared by the detectors' own files: each
registers its :class:`MethodParams` class in :data:`DETECTOR_SECTIONS` when it is imported.
"""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PositiveInt,
    StringConstraints,
    ValidationError,
    model_validator,
)

Arch = Literal["resnet18", "resnet34", "resnet50", "resnet101"]


class ParamsError(ValueError):
    """A params file or notebook parameter is invalid; the message says which key and how to fix it."""


class _Section(BaseModel):
    """Every section: unknown keys refused, values never coerced from another type ("no" is not a bool,
    "3" not a number), numbers finite."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class OfflineBenchmark(_Section):
    """Sizes of the generated offline benchmark (see ``ssdlib.data.offline``)."""

    seed: int = Field(
        0,
        description="seed of every generated image: the offline benchmark and the "
        "synthetic OOD sets (blobs, gaussian, uniform) of any profile",
    )
    train_per_class: int = Field(200, ge=1, le=100_000)
    test_per_class: int = Field(100, ge=1, le=100_000)
    ood_per_set: int = Field(500, ge=1, le=100_000)


class DataParams(_Section):
    """Which sets to load and how. Real sets are read from ``root`` or $SSDLIB_DATA."""

    id_dataset: str = "offline"
    ood_datasets: list[str] = Field(default_factory=list)
    root: str | None = None
    download: bool = False
    image_size: int = Field(
        32,
        ge=8,
        le=1024,
        description="side of every image; real sets read at 224 or more take torchvision's ImageNet recipe "
        "(ssdlib.data.preprocessing), smaller ones are resized and centre-cropped to it",
    )
    normalize: bool = True
    batch_size: int = Field(256, ge=1)
    num_workers: int = Field(0, ge=0)
    synthetic_per_set: int = Field(
        10_000,
        ge=1,
        le=1_000_000,
        description="images in each synthetic OOD set (blobs, gaussian, uniform); SSD: 10 000",
    )
    offline: OfflineBenchmark = OfflineBenchmark()


class EncoderParams(_Section):
    """SSD encoder training (SimCLR / SupCon / SupCE), defaults from the SSD code."""

    arch: Arch = "resnet50"
    width: int = Field(64, ge=4, le=256, description="channels of the first stage; 64 is the standard ResNet")
    training_mode: str = Field(
        "SimCLR",
        description="a training method whose features SSD scores: SimCLR, SupCon or SupCE "
        "(ssdlib.training.methods; the loader checks the name)",
    )
    epochs: int = Field(500, ge=1)
    supcon_epochs: int | None = Field(
        None,
        ge=1,
        description="SupCon's epochs where they differ from `epochs` (labels make it converge sooner); null: `epochs`",
    )
    batch_size: int = Field(512, ge=2)
    lr: float = Field(0.5, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-4, ge=0)
    warmup_epochs: int = Field(10, ge=0)
    temperature: float = Field(0.5, gt=0)
    amp: bool = True
    save_every: int = Field(50, ge=1)
    recipe: Literal["original", "supcontrast", "corrected"] = Field(
        "original",
        description="original: SSD's train.py as released, whose published numbers it produced: the loss "
        "scaled by temperature / 0.07 (losses.py, SupConLoss's base_temperature) and the momentum left at "
        "0.8 after the warm-up (CyclicLR's cycle_momentum); supcontrast: the loss scale only, as "
        "SupContrast's main_supcon.py (the KNN paper's SupCon encoders); corrected: neither",
    )
    knn_k: int = Field(20, ge=0, description="neighbours of the kNN monitor (0: off)")
    monitor_every: int = Field(1, ge=0, description="epochs between monitor runs (0: never)")

    def epochs_for(self, mode: str) -> int:
        """The cosine epochs of the encoder trained with ``mode``."""
        return self.supcon_epochs if mode == "SupCon" and self.supcon_epochs is not None else self.epochs


class ClassifierParams(_Section):
    """The supervised CE model of the same size: MSP and post-hoc baselines score it."""

    pretrained: str = Field(
        "none",
        description="none: trained here (SupCE); else the released classifier of the encoder's arch, scored "
        "as it is: a torchvision weights name (IMAGENET1K_V1, the ImageNet tables' ResNet-50), a local file "
        "of its state dict, or a folder of <arch>.pth files",
    )
    epochs: int = Field(100, ge=1)
    batch_size: int = Field(128, ge=2)
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(5e-4, ge=0)
    warmup_epochs: int = Field(0, ge=0)
    amp: bool = True
    save_every: int = Field(10, ge=1)
    monitor_every: int = Field(1, ge=0, description="epochs between monitor runs: test and kNN accuracy (0: never)")


class SSDParams(_Section):
    """SSD evaluation: the cluster sweep and the SSD_k grid."""

    clusters: list[PositiveInt] = Field(
        default_factory=lambda: [1], min_length=1, description="k-means cluster counts to sweep (SSD's default: 1)"
    )
    kmeans: Literal["sklearn", "faiss"] = Field(
        "sklearn",
        description="k-means of the cluster sweep: scikit-learn (k-means++ seeding, every point) or faiss as "
        "SSD's eval_ssd.py runs it (random initial points, 256 points per cluster)",
    )
    k: list[PositiveInt] = Field(
        default_factory=lambda: [1, 5], min_length=1, description="SSD_k: known outliers per OOD class"
    )
    copies: list[PositiveInt] = Field(
        default_factory=lambda: [10],
        min_length=1,
        description="SSD_k: augmented views per known outlier (SSD's default: 10)",
    )
    in_comparison: bool = Field(
        True,
        description="notebook 05 scores SSD (on a SimCLR encoder it trains) and SSD+ beside the other methods; "
        "false: neither, and no SimCLR encoder is trained (the SSOD paper's tables have no SSD)",
    )


Backbone = Literal[
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "densenet121",
    "regnet_y_800mf",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
]
Balance = Literal["LW", "DR", "LWB"]


class SSODParams(_Section):
    """SSOD joint training (Pei et al. 2023). Defaults are the paper's (Sec. 5, App. B) where it
    states them; the choices it leaves open are explained in ``docs/ssod.md`` and ``ssdlib.ssod``."""

    backbone: Backbone = "resnet18"
    width: int = Field(64, ge=4, le=256, description="channels of the first stage; 64 is the published network")
    stem: Literal["cifar", "imagenet"] = Field(
        "imagenet", description="imagenet: total stride 32 (224 px -> 7x7 map); cifar: stride 8 (32 px -> 4x4)"
    )
    input_size: int = Field(
        224,
        ge=8,
        le=1024,
        description="images are resized to this inside the model (the paper upsamples CIFAR's 32 px to 224)",
    )
    pretrained: str = Field(
        "none",
        description="none | torchvision (its default ImageNet weights, fetched once "
        "into $TORCH_HOME) | a torchvision weights name (IMAGENET1K_V1) | "
        "path to a local torchvision state dict | a folder of them named <backbone>.pth",
    )
    alpha: float = Field(1.5, ge=0, description="weight of the OOD loss (Eq. 9); 0 = the vanilla classifier")
    vanilla: Literal["released", "fine_tuned"] = Field(
        "fine_tuned",
        description="the vanilla classifier (alpha 0, scored by MSP): released = the `pretrained` network "
        "scored as it is, no training (the SSOD paper's Table 6 and Table 1's MSP); fine_tuned = alpha 0 "
        "trained with this section's recipe",
    )
    gamma: float = Field(0.95, gt=0.5, lt=1, description="sampler: ID if p >= gamma, OOD if p < 1 - gamma (Eq. 7)")
    balance: Balance = Field("LWB", description="ID/OOD balance of the OOD loss (Sec. 5.3)")
    lw_factor: float = Field(0.25, gt=0, description="LW: weight of background (OOD) location losses")
    warmup_epochs: int = Field(0, ge=0, description="CE-only epochs before the OOD loss switches on")
    epochs: int = Field(300, ge=1)
    batch_size: int = Field(256, ge=2)
    lr: float = Field(1e-4, gt=0, description="AdamW's initial lr")
    lr_step: int = Field(30, ge=1, description="epochs between lr decays")
    lr_decay: float = Field(0.5, gt=0, le=1, description="lr factor every lr_step epochs")
    weight_decay: float = Field(0.01, ge=0, description="AdamW's decoupled weight decay (unstated; PyTorch's default)")
    crop_scale: tuple[float, float] = Field(
        (0.08, 1.0), strict=False, description="RandomResizedCrop's area range (a YAML list)"
    )
    supcon_weight: float = Field(
        0.0,
        ge=0,
        description="SSOD (w/), Table 1: weight of a supervised contrastive (SupCon) term on a projection of "
        "the pooled feature of two crops; > 0 trains that run beside SSOD (w/o) (docs/ssod.md); 0: none",
    )
    supcon_temperature: float = Field(0.1, gt=0, description="SupCon's temperature in SSOD (w/)")
    supcon_checkpoint: str = Field(
        "none",
        description="SSOD (w/) starts its backbone from this SupCon-pretrained checkpoint (a local file in "
        "SupContrast's or KNN's format); none: as `pretrained` says",
    )
    amp: bool = Field(True, description="bf16 autocast on CUDA")
    score: Literal["ood", "ood_x_msp"] = Field("ood", description="sigmoid(f_ood) (Eq. 10) or its product with MSP")
    select: Literal["val_accuracy", "last", "test_fpr95"] = Field(
        "val_accuracy",
        description="checkpoint kept: best held-out accuracy, the last, or the paper's best test "
        "FPR95 (selects on the test OOD sets)",
    )
    val_fraction: float = Field(0.1, ge=0, lt=1, description="share of the training set held out for selection")
    ablation_ood: str = Field("places365", description="OOD set of the ablations (the paper's Tables 4-6: Places)")
    alphas: list[float] = Field(default_factory=lambda: [0.7, 1.0, 1.5, 1.8, 2.0], description="Table 4")
    balances: list[Balance] = Field(default_factory=lambda: ["LW", "DR", "LWB"], description="Table 5")
    backbones: list[Backbone] = Field(
        default_factory=lambda: ["resnet50", "densenet121", "regnet_y_800mf", "mobilenet_v3_large"],
        description="Table 6",
    )

    @model_validator(mode="after")
    def _consistent(self) -> SSODParams:
        if self.pretrained != "none" and self.width != 64:
            raise ValueError(
                f"pretrained weights exist for width 64 only, got width {self.width}: set width: 64 or pretrained: none"
            )
        if self.vanilla == "released" and self.pretrained == "none":
            raise ValueError(
                "vanilla: released scores the pretrained network as it is: set pretrained, or vanilla: fine_tuned"
            )
        if self.supcon_checkpoint != "none" and not self.supcon_weight:
            raise ValueError("supcon_checkpoint starts SSOD (w/), which needs supcon_weight > 0")
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {list(self.crop_scale)}")
        return self


class CSIParams(_Section):
    """CSI (Tack et al. 2020): SimCLR where the 4 rotations of an image are separate instances, plus a
    rotation-classification head. Defaults are the alinlab/CSI repository's (``common/common.py``,
    and its README's CIFAR-10 evaluation: ``--ood_samples 10 --resize_factor 0.54 --resize_fix``). It
    trains with LARS; ssdlib's shared loop uses SGD with momentum and the same warm-up and cosine."""

    epochs: int = Field(1000, ge=1)
    batch_size: int = Field(128, ge=2, description="images per step (the repository: 32 on each of 4 GPUs)")
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    weight_decay: float = Field(1e-6, ge=0)
    warmup_epochs: int = Field(10, ge=0)
    temperature: float = Field(0.5, gt=0)
    crop_scale: tuple[float, float] = Field(
        (0.08, 1.0), strict=False, description="training views' RandomResizedCrop area range (resize_factor 0.08)"
    )
    ood_samples: int = Field(10, ge=1, description="score: augmented views averaged per shift (a scoring key)")
    score_crop: float = Field(0.54, gt=0, le=1, description="score: the views' fixed crop area (a scoring key)")
    amp: bool = True
    save_every: int = Field(50, ge=1)
    knn_k: int = Field(20, ge=0, description="neighbours of the kNN monitor (0: off)")
    monitor_every: int = Field(1, ge=0, description="epochs between monitor runs (0: never)")
    in_comparison: bool = Field(
        False, description="notebook 05 trains CSI's network and scores CSI beside the other methods"
    )

    @model_validator(mode="after")
    def _crop(self) -> CSIParams:
        low, high = self.crop_scale
        if not 0 < low <= high <= 1:
            raise ValueError(f"crop_scale must satisfy 0 < low <= high <= 1, got {list(self.crop_scale)}")
        return self


class MOSParams(_Section):
    """MOS (Huang & Li 2021): the CE classifier's last layer replaced by a group-softmax head (one softmax
    per group of classes, each with an "others" class) and fine-tuned alone. Defaults are the
    deeplearning-wisc/large_scale_ood repository's (``finetune.py``: SGD with momentum 0.9, no weight
    decay, a zero-initialised head; ``utils/hyperrule.py``: lr 0.003 with its step schedule;
    ``scripts/finetune_group_softmax.sh``: batch 512)."""

    groups: list[list[int]] | Literal["imagenet"] | None = Field(
        None,
        description="class indices of each group (every class in one group); imagenet: the MOS repository's 8 "
        "groups of ImageNet-1k by WordNet super-class (ssdlib/data/mos_imagenet_groups.txt); null: MOS is not "
        "run (set: notebook 05 fine-tunes and scores it)",
    )
    batch_size: int = Field(512, ge=2)
    lr: float = Field(0.003, gt=0)
    momentum: float = Field(0.9, ge=0, lt=1)
    steps: list[int] | None = Field(
        None,
        description="the schedule's supports [warm-up end, lr / 10 after each middle one, end], in steps; "
        "null: the repository's rule by training-set size (< 20 000 images: 100, 200, 300, 400, 500)",
    )

    @model_validator(mode="after")
    def _schedule(self) -> MOSParams:
        if self.steps is not None and (len(self.steps) < 2 or self.steps != sorted(set(self.steps))):
            raise ValueError(f"steps must rise strictly, from the warm-up's end to the last step; got {self.steps}")
        return self


class MethodParams(BaseModel):
    """A detector's section of ``baselines``: its hyper-parameters and ``grid``, the values tried per
    hyper-parameter when ``baselines.tune`` is on. Subclasses declare the fields and the default grid,
    and override the hooks below where the method needs them."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)

    grid: dict[str, list[Any]] = Field(
        default_factory=dict, description="values tried per hyper-parameter when baselines.tune is on"
    )
    tune_criterion: ClassVar[str] = "auroc"  # or "mean ID score" (GODIN's own rule, no OOD data)
    NOT_IN_SETTING: ClassVar[tuple[str, ...]] = ()  # hyper-parameters that do not change the scores

    @model_validator(mode="after")
    def _grid_names_hyper_parameters(self) -> MethodParams:
        own = [name for name in type(self).model_fields if name != "grid"]
        for name, values in self.grid.items():
            if name not in own:
                raise ValueError(
                    f"grid.{name}: not a hyper-parameter of this method; it has {', '.join(own) or 'none'}"
                )
            if not values:
                raise ValueError(f"grid.{name} is empty: give at least one value")
            for value in values:  # each grid value must be a valid value of its field
                type(self).model_validate({**self.model_dump(exclude={"grid"}), name: value, "grid": {}})
        return self

    def hyper_parameters(self) -> dict[str, Any]:
        """The values the detector is built with (everything but the grid)."""
        return self.model_dump(exclude={"grid"})

    def must_tune(self) -> tuple[str, ...]:
        """Hyper-parameters chosen on validation data even when ``baselines.tune`` is off."""
        return ()

    def fit_split(self) -> str:
        """The ID split the detector is fitted on: ``train``, or ``val`` where the method says so."""
        return "train"

    def applies(self, fit: Any) -> bool:
        """Whether these values suit the features (a ``FeatureSet``) it is fitted on (a grid point may not)."""
        return True


DETECTOR_SECTIONS: dict[str, type[MethodParams]] = {}
"""Detector key -> its section's class: filled by ``ssdlib.detectors.registry.register`` as each
detector's file is imported (the loader imports them all before it reads a profile)."""


class BaselineParams(_Section):
    """Post-hoc detectors: which ones run, how tuning works, and one section per detector
    (``baselines.<key>``, e.g. ``baselines.odin.temperature``) with its hyper-parameters and tuning
    grid. The sections come from the detectors' own files (``ssdlib.detectors.registry``); defaults
    from OpenOOD v1.5's ``configs/postprocessors`` and the detectors' papers. Input steps
    (``epsilon``) are in [0, 1] pixel units: normalisation is the model's first layer, so eps *
    sign(grad) there equals the reference codes' sign / std in normalised units.
    """

    model_config = ConfigDict(extra="allow", frozen=True, strict=True, allow_inf_nan=False)  # extras: detectors

    methods: list[str] = Field(
        default_factory=lambda: ["msp", "maxlogit", "odin", "mahalanobis", "energy", "knn", "react", "vim"],
        description="detectors to run, by key (one section of this name each)",
    )
    tune: bool = Field(False, description="choose the grids' best values on validation data instead of the defaults")
    tune_on: str = Field(
        "gaussian",
        description="validation OOD set for tuning: a synthetic kind (blobs, gaussian, uniform) drawn "
        "with a seed no test set uses, never a test set",
    )
    tune_samples: int = Field(500, ge=10, description="images drawn for the validation OOD set")
    knn_plus: bool = Field(
        True,
        description="notebook 05 trains a SupCon encoder and scores KNN on it (KNN+, Sun et al. 2022); false: "
        "no KNN+ (nor SupCon encoder, unless SSD+ needs it)",
    )
    tune_id_fraction: float = Field(
        0.1, gt=0, lt=1, description="share of ID train held out of the detectors' fit as ID validation when tuning"
    )

    @model_validator(mode="before")
    @classmethod
    def _detector_sections(cls, data: Any) -> Any:
        """Every registered detector gets its section (defaults where absent); other keys are errors.
        Whether ``methods`` names registered detectors is the loader's check (``ssdlib.profiles``)."""
        data = dict(data) if isinstance(data, dict) else data
        if not isinstance(data, dict):
            return data
        unknown = [k for k in data if k not in cls.model_fields and k not in DETECTOR_SECTIONS]
        if unknown:
            raise ValueError(
                f"unknown key(s) {', '.join(map(repr, unknown))}: baselines holds "
                f"{', '.join(cls.model_fields)} and one section per detector ({', '.join(DETECTOR_SECTIONS)})"
            )
        for key, section in DETECTOR_SECTIONS.items():
            value = data.get(key)
            if isinstance(value, BaseModel):
                value = value.model_dump()
            try:
                data[key] = section.model_validate(value or {})
            except ValidationError as err:
                problems = "; ".join(f"{key}.{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in err.errors())
                raise ValueError(problems) from None
        return data

    def section(self, key: str):
        """The section of detector ``key`` (a :class:`MethodParams`)."""
        if key not in DETECTOR_SECTIONS:
            raise ParamsError(
                f"no detector {key!r} is registered (known: {', '.join(DETECTOR_SECTIONS) or 'none yet'}); "
                "detectors register when ssdlib.detectors is imported, which ssdlib.profiles does"
            )
        return getattr(self, key)

    def with_section(self, key: str, **values: Any) -> BaselineParams:
        """A copy with ``values`` set in detector ``key``'s section, validated."""
        return BaselineParams.model_validate({**self.model_dump(), key: {**self.section(key).model_dump(), **values}})


class CheckParams(_Section):
    """Thresholds of the sanity checks the notebooks run on their own results (``ssdlib.checks``, recorded in
    ``checks.json``), so that a broken pipeline fails loudly: each below the worst of the recorded seeds and
    clearly above chance. The papers' findings are claims, not checks (``ssdlib.evaluation.claims``: judged
    over seeds, never stopping a run); the sets named here are read by both."""

    enforce: bool = Field(
        True,
        description="false: failed checks are recorded and reported but do not stop the notebook "
        "(smoke runs, whose tiny models cannot meet them)",
    )

    min_ssd_auroc: float = Field(
        0.9, ge=0, le=1, description="SSD's (and SSD_k's) AUROC on each of ssd_auroc_sets (far OOD)"
    )
    ssd_auroc_sets: list[str] = Field(
        default_factory=list, description="far OOD sets: SSD's sanity checks, and a claim's detector sanity"
    )
    min_knn_accuracy: float = Field(0.5, ge=0, le=1, description="kNN monitor accuracy of the trained encoder")
    min_supcon_knn_accuracy: float = Field(0.8, ge=0, le=1, description="kNN monitor accuracy of the SupCon encoder")
    min_classifier_accuracy: float = Field(0.9, ge=0, le=1, description="test accuracy of the SupCE classifier")
    near_ood_set: str | None = Field(
        None,
        description="near-OOD set of notebook 02's check and of SSD's near-OOD claims (SSD+, SSD_k); null: neither",
    )
    min_near_auroc: float = Field(0.7, ge=0, le=1, description="SSD's and MSP's AUROC on near_ood_set")
    ssod_failure_set: str | None = Field(
        None,
        description="OOD set of SSOD's failure-case claim, SSOD's FPR95 above KNN's (SSOD Table 3: ImageNet vs "
        "Textures); null: not measured (on CIFAR-10, Table 2 has SSOD ahead of KNN)",
    )
    ssod_ood_set: str = Field(
        "places365", description="background-like OOD set of SSOD's claims against MSP, KNN and CSI (Places)"
    )
    min_ssod_background_offset: float = Field(
        0.0,
        ge=-1,
        le=1,
        description="sampler: mean distance of OOD picks from the image centre minus that of "
        "ID picks, in half-diagonals",
    )


class Params(_Section):
    """A whole params file."""

    profile: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", description="a plain name: outputs/<profile>/")
    notebooks: list[Annotated[str, StringConstraints(pattern=r"^\d\d$")]] | None = Field(
        None,
        min_length=1,
        description='numbers of the notebooks this profile runs, e.g. ["00", "04"]; null: all of notebooks/',
    )
    seed: int = 0
    seeds: list[int] | None = Field(
        None,
        min_length=1,
        description="run the profile once per seed (global and generator seed) into outputs/<profile>/seed_<n>/ "
        "and report mean ± std; null: one run with `seed` (ssdlib reproduce --seeds overrides it)",
    )
    device: Literal["auto", "cpu", "cuda"] = "auto"
    deterministic: bool = Field(
        False,
        description="deterministic GPU kernels and no torch.compile: a GPU run repeats bit for bit, "
        "slower (a CPU run repeats either way)",
    )
    data: DataParams = DataParams()
    encoder: EncoderParams = EncoderParams()
    classifier: ClassifierParams = ClassifierParams()
    ssd: SSDParams = SSDParams()
    ssod: SSODParams = SSODParams()
    csi: CSIParams = CSIParams()
    mos: MOSParams = MOSParams()
    baselines: BaselineParams = Field(default_factory=BaselineParams)  # built on use: the detectors register first
    checks: CheckParams = CheckParams()

    @model_validator(mode="after")
    def _released_classifier(self) -> Params:
        if self.classifier.pretrained != "none" and self.encoder.width != 64:
            raise ValueError(
                f"classifier.pretrained loads a released network of width 64, but encoder.width is "
                f"{self.encoder.width}: set encoder.width: 64 or classifier.pretrained: none"
            )
        return self

    @model_validator(mode="after")
    def _distinct_seeds(self) -> Params:
        if self.seeds is not None and len(set(self.seeds)) != len(self.seeds):
            raise ValueError(f"seeds {self.seeds} name a seed twice; list each once")
        return self


def _allowed(model: type[BaseModel], loc: tuple) -> list[str]:
    """Keys allowed at the parent of ``loc`` (for the "unknown key" message)."""
    for part in loc[:-1]:
        if isinstance(part, int):
            continue
        model = model.model_fields[part].annotation
    return sorted(model.model_fields) if isinstance(model, type) and issubclass(model, BaseModel) else []


def invalid(source: str, problems: list[str]) -> ParamsError:
    """The one error of a bad profile: ``source``, then one line per problem (each naming its key)."""
    return ParamsError(f"{source}: invalid parameters\n" + "\n".join(f"  {line}" for line in problems))


def _explain(err: ValidationError, model: type[BaseModel], source: str) -> ParamsError:
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"])
        if e["type"] == "extra_forbidden":
            allowed = ", ".join(_allowed(model, e["loc"]))
            lines.append(f"{key}: unknown key; allowed here: {allowed}")
        elif e["type"] == "value_error":  # our own validators: the message names its keys
            message = e["msg"].removeprefix("Value error, ")
            lines.append(f"{key}: {message}" if key else message)
        else:
            lines.append(f"{key}: {e['msg']} (got {e.get('input')!r})")
    return invalid(source, lines)


def parse(raw: dict[str, Any], source: str = "<params>") -> Params:
    """Check a params mapping against the schema alone; raise :class:`ParamsError` naming each bad key.
    ``ssdlib.profiles.validate`` adds the checks of names the registries hold."""
    if not isinstance(raw, dict):
        raise ParamsError(f"{source}: expected a mapping of keys to values, got {type(raw).__name__}")
    try:
        return Params.model_validate(raw)
    except ValidationError as err:
        raise _explain(err, Params, source) from None
