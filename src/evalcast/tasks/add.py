"""Multi-operand addition and subtraction, worked column by column with carries and borrows.

``47+85-9`` is solved one operation at a time, least significant column first, and every step line is
a true equation: ``7+5=12`` (the tens digit is the carry), ``4+8+1=13`` (carry in), ``47+85=132`` (the
operation's result), then ``2-9+10=3`` (borrow), ``3-0-1=2`` (borrow repaid), ``1-0=1``, ``132-9=123``.
Running totals never go negative.
"""

from __future__ import annotations

import random

from evalcast.tasks.base import TaskFamily, Worked

#: level -> (digits of each operand, subtraction allowed). Widths are fixed per level, so the digits of
#: a column sit at fixed offsets of the prompt (mixed widths were much harder for tiny models to align).
#: Length and step count grow with the level; L3 and L4 measured about equally hard for tiny models.
SHAPES = {1: ((2, 1), False), 2: ((2, 2), True), 3: ((3, 3), True), 4: ((2, 2, 1), True), 5: ((3, 3, 1), True)}


def _number(rng: random.Random, digits: int) -> int:
    return rng.randint(10 ** (digits - 1) if digits > 1 else 1, 10**digits - 1)


def column_steps(a: int, b: int, op: str) -> list[str]:
    """The column lines of ``a op b`` (least significant first); empty when both are single digits."""
    width = max(len(str(a)), len(str(b)))
    if width == 1:
        return []
    xs, ys = str(a).zfill(width)[::-1], str(b).zfill(width)[::-1]
    lines, carry = [], 0
    for x, y in zip(map(int, xs), map(int, ys)):
        if op == "+":
            total = x + y + carry
            lines.append(f"{x}+{y}{'+1' if carry else ''}={total}")
            carry = total // 10
        else:
            diff = x - y - carry
            borrow = diff < 0
            lines.append(f"{x}-{y}{'-1' if carry else ''}{'+10' if borrow else ''}={diff + 10 * borrow}")
            carry = int(borrow)
    return lines


def build(rng: random.Random, level: int) -> Worked:
    widths, subtract = SHAPES[level]
    operands = [_number(rng, digits) for digits in widths]
    total, prompt, steps = operands[0], str(operands[0]), []
    for value in operands[1:]:
        op = "-" if subtract and value <= total and rng.random() < 0.5 else "+"
        result = total + value if op == "+" else total - value
        steps += column_steps(total, value, op)
        steps.append(f"{total}{op}{value}={result}")
        prompt += f"{op}{value}"
        total = result
    return Worked(prompt=prompt, steps=tuple(steps), answer=str(total))


ADD = TaskFamily(name="add", domain="arith/add", build=build,
                 description="multi-operand addition/subtraction with column carries and borrows")
