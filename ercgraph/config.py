"""Run configuration: plain YAML validated into dataclasses.

Unknown keys are an error that names the key and the allowed ones; ``--set a.b=c`` overrides any
value (the value is parsed as YAML, so ``--set train.seeds=[0,1]`` works). A section takes a
mapping, merged key by key (``--set model={hidden: 64}`` is ``--set model.hidden=64``); an empty
value or a scalar for a section is refused, as it would reset every key of it. A key given twice
in one YAML mapping is refused (YAML would keep the last one). Shipped configs hold no absolute
paths: relative data paths are resolved against the data root (``--data-root`` or
``ERCGRAPH_DATA``).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
import re
from dataclasses import dataclass, field, fields, is_dataclass
from pathlib import Path
from typing import Any, get_args, get_origin, get_type_hints

import yaml

from ercgraph.errors import ErcgraphError

log = logging.getLogger(__name__)


class _StrictLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` that refuses a key given twice in one mapping: plain YAML keeps the
    last one, so a second ``train:`` block would silently replace the first. Keys brought in by
    a merge (``<<: *anchor``) may still be overridden, as YAML intends."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        if isinstance(node, yaml.MappingNode):
            seen: dict[Any, yaml.Node] = {}
            for key_node, _ in node.value:
                if key_node.tag == "tag:yaml.org,2002:merge":
                    continue
                key = self.construct_object(key_node, deep=True)
                try:
                    first = seen.get(key)
                except TypeError:  # an unhashable key: the base class reports it
                    continue
                if first is not None:
                    raise yaml.constructor.ConstructorError(
                        None,
                        None,
                        f"duplicate key {key!r} (first given on line {first.start_mark.line + 1})",
                        key_node.start_mark,
                    )
                seen[key] = key_node
        return super().construct_mapping(node, deep=deep)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line for a YAML error: ``line L, column C: problem`` (PyYAML's own text spans three
    lines with a copy of the offending source)."""
    mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
    problem = " ".join(str(getattr(exc, "problem", None) or exc).split())
    context = getattr(exc, "context", None)
    if context:
        problem += f" ({' '.join(str(context).split())})"
    return f"line {mark.line + 1}, column {mark.column + 1}: {problem}" if mark else problem


def read_value(text: str) -> Any:
    """One YAML value (``--set`` and the like) with the strict loader; raises ``yaml.YAMLError``."""
    return yaml.load(text, Loader=_StrictLoader)  # a SafeLoader: no Python tags


def read_yaml(text: str, source: str) -> Any:
    """Parse YAML with the safe loader, refusing duplicate keys at any depth.

    Args:
        text: The YAML text.
        source: What it is, for the error (e.g. ``config 'run/config.yaml'``).

    Raises:
        ErcgraphError: one line naming ``source``, the line, the column and the problem.
    """
    try:
        return read_value(text)
    except yaml.YAMLError as exc:
        raise ErcgraphError(f"{source} is not valid YAML: {yaml_problem(exc)}") from None


@dataclass
class DataConfig:
    """Where the corpus comes from.

    ``reader`` is ``meld``, ``iemocap``, ``table`` or ``pickle`` (or a registered/dotted reader).
    ``path`` is one file or folder, ``paths`` maps split names to files. ``columns`` maps Corpus
    columns to source columns (a list for ``dialogue_id`` joins several). ``labels`` fixes the
    label vocabulary.
    """

    reader: str = "meld"
    path: str | None = None
    paths: dict[str, str] | None = None
    columns: dict[str, Any] | None = None
    labels: list[str] | None = None
    name: str | None = None
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class LossConfig:
    """One weighted loss term, resolved by name from ``LOSSES``. ``loss:`` is a list of these
    (a single mapping is a one-term list)."""

    name: str = "ce"
    weight: float = 1.0
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class FinetuneConfig:
    """Fine-tuning of the text encoder on the training split (optionally with dialogue context)."""

    enabled: bool = False
    # The recipe is the best dev one of bench/sweep_finetune.py (bench/results/
    # sweep_finetune.json) within the fine-tuning time budget: no dialogue context (the graph
    # model adds it; context inputs cost 3-5x the tokens and did not win on dev), 3 epochs at
    # 8e-5 with layer-wise decay 0.9 and label smoothing 0.1, the best epoch chosen on dev.
    epochs: int = 3
    lr: float = 8e-5
    batch_size: int = 32
    context_turns: int = 0
    max_length: int = 128
    weight_decay: float = 0.01
    seed: int = 0
    #: null: classify the emotion label (cross-entropy, dev weighted F1 picks the epoch); a list
    #: of corpus columns (e.g. [valence, arousal, dominance]): regress them with the CCC loss
    #: (dev mean CCC picks the epoch), for dimensional corpora without labels
    targets: list[str] | None = None
    #: following turns of the same dialogue added after the target (``context_turns`` counts
    #: the previous ones); with either > 0 the input is built turn by turn and the context, not
    #: the target, is dropped when the input would exceed ``max_length``
    future_turns: int = 0
    #: ``all``: mean over every token; ``target``: mean over the target utterance's tokens only
    #: (the context is read through attention but does not enter the vector)
    pool: str = "all"
    #: learning-rate schedule after the warm-up: ``linear`` decay to 0, ``cosine`` or ``constant``
    schedule: str = "linear"
    warmup_fraction: float = 0.1
    #: layer-wise learning-rate decay: layer ``l`` of ``L`` (embeddings = 0) trains at
    #: ``lr * layer_decay ** (L - l)``; the head and pooler at ``lr``. 1.0 switches it off
    layer_decay: float = 0.9
    #: loss terms of the classifier (the ``loss:`` registry: ``ce`` with ``label_smoothing``,
    #: ``rdrop``, ``supcon`` ...); ignored with ``targets`` (regression uses the CCC loss)
    loss: list[LossConfig] = field(
        default_factory=lambda: [LossConfig("ce", 1.0, {"label_smoothing": 0.1})]
    )


