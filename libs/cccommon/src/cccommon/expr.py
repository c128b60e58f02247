"""Safe condition and formula language of the router, the aggregates, likwid and the tagger (spec §5.6).

Upstream uses two Go languages (expr-lang for rule conditions, gval for aggregate and likwid
formulas); this module accepts their union with one hand-written tokenizer and recursive-descent
parser. An expression is compiled once into a tree of closures (cached by source text) and then
evaluated many times against an environment; nothing is ever handed to `eval`/`exec`, and no
Python attribute of any value is reachable from the language.

Public API:

* `compile_expr(source, functions=())` -> `Expression` (cached). Raises `ExprError` with the
  position of a syntax error, an unknown function or a wrong argument count.
* `Expression.evaluate(env, functions=None)` -> the value; `Expression.test(env, functions=None)`
  -> bool for conditions (nil counts as false; any other non-bool is an `ExprError`).
  `Expression.names` / `Expression.function_names`: identifiers used as variables / functions.
* `evaluate(source, env)` and `evaluate_condition(source, env)`: compile (cached) and evaluate
  in one call.
* `MessageEnv(msg, extra)`: the names of §5.6 for a message (`name`, `value`, `tags`,
  `msg.HasTag(...)`, `tag_<k>`, the legacy flat lookup, ...), a live view of the message.
* `ExprError(message, position, source)`: syntax and evaluation errors; `position` is the
  0-based character offset into the source text as written.

Language summary (lowest to highest precedence): `c ? a : b`; `||` `or`; `&&` `and`;
`== != < <= > >= in, not in, matches, =~, contains, startsWith, endsWith` (also `not matches`
etc.); `+ -`; `* / %`; `**` (also `^`, right associative); unary `! not - +`; postfix `.name`,
`[index]`, `(args)`. Literals: ints, floats (`1E-9`, `0x1F`), `'...'`/`"..."`/`` `raw` ``
strings, `true`, `false`, `nil`/`null`, lists `[a, b]`. The text `type-id` is replaced by
`typeid` before parsing. Values are nil (None), bool, int, float, string, list and map.

Environments are mappings: a missing name raises `KeyError`, which becomes an `ExprError`
("unknown name"); `MessageEnv` never raises (unknown names are nil, as §5.6 requires). Functions
outside the built-in table (the topology helpers `getCpuCore` ... and any name passed in
`functions=` at compile time) are bound at evaluation time from the `functions` mapping.
"""

from __future__ import annotations

import functools
import math
import operator
import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from cccommon.lineprotocol import go_float
from cccommon.message import CCMessage

__all__ = [
    "BUILTIN_FUNCTIONS",
    "TOPOLOGY_FUNCTIONS",
    "ExprError",
    "ExprMessage",
    "Expression",
    "MessageEnv",
    "compile_expr",
    "evaluate",
    "evaluate_condition",
    "kind_name",
    "to_text",
]

Env = Mapping[str, Any]
Functions = Mapping[str, Callable[..., Any]]
_Fn = Callable[[Any, Any], Any]

_EMPTY: Mapping[str, Any] = {}
_MAX_SOURCE = 100_000


class ExprError(ValueError):
    """A syntax or evaluation error; `position` is a 0-based offset into `source` (None if unknown)."""

    def __init__(self, message: str, position: int | None = None, source: str | None = None) -> None:
        super().__init__(message, position)
        self.message = message
        self.position = position
        self.source = source

    def __str__(self) -> str:
        text = self.message
        if self.position is not None:
            text += f" at position {self.position}"
        if self.source is not None:
            text += f" in expression {self.source!r}"
        return text


class _OpError(Exception):
    """Internal: a type error inside an operator or function; the caller adds the position."""


# ----------------------------------------------------------------------------- values


def kind_name(v: Any) -> str:
    """The language's name for the kind of a value, as used in error messages."""
    if v is None:
        return "nil"
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, int):
        return "int"
    if isinstance(v, float):
        return "float"
    if isinstance(v, str):
        return "string"
    if isinstance(v, list | tuple):
        return "list"
    if isinstance(v, Mapping):
        return "map"
    if isinstance(v, ExprMessage | CCMessage):
        return "message"
    return type(v).__name__


def _is_num(v: Any) -> bool:
    t = type(v)
    if t is int or t is float:
        return True
    return isinstance(v, int | float) and t is not bool


def to_text(v: Any) -> str:
    """Go-style text of a value (`fmt` `%v`): what `string(x)` returns and `in` uses for numbers."""
    if isinstance(v, str):
        return v
    if v is None:
        return "<nil>"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(int(v))
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        if math.isinf(v):
            return "+Inf" if v > 0 else "-Inf"
        return go_float(v)
    if isinstance(v, list | tuple):
        return "[" + " ".join(to_text(x) for x in v) + "]"
    if isinstance(v, Mapping):
        items = sorted(v.items(), key=lambda kv: str(kv[0]))
        return "map[" + " ".join(f"{to_text(k)}:{to_text(x)}" for k, x in items) + "]"
    if isinstance(v, ExprMessage):
        return f"message({v.message.name})"
    return kind_name(v)


def _eq(a: Any, b: Any) -> bool:
    """Equality of the language: different kinds are unequal (never an error), nil only equals nil."""
    ta, tb = type(a), type(b)
    if ta is tb and (ta is str or ta is int or ta is float or ta is bool):
        return bool(a == b)
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if _is_num(a):
        return _is_num(b) and bool(a == b)
    if isinstance(a, str):
        return isinstance(b, str) and a == b
    if isinstance(a, list | tuple):
        return (
            isinstance(b, list | tuple)
            and len(a) == len(b)
            and all(_eq(x, y) for x, y in zip(a, b, strict=True))
        )
    if isinstance(a, Mapping):
        return (
            isinstance(b, Mapping) and len(a) == len(b) and all(k in b and _eq(v, b[k]) for k, v in a.items())
        )
    if isinstance(a, ExprMessage) and isinstance(b, ExprMessage):
        return a.message is b.message
    return a is b


def _ne(a: Any, b: Any) -> bool:
    return not _eq(a, b)


def _ordered(op: str, a: Any, b: Any) -> tuple[Any, Any]:
    if (_is_num(a) and _is_num(b)) or (isinstance(a, str) and isinstance(b, str)):
        return a, b
    raise _OpError(f"cannot compare {kind_name(a)} and {kind_name(b)} with '{op}'")


def _lt(a: Any, b: Any) -> bool:
    x, y = _ordered("<", a, b)
    return bool(x < y)


def _le(a: Any, b: Any) -> bool:
    x, y = _ordered("<=", a, b)
    return bool(x <= y)


