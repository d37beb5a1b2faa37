"""Embedding: :class:`ImageEncoder`, a transformers vision model from a local folder.

ViT-style models give their pooler output, CLS token or token mean; CLIP gives its projected
image embedding (as ``CLIPModel.get_image_features``). transformers is imported when a model is
loaded.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np
import torch

from ercgraph.encoders.visual.common import _file_digest, _first_line
from ercgraph.errors import ErcgraphError

log = logging.getLogger(__name__)

FEATURES = ("auto", "projection", "pooler", "cls", "mean")


def _model_folder(name_or_path: str | Path) -> Path:
    """The resolved model folder; an error unless it is an existing folder."""
    path = Path(name_or_path).expanduser()
    if not path.exists():
        raise ErcgraphError(f"visual encoder: model path {str(name_or_path)!r} does not exist")
    if not path.is_dir():
        raise ErcgraphError(
            f"visual encoder: model path {str(name_or_path)!r} is not a "
            f"folder (expected a saved transformers model)"
        )
    return path.resolve()


class ImageEncoder:
    """RGB images → a transformers vision model → one vector per image.

    The model is read from a local folder holding its ``config.json``, weights and
    ``preprocessor_config.json`` (the image processor resizes and normalises the images). How an
    image becomes a vector (``features``):

    - ``projection``: the image embedding of a CLIP-style model (``model_type`` ``clip``, loaded
      as ``CLIPVisionModelWithProjection`` without its text tower; or any model with
      ``get_image_features``), the vector CLIP compares with text;
    - ``pooler``: the model's ``pooler_output`` (ViT: tanh dense layer on the CLS token; CLIP
      vision tower: the layer-normed CLS token; CNNs: global average pool);
    - ``cls``: the first output token; ``mean``: the mean of all output tokens (of the spatial
      map for CNNs);
    - ``auto`` (default): ``projection`` where the model has one, else ``pooler`` when the model
      returns it and its weights were in the checkpoint, else ``cls`` (``mean`` for CNNs).
      ``features`` then holds the choice made, and ``repr`` shows it.

    Args:
        name_or_path: Local model folder.
        features: ``auto``, ``projection``, ``pooler``, ``cls`` or ``mean`` (see above).
        batch_size: Images per forward pass.
        device: ``cpu``, ``cuda``, ...; ``None`` picks CUDA when available.

    Raises:
        ErcgraphError: if the folder does not exist or cannot be loaded, or an option is invalid
            or does not fit the model.
    """

    def __init__(
        self,
        name_or_path: str | Path,
        features: str = "auto",
        batch_size: int = 32,
        device: str | None = None,
    ) -> None:
        if features not in FEATURES:
            raise ErcgraphError(
                f"visual encoder: features must be one of {list(FEATURES)}, got {features!r}"
            )
        if int(batch_size) < 1:
            raise ErcgraphError(f"visual encoder: batch_size must be >= 1, got {batch_size}")
        self.name_or_path = str(_model_folder(name_or_path))
        self.batch_size = int(batch_size)
        no_pooler = self._load(features)
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        self.model.to(self.device)
        if self.device.type == "cpu" and self.model.dtype in (torch.float16, torch.bfloat16):
            self.model.float()
        self.model.eval()
        # a probe image settles `auto`, checks the model and processor work together, and
        # gives the output size
        probe = [np.full((64, 64, 3), 128, np.uint8)]
        self.features = self._settle_features(features, no_pooler, probe)
        self.dim = int(self.embed_images(probe).shape[1])
        self._fingerprint: str | None = None

    def _load(self, features: str) -> bool:
        """Load config, image processor and model; check ``features`` fits the model.

        Returns:
            True when the checkpoint lacks the weights of the model's pooler.
        """
        from transformers import AutoConfig, AutoImageProcessor, AutoModel
        from transformers.utils import logging as hf_logging

        where = self.name_or_path
        try:
            config = AutoConfig.from_pretrained(where)
        except (OSError, ValueError, KeyError) as exc:
            raise ErcgraphError(
                f"could not load visual encoder {where!r}: {_first_line(exc)}"
            ) from exc
        self.model_type = str(config.model_type)
        try:
            self.processor = AutoImageProcessor.from_pretrained(where)
        except (OSError, ValueError, KeyError, ImportError) as exc:
            raise ErcgraphError(
                f"could not load the image processor of visual encoder "
                f"{where!r} (expected a preprocessor_config.json): "
                f"{_first_line(exc)}"
            ) from exc
        verbosity = hf_logging.get_verbosity()
        try:
            if self.model_type == "clip":
                from transformers import CLIPVisionModelWithProjection

                # the vision tower's config does not carry the projection size of the pair
                vision = config.vision_config
                vision.projection_dim = config.projection_dim
                hf_logging.set_verbosity_error()  # the skipped text tower is expected
                model, info = CLIPVisionModelWithProjection.from_pretrained(
                    where, config=vision, output_loading_info=True
                )
                self._head = "projection"
            else:
                model, info = AutoModel.from_pretrained(where, output_loading_info=True)
                self._head = "image_features" if hasattr(model, "get_image_features") else "forward"
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise ErcgraphError(
                f"could not load visual encoder {where!r}: {_first_line(exc)}"
            ) from exc
        finally:
            hf_logging.set_verbosity(verbosity)
        self.model = model
        missing = sorted(info.get("missing_keys", ()))
        no_pooler = any(k.startswith("pooler.") for k in missing)
        others = [k for k in missing if not k.startswith("pooler.")]
        if others or (no_pooler and features == "pooler"):
            log.warning(
                "visual encoder %s: %d weights are not in the checkpoint and were "
                "randomly initialised (%s)",
                where,
                len(missing),
                ", ".join(missing[:5]),
            )
        if self._head == "image_features" and features not in ("auto", "projection"):
            raise ErcgraphError(
                f"visual encoder {where!r}: a {self.model_type} model only gives "
                f"its image embedding; use features 'auto' or 'projection', "
                f"not {features!r}"
            )
        if self._head == "forward" and features == "projection":
            raise ErcgraphError(
                f"visual encoder {where!r}: a {self.model_type} model has no "
                f"image projection; use 'auto', 'pooler', 'cls' or 'mean'"
            )
        return no_pooler

    def _settle_features(self, features: str, no_pooler: bool, probe: list[np.ndarray]) -> str:
        """What ``auto`` means for this model (other choices are kept as given)."""
        if features != "auto":
            return features
        if self._head != "forward":
            return "projection"
        with torch.inference_mode():
            out = self.model(pixel_values=self._pixels(probe))
        if getattr(out, "pooler_output", None) is not None and not no_pooler:
            return "pooler"
        return "mean" if out.last_hidden_state.dim() == 4 else "cls"

    def _pixels(self, images: list[np.ndarray]) -> torch.Tensor:
        """The processed batch ``[B, 3, H, W]`` of RGB images, on the model's device."""
        batch = self.processor(
            images=images, return_tensors="pt", input_data_format="channels_last"
        )
        return batch["pixel_values"].to(self.device, dtype=self.model.dtype)

    def _forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        """Vectors ``[B, D]`` of a batch of processed images."""
        if self._head == "image_features":
            out = self.model.get_image_features(pixel_values=pixel_values)
            return out if torch.is_tensor(out) else out.pooler_output
        out = self.model(pixel_values=pixel_values)
        if self.features == "projection":
            return out.image_embeds
        if self.features == "pooler":
            pooled = getattr(out, "pooler_output", None)
            if pooled is None:
                raise ErcgraphError(
                    f"visual encoder {self.name_or_path!r}: the model returns "
                    f"no pooler_output; use features 'cls' or 'mean'"
                )
            return pooled.flatten(1)
        hidden = out.last_hidden_state
        if hidden.dim() == 4:  # a CNN's feature map [B, C, H, W]
            if self.features == "cls":
                raise ErcgraphError(
                    f"visual encoder {self.name_or_path!r}: a convolutional "
                    f"model has no CLS token; use features 'pooler' or 'mean'"
                )
            return hidden.mean((2, 3))
        return hidden[:, 0] if self.features == "cls" else hidden.mean(1)

    def embed_images(self, images: list[np.ndarray]) -> torch.Tensor:
        """Embed RGB ``uint8`` images ``[h, w, 3]`` into a float32 tensor ``[n, dim]`` (CPU)."""
        chunks = []
        with torch.inference_mode():
            for i in range(0, len(images), self.batch_size):
                pixels = self._pixels(images[i : i + self.batch_size])
                chunks.append(self._forward(pixels).float().cpu())
        if not chunks:
            return torch.empty((0, getattr(self, "dim", 0)), dtype=torch.float32)
        return torch.cat(chunks)

    def fingerprint(self) -> str:
        """Content hash of the model folder (weights, config) and its image processor config."""
        if self._fingerprint is None:
            from ercgraph.encoders.text import encoder_fingerprint

            h = hashlib.sha256(encoder_fingerprint(self.name_or_path).encode())
            h.update(
                str(_file_digest(Path(self.name_or_path) / "preprocessor_config.json")).encode()
            )
            self._fingerprint = h.hexdigest()[:20]
        return self._fingerprint

    def __repr__(self) -> str:
        return (
            f"ImageEncoder({self.name_or_path!r}, features={self.features!r}, "
            f"batch_size={self.batch_size}, device={str(self.device)!r})"
        )
