"""The baseline of bench/scale.py's epoch table: an MMGCN-style trainer written the way the
original MMGCN repository organises its training loop (our lean rewrite of that pattern, not
its code).

The pattern, per training step:

* the loader yields *padded* dialogue batches (``[T, B, dim]`` per modality, a ``[T, B,
  parties]`` speaker one-hot, a ``[B, T]`` utterance mask), collated with ``pad_sequence``
  from one small tensor set per dialogue;
* inside ``forward``, the padded batch is unpadded with a Python loop over the dialogues;
* the graph is a *dense* ``[M*N, M*N]`` adjacency built in ``forward`` with a loop over the
  batch's dialogues, from the node states (gradients flow through it, as through ercgraph's
  MMGCN edge weights): per dialogue and modality, a cosine-similarity matrix (as we read the
  original: the per-dimension outer products of the normalised states, summed over the
  dimension) turned into MMGCN's angular weights ``1 - arccos(sim)/pi``, and per ordered
  modality pair the angular weight of each utterance with itself across modalities; then
  ``D^-1/2 A D^-1/2``;
* GCNII layers (initial residual ``alpha``, identity mapping ``beta_l = log(lambda/l + 1)``) as
  dense matrix products, a text BiLSTM and linear audio/visual encoders, the concatenated node
  states into a linear classifier, a masked NLL loss, Adam.

Sizes follow ercgraph's ``meld_mmgcn.yaml`` (hidden 128, 4 GCNII layers, batch 16 dialogues,
alpha 0.1, lambda 0.5), so both trainers do comparable model work.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch
from torch import Tensor, nn
from torch.nn.utils.rnn import pad_sequence


@dataclass
class Dialogue:
    feats: dict[str, Tensor]  # modality -> [n, dim]
    speakers: Tensor  # [n] local speaker ids
    labels: Tensor  # [n]


def collate(batch: list[Dialogue], parties: int) -> dict[str, Tensor]:
    """Padded tensors, as the original loaders' ``collate_fn`` pads every field."""
    out = {m: pad_sequence([d.feats[m] for d in batch]) for m in batch[0].feats}
    out["qmask"] = pad_sequence([nn.functional.one_hot(d.speakers, parties).float() for d in batch])
    out["umask"] = pad_sequence([torch.ones(len(d.labels)) for d in batch], batch_first=True)
    out["label"] = pad_sequence([d.labels for d in batch], batch_first=True)
    return out


class ReferenceMMGCN(nn.Module):
    def __init__(
        self,
        dims: dict[str, int],
        classes: int,
        parties: int,
        hidden: int = 128,
        layers: int = 4,
        alpha: float = 0.1,
        lamda: float = 0.5,
        dropout: float = 0.4,
    ):
        super().__init__()
        self.modals = list(dims)
        self.rnn = nn.LSTM(dims["text"], hidden // 2, num_layers=2, bidirectional=True)
        self.fc = nn.ModuleDict({m: nn.Linear(d, hidden) for m, d in dims.items() if m != "text"})
        self.speaker = nn.Embedding(parties, hidden)
        self.weights = nn.ParameterList(
            [nn.Parameter(torch.empty(hidden, hidden)) for _ in range(layers)]
        )
        for w in self.weights:
            nn.init.xavier_uniform_(w)
        self.alpha, self.lamda, self.dropout = alpha, lamda, nn.Dropout(dropout)
        self.out = nn.Linear(2 * hidden * len(dims), classes)

    @staticmethod
    def unpad(x: Tensor, lengths: list[int]) -> Tensor:
        """The original ``simple_batch_graphify``: a loop over the batch's dialogues."""
        return torch.cat([x[: lengths[j], j, :] for j in range(len(lengths))])

    @staticmethod
    def big_adjacency(feats: list[Tensor], lengths: list[int]) -> Tensor:
        """The dense multimodal adjacency, built per dialogue in a Python loop."""
        modal, total = len(feats), feats[0].shape[0]
        adj = feats[0].new_zeros(modal * total, modal * total)
        start = 0
        for n in lengths:
            sims = []
            for x in feats:
                part = x[start : start + n]
                normed = (part / part.norm(dim=1, keepdim=True)).t()  # [dim, n]
                cos = (normed.unsqueeze(2) @ normed.unsqueeze(1)).sum(0) * 0.99999
                sims.append(1 - torch.acos(cos) / math.pi)
            diag = torch.arange(n)
            for a in range(modal):
                for b in range(modal):
                    ra, rb = start + total * a, start + total * b
                    if a == b:
                        adj[ra : ra + n, rb : rb + n] = sims[a]
                    else:
                        x1 = feats[a][start : start + n]
                        x2 = feats[b][start : start + n]
                        cos = (
                            x1 / x1.norm(dim=1, keepdim=True) * (x2 / x2.norm(dim=1, keepdim=True))
                        ).sum(1)
                        adj[ra + diag, rb + diag] = 1 - torch.acos(cos * 0.99999) / math.pi
            start += n
        d = adj.sum(1).pow(-0.5)
        return d[:, None] * adj * d[None, :]

    def forward(self, batch: dict[str, Tensor]) -> Tensor:
        lengths = [int(v) for v in batch["umask"].sum(1).tolist()]
        text, _ = self.rnn(batch["text"])
        h = {"text": text}
        for m in self.fc:
            h[m] = self.fc[m](batch[m])
        spk = self.speaker(batch["qmask"].argmax(-1))
        feats = [self.unpad(h[m] + spk, lengths) for m in self.modals]
        adj = self.big_adjacency(feats, lengths)
        h0 = torch.cat(feats)
        x = h0
        for i, w in enumerate(self.weights, start=1):
            beta = math.log(self.lamda / i + 1)
            support = (1 - self.alpha) * (adj @ self.dropout(x)) + self.alpha * h0
            x = torch.relu((1 - beta) * support + beta * (support @ w))
        n = feats[0].shape[0]
        out = torch.cat(
            [torch.cat([x[k * n : (k + 1) * n], feats[k]], 1) for k in range(len(feats))], 1
        )
        return torch.log_softmax(self.out(self.dropout(out)), -1)


def masked_nll(logp: Tensor, labels: Tensor, umask: Tensor) -> Tensor:
    y = torch.cat([labels[j, : int(umask[j].sum())] for j in range(labels.shape[0])])
    keep = y >= 0
    return nn.functional.nll_loss(logp[keep], y[keep])


def train_epochs(
    dialogues: list[Dialogue],
    dims: dict[str, int],
    classes: int,
    parties: int,
    epochs: int = 2,
    batch_size: int = 16,
    seed: int = 0,
) -> list[float]:
    """Seconds of each training epoch (shuffled dialogues, forward, loss, backward, Adam)."""
    torch.manual_seed(seed)
    model = ReferenceMMGCN(dims, classes, parties)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(
        dialogues, batch_size=batch_size, shuffle=True, collate_fn=lambda b: collate(b, parties)
    )
    seconds = []
    for _ in range(epochs):
        model.train()
        t0 = time.perf_counter()
        for batch in loader:
            loss = masked_nll(model(batch), batch["label"], batch["umask"])
            opt.zero_grad()
            loss.backward()
            opt.step()
        seconds.append(time.perf_counter() - t0)
    return seconds