def _gt(a: Any, b: Any) -> bool:
    x, y = _ordered(">", a, b)
    return bool(x > y)


def _ge(a: Any, b: Any) -> bool:
    x, y = _ordered(">=", a, b)
    return bool(x >= y)


def _numbers(op: str, a: Any, b: Any) -> None:
    if not (_is_num(a) and _is_num(b)):
        raise _OpError(f"cannot apply '{op}' to {kind_name(a)} and {kind_name(b)}")


def _add(a: Any, b: Any) -> Any:
    if isinstance(a, str) and isinstance(b, str):
        return a + b
    _numbers("+", a, b)
    try:
        return a + b
    except OverflowError as e:
        raise _OpError(f"'+' overflows: {e}") from None


def _sub(a: Any, b: Any) -> Any:
    _numbers("-", a, b)
    try:
        return a - b
    except OverflowError as e:
        raise _OpError(f"'-' overflows: {e}") from None


def _mul(a: Any, b: Any) -> Any:
    _numbers("*", a, b)
    try:
        return a * b
    except OverflowError as e:
        raise _OpError(f"'*' overflows: {e}") from None


def _div(a: Any, b: Any) -> float:
    """Always float division; division by zero gives ±Inf or NaN like Go floats."""
    _numbers("/", a, b)
    if b == 0:
        if a == 0 or a != a:
            return math.nan
        return math.copysign(math.inf, a) * math.copysign(1.0, b)
    try:
        return float(a / b)
    except OverflowError:
        neg = (a < 0) != (b < 0)
        return -math.inf if neg else math.inf


def _mod(a: Any, b: Any) -> Any:
    """Remainder with the sign of the dividend (Go): int % int is an int, floats use fmod."""
    _numbers("%", a, b)
    if isinstance(a, int) and isinstance(b, int):
        if b == 0:
            raise _OpError("integer division by zero in '%'")
        r = abs(int(a)) % abs(int(b))
        return -r if a < 0 else r
    try:
        return math.fmod(float(a), float(b))
    except ValueError:  # fmod(x, 0), fmod(±Inf, y)
        return math.nan
    except OverflowError as e:
        raise _OpError(f"'%' overflows: {e}") from None


def _is_odd_int(y: float) -> bool:
    return math.isfinite(y) and y == math.floor(y) and math.fmod(y, 2.0) != 0.0


def _pow(a: Any, b: Any) -> float:
    """Power, always a float (like both Go languages), with Go's results for the special cases."""
    _numbers("**", a, b)
    try:
        x, y = float(a), float(b)
    except OverflowError as e:
        raise _OpError(f"'**' overflows: {e}") from None
    try:
        return math.pow(x, y)
    except OverflowError:
        return -math.inf if x < 0 and _is_odd_int(y) else math.inf
    except ValueError:
        if x == 0 and y < 0:
            return math.copysign(math.inf, x) if _is_odd_int(y) else math.inf
        return math.nan


def _in(a: Any, b: Any) -> bool:
    """`a in b`: list membership, map key, substring; a number is searched as its text (gval)."""
    if b is None:
        return False
    if isinstance(b, str):
        if isinstance(a, str):
            return a in b
        if _is_num(a):
            return to_text(a) in b
        raise _OpError(f"cannot search {kind_name(a)} in a string with 'in'")
    if isinstance(b, list | tuple):
        return any(_eq(a, x) for x in b)
    if isinstance(b, Mapping):
        if isinstance(a, str):
            return a in b
        return False
    raise _OpError(f"'in' needs a list, map or string on the right, got {kind_name(b)}")


def _not_in(a: Any, b: Any) -> bool:
    return not _in(a, b)


def _strings(op: str, a: Any, b: Any) -> bool:
    """True if both are strings, False if the left one is nil (a missing tag never matches)."""
    if isinstance(a, str) and isinstance(b, str):
        return True
    if a is None and isinstance(b, str):
        return False
    raise _OpError(f"'{op}' needs strings, got {kind_name(a)} and {kind_name(b)}")


@functools.lru_cache(maxsize=1024)
def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error as e:
        raise _OpError(f"invalid regular expression {pattern!r}: {e.msg}") from None


def _matches(a: Any, b: Any) -> bool:
    return _strings("matches", a, b) and _regex(b).search(a) is not None


def _contains(a: Any, b: Any) -> bool:
    return _strings("contains", a, b) and b in a


def _starts_with(a: Any, b: Any) -> bool:
    return _strings("startsWith", a, b) and a.startswith(b)


def _ends_with(a: Any, b: Any) -> bool:
    return _strings("endsWith", a, b) and a.endswith(b)


def _negate(f: Callable[[Any, Any], bool]) -> Callable[[Any, Any], bool]:
    def neg(a: Any, b: Any) -> bool:
        return not f(a, b)

    return neg


_BINARY: dict[str, Callable[[Any, Any], Any]] = {
    "==": _eq,
    "!=": _ne,
    "<": _lt,
    "<=": _le,
    ">": _gt,
    ">=": _ge,
    "in": _in,
    "not in": _not_in,
    "matches": _matches,
    "=~": _matches,
    "contains": _contains,
    "startsWith": _starts_with,
    "endsWith": _ends_with,
    "not matches": _negate(_matches),
    "not contains": _negate(_contains),
    "not startsWith": _negate(_starts_with),
    "not endsWith": _negate(_ends_with),
    "+": _add,
    "-": _sub,
    "*": _mul,
    "/": _div,
    "%": _mod,
    "**": _pow,
    "^": _pow,
}


def _truth(v: Any, what: str) -> bool:
    if v is True:
        return True
    if v is False or v is None:
        return False
    raise _OpError(f"{what} needs a bool, got {kind_name(v)}")


def _neg(v: Any) -> Any:
    if _is_num(v):
        return -v
    raise _OpError(f"cannot negate {kind_name(v)}")


def _pos(v: Any) -> Any:
    if _is_num(v):
        return v
    raise _OpError(f"unary '+' needs a number, got {kind_name(v)}")


def _not(v: Any) -> bool:
    return not _truth(v, "'!'")


_UNARY: dict[str, Callable[[Any], Any]] = {"-": _neg, "+": _pos, "!": _not, "not": _not}


# ----------------------------------------------------------------------------- member access


def _lookup(d: Mapping[str, Any], key: str) -> Any:
    """Map lookup that also finds `type-id` style keys under their `typeid` spelling."""
    v = d.get(key)
    if v is None and "typeid" in key:
        v = d.get(key.replace("typeid", "type-id"))
    return v


