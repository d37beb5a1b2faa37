"""Dialogues and the GraphBuilder contract: copies, validation and error messages."""

from __future__ import annotations

import pytest
import torch

from ercgraph.data.corpus import Corpus
from ercgraph.errors import ErcgraphError
from ercgraph.graphs.base import Dialogues, GraphBuilder, IntraModalBuilder


class FixedBuilder(GraphBuilder):
    """Returns whatever edges it was given (to exercise validation)."""

    EDGE_TYPES = ("link",)

    def __init__(self, edges: dict | None = None, note: str = "x") -> None:
        self.edges = edges
        self.note = note

    def forward(self, dialogues: Dialogues) -> dict:
        return self.edges


@pytest.fixture
def dialogues() -> Dialogues:
    return Dialogues.from_sequences([["A", "B", "A"], ["C", "D"]], modalities=("text", "audio"))


def test_dialogues_views(dialogues: Dialogues) -> None:
    assert dialogues.num_utterances == 5
    assert dialogues.num_dialogues == 2
    assert dialogues.speaker.tolist() == [0, 1, 0, 0, 1]
    assert dialogues.ptr.tolist() == [0, 3, 5]
    assert dialogues.batch.tolist() == [0, 0, 0, 1, 1]
    assert dialogues.pos.tolist() == [0, 1, 2, 0, 1]
    assert dialogues.sizes.tolist() == [3, 2]
    assert "num_dialogues=2" in repr(dialogues)


def test_dialogues_from_corpus(meld_dev: Corpus) -> None:
    d = Dialogues.from_corpus(meld_dev, ["text", "audio"])
    assert d.num_utterances == meld_dev.num_utterances == 1109
    assert d.num_dialogues == meld_dev.df["dialogue_id"].nunique() == 114
    assert d.modalities == ("text", "audio")
    assert torch.equal(d.speaker, torch.from_numpy(meld_dev.local_speakers()))
    assert torch.equal(d.batch, torch.from_numpy(meld_dev.dialogue_index()))
    # MELD turns have gaps (missing clips), so the position is the rank, not the turn number
    rank = meld_dev.df.groupby("dialogue_id", sort=False).cumcount().to_numpy()
    assert torch.equal(d.pos, torch.from_numpy(rank.astype("int64")))
    assert not (meld_dev.df["turn"].to_numpy() == rank).all()


@pytest.mark.parametrize(
    ("speaker", "ptr", "modalities", "match"),
    [
        ([0, 1], [0, 3], ("text",), "ptr must start at 0 and end at the number of utterances"),
        ([0, 1], [1, 2], ("text",), "ptr must start at 0"),
        ([0, 1, 0], [0, 2, 1, 3], ("text",), r"ptr must be non-decreasing; ptr\[2\] < ptr\[1\]"),
        ([0, -1], [0, 2], ("text",), r"speaker\[1\] is negative"),
        ([0.0, 1.0], [0, 2], ("text",), "speaker must be a 1-D integer tensor"),
        ([0, 1], [0, 2], ("text", "text"), "modalities repeat a name"),
        ([0, 1], [0, 2], (), "modalities must be non-empty"),
    ],
)
def test_dialogues_rejects_bad_input(
    speaker: list, ptr: list, modalities: tuple, match: str
) -> None:
    with pytest.raises(ErcgraphError, match=match):
        Dialogues(torch.tensor(speaker), torch.tensor(ptr), modalities)


def test_clone_is_independent(dialogues: Dialogues) -> None:
    _ = dialogues.batch
    copy = dialogues.clone()
    copy.speaker[0] = 7
    copy.batch[0] = 9
    assert dialogues.speaker[0] == 0 and dialogues.batch[0] == 0


def test_builder_cannot_mutate_its_input(dialogues: Dialogues) -> None:
    class Vandal(IntraModalBuilder):
        EDGE_TYPES = ("link",)

        def forward_relations(self, d: Dialogues) -> dict:
            d.speaker.fill_(3)
            d.ptr.zero_()
            d.batch.fill_(5)
            return {"link": torch.empty(2, 0, dtype=torch.long)}

    speaker, ptr, batch = dialogues.speaker.clone(), dialogues.ptr.clone(), dialogues.batch.clone()
    Vandal()(dialogues)
    assert torch.equal(dialogues.speaker, speaker)
    assert torch.equal(dialogues.ptr, ptr)
    assert torch.equal(dialogues.batch, batch)


def test_custom_builder_out_of_range_names_builder_type_and_index(dialogues: Dialogues) -> None:
    builder = FixedBuilder({("text", "link", "text"): torch.tensor([[0, 1, 2], [1, 2, 5]])})
    with pytest.raises(ErcgraphError) as err:
        builder(dialogues)
    msg = str(err.value)
    assert "FixedBuilder(edges=" in msg and "note='x'" in msg
    assert "('text', 'link', 'text')" in msg
    assert "edge 2 has target index 5, outside [0, 5)" in msg


def test_negative_index_is_rejected(dialogues: Dialogues) -> None:
    builder = FixedBuilder({("audio", "link", "audio"): torch.tensor([[-1], [0]])})
    with pytest.raises(ErcgraphError, match="edge 0 has source index -1, outside"):
        builder(dialogues)


def test_edge_across_dialogues_is_rejected(dialogues: Dialogues) -> None:
    builder = FixedBuilder({("text", "link", "text"): torch.tensor([[0, 2], [1, 3]])})
    with pytest.raises(ErcgraphError, match=r"edge 1 \(2 -> 3\) links dialogue 0 to dialogue 1"):
        builder(dialogues)


