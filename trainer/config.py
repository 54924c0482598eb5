"""Validation of a composed experiment config, before any data is loaded or any run is opened."""
from __future__ import annotations

import difflib
import functools
import inspect
import logging
import math
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, ListConfig, OmegaConf

from trainer.errors import ConfigError, UserError

log = logging.getLogger(__name__)
CONF = Path(__file__).resolve().parents[1] / "conf"
# tracking may carry keys for MLflow plugins (a token): recorded masked, not read; hydra is Hydra's own node, present
# in a config composed by a sweeper (load_sweep_config) and checked by Hydra itself; model.config is a transformers
# config (AutoConfig.for_model), which takes any of its models' settings
FREE_PREFIXES = ("tracking.", "hydra.", "model.config.")
READ_WITH_DEFAULT = ("dataset.augment",)  # read by every image dataset, declared only by those that augment by default
SEED_LIMIT = 2 ** 32  # numpy's seeds (split, imbalance, noise, resampling) are 0 <= seed < 2**32
# Settings added after runs were first logged, with the value (as a logged param) that does what runs without it did:
# a resume does not count them as a change, and compare reads a run without one as having this value.
ADDED_SETTINGS = {"trainer.steps": "None", "trainer.keep": "best", "dataset.encoding": "utf-8"}


class UnknownKey(UserError):
    """A key added with `+` that the harness does not read: it would be ignored. Names the near miss."""

    def __init__(self, key: str, value: Any, near: list[str], near_declared: bool = True) -> None:
        self.key = key
        value = str(value).lower() if isinstance(value, bool) else value
        fix = ("remove it; docs/configuration.md lists the settings" if not near else
               f"did you mean {near[0]}? Write {near[0]}={value} (without '+')" if near_declared else
               f"did you mean {near[0]}? Write +{near[0]}={value}")  # a constructor's argument: added with '+'

        super().__init__(f"+{key}={value}: {key} is not a setting of the harness (nothing reads it); {fix}.")


def _get(cfg: DictConfig, key: str) -> Any:
    return OmegaConf.select(cfg, key, default=None)


def _check(cfg: DictConfig, key: str, ok: Callable[[Any], bool], allowed: str) -> None:
    """Raise ConfigError unless key is absent or ok(value) holds."""
    value = _get(cfg, key)
    if value is None and OmegaConf.select(cfg, key, default="__missing__") == "__missing__":
        return
    try:
        good = ok(value)
    except TypeError:
        good = False
    if not good:
        if isinstance(value, float) and not math.isfinite(value):
            allowed += "; inf and nan are not accepted"
        raise ConfigError(key, value, allowed)


def _is_num(v: Any) -> bool:
    """A finite number: Hydra reads inf, -inf and nan as floats, and none is a meaningful value of any setting."""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


DEVICES = ("auto", "cpu", "cuda")
# the val metrics trainer.monitor can watch (trainer.evaluate.metrics.lower_is_better says which way is better)
MONITORS = ("ce", "balanced_ce", "loss", "ece", "accuracy", "balanced_accuracy", "macro_f1")
WEIGHT_SCHEMES = ("inverse", "inverse_sqrt", "effective_number")
FIGURES = ("now", "later", "off")  # eval.figures: when a run's figures are drawn (trainer.tracking.run_figures)