def _exposed(d: Mapping[str, Any]) -> Mapping[str, Any]:
    """The map as the language sees it: keys containing `type-id` appear as `typeid`."""
    for k in d:
        if "type-id" in k:
            return {k.replace("type-id", "typeid"): v for k, v in d.items()}
    return d


class ExprMessage:
    """The message object of the language (`msg`, `message`, `metric`): only whitelisted methods.

    The methods mirror upstream's CCMessage getters (`Name()`, `HasTag(k)`, ...); nothing else of
    the Python object is reachable.
    """

    __slots__ = ("message",)

    def __init__(self, message: CCMessage) -> None:
        self.message = message

    def _invoke(self, method: str, args: list[Any]) -> Any:
        """Call one whitelisted method; unknown methods and bad arguments raise `_OpError`."""
        entry = _MESSAGE_METHODS.get(method)
        if entry is None:
            raise _OpError(f"message has no method {method!r}")
        nargs, impl = entry
        if len(args) != nargs:
            raise _OpError(f"{method}() takes {nargs} argument(s), got {len(args)}")
        if nargs and not isinstance(args[0], str):
            raise _OpError(f"{method}() needs a string key, got {kind_name(args[0])}")
        return impl(self.message, *args)

    def __repr__(self) -> str:
        return f"ExprMessage({self.message.name!r})"


def _category(m: CCMessage) -> str:
    c = m.category
    return c if c in ("metric", "event", "log", "control") else "unknown"


