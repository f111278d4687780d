"""Is a checkpoint intact, and is it safe to unpickle? Checked before anything loads it (resume, re-evaluation,
``mfti-eval ckpt_path=``, ``mfti-export``), so a damaged or crafted file is named early, never half-loaded.

Intact: a ``.ckpt`` file is a complete ``torch.save`` zip archive (central directory present, every record inside
the file, the pickle's CRC right); tensor payloads are not re-read (a checkpoint can be tens of GB). A sharded
(torch.distributed.checkpoint) directory has its ``.metadata``, ``meta.pt`` and every shard file long enough.

Safe: a checkpoint is a pickle, and unpickling can run code. mfti-train's checkpoints hold only tensors and plain
containers, which ``torch.load(weights_only=True)`` accepts; a file whose pickle names anything else is refused
unless the user trusts it (``trust_checkpoint=true``, ``mfti-export --trust-checkpoint``). The check reads the
pickle's opcodes without executing them (``torch.serialization.get_unsafe_globals_in_checkpoint``). Loaders that
ignore ``weights_only`` (Lightning's lazy loader for FSDP full checkpoints, torch.distributed.checkpoint's
``.metadata`` and byte items) are covered because every checkpoint passes through here first.
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path

from mfti_lightning.core.errors import CheckpointError, UntrustedCheckpointError

META = "meta.pt"  # the non-tensor part of a sharded checkpoint (Lightning's FSDP/ModelParallel strategies)
DCP_METADATA = ".metadata"  # torch.distributed.checkpoint's index of a sharded checkpoint
TRUST_HINT = (
    "mfti-train's own checkpoints never need that. Only if you trust where the file came from, pass "
    "trust_checkpoint=true (mfti-export: --trust-checkpoint)."
)
# what torch.distributed.checkpoint pickles into .metadata (torch 2.13); anything else is refused
_DCP_GLOBALS = {
    "torch.distributed.checkpoint.metadata": {
        "BytesStorageMetadata",
        "ChunkStorageMetadata",
        "Metadata",
        "MetadataIndex",
        "StorageMeta",
        "TensorProperties",
        "TensorStorageMetadata",
        "_MEM_FORMAT_ENCODING",
    },
    "torch.distributed.checkpoint.filesystem": {"_StorageInfo"},
    "torch.serialization": {"_get_layout"},
    "pathlib": {"PosixPath", "PurePosixPath", "WindowsPath", "PureWindowsPath"},
    "collections": {"OrderedDict"},
}


def check_checkpoint(path: str | Path, trust: bool = False) -> None:
    """Raise :class:`CheckpointError` (damaged) or :class:`UntrustedCheckpointError` (needs more than plain
    types; skipped with ``trust``) for the checkpoint file or sharded directory ``path``."""
    path = Path(path)
    if path.is_dir():
        _check_sharded(path, trust)
        return
    why = damage(path)
    if why:
        raise CheckpointError(f"{path}: damaged checkpoint ({why}).")
    if not trust:
        _refuse_unsafe(path, path)


def damage(path: Path, data: bytes | None = None) -> str | None:
    """Why the ``torch.save`` archive at ``path`` (or in ``data``) is damaged, or None (torch-free, cheap)."""
    try:
        size = len(data) if data is not None else path.stat().st_size
    except FileNotFoundError:
        return "the file is missing"
    if size == 0:
        return "empty file, 0 bytes"
    try:
        with zipfile.ZipFile(io.BytesIO(data) if data is not None else path) as z:
            infos = z.infolist()
            pickles = [i for i in infos if i.filename.endswith("/data.pkl") or i.filename == "data.pkl"]
            if len(pickles) != 1:
                return "not a torch.save archive: no data.pkl inside"
            for info in infos:
                if info.header_offset + info.compress_size > size:
                    return f"record {info.filename} ends past the end of the file ({size} bytes): truncated"
            z.read(pickles[0])  # checks the pickle's CRC
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as e:
        return f"{size} bytes, not a complete torch.save zip archive: {e}; truncated or overwritten?"
    return None


def _refuse_unsafe(source, path: Path, what: str = "") -> None:
    from torch.serialization import get_unsafe_globals_in_checkpoint

    try:
        unsafe = get_unsafe_globals_in_checkpoint(source)
    except Exception as e:  # an unreadable pickle: damaged, not merely unsafe
        raise CheckpointError(f"{path}: damaged checkpoint{what} (its pickle cannot be read: {e}).") from e
    if unsafe:
        raise UntrustedCheckpointError(
            f"{path}{what} holds pickled objects beyond tensors and plain containers "
            f"({', '.join(unsafe[:5])}{' ...' if len(unsafe) > 5 else ''}): loading it could run arbitrary code. "
            + TRUST_HINT
        )


class _Refused(pickle.UnpicklingError):
    """A global outside the allow-list (not damage: the pickle asks for something else)."""


class _DcpMetadataUnpickler(pickle.Unpickler):
    """Unpickles torch.distributed.checkpoint's ``.metadata`` allowing only the classes it is made of."""

    def find_class(self, module, name):
        import torch

        allowed = name in _DCP_GLOBALS.get(module, ()) or (
            module == "torch" and (name == "Size" or isinstance(getattr(torch, name, None), torch.dtype))
        )
        if not allowed:
            raise _Refused(f"{module}.{name}")
        return super().find_class(module, name)


def _check_sharded(path: Path, trust: bool) -> None:
    """A torch.distributed.checkpoint directory: index, Lightning's ``meta.pt``, shard sizes and byte items."""
    index = path / DCP_METADATA
    if not index.is_file() or not (path / META).is_file():
        raise CheckpointError(f"{path}: incomplete sharded checkpoint (no {DCP_METADATA} or {META}).")
    check_checkpoint(path / META, trust)
    try:
        with open(index, "rb") as f:
            metadata = (pickle.Unpickler if trust else _DcpMetadataUnpickler)(f).load()
    except _Refused as e:
        raise UntrustedCheckpointError(
            f"{index} names {e} besides torch.distributed.checkpoint's own classes: loading it could run "
            "arbitrary code. " + TRUST_HINT
        ) from e
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
        raise CheckpointError(f"{index}: damaged checkpoint index ({type(e).__name__}: {e}).") from e
    byte_items = {
        fqn for fqn, md in metadata.state_dict_metadata.items() if type(md).__name__ == "BytesStorageMetadata"
    }
    for key, info in metadata.storage_data.items():
        shard = path / info.relative_path
        end = info.offset + info.length
        if not shard.is_file() or shard.stat().st_size < end:
            raise CheckpointError(f"{shard}: damaged checkpoint shard (missing or shorter than {end} bytes).")
        if getattr(info, "transform_descriptors", None) and not trust:
            raise UntrustedCheckpointError(f"{shard}: shards stored with transforms cannot be checked. " + TRUST_HINT)
        if key.fqn in byte_items and not trust:  # torch.distributed.checkpoint loads these with weights_only=False
            with open(shard, "rb") as f:
                f.seek(info.offset)
                data = f.read(info.length)
            why = damage(shard, data)
            if why:
                raise CheckpointError(f"{shard}: damaged checkpoint item {key.fqn} ({why}).")
            _refuse_unsafe(io.BytesIO(data), shard, f" (item {key.fqn})")
