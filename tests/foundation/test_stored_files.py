"""Index files kept in remote storage (no local path, as on S3) are copied to this machine once, completely, and
an interrupted copy is redone; their stamps change when a file does."""

import json
import os

from django.core.files.base import ContentFile
from django.core.files.storage import FileSystemStorage

from lineage import stored_files


class RemoteLikeStorage:
    """Files on disk behind the storage API, but no local path: what an S3-compatible storage answers."""

    def __init__(self, location):
        self._files = FileSystemStorage(location=location)

    def save(self, name, content):
        return self._files.save(name, content)

    def open(self, name, mode="rb"):
        return self._files.open(name, mode)

    def path(self, name):
        raise NotImplementedError("This backend doesn't support absolute paths.")


def test_remote_index_files_are_copied_once_and_completely(tmp_path, monkeypatch):
    storage = RemoteLikeStorage(location=tmp_path / "remote")
    storage.save("idx/manifest.json", ContentFile(json.dumps({"files": ["a.bin", "b.bin"]}).encode()))
    storage.save("idx/a.bin", ContentFile(b"alpha"))
    storage.save("idx/b.bin", ContentFile(b"beta"))
    storage.save("idx/unlisted.bin", ContentFile(b"never copied"))
    monkeypatch.setattr(stored_files, "default_storage", storage)
    reads = []

    def files_of(raw):
        reads.append(raw)
        return json.loads(raw)["files"]

    cache = tmp_path / "cache" / "hash1"
    directory = stored_files.local_directory(storage_prefix="idx", manifest_name="manifest.json", cache_dir=cache,
                                             files_of=files_of)
    assert directory == cache and (cache / "a.bin").read_bytes() == b"alpha" and (cache / "b.bin").read_bytes() == b"beta"
    assert not (cache / "unlisted.bin").exists() and (cache / ".complete").exists()
    stamps = stored_files.file_stamps(directory)
    assert set(stamps) == {"manifest.json", "a.bin", "b.bin", ".complete"}

    # A second use reads nothing from storage.
    assert stored_files.local_directory(storage_prefix="idx", manifest_name="manifest.json", cache_dir=cache,
                                        files_of=files_of) == cache and len(reads) == 1
    # A changed file changes the stamps; an interrupted copy (no marker) is redone from storage.
    (cache / "a.bin").write_bytes(b"tampered!")
    assert stored_files.file_stamps(directory) != stamps
    os.remove(cache / ".complete")
    stored_files.local_directory(storage_prefix="idx", manifest_name="manifest.json", cache_dir=cache, files_of=files_of)
    assert (cache / "a.bin").read_bytes() == b"alpha" and len(reads) == 2


def test_local_storage_is_used_in_place(tmp_path, monkeypatch):
    storage = FileSystemStorage(location=tmp_path / "local")
    storage.save("idx/manifest.json", ContentFile(b"{}"))
    monkeypatch.setattr(stored_files, "default_storage", storage)
    directory = stored_files.local_directory(storage_prefix="idx", manifest_name="manifest.json",
                                             cache_dir=tmp_path / "unused", files_of=lambda raw: [])
    assert directory == tmp_path / "local" / "idx" and not (tmp_path / "unused").exists()
