from scorekit.engine.prefix import common_prefix_len, group_by_prefix


def test_groups_share_a_prefix_and_keep_a_token_to_run():
    template = list(range(100, 120))
    seqs = [template + [1, 2, 3], [7, 8], template + [1, 5], template + [9], template[:5] + [0] * 30, template]
    groups, loners = group_by_prefix(seqs, min_prefix=16)
    assert len(groups) == 1
    group = groups[0]
    assert sorted(group.members) == [0, 2, 3, 5]
    assert group.prefix_len == 19  # `template` itself (20 tokens) must keep its last token to run
    for i in group.members:
        assert seqs[i][: group.prefix_len] == template[:19] and len(seqs[i]) > group.prefix_len
    assert sorted(loners) == [1, 4]


def test_no_group_below_the_minimum():
    groups, loners = group_by_prefix([[1, 2, 3, 4], [1, 2, 3, 5]], min_prefix=4)
    assert groups == [] and sorted(loners) == [0, 1]
    assert common_prefix_len([1, 2, 3, 4], [1, 2, 3, 5]) == 3
