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
