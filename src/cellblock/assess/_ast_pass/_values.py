"""The values the AST pass reasons about: constants, qualified references and sequences."""

from __future__ import annotations

import ast
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Literal

MAX_ALTS = 8  # candidate values kept per expression
MAX_DEPTH = 24  # resolution recursion bound
MAX_SEQ = 20_000  # elements of a literal, a range or a string that the pass materializes
# elements a comprehension is evaluated over: hidden strings are built from short sequences, while
# generated test code often fills thousands of numbers it never hides anything in (each one a few
# evaluation steps, all of them before the budget would stop them)
MAX_COMPREHENSION = 4096
MAX_DECODED = 1 << 20  # bytes a decoder may produce
MAX_PAYLOAD_DEPTH = 3  # nesting of decoded payloads analyzed recursively
MAX_PAYLOAD = 64 << 10  # characters of a decoded payload parsed and analyzed as Python
HUGE = 1 << 256  # integers above this are not folded, only flagged
MAX_FOLDED = MAX_DECODED  # characters a folded string may have (longer ones are unknown)
# Work per assessment (the module and every payload in it): evaluating comprehensions element by
# element costs steps, and nested comprehensions multiply them; materialized values (strings,
# sequences) cost volume, a sequence element counting as much as ``SEQ_ITEM_VOLUME`` characters.
MAX_STEPS = 500_000
MAX_VOLUME = 64 << 20
SEQ_ITEM_VOLUME = 64

Kind = Literal["str", "bytes", "int", "ref", "seq", "caller", "getter", "code"]


@dataclass(frozen=True)
class Val:
    """A statically known value: a constant, a reference to a qualified name, or a sequence."""

    kind: Kind
    value: object
    obf: bool = False  # produced by folding, computed lookups or reflection
    decoded: bool = False  # produced by a decoder (base64, zlib, hex, rot13, chr, reversal)


class BudgetExhausted(Exception):
    """The assessment's evaluation budget ran out: the value being computed is unknown."""


class AnalysisDeadline(Exception):
    """The pass ran past its time limit: it stops, and the program is judged for it."""


_TICKS_PER_CLOCK_READ = 256


class Budget:
    """The evaluation work left for one assessment, shared by the module and its payloads.

    Without it, evaluation grows with the product of the program's loops rather than its size
    (``[[i + j for j in range(n)] for i in range(n)]``, a decoded megabyte joined a thousand
    times). Once it is spent, every further value that needs evaluating is unknown: unknown
    values at a sink are flagged on their own (a computed import, ``getattr`` or ``exec``), and
    name resolution, which costs nothing here, keeps working.
    """

    def __init__(
        self, steps: int = MAX_STEPS, volume: int = MAX_VOLUME, deadline: float | None = None
    ) -> None:
        self.steps = steps
        self.volume = volume
        self.deadline = deadline  # time.thread_time() past which the pass gives up
        self._ticks = 0

    def tick(self) -> None:
        """A unit of the pass's work: the backstop behind the budgets, for paths they miss."""
        self._ticks += 1
        if (self.deadline is not None and self._ticks % _TICKS_PER_CLOCK_READ == 0
                and time.thread_time() > self.deadline):
            raise AnalysisDeadline

    @property
    def exhausted(self) -> bool:
        return self.steps < 0 or self.volume < 0

    def step(self) -> None:
        self.steps -= 1
        if self.steps < 0:
            raise BudgetExhausted

    def materialize(self, amount: int) -> None:
        """Pay for a value about to be built; raises before any work once the budget is spent."""
        if self.exhausted or amount > MAX_VOLUME // 8:  # no single value takes most of it
            raise BudgetExhausted
        self.volume -= max(amount, 0)  # 'x' * -9 builds nothing and refunds nothing
        if self.volume < 0:
            raise BudgetExhausted

    def afford_string(self, size: int) -> bool:
        """Pay for a folded string of ``size`` characters; False (left unknown) when it would
        be longer than ``MAX_FOLDED``."""
        if size > MAX_FOLDED:
            return False
        self.materialize(size)
        return True


def seq_volume(n: int) -> int:
    """What materializing a sequence of ``n`` elements costs."""
    return n * SEQ_ITEM_VOLUME


def sized_len(v: Val) -> int | None:
    """How many elements iterating ``v`` yields, without materializing them."""
    if v.kind in ("str", "bytes", "seq") and isinstance(v.value, str | bytes | tuple | range):
        return len(v.value)
    return None


def as_str(v: Val) -> str | None:
    if v.kind == "str" and isinstance(v.value, str):
        return v.value
    return None


def as_ref(v: Val) -> str | None:
    if v.kind == "ref" and isinstance(v.value, str):
        return v.value
    return None


def combos(args: list[list[Val]]) -> Iterator[list[Val]]:
    """First-candidate combinations of resolved arguments (bounded)."""
    if not args:
        return
    heads = args[0][:4]
    rest = [a[0] for a in args[1:] if a]
    if len(rest) != len(args) - 1:
        rest = rest[:0]
    for h in heads:
        yield [h, *rest]


def as_seq(v: Val) -> tuple[Val, ...] | None:
    if v.kind == "seq" and isinstance(v.value, tuple):
        return v.value
    if v.kind == "seq" and isinstance(v.value, range):  # kept lazy until iterated
        return tuple(Val("int", i) for i in v.value)
    if v.kind == "bytes" and isinstance(v.value, bytes):
        return tuple(Val("int", i) for i in v.value)
    if v.kind == "str" and isinstance(v.value, str):
        return tuple(Val("str", ch) for ch in v.value)
    return None


def as_ints(v: Val) -> list[int] | None:
    seq = as_seq(v)
    if seq is None:
        return None
    out = []
    for x in seq:
        if x.kind != "int" or not isinstance(x.value, int) or not 0 <= x.value < 256 ** 4:
            return None
        out.append(x.value)
    return out



def dedupe(vals: list[Val]) -> list[Val]:
    seen: set[tuple[str, object, bool, bool]] = set()
    long_seqs: dict[object, list[object]] = {}  # cheap key -> the sequences kept under it
    out = []
    for v in vals:
        if v.kind == "seq" and isinstance(v.value, tuple) and len(v.value) > 16:
            # equal bindings (k = [...] on two branches) must stay one candidate; hashing every
            # element costs as much as the sequence has, so a cheap key picks which to compare
            key = (len(v.value), v.value[:8], v.value[-8:], v.obf, v.decoded)
            same = long_seqs.setdefault(key, [])
            if any(other == v.value for other in same):
                continue
            same.append(v.value)
            out.append(v)
            continue
        try:
            k = (v.kind, v.value, v.obf, v.decoded)
            hash(k)
        except TypeError:
            out.append(v)
            continue
        if k not in seen:
            seen.add(k)
            out.append(v)
    return out


def is_true(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and bool(node.value) and node.value is not None
