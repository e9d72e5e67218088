"""Arithmetic in block arguments: ``$c * 4``, ``($c + 1) // 2``, ``max($c // 4, 8)``.

A block's rows may compute a value from the block's arguments. The expression language
is deliberately tiny and safe for untrusted specs: ``$name`` references, decimal numbers,
words (``relu``, ``'relu'``; ``true`` and ``false`` are 1 and 0), ``+ - * / // %``,
comparisons (words compare only ``==`` and ``!=``), ``and``, ``or``, ``not``, parentheses
and the functions ``min``, ``max``, ``ceil``, ``floor``. Arithmetic is exact (fractions);
there is no power operator, expressions and values are bounded, so nothing in a spec can
make evaluation slow.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from fractions import Fraction
from typing import Any

MAX_LENGTH = 200  # characters in one expression
MAX_VALUE = 10**12  # magnitude of any number or intermediate result

# ASCII only: a plain \d also matches Arabic-Indic digits, and Fraction reads '١٢' as 12
_TOKEN = re.compile(r"\s*(?:(\d+(?:\.\d+)?)|\$([A-Za-z_][A-Za-z0-9_]*)"
                    r"|([A-Za-z_][A-Za-z0-9_]*|'[^'$]*'|\"[^\"$]*\")"
                    r"|(//|==|!=|<=|>=|[-+*/%()<>,]))", re.ASCII)
_KEYWORDS = ("and", "or", "not")
_CONSTANTS = {"true": Fraction(1), "false": Fraction(0)}
Value = Fraction | str  # a number, or a word (``relu``) that only compares equal or not
_FUNCS: dict[str, Callable[..., Fraction]] = {
    "min": min,
    "max": max,
    "ceil": lambda x: Fraction(-(-x.numerator // x.denominator)),
    "floor": lambda x: Fraction(x.numerator // x.denominator),
}
_COMPARE = {"<": Fraction.__lt__, "<=": Fraction.__le__, ">": Fraction.__gt__,
            ">=": Fraction.__ge__}


class ExprError(ValueError):
    """A malformed expression, an unknown name, or a value out of bounds."""


def references(text: str) -> list[str]:
    """The ``$names`` an expression uses."""
    return re.findall(r"\$([A-Za-z_][A-Za-z0-9_]*)", text)


def is_expression(value: Any) -> bool:
    return isinstance(value, str) and "$" in value


def evaluate(text: str, env: Mapping[str, Any]) -> Any:
    """The value of ``text``: a lone ``$name`` is the argument itself (any type); anything
    else is arithmetic, an int when whole, else an exact fraction written ``'a/b'``, or a
    word (``$act == relu`` compares words; true and false are 1 and 0)."""
    text = text.strip()
    if len(text) > MAX_LENGTH:
        raise ExprError(f"an expression is limited to {MAX_LENGTH} characters")
    lone = re.fullmatch(r"\$([A-Za-z_][A-Za-z0-9_]*)", text)
    if lone:
        return _lookup(lone.group(1), env)
    value = _Parser(text, env).parse()
    if isinstance(value, str):
        return value
    return int(value) if value.denominator == 1 else f"{value.numerator}/{value.denominator}"


def _lookup(name: str, env: Mapping[str, Any]) -> Any:
    if name not in env:
        known = ", ".join(f"${k}" for k in env) or "none"
        raise ExprError(f"unknown argument ${name} (known: {known})")
    return env[name]


def _number(value: Any) -> Fraction:
    if isinstance(value, bool) or not isinstance(value, (int, float, str, Fraction)):
        raise ExprError(f"{value!r} is not a number")
    try:
        f = Fraction(str(value)) if not isinstance(value, Fraction) else value
    except (ValueError, ZeroDivisionError):
        raise ExprError(f"{value!r} is not a number") from None
    return _bounded(f)


def _value(value: Any) -> Value:
    """An argument as an expression sees it: booleans are 1 and 0, numbers (and number
    text such as ``'1/75'``) exact, any other text a word."""
    if isinstance(value, bool):
        return Fraction(int(value))
    if isinstance(value, str):
        try:
            return _number(value)
        except ExprError:
            return value
    return _number(value)


def _num(value: Value) -> Fraction:
    if isinstance(value, str):
        raise ExprError(f"{value!r} is not a number")
    return value


def _bounded(f: Fraction) -> Fraction:
    if abs(f) > MAX_VALUE or f.denominator > MAX_VALUE:
        raise ExprError(f"a value beyond ±{MAX_VALUE:.0e}")
    return f


class _Parser:
    """Recursive descent: or → and → not → compare → sum → product → unary → atom."""

    def __init__(self, text: str, env: Mapping[str, Any]) -> None:
        self.env = env
        self.tokens: list[tuple[str, str]] = []
        pos = 0
        while pos < len(text):
            m = _TOKEN.match(text, pos)
            if not m or m.end() == pos:
                raise ExprError(f"cannot read the expression at {text[pos:pos + 10]!r}")
            num, ref, word, op = m.groups()
            kind = "num" if num else "ref" if ref else "word" if word else "op"
            if word and word[0] in "'\"":
                kind, word = "text", word[1:-1]
            self.tokens.append((kind, num or ref or word or op))
            pos = m.end()
        self.i = 0

    def peek(self) -> str | None:
        return self.tokens[self.i][1] if self.i < len(self.tokens) else None

    def take(self, expected: str | None = None) -> tuple[str, str]:
        if self.i >= len(self.tokens):
            raise ExprError("the expression ends too early")
        token = self.tokens[self.i]
        if expected is not None and token[1] != expected:
            raise ExprError(f"expected {expected!r}, got {token[1]!r}")
        self.i += 1
        return token

    def parse(self) -> Value:
        value = self.logic()
        if self.i != len(self.tokens):
            raise ExprError(f"unexpected {self.tokens[self.i][1]!r}")
        return value

    def logic(self) -> Value:
        value = self.conjunction()
        while self.peek() == "or":
            self.take()
            right = self.conjunction()
            value = Fraction(int(bool(_num(value)) or bool(_num(right))))
        return value

    def conjunction(self) -> Value:
        value = self.negation()
        while self.peek() == "and":
            self.take()
            right = self.negation()
            value = Fraction(int(bool(_num(value)) and bool(_num(right))))
        return value

    def negation(self) -> Value:
        if self.peek() == "not":
            self.take()
            return Fraction(int(not _num(self.negation())))
        return self.compare()

    def compare(self) -> Value:
        left = self.sum()
        op = self.peek()
        if op in ("==", "!="):
            self.take()
            return Fraction(int((left == self.sum()) == (op == "==")))
        if op in _COMPARE:
            self.take()
            return Fraction(int(_COMPARE[op](_num(left), _num(self.sum()))))
        return left

    def sum(self) -> Value:
        value = self.product()
        while self.peek() in ("+", "-"):
            op = self.take()[1]
            right = _num(self.product())
            value = _bounded(_num(value) + right if op == "+" else _num(value) - right)
        return value

    def product(self) -> Value:
        value = self.unary()
        while self.peek() in ("*", "/", "//", "%"):
            op = self.take()[1]
            right = _num(self.unary())
            value = _num(value)
            if op != "*" and right == 0:
                raise ExprError("division by zero")
            if op == "*":
                value = value * right
            elif op == "/":
                value = value / right
            elif op == "//":
                value = Fraction(value // right)
            else:
                value = value % right
            value = _bounded(value)
        return value

    def unary(self) -> Value:
        if self.peek() == "-":
            self.take()
            return -_num(self.unary())
        return self.atom()

    def atom(self) -> Value:
        kind, text = self.take()
        if kind == "num":
            return _number(text)
        if kind == "ref":
            return _value(_lookup(text, self.env))
        if kind == "text":
            return text
        if kind == "word" and self.peek() != "(":
            if text in _KEYWORDS:
                raise ExprError(f"unexpected {text!r}")
            return _CONSTANTS.get(text, text)  # a word such as relu
        if kind == "word":
            if text not in _FUNCS:
                raise ExprError(f"unknown function {text!r} (known: {', '.join(_FUNCS)})")
            self.take("(")
            args = [_num(self.compare())]
            while self.peek() == ",":
                self.take()
                args.append(_num(self.compare()))
            self.take(")")
            if text in ("ceil", "floor") and len(args) != 1:
                raise ExprError(f"{text} takes one argument")
            return _bounded(_FUNCS[text](*args))
        if text == "(":
            value = self.logic()
            self.take(")")
            return value
        raise ExprError(f"unexpected {text!r}")
