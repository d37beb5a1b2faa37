"""Extraction throughput of every audio and visual encoder through the corpus pipeline.

Audio: the 7 real EmoDB clips (shared data), repeated to a 280-utterance corpus. Visual: 48
synthetic 2-second 224x224 10 fps clips written by the bench. Each encoder runs in-process (one
worker, the baseline) and with two worker processes (both cores), in the same run, on a fresh
cache; the table gives utterances per second (wall time, including the ~5-10 s it takes two
spawned workers to import torch and load the model, which a 13k-utterance corpus amortises),
the speed-up of two workers, and peak RSS (this process and its children). Model encoders use
randomly initialised models of real architectures built from transformers configs
(wav2vec2-base, ViT-B/16, CLIP ViT-B/32 vision tower): no weights are downloaded, and the
timings are those of the real sizes.

Usage: python bench/extract_throughput.py [--quick]
Writes bench/results/extract_throughput.json (extract_throughput_quick.json with --quick, with
bench/common.py's write_result) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

try:
    from bench.common import write_result
except ImportError:  # run as a script: bench/ itself is on sys.path
    from common import write_result


def peak_rss_mb() -> float:
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    kids = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return max(own, kids) / 1024


def corpus_of(paths: list[str], column: str):
    from ercgraph.data.corpus import Corpus

    df = pd.DataFrame(
        {
            "split": "unlabelled",
            "dialogue_id": [f"d{i // 8}" for i in range(len(paths))],
            "turn": [i % 8 for i in range(len(paths))],
            "speaker": "s",
            "label": None,
            column: paths,
        }
    )
    return Corpus(df, "bench", ("x",))


def build_models(work: Path, quick: bool) -> dict[str, Path]:
    import torch
    from transformers import (
        CLIPImageProcessor,
        CLIPVisionConfig,
        CLIPVisionModel,
        ViTConfig,
        ViTImageProcessor,
        ViTModel,
        Wav2Vec2Config,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2Model,
    )

    torch.manual_seed(0)
    small = (
        dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=128)
        if quick
        else {}
    )
    out = {}
    p = work / "wav2vec2-base"
    Wav2Vec2Model(Wav2Vec2Config(**small)).save_pretrained(p)
    Wav2Vec2FeatureExtractor().save_pretrained(p)
    out["wav2vec2-base"] = p
    p = work / "vit-b16"
    ViTModel(ViTConfig(**small), add_pooling_layer=False).save_pretrained(p)
    ViTImageProcessor().save_pretrained(p)
    out["vit-b16"] = p
    p = work / "clip-b32-vision"
    CLIPVisionModel(CLIPVisionConfig(patch_size=32, **small)).save_pretrained(p)
    CLIPImageProcessor().save_pretrained(p)
    out["clip-b32-vision"] = p
    return out


def main() -> None:
    from ercgraph.config import AudioFeatureConfig, VisualFeatureConfig
    from ercgraph.encoders.media_extract import extract_media_features
    from tests.encoders.media_fixtures import write_mp4

    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="tiny models, fewer clips (smoke test)")
    args = ap.parse_args()
    data = Path(os.environ.get("ERCGRAPH_DATA", REPO.parent / "shared" / "data"))
    wavs = sorted(str(p) for p in (data / "emodb_samples" / "wav").glob("*.wav"))
    if not wavs:
        raise SystemExit(f"no EmoDB clips under {data / 'emodb_samples/wav'}")
    work = Path(tempfile.mkdtemp(prefix="ercgraph-extract-bench-"))
    models = build_models(work, args.quick)
    audio_corpus = corpus_of(wavs * (2 if args.quick else 40), "audio_path")
    n_video = 8 if args.quick else 48
    videos = [
        str(
            write_mp4(
                work / f"clip{i}.mp4", freq=300 + 10 * i, seconds=2.0, fps=10, size=(224, 224)
            )
        )
        for i in range(n_video)
    ]
    video_corpus = corpus_of(videos, "video_path")
    encoders = [
        ("audio", "fbank"),
        ("audio", "mfcc"),
        ("audio", "opensmile:IS09"),
        ("audio", "opensmile:IS10"),
        ("audio", "opensmile:eGeMAPS"),
        ("audio", "opensmile:ComParE"),
        ("audio", f"hf:{models['wav2vec2-base']}"),
        ("visual", str(models["vit-b16"])),
        ("visual", str(models["clip-b32-vision"])),
    ]
    rows = []
    for modality, spec in encoders:
        corpus = audio_corpus if modality == "audio" else video_corpus
        row = {
            "modality": modality,
            "encoder": spec.replace(str(work) + "/", ""),
            "utterances": corpus.num_utterances,
        }
        for workers in (1, 2):
            cache = Path(tempfile.mkdtemp(dir=work))
            cfg = (
                AudioFeatureConfig(encoder=spec, workers=workers, chunk_size=20)
                if modality == "audio"
                else VisualFeatureConfig(
                    encoder=spec, workers=workers, chunk_size=6, fps=2.0, max_frames=4, face=True
                )
            )
            t0 = time.perf_counter()
            store, info = extract_media_features(corpus, modality, cfg, cache, progress=False)
            secs = time.perf_counter() - t0
            row[f"utt_per_s_{workers}w"] = corpus.num_utterances / secs
            row["dim"] = store.dims()[modality]
            row["failed"] = info["failed"]
        row["speedup_2w"] = row["utt_per_s_2w"] / row["utt_per_s_1w"]
        row["peak_rss_mb_so_far"] = peak_rss_mb()
        rows.append(row)
        print(f"{row['encoder']}: {row['utt_per_s_2w']:.1f} utt/s", flush=True)
    result = {
        "quick": args.quick,
        "baseline": "1 worker (in-process), same run",
        "audio_corpus": "7 EmoDB clips (shared data) repeated",
        "video_corpus": f"{n_video} synthetic 2 s 224x224 10 fps clips, sampled at 2 fps, "
        "max 4 frames",
        "rows": rows,
    }
    dest = write_result("extract_throughput_quick" if args.quick else "extract_throughput", result)
    print(
        "\n| modality | encoder | dim | utt/s, 1 worker | utt/s, 2 workers | speed-up | "
        "peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['modality']} | {r['encoder']} | {r['dim']} | {r['utt_per_s_1w']:.1f} | "
            f"{r['utt_per_s_2w']:.1f} | {r['speedup_2w']:.2f}x | "
            f"{r['peak_rss_mb_so_far']:.0f} |"
        )
    print(f"\nWrote {dest}.")


if __name__ == "__main__":
    main()
