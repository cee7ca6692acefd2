from __future__ import annotations

from mubench.engine.batching import length_batches


def test_length_batches_minimise_padding_plus_call_cost():
    lengths = [5, 1, 100, 2]
    # one batch: 4 * 100 + 10 = 410; [1, 2, 5] + [100]: 15 + 10 + 100 + 10 = 135 (the cheapest)
    assert length_batches(lengths, max_rows=4, call_cost=10) == [[1, 3, 0], [2]]
    # at most two rows: [1, 2] [5] [100] = 4 + 10 + 5 + 10 + 100 + 10 = 139
    assert length_batches(lengths, max_rows=2, call_cost=10) == [[1, 3], [0], [2]]
    # a large call cost packs rows together
    assert length_batches(lengths, max_rows=4, call_cost=1000) == [[1, 3, 0, 2]]
    assert length_batches([], max_rows=4) == []