_MESSAGE_METHODS: dict[str, tuple[int, Callable[..., Any]]] = {
    "Name": (0, lambda m: m.name),
    "Time": (0, lambda m: m.time // 1_000_000_000),
    "Tags": (0, lambda m: _exposed(m.tags)),
    "Meta": (0, lambda m: _exposed(m.meta)),
    "Fields": (0, lambda m: m.fields),
    "HasTag": (1, lambda m, k: _lookup(m.tags, k) is not None),
    "GetTag": (1, lambda m, k: _lookup(m.tags, k)),
    "HasMeta": (1, lambda m, k: _lookup(m.meta, k) is not None),
    "GetMeta": (1, lambda m, k: _lookup(m.meta, k)),
    "HasField": (1, lambda m, k: k in m.fields),
    "GetField": (1, lambda m, k: m.fields.get(k)),
    "IsMetric": (0, lambda m: m.category == "metric"),
}


def _member(o: Any, name: str) -> Any:
    if type(o) is dict or isinstance(o, Mapping):
        return o.get(name)
    if o is None:
        return None
    if isinstance(o, ExprMessage | CCMessage):
        if name in _MESSAGE_METHODS:
            raise _OpError(f"{name} is a method of the message: call it as {name}()")
        raise _OpError(f"message has no member {name!r}")
    raise _OpError(f"cannot access member {name!r} of {kind_name(o)}")


def _index(o: Any, i: Any) -> Any:
    if isinstance(o, Mapping):
        try:
            return o.get(i)
        except TypeError:
            raise _OpError(f"cannot use {kind_name(i)} as a map key") from None
    if o is None:
        return None
    if isinstance(o, list | tuple | str):
        if not isinstance(i, int) or isinstance(i, bool):
            raise _OpError(f"index must be an int, got {kind_name(i)}")
        try:
            return o[i]
        except IndexError:
            raise _OpError(f"index {i} out of range (length {len(o)})") from None
    raise _OpError(f"cannot index {kind_name(o)}")


def _call_method(o: Any, name: str, args: list[Any]) -> Any:
    if isinstance(o, CCMessage):
        o = ExprMessage(o)
    if isinstance(o, ExprMessage):
        return o._invoke(name, args)
    raise _OpError(f"cannot call method {name!r} on {kind_name(o)}")


# ----------------------------------------------------------------------------- built-in functions


def _seq(fname: str, args: tuple[Any, ...]) -> list[Any]:
    """The numbers a list function works on: one list argument, or the arguments themselves."""
    items = args[0] if len(args) == 1 and isinstance(args[0], list | tuple) else args
    for x in items:
        if not _is_num(x):
            raise _OpError(f"{fname}() needs numbers, got {kind_name(x)}")
    return list(items)


def _nonempty(fname: str, args: tuple[Any, ...]) -> list[Any]:
    items = _seq(fname, args)
    if not items:
        raise _OpError(f"{fname}() of an empty list")
    return items


def _float_sum(items: list[Any]) -> float:
    """Left-to-right float sum, as Go computes it (so aggregates match upstream to the last bit)."""
    total = 0.0
    for x in items:
        total += float(x)
    return total


def _fn_sum(*args: Any) -> Any:
    items = _seq("sum", args)
    if all(isinstance(x, int) for x in items):
        return sum(int(x) for x in items)
    return _float_sum(items)


def _fn_min(*args: Any) -> Any:
    return min(_nonempty("min", args))


def _fn_max(*args: Any) -> Any:
    return max(_nonempty("max", args))


def _fn_avg(*args: Any) -> float:
    items = _nonempty("avg", args)
    return _float_sum(items) / len(items)


def _fn_median(*args: Any) -> float:
    items = sorted(_nonempty("median", args))
    n = len(items)
    mid = n // 2
    if n % 2:
        return float(items[mid])
    return (float(items[mid - 1]) + float(items[mid])) / 2.0


def _fn_len(x: Any) -> int:
    if isinstance(x, str | list | tuple | Mapping):
        return len(x)
    raise _OpError(f"len() needs a list, map or string, got {kind_name(x)}")


def _str_arg(fname: str, x: Any) -> str:
    if not isinstance(x, str):
        raise _OpError(f"{fname}() needs a string, got {kind_name(x)}")
    return x


def _num_arg(fname: str, x: Any) -> Any:
    if not _is_num(x):
        raise _OpError(f"{fname}() needs a number, got {kind_name(x)}")
    return x


def _fn_match(pattern: Any, s: Any) -> bool:
    pattern = _str_arg("match", pattern)
    if s is None:
        return False
    return _regex(pattern.replace("%", "\\")).search(_str_arg("match", s)) is not None


def _fn_trim(s: Any, cutset: Any = None) -> str:
    s = _str_arg("trim", s)
    return s.strip() if cutset is None else s.strip(_str_arg("trim", cutset))


def _fn_abs(x: Any) -> Any:
    return abs(_num_arg("abs", x))


def _fn_int(x: Any) -> int:
    if isinstance(x, str):
        try:
            return int(x.strip(), 10)
        except ValueError:
            raise _OpError(f"int() cannot convert {x!r}") from None
    x = _num_arg("int", x)
    if isinstance(x, float) and not math.isfinite(x):
        raise _OpError(f"int() cannot convert {to_text(x)}")
    return int(x)


def _fn_float(x: Any) -> float:
    if isinstance(x, str):
        try:
            return float(x.strip())
        except ValueError:
            raise _OpError(f"float() cannot convert {x!r}") from None
    try:
        return float(_num_arg("float", x))
    except OverflowError as e:
        raise _OpError(f"float() overflows: {e}") from None


def _fn_round(x: Any) -> Any:
    """Round half away from zero (Go `math.Round`); ints are returned unchanged."""
    x = _num_arg("round", x)
    if isinstance(x, int) or not math.isfinite(x):
        return x
    t = float(math.trunc(x))
    if abs(x - t) >= 0.5:
        t += math.copysign(1.0, x)
    return t


def _fn_floor(x: Any) -> Any:
    x = _num_arg("floor", x)
    return x if isinstance(x, int) or not math.isfinite(x) else float(math.floor(x))


def _fn_ceil(x: Any) -> Any:
    x = _num_arg("ceil", x)
    return x if isinstance(x, int) or not math.isfinite(x) else float(math.ceil(x))


# name -> (implementation, minimum, maximum argument count; None = any)
_BUILTINS: dict[str, tuple[Callable[..., Any], int, int | None]] = {
    "match": (_fn_match, 2, 2),
    "len": (_fn_len, 1, 1),
    "count": (_fn_len, 1, 1),
    "sum": (_fn_sum, 1, None),
    "min": (_fn_min, 1, None),
    "max": (_fn_max, 1, None),
    "avg": (_fn_avg, 1, None),
    "mean": (_fn_avg, 1, None),
    "median": (_fn_median, 1, None),
    "lower": (lambda s: _str_arg("lower", s).lower(), 1, 1),
    "upper": (lambda s: _str_arg("upper", s).upper(), 1, 1),
    "trim": (_fn_trim, 1, 2),
    "abs": (_fn_abs, 1, 1),
    "int": (_fn_int, 1, 1),
    "float": (_fn_float, 1, 1),
    "string": (to_text, 1, 1),
    "round": (_fn_round, 1, 1),
    "floor": (_fn_floor, 1, 1),
    "ceil": (_fn_ceil, 1, 1),
}

#: Names of the functions every expression may call without further configuration.
BUILTIN_FUNCTIONS: frozenset[str] = frozenset(_BUILTINS)

# Topology helpers (spec §5.6, §6.0): always accepted by the compiler, bound at evaluation time
# by the collector through `functions=` (cccommon must not import the collector's topology).
_TOPOLOGY_ARITY: dict[str, int] = {
    "getCpuCore": 1,
    "getCpuSocket": 1,
    "getCpuNuma": 1,
    "getCpuDie": 1,
    "getSockCpuList": 1,
    "getNumaCpuList": 1,
    "getDieCpuList": 1,
    "getCoreCpuList": 1,
    "getCpuList": 0,
    "getCpuListOfType": 2,
}

#: Names of the topology functions the collector supplies at evaluation time.
TOPOLOGY_FUNCTIONS: frozenset[str] = frozenset(_TOPOLOGY_ARITY)


# ----------------------------------------------------------------------------- tokenizer

_NUM, _STR, _NAME, _OP, _END = "number", "string", "name", "operator", "end"
_OPS2 = frozenset({"**", "==", "!=", "<=", ">=", "&&", "||", "=~"})
_OPS1 = frozenset("+-*/%^<>!()[],.?:")
_KEYWORD_OPS = frozenset({"and", "or", "not", "in", "matches", "contains", "startsWith", "endsWith"})
_NEGATABLE = frozenset({"in", "matches", "contains", "startsWith", "endsWith"})
_LITERALS: dict[str, Any] = {"true": True, "false": False, "nil": None, "null": None}
_COMPARISON = frozenset({"==", "!=", "<", "<=", ">", ">=", "=~"})
_ESCAPES = {
    "n": "\n",
    "t": "\t",
    "r": "\r",
    "0": "\0",
    "a": "\a",
    "b": "\b",
    "f": "\f",
    "v": "\v",
    "\\": "\\",
    "'": "'",
    '"': '"',
}


class _Token:
    __slots__ = ("kind", "value", "pos")

    def __init__(self, kind: str, value: Any, pos: int) -> None:
        self.kind = kind
        self.value = value
        self.pos = pos

    def describe(self) -> str:
        if self.kind == _END:
            return "end of expression"
        if self.kind == _STR:
            return f"string {self.value!r}"
        return f"{self.value!r}" if self.kind == _OP else f"{self.kind} {self.value!r}"


def _is_name_start(c: str) -> bool:
    return c == "_" or c.isalpha()


def _is_name_char(c: str) -> bool:
    return c == "_" or c.isalnum()


def _tokenize(text: str) -> list[_Token]:
    toks: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c.isspace():
            i += 1
            continue
        start = i
        prev = toks[-1] if toks else None
        operand_expected = (
            prev is None
            or (prev.kind == _OP and prev.value not in (")", "]"))
            or (prev.kind == _NAME and prev.value in _KEYWORD_OPS)
        )
        if c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit() and operand_expected):
            i, value = _scan_number(text, i)
            toks.append(_Token(_NUM, value, start))
        elif c in "'\"":
            i, value = _scan_string(text, i)
            toks.append(_Token(_STR, value, start))
        elif c == "`":
            end = text.find("`", i + 1)
            if end < 0:
                raise ExprError("unterminated raw string", start)
            toks.append(_Token(_STR, text[i + 1 : end], start))
            i = end + 1
        elif _is_name_start(c):
            while i < n and _is_name_char(text[i]):
                i += 1
            toks.append(_Token(_NAME, text[start:i], start))
        elif text[i : i + 2] in _OPS2:
            toks.append(_Token(_OP, text[i : i + 2], start))
            i += 2
        elif c in _OPS1:
            toks.append(_Token(_OP, c, start))
            i += 1
        else:
            hint = {"=": " (use '==')", "&": " (use '&&')", "|": " (use '||')"}.get(c, "")
            raise ExprError(f"unexpected character {c!r}{hint}", start)
    toks.append(_Token(_END, None, n))
    return toks


