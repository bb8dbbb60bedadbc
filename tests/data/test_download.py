import hashlib
import zipfile

import pytest

from moe_mlora.data.download import Archive, ensure_archive, file_digest
from moe_mlora.errors import DataError, DataUnavailableError


def make_zip(tmp_path):
    source = tmp_path / "source.zip"
    with zipfile.ZipFile(source, "w") as archive:
        archive.writestr("toy/a.txt", "alpha\n")
        archive.writestr("toy/b.txt", "beta\n")
        archive.writestr("../evil.txt", "escape")
    return source, hashlib.md5(source.read_bytes()).hexdigest()


def test_archive_is_fetched_verified_and_extracted(tmp_path):
    source, md5 = make_zip(tmp_path)
    archive = Archive(source.as_uri(), md5, "toy", ("a.txt", "b.txt"))
    folder = ensure_archive(archive, tmp_path / "data")
    assert (folder / "a.txt").read_text() == "alpha\n"
    assert not (tmp_path / "evil.txt").exists()
    # A second call finds the files and does not need the source.
    source.unlink()
    assert ensure_archive(archive, tmp_path / "data") == folder


def test_archive_with_wrong_md5_is_rejected(tmp_path):
    source, _ = make_zip(tmp_path)
    archive = Archive(source.as_uri(), "0" * 32, "toy", ("a.txt",))
    with pytest.raises(DataError, match="checksum mismatch"):
        ensure_archive(archive, tmp_path / "data")


def test_unreachable_archive_says_where_to_put_the_files(tmp_path):
    archive = Archive((tmp_path / "nowhere.zip").as_uri(), "0" * 32, "toy", ("a.txt",))
    with pytest.raises(DataUnavailableError, match=r"toy \(missing: a\.txt\).*unzip it into"):
        ensure_archive(archive, tmp_path / "data")


def test_git_blob_digest_matches_git_hash_object(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"hello\n")
    # `printf 'hello\n' | git hash-object --stdin`
    assert file_digest(path, "git-blob") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_a_local_archive_failing_its_md5_is_named_and_moved_aside(tmp_path):
    data = tmp_path / "data"
    local = data / "downloads" / "nowhere.zip"
    local.parent.mkdir(parents=True)
    local.write_bytes(b"not the release")
    archive = Archive((tmp_path / "nowhere.zip").as_uri(), "0" * 32, "toy", ("a.txt",))
    with pytest.raises(DataUnavailableError, match=r"nowhere\.zip failed its md5 check and was moved to .*nowhere\.zip\.bad"):
        ensure_archive(archive, data)
    assert not local.exists() and local.with_name("nowhere.zip.bad").read_bytes() == b"not the release"


def test_a_download_that_trickles_stops_at_its_deadline_and_leaves_no_partial_file(tmp_path, monkeypatch):
    import io
    import time

    from moe_mlora.data import download

    class Trickle(io.BytesIO):
        headers = {}

        def read(self, size=-1):
            time.sleep(0.05)
            return b"x"

        def __enter__(self):
            return self

        def __exit__(self, *args):
            return False

    monkeypatch.setattr(download.urllib.request, "urlopen", lambda url, timeout: Trickle())
    destination = tmp_path / "big.zip"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="not finished within"):
        download._fetch("https://example.invalid/big.zip", destination, deadline_seconds=0.3)
    assert time.monotonic() - started < 5
    assert not destination.exists() and not destination.with_suffix(".zip.part").exists()


def test_a_download_that_stalls_in_the_handshake_stops_at_its_deadline(tmp_path, monkeypatch):
    import threading
    import time

    from moe_mlora.data import download

    never = threading.Event()

    def stalled(url, timeout):
        never.wait()  # a proxy that accepts the connection and never answers

    monkeypatch.setattr(download.urllib.request, "urlopen", stalled)
    destination = tmp_path / "big.zip"
    started = time.monotonic()
    with pytest.raises(TimeoutError, match="not finished within"):
        download._fetch("https://example.invalid/big.zip", destination, deadline_seconds=0.3)
    assert time.monotonic() - started < 5
    never.set()
    assert not destination.exists() and not destination.with_suffix(".zip.part").exists()
