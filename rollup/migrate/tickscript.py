"""A parser for TICKscript, Kapacitor's pipeline language, into the tree of nodes it declares.

The grammar is Kapacitor's (``tick/TICKscript.md``): statements are ``var name = expression``,
``dbrp "db"."rp"`` or an expression; an expression is ``batch``, ``stream`` or a variable followed
by chain links — ``|node(args)`` adds a node, ``.property(args)`` sets a property of the last
node, ``@udf(args)`` adds a user-defined function. Arguments are strings (``'…'``, ``'''…'''``),
numbers, durations (``10s``, ``1d``, ``1u``), ``TRUE``/``FALSE``, ``*``, regexes, calls such as
``time(1m)``, variables, and ``lambda:`` expressions over field and tag references (``"name"``).

The parser evaluates variables as Kapacitor does, so ``var data = batch|query(…)`` followed by
``data|mean(…)`` and ``data|max(…)`` gives one query node with two children.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from rollup.migrate.lexer import EOF, Cursor, Rule, Token, scan

_RULES: list[Rule] = [
    ("lambda", re.compile(r"lambda\s*:")),
    ("duration", re.compile(r"\d+(?:ms|u|µ|s|m|h|d|w)(?![A-Za-z0-9_])")),
    ("number", re.compile(r"\d+(?:\.\d*)?")),
    ("ident", re.compile(r"[A-Za-z_][A-Za-z0-9_]*")),
    ("string", re.compile(r"'''.*?'''", re.DOTALL)),
    ("string", re.compile(r"'(?:\\.|[^'\\])*'")),
    ("reference", re.compile(r'"(?:\\.|[^"\\])*"')),
    ("regex_or_div", re.compile(r"/(?:\\/|\\[^/]|[^/\\\n])*/")),
    ("op", re.compile(r"==|!=|=~|!~|<=|>=|[<>+\-*/%!=]")),
    ("punct", re.compile(r"[|.@()\[\],]")),
]
_SKIP = re.compile(r"(?:\s+|//[^\n]*)+")
_UNITS_NS = {"u": 1_000, "µ": 1_000, "ms": 1_000_000, "s": 10**9, "m": 60 * 10**9, "h": 3600 * 10**9,
             "d": 86400 * 10**9, "w": 7 * 86400 * 10**9}  # fmt: skip
_LEVELS: tuple[tuple[str, ...], ...] = (
    ("OR",),
    ("AND",),
    ("==", "!=", "=~", "!~", "<", "<=", ">", ">="),
    ("+", "-"),
    ("*", "/", "%"),
)


def _unterminated(rest: str) -> str | None:
    if rest.startswith("'"):
        return "a string is not closed: is the script cut short?"
    if rest.startswith('"'):
        return "a field reference is not closed: is the script cut short?"
    if rest.startswith("/"):
        return "a regex is not closed: is the script cut short?"
    return None


# -- values and expressions ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Lit:
    kind: str
    """``string``, ``number``, ``duration`` (ns), ``bool``, ``regex``, ``star``, ``pipeline`` (a
    variable holding a pipeline, as in ``join(other)``)."""
    value: str | int | float | bool
    line: int


@dataclass(frozen=True, slots=True)
class FieldRef:
    """``"name"`` in a lambda: a field or a tag of the point."""

    name: str
    line: int


@dataclass(frozen=True, slots=True)
class Call:
    name: str
    args: tuple[Expr, ...]
    line: int


@dataclass(frozen=True, slots=True)
class BinaryOp:
    op: str
    left: Expr
    right: Expr
    line: int


@dataclass(frozen=True, slots=True)
class UnaryOp:
    op: str
    operand: Expr
    line: int


@dataclass(frozen=True, slots=True)
class Lambda:
    expr: Expr
    line: int


Expr = Lit | FieldRef | Call | BinaryOp | UnaryOp | Lambda


@dataclass(frozen=True, slots=True)
class Property:
    name: str
    args: tuple[Expr, ...]
    line: int


@dataclass(eq=False)
class Node:
    """A pipeline node: ``batch``, ``stream``, ``query``, ``derivative``, ``mean`` …"""

    kind: str
    args: tuple[Expr, ...]
    line: int
    parent: Node | None = None
    udf: bool = False
    properties: list[Property] = field(default_factory=list)
    children: list[Node] = field(default_factory=list)

    def prop(self, name: str) -> Property | None:
        """The last setting of a property (Kapacitor keeps the last one)."""
        found = [p for p in self.properties if p.name == name]
        return found[-1] if found else None

    def label(self) -> str:
        return f"@{self.kind}()" if self.udf else f"{self.kind}()"


@dataclass
class Script:
    roots: list[Node]
    dbrp: list[tuple[str, str]] = field(default_factory=list)


# -- parser --------------------------------------------------------------------------------------


def unquote(token: Token) -> str:
    text = token.text
    if text.startswith("'''"):
        return text[3:-3]
    return re.sub(r"\\(['\"\\])", r"\1", text[1:-1])


def duration_ns(text: str) -> int:
    match = re.fullmatch(r"(\d+)(\D+)", text)
    assert match is not None
    return int(match.group(1)) * _UNITS_NS[match.group(2)]


class Parser:
    def __init__(self, text: str, file: str):
        self.file = file
        self.cursor = Cursor(scan(text, _RULES, file, _SKIP, _unterminated), file)
        self.variables: dict[str, Node | Expr] = {}
        self.script = Script(roots=[])

    def parse(self) -> Script:
        c = self.cursor
        while not c.at(EOF):
            token = c.peek()
            if token.is_("ident", "var"):
                self._declaration()
            elif token.is_("ident", "dbrp"):
                self._dbrp()
            else:
                self._expression()
        return self.script

    def _declaration(self) -> None:
        c = self.cursor
        c.next()
        name = c.expect("ident", what="a variable name after var")
        if c.at("ident"):
            kind = c.next()
            raise c.refuse(
                name,
                f"var {name.text} {kind.text}",
                "a template variable without a value: give the value in the script",
            )
        c.expect("op", "=", what="'=' after the variable name")
        self.variables[name.text] = self._expression()

    def _dbrp(self) -> None:
        c = self.cursor
        c.next()
        database = c.expect("reference", what='a database as "db"')
        c.expect("punct", ".", what="'.' between database and retention policy")
        policy = c.expect("reference", what='a retention policy as "rp"')
        self.script.dbrp.append((unquote(database), unquote(policy)))

    def _expression(self) -> Node | Expr:
        c = self.cursor
        token = c.peek()
        if token.kind == "ident" and token.text in ("batch", "stream") and token.text not in self.variables:
            c.next()
            root = Node(token.text, (), token.line)
            self.script.roots.append(root)
            return self._chain(root)
        if token.kind == "ident" and token.text in self.variables and c.peek(1).text in ("|", ".", "@"):
            c.next()
            value = self.variables[token.text]
            if not isinstance(value, Node):
                raise c.refuse(token, token.text, "is not a pipeline: it cannot be chained")
            return self._chain(value)
        if token.kind == "ident" and not c.peek(1).is_("punct", "(") and token.text not in self.variables:
            raise c.refuse(token, token.text, "unknown name: pipelines start with batch or stream")
        return self._value()

    def _chain(self, node: Node) -> Node:
        c = self.cursor
        while True:
            link = c.peek()
            if link.is_("punct", "|") or link.is_("punct", "@"):
                c.next()
                name = c.expect("ident", what=f"a node name after '{link.text}'")
                child = Node(name.text, self._arguments(name, required=True), name.line, parent=node)
                child.udf = link.text == "@"
                node.children.append(child)
                node = child
            elif link.is_("punct", ".") and c.peek(1).kind == "ident":
                c.next()
                name = c.next()
                args = self._arguments(name, required=False)
                node.properties.append(Property(name.text, args, name.line))
            else:
                return node

    def _arguments(self, name: Token, required: bool) -> tuple[Expr, ...]:
        c = self.cursor
        if not c.at("punct", "("):
            if required:
                raise c.unexpected(c.peek(), f"'(' after {name.text}")
            return ()
        c.next()
        args: list[Expr] = []
        while not c.at("punct", ")"):
            args.append(self._argument())
            if not c.accept("punct", ","):
                break
        c.expect("punct", ")", what=f"')' closing {name.text}(…)", node=f"{name.text}()")
        return tuple(args)

    def _argument(self) -> Expr:
        token = self.cursor.peek()
        if token.kind == "lambda":
            self.cursor.next()
            return Lambda(self._binary(0), token.line)
        return self._value()

    def _value(self) -> Expr:
        return self._binary(0)

    def _binary(self, level: int) -> Expr:
        if level == len(_LEVELS):
            return self._unary()
        left = self._binary(level + 1)
        while True:
            token = self.cursor.peek()
            if token.kind not in ("op", "ident") or token.text not in _LEVELS[level]:
                return left
            self.cursor.next()
            left = BinaryOp(token.text, left, self._binary(level + 1), token.line)

    def _unary(self) -> Expr:
        c = self.cursor
        token = c.next()
        if token.is_("op", "-") or token.is_("op", "!"):
            operand = self._unary()
            if token.text == "-" and isinstance(operand, Lit) and operand.kind in ("number", "duration"):
                assert isinstance(operand.value, int | float)
                return Lit(operand.kind, -operand.value, token.line)
            return UnaryOp(token.text, operand, token.line)
        if token.is_("punct", "("):
            inner = self._binary(0)
            c.expect("punct", ")", what="')'")
            return inner
        if token.kind == "string":
            return Lit("string", unquote(token), token.line)
        if token.kind == "reference":
            return FieldRef(unquote(token), token.line)
        if token.kind == "number":
            value = float(token.text) if "." in token.text else int(token.text)
            return Lit("number", value, token.line)
        if token.kind == "duration":
            return Lit("duration", duration_ns(token.text), token.line)
        if token.kind == "regex":
            return Lit("regex", token.text[1:-1].replace("\\/", "/"), token.line)
        if token.is_("op", "*"):
            return Lit("star", "*", token.line)
        if token.kind == "ident":
            if token.text in ("TRUE", "FALSE"):
                return Lit("bool", token.text == "TRUE", token.line)
            if c.at("punct", "("):
                return Call(token.text, self._arguments(token, required=True), token.line)
            variable = self.variables.get(token.text)
            if variable is None:
                raise c.refuse(token, token.text, "unknown variable")
            if isinstance(variable, Node):
                return Lit("pipeline", token.text, token.line)  # join(other): refused with its node
            return variable
        raise c.unexpected(token, "a value")


def parse(text: str, file: str) -> Script:
    return Parser(text, file).parse()