def validate(cfg: DictConfig, keys: bool = True) -> None:
    """Check every value a user can set; raise UnknownKey for a key no config file declares, ConfigError naming
    the first bad value. keys=False skips the keys (a sweep's check that changed only a value of a checked config)."""
    if keys:
        check_keys(cfg)
    _check(cfg, "seed", lambda v: _is_int(v) and 0 <= v < SEED_LIMIT,
           f"an integer in [0, 2**32 - 1 = {SEED_LIMIT - 1}] (numpy's seed range), e.g. seed=0")
    for part in ("val", "test"):
        _check(cfg, f"split.{part}", lambda v: _is_num(v) and 0 < v < 0.5, "a fraction in (0, 0.5), e.g. 0.2")

    _check(cfg, "trainer.epochs", lambda v: _is_int(v) and v >= 1, "an integer >= 1, e.g. trainer.epochs=40")
    _check(cfg, "trainer.steps", lambda v: v is None or (_is_int(v) and v >= 1),
           "null (train trainer.epochs epochs) or a number of optimizer steps >= 1, e.g. trainer.steps=2000")
    _check(cfg, "trainer.batch_size", lambda v: _is_int(v) and v >= 1, "an integer >= 1, e.g. 64")
    _check(cfg, "trainer.device", lambda v: v in DEVICES, "one of " + " | ".join(DEVICES))
    if _get(cfg, "trainer.device") == "cuda":
        import torch

        if not torch.cuda.is_available():
            raise UserError("trainer.device=cuda, but torch sees no CUDA device here. Use trainer.device=auto or cpu.")
    _check(cfg, "trainer.patience", lambda v: v is None or (_is_int(v) and v >= 1),
           "null (no early stopping) or an integer >= 1")
    _check(cfg, "trainer.keep", lambda v: v in ("best", "last"),
           "best (the weights of the epoch trainer.monitor liked best) or last (of the last epoch trained)")
    _check(cfg, "trainer.monitor", lambda v: isinstance(v, str) and v.removeprefix("val/") in MONITORS,
           "one of " + " | ".join(f"val/{m}" for m in MONITORS))
    _check(cfg, "trainer.min_delta", lambda v: _is_num(v) and v >= 0, "a number >= 0")
    _check(cfg, "trainer.precision", lambda v: v in ("fp32", "bf16"), "fp32 or bf16")
    _check(cfg, "trainer.channels_last", lambda v: v in (True, False, "auto"), "auto, true or false")
    _check(cfg, "trainer.compile", lambda v: isinstance(v, bool), "true or false")
    _check(cfg, "trainer.persist_every_s", lambda v: _is_num(v) and v >= 0,
           "a number of seconds >= 0 (0: checkpoint and log after every epoch)")
    _check(cfg, "trainer.grad_clip", lambda v: v is None or (_is_num(v) and v > 0), "null or a number > 0, e.g. 1.0")
    _check(cfg, "trainer.detect_anomaly", lambda v: isinstance(v, bool), "true or false")
    _check(cfg, "model.normed_head", lambda v: isinstance(v, bool), "true (cosine classifier) or false")
    _check(cfg, "eval.figures", lambda v: v in FIGURES, "one of " + " | ".join(FIGURES) + " (docs/performance.md)")
    _check(cfg, "eval.posthoc_tau", lambda v: v is None or (_is_num(v) and v >= 0),
           "null (off) or a number >= 0, e.g. eval.posthoc_tau=1")
    _check(cfg, "eval.shot_thresholds", lambda v: v is None or (
        isinstance(v, (list, ListConfig)) and len(v) == 2 and all(_is_num(t) for t in v) and v[0] >= v[1] >= 0),
        "null (the LT papers' [100, 20], scaled for small datasets) or [many, few] with many >= few >= 0, "
        "e.g. eval.shot_thresholds=[100,20]")
    _check(cfg, "trainer.deterministic", lambda v: v in (True, False, "auto"), "true, false or auto")
    _check(cfg, "trainer.threads", lambda v: v is None or (_is_int(v) and v >= 1), "null or an integer >= 1")
    _check(cfg, "trainer.resume", lambda v: v is None or (isinstance(v, str) and re.fullmatch(r"[0-9a-f]{32}", v)),
           "null or the 32-character id of an MLflow run, e.g. trainer.resume=04ad2cbeed6c4545a3bcdc83607e188d")

    imbalance = _get(cfg, "imbalance.name")
    if imbalance in ("longtail", "step"):
        _check(cfg, "imbalance.ratio", lambda v: _is_num(v) and v >= 1,
               "a number >= 1 (n_max / n_min), e.g. imbalance.ratio=10")
    if imbalance == "step":
        _check(cfg, "imbalance.minority_fraction", lambda v: _is_num(v) and 0 < v < 1, "a fraction in (0, 1)")

    if _get(cfg, "noise.name") in ("symmetric", "pairflip"):
        _check(cfg, "noise.rate", lambda v: _is_num(v) and 0 <= v < 1, "a probability in [0, 1)")

    _validate_loss(cfg)

    for key in ("regularization.dropout",):
        _check(cfg, key, lambda v: _is_num(v) and 0 <= v < 1, "a probability in [0, 1)")
    for key in ("regularization.l1", "regularization.l2"):
        _check(cfg, key, lambda v: _is_num(v) and v >= 0, "a number >= 0, e.g. 1e-4")
    _check(cfg, "optim.lr", lambda v: _is_num(v) and v > 0, "a number > 0, e.g. optim.lr=1e-3")
    _check(cfg, "optim.weight_decay", lambda v: _is_num(v) and v >= 0, "a number >= 0")

    if _get(cfg, "dataset.name") == "synthetic":
        _check(cfg, "dataset.n_classes", lambda v: _is_int(v) and v >= 2, "an integer >= 2")
        _check(cfg, "dataset.n_samples", lambda v: _is_int(v) and v >= 10 * (cfg.dataset.n_classes or 2),
               "an integer >= 10 * n_classes")
        _check(cfg, "dataset.n_features", lambda v: _is_int(v) and v >= 1, "an integer >= 1")

    for key in ("k_neighbors", "n_neighbors", "m_neighbors", "smote.k_neighbors"):
        _check(cfg, f"resampling.sampler.{key}", lambda v: _is_int(v) and v >= 1, "an integer >= 1")

    if _get(cfg, "ssl.name") == "pseudo_label":
        _check(cfg, "ssl.labeled_fraction", lambda v: _is_num(v) and 0 < v <= 1, "a fraction in (0, 1], e.g. 0.5")
        _check(cfg, "ssl.warmup_epochs", lambda v: _is_int(v) and v >= 0, "an integer >= 0, e.g. 5")
        _check(cfg, "ssl.threshold", lambda v: _is_num(v) and 0 <= v < 1, "a probability in [0, 1), e.g. 0.95")

    _validate_model(cfg)
    _validate_dataset(cfg)
    _validate_folds(cfg)
    _validate_text(cfg)


def _is_widths(v: Any, allow_empty: bool) -> bool:
    return isinstance(v, (list, ListConfig)) and (allow_empty or len(v) > 0) and all(_is_int(w) and w >= 1 for w in v)


def _validate_model(cfg: DictConfig) -> None:
    """Layer widths: a layer of 0 units passes nothing on (the network would output a constant)."""
    name = _get(cfg, "model.name")
    if name == "mlp":
        _check(cfg, "model.hidden", lambda v: _is_widths(v, allow_empty=True),
               "a list of layer widths >= 1, e.g. model.hidden=[256,128] ([] for no hidden layer)")
    elif name == "cnn":
        _check(cfg, "model.channels", lambda v: _is_widths(v, allow_empty=False),
               "a non-empty list of channel counts >= 1, e.g. model.channels=[32,64]")
        _check(cfg, "model.hidden", lambda v: _is_int(v) and v >= 1, "an integer >= 1, e.g. model.hidden=128")
    elif name == "resnet18":
        _check(cfg, "model.small_stem_below", lambda v: _is_int(v) and v >= 0, "an integer >= 0 (pixels), e.g. 64")


def _validate_folds(cfg: DictConfig) -> None:
    """split.folds and split.fold: both null, or K >= 2 and a fold in [0, K) on a dataset without its own test set."""
    folds = _get(cfg, "split.folds")
    _check(cfg, "split.folds", lambda v: v is None or (_is_int(v) and v >= 2),
           "null (one train/val/test split) or a number of folds >= 2, e.g. split.folds=5")
    if folds is None:
        _check(cfg, "split.fold", lambda v: v is None, "null without split.folds: set split.folds=K too")
        return
    _check(cfg, "split.fold", lambda v: _is_int(v) and 0 <= v < folds,
           f"the test fold, an integer in 0..{folds - 1}; sweep them: -m split.fold={','.join(map(str, range(folds)))}")
    dataset = _get(cfg, "dataset.name")
    if dataset in ("mnist", "fashion_mnist", "cifar10"):
        raise ConfigError("split.folds", folds, f"null for dataset={dataset}, which has its own official test set")
    if dataset == "dna_splice" and _get(cfg, "dataset.statlog_split"):
        raise ConfigError("split.folds", folds, "null with dataset.statlog_split=true (StatLog's published test set); "
                          "set dataset.statlog_split=false to cross-validate")


