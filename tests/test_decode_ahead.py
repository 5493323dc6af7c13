"""Decoding ahead: each compressed input inflated once, shared through a local cache, and the
passes' results the same as reading the files themselves."""

import glob
import gzip
import io
import os
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np

from beam_pipeline import decode_ahead, npy_io
from beam_pipeline.decode_ahead import DecodeCache
from tests.support.helpers import write_ragged

LIMIT = 1 << 30


def _npz(tmp_path, name="a.npz", compressed=True):
    x = np.arange(40, dtype=np.float32).reshape(10, 4)
    path = tmp_path / name
    (np.savez_compressed if compressed else np.savez)(path, x=x, lengths=[3, 7], y=[0, 1])
    return str(path), x


def test_a_compressed_file_is_decoded_once_and_shared(tmp_path):
    path, x = _npz(tmp_path)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    first = DecodeCache(str(cache_dir)).get(path, LIMIT)
    again = DecodeCache(str(cache_dir)).get(path, LIMIT)   # another reader: finds it done
    for decoded in (first, again):
        af = npy_io.ArrayFile.of_members(decoded.members)
        np.testing.assert_array_equal(af.open("x").read(), x)
        assert decoded.size == (tmp_path / "a.npz").stat().st_size
    assert first.sha256 == again.sha256
    assert len(list(cache_dir.glob("*.data"))) == 1


def test_files_that_gain_nothing_or_are_broken_are_left_to_the_reader(tmp_path):
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    cache = DecodeCache(str(cache_dir))
    _npz(tmp_path, "stored.npz", compressed=False)
    np.save(tmp_path / "plain.npy", np.zeros(3))
    path, _ = _npz(tmp_path)
    broken = bytearray(open(path, "rb").read())
    broken[len(broken) // 2] ^= 0xFF   # inside the deflated data: CRC or inflate error
    (tmp_path / "broken.npz").write_bytes(bytes(broken))
    for name in ("stored.npz", "plain.npy", "broken.npz"):
        assert cache.get(str(tmp_path / name), LIMIT) is None, name
    assert cache.get("gs://bucket/remote.npz", LIMIT) is None


def test_a_gzip_bomb_is_refused_from_its_header_without_inflating(tmp_path):
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f4", "fortran_order": False, "shape": (1 << 28,)})
    (tmp_path / "bomb.npy.gz").write_bytes(gzip.compress(header.getvalue() + b"\0" * 1000))
    assert npy_io.ArrayFile((tmp_path / "bomb.npy.gz").read_bytes()).decompressed(limit=1 << 20) is None


def test_a_reader_waits_for_the_file_another_party_is_decoding(tmp_path):
    path, x = _npz(tmp_path)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    claimant = DecodeCache(str(cache_dir))
    release = threading.Event()
    decode = claimant._decode

    def slow_decode(*args):
        release.wait(5)
        return decode(*args)

    claimant._decode = slow_decode
    results = {}
    first = threading.Thread(target=lambda: results.update(first=claimant.get(path, LIMIT)))
    first.start()
    while not list(cache_dir.glob("*.claim")):
        pass
    waiter = threading.Thread(target=lambda: results.update(second=DecodeCache(str(cache_dir)).get(path, LIMIT)))
    waiter.start()
    waiter.join(0.2)
    assert waiter.is_alive(), "the second reader must wait for the claimed file"
    release.set()
    first.join()
    waiter.join()
    np.testing.assert_array_equal(npy_io.ArrayFile.of_members(results["second"].members).open("x").read(), x)


def test_the_decoder_process_fills_the_cache_and_is_removed_with_it(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        write_ragged(str(tmp_path / f"f{i}.npz"), [rng.normal(size=(5, 2)).astype(np.float32)], [i])
    paths = [str(tmp_path / f"f{i}.npz") for i in range(3)]
    with decode_ahead.decoding_ahead(paths, LIMIT) as decoder:
        cache_dir = decoder.cache_dir
        deadline = time.monotonic() + 60
        while len(glob.glob(os.path.join(cache_dir, "*.json"))) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(glob.glob(os.path.join(cache_dir, "*.data"))) == 3   # all decoded by the helper process
        assert all(DecodeCache(cache_dir).get(p, LIMIT) is not None for p in paths)
    assert not os.path.exists(cache_dir)


def test_zip_members_are_checked_against_their_sizes(tmp_path):
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        arr = io.BytesIO()
        np.save(arr, np.ones(100, np.float32))
        z.writestr("x.npy", arr.getvalue())
    data = bytearray(buf.getvalue())
    # Make the central directory claim a larger member than the data holds.
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("x.npy")
    offset = data.rfind(b"PK\x01\x02") + 24   # central header: uncompressed size
    data[offset:offset + 4] = (info.file_size + 8).to_bytes(4, "little")
    try:
        result = npy_io.ArrayFile(bytes(data)).decompressed(LIMIT)
    except npy_io.errors.BadInputError as e:
        assert e.reason == "corrupt"
    else:
        raise AssertionError(f"a member shorter than its header says was accepted: {result and list(result)}")


def test_a_claim_whose_decoder_was_stopped_is_not_waited_for(tmp_path):
    path, _ = _npz(tmp_path)
    cache_dir = tmp_path / "cache"
    cache_dir.mkdir()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()   # a decoder stopped mid-file: its claim stays, its process is gone
    claim, _, _ = DecodeCache(str(cache_dir))._paths(path)
    with open(claim, "w") as f:
        f.write(str(gone.pid))
    started = time.monotonic()
    assert DecodeCache(str(cache_dir)).get(path, LIMIT) is None   # the reader reads the file itself
    assert time.monotonic() - started < 5
