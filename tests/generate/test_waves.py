"""Wave sizing: the first wave from max_tokens, the next from the yield so far, bounded growth."""

import math

from synthcpt.s5_generate.run import WAVE_GROWTH, next_wave


def test_first_wave_assumes_full_answers_and_keeps_the_minimum():
    assert next_wave(2000, 0, 0, 0, max_tokens=256, min_wave=8, single_wave=False) == math.ceil(1.15 * 2000 / 256)
    assert next_wave(200, 0, 0, 0, max_tokens=256, min_wave=8, single_wave=False) == 8


def test_a_poor_small_first_wave_cannot_set_off_a_huge_second_one():
    # 9 requests gave 140 usable tokens: the yield alone would ask for 136 more.
    uncapped = math.ceil(1.15 * 1860 / (140 / 9))
    assert uncapped > WAVE_GROWTH * 9
    assert next_wave(1860, 9, 140, 9, max_tokens=256, min_wave=8, single_wave=False) == WAVE_GROWTH * 9


def test_a_large_enough_wave_is_sized_by_the_yield():
    assert next_wave(1000, 100, 5000, 100, max_tokens=256, min_wave=8, single_wave=False) == math.ceil(1.15 * 1000 / 50)


def test_a_single_wave_backend_is_not_capped_and_asks_with_the_wider_margin():
    assert next_wave(1860, 9, 140, 9, max_tokens=256, min_wave=8, single_wave=True) == math.ceil(1.6 * 1860 / (140 / 9))


def test_nothing_accepted_yet_doubles_the_last_wave():
    assert next_wave(2000, 24, 0, 16, max_tokens=256, min_wave=8, single_wave=False) == 32
