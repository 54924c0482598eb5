"""One line of the benchmark's table (Row: its figures, goal and verdict), and the table as text."""
from __future__ import annotations

import re
from dataclasses import dataclass, field


@dataclass
class Row:
    """One line of the benchmark's table."""

    case: str
    what: str
    harness: float | None = None  # seconds (per epoch, per run or in all, as `unit` says)
    bare: float | None = None
    unit: str = "s/epoch"
    goal: str = ""
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def ratio(self) -> float | None:
        return None if self.harness is None or not self.bare else self.harness / self.bare

    @property
    def met(self) -> bool | None:
        """Whether the row meets its goal: the ratio against a plain number ("<= 1.50"), the harness figure
        against one with a unit ("<= 0.5 s", "<= 3x"); None without a goal."""
        m = re.fullmatch(r"(<=|<)\s*([\d.]+)\s*(\S*)", self.goal)
        value = None if m is None else self.harness if m[3] else self.ratio
        if value is None:
            return None
        return value <= float(m[2]) if m[1] == "<=" else value < float(m[2])


def table(rows: list[Row], device_name: str) -> str:
    """The rows as an aligned text table a user can read."""
    w = max([58] + [len(r.what) for r in rows])
    head = (f"{'case':<11} {'what':<{w}} {'harness':>9} {'bare':>9} {'unit':<10} {'ratio':>6} {'fixed/run':>9}  "
            f"goal")
    lines = [f"benchmark on {device_name}", head, "-" * len(head)]
    for r in rows:
        num = lambda v: "" if v is None else f"{v:9.4f}"  # noqa: E731
        ratio = "" if r.ratio is None else f"{r.ratio:6.3f}"
        fixed = r.extra.get("fixed_s_per_call")
        fixed = "" if fixed is None else f"{fixed:8.3f}s"
        verdict = {True: ": met", False: ": NOT met", None: ""}[r.met]
        lines.append(f"{r.case:<11} {r.what:<{w}} {num(r.harness):>9} {num(r.bare):>9} {r.unit:<10} {ratio:>6} "
                     f"{fixed:>9}  {r.goal}{verdict}")
    return "\n".join(lines)