def _is_names(v: Any) -> bool:
    return v is None or (isinstance(v, (list, ListConfig)) and all(isinstance(n, str) for n in v))


def _validate_dataset(cfg: DictConfig) -> None:
    """The settings of the file-backed datasets (mnist, fashion_mnist, cifar10, csv, image_folder)."""
    name = _get(cfg, "dataset.name")
    if name in ("mnist", "fashion_mnist", "cifar10"):
        _check(cfg, "dataset.root", lambda v: isinstance(v, str) and v != "", "a folder, e.g. dataset.root=data/")
        _check(cfg, "dataset.download", lambda v: isinstance(v, bool), "true or false")
    elif name == "csv":
        _check(cfg, "dataset.path", lambda v: isinstance(v, str) and v != "",
               "your .csv, .tsv, .parquet, .arff or KEEL .dat file, e.g. dataset.path=my.csv")
        arff = str(_get(cfg, "dataset.path") or "").lower().endswith((".arff", ".dat"))
        _check(cfg, "dataset.target", lambda v: (isinstance(v, str) and v != "") or (v is None and arff),
               "the name of the class column, e.g. dataset.target=label (null only for ARFF / KEEL files: their class)")
        for key in ("dataset.features", "dataset.categorical"):
            _check(cfg, key, _is_names, "null or a list of column names, e.g. [age,income]")
        _check(cfg, "dataset.max_categories", lambda v: _is_int(v) and v >= 2, "an integer >= 2")
        _check(cfg, "dataset.encoding", _is_codec,
               "a text encoding Python knows, e.g. utf-8, latin-1 or cp1252 (a Windows spreadsheet's)")
    elif name == "image_folder":
        _check(cfg, "dataset.path", lambda v: isinstance(v, str) and v != "",
               "the folder holding one sub-folder of images per class, e.g. dataset.path=~/pets")
        _check(cfg, "dataset.image_size", lambda v: _is_int(v) and v >= 8, "an integer >= 8 (pixels)")
        _check(cfg, "dataset.grayscale", lambda v: isinstance(v, bool), "true or false")
    _check(cfg, "dataset.augment", lambda v: isinstance(v, bool), "true or false")


def _is_codec(v: Any) -> bool:
    import codecs

    try:
        return isinstance(v, str) and codecs.lookup(v) is not None
    except LookupError:
        return False


def _validate_loss(cfg: DictConfig) -> None:
    name = _get(cfg, "loss.name")
    if name == "weighted":
        _check_scheme(cfg, none_ok=False)
    elif name == "label_smoothed":
        _check(cfg, "loss.smoothing", lambda v: _is_num(v) and 0 <= v < 1,
               "a number in [0, 1), e.g. 0.1 (1 makes every target uniform: nothing is left to learn)")
        _check_scheme(cfg, none_ok=True)
    elif name == "focal":
        _check(cfg, "loss.gamma", lambda v: _is_num(v) and v >= 0, "a number >= 0, e.g. loss.gamma=2")
        _check(cfg, "loss.alpha", _focal_alpha_ok,
               "null, a number in (0, 1) (two classes: the weight of class 1), a list of per-class weights >= 0, "
               "or 'balanced'")
    elif name == "class_balanced":
        _check(cfg, "loss.beta", _is_fraction, "a number in [0, 1), e.g. 0.9999 (0 gives plain weights)")
        _check(cfg, "loss.base", lambda v: v in ("ce", "focal"), "one of ce | focal")
        _check(cfg, "loss.gamma", lambda v: _is_num(v) and v >= 0, "a number >= 0, e.g. loss.gamma=2")
    elif name == "logit_adjusted":
        _check(cfg, "loss.tau", lambda v: _is_num(v) and v >= 0, "a number >= 0, e.g. loss.tau=1")
    elif name == "ldam":
        _check(cfg, "loss.max_margin", lambda v: _is_num(v) and v >= 0, "a number >= 0, e.g. 0.5")
        _check(cfg, "loss.scale", lambda v: _is_num(v) and v > 0, "a number > 0, e.g. 30")
        _check(cfg, "loss.drw_epoch", lambda v: v is None or (_is_int(v) and v >= 0),
               "null (no deferred re-weighting) or an integer >= 0: the epochs trained before the weights switch on")
        _check(cfg, "loss.drw_beta", _is_fraction, "a number in [0, 1), e.g. 0.9999")
    elif name == "poly":
        _check(cfg, "loss.epsilon", lambda v: _is_num(v) and v >= -1, "a number >= -1, e.g. 1.0 (0 gives CE)")
    elif name == "gce":
        _check(cfg, "loss.q", lambda v: _is_num(v) and 0 < v <= 1, "a number in (0, 1], e.g. 0.7")
    elif name == "sce":
        for key in ("loss.alpha", "loss.beta"):
            _check(cfg, key, lambda v: _is_num(v) and v >= 0, "a number >= 0")
        _check(cfg, "loss.beta", lambda v: v > 0 or _get(cfg, "loss.alpha") > 0,
               "a number > 0 when loss.alpha is 0: with both 0 there is nothing to minimise")
    elif name == "naive":
        _check(cfg, "loss.eps", lambda v: _is_num(v) and 0 <= v < 0.5, "a number in [0, 0.5), e.g. 1e-15")
        _check(cfg, "loss.clip", lambda v: isinstance(v, bool), "true or false")


def _is_fraction(v: Any) -> bool:
    return _is_num(v) and 0 <= v < 1


