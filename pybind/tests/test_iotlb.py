"""The IOTLB designs from Python: every design answers like `reference` on the same operations."""

import numpy as np
import pytest

import vhostlab

DESIGNS = vhostlab.designs()
PAGE = 4096


def test_designs_lists_reference_first():
    assert DESIGNS[0] == "reference"
    assert len(DESIGNS) == len(set(DESIGNS))


def test_unknown_design_is_a_value_error_naming_it():
    with pytest.raises(ValueError, match="no-such-design"):
        vhostlab.Iotlb("no-such-design")


@pytest.mark.parametrize("design", DESIGNS)
def test_insert_translate_invalidate(design):
    t = vhostlab.Iotlb(design)
    assert t.design == design and len(t) == 0
    assert t.insert(0x10000, 2 * PAGE, 0x7F0000000000, "rw") in ("ok", "evicted")
    hit = t.translate(0x10000 + 100, 64, "r")
    assert hit.hit and hit.outcome == "hit"
    assert hit.uaddr == 0x7F0000000000 + 100 and hit.len == 64
    assert t.translate(0x9000).outcome == "miss" and t.translate(0x9000).uaddr is None
    assert t.size() >= 1 and t.memory_bytes() > 0
    assert t.invalidate(0x10000, PAGE) >= 1
    assert not t.translate(0x10000 + 100)
    assert t.invalidate_all() >= 0
    assert not t.translate(0x10000 + PAGE)


@pytest.mark.parametrize("design", DESIGNS)
def test_permissions(design):
    t = vhostlab.Iotlb(design)
    t.insert(0x20000, PAGE, 0x1000000, "r")
    assert t.translate(0x20000, 8, "r").hit
    assert t.translate(0x20000, 8, "w").outcome == "access_fail"
    assert t.translate(0x20000, 8, "rw").outcome == "access_fail"


def test_bad_arguments_are_value_errors():
    t = vhostlab.Iotlb("reference")
    with pytest.raises(ValueError):
        t.insert(0x1000, 0, 0x2000)  # size 0
    with pytest.raises(ValueError):
        t.insert(2**64 - PAGE, 2 * PAGE, 0x2000)  # wraps
    with pytest.raises(ValueError):
        t.insert(0x1000, PAGE, 0x2000, "x")
    with pytest.raises(ValueError):
        t.translate(0x1000, 0)
    with pytest.raises(TypeError):
        t.insert(-1, PAGE, 0)


@pytest.mark.parametrize("design", [d for d in DESIGNS if d != "reference"])
def test_differential_against_reference(design):
    """Random mixed-size inserts, invalidates and lookups: same answers as `reference`
    (capacity-limited designs may evict, so a miss where reference hits is allowed for them
    only when they reported an eviction)."""
    rng = np.random.default_rng(7)
    ref, t = vhostlab.Iotlb("reference"), vhostlab.Iotlb(design)
    evicted = False
    for _ in range(400):
        op = rng.integers(0, 10)
        page = int(rng.integers(0, 256))
        iova = 0x100000 + page * PAGE + int(rng.integers(0, 2)) * 17
        size = int(rng.choice([PAGE, 3 * PAGE, 2 * 1024 * 1024, 100]))
        if op < 5:
            uaddr = 0x7F0000000000 + int(rng.integers(0, 1 << 20)) * PAGE
            perm = str(rng.choice(["r", "w", "rw"]))
            ref.insert(iova, size, uaddr, perm)
            evicted |= t.insert(iova, size, uaddr, perm) == "evicted"
        elif op < 7:
            ref.invalidate(iova, size)
            t.invalidate(iova, size)
        for _ in range(4):
            q = 0x100000 + int(rng.integers(0, 256 * PAGE + 2 * 1024 * 1024))
            n = int(rng.integers(1, 2 * PAGE))
            perm = str(rng.choice(["r", "w"]))
            a, b = ref.translate(q, n, perm), t.translate(q, n, perm)
            if evicted and a.hit and not b.hit:
                continue
            assert (a.outcome, a.uaddr, a.len) == (b.outcome, b.uaddr, b.len), (design, hex(q), n, perm)


@pytest.mark.parametrize("design", DESIGNS)
def test_translate_batch_matches_single_lookups(design):
    t = vhostlab.Iotlb(design)
    for i in range(0, 32, 2):
        t.insert(0x40000000 + i * PAGE, PAGE, 0x10000000 + i * 2 * PAGE, "rw")
    iovas = np.arange(0x40000000, 0x40000000 + 32 * PAGE, 512, dtype=np.uint64)
    got = t.translate_batch(iovas, 8, "r")
    hits = sum(t.translate(int(i), 8, "r").hit for i in iovas)
    assert got["translations"] == len(iovas)
    assert got["hits"] == hits
    assert got["hits"] + got["misses"] + got["access_fails"] == len(iovas)
