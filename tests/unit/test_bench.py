"""The bench's arithmetic: each round's copy is compared with the plain runs of the same round."""

import pytest
from devstack.bench import round_ratios


def test_round_ratios_divide_each_copy_by_the_slower_plain_transfer_of_its_round() -> None:
    plain = [
        {"upload_seconds": 0.5, "download_seconds": 0.1},
        {"upload_seconds": 0.2, "download_seconds": 0.8},  # a round where the download is slower
    ]
    assert round_ratios([0.55, 1.0], plain) == pytest.approx([1.1, 1.25])


def test_round_ratios_refuse_rounds_that_do_not_pair() -> None:
    with pytest.raises(ValueError):
        round_ratios([0.5, 0.6], [{"upload_seconds": 0.5, "download_seconds": 0.1}])