def _scan_number(text: str, i: int) -> tuple[int, int | float]:
    start, n = i, len(text)
    if text.startswith(("0x", "0X"), i):
        i += 2
        while i < n and text[i] in "0123456789abcdefABCDEF":
            i += 1
        digits = text[start + 2 : i]
        if not digits or (i < n and _is_name_char(text[i])):
            raise ExprError(f"invalid number {text[start : i + 1]!r}", start)
        return i, int(digits, 16)
    while i < n and text[i].isdigit():
        i += 1
    is_float = False
    if i < n - 1 and text[i] == "." and text[i + 1].isdigit():
        is_float = True
        i += 1
        while i < n and text[i].isdigit():
            i += 1
    elif re.match(r"\.[eE][+-]?[0-9]", text[i : i + 4]):
        # `1.E-06` (a Go float literal, used in likwid formulas): the dot ends the mantissa
        is_float = True
        i += 1
    if i < n and text[i] in "eE":
        j = i + 1
        if j < n and text[j] in "+-":
            j += 1
        if j < n and text[j].isdigit():
            is_float = True
            i = j
            while i < n and text[i].isdigit():
                i += 1
    if i < n and _is_name_char(text[i]):
        end = i
        while end < n and _is_name_char(text[end]):
            end += 1
        raise ExprError(f"invalid number {text[start:end]!r}", start)
    raw = text[start:i]
    return i, (float(raw) if is_float else int(raw))


def _scan_string(text: str, i: int) -> tuple[int, str]:
    quote, start, n = text[i], i, len(text)
    i += 1
    out: list[str] = []
    while i < n:
        c = text[i]
        if c == quote:
            return i + 1, "".join(out)
        if c == "\\" and i + 1 < n:
            e = text[i + 1]
            if e in _ESCAPES:
                out.append(_ESCAPES[e])
                i += 2
                continue
            width = {"x": 2, "u": 4, "U": 8}.get(e)
            if width is not None:
                digits = text[i + 2 : i + 2 + width]
                if len(digits) == width and all(ch in "0123456789abcdefABCDEF" for ch in digits):
                    try:
                        out.append(chr(int(digits, 16)))
                    except (ValueError, OverflowError):
                        raise ExprError(f"invalid escape \\{e}{digits}", i) from None
                    i += 2 + width
                    continue
                raise ExprError(f"invalid escape \\{e} (needs {width} hex digits)", i)
            # Unknown escapes stay as written, so regular expressions like '^cpu\d' work.
            out.append(c + e)
            i += 2
            continue
        out.append(c)
        i += 1
    raise ExprError("unterminated string", start)


# ----------------------------------------------------------------------------- syntax tree


class _Node:
    __slots__ = ("pos",)


class _Lit(_Node):
    __slots__ = ("value",)

    def __init__(self, value: Any, pos: int) -> None:
        self.value, self.pos = value, pos


class _Name(_Node):
    __slots__ = ("name",)

    def __init__(self, name: str, pos: int) -> None:
        self.name, self.pos = name, pos


class _ListLit(_Node):
    __slots__ = ("items",)

    def __init__(self, items: list[_Node], pos: int) -> None:
        self.items, self.pos = items, pos


class _Member(_Node):
    __slots__ = ("obj", "name")

    def __init__(self, obj: _Node, name: str, pos: int) -> None:
        self.obj, self.name, self.pos = obj, name, pos


class _Index(_Node):
    __slots__ = ("obj", "index")

    def __init__(self, obj: _Node, index: _Node, pos: int) -> None:
        self.obj, self.index, self.pos = obj, index, pos


class _Call(_Node):
    __slots__ = ("callee", "args")

    def __init__(self, callee: _Name | _Member, args: list[_Node], pos: int) -> None:
        self.callee, self.args, self.pos = callee, args, pos


class _Unary(_Node):
    __slots__ = ("op", "operand")

    def __init__(self, op: str, operand: _Node, pos: int) -> None:
        self.op, self.operand, self.pos = op, operand, pos


class _Binary(_Node):
    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left: _Node, right: _Node, pos: int) -> None:
        self.op, self.left, self.right, self.pos = op, left, right, pos


class _Logic(_Node):
    __slots__ = ("op", "left", "right")

    def __init__(self, op: str, left: _Node, right: _Node, pos: int) -> None:
        self.op, self.left, self.right, self.pos = op, left, right, pos


class _Cond(_Node):
    __slots__ = ("test", "then", "other")

    def __init__(self, test: _Node, then: _Node, other: _Node, pos: int) -> None:
        self.test, self.then, self.other, self.pos = test, then, other, pos


# ----------------------------------------------------------------------------- parser