def _check_scheme(cfg: DictConfig, none_ok: bool) -> None:
    allowed = "one of " + " | ".join((("null",) if none_ok else ()) + WEIGHT_SCHEMES)
    _check(cfg, "loss.scheme", lambda v: (none_ok and v is None) or v in WEIGHT_SCHEMES, allowed)
    _check(cfg, "loss.beta", _is_fraction, "a number in [0, 1), e.g. 0.999")


def _focal_alpha_ok(v: Any) -> bool:
    if v is None or v == "balanced":
        return True
    if _is_num(v):
        return 0 < v < 1
    if isinstance(v, (list, ListConfig)):
        return len(v) > 0 and all(_is_num(a) and a >= 0 for a in v)
    return False


# --- keys: every key of the composed config must be one that conf/ declares (or a constructor argument) -------

def _leaves(node: Any, prefix: str = "") -> Iterator[str]:
    """Dotted keys of the leaves of a plain config tree (a list or an empty dict is a leaf)."""
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaves(v, f"{prefix}.{k}" if prefix else str(k))
    else:
        yield prefix


@functools.cache
def declared_keys() -> dict[str, frozenset[str]]:
    """The dotted keys each file of conf/ declares: "" for config.yaml, "group/option" for an option's file.

    Experiment presets only set keys that the groups declare; Hydra's own node is not part of a run's config.
    """
    def keys(path: Path, package: str) -> frozenset[str]:
        return frozenset(_leaves(_option_tree(path, package)))

    out = {"": keys(CONF / "config.yaml", "")}
    for group in sorted(p for p in CONF.iterdir() if p.is_dir() and p.name not in ("experiment", "hydra")):
        for option in sorted(group.glob("*.yaml")):
            out[f"{group.name}/{option.stem}"] = keys(option, group.name)
    return out


@functools.cache
def _option_tree(path: Path, package: str) -> dict:
    """A file of conf/ as the config it contributes: its keys under its group (package), or at the top for
    `@package _global_` files; the defaults list and Hydra's node left out. Read only: it is cached."""
    import yaml  # PyYAML, which omegaconf parses with: 5x faster than OmegaConf.load for these 70 files

    text = path.read_text()
    tree = {k: v for k, v in (yaml.safe_load(text) or {}).items() if k not in ("defaults", "hydra")}
    header = text.splitlines()[:3]
    return {package: tree} if package and not any("@package _global_" in line for line in header) else tree


def _known(key: str, known: frozenset[str], cfg: DictConfig | None = None) -> bool:
    """key is declared, or lies inside the dict value given to a declared leaf (sampling_strategy={0: 100}).

    A leaf declared null in one option (resampling=balanced_sampler's sampler) that another option fills with a
    `_target_` node is no such value: its sub-keys are constructor arguments, checked as such."""
    parts = key.split(".")
    prefixes = (".".join(parts[:i]) for i in range(1, len(parts)))
    return key in known or any(p in known and (cfg is None or OmegaConf.select(cfg, p + "._target_", default=None)
                                               is None) for p in prefixes)


def _constructor_arguments(cfg: DictConfig, key: str) -> tuple[frozenset[str], bool]:
    """The dotted keys of the arguments of what the nearest `_target_` node above key builds, and whether it
    takes any keyword (**kwargs, or a target that cannot be imported: building it will name that problem)."""
    from hydra.utils import get_method

    parts = key.split(".")
    for i in range(len(parts) - 1, 0, -1):
        node = ".".join(parts[:i])
        target = OmegaConf.select(cfg, node + "._target_", default=None)
        if target is None:
            continue
        try:
            params = inspect.signature(get_method(target)).parameters.values()
        except Exception:  # noqa: BLE001 - import errors of any kind
            return frozenset(), True
        return (frozenset(f"{node}.{p.name}" for p in params if p.kind is not p.VAR_KEYWORD),
                any(p.kind is p.VAR_KEYWORD for p in params))
    return frozenset(), False


def _near(key: str, candidates: frozenset[str]) -> list[str]:
    """The declared key closest to key (difflib), if its last part is close too: a shared prefix alone
    (resampling.sampler.smote.) makes any two keys look alike."""
    last = key.rsplit(".", 1)[-1]
    cutoff = 0.8 if "." in key else 0.7  # one short word (lose for loss: 0.75) has fewer letters to agree on
    return [c for c in difflib.get_close_matches(key, sorted(candidates), n=3, cutoff=cutoff)
            if difflib.SequenceMatcher(None, last, c.rsplit(".", 1)[-1]).ratio() >= 0.6][:1]


def check_keys(cfg: DictConfig) -> None:
    """UnknownKey for the first key of cfg that no file of conf/ declares (added with `+`, e.g. a typo such as
    +trainer.epoch=3), suggesting the nearest declared key (difflib).

    Accepted besides: arguments of a `_target_`'s constructor (e.g. +optim.amsgrad=true), keys under tracking.
    A key that only another option of its group declares (e.g. +loss.alpha with loss=plain in a sweep over
    losses) is accepted with a warning that the chosen option does not read it.
    """
    declared = declared_keys()
    known = frozenset().union(*declared.values())
    for key in _leaves(OmegaConf.to_container(cfg, resolve=False)):
        if not key or key.startswith(FREE_PREFIXES) or key in READ_WITH_DEFAULT:
            continue
        if not _known(key, known, cfg):
            arguments, any_keyword = _constructor_arguments(cfg, key)
            if any_keyword or _known(key, arguments):
                continue
            candidates = known | arguments
            nodes = {".".join(k.split(".")[:i]) for k in candidates for i in range(1, k.count(".") + 1)}
            parts = key.split(".")
            added = next((".".join(parts[:i]) for i in range(1, len(parts) + 1) if ".".join(parts[:i]) not in nodes),
                         key)  # the first part that nothing declares: the key the user added
            value = OmegaConf.select(cfg, added)
            value = OmegaConf.to_container(value) if isinstance(value, DictConfig) else value
            near = _near(added, candidates)
            raise UnknownKey(added, value, near, bool(near) and near[0] in known)
        group = key.split(".")[0]
        node = cfg.get(group)  # a setting given a list (seed=[0,1]) has no option's name: its own check says so
        chosen = declared.get(f"{group}/{node.get('name', '')}") if isinstance(node, DictConfig) else None
        if chosen is not None and not _known(key, chosen | declared[""]):
            readers = _options_with(declared, group, lambda ks: _known(key, ks))
            log.warning("%s is not read by %s=%s (only by %s)", key, group, cfg[group].name,
                        ", ".join(f"{group}={r}" for r in readers))


