"""Counts in messages read as English: "1 epoch", "2 epochs", "3,512 runs", "42 million multiply-adds"."""
from trainer.words import approximately, counted


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
