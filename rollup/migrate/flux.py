"""A parser for the Flux that InfluxDB 2 tasks are written in.

The subset: ``import``, ``option task = {…}`` / ``option location = …``, variable assignments and
expression statements; expressions with Flux's precedence (calls, member access and ``|>``
first, then ``* / %``, ``+ -``, comparisons, ``not``/``exists``, ``and``, ``or``); literals
(strings, numbers, durations such as ``1h30m`` or ``-1d``, times, regexes, arrays, records with
``with``); function literals ``(r) => …`` and ``(column, tables=<-) => …``. Calls take named
arguments only, as in Flux. ``${…}`` in strings, block bodies and ``return`` are refused.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from rollup.migrate.lexer import EOF, Cursor, Rule, Token, scan

_DURATION_UNITS = "mo|ms|us|µs|ns|y|w|d|h|m|s"
_RULES: list[Rule] = [
    ("time", re.compile(r"\d{4}-\d{2}-\d{2}(?:T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2}))?")),
    ("duration", re.compile(rf"(?:\d+(?:{_DURATION_UNITS}))+(?![A-Za-z0-9_])")),
    ("number", re.compile(r"\d+(?:\.\d+)?")),
    ("ident", re.compile(r"[A-Za-z_][A-Za-z0-9_]*")),
    ("string", re.compile(r'"(?:\\.|[^"\\])*"')),
    ("regex_or_div", re.compile(r"/(?:\\/|\\[^/]|[^/\\\n])*/")),
    ("op", re.compile(r"\|>|=>|<-|==|!=|=~|!~|<=|>=|[<>+\-*/%^=?]")),
    ("punct", re.compile(r"[()\[\]{},:.]")),
]
_SKIP = re.compile(r"(?:\s+|//[^\n]*)+")
_UNIT_NS = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9,
            "h": 3600 * 10**9, "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}  # fmt: skip
_COMPARISONS = ("==", "!=", "=~", "!~", "<", "<=", ">", ">=")


def _unterminated(rest: str) -> str | None:
    if rest.startswith('"'):
        return "a string is not closed: is the script cut short?"
    if rest.startswith("/"):
        return "a regex is not closed: is the script cut short?"
    return None


# -- syntax tree ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Name:
    name: str
    line: int


@dataclass(frozen=True, slots=True)
class Lit:
    kind: str
    """``string``, ``number``, ``duration``, ``time``, ``regex``, ``bool``."""
    value: str | float | FluxDuration | bool
    line: int


@dataclass(frozen=True, slots=True)
class FluxDuration:
    months: int
    nanos: int

    def negate(self) -> FluxDuration:
        return FluxDuration(-self.months, -self.nanos)


@dataclass(frozen=True, slots=True)
class Member:
    """``a.b`` or ``a["b"]``."""

    target: Expr
    name: str
    line: int


@dataclass(frozen=True, slots=True)
class Call:
    callee: Expr
    args: dict[str, Expr]
    line: int

    @property
    def name(self) -> str:
        """``aggregateWindow``, ``timezone.location`` …"""
        return dotted(self.callee) or "?"


@dataclass(frozen=True, slots=True)
class Pipe:
    source: Expr
    call: Call
    line: int


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Expr
    right: Expr
    line: int


@dataclass(frozen=True, slots=True)
class Unary:
    op: str
    operand: Expr
    line: int


@dataclass(frozen=True, slots=True)
class Array:
    items: tuple[Expr, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Record:
    items: dict[str, Expr]
    line: int
    base: Expr | None = None
    """``{r with …}``: the record extended."""


@dataclass(frozen=True, slots=True)
class Function:
    params: tuple[str, ...]
    body: Expr
    line: int


Expr = Name | Lit | Member | Call | Pipe | Binary | Unary | Array | Record | Function


@dataclass(frozen=True, slots=True)
class Statement:
    kind: str
    """``option``, ``assign`` or ``expr``."""
    name: str | None
    value: Expr
    line: int


def dotted(expr: Expr) -> str | None:
    """``a.b.c`` as text, or None if ``expr`` is not a plain name path."""
    if isinstance(expr, Name):
        return expr.name
    if isinstance(expr, Member):
        base = dotted(expr.target)
        return None if base is None else f"{base}.{expr.name}"
    return None


# -- parser --------------------------------------------------------------------------------------


def duration_of(text: str) -> FluxDuration:
    months = nanos = 0
    for number, unit in re.findall(rf"(\d+)({_DURATION_UNITS})", text):
        if unit == "y":
            months += 12 * int(number)
        elif unit == "mo":
            months += int(number)
        else:
            nanos += int(number) * _UNIT_NS[unit]
    return FluxDuration(months, nanos)


def unquote(token: Token) -> str:
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t"}.get(m.group(1), m.group(1)), token.text[1:-1])


class Parser:
    def __init__(self, text: str, file: str):
        self.cursor = Cursor(scan(text, _RULES, file, _SKIP, _unterminated), file)

    def parse(self) -> list[Statement]:
        c = self.cursor
        statements: list[Statement] = []
        while not c.at(EOF):
            token = c.peek()
            if token.is_("ident", "import"):
                c.next()
                c.accept("ident")  # an alias
                c.expect("string", what="the imported package's path")
            elif token.is_("ident", "package"):
                c.next()
                c.expect("ident", what="a package name")
            elif token.is_("ident", "option"):
                c.next()
                name = self._dotted_name()
                c.expect("op", "=", what="'=' after the option's name")
                statements.append(Statement("option", name, self.expr(), token.line))
            elif token.kind == "ident" and c.peek(1).is_("op", "="):
                c.next()
                c.next()
                statements.append(Statement("assign", token.text, self.expr(), token.line))
            elif token.is_("ident", "return"):
                raise c.refuse(token, "return", "only inside a function body, which is not supported")
            else:
                statements.append(Statement("expr", None, self.expr(), token.line))
        return statements

    def _dotted_name(self) -> str:
        c = self.cursor
        parts = [c.expect("ident", what="an option name").text]
        while c.accept("punct", "."):
            parts.append(c.expect("ident", what="a name after '.'").text)
        return ".".join(parts)

    # -- expressions -----------------------------------------------------------------------------

    def expr(self) -> Expr:
        if self._function_ahead():
            return self._function()
        return self._or()

    def _or(self) -> Expr:
        left = self._and()
        while self.cursor.at("ident", "or"):
            token = self.cursor.next()
            left = Binary("or", left, self._and(), token.line)
        return left

    def _and(self) -> Expr:
        left = self._not()
        while self.cursor.at("ident", "and"):
            token = self.cursor.next()
            left = Binary("and", left, self._not(), token.line)
        return left

    def _not(self) -> Expr:
        token = self.cursor.peek()
        if token.is_("ident", "not") or token.is_("ident", "exists"):
            self.cursor.next()
            return Unary(token.text, self._not(), token.line)
        return self._comparison()

    def _comparison(self) -> Expr:
        left = self._additive()
        while self.cursor.peek().kind == "op" and self.cursor.peek().text in _COMPARISONS:
            token = self.cursor.next()
            left = Binary(token.text, left, self._additive(), token.line)
        return left

    def _additive(self) -> Expr:
        left = self._multiplicative()
        while self.cursor.at("op", "+") or self.cursor.at("op", "-"):
            token = self.cursor.next()
            left = Binary(token.text, left, self._multiplicative(), token.line)
        return left

    def _multiplicative(self) -> Expr:
        left = self._pipe()
        while self.cursor.peek().kind == "op" and self.cursor.peek().text in ("*", "/", "%", "^"):
            token = self.cursor.next()
            left = Binary(token.text, left, self._pipe(), token.line)
        return left

    def _pipe(self) -> Expr:
        left = self._postfix()
        while self.cursor.at("op", "|>"):
            token = self.cursor.next()
            call = self._postfix()
            if not isinstance(call, Call):
                raise self.cursor.refuse(token, "|>", "a pipe forwards into a function call")
            left = Pipe(left, call, token.line)
        return left

    def _postfix(self) -> Expr:
        c = self.cursor
        expr = self._primary()
        while True:
            token = c.peek()
            if token.is_("punct", "."):
                c.next()
                expr = Member(expr, c.expect("ident", what="a name after '.'").text, token.line)
            elif token.is_("punct", "[") and isinstance(expr, Name | Member):
                c.next()
                key = c.expect("string", what='a column name as ["name"]')
                c.expect("punct", "]", what="']'")
                expr = Member(expr, unquote(key), token.line)
            elif token.is_("punct", "("):
                expr = Call(expr, self._arguments(), token.line)
            else:
                return expr

    def _arguments(self) -> dict[str, Expr]:
        c = self.cursor
        opening = c.expect("punct", "(")
        args: dict[str, Expr] = {}
        while not c.at("punct", ")"):
            name = c.expect("ident", what="a named argument (name: value)")
            if c.accept("punct", ":"):
                args[name.text] = self.expr()
            else:
                args[name.text] = Name(name.text, name.line)  # f(x) is short for f(x: x)
            if not c.accept("punct", ","):
                break
        c.expect("punct", ")", what=f"')' closing the call on line {opening.line}")
        return args

    def _primary(self) -> Expr:
        c = self.cursor
        token = c.next()
        if token.kind == "ident":
            if token.text in ("true", "false"):
                return Lit("bool", token.text == "true", token.line)
            return Name(token.text, token.line)
        if token.kind == "string":
            if "${" in token.text:
                raise c.refuse(token, token.text, "string interpolation is not supported")
            return Lit("string", unquote(token), token.line)
        if token.kind == "number":
            return Lit("number", float(token.text), token.line)
        if token.kind == "duration":
            return Lit("duration", duration_of(token.text), token.line)
        if token.kind == "time":
            return Lit("time", token.text, token.line)
        if token.kind == "regex":
            return Lit("regex", token.text[1:-1].replace("\\/", "/"), token.line)
        if token.is_("op", "-"):
            operand = self._postfix()
            if isinstance(operand, Lit) and isinstance(operand.value, FluxDuration):
                return Lit("duration", operand.value.negate(), token.line)
            if isinstance(operand, Lit) and isinstance(operand.value, float):
                return Lit("number", -operand.value, token.line)
            return Unary("-", operand, token.line)
        if token.is_("punct", "("):
            inner = self.expr()
            c.expect("punct", ")", what="')'")
            return inner
        if token.is_("punct", "["):
            items: list[Expr] = []
            while not c.at("punct", "]"):
                items.append(self.expr())
                if not c.accept("punct", ","):
                    break
            c.expect("punct", "]", what="']' closing the array")
            return Array(tuple(items), token.line)
        if token.is_("punct", "{"):
            return self._record(token)
        raise c.unexpected(token, "a value")

    def _record(self, opening: Token) -> Record:
        c = self.cursor
        base: Expr | None = None
        if c.peek().kind == "ident" and c.peek(1).is_("ident", "with"):
            base = Name(c.next().text, opening.line)
            c.next()
        items: dict[str, Expr] = {}
        while not c.at("punct", "}"):
            key = c.next()
            if key.kind not in ("ident", "string"):
                raise c.unexpected(key, "a record key")
            c.expect("punct", ":", what="':' after a record key")
            items[unquote(key) if key.kind == "string" else key.text] = self.expr()
            if not c.accept("punct", ","):
                break
        c.expect("punct", "}", what=f"'}}' closing the record on line {opening.line}")
        return Record(items, opening.line, base)

    def _function_ahead(self) -> bool:
        """``(`` … ``)`` followed by ``=>``: a function literal."""
        c = self.cursor
        if not c.at("punct", "("):
            return False
        depth = 0
        ahead = 0
        while True:
            token = c.peek(ahead)
            if token.kind == EOF:
                return False
            if token.is_("punct", "("):
                depth += 1
            elif token.is_("punct", ")"):
                depth -= 1
                if depth == 0:
                    return c.peek(ahead + 1).is_("op", "=>")
            ahead += 1

    def _function(self) -> Function:
        c = self.cursor
        opening = c.expect("punct", "(")
        params: list[str] = []
        while not c.at("punct", ")"):
            params.append(c.expect("ident", what="a parameter name").text)
            if c.accept("op", "=") and not c.accept("op", "<-"):  # tables=<- is the piped input
                self.expr()  # a default value: the task's calls name every argument
            if not c.accept("punct", ","):
                break
        c.expect("punct", ")", what="')' closing the parameters")
        c.expect("op", "=>", what="'=>'")
        if c.at("punct", "{") and not self._record_ahead():
            raise c.refuse(c.peek(), "function body", "block bodies ({ … return … }) are not supported")
        return Function(tuple(params), self.expr(), opening.line)

    def _record_ahead(self) -> bool:
        """``{`` starting a record (``{a: …}``, ``{r with …}``, ``{}``) rather than a block."""
        c = self.cursor
        first, second = c.peek(1), c.peek(2)
        return first.is_("punct", "}") or second.is_("punct", ":") or second.is_("ident", "with")


def parse(text: str, file: str) -> list[Statement]:
    return Parser(text, file).parse()
