"""The load generator freezes what survived a full collection, and only then."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from benchmarks.loadgen import _FullCollections


@pytest.fixture
def collections() -> Iterator[_FullCollections]:
    watcher = _FullCollections()
    watcher.watch()
    yield watcher
    gc.callbacks.remove(watcher._on_collection)
    gc.unfreeze()


def test_survivors_of_a_full_collection_are_frozen_at_the_next_report(
    collections: _FullCollections,
) -> None:
    frozen_before = gc.get_freeze_count()
    collections.freeze_survivors()
    assert gc.get_freeze_count() == frozen_before  # no full collection yet

    gc.collect(1)
    collections.freeze_survivors()
    assert gc.get_freeze_count() == frozen_before  # a younger one does not count

    survivor = [object() for _ in range(100)]
    gc.collect()
    collections.freeze_survivors()
    assert gc.get_freeze_count() > frozen_before
    assert survivor  # alive, so frozen rather than collected

    # Once only per full collection.
    frozen = gc.get_freeze_count()
    more: list[list[int]] = [[] for _ in range(100)]
    collections.freeze_survivors()
    assert gc.get_freeze_count() == frozen
    assert more
