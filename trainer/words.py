"""Counts in messages: "1 epoch", "2 epochs", "3,512 runs" (a message said "1 epochs" and "over 1 comparisons")."""
from __future__ import annotations


def counted(n: int, noun: str, plural: str | None = None) -> str:
    """n and noun, the noun in its plural (noun + "s" unless given) unless n is 1; n with thousands separators."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def approximately(n: float) -> str:
    """A large count in words, three significant digits: 812, 12.3 thousand, 42 million, 3.1 billion."""
    for scale, word in ((1e9, "billion"), (1e6, "million"), (1e3, "thousand")):
        if abs(n) >= scale:
            return f"{n / scale:.3g} {word}"
    return f"{n:.3g}"


def value(x: float, sign: bool = False) -> str:
    """A metric's value: 4 decimals (with its sign when sign), or 4 significant digits in scientific notation from
    a million up (a diverged loss's cross-entropy of 3e21 printed as 2985054926625057538048.0000)."""
    plus = "+" if sign else ""
    return f"{x:{plus}.4f}" if abs(x) < 1e6 or x != x else f"{x:{plus}.4g}"