@dataclass
class TextFeatureConfig:
    """The text encoder: a transformers model by name or path (``default`` = shipped MiniLM)."""

    encoder: str = "default"
    pooling: str = "mean"
    max_length: int = 128
    batch_size: int = 64
    context_turns: int = 0
    #: following turns after the target, and the pooling span (``all`` or ``target``), as in
    #: ``features.text.finetune`` (which sets both when fine-tuning is on)
    future_turns: int = 0
    pool: str = "all"
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)


@dataclass
class AudioFeatureConfig:
    """Audio features from media files: ``encoder`` is ``fbank``, ``mfcc``, ``opensmile:IS10``,
    ``hf:<local path>``...; ``source`` the Corpus column with the file (a wav, or a video whose
    audio track is used); ``segment`` cuts ``[start, end]`` out of it (dialogue-level files).

    ``max_seconds`` (default 600, ten minutes): longest audio read, the whole file or the
    ``[start, end]`` segment, told from the file's header before anything is decoded; a longer
    one is skipped and reported as a failed row (openSMILE needs about 13 GB of memory for one
    hour, fbank 3.6 GB). ``null`` reads any length."""

    encoder: str | None = None
    source: str = "audio_path"
    segment: bool = False
    workers: int = 2
    chunk_size: int = 64
    max_seconds: float | None = 600.0


@dataclass
class VisualFeatureConfig:
    """Visual features: frames sampled at ``fps`` (at most ``max_frames``), the largest face of
    each cropped (``face``; the whole frame when none is found) with ``face_margin`` (share of
    the box added on each side) by ``face_detector`` (``haar``: OpenCV's bundled cascade, or a
    Haar cascade ``.xml`` / YuNet ``.onnx`` file), embedded by a local transformers vision model
    ``encoder`` (``features``: ``auto``, ``projection``, ``pooler``, ``cls`` or ``mean``) in
    batches of ``batch_size`` crops on ``device`` (``cpu``, ``cuda``, ``cuda:N``, ``mps`` or
    ``auto``), and pooled per utterance (``pooling``: ``mean`` or ``attention``)."""

    encoder: str | None = None
    source: str = "video_path"
    segment: bool = False
    fps: float = 2.0
    max_frames: int = 16
    face: bool = True
    face_detector: str = "haar"
    face_margin: float = 0.2
    features: str = "auto"
    pooling: str = "mean"
    batch_size: int = 32
    device: str = "cpu"
    workers: int = 2
    chunk_size: int = 32


NORMALISERS = ("standard", "speaker", "none")


@dataclass
class FeatureFileConfig:
    """Bring your own features: one modality read from an array file beside the table
    (``.npy``, ``.npz``, ``.pt`` or ``.safetensors``; ``.pt`` loads with ``weights_only=True``).

    ``path`` (relative to the data root), ``key`` (the array inside an ``.npz``/``.pt``/
    ``.safetensors``; optional when it holds one array), ``columns`` (``[start, end)``, a column
    range of the array; null = all). Rows align with the table by row order (the table's
    ``table_row``: row i of the file is row i of the table files, in ``data.paths`` order), or by
    id: ``id_column`` names a Corpus column and ``id_key`` the array of ids in the same file
    (without ``id_key`` the ids are the file's row numbers 0..N-1).
    """

    path: str | None = None
    key: str | None = None
    columns: list[int] | None = None
    id_column: str | None = None
    id_key: str | None = None


