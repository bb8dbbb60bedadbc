"""Fetch public archives once, verify their checksum, extract them into the data folder."""

from __future__ import annotations

import hashlib
import shutil
import threading
import urllib.error
import urllib.request
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

from tqdm import tqdm

from moe_mlora.errors import DataError, DataUnavailableError


@dataclass(frozen=True)
class Archive:
    """A downloadable zip whose members land in `data_dir/folder`."""

    url: str
    md5: str
    folder: str
    required_files: tuple[str, ...]
    # Checksums of loose files, checked when present: {filename: (algorithm, hexdigest)}.
    file_checksums: dict[str, tuple[str, str]] = field(default_factory=dict)


def file_digest(path: Path, algorithm: str) -> str:
    """Hex digest of a file; 'git-blob' gives what `git hash-object` prints."""
    if algorithm == "git-blob":
        digest = hashlib.sha1(f"blob {path.stat().st_size}\0".encode())
    else:
        digest = hashlib.new(algorithm)
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, algorithm: str, expected: str) -> None:
    actual = file_digest(path, algorithm)
    if actual != expected:
        raise DataError(
            f"{path}: checksum mismatch ({algorithm} {actual}, expected {expected}); "
            "the file is corrupt or not the official release"
        )


def ensure_archive(archive: Archive, data_dir: Path, *, download: bool = True) -> Path:
    """Return the folder with the archive's files, downloading and verifying it when missing."""
    target = data_dir / archive.folder
    missing = [name for name in archive.required_files if not (target / name).is_file()]
    if not missing:
        return target
    where = f"{target} (missing: {', '.join(missing)})"
    if not download:
        raise DataUnavailableError(f"{where}; download disabled. Place the files of {archive.url} there.")
    zip_path = data_dir / "downloads" / Path(archive.url).name
    set_aside = ""
    if zip_path.is_file() and file_digest(zip_path, "md5") != archive.md5:
        bad = zip_path.with_name(zip_path.name + ".bad")
        zip_path.replace(bad)  # a corrupt or foreign archive is kept for inspection, never used
        set_aside = f"; the local {zip_path} failed its md5 check and was moved to {bad}"
    try:
        if not zip_path.is_file():
            _fetch(archive.url, zip_path)
    except (urllib.error.URLError, OSError, TimeoutError) as exc:
        raise DataUnavailableError(
            f"{where}{set_aside}, and downloading {archive.url} failed ({exc}). Download it on a machine with "
            f"internet, unzip it into {data_dir}, or point --data-dir / MOE_MLORA_DATA_DIR at a folder holding "
            f"{archive.folder}/"
        ) from None
    verify_file(zip_path, "md5", archive.md5)
    _extract(zip_path, data_dir, archive.folder)
    still_missing = [name for name in archive.required_files if not (target / name).is_file()]
    if still_missing:
        raise DataError(f"{zip_path}: archive lacks {', '.join(still_missing)} under {archive.folder}/")
    return target


DOWNLOAD_DEADLINE_SECONDS = 600.0  # the whole download, however slowly the bytes trickle in


def _fetch(url: str, destination: Path, deadline_seconds: float = DOWNLOAD_DEADLINE_SECONDS) -> None:
    """Download `url` to `destination` within `deadline_seconds` in all, or leave nothing. The transfer runs in
    a watched thread, so nothing can stretch it past the deadline: a server that stalls in the handshake, or
    sends its body a byte at a time (each byte would reset a socket timeout), is abandoned at the deadline."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_suffix(destination.suffix + ".part")
    stop, failure = threading.Event(), []

    def transfer() -> None:
        try:
            with urllib.request.urlopen(url, timeout=60) as response:  # noqa: S310 - fixed public URLs
                total = int(response.headers.get("Content-Length") or 0) or None
                if stop.is_set():  # the deadline passed during the handshake
                    return
                with partial.open("wb") as out, tqdm(
                    total=total, unit="B", unit_scale=True, desc=f"download {destination.name}"
                ) as bar:
                    while not stop.is_set():
                        chunk = response.read(1 << 16)
                        if not chunk:
                            return
                        out.write(chunk)
                        bar.update(len(chunk))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
            failure.append(exc)

    worker = threading.Thread(target=transfer, name=f"download {destination.name}", daemon=True)
    worker.start()
    try:
        worker.join(deadline_seconds)
        if worker.is_alive():
            stop.set()  # the thread ends at its next read; a stalled one dies with the process
            raise TimeoutError(f"{url}: not finished within {deadline_seconds:.0f} s")
        if failure:
            raise failure[0]
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(destination)


def _extract(zip_path: Path, data_dir: Path, folder: str) -> None:
    with zipfile.ZipFile(zip_path) as archive:
        for member in archive.namelist():
            # Only extract the dataset's own folder, never paths that escape the data dir.
            if not member.startswith(f"{folder}/") or ".." in Path(member).parts:
                continue
            destination = data_dir / member
            if member.endswith("/"):
                destination.mkdir(parents=True, exist_ok=True)
                continue
            destination.parent.mkdir(parents=True, exist_ok=True)
            with archive.open(member) as src, destination.open("wb") as dst:
                shutil.copyfileobj(src, dst)