class _Parser:
    """Recursive descent, one method per precedence level of spec §5.6."""

    def __init__(self, tokens: list[_Token]) -> None:
        self.toks = tokens
        self.i = 0

    def peek(self, ahead: int = 0) -> _Token:
        return self.toks[min(self.i + ahead, len(self.toks) - 1)]

    def take(self) -> _Token:
        tok = self.toks[self.i]
        if tok.kind != _END:
            self.i += 1
        return tok

    def at_op(self, *ops: str) -> bool:
        tok = self.toks[self.i]
        return tok.kind == _OP and tok.value in ops

    def at_word(self, *words: str) -> bool:
        tok = self.toks[self.i]
        return tok.kind == _NAME and tok.value in words

    def expect(self, op: str, context: str) -> _Token:
        tok = self.peek()
        if tok.kind != _OP or tok.value != op:
            raise ExprError(f"expected '{op}' {context}, found {tok.describe()}", tok.pos)
        return self.take()

    def parse(self) -> _Node:
        if self.peek().kind == _END:
            raise ExprError("empty expression", 0)
        node = self.conditional()
        tok = self.peek()
        if tok.kind != _END:
            raise ExprError(f"unexpected {tok.describe()}", tok.pos)
        return node

    def conditional(self) -> _Node:
        test = self.logic_or()
        if self.at_op("?"):
            tok = self.take()
            then = self.conditional()
            self.expect(":", "in conditional 'c ? a : b'")
            other = self.conditional()
            return _Cond(test, then, other, tok.pos)
        return test

    def logic_or(self) -> _Node:
        left = self.logic_and()
        while self.at_op("||") or self.at_word("or"):
            tok = self.take()
            left = _Logic("or", left, self.logic_and(), tok.pos)
        return left

    def logic_and(self) -> _Node:
        left = self.comparison()
        while self.at_op("&&") or self.at_word("and"):
            tok = self.take()
            left = _Logic("and", left, self.comparison(), tok.pos)
        return left

    def comparison(self) -> _Node:
        left = self.additive()
        while True:
            tok = self.peek()
            if tok.kind == _OP and tok.value in _COMPARISON:
                op = tok.value
                self.take()
            elif tok.kind == _NAME and tok.value in _NEGATABLE:
                op = tok.value
                self.take()
            elif tok.kind == _NAME and tok.value == "not":
                nxt = self.peek(1)
                if nxt.kind != _NAME or nxt.value not in _NEGATABLE:
                    raise ExprError(
                        "'not' after an operand must be followed by in, matches, contains, "
                        "startsWith or endsWith",
                        tok.pos,
                    )
                self.take()
                self.take()
                op = "not " + nxt.value
            else:
                return left
            left = _Binary(op, left, self.additive(), tok.pos)

    def additive(self) -> _Node:
        left = self.multiplicative()
        while self.at_op("+", "-"):
            tok = self.take()
            left = _Binary(tok.value, left, self.multiplicative(), tok.pos)
        return left

    def multiplicative(self) -> _Node:
        left = self.power()
        while self.at_op("*", "/", "%"):
            tok = self.take()
            left = _Binary(tok.value, left, self.power(), tok.pos)
        return left

    def power(self) -> _Node:
        base = self.unary()
        if self.at_op("**", "^"):
            tok = self.take()
            return _Binary(tok.value, base, self.power(), tok.pos)  # right associative
        return base

    def unary(self) -> _Node:
        tok = self.peek()
        if (tok.kind == _OP and tok.value in ("!", "-", "+")) or (tok.kind == _NAME and tok.value == "not"):
            self.take()
            return _Unary(tok.value, self.unary(), tok.pos)
        return self.postfix()

    def postfix(self) -> _Node:
        node = self.primary()
        while True:
            tok = self.peek()
            if tok.kind != _OP:
                return node
            if tok.value == ".":
                self.take()
                name = self.peek()
                if name.kind != _NAME:
                    raise ExprError(f"expected a name after '.', found {name.describe()}", name.pos)
                self.take()
                node = _Member(node, name.value, name.pos)
            elif tok.value == "[":
                self.take()
                index = self.conditional()
                self.expect("]", "to close the index")
                node = _Index(node, index, tok.pos)
            elif tok.value == "(":
                if not isinstance(node, _Name | _Member):
                    raise ExprError("only named functions and message methods can be called", tok.pos)
                self.take()
                args = self.sequence(")", "argument list")
                node = _Call(node, args, node.pos)
            else:
                return node

    def sequence(self, close: str, what: str) -> list[_Node]:
        items: list[_Node] = []
        while not self.at_op(close):
            items.append(self.conditional())
            if self.at_op(","):
                self.take()
            elif not self.at_op(close):
                tok = self.peek()
                raise ExprError(f"expected ',' or '{close}' in {what}, found {tok.describe()}", tok.pos)
        self.take()
        return items

    def primary(self) -> _Node:
        tok = self.take()
        if tok.kind in (_NUM, _STR):
            return _Lit(tok.value, tok.pos)
        if tok.kind == _NAME:
            if tok.value in _LITERALS:
                return _Lit(_LITERALS[tok.value], tok.pos)
            if tok.value in _KEYWORD_OPS:
                raise ExprError(f"unexpected keyword {tok.value!r}", tok.pos)
            return _Name(tok.value, tok.pos)
        if tok.kind == _OP and tok.value == "(":
            node = self.conditional()
            self.expect(")", "to close '('")
            return node
        if tok.kind == _OP and tok.value == "[":
            return _ListLit(self.sequence("]", "list"), tok.pos)
        if tok.kind == _END:
            raise ExprError("unexpected end of expression", tok.pos)
        raise ExprError(f"unexpected {tok.describe()}", tok.pos)


# ----------------------------------------------------------------------------- compiler


_FAST_ORDER: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
}