# --- the command line: a key set without '+' that the composed config will not have ---------------------------

def check_command_line(args: list[str]) -> None:
    """UserError for an override of train.py's command line that sets, without '+', a key the composed config will not
    have: Hydra would stop on it with its multi-line "Key 'epoch' is not in struct" and exit 1 (`trainer.epoch=3`),
    where the same typo with '+' gets check_keys' "did you mean trainer.epochs?".

    It reads conf/'s YAML and composes nothing, so it judges only what it can tell from there: a key that no file
    of conf/ declares, and a key that the chosen option of its group does not declare where that option is known
    (named on the command line, or a default no preset of the command line can change). Anything else, a syntax
    error included, is left to Hydra.
    """
    from hydra._internal.utils import get_args_parser  # the parser hydra.main reads sys.argv with
    from hydra.core.override_parser.overrides_parser import OverridesParser
    from hydra.core.override_parser.types import OverrideType

    parser = get_args_parser()
    parsed, unknown = parser.parse_known_args(args)
    flag = next((a for a in unknown if a.startswith("-")), None)
    if flag is not None:  # argparse would print Hydra's whole usage text
        flags = sorted({f for action in parser._actions for f in action.option_strings if f.startswith("--")})
        near = difflib.get_close_matches(flag.split("=")[0], flags, n=1, cutoff=0.6)
        raise UserError(f"{flag}: train.py has no such flag; " + (f"did you mean {near[0]}? " if near else "")
                        + "python train.py --help lists them (-m, --multirun: a sweep; --cfg job: print the config).")
    try:
        overrides = OverridesParser.create().parse_overrides(parsed.overrides)
    except Exception:  # noqa: BLE001 - Hydra's own message names a malformed override, but for a home folder:
        home = next((a for a in args if "=~/" in a), None)  # the shell expands ~ only at a word's start
        if home:
            fixed = home.replace("=~/", "=$HOME/", 1)
            raise UserError(f"{home}: Hydra's override grammar does not accept '~' there, and the shell expands it "
                            f"only at the start of a word; write {fixed} (the shell expands $HOME).") from None
        return
    _check_sweep_mode(args, parsed, overrides)
    declared = declared_keys()
    known = frozenset().union(*declared.values())
    groups = {p.name for p in CONF.iterdir() if p.is_dir()}
    chosen = _chosen_options(overrides, groups)
    for o in overrides:
        key = o.key_or_group
        if key in groups and o.package is None:
            _check_option(key, o)
        if key.startswith("hydra/") and o.package is None:
            _check_option(key, o, _hydra_options(key), f"conf/{key}/ and Hydra's own and its plugins'")
        if key.startswith("hydra.launcher.") and o.type is OverrideType.CHANGE:
            _check_launcher_key(key, o.input_line.split("=", 1)[1], overrides)
        if o.type is OverrideType.CHANGE and key not in known:
            _check_argument(key, o.input_line.split("=", 1)[1], chosen)
        if (o.type is not OverrideType.CHANGE or o.package is not None or "/" in key or key in groups
                or key.split(".")[0] == "hydra" or _is_node(key, known)):
            continue
        value = o.input_line.split("=", 1)[1]
        if not _known(key, known):
            near = _near(key, known | groups)
            fix = (f"did you mean {near[0]}? Write {near[0]}={value}." if near else
                   f"an argument of the class an option builds (an optimizer's, a sampler's) is added with '+': "
                   f"+{key}={value}; docs/configuration.md lists the settings.")
            raise UserError(f"{key}={value}: {key} is not a setting of the harness (no file of conf/ declares it, so "
                            f"Hydra cannot set it); {fix}")
        group = key.split(".")[0]
        option = chosen.get(group)
        null = _null_node(key, group, option) if option and f"{group}/{option}" in declared else None
        if null and not any(other.key_or_group.startswith(null) for other in overrides if other is not o):
            readers = (_options_with(declared, group, lambda ks: key in ks)
                       or _options_with(declared, group, lambda ks: _is_node(null, ks)))
            which = f" ({key} is a setting of {', '.join(f'{group}={r}' for r in readers)})" if readers else ""
            example = f"; choose one of those, e.g. {group}={readers[0]} {key}={value}" if readers else ""
            raise UserError(f"{key}={value}: {group}={option} sets {null} to null (conf/{group}/{option}.yaml), so "
                            f"it has no {key}{which}{example}.")
        if option and f"{group}/{option}" in declared and not _known(key, declared[f"{group}/{option}"] | declared[""]):
            readers = _options_with(declared, group, lambda ks: key in ks)
            node = key
            if not readers:  # a node the chosen option lacks (resampling=none has no sampler), else composing tells
                readers, node = _node_readers(key, group, option, declared)
                if not readers:
                    continue
            raise UserError(f"{key}={value}: {node} is not a setting of {group}={option} (only of "
                            f"{', '.join(f'{group}={r}' for r in readers)}); choose one of those, e.g. "
                            f"{group}={readers[0]} {key}={value}.")


PRESET_GROUPS = ("experiment", "hparams_search")  # their files may set hydra's mode, launcher and sweeper