@pytest.mark.parametrize(
    ("edges", "match"),
    [
        (
            {("text", "other", "text"): torch.zeros(2, 0, dtype=torch.long)},
            r"relation 'other', which is not declared in FixedBuilder.EDGE_TYPES \['link'\]",
        ),
        (
            {("text", "link", "video"): torch.zeros(2, 0, dtype=torch.long)},
            r"names modality 'video'; expected one of \['text', 'audio'\]",
        ),
        (
            {("text", "link"): torch.zeros(2, 0, dtype=torch.long)},
            "must be a \\(src_modality, relation, dst_modality\\) tuple",
        ),
        (
            {("text", "link", "text"): torch.zeros(3, 1, dtype=torch.long)},
            r"edge_index must be a LongTensor \[2, E\], got \(3, 1\)",
        ),
        (
            {("text", "link", "text"): torch.zeros(2, 1, dtype=torch.int32)},
            "edge_index must have dtype torch.int64",
        ),
        ([("text", "link", "text")], "must return a dict"),
    ],
)
def test_malformed_output_is_rejected(dialogues: Dialogues, edges: object, match: str) -> None:
    with pytest.raises(ErcgraphError, match=match):
        FixedBuilder(edges)(dialogues)


def test_relation_outside_configured_edge_types_is_rejected(dialogues: Dialogues) -> None:
    class Narrow(FixedBuilder):
        EDGE_TYPES = ("link", "other")

        @property
        def edge_types(self) -> tuple[str, ...]:
            return ("link",)

    edges = {("text", "other", "text"): torch.zeros(2, 0, dtype=torch.long)}
    with pytest.raises(ErcgraphError, match="which this configuration does not produce"):
        Narrow(edges)(dialogues)


def test_intra_modal_builder_replicates_and_fills_missing_relations(dialogues: Dialogues) -> None:
    class Half(IntraModalBuilder):
        EDGE_TYPES = ("a", "b")

        def forward_relations(self, d: Dialogues) -> dict:
            return {"a": torch.tensor([[0], [1]])}

    out = Half()(dialogues)
    assert set(out) == {
        ("text", "a", "text"),
        ("audio", "a", "audio"),
        ("text", "b", "text"),
        ("audio", "b", "audio"),
    }
    assert out[("audio", "b", "audio")].shape == (2, 0)
    assert out[("audio", "a", "audio")].tolist() == [[0], [1]]


def test_non_dialogues_input_is_rejected() -> None:
    with pytest.raises(ErcgraphError, match="expected a Dialogues batch, got list"):
        FixedBuilder({})([0, 1])


# -- the repr is the cache key: every constructor argument must be visible ----------------------
class HiddenBuilder(FixedBuilder):
    """Keeps ``window`` under another name, so the default repr cannot show it."""

    def __init__(self, window: int = 1) -> None:
        super().__init__({})
        self._w = window


class OwnReprBuilder(FixedBuilder):
    """Stores its arguments but writes a repr that leaves ``note`` out."""

    def __repr__(self) -> str:
        return f"OwnReprBuilder(edges={self.edges!r})"


class KwargsBuilder(FixedBuilder):
    """Takes ``**options`` without storing them under that name."""

    def __init__(self, **options: object) -> None:
        super().__init__({})
        self._opts = options


@pytest.mark.parametrize(
    ("builder", "arg"),
    [(HiddenBuilder(3), "window"), (OwnReprBuilder(), "note"), (KwargsBuilder(k=2), "options")],
)
def test_builder_whose_repr_hides_an_argument_is_refused(builder: GraphBuilder, arg: str) -> None:
    from ercgraph.graphs.base import cache_identity

    name = type(builder).__name__
    with pytest.raises(ErcgraphError, match=rf"{name}.*'{arg}'") as err:
        cache_identity(builder)
    assert "\n" not in str(err.value)


def test_cache_identity_of_an_honest_builder() -> None:
    from ercgraph.graphs.base import cache_identity

    class Versioned(FixedBuilder):
        VERSION = 3

    assert cache_identity(FixedBuilder(None, "y")) == {
        "class": "tests.graphs.test_base:FixedBuilder",
        "version": None,
        "repr": "FixedBuilder(edges=None, note='y')",
    }
    ident = cache_identity(Versioned())
    assert ident["version"] == 3
    assert ident["class"].endswith(":test_cache_identity_of_an_honest_builder.<locals>.Versioned")


def test_builder_version_must_be_json_scalar() -> None:
    from ercgraph.graphs.base import cache_identity

    class Odd(FixedBuilder):
        VERSION = (1, 2)

    with pytest.raises(ErcgraphError, match=r"Odd\.VERSION"):
        cache_identity(Odd())


def test_dialogue_ids_name_dialogues_in_messages(meld_dev: Corpus) -> None:
    d = Dialogues.from_corpus(meld_dev)
    assert d.ids == tuple(meld_dev.dialogue_ids()) and d.clone().ids == d.ids
    assert d.name(0) == repr(d.ids[0])
    assert Dialogues.from_sequences([["A"], ["B"]]).name(1) == "#1"
    with pytest.raises(ErcgraphError, match="1 ids for 2 dialogues"):
        Dialogues(torch.zeros(2, dtype=torch.long), torch.tensor([0, 1, 2]), ids=("x",))