@dataclass
class FeaturesConfig:
    """Modalities and their encoders. ``normalise: standard`` standardises each modality's
    features with a mean and std fitted on the training split only (saved in the run directory);
    ``speaker`` standardises every speaker with at least ``speaker_min`` utterances by their own
    features' mean and std (label-free, transductive; see ``ercgraph.data.normalise``) and the
    rest like ``standard``; ``none`` feeds them as extracted. ``mmap: true`` memory-maps the
    cached text features instead of reading them (corpora larger than RAM; with ``standard`` the
    standardisation is then applied as batches gather their rows)."""

    modalities: list[str] = field(default_factory=lambda: ["text"])
    normalise: str = "standard"
    mmap: bool = False
    #: with ``normalise: speaker``, the fewest utterances that give a speaker their own statistics
    speaker_min: int = 10
    #: modality → features read from a file (any modality name; taken before any encoder)
    files: dict[str, FeatureFileConfig] = field(default_factory=dict)
    text: TextFeatureConfig = field(default_factory=TextFeatureConfig)
    audio: AudioFeatureConfig = field(default_factory=AudioFeatureConfig)
    visual: VisualFeatureConfig = field(default_factory=VisualFeatureConfig)


@dataclass
class GraphConfig:
    """Graph builders (names or ``{name: ..., **kwargs}``) and the edge types kept (null = all)."""

    builders: list[Any] = field(
        default_factory=lambda: [
            {"name": "temporal", "w_past": 4, "w_future": 4},
            {"name": "speaker", "w_past": 4, "w_future": 4},
        ]
    )
    edge_types: list[str] | None = None
    #: relations whose utterance pairs leave every relation (what ``ablate --mode pairs`` sets)
    drop_pairs: list[str] = field(default_factory=list)


@dataclass
class ModelConfig:
    name: str = "hierarchical_gcn"
    hidden: int = 128
    conv: str = "rgcn"
    intra_layers: int = 2
    cross_layers: int = 1
    heads: int = 4
    dropout: float = 0.5
    max_speakers: int = 9
    context_rnn: bool = False
    fusion: Any = "mean"
    #: add a linear map of each utterance's own (standardised) input features to the emotion
    #: and regression heads' outputs, a path that neighbours cannot dilute (so the model
    #: contains the run's linear probe); see :func:`ercgraph.heads.base.linear_skip`
    linear_skip: bool = False
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class MultitaskConfig:
    """Shorthand for the masked-feature reconstruction head (after CBERL): ``enabled: true``
    adds ``{name: reconstruction, mask_ratio, mode}`` to ``heads`` and a ``reconstruction`` loss
    term of weight ``weight`` to ``loss``.

    ``mode``: ``features`` masks nodes of each modality independently, ``nodes`` masks every
    modality node of a chosen utterance at once.
    """

    enabled: bool = False
    mask_ratio: float = 0.15
    mode: str = "features"
    weight: float = 0.5


@dataclass
class SamplerConfig:
    """Training-dialogue sampler by name (``random`` = shuffle, ``class_aware``)."""

    name: str = "random"
    options: dict[str, Any] = field(default_factory=dict)


@dataclass
class TrainConfig:
    epochs: int = 40
    batch_size: int = 16
    lr: float = 1e-3
    weight_decay: float = 0.01
    patience: int = 10
    select_metric: str = "weighted_f1"
    seeds: list[int] = field(default_factory=lambda: [0])
    grad_clip: float = 5.0
    device: str = "cpu"
    # Dialogue-graph batches are small: on CPU one thread is fastest and immune to
    # oversubscription; feature extraction keeps torch's default thread count.
    threads: int | None = 1
    #: seeds trained at once, each in its own process with ``threads`` threads (1 = one after
    #: another); a run's results do not depend on it
    jobs: int = 1
    #: fewest optimiser steps an epoch takes: on a corpus with fewer than ``min_steps`` batches
    #: of training dialogues an epoch makes further passes (each a new sampler order) until it
    #: has taken that many, so a 300-utterance corpus trains as many steps per dev check as a
    #: large one (0 = one pass, whatever its length). 50 was chosen on dev on planted corpora in
    #: the literature's pickle layouts (bench/sweep_defaults.py); MELD (65 batches a pass) and
    #: DailyDialog (695) are untouched by it
    min_steps: int = 50
    #: baselines fitted beside the model on the same node features and reported with their Δ
    #: (``probe``: a linear probe, see :mod:`ercgraph.probe`); ``[]`` switches them off
    baselines: list[str] = field(default_factory=lambda: ["probe"])
    #: where the run's curves also go, besides ``result.json`` (``tensorboard``: event files in
    #: ``<run>/tensorboard/``, see :mod:`ercgraph.tracking`); ``[]`` (the default) writes none
    log_to: list[str] = field(default_factory=list)


PROTOCOLS = ("split", "group_kfold")
#: what ``train.baselines`` may list (fitted by :mod:`ercgraph.probe`)
BASELINES = ("probe",)
#: what ``train.log_to`` may list (the trackers of :mod:`ercgraph.tracking`)
LOG_TO = ("tensorboard",)