def _check_sweep_mode(args: list[str], parsed: Any, overrides: list[Any]) -> None:
    """UserError for a sweep's values (seed=0,1, seed=range(0,3)) without -m: Hydra stops on them with its multi-line
    "Ambiguous value" or "requires --multirun" and exit 1. An experiment or search preset, or hydra.mode, may
    choose MULTIRUN itself (conf/experiment/loss_zoo.yaml): with one of those, composing tells. parsed: Hydra's
    argument parser's reading of args."""
    if parsed.multirun or parsed.cfg or parsed.info or parsed.shell_completion:  # --cfg job: Hydra's own answer
        return
    if {o.key_or_group for o in overrides} & {*PRESET_GROUPS, "hydra.mode"}:
        return
    swept = next((o for o in overrides if o.is_sweep_override()), None)
    if swept is not None:
        raise UserError(f"{swept.input_line}: several values are a sweep, which runs with -m (--multirun): python "
                        f"train.py -m {' '.join(args)}")


def _options(group: str) -> list[str]:
    """The options of a config group: the YAML files of its folder in conf/."""
    return sorted(p.stem for p in (CONF / group).glob("*.yaml"))


def _hydra_options(group: str) -> list[str]:
    """The options of one of Hydra's groups (hydra/launcher, hydra/sweeper): the files of conf/<group>/ and those
    Hydra and its plugins register (discovering the plugins as Hydra does next, once per process: 0.4 s)."""
    import hydra
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    Plugins.instance()
    try:
        registered = ConfigStore.instance().list(group)
    except OSError:  # no such group registered
        registered = []
    own = Path(hydra.__file__).parent / "conf" / group  # hydra/hydra_logging, hydra/job_logging, ...
    return sorted({Path(n).stem for n in registered} | {p.stem for p in own.glob("*.yaml")} | set(_options(group)))


def _launcher_keys(option: str) -> frozenset[str]:
    """The settings of a launcher (hydra/launcher=option): its plugin's schema and conf/hydra/launcher/<option>.yaml."""
    from hydra.core.config_store import ConfigStore

    try:
        schema = set(ConfigStore.instance().load(f"hydra/launcher/{option}.yaml").node.keys())
    except Exception:  # noqa: BLE001 - not registered (the plugin's extra is not installed): the file's keys
        schema = set()
    path = CONF / "hydra" / "launcher" / f"{option}.yaml"
    own = set(_option_tree(path, "")) - {"defaults"} if path.is_file() else set()
    return frozenset(map(str, schema | own))


def _check_launcher_key(key: str, value: str, overrides: list[Any]) -> None:
    """UserError for a setting the sweep's launcher does not have (hydra.launcher.n_jobs with the basic launcher,
    hydra.launcher.n_jobz with joblib): Hydra stops with its multi-line "Key 'n_jobs' not in 'BasicLauncherConf'".
    Left to Hydra when a preset (experiment=, hparams_search=) may choose the launcher."""
    chosen = next((str(o.value()) for o in overrides if o.key_or_group == "hydra/launcher"), None)
    if chosen is None and {o.key_or_group for o in overrides} & set(PRESET_GROUPS):
        return
    chosen = chosen or "basic"
    options = _hydra_options("hydra/launcher")
    if chosen not in options:
        return  # _check_option names it
    setting = key.split(".")[2]
    have = _launcher_keys(chosen)
    if setting in have:
        return
    readers = [o for o in options if setting in _launcher_keys(o)]
    near = difflib.get_close_matches(setting, sorted(have - {"_target_"}), n=1, cutoff=0.6)
    if readers:
        fix = f"it is a setting of {', '.join(f'hydra/launcher={r}' for r in readers)}: add hydra/launcher={readers[0]}"
    elif near:
        fix = f"did you mean hydra.launcher.{near[0]}? Write hydra.launcher.{near[0]}={value}"
    else:
        fix = f"its settings are {', '.join(sorted(have - {'_target_'})) or 'none'}"
    raise UserError(f"{key}={value}: hydra/launcher={chosen} has no setting {setting}; {fix}.")


def _check_option(group: str, override: Any, options: list[str] | None = None, where: str | None = None) -> None:
    """UserError for an option of group that conf/ has no file for (loss=focall): Hydra's "Could not find" would
    print the config search path and exit 1. Values of a range or interval sweep are left to Hydra."""
    value = override.value()
    values = value.list if hasattr(value, "list") else [value] if isinstance(value, str) else []
    options = _options(group) if options is None else options
    left = override.input_line.split("=", 1)[0]  # with its '+' or '~'
    for v in values:
        if isinstance(v, str) and options and v not in options:
            near = difflib.get_close_matches(v, options, n=1, cutoff=0.6)
            hint = f"did you mean {left}={near[0]}? " if near else ""
            raise UserError(f"{left}={v}: {group} has no option {v!r}; {hint}its options are {', '.join(options)} "
                            f"({where or f'the files of conf/{group}/'}).")


def _check_argument(key: str, value: str, chosen: dict[str, str | None]) -> None:
    """UserError for a constructor argument (a key under a `_target_` node of its group's chosen option, e.g.
    resampling.sampler.k_neighbours with resampling=smote) set without '+' that the option's file does not set:
    Hydra would stop with "Key 'k_neighbours' is not in struct"; names the class's argument it is closest to."""
    group, parts = key.split(".")[0], key.split(".")
    option = chosen.get(group)
    path = CONF / group / f"{option}.yaml"
    if not option or not path.is_file():
        return
    cfg = OmegaConf.create(_option_tree(path, group))
    if not any(OmegaConf.select(cfg, ".".join(parts[:i]) + "._target_", default=None) for i in range(1, len(parts))):
        return
    arguments, any_keyword = _constructor_arguments(cfg, key)
    near = [] if _known(key, arguments) else _near(key, arguments)
    what = f"{group}={option}'s class"
    if near:
        raise UserError(f"{key}={value}: {key} is not an argument of {what}; did you mean {near[0]}? Write "
                        f"{near[0]}={value}" + ("." if near[0] in declared_keys()[f"{group}/{option}"] else
                                                f" with '+': +{near[0]}={value}."))
    if _known(key, arguments) or any_keyword:
        raise UserError(f"{key}={value}: conf/{group}/{option}.yaml does not set {key.rsplit('.', 1)[-1]}: an "
                        f"argument of {what} is added with '+': +{key}={value}.")
    raise UserError(f"{key}={value}: {key} is not an argument of {what}; remove it, or see the class's documentation.")


