"""The safe NumPy reader: every file kind, and every way a file can be broken."""

import gzip
import io
import zipfile
import zlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from beam_pipeline import errors
from beam_pipeline.reading import npy_io


def _npy_bytes(array: np.ndarray, allow_pickle: bool = False) -> bytes:
    buf = io.BytesIO()
    np.save(buf, array, allow_pickle=allow_pickle)
    return buf.getvalue()


def _npz_bytes(compressed: bool, **arrays) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


ARRAY = np.arange(24, dtype=np.float32).reshape(4, 3, 2)


@pytest.mark.parametrize("data,key", [
    (_npy_bytes(ARRAY), npy_io.SINGLE_ARRAY_KEY),
    (gzip.compress(_npy_bytes(ARRAY)), npy_io.SINGLE_ARRAY_KEY),
    (_npz_bytes(False, x=ARRAY), "x"),
    (_npz_bytes(True, x=ARRAY), "x"),
])
def test_every_file_kind_reads_the_same_array(data, key):
    af = npy_io.ArrayFile(data)
    np.testing.assert_array_equal(af.open(key).read(), ARRAY)


def test_reads_from_a_seekable_stream_too():
    af = npy_io.ArrayFile(io.BytesIO(_npz_bytes(True, x=ARRAY, y=np.arange(4))))
    assert sorted(af.keys) == ["x", "y"]
    assert af.open("x").shape == (4, 3, 2)


def test_fortran_order_is_honoured():
    array = np.asfortranarray(ARRAY)
    np.testing.assert_array_equal(npy_io.ArrayFile(_npy_bytes(array)).open("").read(), ARRAY)


def _reason(data: bytes, key: str = npy_io.SINGLE_ARRAY_KEY) -> str:
    with pytest.raises(errors.BadInputError) as info:
        npy_io.ArrayFile(data).open(key).read()
    return info.value.reason


def test_object_arrays_are_refused_never_unpickled():
    data = _npy_bytes(np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    assert _reason(data) == errors.PICKLED


def test_header_claiming_a_huge_array_fails_without_allocating_it():
    header = _npy_bytes(np.zeros(1, np.float64)).replace(b"(1,)", b"(1000000000000,)")
    assert _reason(header) == errors.TRUNCATED


@pytest.mark.parametrize("data,reason", [
    (b"", errors.EMPTY_FILE),
    (b"this is not numpy at all", errors.CORRUPT),
    (_npy_bytes(ARRAY)[:-10], errors.TRUNCATED),
    (b"\x93NUMPY\x01\x00\x10\x00{'descr': garbage", errors.CORRUPT),
    (gzip.compress(_npy_bytes(ARRAY))[:-12], errors.CORRUPT),
    (_npz_bytes(True, x=ARRAY)[:40], errors.CORRUPT),
])
def test_broken_files_get_a_reason(data, reason):
    assert _reason(data) == reason


def test_zip_crc_mismatch_is_corrupt():
    data = bytearray(_npz_bytes(False, x=ARRAY))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("x.npy")
    data[info.header_offset + 30 + len("x.npy") + 200] ^= 0xFF   # a byte inside the stored array
    assert _reason(bytes(data), "x") == errors.CORRUPT


def test_missing_key_is_reported():
    assert _reason(_npz_bytes(True, x=ARRAY), "y") == errors.MISSING_KEY


def test_deflated_member_with_a_flipped_byte_is_corrupt():
    data = bytearray(_npz_bytes(True, x=np.random.default_rng(0).normal(size=(64, 32))))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("x.npy")
    data[info.header_offset + 30 + len("x.npy") + info.compress_size // 2] ^= 0x55
    assert _reason(bytes(data), "x") == errors.CORRUPT


@settings(max_examples=200, deadline=None)
@given(payload=st.binary(min_size=0, max_size=5000), repeat=st.integers(1, 300), level=st.integers(0, 9),
       pieces=st.lists(st.integers(1, 70000), min_size=1, max_size=8))
def test_inflate_stream_returns_exactly_the_member_for_any_read_sizes(payload, repeat, level, pieces):
    data = payload * repeat
    packer = zlib.compressobj(level, zlib.DEFLATED, -15)
    compressed = packer.compress(data) + packer.flush()
    stream = npy_io._InflateStream(memoryview(compressed), zlib.crc32(data), len(data))
    out, i = [], 0
    while True:
        piece = stream.read(pieces[i % len(pieces)])
        i += 1
        if not piece:
            break
        out.append(piece)
    assert b"".join(out) == data


def test_inflate_stream_refuses_a_cut_member():
    data = np.random.default_rng(1).normal(size=5000).tobytes()
    compressed = zlib.compress(data)[2:-4]   # raw deflate
    stream = npy_io._InflateStream(memoryview(compressed[: len(compressed) // 2]), zlib.crc32(data), len(data))
    with pytest.raises(zipfile.BadZipFile):
        stream.read(len(data))


def test_inflate_stream_drains_output_held_after_all_input_is_consumed():
    # ISA-L may take all the input on a call whose output limit is reached (an empty
    # unconsumed_tail), keeping the rest of the output inside the inflater.
    data = np.random.default_rng(2).normal(size=16520).astype(np.float32).tobytes()
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    compressed = packer.compress(data) + packer.flush()
    stream = npy_io._InflateStream(memoryview(compressed), zlib.crc32(data), len(data))
    assert stream.read(6) + stream.read(len(data)) == data


def _deflated(data: bytes) -> memoryview:
    packer = zlib.compressobj(6, zlib.DEFLATED, -15)
    return memoryview(packer.compress(data) + packer.flush())


@pytest.mark.parametrize("first", [0, 1, 128, 70000])
def test_read_rest_inflates_what_the_stream_has_not_returned_yet(first):
    data = np.random.default_rng(3).normal(size=20000).tobytes()
    stream = npy_io._InflateStream(_deflated(data), zlib.crc32(data), len(data))
    head = stream.read(first)
    assert stream.remaining == len(data) - first
    assert head + bytes(stream.read_rest()) == data
    assert stream.read(1) == b""


@pytest.mark.parametrize("change", ["crc", "size", "cut"])
def test_read_rest_refuses_a_member_that_does_not_match_its_header(change):
    data = np.random.default_rng(4).normal(size=5000).tobytes()
    compressed = _deflated(data)
    crc, size = zlib.crc32(data), len(data)
    if change == "crc":
        crc ^= 1
    elif change == "size":
        size -= 8
    else:
        compressed = compressed[: len(compressed) // 2]
    with pytest.raises((zipfile.BadZipFile, npy_io.deflate.DeflateError)):
        npy_io._InflateStream(compressed, crc, size).read_rest()


def test_read_rest_refuses_a_size_no_deflate_stream_reaches_before_allocating():
    with pytest.raises(zipfile.BadZipFile, match="larger than its compressed data"):
        npy_io._InflateStream(_deflated(b"\0" * 100), 0, 10 ** 12).read_rest()
