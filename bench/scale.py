"""Scale: a faster epoch against an MMGCN-style trainer, the cost curve to 1M utterances, DDP
and sharded extraction under torchrun. One invocation writes bench/results/scale.json; every
measurement runs in a fresh child process (so each row's peak RSS is its own).

Tables (each measured in this one run, its baseline beside it):

* **epoch** (1 thread): MELD's real dialogue structure (all 13,708 utterances, speakers, train
  split for training) with synthetic features at MELD's published dims (text 384 as MiniLM,
  audio 1582 as IS10, visual 342 as DenseNet). Rows: the MMGCN-style reference trainer
  (bench/mmgcn_reference.py, our rewrite of the original training pattern), ercgraph's MMGCN
  (``meld_mmgcn.yaml``'s model and graph: the same architecture) and ercgraph's default
  hierarchical GCN on the three modalities. Epoch = the training loop of the second epoch
  (forward, loss, backward, optimiser), the first warms up. Peak RSS, and working memory =
  peak RSS above the process's RSS right after ``import torch, torch_geometric`` (the floor).
  Also: the all-MELD graph build (``build_graph_set``, what training batches from, and
  ``build_graphs``, one HeteroData per dialogue), best of 5, three modalities, default builders.
  Targets: ercgraph epoch <= 0.05x the reference's, working memory <= 0.5x, build < 50 ms.
* **curve**: synthetic corpora of 10k, 100k and 1M utterances made of MELD's own dialogues
  (their lengths and speaker sequences, drawn with replacement), 384-d features saved as a
  FeatureStore and memory-mapped, text-only hierarchical GCN (``meld_text.yaml``), batch 32.
  Graph build seconds, epoch seconds (one epoch), peak RSS; the fitted exponent of each against
  utterances (log-log least squares). Target: linear (exponent ~1) and 1M within 24 GiB.
* **ddp** (100k corpus): ``ercgraph train`` on 1 process against ``torchrun --nproc-per-node
  2`` with the same global batch; epoch seconds (rank 0) and speed-up. The communication share
  is estimated from the gradient all-reduce alone: the model's parameters all-reduced once per
  step (timed under torchrun on 2 gloo ranks) times the steps of an epoch, over the 2-process
  epoch.
* **extract**: the real EmoDB clips repeated to ``--clips`` rows, ``opensmile:IS10`` audio
  features, ``ercgraph extract`` on 1 process against 2 torchrun ranks (one worker each); the
  seconds, the speed-up and whether every cached chunk is bit-identical.

A GPU row is recorded only when run where CUDA is available (``--gpu``); CI never needs one.

Usage: python bench/scale.py [--sizes 10000,100000,1000000] [--parts epoch,curve,ddp,extract]
       [--clips 300] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench.common import data_root, print_table, write_result  # noqa: E402

DIMS = {"text": 384, "audio": 1582, "visual": 342}
MMGCN_SETS = [
    "features.modalities=[text, audio, visual]",
    "graph.builders=[{name: temporal, w_past: -1, w_future: -1}, {name: modality}]",
    "model={name: mmgcn, hidden: 128, dropout: 0.4, intra_layers: 2, fusion: concat, "
    "options: {layers: 4, alpha: 0.1, lamda: 0.5, edge_weighting: angular, "
    "context_modalities: [text]}}",
    "train={epochs: 2, batch_size: 16, lr: 0.001, weight_decay: 0.0, seeds: [0], threads: 1, "
    "patience: 10}",
]
HIER_SETS = [
    "features.modalities=[text, audio, visual]",
    "train.epochs=2",
    "train.seeds=[0]",
    "train.threads=1",
]
TARGET_EPOCH_RATIO = 0.05
TARGET_MEMORY_RATIO = 0.5
TARGET_BUILD_S = 0.05


# -- children -----------------------------------------------------------------------------------
def _rss() -> dict[str, float]:
    """Current and peak RSS, MiB (from /proc/self/status: VmRSS, VmHWM, RssAnon)."""
    out = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM", "RssAnon"):
            out[key] = int(value.split()[0]) / 1024
    return out


def _floor() -> float:
    import torch  # noqa: F401
    import torch_geometric  # noqa: F401

    return _rss()["VmRSS"]


def _meld_corpus():
    from ercgraph.config import load_config
    from ercgraph.data.load import load_corpus

    return load_corpus(load_config(REPO / "configs/meld_text.yaml", []))


def _synthetic_store(n: int, dims: dict[str, int]):
    import torch

    from ercgraph.data.features import FeatureStore

    gen = torch.Generator().manual_seed(0)
    return FeatureStore({m: torch.randn(n, d, generator=gen) for m, d in dims.items()})


def child_reference() -> dict:
    floor = _floor()
    import torch

    from bench.mmgcn_reference import Dialogue, train_epochs

    torch.set_num_threads(1)
    corpus = _meld_corpus()
    store = _synthetic_store(corpus.num_utterances, DIMS)
    df = corpus.df
    labels = torch.from_numpy(corpus.label_ids())
    dialogues, start = [], 0
    speakers = df["speaker"].astype(str).tolist()
    for n in df.groupby("dialogue_id", sort=False).size().tolist():
        if df["split"].iloc[start] == "train":
            names = speakers[start : start + n]
            local = {s: i for i, s in enumerate(dict.fromkeys(names))}
            dialogues.append(
                Dialogue(
                    {m: store.features[m][start : start + n] for m in DIMS},
                    torch.tensor([local[s] for s in names]) % 9,
                    labels[start : start + n],
                )
            )
        start += n
    seconds = train_epochs(dialogues, DIMS, len(corpus.labels), 9, epochs=2, batch_size=16)
    return {"epoch_s": seconds[-1], "epochs_s": seconds, "floor_mb": floor, **_rss()}


def child_ercgraph(sets: list[str]) -> dict:
    floor = _floor()
    import torch

    from ercgraph.config import load_config
    from ercgraph.pipeline import prepare
    from ercgraph.train import fit_seed

    torch.set_num_threads(1)
    corpus = _meld_corpus()
    store = _synthetic_store(corpus.num_utterances, DIMS)
    cfg = load_config(REPO / "configs/meld_text.yaml", [*sets, "cache_dir=" + tempfile.mkdtemp()])
    prep = prepare(cfg, corpus=corpus, features=store)
    with tempfile.TemporaryDirectory() as tmp:
        result = fit_seed(cfg, prep, 0, Path(tmp) / "s", False)
    seconds = [h["epoch_s"] for h in result["history"]]
    return {"epoch_s": seconds[-1], "epochs_s": seconds, "floor_mb": floor, **_rss()}


def child_build() -> dict:
    import torch

    from bench.common import best_of
    from ercgraph.config import load_config
    from ercgraph.graphs.build import build_graph_set, build_graphs

    torch.set_num_threads(1)
    corpus = _meld_corpus()
    store = _synthetic_store(corpus.num_utterances, DIMS)
    builders = load_config(REPO / "configs/meld_text.yaml", []).graph.builders
    flat_s, gset = best_of(lambda: build_graph_set(corpus, store, builders), 5)
    list_s, _ = best_of(lambda: build_graphs(corpus, store, builders), 5)
    return {
        "build_graph_set_s": flat_s,
        "build_graphs_s": list_s,
        "dialogues": len(gset),
        "utterances": corpus.num_utterances,
        "edges": gset.num_edges(),
    }


def _synthetic_corpus(n: int, seed: int = 0):
    """MELD's dialogues (lengths, speaker sequences, labels) drawn with replacement to ``n``
    utterances (the last one cut to fit); 80/10/10 split by dialogue."""
    import numpy as np
    import pandas as pd

    from ercgraph.data.corpus import Corpus

    meld = _meld_corpus()
    df = meld.df
    sizes = df.groupby("dialogue_id", sort=False).size().to_numpy()
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    rng = np.random.default_rng(seed)
    picks = rng.integers(len(sizes), size=2 * n // int(sizes.min()) + 1)
    lengths = sizes[picks]
    keep = int(np.searchsorted(np.cumsum(lengths), n)) + 1
    picks, lengths = picks[:keep], lengths[:keep].copy()
    lengths[-1] -= int(lengths.sum()) - n
    rows = np.concatenate([np.arange(s, s + k) for s, k in zip(starts[picks], lengths)])
    dialogue = np.repeat(np.arange(keep), lengths)
    split = np.array(["train", "dev", "test"])[rng.choice(3, size=keep, p=[0.8, 0.1, 0.1])]
    frame = pd.DataFrame(
        {
            "split": split[dialogue],
            "dialogue_id": np.char.add("s", dialogue.astype(str)),
            "turn": np.concatenate([np.arange(k) for k in lengths]),
            "speaker": df["speaker"].to_numpy()[rows],
            "label": df["label"].to_numpy()[rows],
        }
    )
    return Corpus(frame, "synthetic", meld.labels)


def _write_store(path: Path, n: int, dim: int, block: int = 65536) -> None:
    """A FeatureStore file of ``n`` random ``dim``-d rows (modality ``text``), written in blocks
    in the safetensors layout (so the features never sit in memory whole)."""
    import hashlib
    import struct

    import numpy as np

    from ercgraph.data.features import FORMAT_VERSION

    x_bytes = n * dim * 4
    header = {
        "text.x": {"dtype": "F32", "shape": [n, dim], "data_offsets": [0, x_bytes]},
        "text.present": {"dtype": "U8", "shape": [n], "data_offsets": [x_bytes, x_bytes + n]},
    }
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    digest = hashlib.sha256()
    rng = np.random.default_rng(0)
    with open(path, "wb") as fh:
        for part in (struct.pack("<Q", len(blob)), blob):
            fh.write(part)
            digest.update(part)
        for lo in range(0, n, block):
            part = rng.standard_normal((min(block, n - lo), dim), dtype=np.float32).tobytes()
            fh.write(part)
            digest.update(part)
        part = np.ones(n, dtype=np.uint8).tobytes()
        fh.write(part)
        digest.update(part)
    meta = {"format": FORMAT_VERSION, "manifest": {}, "sha256": digest.hexdigest()}
    path.with_suffix(".json").write_text(json.dumps(meta))


def child_curve(n: int) -> dict:
    floor = _floor()
    import torch

    from ercgraph.config import load_config
    from ercgraph.data.features import FeatureStore
    from ercgraph.graphs.build import build_graph_set
    from ercgraph.pipeline import prepare
    from ercgraph.train import fit_seed

    torch.set_num_threads(1)
    corpus = _synthetic_corpus(n)
    with tempfile.TemporaryDirectory(dir=os.environ.get("ERCGRAPH_BENCH_TMP")) as tmp:
        path = Path(tmp) / "features.safetensors"
        _write_store(path, corpus.num_utterances, 384)
        store = FeatureStore.load(path, mmap=True)
        cfg = load_config(
            REPO / "configs/meld_text.yaml",
            ["train.epochs=1", "train.seeds=[0]", "train.threads=1", f"cache_dir={tmp}"],
        )
        t0 = time.perf_counter()
        gset = build_graph_set(corpus, store, cfg.graph.builders)
        build_s = time.perf_counter() - t0
        edges = gset.num_edges()
        del gset
        prep = prepare(cfg, corpus=corpus, features=store)
        result = fit_seed(cfg, prep, 0, Path(tmp) / "s", False)
    return {
        "utterances": corpus.num_utterances,
        "dialogues": int(corpus.df["dialogue_id"].nunique()),
        "edges": edges,
        "build_s": build_s,
        "epoch_s": result["history"][0]["epoch_s"],
        "floor_mb": floor,
        **_rss(),
    }


def child_allreduce(params: int, steps: int) -> dict | None:
    """Seconds per step of the gradient all-reduce (and the loss-weight scalar) on the gloo
    group torchrun set up; the slowest rank's, printed by rank 0 alone."""
    import torch
    import torch.distributed as dist

    dist.init_process_group("gloo")
    grads = torch.randn(params)
    scalar = torch.ones(1, dtype=torch.float64)
    for _ in range(5):
        dist.all_reduce(grads)
    dist.barrier()
    t0 = time.perf_counter()
    for _ in range(steps):
        dist.all_reduce(scalar)
        dist.all_reduce(grads)
    seconds = torch.tensor([(time.perf_counter() - t0) / steps], dtype=torch.float64)
    dist.all_reduce(seconds, op=dist.ReduceOp.MAX)
    rank = dist.get_rank()
    dist.destroy_process_group()
    return {"allreduce_s": float(seconds)} if rank == 0 else None


