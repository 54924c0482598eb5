"""Counts in messages read as English: "1 epoch", "2 epochs", "3,512 runs", "42 million multiply-adds"."""
from trainer.words import approximately, counted, value


def test_a_count_takes_the_noun_in_the_right_number_with_thousands_separated():
    assert counted(1, "epoch") == "1 epoch"
    assert counted(0, "run") == "0 runs"
    assert counted(3512, "run") == "3,512 runs"
    assert counted(2, "class", "classes") == "2 classes"


def test_a_large_count_is_said_in_words_with_three_digits():
    assert approximately(812) == "812"
    assert approximately(12_345) == "12.3 thousand"
    assert approximately(42_000_000) == "42 million"
    assert approximately(3.14e9) == "3.14 billion"


def test_a_value_keeps_four_decimals_until_it_is_too_large_to_read():
    assert value(0.5) == "0.5000" and value(-0.01, sign=True) == "-0.0100"
    assert value(2985054926625057538048.0) == "2.985e+21"  # a diverged loss's cross-entropy
    assert value(7.9e18, sign=True) == "+7.9e+18" and value(float("nan")) == "nan"
