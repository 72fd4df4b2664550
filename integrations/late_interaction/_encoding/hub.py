"""Turn a checkpoint name into a local folder: a path as it is, a Hub id through a snapshot.

Failures are told apart, because the fix differs: a folder or repository that does not exist
(:class:`CheckpointNotFoundError`) versus a Hub that cannot be reached, or offline mode
(``ConnectionError``: the checkpoint may exist).
"""

from __future__ import annotations

from pathlib import Path

from late_interaction.exceptions import CheckpointFormatError, CheckpointNotFoundError

_HUB_IGNORE = ["*.onnx", "onnx/*", "openvino/*", "*.h5", "*.msgpack", "*.ot", "*.tflite"]


def resolve_folder(name_or_path: str, revision: str | None = None) -> Path:
    """Return a local folder for a local path or a Hugging Face Hub id.

    Raises:
        CheckpointFormatError: If the path is a file rather than a folder.
        CheckpointNotFoundError: If no such folder exists, or the Hub has no such repository or
            revision.
        ConnectionError: If the Hub cannot be reached (or ``HF_HUB_OFFLINE=1``) and the id is not
            in the local cache.
    """
    path = Path(name_or_path).expanduser()
    if path.exists():
        if not path.is_dir():
            msg = f"{name_or_path!r} is a file; expected a checkpoint folder or a hub id."
            raise CheckpointFormatError(msg)
        return path.resolve()
    looks_local = name_or_path.startswith((".", "/", "~")) or name_or_path.count("/") > 1
    if looks_local:
        msg = f"checkpoint folder {name_or_path!r} does not exist; check the path."
        raise CheckpointNotFoundError(msg)
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import (
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    try:
        local = snapshot_download(name_or_path, revision=revision, ignore_patterns=_HUB_IGNORE)
    except (RepositoryNotFoundError, RevisionNotFoundError) as exc:
        msg = (
            f"{name_or_path!r} is not a local folder, and the Hugging Face Hub has no such "
            f"repository{'' if revision is None else f' at revision {revision!r}'} (or it needs "
            f"a login: {type(exc).__name__}). Check the id, the revision and your HF token."
        )
        # The chain is huggingface_hub's and httpx's internals: the message says it all.
        raise CheckpointNotFoundError(msg) from None
    except LocalEntryNotFoundError:
        # huggingface_hub's answer both offline and when the network fails: not in the cache.
        msg = (
            f"{name_or_path!r} is not a local folder and could not be downloaded from the "
            "Hugging Face Hub, nor found in its cache (offline, or HF_HUB_OFFLINE=1). Download "
            f"it once where the Hub is reachable: `hf download {name_or_path}` "
            "(`huggingface-cli download` before huggingface_hub 1.0), then run with "
            "HF_HUB_OFFLINE=1; or pass the path of a downloaded checkpoint folder."
        )
        raise ConnectionError(msg) from None
    return Path(local)