CHILDREN = {
    "reference": lambda a: child_reference(),
    "ercgraph_mmgcn": lambda a: child_ercgraph(MMGCN_SETS),
    "ercgraph_hier": lambda a: child_ercgraph(HIER_SETS),
    "build": lambda a: child_build(),
    "curve": lambda a: child_curve(int(a[0])),
    "allreduce": lambda a: child_allreduce(int(a[0]), int(a[1])),
}


# -- the parent -----------------------------------------------------------------------------------
def _env(threads: int) -> dict[str, str]:
    return {
        **os.environ,
        "OMP_NUM_THREADS": str(threads),
        "MKL_NUM_THREADS": str(threads),
        "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
    }


def spawn(kind: str, *args: str, threads: int = 1, timeout: int = 7200) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind, *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(threads), timeout=timeout)
    if done.returncode != 0:
        raise SystemExit(f"child {kind} {args} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def exponent(xs: list[float], ys: list[float]) -> float | None:
    import numpy as np

    if len(xs) < 2:
        return None
    return float(np.polyfit(np.log(xs), np.log(ys), 1)[0])


def part_epoch(threads: int) -> dict:
    rows = []
    for name, kind in (
        ("MMGCN-style reference trainer", "reference"),
        ("ercgraph, MMGCN model", "ercgraph_mmgcn"),
        ("ercgraph, hierarchical GCN", "ercgraph_hier"),
    ):
        r = spawn(kind, threads=threads)
        r["trainer"] = name
        r["working_mb"] = r["VmHWM"] - r["floor_mb"]
        rows.append(r)
        print(f"{name}: epoch {r['epoch_s']:.2f} s, peak {r['VmHWM']:.0f} MiB", flush=True)
    ref = rows[0]
    for r in rows:
        r["epoch_ratio"] = r["epoch_s"] / ref["epoch_s"]
        r["working_ratio"] = r["working_mb"] / ref["working_mb"]
    build = spawn("build", threads=threads)
    best = rows[1]  # like for like: the same architecture
    return {
        "rows": rows,
        "build": build,
        "targets": {
            "epoch_ratio_max": TARGET_EPOCH_RATIO,
            "working_ratio_max": TARGET_MEMORY_RATIO,
            "build_max_s": TARGET_BUILD_S,
            "epoch_met": best["epoch_ratio"] <= TARGET_EPOCH_RATIO,
            "working_met": best["working_ratio"] <= TARGET_MEMORY_RATIO,
            "build_met": build["build_graph_set_s"] < TARGET_BUILD_S,
        },
    }


def part_curve(sizes: list[int], threads: int) -> dict:
    rows = []
    for n in sizes:
        r = spawn("curve", str(n), threads=threads)
        r["working_mb"] = r["VmHWM"] - r["floor_mb"]
        rows.append(r)
        print(
            f"{n}: build {r['build_s']:.2f} s, epoch {r['epoch_s']:.1f} s, "
            f"peak {r['VmHWM']:.0f} MiB",
            flush=True,
        )
    xs = [r["utterances"] for r in rows]
    return {
        "rows": rows,
        "exponents": {
            "build_s": exponent(xs, [r["build_s"] for r in rows]),
            "epoch_s": exponent(xs, [r["epoch_s"] for r in rows]),
            "edges": exponent(xs, [r["edges"] for r in rows]),
            "working_mb": exponent(xs, [r["working_mb"] for r in rows]),
        },
        "largest_within_24_gib": rows[-1]["VmHWM"] < 24 * 1024 if rows else None,
    }


def _write_table_corpus(root: Path, n: int) -> list[str]:
    """The synthetic corpus as a table + .npy features, for the CLI (torchrun) runs."""
    import numpy as np

    corpus = _synthetic_corpus(n)
    df = corpus.df[["split", "dialogue_id", "turn", "speaker", "label"]]
    df.to_csv(root / "corpus.csv", index=False)
    rng = np.random.default_rng(0)
    np.save(root / "text.npy", rng.standard_normal((len(df), 384), dtype=np.float32))
    return [
        "data={reader: table, name: synthetic, path: corpus.csv}",
        "features={modalities: [text], files: {text: {path: text.npy}}}",
        "train.epochs=1",
        "train.seeds=[0]",
        "train.threads=1",
        f"data_root={root}",
        f"cache_dir={root / 'cache'}",
    ]


def _train_cli(sets: list[str], out: Path, nproc: int) -> dict:
    args = ["-m", "ercgraph", "train", "--out", str(out)]
    for s in sets:
        args += ["--set", s]
    if nproc > 1:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc-per-node={nproc}",
            *args,
        ]
    else:
        cmd = [sys.executable, *args]
    t0 = time.perf_counter()
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(1), timeout=7200)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"train ({nproc} processes) failed:\n{done.stderr[-4000:]}")
    result = json.loads((out / "seed_0/result.json").read_text())
    metrics = json.loads((out / "metrics.json").read_text())
    return {
        "processes": nproc,
        "epoch_s": result["history"][0]["epoch_s"],
        "wall_s": wall,
        "dev_weighted_f1": metrics["dev"]["weighted_f1"]["mean"],
        "test_weighted_f1": metrics["test"]["weighted_f1"]["mean"],
    }