@dataclass
class ProtocolConfig:
    """How the corpus is split for evaluation.

    ``split`` (default): the reader's train/dev/test split. ``group_kfold``: cross-validation by
    the Corpus column ``group`` (session, speaker, actor...). Every labelled row (whatever split
    the reader gave it) joins the pool; the sorted groups are cut into ``folds`` contiguous
    blocks (null = one fold per group: leave-one-group-out). Fold k tests on block k; its dev
    split is ``dev_groups`` groups taken from the training side, starting with block k+1
    (cyclically), never from the test block (default: as many groups as one test block holds);
    the remaining groups train. Every dialogue must lie in one group.
    """

    name: str = "split"
    group: str | None = None
    folds: int | None = None
    dev_groups: int | None = None
    #: set in the saved config of each fold's run directory (``fold_<k>/``): the fold that run
    #: trains and tests, so ``evaluate`` and ``predict`` re-split the corpus the same way
    fold: int | None = None


@dataclass
class MetricsConfig:
    """What is scored and shown first.

    ``exclude_label``: a label left out of ``micro_f1`` (DailyDialog's convention is micro F1
    over the emotion classes without ``neutral``); ``headline``: the metric the report and the
    tables lead with (default: ``train.select_metric``).
    """

    exclude_label: str | None = None
    headline: str | None = None


@dataclass
class AugmentConfig:
    """Conditional-GAN augmentation of the minority classes (see :mod:`ercgraph.augment`):
    trained on the training split, generated rows join the training split only (``split`` must
    stay ``train``), placed as one-utterance dialogues (``isolated``) or as extra turns of
    training dialogues holding their class (``dialogue``). Each minority class (training share
    below ``minority_share``, default one over the number of classes) with at least
    ``min_examples`` training utterances gets ``multiplier`` times its count."""

    enabled: bool = False
    split: str = "train"
    placement: str = "isolated"
    multiplier: float = 1.0
    minority_share: float | None = None
    min_examples: int = 20
    epochs: int = 50
    noise: int = 32
    hidden: int = 256
    batch_size: int = 256
    lr: float = 2e-4
    seed: int = 0