def _options_with(declared: dict[str, frozenset[str]], group: str, has: Callable[[frozenset[str]], bool]) -> list[str]:
    """The options of group whose declared keys (declared_keys) satisfy has, sorted."""
    return sorted(o.split("/")[1] for o, keys in declared.items() if o.startswith(group + "/") and has(keys))


def _node_readers(key: str, group: str, option: str, declared: dict[str, frozenset[str]]) -> tuple[list[str], str]:
    """The options of group that have the first node of key that option lacks, and that node
    (resampling.sampler.k_neighbors with resampling=none: the samplers, resampling.sampler)."""
    own = declared[f"{group}/{option}"] | declared[""]
    parts = key.split(".")
    for i in range(2, len(parts)):
        node = ".".join(parts[:i])
        if not _is_node(node, own) and node not in own:
            return _options_with(declared, group, lambda ks: _is_node(node, ks)), node
    return [], key


def _null_node(key: str, group: str, option: str) -> str | None:
    """The node above key that the option's file sets to null (resampling.sampler in resampling=balanced_sampler),
    None if there is none: Hydra cannot set a key inside a null node ("Key 'k_neighbors' is not in struct")."""
    node: Any = _option_tree(CONF / group / f"{option}.yaml", group)
    parts = key.split(".")
    for i, part in enumerate(parts[:-1]):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
        if node is None:
            return ".".join(parts[:i + 1])
    return None


def _is_node(key: str, known: frozenset[str]) -> bool:
    """key names a node above declared keys (trainer, resampling.sampler): not a typo of a setting."""
    return any(k.startswith(key + ".") for k in known)


@functools.cache
def _defaults_of(option: str) -> dict[str, str | None]:
    """The groups a file of conf/ ("" for config.yaml, else "group/option") chooses in its defaults list, with the
    option it chooses ({"imbalance": "none"} for `override /imbalance@_global_.imbalance: none`)."""
    import yaml

    path = CONF / ("config.yaml" if not option else f"{option}.yaml")
    if not path.is_file():
        return {}
    out: dict[str, str | None] = {}
    for entry in (yaml.safe_load(path.read_text()) or {}).get("defaults", []):
        if isinstance(entry, dict):
            for name, value in entry.items():
                group = name.removeprefix("override ").strip().lstrip("/").split("@")[0]
                out[group] = None if value is None else str(value)
    return out


def _chosen_options(overrides: list, groups: set[str]) -> dict[str, str | None]:
    """The option of each group as far as the command line and conf/ tell without composing: the command line's,
    else what a chosen option's defaults list sets (dataset=csv: imbalance none), else config.yaml's; None where
    unknown (a sweep over the group). Empty when the command line names a preset (experiment, remedy,
    hparams_search): those change other groups in ways only composing tells."""
    given: dict[str, str | None] = {}
    for o in overrides:
        if o.key_or_group in groups and o.package is None:
            given[o.key_or_group] = None if o.is_sweep_override() else str(o.value())
    if any(given.get(g) for g in ("experiment", "remedy", "hparams_search")):
        return {}
    chosen = {g: v for g, v in _defaults_of("").items() if g in groups} | given
    for group, option in list(chosen.items()):
        if option:
            chosen |= {g: v for g, v in _defaults_of(f"{group}/{option}").items() if g not in given}
    return chosen


# --- text: datasets, tokenizers, text models, and what they need installed -------------------------------------

TEXT_DATASETS = ("text", "spam_assassin", "language_id", "dna_splice")
TEXT_MODELS = ("ngram_bag", "text_cnn", "transformer")
# imblearn samplers that repeat or drop whole samples at random: the only ones that apply to documents
WHOLE_SAMPLE_SAMPLERS = ("RandomOverSampler", "RandomUnderSampler")
ENCODING_ERRORS = ("strict", "replace", "ignore", "backslashreplace")  # Python's codec error handlers
TEXT_EXTRA = 'pip install -e ".[text]"'


def _needs(module: str, what: str) -> None:
    """UserError naming the text extra when `module` (a package of that extra) is not installed."""
    import importlib.util

    if importlib.util.find_spec(module) is None:
        raise UserError(f"{what} needs the text extra ({module} is not installed): {TEXT_EXTRA}")


def _is_pos_int(v: Any) -> bool:
    return _is_int(v) and v >= 1


def _validate_text(cfg: DictConfig) -> None:
    """Text datasets go with text models and a tokenizer, other data with neither; the text extra is installed; the
    text settings are in range; a pretrained model can be found (before any work)."""
    dataset, model, tokenizer = _get(cfg, "dataset.name"), _get(cfg, "model.name"), _get(cfg, "tokenizer.name")
    if dataset not in TEXT_DATASETS:
        if model in TEXT_MODELS:
            raise ConfigError("model", model, f"a model of images or features for dataset={dataset}: mlp, logreg, cnn "
                              f"or resnet18 ({', '.join(TEXT_MODELS)} read the text datasets: "
                              f"{', '.join(TEXT_DATASETS)})")
        if tokenizer is not None:
            raise ConfigError("tokenizer", tokenizer, f"left out for dataset={dataset}, which is not text")
        return
    if model not in TEXT_MODELS:
        raise ConfigError("model", model, f"a text model for dataset={dataset}, which gives token ids: "
                          f"{' | '.join(TEXT_MODELS)}, e.g. model=ngram_bag")
    if tokenizer is None:
        raise ConfigError("tokenizer", tokenizer, f"one of wordpiece | bpe | char | pretrained for dataset={dataset}")
    _needs("tokenizers", f"dataset={dataset}")
    if dataset == "dna_splice":
        _needs("rdata", "dataset=dna_splice")
    if model == "transformer" or tokenizer == "pretrained":
        _needs("transformers", "model=transformer" if model == "transformer" else "tokenizer=pretrained")
    _validate_text_settings(cfg, dataset, model, tokenizer)
    pretrained = _get(cfg, "model.pretrained") if model == "transformer" else None
    if pretrained and tokenizer != "pretrained":
        raise ConfigError("tokenizer", tokenizer, f"pretrained with model.pretrained={pretrained}: a pretrained model "
                          "reads the ids of its own vocabulary; add tokenizer=pretrained")
    if tokenizer == "pretrained":
        name = _get(cfg, "tokenizer.pretrained")
        if not name:
            raise ConfigError("tokenizer.pretrained", name, "a hub name or a folder (by default model.pretrained's): "
                              "set model=transformer model.pretrained=NAME, or choose tokenizer=wordpiece")
        check_pretrained(str(name))
    sampler = str(_get(cfg, "resampling.sampler._target_") or "")
    if sampler and sampler.rsplit(".", 1)[-1] not in WHOLE_SAMPLE_SAMPLERS:
        raise ConfigError("resampling", _get(cfg, "resampling.name"), "oversample, undersample, balanced_sampler or "
                          "none on text: they repeat or drop whole documents, while smote and the other samplers "
                          "make or pick samples in a feature space, which documents are not (docs/text.md#resampling)")


