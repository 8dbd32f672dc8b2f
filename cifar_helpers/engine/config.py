"""Training parameters: the report's two protocols, validation and fingerprints.

`TrainConfig` holds everything that changes the numbers a run produces. Its
fingerprint names a run, so that a checkpoint or a results file made with
other parameters is never mixed in.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Any

from cifar_helpers.core.errors import WorkbookError
from cifar_helpers.core.hashing import short_hash
from cifar_helpers.models import MODEL_NAMES, SPECS, architecture, model_options
from cifar_helpers.models.custom_resnet import DEFAULT_DROPOUT
from cifar_helpers.models.your_model import is_your_model_name
from cifar_helpers.engine.fast import STEP_MODES

# adam: weight decay as an L2 term in the gradient (torch.optim.Adam, the report's protocol); adamw: decoupled,
# each step shrinks the weights by lr × weight decay (torch.optim.AdamW), a reading screened in docs/custom-resnet.md.
OPTIMIZERS = ("sgd", "adam", "adamw")
# "onecycle": the fast recipe's (engine.fast, params/fast.yaml).
SCHEDULERS = ("none", "step", "onecycle")

# Report section 2.1: the lecture models (DNN, CNN, ResNet).
LECTURE_PROTOCOL: dict[str, Any] = dict(
    epochs=100, batch_size=64, optimizer="sgd", lr=0.1, momentum=0.9,
    weight_decay=5e-4, scheduler="none", patience=None, augment=False,
)
# Report section 3.2: the Custom ResNet. Gamma and the dropout rate are not in
# the report; docs/protocol.md records our choices (gamma 0.1, dropout 0.1).
CUSTOM_RESNET_PROTOCOL: dict[str, Any] = dict(
    epochs=300, batch_size=64, optimizer="adam", lr=1e-3, momentum=0.9,
    weight_decay=5e-4, scheduler="step", step_size=30, gamma=0.1, patience=15,
    augment=True, model_options={"dropout": DEFAULT_DROPOUT},
)
# By the name a model's spec gives (models.specs.ModelSpec.protocol).
PROTOCOLS = {"lecture": LECTURE_PROTOCOL, "custom_resnet": CUSTOM_RESNET_PROTOCOL}
# Settings added after runs were recorded, at the value those runs had: a run's parameters (and so its
# fingerprint) name such a setting only when it is not that value, so that every earlier run keeps its name,
# its checkpoint resumes and its results compare alike with new ones.
LATER_SETTINGS: dict[str, Any] = {"flush_denormals": False}


class ConfigError(WorkbookError, ValueError):
    """A parameter that cannot work; the message says which and what to use."""


@dataclass(frozen=True)
class TrainConfig:
    model: str
    epochs: int = 100
    batch_size: int = 64
    optimizer: str = "sgd"
    lr: float = 0.1
    momentum: float = 0.9
    nesterov: bool = False  # SGD only: the fast recipe's (engine.fast)
    weight_decay: float = 5e-4
    scheduler: str = "none"
    step_size: int = 30
    gamma: float = 0.1
    warmup_fraction: float = 0.2  # onecycle only: the fast recipe's
    patience: int | None = None
    augment: bool = False
    seed: int = 23
    amp: bool = False
    subset: tuple[int, int] | None = None
    model_options: dict = field(default_factory=dict)
    eval_batch_size: int = 1000
    deterministic: bool = False
    step_mode: str = "eager"  # see cifar_helpers.engine.fast.STEP_MODES
    flush_denormals: bool = False  # after every step, zero what decayed below float32's normal range (CPU speed)

    def __post_init__(self) -> None:
        validate(self)

    @classmethod
    def for_model(cls, model: str, **overrides: Any) -> "TrainConfig":
        """The report's protocol for `model`, with `overrides` applied."""
        if model not in SPECS:
            raise ConfigError(f"unknown model {model!r}; choose one of {', '.join(MODEL_NAMES)}")
        protocol = PROTOCOLS[SPECS[model].protocol]
        values = {**protocol, **overrides}
        values["model_options"] = {**protocol.get("model_options", {}), **(overrides.get("model_options") or {})}
        if "subset" in values:
            values["subset"] = normalize_subset(values["subset"])
        return cls(model=model, **values)

    @classmethod
    def from_params(cls, params: dict[str, Any]) -> "TrainConfig":
        """The config a results file's `params` or a checkpoint's `config` (both name the model) were written from:
        the keys this code knows, over the model's protocol (a key an older record lacks had its default)."""
        known = {key: value for key, value in params.items() if key in cls.__dataclass_fields__ and key != "model"}
        return cls.for_model(params["model"], **known)

    def to_dict(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        out["subset"] = list(self.subset) if self.subset is not None else None
        for key, earlier in LATER_SETTINGS.items():
            if out[key] == earlier:
                del out[key]
        return out

    def architecture(self) -> dict[str, Any]:
        """The network this config trains: its factory's every option (models.architecture)."""
        return architecture(self.model, **self.model_options)

    def fingerprint(self, **context: Any) -> str:
        """A short hash of every parameter that changes the training, plus `context` (device type, data).

        EVAL_BATCH_SIZE is left out: it only splits the evaluation, so a run may
        change it (after running out of memory, say) and still resume."""
        config = {k: v for k, v in self.to_dict().items() if k != "eval_batch_size"}
        return short_hash({"config": config, "context": context})


def normalize_subset(subset: Any) -> tuple[int, int] | None:
    """`None`, an int N (N train and N test images) or a pair (n_train, n_test)."""
    if subset is None:
        return None
    if _is_int(subset):
        pair = (subset, subset)
    elif isinstance(subset, (list, tuple)) and len(subset) == 2 and all(_is_int(n) for n in subset):
        pair = (int(subset[0]), int(subset[1]))
    else:
        raise ConfigError(f"SUBSET must be None, an int or [n_train, n_test], got {subset!r}")
    if min(pair) < 10:
        raise ConfigError(f"SUBSET must keep at least 10 images (one per class), got {subset!r}")
    return pair


def check_subset_fits(subset: Any, n_train: int, n_test: int) -> None:
    """SUBSET may not ask for more images than the data hold."""
    pair = normalize_subset(subset)
    if pair is not None and (pair[0] > n_train or pair[1] > n_test):
        shown = list(subset) if isinstance(subset, tuple) else subset  # as a notebook writes it
        raise ConfigError(f"SUBSET={shown!r} asks for {pair[0]:,} train / {pair[1]:,} test images, but the data "
                          f"hold {n_train:,} / {n_test:,}: use at most those, or SUBSET=None for all of them")


def check_stop_after(value: Any) -> int | None:
    """STOP_AFTER: None (run to the end) or the epoch after which this session stops."""
    if value is not None and not (_is_int(value) and value >= 1):
        raise ConfigError(f"STOP_AFTER must be None or a whole number >= 1, got {value!r}")
    return value


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _positive_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def validate(cfg: TrainConfig) -> None:
    """Raise ConfigError for the first parameter that cannot work."""
    def need(ok: bool, message: str) -> None:
        if not ok:
            raise ConfigError(message)

    # A name of your own trains the nn.Module given to train_model (engine.your_model): it has no factory here.
    yours = cfg.model not in MODEL_NAMES and is_your_model_name(cfg.model)
    need(cfg.model in MODEL_NAMES or yours, f"unknown model {cfg.model!r}; choose one of {', '.join(MODEL_NAMES)}")
    need(_is_int(cfg.epochs) and cfg.epochs >= 1, f"EPOCHS must be a whole number >= 1, got {cfg.epochs!r}")
    need(_is_int(cfg.batch_size) and cfg.batch_size >= 1,
         f"BATCH_SIZE must be a whole number >= 1, got {cfg.batch_size!r} (the report used 64)")
    need(_is_int(cfg.eval_batch_size) and cfg.eval_batch_size >= 1,
         f"EVAL_BATCH_SIZE must be a whole number >= 1, got {cfg.eval_batch_size!r}")
    need(cfg.optimizer in OPTIMIZERS, f"OPTIMIZER must be one of {OPTIMIZERS}, got {cfg.optimizer!r}")
    need(_positive_number(cfg.lr), f"LR must be a positive number, got {cfg.lr!r}")
    need(isinstance(cfg.momentum, (int, float)) and 0 <= cfg.momentum < 1,
         f"MOMENTUM must be in [0, 1), got {cfg.momentum!r}")
    need(isinstance(cfg.weight_decay, (int, float)) and not isinstance(cfg.weight_decay, bool)
         and math.isfinite(cfg.weight_decay) and cfg.weight_decay >= 0,
         f"WEIGHT_DECAY must be a number >= 0, got {cfg.weight_decay!r}")
    need(cfg.scheduler in SCHEDULERS, f"SCHEDULER must be one of {SCHEDULERS}, got {cfg.scheduler!r}")
    need(_is_int(cfg.step_size) and cfg.step_size >= 1, f"STEP_SIZE must be a whole number >= 1, got {cfg.step_size!r}")
    need(_positive_number(cfg.gamma) and cfg.gamma <= 1, f"GAMMA must be in (0, 1], got {cfg.gamma!r}")
    need(isinstance(cfg.nesterov, bool), f"NESTEROV must be True or False, got {cfg.nesterov!r}")
    need(not cfg.nesterov or (cfg.optimizer == "sgd" and cfg.momentum > 0),
         f"NESTEROV=True needs OPTIMIZER='sgd' and MOMENTUM > 0, got {cfg.optimizer!r} with momentum {cfg.momentum!r}")
    need(isinstance(cfg.warmup_fraction, (int, float)) and not isinstance(cfg.warmup_fraction, bool)
         and 0 <= cfg.warmup_fraction < 1,
         f"WARMUP_FRACTION must be in [0, 1), got {cfg.warmup_fraction!r}")
    need(cfg.patience is None or (_is_int(cfg.patience) and cfg.patience >= 1),
         f"PATIENCE must be None (no early stopping) or a whole number >= 1, got {cfg.patience!r}")
    need(isinstance(cfg.augment, bool), f"AUGMENT must be True or False, got {cfg.augment!r}")
    need(isinstance(cfg.amp, bool), f"AMP must be True or False, got {cfg.amp!r}")
    need(isinstance(cfg.deterministic, bool), f"DETERMINISTIC must be True or False, got {cfg.deterministic!r}")
    need(isinstance(cfg.flush_denormals, bool),
         f"FLUSH_DENORMALS must be True or False, got {cfg.flush_denormals!r}")
    need(_is_int(cfg.seed) and cfg.seed >= 0, f"SEED must be a whole number >= 0, got {cfg.seed!r}")
    need(isinstance(cfg.model_options, dict), f"model options must be a dict, got {cfg.model_options!r}")
    need(not (yours and cfg.model_options), f"a model of your own takes no model options here, got "
                                            f"{cfg.model_options!r}: set them where you build the model")
    accepted = {} if yours else model_options(cfg.model)
    unknown = sorted(set(cfg.model_options) - set(accepted))
    need(not unknown, f"the {cfg.model} model takes no option {', '.join(map(repr, unknown))}; "
                      f"its options are {', '.join(accepted)}")
    dropout = cfg.model_options.get("dropout")
    need(dropout is None or (isinstance(dropout, (int, float)) and 0 <= dropout < 1),
         f"DROPOUT must be in [0, 1), got {dropout!r}")
    need(cfg.step_mode in STEP_MODES, f"STEP_MODE must be one of {STEP_MODES}, got {cfg.step_mode!r}")
    normalize_subset(cfg.subset)