@dataclass
class DecisionConfig:
    """How the emotion head's probabilities become a label (see :mod:`ercgraph.decision`):
    ``argmax`` (default), or ``offsets``: per-class log-probability offsets fitted on the dev
    split to maximise ``objective`` (``macro_f1`` or ``weighted_f1``) while losing at most
    ``max_weighted_f1_drop`` points of dev weighted F1 (null: no limit), then applied to dev and
    test."""

    rule: str = "argmax"
    objective: str = "macro_f1"
    max_weighted_f1_drop: float | None = None


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    features: FeaturesConfig = field(default_factory=FeaturesConfig)
    graph: GraphConfig = field(default_factory=GraphConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    multitask: MultitaskConfig = field(default_factory=MultitaskConfig)
    heads: list[Any] = field(default_factory=lambda: ["emotion"])
    loss: list[LossConfig] = field(default_factory=lambda: [LossConfig()])
    sampler: SamplerConfig = field(default_factory=SamplerConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    protocol: ProtocolConfig = field(default_factory=ProtocolConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    decision: DecisionConfig = field(default_factory=DecisionConfig)
    augment: AugmentConfig = field(default_factory=AugmentConfig)
    data_root: str | None = None
    cache_dir: str | None = None
    out: str | None = None
    imports: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def _build(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ErcgraphError(f"config: {where or 'top level'} must be a mapping, got {raw!r}")
    hints = get_type_hints(cls)
    allowed = [f.name for f in fields(cls)]
    kwargs = {}
    for key, value in raw.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in allowed:
            raise ErcgraphError(
                f"config: unknown key {path!r}; allowed keys{' in ' + where if where else ''}: "
                f"{', '.join(allowed)}"
            )
        hint = hints[key]
        item = get_args(hint)[0] if get_origin(hint) is list and get_args(hint) else None
        mapped = get_args(hint)[1] if get_origin(hint) is dict and get_args(hint) else None
        if mapped is not None and is_dataclass(mapped):
            if value is None:
                value = {}
            if not isinstance(value, dict):
                raise ErcgraphError(f"config: {path} must be a mapping, got {value!r}")
            kwargs[key] = {str(k): _build(mapped, v, f"{path}.{k}") for k, v in value.items()}
        elif is_dataclass(hint):
            kwargs[key] = _build(hint, value, path)
        elif item is not None and is_dataclass(item):
            items = value if isinstance(value, list) else [value]
            if not items:
                raise ErcgraphError(f"config: {path} needs at least one entry")
            kwargs[key] = [_build(item, v, f"{path}[{i}]") for i, v in enumerate(items)]
        else:
            kwargs[key] = _coerce(value, hint, path)
    return cls(**kwargs)


#: a number in exponent notation, as YAML 1.2 and Python write it
_EXPONENT = re.compile(r"[-+]?([0-9]+(\.[0-9]*)?|\.[0-9]+)[eE][-+]?[0-9]+")


def _unquoted_exponent(text: str) -> bool:
    """Whether ``text`` is a number that YAML 1.1 (PyYAML) reads as text even unquoted
    (``1e-3``, ``1.5e3``: no dot, or no sign in the exponent), which a float key takes as
    written. Any other text for a float key is not a number: a ``'0.5'`` reached the config as
    text only because it was quoted, and is refused like ``true``."""
    plain = yaml.resolver.Resolver().resolve(yaml.ScalarNode, text, (True, False))
    return bool(_EXPONENT.fullmatch(text)) and plain == "tag:yaml.org,2002:str"


def _coerce(value: Any, hint: Any, path: str) -> Any:
    """Light type checking: ints/floats/bools/lists, with an error naming the key."""
    origin = get_origin(hint)
    args = [a for a in get_args(hint) if a is not type(None)]
    if value is None:
        if type(None) in get_args(hint) or hint is Any:
            return None
        raise ErcgraphError(f"config: {path} needs a value (it is empty)")
    if origin is not None and str(origin) in ("typing.Union", "<class 'types.UnionType'>"):
        hint = args[0] if len(args) == 1 else Any
        origin = get_origin(hint)
    if hint is bool and not isinstance(value, bool):
        raise ErcgraphError(f"config: {path} must be true or false, got {value!r}")
    if hint is int and (isinstance(value, bool) or not isinstance(value, int)):
        raise ErcgraphError(f"config: {path} must be an integer, got {value!r}")
    if hint is float:
        if isinstance(value, str) and _unquoted_exponent(value):
            return float(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            # a quoted '0.5' is text, as true is a truth value: one rule for files and --set
            raise ErcgraphError(f"config: {path} must be a number, got {value!r}")
        try:
            return float(value)
        except OverflowError:  # an integer of hundreds of digits
            raise ErcgraphError(f"config: {path} must be a finite number, got {value!r}") from None
    if origin is list and not isinstance(value, list):
        # one value for a list of one: a string for a list of strings, an integer for a list
        # of integers (``imports: 3`` is no file name)
        item = get_args(hint)[0] if get_args(hint) else Any
        if isinstance(value, str) and item in (str, Any):
            return [value]
        if isinstance(value, int) and not isinstance(value, bool) and item in (int, Any):
            return [value]
        kind = {str: "a list of strings", int: "a list of integers"}.get(item, "a list")
        raise ErcgraphError(f"config: {path} must be {kind}, got {value!r}")
    if origin is dict and not isinstance(value, dict):
        raise ErcgraphError(f"config: {path} must be a mapping, got {value!r}")
    if hint is str and not isinstance(value, str):
        return str(value)
    return value


def _section(dotted: str) -> tuple[type | None, bool]:
    """What ``dotted`` names in :class:`Config`: ``(dataclass, False)`` for a section
    (``model``, ``features.text``, ``features.files.audio``), ``(dataclass, True)`` for a list
    of them (``loss``), ``(None, False)`` for a value or a key that does not exist."""
    keys = dotted.split(".")
    node: Any = Config
    entries = False  # node is the value type of a dict[str, Section]: the key is an entry name
    for i, key in enumerate(keys):
        last = i == len(keys) - 1
        if entries:
            entries = False
            if last:
                return node, False
            continue
        if not (isinstance(node, type) and is_dataclass(node)):
            return None, False
        hint = get_type_hints(node).get(key)
        if hint is None:
            return None, False
        args = [a for a in get_args(hint) if a is not type(None)]
        if type(None) in get_args(hint) and len(args) == 1:
            hint = args[0]  # X | None
        origin, args = get_origin(hint), get_args(hint)
        if origin is list and args and is_dataclass(args[0]):
            return (args[0], True) if last else (None, False)
        if origin is dict and len(args) == 2 and is_dataclass(args[1]):
            node, entries = args[1], True
            if last:
                return None, False
        else:
            node = hint
    return (node, False) if isinstance(node, type) and is_dataclass(node) else (None, False)


def _override(raw: dict, dotted: str, value: Any) -> None:
    """``--set dotted=value``: a section's value is merged key by key (``--set model={hidden:
    64}`` is ``--set model.hidden=64``); anything but a mapping for a section is refused, since
    it would silently reset every key of the section to its default."""
    section, many = _section(dotted)
    if section is not None and not many:
        if not isinstance(value, dict):
            first = fields(section)[0].name
            given = "" if value is None else repr(value)
            raise ErcgraphError(
                f"--set {dotted}={given}: {dotted} is a section of "
                f"the config, not a value; set its keys, e.g. --set {dotted}.{first}=..."
            )
        for key, item in value.items():
            _override(raw, f"{dotted}.{key}", item)
        return
    if many and value is None:
        raise ErcgraphError(
            f"--set {dotted}=: {dotted} is a list of entries; give at least one, e.g. "
            f"--set {dotted}=[{{name: ...}}]"
        )
    _set_path(raw, dotted, value)


def _set_path(raw: dict, dotted: str, value: Any) -> None:
    keys = dotted.split(".")
    node = raw
    for key in keys[:-1]:
        if node.get(key) is None:
            node[key] = {}
        node = node[key]
        if not isinstance(node, dict):
            raise ErcgraphError(f"--set {dotted}: {key!r} is not a section")
    node[keys[-1]] = value


def parse_override(text: str) -> tuple[str, Any]:
    """Parse ``a.b=c`` into ``("a.b", value)``, the value read as YAML."""
    if "=" not in text:
        raise ErcgraphError(f"--set expects key=value, got {text!r}")
    key, _, val = text.partition("=")
    try:
        return key.strip(), read_value(val) if val.strip() else None
    except yaml.YAMLError as exc:
        raise ErcgraphError(
            f"--set {text!r}: the value is not valid YAML ({yaml_problem(exc)}); quote it or fix "
            "the brackets"
        ) from None


def load_config(
    path: str | Path | None = None, overrides: list[str] | tuple[str, ...] = (), **direct: Any
) -> Config:
    """Read a YAML config, apply ``--set`` overrides and direct values, and validate."""
    raw: dict[str, Any] = {}
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise ErcgraphError(f"config file not found: {str(path)!r}")
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise ErcgraphError(f"config {str(path)!r} cannot be read: {exc}") from None
        raw = read_yaml(text, f"config {str(path)!r}") or {}
        if not isinstance(raw, dict):
            raise ErcgraphError(f"config {str(path)!r} must be a mapping at the top level")
    for item in overrides:
        key, value = parse_override(item)
        _override(raw, key, value)
    for key, value in direct.items():
        if value is not None:
            _set_path(raw, key, value)
    cfg = _build(Config, raw, "")
    validate(cfg)
    return cfg


#: section.key → (lowest allowed, highest allowed or None, high end excluded)
#: Sizes have a ceiling so that a typo (``model.hidden: 1000000000000``) is refused here, not
#: by the allocator after the run folder exists; ``train.threads`` and ``train.jobs`` stop at a
#: fixed 1024 (not a multiple of this machine's cores: a saved config must stay valid when the
#: run is evaluated on a smaller machine), far above any CPU's cores and far below the tens of
#: thousands of threads that crash OpenMP.
_RANGES: dict[str, tuple[float, float | None, bool]] = {
    "model.hidden": (1, 65536, False),
    "model.intra_layers": (0, 256, False),
    "model.cross_layers": (0, 256, False),
    "model.heads": (1, 1024, False),
    "model.dropout": (0.0, 1.0, True),
    "model.max_speakers": (1, 65536, False),
    "train.epochs": (1, None, False),
    "train.batch_size": (1, None, False),
    "train.weight_decay": (0.0, None, False),
    "train.patience": (1, None, False),
    "train.grad_clip": (0.0, None, False),
    "train.jobs": (1, 1024, False),
    "train.threads": (1, 1024, False),
    "train.min_steps": (0, 1_000_000, False),
    "augment.hidden": (1, 65536, False),
    "augment.noise": (1, 65536, False),
    "multitask.mask_ratio": (0.0, 1.0, True),
    "multitask.weight": (0.0, None, False),
    "features.speaker_min": (2, None, False),
}


#: the largest integer anywhere in a config (seeds, sizes, counts, plug-in options): numpy
#: seeds stop at 2**32 - 1, and C ints in torch and OpenMP at 2**31 - 1
INT_MAX = 2**31 - 1


def _check_numbers(node: Any, path: str) -> None:
    """Every number anywhere in the config must be finite (NaN passes every ``<``/``>`` range
    check, and ``.inf`` is no setting: ``null`` is how a key says "no limit"), and every
    integer at most :data:`INT_MAX` in size: typed keys and free ones alike (a builder's
    ``w_past``, ``model.options``, a loss term's or the sampler's ``options``), since a plug-in
    hands them to torch or numpy, whose C integers overflow with a traceback after the run
    folder exists. Walks sections, lists and mappings, naming the first offending key."""
    if is_dataclass(node):
        for f in fields(node):
            _check_numbers(getattr(node, f.name), f"{path}.{f.name}" if path else f.name)
    elif isinstance(node, dict):
        for key, value in node.items():
            _check_numbers(value, f"{path}.{key}")
    elif isinstance(node, (list, tuple)):
        for i, value in enumerate(node):
            _check_numbers(value, f"{path}[{i}]")
    elif isinstance(node, float) and not math.isfinite(node):
        raise ErcgraphError(f"config: {path} must be a finite number, got {node!r}")
    elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > INT_MAX:
        raise ErcgraphError(f"config: {path} must be at most {INT_MAX} in magnitude, got {node!r}")


def validate(cfg: Config) -> None:
    """Range checks that need no registry: every value that makes no sense is refused up front,
    naming the key and the allowed range."""
    if not isinstance(cfg.imports, list) or not all(
        isinstance(p, str) and p.strip() for p in cfg.imports
    ):
        raise ErcgraphError(
            f"config: imports must be a list of Python file paths, got {cfg.imports!r}"
        )
    for dotted, (lo, hi, hi_open) in _RANGES.items():
        value = cfg
        for key in dotted.split("."):
            value = getattr(value, key)
        if value is None:
            continue
        if value < lo or (hi is not None and (value >= hi if hi_open else value > hi)):
            rng = f">= {lo}" + ("" if hi is None else f" and {'<' if hi_open else '<='} {hi}")
            raise ErcgraphError(f"config: {dotted} must be {rng}, got {value!r}")
    if not (cfg.train.lr > 0 and math.isfinite(cfg.train.lr)):
        raise ErcgraphError(f"config: train.lr must be a finite number > 0, got {cfg.train.lr!r}")
    _check_numbers(cfg, "")  # after the checks above, whose messages say more; NaN passes them
    if cfg.features.normalise not in NORMALISERS:
        raise ErcgraphError(
            f"config: features.normalise must be one of {list(NORMALISERS)}, "
            f"got {cfg.features.normalise!r}"
        )
    if not cfg.train.seeds:
        raise ErcgraphError("config: train.seeds is empty; give at least one seed, e.g. [0]")
    bad_seeds = [
        s for s in cfg.train.seeds if isinstance(s, bool) or not isinstance(s, int) or s < 0
    ]
    if bad_seeds:
        raise ErcgraphError(f"config: train.seeds must be integers >= 0, got {bad_seeds}")
    if len(set(cfg.train.seeds)) != len(cfg.train.seeds):
        raise ErcgraphError(f"config: train.seeds lists a seed twice: {cfg.train.seeds}")
    if not isinstance(cfg.train.baselines, list) or any(
        b not in BASELINES for b in cfg.train.baselines
    ):
        raise ErcgraphError(
            f"config: train.baselines must be a list of {list(BASELINES)} (or [] for none), "
            f"got {cfg.train.baselines!r}"
        )
    if not isinstance(cfg.train.log_to, list) or any(b not in LOG_TO for b in cfg.train.log_to):
        raise ErcgraphError(
            f"config: train.log_to must be a list of {list(LOG_TO)} (or [] for none), "
            f"got {cfg.train.log_to!r}"
        )
    _validate_protocol(cfg)
    if cfg.graph.edge_types == [] or not cfg.graph.builders:
        # legal (an ablation baseline), but a graph model without edges is easily mistaken
        # for a graph model: say so rather than refuse
        key, fix = (
            ("graph.edge_types", "null keeps every edge type of the builders")
            if cfg.graph.edge_types == []
            else ("graph.builders", "list at least one builder, e.g. [temporal, speaker]")
        )
        log.warning(
            "config: %s is []: the graph has no edges, so the model sees every utterance alone, "
            "without its dialogue context (like an MLP over its features); %s",
            key,
            fix,
        )
    for m, spec in cfg.features.files.items():
        if not spec.path:
            raise ErcgraphError(f"config: features.files.{m}.path is not set")
        cols = spec.columns
        if cols is not None and (
            len(cols) != 2
            or any(isinstance(c, bool) or not isinstance(c, int) for c in cols)
            or not 0 <= cols[0] < cols[1]
        ):
            raise ErcgraphError(
                f"config: features.files.{m}.columns must be [start, end) with 0 <= start < end, "
                f"got {cols!r}"
            )
    for i, term in enumerate(cfg.loss):
        if term.weight < 0:
            raise ErcgraphError(f"config: loss[{i}].weight must be >= 0, got {term.weight}")
    _validate_text(cfg.features.text)
    _validate_decision(cfg.decision)
    if cfg.augment.enabled:
        from ercgraph.augment import check

        check(cfg.augment)


def _validate_text(text: TextFeatureConfig) -> None:
    from ercgraph.encoders.context import check_window

    check_window(text.context_turns, text.future_turns, text.pool, "features.text")
    if text.finetune.enabled:
        from ercgraph.encoders.finetune import check_finetune

        check_finetune(text.finetune)


def _validate_decision(d: DecisionConfig) -> None:
    from ercgraph.decision import OBJECTIVES, RULES

    if d.rule not in RULES:
        raise ErcgraphError(f"config: decision.rule must be one of {list(RULES)}, got {d.rule!r}")
    if d.objective not in OBJECTIVES:
        raise ErcgraphError(
            f"config: decision.objective must be one of {list(OBJECTIVES)}, got {d.objective!r}"
        )
    if d.max_weighted_f1_drop is not None and not d.max_weighted_f1_drop >= 0:
        raise ErcgraphError(
            "config: decision.max_weighted_f1_drop must be >= 0 points (or null), got "
            f"{d.max_weighted_f1_drop!r}"
        )


def _validate_protocol(cfg: Config) -> None:
    p = cfg.protocol
    if p.name not in PROTOCOLS:
        raise ErcgraphError(
            f"config: protocol.name must be one of {list(PROTOCOLS)}, got {p.name!r}"
        )
    if p.name == "split":
        extra = [k for k in ("group", "folds", "dev_groups", "fold") if getattr(p, k) is not None]
        if extra:
            raise ErcgraphError(
                f"config: protocol.{extra[0]} is only read by protocol.name: group_kfold "
                "(the split protocol uses the reader's train/dev/test split)"
            )
        return
    if not p.group:
        raise ErcgraphError(
            "config: protocol group_kfold needs protocol.group, the Corpus column whose values "
            "are the groups (e.g. session, speaker, actor)"
        )
    if p.folds is not None and p.folds < 2:
        raise ErcgraphError(
            f"config: protocol.folds must be >= 2 (or null for one fold per group), got {p.folds}"
        )
    if p.fold is not None and p.fold < 0:
        raise ErcgraphError(f"config: protocol.fold must be >= 0, got {p.fold}")
    if p.dev_groups is not None and p.dev_groups < 1:
        raise ErcgraphError(
            f"config: protocol.dev_groups must be >= 1 (dev selects the epoch), got {p.dev_groups}"
        )
    if cfg.features.text.finetune.enabled and "text" in cfg.features.modalities:
        raise ErcgraphError(
            "config: features.text.finetune cannot be combined with protocol group_kfold: the "
            "encoder would be fine-tuned on rows that other folds test on; use frozen text "
            "features, or the split protocol"
        )


def effective_heads(cfg: Config) -> list[Any]:
    """``heads`` plus the reconstruction head that ``multitask.enabled`` asks for."""
    heads = list(cfg.heads)
    if cfg.metrics.exclude_label is not None:
        heads = [
            {"name": "emotion", "exclude_label": cfg.metrics.exclude_label}
            if h == "emotion"
            else {**h, "exclude_label": cfg.metrics.exclude_label}
            if isinstance(h, dict) and h.get("name") == "emotion"
            else h
            for h in heads
        ]
    names = [h if isinstance(h, str) else h.get("name") for h in heads]
    if cfg.multitask.enabled and "reconstruction" not in names:
        heads.append(
            {
                "name": "reconstruction",
                "mask_ratio": cfg.multitask.mask_ratio,
                "mode": cfg.multitask.mode,
            }
        )
    return heads


def effective_loss(cfg: Config) -> list[LossConfig]:
    """``loss`` terms plus the reconstruction term that ``multitask.enabled`` asks for."""
    terms = list(cfg.loss)
    if cfg.multitask.enabled and not any(t.name == "reconstruction" for t in terms):
        terms.append(LossConfig("reconstruction", cfg.multitask.weight))
    return terms


def data_root(cfg: Config) -> Path | None:
    """The data root: the config's ``data_root``, else ``$ERCGRAPH_DATA``, else None."""
    root = cfg.data_root or os.environ.get("ERCGRAPH_DATA")
    if not root:
        return None
    p = Path(root).expanduser()
    if not p.is_dir():
        src = "data_root / --data-root" if cfg.data_root else "ERCGRAPH_DATA"
        raise ErcgraphError(f"data root {str(p)!r} (from {src}) is not a directory")
    return p


def resolve_data_path(rel: str | Path | None, root: Path | None, what: str = "data.path") -> Path:
    """Resolve a data path: absolute as is, relative against the data root (else the cwd).

    Raises:
        ErcgraphError: when the path is unset or does not exist (naming the config key).
    """
    if rel is None:
        raise ErcgraphError(f"config: {what} is not set")
    p = Path(rel).expanduser()
    if not p.is_absolute() and root is not None:
        p = root / p
    if not p.exists():
        hint = (
            "check --data-root / ERCGRAPH_DATA" if not Path(rel).is_absolute() else "check the path"
        )
        raise ErcgraphError(f"{what}: {str(p)!r} does not exist ({hint})")
    return p


def cache_dir(cfg: Config) -> Path:
    """Cache folder: config ``cache_dir``, else ``$ERCGRAPH_CACHE``, else ``~/.cache/ercgraph``."""
    d = cfg.cache_dir or os.environ.get("ERCGRAPH_CACHE") or "~/.cache/ercgraph"
    return Path(d).expanduser()


def dump_config(cfg: Config) -> str:
    return yaml.safe_dump(cfg.to_dict(), sort_keys=False)