def part_ddp(n: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sets = _write_table_corpus(root, n)
        one = _train_cli(sets, root / "one", 1)
        two = _train_cli(sets, root / "two", 2)
        params = _parameters(root / "one")
        batch = load_config_sets(sets).train.batch_size
        train = pd_read(root / "corpus.csv").query("split == 'train'")["dialogue_id"].nunique()
    steps = math.ceil(int(train) / batch)
    ar = _allreduce(params, min(steps, 200))
    return {
        "utterances": n,
        "rows": [one, two],
        "speedup": one["epoch_s"] / two["epoch_s"],
        "parameters": params,
        "steps_per_epoch": steps,
        "allreduce_s_per_step": ar,
        "communication_share": ar * steps / two["epoch_s"],
    }


def load_config_sets(sets: list[str]):
    from ercgraph.config import load_config

    return load_config(None, sets)


def pd_read(path: Path):
    import pandas as pd

    return pd.read_csv(path)


def _parameters(run_dir: Path) -> int:
    """Parameters of the run's model (model and objective), from its best weights."""
    from safetensors.torch import load_file

    weights = load_file(run_dir / "seed_0" / "best.safetensors")
    return int(sum(t.numel() for t in weights.values() if t.is_floating_point()))


def _allreduce(params: int, steps: int) -> float:
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc-per-node=2",
        str(Path(__file__).resolve()),
        "--child",
        "allreduce",
        str(params),
        str(steps),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=_env(1), timeout=1200)
    if done.returncode != 0:
        raise SystemExit(f"all-reduce timing failed:\n{done.stderr[-4000:]}")
    lines = [json.loads(x) for x in done.stdout.splitlines() if x.startswith("{")]
    return lines[0]["allreduce_s"]


