"""Freed heap memory goes back to the system (the server calls this after loading)."""

import os
import platform

import pytest

from imgclf._memory import release_free_memory


def resident_bytes() -> int:
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
def test_freed_heap_pages_are_returned():
    blocks = [bytearray(64 * 1024) for _ in range(2000)]  # 125 MiB of heap (below mmap's size)
    del blocks[:-1]  # the last one still in use: free() alone cannot shrink the heap past it
    before = resident_bytes()
    assert release_free_memory() is True
    assert before - resident_bytes() > 64 * 2**20
    assert len(blocks[0]) == 64 * 1024
