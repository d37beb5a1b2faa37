"""Load the corpus a config asks for: pick the reader by name and hand it the data root."""

from __future__ import annotations

from ercgraph.config import Config, data_root
from ercgraph.data.corpus import Corpus
from ercgraph.errors import ErcgraphError
from ercgraph.registry import READERS


def load_corpus(cfg: Config) -> Corpus:
    """Read ``cfg.data`` with the reader it names (``meld``, ``iemocap``, ``table``, ``pickle``
    or a plug-in).

    Relative paths are resolved against the data root (``cfg.data_root``, else
    ``$ERCGRAPH_DATA``, else the working directory).

    Raises:
        ErcgraphError: for an unknown reader, bad data, or a reader that returns no Corpus.
    """
    reader = READERS.get(cfg.data.reader)
    corpus = reader(cfg.data, data_root(cfg))
    if not isinstance(corpus, Corpus):
        raise ErcgraphError(
            f"data reader {cfg.data.reader!r} returned {type(corpus).__name__}, expected a Corpus"
        )
    return corpus
