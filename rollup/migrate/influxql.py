"""A parser for the InfluxQL that rollups are written in: ``CREATE CONTINUOUS QUERY … BEGIN SELECT …
INTO … FROM … [WHERE …] GROUP BY time(…[, offset]), tags|* [fill(…)] [tz('…')] END`` (with
``RESAMPLE EVERY/FOR`` and a subquery in ``FROM``), and the ``SELECT`` of a Kapacitor batch query.

It follows InfluxDB 1.x's grammar for that subset, including the forms ``SHOW CONTINUOUS QUERIES``
prints back (fully qualified names, ``TZ('…')``, quoted identifiers). Keywords are case-insensitive.
Positions in the text are kept where ``--check`` needs to rewrite the statement (the ``INTO``
clause, the outer ``WHERE`` and ``GROUP BY``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rollup.migrate.errors import Refusal, RefusalError
from rollup.migrate.lexer import EOF, Cursor, Rule, Token, scan
from rollup.migrate.where import AllOf, AnyOf, Condition, Operator, TagTest

_RULES: list[Rule] = [
    ("duration", re.compile(r"\d+(?:ns|us|µs|u|µ|ms|s|m|h|d|w)(?![A-Za-z0-9_])")),
    ("number", re.compile(r"(?:\d+\.\d*|\.\d+|\d+)(?:[eE][+-]?\d+)?")),
    ("ident", re.compile(r"[A-Za-z_][A-Za-z0-9_]*")),
    ("ident", re.compile(r'"(?:\\.|[^"\\])*"')),
    ("string", re.compile(r"'(?:\\.|[^'\\])*'")),
    ("regex_or_div", re.compile(r"/(?:\\.|[^/\\\n])*/")),
    ("op", re.compile(r"=~|!~|!=|<>|<=|>=|::|[=<>+\-*/%]")),
    ("punct", re.compile(r"[(),.;:]")),
]
_SKIP = re.compile(r"(?:\s+|--[^\n]*|/\*.*?\*/)+", re.DOTALL)
_DURATION_UNITS = {"ns": 1, "u": 1_000, "us": 1_000, "µ": 1_000, "µs": 1_000, "ms": 1_000_000,
                   "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9, "d": 86400 * 10**9,
                   "w": 7 * 86400 * 10**9}  # fmt: skip
_COMPARISONS = {"=", "!=", "<>", "<", "<=", ">", ">=", "=~", "!~"}
_CLAUSES = {"INTO", "FROM", "WHERE", "GROUP", "FILL", "ORDER", "LIMIT", "OFFSET", "SLIMIT", "SOFFSET", "TZ",
            "END"}  # fmt: skip


def tokenize(text: str, file: str, first_line: int = 1) -> list[Token]:
    return scan(text, _RULES, file, _SKIP, _unterminated, first_line, regex_keywords={"FROM", "BY"})


def _unterminated(rest: str) -> str | None:
    opening = rest[0]
    if opening == "'":
        return "a string literal is not closed: is the statement cut short?"
    if opening == '"':
        return "a quoted identifier is not closed: is the statement cut short?"
    if opening == "/":
        return "a regex literal is not closed: is the statement cut short?"
    return None


# -- syntax tree ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ref:
    name: str
    line: int


@dataclass(frozen=True, slots=True)
class Literal:
    value: str | int | float | bool
    kind: str
    """``string``, ``number``, ``duration`` (value in ns), ``regex``, ``bool``, ``star``."""
    line: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Expr, ...]
    line: int


@dataclass(frozen=True, slots=True)
class Binary:
    op: str
    left: Expr
    right: Expr
    line: int


Expr = Ref | Literal | Call | Binary


@dataclass(frozen=True, slots=True)
class SelectField:
    expr: Expr
    alias: str | None
    line: int


@dataclass(frozen=True, slots=True)
class MeasurementRef:
    database: str | None
    retention_policy: str | None
    name: str | None
    regex: str | None
    line: int
    backreference: bool = False
    """``:MEASUREMENT`` in an INTO clause."""


@dataclass
class Select:
    fields: list[SelectField]
    source: MeasurementRef | Select
    line: int
    start: int
    end: int
    into: MeasurementRef | None = None
    into_span: tuple[int, int] | None = None
    where: Expr | None = None
    where_span: tuple[int, int] | None = None
    """From the ``WHERE`` keyword to the end of its condition."""
    group_start: int | None = None
    """Offset where ``GROUP BY`` (or what follows the ``FROM``/``WHERE``) begins."""
    group_time: tuple[int, int] | None = None
    """``GROUP BY time(every, offset)`` in ns."""
    group_tags: list[str] | None = field(default_factory=list)
    """Tags of ``GROUP BY``; None for ``*``."""
    fill: str | None = None
    timezone: str | None = None
    extras: list[tuple[str, int]] = field(default_factory=list)
    """Clauses present that a rollup has no use for (``ORDER BY``, ``LIMIT`` …) and their lines."""


@dataclass
class ContinuousQuery:
    name: str
    database: str
    select: Select
    line: int
    resample_every: int | None = None
    resample_for: int | None = None


# -- parser --------------------------------------------------------------------------------------


def unquote(token: Token) -> str:
    """An identifier's or a string's value (quotes removed, backslash escapes resolved)."""
    text = token.text
    if text[:1] in ("'", '"'):
        return re.sub(r"\\(.)", lambda m: "\n" if m.group(1) == "n" else m.group(1), text[1:-1])
    return text


def regex_pattern(token: Token) -> str:
    """The RE2 pattern of a ``/…/`` literal (``\\/`` is a slash; other escapes belong to RE2)."""
    return token.text[1:-1].replace("\\/", "/")


def duration_ns(token: Token) -> int:
    match = re.fullmatch(r"(\d+)(\D+)", token.text)
    assert match is not None  # the scanner only makes duration tokens of this form
    return int(match.group(1)) * _DURATION_UNITS[match.group(2)]


class Parser:
    def __init__(self, text: str, file: str, first_line: int = 1):
        self.text = text
        self.cursor = Cursor(tokenize(text, file, first_line), file)
        self.file = file

    # -- statements ------------------------------------------------------------------------------

    def statements(self) -> list[ContinuousQuery]:
        """Every statement of a file or an argument; each must be a CREATE CONTINUOUS QUERY."""
        found: list[ContinuousQuery] = []
        while True:
            while self.cursor.accept("punct", ";"):
                pass
            if self.cursor.at(EOF):
                return found
            found.append(self.continuous_query())

    def continuous_query(self) -> ContinuousQuery:
        c = self.cursor
        first = c.peek()
        if not (self._keyword_at("CREATE") and self._keyword_at("CONTINUOUS", 1)):
            words = " ".join(c.peek(i).text.upper() for i in range(2) if c.peek(i).kind == "ident")
            raise c.refuse(
                first,
                words or first.text,
                "not a CREATE CONTINUOUS QUERY … BEGIN SELECT … INTO … END statement",
            )
        self._keywords("CREATE", "CONTINUOUS", "QUERY")
        name = unquote(c.expect("ident", what="the continuous query's name"))
        self._keywords("ON")
        database = unquote(c.expect("ident", what="a database name after ON"))
        resample_every = resample_for = None
        if self._accept_keyword("RESAMPLE"):
            if self._accept_keyword("EVERY"):
                resample_every = duration_ns(c.expect("duration", what="a duration after EVERY"))
            if self._accept_keyword("FOR"):
                resample_for = duration_ns(c.expect("duration", what="a duration after FOR"))
        self._keywords("BEGIN")
        if not self._keyword_at("SELECT"):
            raise c.refuse(
                c.peek(), "BEGIN", f"a continuous query runs a SELECT, found {c.peek().describe()}"
            )
        select = self.select()
        self._keywords("END")
        return ContinuousQuery(name, database, select, first.line, resample_every, resample_for)

    def select(self) -> Select:
        c = self.cursor
        first = self._keywords("SELECT")
        fields = [self.select_field()]
        while c.accept("punct", ","):
            fields.append(self.select_field())
        into = into_span = None
        if self._keyword_at("INTO"):
            keyword = c.next()
            into = self.measurement(into_clause=True)
            into_span = (keyword.start, self._previous().end)
        self._keywords("FROM")
        select = Select(fields, self.source(), first.line, first.start, first.end, into, into_span)
        if c.accept("punct", ","):
            raise c.refuse(c.peek(), "FROM", "several measurements in one query: import one per query")
        if self._keyword_at("WHERE"):
            where = c.next()
            select.where = self.expr()
            select.where_span = (where.start, self._previous().end)
        select.group_start = c.peek().start
        if self._accept_keyword("GROUP"):
            self._keywords("BY")
            self.dimensions(select)
        self.trailing_clauses(select)
        select.end = self._previous().end
        return select

    def select_field(self) -> SelectField:
        start = self.cursor.peek()
        expr = self.expr()
        alias = None
        if self._accept_keyword("AS"):
            alias = unquote(self.cursor.expect("ident", what="a name after AS"))
        return SelectField(expr, alias, start.line)

    def measurement(self, into_clause: bool = False) -> MeasurementRef:
        """``m``, ``rp.m``, ``db.rp.m``, ``db..m``, ``/regex/`` (FROM), ``:MEASUREMENT`` (INTO)."""
        c = self.cursor
        line = c.peek().line
        parts: list[str | None] = []
        while True:
            if c.at("regex"):
                return MeasurementRef(*_qualifiers(parts), None, regex_pattern(c.next()), line)
            if into_clause and c.at("punct", ":"):
                c.next()
                word = c.expect("ident", what="MEASUREMENT after ':'")
                if word.text.upper() != "MEASUREMENT":
                    raise c.unexpected(word, "MEASUREMENT after ':'")
                return MeasurementRef(*_qualifiers(parts), None, None, line, backreference=True)
            if c.at("punct", "."):
                parts.append(None)  # db..m: the default retention policy
            else:
                parts.append(unquote(c.expect("ident", what="a measurement name")))
                if not c.at("punct", "."):
                    break
            c.next()
        if len(parts) > 3:
            raise c.refuse(c.peek(), "FROM", "a measurement has at most three parts: database.rp.measurement")
        name = parts[-1]
        return MeasurementRef(*_qualifiers(parts[:-1]), name, None, line)

    def source(self) -> MeasurementRef | Select:
        c = self.cursor
        if c.accept("punct", "("):
            inner = self.select()
            c.expect("punct", ")", what="')' closing the subquery")
            return inner
        return self.measurement()

    def dimensions(self, select: Select) -> None:
        c = self.cursor
        tags: list[str] | None = []
        while True:
            token = c.peek()
            if token.is_("ident") and token.text.lower() == "time" and c.peek(1).is_("punct", "("):
                c.next()
                c.next()
                every = duration_ns(c.expect("duration", what="the interval of time(…)", node="GROUP BY"))
                offset = 0
                if c.accept("punct", ","):
                    negative = c.accept("op", "-") is not None
                    if c.at("ident") and c.peek().text.lower() == "now":
                        raise c.refuse(c.peek(), "GROUP BY", "time(…, now()) offsets follow the query time")
                    offset = duration_ns(c.expect("duration", what="an offset", node="GROUP BY"))
                    offset = -offset if negative else offset
                c.expect("punct", ")", what="')' closing time(…)")
                select.group_time = (every, offset)
            elif token.is_("op", "*"):
                c.next()
                tags = None
            elif token.is_("regex"):
                raise c.refuse(token, "GROUP BY", "a regex of tags: name the tags (or use *)")
            elif token.is_("ident") and token.text.upper() not in _CLAUSES:
                c.next()
                if tags is not None:
                    tags.append(unquote(token))
            else:
                raise c.unexpected(token, "time(…), a tag or * after GROUP BY")
            if not c.accept("punct", ","):
                break
        select.group_tags = tags

    def trailing_clauses(self, select: Select) -> None:
        c = self.cursor
        while True:
            token = c.peek()
            word = token.text.upper() if token.kind == "ident" else ""
            if word == "FILL" and c.peek(1).is_("punct", "("):
                c.next()
                c.next()
                value = c.next()
                negative = value.is_("op", "-")
                if negative:
                    value = c.next()
                if value.kind not in ("ident", "number"):
                    raise c.unexpected(value, "none, null, previous, linear or a number in fill(…)")
                select.fill = ("-" if negative else "") + value.text.lower()
                c.expect("punct", ")", what="')' closing fill(…)")
            elif word == "TZ" and c.peek(1).is_("punct", "("):
                c.next()
                c.next()
                select.timezone = unquote(c.expect("string", what="a time zone name in tz('…')"))
                c.expect("punct", ")", what="')' closing tz(…)")
            elif word == "ORDER":
                c.next()
                self._keywords("BY")
                c.expect("ident", what="time after ORDER BY")
                self._accept_keyword("ASC") or self._accept_keyword("DESC")
                select.extras.append(("ORDER BY", token.line))
            elif word in ("LIMIT", "OFFSET", "SLIMIT", "SOFFSET"):
                c.next()
                c.expect("number", what=f"a number after {word}")
                select.extras.append((word, token.line))
            else:
                return

    # -- expressions -----------------------------------------------------------------------------

    def expr(self) -> Expr:
        return self._binary(0)

    _LEVELS = (("OR",), ("AND",), tuple(_COMPARISONS), ("+", "-"), ("*", "/", "%"))

    def _binary(self, level: int) -> Expr:
        if level == len(self._LEVELS):
            return self._unary()
        left = self._binary(level + 1)
        while True:
            token = self.cursor.peek()
            op = token.text.upper() if token.kind == "op" or _bare_word(token) else ""
            if op not in self._LEVELS[level]:
                return left
            self.cursor.next()
            right = self._binary(level + 1)
            left = Binary(op, left, right, token.line)

    def _unary(self) -> Expr:
        c = self.cursor
        token = c.next()
        if token.is_("op", "-"):
            operand = self._unary()
            if isinstance(operand, Literal) and operand.kind in ("number", "duration"):
                assert isinstance(operand.value, int | float)
                return Literal(-operand.value, operand.kind, token.line)
            return Binary("*", Literal(-1, "number", token.line), operand, token.line)
        if token.is_("punct", "("):
            inner = self.expr()
            c.expect("punct", ")", what="')'")
            return inner
        if token.kind == "number":
            number = float(token.text) if any(ch in token.text for ch in ".eE") else int(token.text)
            return Literal(number, "number", token.line)
        if token.kind == "duration":
            return Literal(duration_ns(token), "duration", token.line)
        if token.kind == "string":
            return Literal(unquote(token), "string", token.line)
        if token.kind == "regex":
            return Literal(regex_pattern(token), "regex", token.line)
        if token.is_("op", "*"):
            return Literal("*", "star", token.line)
        if token.kind == "ident":
            if token.text.upper() in _CLAUSES or token.text.upper() in ("AS", "SELECT"):
                raise c.unexpected(token, "an expression")
            if c.at("punct", "("):
                return self._call(token)
            if token.text.upper() in ("TRUE", "FALSE") and not token.text.startswith('"'):
                return Literal(token.text.upper() == "TRUE", "bool", token.line)
            if c.at("op", "::"):
                raise c.refuse(c.peek(), "::", f"type casts ({token.text}::…) are not supported")
            return Ref(unquote(token), token.line)
        raise c.unexpected(token, "an expression")

    def _call(self, name: Token) -> Call:
        c = self.cursor
        c.expect("punct", "(")
        args: list[Expr] = []
        if not c.at("punct", ")"):
            if c.at("ident") and c.peek().text.upper() == "DISTINCT":
                raise c.refuse(c.peek(), f"{name.text}(DISTINCT …)", "DISTINCT has no rollup aggregate")
            args.append(self.expr())
            while c.accept("punct", ","):
                args.append(self.expr())
        c.expect("punct", ")", what=f"')' closing {name.text}(…)")
        return Call(name.text.lower(), tuple(args), name.line)

    # -- helpers ---------------------------------------------------------------------------------

    def _keyword_at(self, word: str, ahead: int = 0) -> bool:
        token = self.cursor.peek(ahead)
        return token.kind == "ident" and token.text.upper() == word

    def _accept_keyword(self, word: str) -> bool:
        if self._keyword_at(word):
            self.cursor.next()
            return True
        return False

    def _keywords(self, *words: str) -> Token:
        first = self.cursor.peek()
        for word in words:
            if not self._keyword_at(word):
                raise self.cursor.unexpected(self.cursor.peek(), word)
            self.cursor.next()
        return first

    def _previous(self) -> Token:
        return self.cursor.tokens[max(self.cursor.position - 1, 0)]


def _bare_word(token: Token) -> bool:
    return token.kind == "ident" and not token.text.startswith('"')


def _qualifiers(parts: list[str | None]) -> tuple[str | None, str | None]:
    """The database and retention policy before a measurement name (``rp.m``, ``db.rp.m``)."""
    if len(parts) == 2:
        return parts[0], parts[1]
    if len(parts) == 1:
        return None, parts[0]
    return None, None


def parse_statements(text: str, file: str) -> list[ContinuousQuery]:
    """Every ``CREATE CONTINUOUS QUERY`` of ``text``; anything else is refused."""
    return Parser(text, file).statements()


def parse_select(text: str, file: str, first_line: int) -> Select:
    """One ``SELECT`` statement (a Kapacitor batch query), nothing after it."""
    parser = Parser(text, file, first_line)
    select = parser.select()
    parser.cursor.accept("punct", ";")
    if not parser.cursor.at(EOF):
        raise parser.cursor.unexpected(parser.cursor.peek(), "the end of the query")
    return select


_TAG_OPS: dict[str, Operator] = {"=": "==", "!=": "!=", "<>": "!=", "=~": "=~", "!~": "!~"}


def condition_of(expr: Expr, file: str) -> Condition:
    """A WHERE clause as tag tests; conditions on field values or time are refused."""
    if isinstance(expr, Binary) and expr.op in ("AND", "OR"):
        items = (condition_of(expr.left, file), condition_of(expr.right, file))
        return AllOf(items) if expr.op == "AND" else AnyOf(items)
    if isinstance(expr, Binary) and expr.op in _TAG_OPS and isinstance(expr.left, Ref):
        if expr.left.name.lower() == "time":
            raise RefusalError(Refusal(file, expr.line, "WHERE time", "the time range is the window's"))
        right = expr.right
        if isinstance(right, Literal) and right.kind in ("string", "regex"):
            if (right.kind == "regex") != (expr.op in ("=~", "!~")):
                raise RefusalError(Refusal(file, expr.line, "WHERE", f"{expr.op} with a {right.kind}"))
            return TagTest(expr.left.name, _TAG_OPS[expr.op], str(right.value))
    raise RefusalError(
        Refusal(
            file,
            expr.line,
            "WHERE",
            "only conditions on tags (tag = 'value', tag =~ /regex/, AND, OR) can be expressed; "
            "a condition on a field value cannot",
        )
    )
