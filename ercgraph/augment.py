"""Multimodal GAN augmentation of the minority classes (CBERL's first part, Meng et al., arXiv
2312.06337), as we read it.

A conditional GAN learns the utterance-level features of every modality the corpus has
(concatenated, standardised with the training statistics) from the **training split only**:
generator ``[noise, one-hot class] -> features``, discriminator ``[features, one-hot class] ->
real/fake``, two-layer MLPs with LeakyReLU (input dropout and one-sided label smoothing on the
discriminator), the non-saturating GAN loss and Adam. It then
generates ``multiplier x n_c`` samples of each minority class ``c`` (training share below
``minority_share``, default ``1 / num_classes``) that has at least ``min_examples`` training
utterances; a class with fewer is skipped with a warning. Generated rows join the training
split only: dev and test never see them, and ``evaluate``/``predict`` never generate.

Where they go (``augment.placement``):

* ``isolated`` (default): each sample is a one-utterance training dialogue: a context-free
  example for the classifier, which the graph sees without neighbours;
* ``dialogue``: each sample becomes an extra last turn (speaker ``__generated__``) of a training
  dialogue that holds its class, so the graph builders link it to real context.

The report (``augmentation`` in the run's ``features.json``) gives the samples per class, the GAN
training time, and how close they are to the real data: the mean distance (standardised
features) from each generated sample to its nearest real training utterance of its class,
beside the same distance for the real dev utterances of that class (a generator that copied the
training set would sit far below the dev figure; one that missed the data far above it).

The GAN trains under its own seed in a forked RNG, so the run's seeds draw as without it.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import Tensor, nn

from ercgraph.config import AugmentConfig
from ercgraph.data.corpus import Corpus
from ercgraph.data.features import FeatureStore
from ercgraph.errors import ErcgraphError

log = logging.getLogger(__name__)

PLACEMENTS = ("isolated", "dialogue")
SPEAKER = "__generated__"
COLUMN = "generated"


def check(cfg: AugmentConfig) -> None:
    """Refuse settings that cannot work, naming the ``augment`` key."""
    if cfg.split != "train":
        raise ErcgraphError(
            f"augment.split is {cfg.split!r}: generated samples may only join the training "
            "split (dev and test stay real); set augment.split: train"
        )
    if cfg.placement not in PLACEMENTS:
        raise ErcgraphError(
            f"augment.placement must be one of {list(PLACEMENTS)}, got {cfg.placement!r}"
        )
    for key, lo in (
        ("multiplier", 0.0),
        ("min_examples", 1),
        ("epochs", 1),
        ("noise", 1),
        ("hidden", 1),
        ("batch_size", 2),
    ):
        value = getattr(cfg, key)
        if not value > lo and not (key != "multiplier" and value >= lo):
            raise ErcgraphError(f"augment.{key} must be >= {lo}, got {value!r}")
    if cfg.minority_share is not None and not 0 < cfg.minority_share <= 1:
        raise ErcgraphError(
            f"augment.minority_share must be in (0, 1] or null, got {cfg.minority_share!r}"
        )


class _MLP(nn.Sequential):
    def __init__(self, sizes: list[int]) -> None:
        layers: list[nn.Module] = []
        for i in range(len(sizes) - 1):
            layers.append(nn.Linear(sizes[i], sizes[i + 1]))
            if i < len(sizes) - 2:
                layers.append(nn.LeakyReLU(0.2))
        super().__init__(*layers)


def train_gan(
    x: Tensor, y: Tensor, num_classes: int, cfg: AugmentConfig
) -> tuple[nn.Module, dict[str, float]]:
    """Fit the conditional GAN on standardised rows ``x`` with labels ``y``; returns the
    generator and the last epoch's mean losses."""
    gen = _MLP([cfg.noise + num_classes, cfg.hidden, cfg.hidden, x.shape[1]])
    disc = nn.Sequential(
        nn.Dropout(0.3), _MLP([x.shape[1] + num_classes, cfg.hidden, cfg.hidden, 1])
    )
    opt_g = torch.optim.Adam(gen.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(disc.parameters(), lr=cfg.lr, betas=(0.5, 0.999))
    bce = nn.BCEWithLogitsLoss()
    onehot = nn.functional.one_hot(y, num_classes).float()
    losses = {"discriminator": 0.0, "generator": 0.0}
    for _ in range(cfg.epochs):
        order = torch.randperm(x.shape[0])
        sums, steps = [0.0, 0.0], 0
        for lo in range(0, x.shape[0], cfg.batch_size):
            idx = order[lo : lo + cfg.batch_size]
            real, cond = x[idx], onehot[idx]
            fake = gen(torch.cat([torch.randn(len(idx), cfg.noise), cond], 1))
            # one-sided label smoothing (real = 0.9) keeps the discriminator from winning outright
            d_loss = bce(disc(torch.cat([real, cond], 1)), torch.full((len(idx), 1), 0.9)) + bce(
                disc(torch.cat([fake.detach(), cond], 1)), torch.zeros(len(idx), 1)
            )
            opt_d.zero_grad()
            d_loss.backward()
            opt_d.step()
            g_loss = bce(disc(torch.cat([fake, cond], 1)), torch.ones(len(idx), 1))
            opt_g.zero_grad()
            g_loss.backward()
            opt_g.step()
            sums[0] += d_loss.item()
            sums[1] += g_loss.item()
            steps += 1
        losses = {"discriminator": sums[0] / steps, "generator": sums[1] / steps}
    return gen.eval(), losses


def _nearest(a: Tensor, b: Tensor, chunk: int = 2048) -> Tensor:
    """Distance from every row of ``a`` to its nearest row of ``b``."""
    if a.shape[0] == 0 or b.shape[0] == 0:
        return torch.zeros(0)
    return torch.cat(
        [torch.cdist(a[i : i + chunk], b).min(1).values for i in range(0, len(a), chunk)]
    )


def augment(
    cfg: AugmentConfig, corpus: Corpus, store: FeatureStore
) -> tuple[Corpus, FeatureStore, dict[str, Any]]:
    """The corpus and store with generated training rows (see the module docstring).

    Returns:
        The new corpus (a ``generated`` column marks the new rows), the store in its row order,
        and the report.
    """
    check(cfg)
    t0 = time.perf_counter()
    labels = list(corpus.labels)
    k = len(labels)
    mods = store.modalities
    y_all = torch.from_numpy(corpus.label_ids())
    split = corpus.df["split"].to_numpy()
    present = torch.stack([store.present[m] for m in mods], 1).all(1)
    train = torch.from_numpy(split == "train") & (y_all >= 0) & present
    dev = torch.from_numpy(split == "dev") & (y_all >= 0) & present
    if int(train.sum()) < 2:
        raise ErcgraphError("augment: fewer than 2 labelled training utterances to learn from")
    feats = torch.cat([store.features[m].float() for m in mods], 1)
    x, y = feats[train], y_all[train]
    mean, std = x.mean(0), x.std(0).clamp(min=1e-5)
    z = (x - mean) / std
    counts = torch.bincount(y, minlength=k)
    share = counts.float() / counts.sum()
    threshold = cfg.minority_share if cfg.minority_share is not None else 1.0 / k
    plan: dict[str, int] = {}
    skipped: dict[str, int] = {}
    for c in range(k):
        if counts[c] == 0 or share[c] >= threshold:
            continue
        if counts[c] < cfg.min_examples:
            skipped[labels[c]] = int(counts[c])
            log.warning(
                "augment: class %r has %d training utterances, fewer than augment.min_examples="
                "%d to learn a generator from; it gets no generated samples",
                labels[c],
                int(counts[c]),
                cfg.min_examples,
            )
            continue
        plan[labels[c]] = int(round(cfg.multiplier * int(counts[c])))
    report: dict[str, Any] = {
        "placement": cfg.placement,
        "classes": plan,
        "skipped": skipped,
        "training_rows": int(train.sum()),
    }
    if not plan:
        log.warning("augment: no class to generate (no minority class with enough examples)")
        report["gan_s"] = 0.0
        return corpus, store, report
    with torch.random.fork_rng():
        torch.manual_seed(cfg.seed)
        generator, losses = train_gan(z, y, k, cfg)
        gan_s = time.perf_counter() - t0
        cls = torch.cat(
            [torch.full((n,), labels.index(name), dtype=torch.long) for name, n in plan.items()]
        )
        with torch.no_grad():
            noise = torch.randn(len(cls), cfg.noise)
            fake_z = generator(torch.cat([noise, nn.functional.one_hot(cls, k).float()], 1))
    closeness = {}
    dev_z = (feats[dev] - mean) / std
    y_dev = y_all[dev]
    for name in plan:
        c = labels.index(name)
        real_c = z[y == c]
        closeness[name] = {
            "generated_to_train": float(_nearest(fake_z[cls == c], real_c).mean()),
            "dev_to_train": float(_nearest(dev_z[y_dev == c], real_c).mean())
            if bool((y_dev == c).any())
            else None,
        }
    report.update(
        {"gan_s": gan_s, "gan_losses": losses, "closeness": closeness, "generated": len(cls)}
    )
    fake = fake_z * std + mean
    new_corpus, new_store = _insert(cfg, corpus, store, fake, cls, mods)
    log.info(
        "augment: %d generated training utterances (%s), GAN %.1f s",
        len(cls),
        ", ".join(f"{n} {c}" for c, n in plan.items()),
        gan_s,
    )
    return new_corpus, new_store, report


def _insert(
    cfg: AugmentConfig,
    corpus: Corpus,
    store: FeatureStore,
    fake: Tensor,
    cls: Tensor,
    mods: list[str],
) -> tuple[Corpus, FeatureStore]:
    """The generated rows added to the corpus (as placed) and the store, in Corpus order."""
    df = corpus.df
    n, g = len(df), len(cls)
    labels = list(corpus.labels)
    rng = np.random.default_rng(cfg.seed)
    rows = pd.DataFrame(
        {
            "split": "train",
            "speaker": SPEAKER,
            "label": [labels[c] for c in cls.tolist()],
        }
    )
    if cfg.placement == "isolated":
        rows["dialogue_id"] = [f"__generated_{i}" for i in range(g)]
        rows["turn"] = 0
    else:
        train = df[df["split"] == "train"]
        last = train.groupby("dialogue_id", sort=False)["turn"].max()
        hosts_of = {
            c: sorted(train.loc[train["label"] == labels[c], "dialogue_id"].unique())
            for c in set(cls.tolist())
        }
        host = [hosts_of[c][int(rng.integers(len(hosts_of[c])))] for c in cls.tolist()]
        added: dict[str, int] = {}
        turns = []
        for h in host:
            added[h] = added.get(h, 0) + 1
            turns.append(int(last[h]) + added[h])
        rows["dialogue_id"] = host
        rows["turn"] = turns
    base = df.assign(**{COLUMN: False, "_augment_row": np.arange(n)})
    rows = rows.assign(**{COLUMN: True, "_augment_row": np.arange(n, n + g)})
    merged = pd.concat([base, rows], ignore_index=True)
    new = Corpus(merged, corpus.name, corpus.labels, corpus.source, dict(corpus.meta))
    order = torch.from_numpy(new.df["_augment_row"].to_numpy(dtype=np.int64, copy=True))
    new.df = new.df.drop(columns="_augment_row")
    dims = store.dims()
    parts = torch.split(fake, [dims[m] for m in mods], 1)
    features, present = {}, {}
    for m, part in zip(mods, parts, strict=True):
        features[m] = torch.cat([store.features[m].float(), part.float()]).index_select(0, order)
        present[m] = torch.cat([store.present[m].bool(), torch.ones(g, dtype=torch.bool)])[order]
    return new, FeatureStore(features, present, dict(store.manifest))