def _validate_text_settings(cfg: DictConfig, dataset: str, model: str, tokenizer: str) -> None:
    if tokenizer in ("wordpiece", "bpe"):
        _check(cfg, "tokenizer.vocab_size", lambda v: _is_int(v) and v >= 300,
               "an integer >= 300 (bpe starts from 256 bytes), e.g. tokenizer.vocab_size=8000")
    if tokenizer in ("wordpiece", "bpe", "char"):
        _check(cfg, "tokenizer.min_frequency", _is_pos_int, "an integer >= 1")
        _check(cfg, "tokenizer.lowercase", lambda v: isinstance(v, bool), "true or false")
    _check(cfg, "tokenizer.max_length", lambda v: _is_int(v) and v >= 2, "an integer >= 2 (tokens per document)")
    if dataset == "text":
        _check(cfg, "dataset.path", lambda v: isinstance(v, str) and v != "",
               "a table (.csv, .tsv, .parquet, .jsonl) or a folder of class sub-folders, e.g. dataset.path=mail.csv")
        for key in ("dataset.text", "dataset.target", "dataset.encoding"):
            _check(cfg, key, lambda v: isinstance(v, str) and v != "", "a name, e.g. " + {
                "dataset.text": "dataset.text=body", "dataset.target": "dataset.target=label",
                "dataset.encoding": "dataset.encoding=latin-1"}[key])
        _check(cfg, "dataset.encoding_errors", lambda v: v in ENCODING_ERRORS, "one of " + " | ".join(ENCODING_ERRORS))
    elif dataset == "spam_assassin":
        for key in ("dataset.headers", "dataset.drop_duplicates"):
            _check(cfg, key, lambda v: isinstance(v, bool), "true or false")
        _check(cfg, "dataset.groups", lambda v: isinstance(v, (list, ListConfig)) and len(v) > 0,
               "a list of the corpus's groups, e.g. [easy-ham-1,spam-1]")
    elif dataset == "language_id":
        _check(cfg, "dataset.languages", lambda v: isinstance(v, (list, ListConfig)) and len(set(v)) == len(v) >= 2,
               "a list of two or more distinct languages, e.g. [english,german,irish]")
        _check(cfg, "dataset.fraction", lambda v: _is_num(v) and 0 < v <= 1, "a fraction in (0, 1], e.g. 0.1")
        _check(cfg, "dataset.shared_words", lambda v: v in ("drop", "keep"), "drop or keep")
    elif dataset == "dna_splice":
        _check(cfg, "dataset.statlog_split", lambda v: isinstance(v, bool), "true or false")
    if model == "ngram_bag":
        for key in ("model.dim", "model.word_ngrams", "model.buckets"):
            _check(cfg, key, _is_pos_int, "an integer >= 1")
    elif model == "text_cnn":
        _check(cfg, "model.dim", _is_pos_int, "an integer >= 1")
        _check(cfg, "model.channels", _is_pos_int, "an integer >= 1")
        _check(cfg, "model.kernel_sizes", lambda v: isinstance(v, (list, ListConfig)) and len(v) > 0 and all(
            _is_pos_int(k) for k in v), "a list of window widths >= 1, e.g. [3,4,5]")
    elif model == "transformer":
        _check(cfg, "model.pretrained", lambda v: v is None or (isinstance(v, str) and v != ""),
               "null (a random model from model.config) or a hub name or folder, e.g. distilbert-base-uncased")


def check_pretrained(name: str) -> None:
    """UserError unless `name` is a folder or a hub model whose config.json the Hugging Face hub gives (or its cache,
    under HF_HUB_OFFLINE=1): fetched here, before any work, rather than after the data are prepared."""
    if Path(name).expanduser().is_dir():
        if not (Path(name).expanduser() / "config.json").is_file():
            raise UserError(f"model.pretrained={name}: the folder has no config.json; give a folder written by "
                            "save_pretrained (or a hub name).")
        return
    from huggingface_hub import hf_hub_download  # light: no torch

    try:
        hf_hub_download(name, "config.json")
    except Exception as e:  # noqa: BLE001 - offline, unknown repository, gated, network: one line for all
        raise pretrained_unreachable(name, e) from e


def pretrained_unreachable(name: str, error: Exception) -> UserError:
    """The one line for a model.pretrained that cannot be had (offline, no such name, no such folder)."""
    from huggingface_hub import constants

    offline = constants.HF_HUB_OFFLINE  # HF_HUB_OFFLINE as the library read it
    why = ("HF_HUB_OFFLINE is set and it is not in the Hugging Face cache" if offline else
           "it is no local folder, and the Hugging Face hub did not give it")
    return UserError(f"model.pretrained={name}: {why} ({type(error).__name__}: {' '.join(str(error).split())[:200]}). "
                     "Give a folder written by save_pretrained, or fetch it where there is internet (hf "
                     f"download {name}) and copy the Hugging Face cache (HF_HOME) here.")
