"""FeatureStore: per-modality utterance features aligned to a Corpus, cached on disk.

For each modality a float32 tensor ``[num_utterances, dim]`` in Corpus row order, a boolean
``present`` mask (False where the modality is missing for that utterance) and a manifest (encoder
name and settings, dims, and a fingerprint of the corpus content). Saved as safetensors + JSON;
reused only when the manifest matches exactly, recomputed otherwise. A corrupt, truncated or
stale file is detected and rebuilt, never trusted.

**Memory-mapped.** ``FeatureStore.load(path, mmap=True)`` (``features.mmap: true`` in a config)
maps the saved tensors instead of reading them: pages are read when a batch gathers its rows and
the kernel may drop them again, so a corpus whose features exceed RAM trains with bounded
memory. The file is still verified (checksum and finiteness, streamed in blocks). The mapping is
copy-on-write: nothing ever writes back to the cache file.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ercgraph.errors import ErcgraphError

log = logging.getLogger(__name__)

FORMAT_VERSION = 1


def manifest_key(manifest: dict[str, Any]) -> str:
    """A short stable hash of a manifest (the cache file name)."""
    blob = json.dumps(manifest, sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:20]


#: what to do when a write fails with one of these errors
_WRITE_HINTS = {
    errno.ENOSPC: "free space on that disk or write elsewhere (--out, --cache-dir)",
    errno.EDQUOT: "free space within your quota or write elsewhere (--out, --cache-dir)",
    errno.EROFS: "that file system is read-only: write elsewhere (--out, --cache-dir)",
    errno.EACCES: "you may not write there: fix its permissions or write elsewhere",
    errno.EPERM: "you may not write there: fix its permissions or write elsewhere",
}


def _disk_of(path: Path) -> str:
    """The mount point holding ``path`` (its nearest existing ancestor's)."""
    probe = Path(os.path.abspath(path))
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    while not os.path.ismount(probe) and probe != probe.parent:
        probe = probe.parent
    return str(probe)


def write_error(path: Path, exc: OSError) -> ErcgraphError:
    """One line for an OSError met while writing ``path``: the file, the disk it lives on, what
    went wrong and what to do (a full disk is the user's to fix, not a bug)."""
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    hint = _WRITE_HINTS.get(exc.errno or 0, "check that folder and its disk")
    disk = _disk_of(path)
    free = ""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        try:
            free = f", {shutil.disk_usage(disk).free:,} bytes free"
        except OSError:
            pass
    return ErcgraphError(
        f"cannot write {str(path)!r}: {reason} (disk mounted at {disk!r}{free}); {hint}"
    )


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write a file atomically: a temp file in the same folder, fsync, then rename.

    On any failure the old file (if any) is left as it was and no temp file remains.

    Raises:
        ErcgraphError: a folder in the way, or the write failed (a full or read-only disk, no
            permission): one line naming the file and the disk.
    """
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):
        blocker = next((p for p in path.parents if p.exists() and not p.is_dir()), path.parent)
        raise ErcgraphError(
            f"cannot write {str(path)!r}: {str(blocker)!r} is a file, not a folder"
        ) from None
    except OSError as exc:
        raise write_error(path, exc) from exc
    if path.is_dir():
        raise ErcgraphError(
            f"cannot write {str(path)!r}: a folder of that name is in the way; move it away "
            "(or delete it if it holds nothing of yours) and run again"
        )
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise write_error(path, exc) from exc
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; give the usual file mode
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException as exc:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(exc, OSError):
            raise write_error(path, exc) from exc
        raise


def reclaim_cache_path(path: Path) -> None:
    """Make way for a cache file at ``path`` when a folder took its place.

    An empty folder holds nothing: it is removed and the entry rebuilt. A folder with content
    may be someone's data (ercgraph never makes folders under these names), so it is kept and
    the run stops, naming it.

    Raises:
        ErcgraphError: ``path`` is a folder that is not empty.
    """
    if not path.is_dir() or path.is_symlink():
        return
    try:
        path.rmdir()
        log.warning("cache entry %s was an empty folder; removed it to rebuild the entry", path)
    except OSError:
        raise ErcgraphError(
            f"cache file {str(path)!r} is a folder with files in it; ercgraph does not delete "
            "it: move it out of the cache (or delete it) and run again"
        ) from None


def replace_dir(src: Path, dest: Path) -> None:
    """Swap a fully written folder ``src`` in as ``dest`` (a sibling in the same filesystem):
    the old ``dest``, if any, is renamed aside first and deleted only after the swap."""
    old = None
    if dest.exists():
        old = dest.with_name(f".{dest.name}.{os.getpid()}.old")
        os.replace(dest, old)
    os.replace(src, dest)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@dataclass
class FeatureStore:
    """Features for each modality, aligned to Corpus rows.

    Args:
        features: modality → float tensor ``[N, dim]``.
        present: modality → bool tensor ``[N]``; False marks a missing modality (never silently
            zero-filled: graphs drop such nodes from message passing and fusion).
        manifest: modality → dict describing how the features were made.
    """

    features: dict[str, torch.Tensor]
    present: dict[str, torch.Tensor] = field(default_factory=dict)
    manifest: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: True when ``features`` are memory-mapped from a saved file (see the module docstring)
    mapped: bool = False

    def __post_init__(self) -> None:
        n = None
        for m, x in self.features.items():
            if x.dim() != 2:
                raise ErcgraphError(
                    f"features[{m!r}] must be 2-D [utterances, dim], got {tuple(x.shape)}"
                )
            if n is not None and x.shape[0] != n:
                raise ErcgraphError(
                    f"features[{m!r}] has {x.shape[0]} rows but another modality has {n}"
                )
            n = x.shape[0]
            self.features[m] = x.float()
            if m not in self.present:
                self.present[m] = torch.ones(x.shape[0], dtype=torch.bool)

    @property
    def modalities(self) -> list[str]:
        return list(self.features)

    def dims(self) -> dict[str, int]:
        return {m: int(x.shape[1]) for m, x in self.features.items()}

    def num_rows(self) -> int:
        return next(iter(self.features.values())).shape[0] if self.features else 0

    def check_rows(self, num_utterances: int, source: str = "features") -> None:
        for m, x in self.features.items():
            if x.shape[0] != num_utterances:
                raise ErcgraphError(
                    f"{source}: modality {m!r} has {x.shape[0]} feature rows but the corpus has "
                    f"{num_utterances} utterances"
                )

    def merge(self, other: FeatureStore) -> FeatureStore:
        clash = set(self.features) & set(other.features)
        if clash:
            raise ErcgraphError(f"two feature sources both provide modality {sorted(clash)}")
        return FeatureStore(
            {**self.features, **other.features},
            {**self.present, **other.present},
            {**self.manifest, **other.manifest},
            mapped=self.mapped or other.mapped,
        )

    # -- disk -----------------------------------------------------------------------------
    def save(self, path: Path) -> None:
        """Save atomically as ``path`` (safetensors) + ``path.with_suffix('.json')``."""
        from safetensors.torch import save

        tensors = {}
        for m in self.features:
            tensors[f"{m}.x"] = self.features[m].contiguous()
            tensors[f"{m}.present"] = self.present[m].to(torch.uint8).contiguous()
        blob = save(tensors)
        meta = {
            "format": FORMAT_VERSION,
            "manifest": self.manifest,
            "sha256": hashlib.sha256(blob).hexdigest(),
        }
        atomic_write_bytes(path, blob)
        atomic_write_bytes(path.with_suffix(".json"), json.dumps(meta, indent=1).encode())

    @classmethod
    def load(
        cls,
        path: Path,
        expected_manifest: dict[str, dict[str, Any]] | None = None,
        mmap: bool = False,
    ) -> FeatureStore:
        """Load and verify a saved store (``mmap``: map it instead of reading it).

        Raises:
            ErcgraphError: if the file is missing, corrupt, truncated, or its manifest differs
                from ``expected_manifest`` (a stale cache).
        """
        from safetensors.torch import load

        meta_path = path.with_suffix(".json")
        try:
            meta = json.loads(meta_path.read_text())
            digest = sha256_file(path)
        except (OSError, ValueError) as exc:
            raise ErcgraphError(f"feature cache {str(path)!r} is unreadable: {exc}") from exc
        if meta.get("format") != FORMAT_VERSION:
            raise ErcgraphError(f"feature cache {str(path)!r} has format {meta.get('format')}")
        if digest != meta.get("sha256"):
            raise ErcgraphError(
                f"feature cache {str(path)!r} is corrupt or truncated (checksum mismatch)"
            )
        if expected_manifest is not None and json.loads(
            json.dumps(expected_manifest, default=str)
        ) != meta.get("manifest"):
            raise ErcgraphError(f"feature cache {str(path)!r} is stale (its manifest differs)")
        try:
            tensors = _mapped_tensors(path) if mmap else load(path.read_bytes())
        except Exception as exc:
            raise ErcgraphError(f"feature cache {str(path)!r} is corrupt: {exc}") from exc
        mods = sorted({k.rsplit(".", 1)[0] for k in tensors})
        feats, present = {}, {}
        for m in mods:
            x = tensors[f"{m}.x"]
            if not all(bool(torch.isfinite(b).all()) for b in torch.split(x, BLOCK_ROWS)):
                raise ErcgraphError(
                    f"feature cache {str(path)!r}: modality {m!r} has non-finite values"
                )
            feats[m] = x
            present[m] = tensors[f"{m}.present"].bool()
        return cls(feats, present, meta.get("manifest", {}), mapped=mmap)


#: Rows checked at a time when a (mapped) store is verified.
BLOCK_ROWS = 65536


def sha256_file(path: Path, block: int = 1 << 24) -> str:
    """The file's SHA-256, read in blocks (bounded memory for any file size)."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(block):
            digest.update(chunk)
    return digest.hexdigest()


_NUMPY_DTYPES = {
    "F32": "float32",
    "F64": "float64",
    "F16": "float16",
    "U8": "uint8",
    "I64": "int64",
    "BOOL": "bool",
}


def _mapped_tensors(path: Path) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file, memory-mapped copy-on-write (numpy ``mode="c"``).

    Read from the format's header (8-byte little-endian length, JSON of name → dtype, shape,
    data offsets); an unknown dtype or offsets outside the file raise ValueError.
    """
    import struct

    import numpy as np

    size = path.stat().st_size
    with open(path, "rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        if length > size - 8:
            raise ValueError("header longer than the file")
        header = json.loads(fh.read(length))
    base = 8 + length
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        dtype = np.dtype(_NUMPY_DTYPES[info["dtype"]])
        lo, hi = (int(v) for v in info["data_offsets"])
        shape = tuple(int(v) for v in info["shape"])
        if base + hi > size or hi - lo != dtype.itemsize * int(np.prod(shape, dtype=np.int64)):
            raise ValueError(f"tensor {name!r} does not fit the file")
        if hi == lo:
            out[name] = torch.from_numpy(np.zeros(shape, dtype=dtype))
        else:
            out[name] = torch.from_numpy(
                np.memmap(path, dtype=dtype, mode="c", offset=base + lo, shape=shape)
            )
    return out


def cached(
    path: Path, manifest: dict[str, dict[str, Any]], compute, mmap: bool = False
) -> tuple[FeatureStore, bool]:
    """Return the store at ``path`` if valid for ``manifest``, else ``compute()`` and save it
    (``mmap``: the cached store is memory-mapped, also right after it was computed).

    Returns:
        The store and whether it was reused from the cache.
    """
    for entry in (path, path.with_suffix(".json")):
        reclaim_cache_path(entry)  # a folder in a cache file's place: see there
    if path.exists():
        try:
            store = FeatureStore.load(path, manifest, mmap=mmap)
            log.info("reusing feature cache %s", path)
            return store, True
        except ErcgraphError as exc:
            log.warning("%s; rebuilding it", exc)
    store = compute()
    store.manifest = manifest
    store.save(path)
    if mmap:
        store = FeatureStore.load(path, manifest, mmap=True)
    return store, False