class _Compiler:
    """Turns the syntax tree into nested closures `fn(env, functions) -> value`."""

    def __init__(self, source: str, shifts: list[int], extra_functions: frozenset[str]) -> None:
        self.source = source
        self.shifts = shifts  # processed offsets after which the original text is one char longer
        self.extra = extra_functions
        self.names: set[str] = set()
        self.function_names: set[str] = set()
        self.constants: dict[_Fn, Any] = {}

    def orig(self, pos: int) -> int:
        """Offset in the text as written (before `type-id` -> `typeid`)."""
        return pos + sum(1 for s in self.shifts if pos >= s)

    def error(self, message: str, pos: int) -> ExprError:
        return ExprError(message, self.orig(pos), self.source)

    def compile(self, node: _Node) -> _Fn:
        if isinstance(node, _Lit):
            return self.literal(node.value)
        if isinstance(node, _Name):
            return self.name(node)
        if isinstance(node, _Logic):
            return self.logic(node)
        if isinstance(node, _Binary):
            return self.binary(node)
        if isinstance(node, _Unary):
            return self.unary(node)
        if isinstance(node, _Cond):
            return self.cond(node)
        if isinstance(node, _Member):
            return self.member(node)
        if isinstance(node, _Index):
            return self.index(node)
        if isinstance(node, _Call):
            return self.call(node)
        if isinstance(node, _ListLit):
            items = [self.compile(x) for x in node.items]
            return lambda env, fns: [f(env, fns) for f in items]
        raise AssertionError(f"unknown node {node!r}")  # pragma: no cover

    def literal(self, value: Any) -> _Fn:
        def lit(env: Any, fns: Any) -> Any:
            return value

        self.constants[lit] = value
        return lit

    def const_of(self, fn: _Fn) -> tuple[bool, Any]:
        """(True, value) if `fn` is a compiled literal (or a folded constant expression)."""
        if fn in self.constants:
            return True, self.constants[fn]
        return False, None

    def name(self, node: _Name) -> _Fn:
        key = node.name
        pos = self.orig(node.pos)
        self.names.add(key)

        def var(env: Any, fns: Any) -> Any:
            try:
                return env[key]
            except KeyError:
                raise ExprError(f"unknown name {key!r}", pos) from None

        return var

    def logic(self, node: _Logic) -> _Fn:
        left, right = self.compile(node.left), self.compile(node.right)
        pos = self.orig(node.pos)
        what = "'&&'" if node.op == "and" else "'||'"

        def operand(v: Any) -> bool:
            try:
                return _truth(v, what)
            except _OpError as e:
                raise ExprError(str(e), pos) from None

        if node.op == "and":

            def land(env: Any, fns: Any) -> bool:
                a = left(env, fns)
                if a is not True and not operand(a):
                    return False
                b = right(env, fns)
                return b is True or operand(b)

            return land

        def lor(env: Any, fns: Any) -> bool:
            a = left(env, fns)
            if a is True or operand(a):
                return True
            b = right(env, fns)
            return b is True or operand(b)

        return lor

    def binary(self, node: _Binary) -> _Fn:
        left, right = self.compile(node.left), self.compile(node.right)
        op = node.op
        pos = self.orig(node.pos)
        impl = _BINARY[op]
        lconst, lval = self.const_of(left)
        rconst, rval = self.const_of(right)
        if op in ("matches", "=~", "not matches") and rconst:
            if not isinstance(rval, str):
                raise self.error(f"'{op}' needs a string pattern, got {kind_name(rval)}", node.right.pos)
            try:
                rx = _regex(rval)
            except _OpError as e:
                raise self.error(str(e), node.right.pos) from None
            if not lconst:
                return self.regex_search(left, rx, rval, op == "not matches", pos)
        if lconst and rconst:
            try:
                return self.literal(impl(lval, rval))
            except _OpError:
                pass  # leave the error to evaluation time (it may sit in an unevaluated branch)
        if rconst and op in ("==", "!=") and type(rval) in (str, int, float):
            want = op == "=="
            c = rval
            tc = type(rval)

            def eq_const(env: Any, fns: Any) -> bool:
                a = left(env, fns)
                if type(a) is tc:
                    return (a == c) is want
                return _eq(a, c) is want

            return eq_const
        if rconst and op in _FAST_ORDER and type(rval) in (int, float):
            c = rval
            fast = _FAST_ORDER[op]

            def cmp_const(env: Any, fns: Any) -> bool:
                a = left(env, fns)
                t = type(a)
                if t is int or t is float:
                    return fast(a, c)
                try:
                    return bool(impl(a, c))
                except _OpError as e:
                    raise ExprError(str(e), pos) from None

            return cmp_const

        def bin_op(env: Any, fns: Any) -> Any:
            a = left(env, fns)
            b = right(env, fns)
            try:
                return impl(a, b)
            except _OpError as e:
                raise ExprError(str(e), pos) from None

        return bin_op

    def unary(self, node: _Unary) -> _Fn:
        operand = self.compile(node.operand)
        impl = _UNARY[node.op]
        pos = self.orig(node.pos)
        const, value = self.const_of(operand)
        if const:
            try:
                return self.literal(impl(value))
            except _OpError:
                pass

        def un_op(env: Any, fns: Any) -> Any:
            try:
                return impl(operand(env, fns))
            except _OpError as e:
                raise ExprError(str(e), pos) from None

        return un_op

    def cond(self, node: _Cond) -> _Fn:
        test, then, other = self.compile(node.test), self.compile(node.then), self.compile(node.other)
        pos = self.orig(node.pos)

        def conditional(env: Any, fns: Any) -> Any:
            c = test(env, fns)
            if c is True:
                return then(env, fns)
            if c is False or c is None:
                return other(env, fns)
            raise ExprError(f"condition of '?' needs a bool, got {kind_name(c)}", pos)

        return conditional

    def member(self, node: _Member) -> _Fn:
        obj = self.compile(node.obj)
        key = node.name
        pos = self.orig(node.pos)

        def get_member(env: Any, fns: Any) -> Any:
            o = obj(env, fns)
            if type(o) is dict:
                return o.get(key)
            try:
                return _member(o, key)
            except _OpError as e:
                raise ExprError(str(e), pos) from None

        return get_member

    def index(self, node: _Index) -> _Fn:
        obj, idx = self.compile(node.obj), self.compile(node.index)
        pos = self.orig(node.pos)

        def get_index(env: Any, fns: Any) -> Any:
            o = obj(env, fns)
            i = idx(env, fns)
            try:
                return _index(o, i)
            except _OpError as e:
                raise ExprError(str(e), pos) from None

        return get_index

    def call(self, node: _Call) -> _Fn:
        args = [self.compile(a) for a in node.args]
        pos = self.orig(node.pos)
        callee = node.callee
        if isinstance(callee, _Member):
            return self.method_call(callee, args, pos)
        fname = callee.name
        self.function_names.add(fname)
        nargs = len(args)
        if fname in _BUILTINS:
            impl, lo, hi = _BUILTINS[fname]
            if nargs < lo or (hi is not None and nargs > hi):
                want = str(lo) if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
                raise self.error(f"{fname}() takes {want} argument(s), got {nargs}", node.pos)
            if fname == "match":
                const, pattern = self.const_of(args[0])
                if const and isinstance(pattern, str):
                    try:
                        rx = _regex(pattern.replace("%", "\\"))
                    except _OpError as e:
                        raise self.error(str(e), node.args[0].pos) from None
                    return self.regex_search(args[1], rx, pattern, False, pos, fname="match")
            return self.builtin_call(fname, impl, args, pos)
        if fname in _TOPOLOGY_ARITY and nargs != _TOPOLOGY_ARITY[fname]:
            raise self.error(f"{fname}() takes {_TOPOLOGY_ARITY[fname]} argument(s), got {nargs}", node.pos)
        if fname not in _TOPOLOGY_ARITY and fname not in self.extra:
            raise self.error(f"unknown function {fname!r}", node.pos)
        return self.external_call(fname, args, pos)

    @staticmethod
    def regex_search(
        subject: _Fn, rx: re.Pattern[str], pattern: str, negate: bool, pos: int, fname: str = "matches"
    ) -> _Fn:
        """A regex test with the pattern compiled once (constant pattern): the router's hot path."""
        search = rx.search
        if fname == "match":
            what = "match() needs a string, got {}"
        else:
            what = "'matches' needs strings, got {} and string"

        def regex_test(env: Any, fns: Any) -> bool:
            s = subject(env, fns)
            if type(s) is str:
                return (search(s) is None) is negate
            if s is None:
                return negate
            raise ExprError(what.format(kind_name(s)), pos)

        return regex_test

    @staticmethod
    def builtin_call(fname: str, impl: Callable[..., Any], args: list[_Fn], pos: int) -> _Fn:
        if len(args) == 1:
            (a0,) = args

            def call1(env: Any, fns: Any) -> Any:
                try:
                    return impl(a0(env, fns))
                except _OpError as e:
                    raise ExprError(str(e), pos) from None

            return call1

        def calln(env: Any, fns: Any) -> Any:
            values = [a(env, fns) for a in args]
            try:
                return impl(*values)
            except _OpError as e:
                raise ExprError(str(e), pos) from None

        return calln

    @staticmethod
    def external_call(fname: str, args: list[_Fn], pos: int) -> _Fn:
        def ext(env: Any, fns: Any) -> Any:
            f = fns.get(fname) if fns else None
            if f is None:
                raise ExprError(f"function {fname!r} is not available here", pos)
            values = [a(env, fns) for a in args]
            try:
                return f(*values)
            except ExprError:
                raise
            except Exception as e:  # a supplied helper failed: report it as an evaluation error
                raise ExprError(f"{fname}() failed: {e}", pos) from None

        return ext

    def method_call(self, callee: _Member, args: list[_Fn], pos: int) -> _Fn:
        obj = self.compile(callee.obj)
        mname = callee.name

        def method(env: Any, fns: Any) -> Any:
            o = obj(env, fns)
            values = [a(env, fns) for a in args]
            try:
                return _call_method(o, mname, values)
            except _OpError as e:
                raise ExprError(str(e), pos) from None

        return method


