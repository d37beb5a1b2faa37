"""Encoders that turn utterances into feature vectors: text (transformers, optionally
fine-tuned), audio (soundfile/PyAV, Kaldi features, openSMILE, transformers audio models) and
visual (frames, faces, transformers vision models)."""

from ercgraph.encoders.extract import extract_text_features, text_manifest
from ercgraph.encoders.finetune import finetune_settings, finetune_text_encoder
from ercgraph.encoders.text import (
    TextEncoder,
    build_inputs,
    default_text_model_path,
    encoder_fingerprint,
    resolve_model,
)

__all__ = [
    "TextEncoder",
    "build_inputs",
    "default_text_model_path",
    "encoder_fingerprint",
    "extract_text_features",
    "finetune_settings",
    "finetune_text_encoder",
    "resolve_model",
    "text_manifest",
]
