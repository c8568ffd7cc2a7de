from scorekit.engine.batching import padding_fraction, plan_batches


def test_batches_respect_budget_size_and_padding():
    lengths = [5, 100, 7, 98, 6, 50, 51, 99, 300]
    batches = plan_batches(lengths, max_batch_tokens=250, max_batch_size=2, max_padding=0.2)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        longest = max(lengths[i] for i in batch)
        assert len(batch) <= 2
        assert longest * len(batch) <= 250 or len(batch) == 1  # one over-budget sequence still runs alone
        assert all(lengths[i] >= 0.8 * longest for i in batch)
    assert padding_fraction(lengths, batches) < 0.1


def test_sorting_cuts_padding_against_arrival_order():
    lengths = [10, 200, 12, 190, 11, 210] * 10
    fifo = [list(range(i, i + 6)) for i in range(0, len(lengths), 6)]
    assert padding_fraction(lengths, plan_batches(lengths, 10_000, 64)) < padding_fraction(lengths, fifo) / 5


def test_byte_cap_bounds_every_batch_whatever_the_token_budget():
    lengths = [512] * 100 + [64] * 100

    def row_bytes(n):  # quadratic in length, like attention
        return n * n

    batches = plan_batches(lengths, max_batch_tokens=10**9, max_batch_size=10**6,
                           row_bytes=row_bytes, max_batch_bytes=10 * 512 * 512)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    for batch in batches:
        assert len(batch) * row_bytes(max(lengths[i] for i in batch)) <= 10 * 512 * 512
    assert max(len(b) for b in batches) > 10  # short rows still batch widely: the cap follows the length