# ----------------------------------------------------------------------------- public API


class Expression:
    """A compiled expression: immutable, thread-safe, shareable between rules with the same text."""

    __slots__ = ("source", "names", "function_names", "_fn")

    def __init__(self, source: str, fn: _Fn, names: frozenset[str], function_names: frozenset[str]) -> None:
        self.source = source
        self.names = names
        self.function_names = function_names
        self._fn = fn

    def evaluate(self, env: Env | None = None, functions: Functions | None = None) -> Any:
        """Evaluate against `env` (names -> values) and the run-time `functions`; raise `ExprError`."""
        try:
            return self._fn(_EMPTY if env is None else env, functions or _EMPTY)
        except ExprError as e:
            if e.source is None:
                e.source = self.source
            raise
        except RecursionError:
            raise ExprError("expression nested too deeply", None, self.source) from None

    def test(self, env: Env | None = None, functions: Functions | None = None) -> bool:
        """Evaluate as a condition: true/false, nil counts as false, any other value is an `ExprError`."""
        v = self.evaluate(env, functions)
        if v is True or v is False:
            return v
        if v is None:
            return False
        raise ExprError(f"condition must evaluate to a bool, got {kind_name(v)}", None, self.source)

    def __repr__(self) -> str:
        return f"Expression({self.source!r})"


def _preprocess(source: str) -> tuple[str, list[int]]:
    """Replace `type-id` by `typeid` and remember where the text got shorter (for error positions)."""
    if "type-id" not in source:
        return source, []
    shifts: list[int] = []
    parts = source.split("type-id")
    out = parts[0]
    for part in parts[1:]:
        shifts.append(len(out) + 4)  # offsets from the 'i' of 'typeid' on are one less than written
        out += "typeid" + part
    return out, shifts


@functools.lru_cache(maxsize=4096)
def _compile_cached(source: str, extra_functions: frozenset[str]) -> Expression:
    if len(source) > _MAX_SOURCE:
        raise ExprError(f"expression longer than {_MAX_SOURCE} characters", None, source[:80] + "...")
    text, shifts = _preprocess(source)
    compiler = _Compiler(source, shifts, extra_functions)
    try:
        tree = _Parser(_tokenize(text)).parse()
        fn = compiler.compile(tree)
    except ExprError as e:
        if e.source is None:
            e.source = source
            if e.position is not None:
                e.position = compiler.orig(e.position)
        raise
    except RecursionError:
        raise ExprError("expression nested too deeply", None, source) from None
    return Expression(source, fn, frozenset(compiler.names), frozenset(compiler.function_names))


def compile_expr(source: str, functions: Iterable[str] = ()) -> Expression:
    """Compile (or fetch from the cache) an expression; raise `ExprError` for invalid text.

    `functions` names extra functions the caller will supply at evaluation time; the built-ins
    and the topology helpers are always accepted.
    """
    if not isinstance(source, str):
        raise ExprError(f"expression must be a string, got {type(source).__name__}")
    return _compile_cached(source, frozenset(functions))


def evaluate(source: str, env: Env | None = None, functions: Functions | None = None) -> Any:
    """Compile (cached) and evaluate `source` in one call."""
    return compile_expr(source, functions or ()).evaluate(env, functions)


def evaluate_condition(source: str, env: Env | None = None, functions: Functions | None = None) -> bool:
    """Compile (cached) and evaluate `source` as a condition (see `Expression.test`)."""
    return compile_expr(source, functions or ()).test(env, functions)


# ----------------------------------------------------------------------------- message environment

_SHORTHANDS: tuple[tuple[str, Callable[[CCMessage], Mapping[str, Any]]], ...] = (
    ("tag_", lambda m: m.tags),
    ("tags_", lambda m: m.tags),
    ("meta_", lambda m: m.meta),
    ("field_", lambda m: m.fields),
    ("fields_", lambda m: m.fields),
)

_MESSAGE_NAMES: dict[str, Callable[[CCMessage], Any]] = {
    "name": lambda m: m.name,
    "messagetype": _category,
    "msgtype": _category,
    "timestamp": lambda m: m.time // 1_000_000_000,
    "time": lambda m: m.time // 1_000_000_000,
    "value": lambda m: m.fields.get("value"),
    "event": lambda m: m.fields.get("event"),
    "log": lambda m: m.fields.get("log"),
    "control": lambda m: m.fields.get("control"),
    "fields": lambda m: m.fields,
    "field": lambda m: m.fields,
    "tags": lambda m: _exposed(m.tags),
    "tag": lambda m: _exposed(m.tags),
    "meta": lambda m: _exposed(m.meta),
    "msg": ExprMessage,
    "message": ExprMessage,
    "metric": ExprMessage,
}


class MessageEnv(Mapping[str, Any]):
    """The names a condition sees for one message (spec §5.6), read live from the message.

    Order of resolution: the built-in message names; then `extra` (the rules engine's
    `add_base_env`, the aggregates' constants such as `hostname`, `numHWThreads`); then the
    shorthands `tag_<k>`, `tags_<k>`, `meta_<k>`, `field_<k>`, `fields_<k>`; then the legacy flat
    lookup (tag, else meta, else field); anything else is nil. Because values are read on every
    lookup, changes the rules engine makes to the message are visible to later conditions.
    """

    __slots__ = ("msg", "extra")

    def __init__(self, msg: CCMessage, extra: Mapping[str, Any] | None = None) -> None:
        self.msg = msg
        self.extra = extra or _EMPTY

    def __getitem__(self, key: str) -> Any:
        getter = _MESSAGE_NAMES.get(key)
        if getter is not None:
            return getter(self.msg)
        extra = self.extra
        if key in extra:
            return extra[key]
        m = self.msg
        if "_" in key:
            for prefix, part in _SHORTHANDS:
                if key.startswith(prefix):
                    return _lookup(part(m), key[len(prefix) :])
        for d in (m.tags, m.meta, m.fields):
            v = _lookup(d, key)
            if v is not None:
                return v
        return None

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str)

    def __iter__(self) -> Iterator[str]:
        yield from _MESSAGE_NAMES
        yield from (k for k in self.extra if k not in _MESSAGE_NAMES)

    def __len__(self) -> int:
        return len(_MESSAGE_NAMES) + sum(1 for k in self.extra if k not in _MESSAGE_NAMES)