def part_extract(clips: int) -> dict:
    import pandas as pd
    import torch
    from safetensors.torch import load_file

    wavs = sorted((data_root() / "emodb_samples" / "wav").glob("*.wav"))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        rows = [
            {
                "clip": f"c{i}",
                "turn": 0,
                "speaker": wavs[i % len(wavs)].stem[:2],
                "label": "x",
                "split": "train",
                "path": str(wavs[i % len(wavs)]),
            }
            for i in range(clips)
        ]
        pd.DataFrame(rows).to_csv(root / "emo.csv", index=False)
        sets = [
            "--set",
            "data={reader: table, name: emo, path: emo.csv, columns: {dialogue_id: clip}}",
            "--set",
            "features={modalities: [audio], audio: {encoder: 'opensmile:IS10', "
            "source: path, chunk_size: 8, workers: 1}}",
            "--data-root",
            str(root),
        ]
        timing = {}
        for nproc in (1, 2):
            cache = root / f"cache{nproc}"
            args = [
                "-m",
                "ercgraph",
                "extract",
                "--modality",
                "audio",
                "--cache-dir",
                str(cache),
                *sets,
            ]
            cmd = (
                [sys.executable, *args]
                if nproc == 1
                else [
                    sys.executable,
                    "-m",
                    "torch.distributed.run",
                    "--standalone",
                    f"--nproc-per-node={nproc}",
                    *args,
                ]
            )
            t0 = time.perf_counter()
            done = subprocess.run(cmd, capture_output=True, text=True, env=_env(1), timeout=7200)
            timing[nproc] = time.perf_counter() - t0
            if done.returncode != 0:
                raise SystemExit(f"extract ({nproc}) failed:\n{done.stderr[-4000:]}")
        chunks = [
            {
                p.name: load_file(p)
                for p in (root / f"cache{k}").rglob("media/audio/*/*.safetensors")
            }
            for k in (1, 2)
        ]
        identical = chunks[0].keys() == chunks[1].keys() and all(
            torch.equal(chunks[0][name][key], chunks[1][name][key])
            for name in chunks[0]
            for key in chunks[0][name]
        )
    return {
        "clips": clips,
        "encoder": "opensmile:IS10",
        "rows": [{"processes": k, "seconds": timing[k]} for k in (1, 2)],
        "speedup": timing[1] / timing[2],
        "identical": identical,
        "chunks": len(chunks[0]),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--parts", default="epoch,curve,ddp,extract")
    parser.add_argument("--clips", type=int, default=300)
    parser.add_argument("--ddp-size", type=int, default=100000)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if args.child:
        result = CHILDREN[args.child[0]](args.child[1:])
        if result is not None:
            print(json.dumps(result))
        return
    parts = args.parts.split(",")
    payload: dict = {"threads_per_process": args.threads, "parts": parts}
    if "epoch" in parts:
        payload["epoch"] = part_epoch(args.threads)
    if "curve" in parts:
        payload["curve"] = part_curve([int(s) for s in args.sizes.split(",")], args.threads)
    if "ddp" in parts:
        payload["ddp"] = part_ddp(args.ddp_size)
    if "extract" in parts:
        payload["extract"] = part_extract(args.clips)
    import torch

    payload["gpu"] = (
        "not measured: no CUDA device here" if not torch.cuda.is_available() else "see --gpu"
    )
    path = write_result("scale", payload)
    print(f"wrote {path}")
    if "epoch" in payload:
        print_table(
            payload["epoch"]["rows"],
            ["trainer", "epoch_s", "epoch_ratio", "VmHWM", "working_mb", "working_ratio"],
        )


if __name__ == "__main__":
    main()
