import pytest

from petdiff.utils import parse_int_list


def test_parse_int_list_ranges_and_singles():
    assert parse_int_list("0-3,7,10-11") == [0, 1, 2, 3, 7, 10, 11]
    assert parse_int_list(5) == [5]
    with pytest.raises(ValueError, match="seeds"):
        parse_int_list("3-1")
    with pytest.raises(ValueError, match="seeds"):
        parse_int_list("a-b")
