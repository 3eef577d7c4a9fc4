"""memory.py: glibc's allocator is told to keep freed tensor memory (where there is a glibc)."""

from __future__ import annotations

import platform

import pytest

from metarl.memory import keep_freed_memory


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt tuning is glibc-only")
def test_glibc_accepts_the_tuning_and_it_is_idempotent():
    assert keep_freed_memory() is True
    assert keep_freed_memory() is True
