"""Tokens and a token cursor shared by the TICKscript, InfluxQL and Flux parsers.

Each language scans its own text (:func:`scan` with the language's rules); the parsers then walk
the tokens with a :class:`Cursor`, whose errors name the file and the line of the offending token
and say when the text simply stops: a truncated script is the most common bad input.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

from rollup.migrate.errors import Refusal, RefusalError

EOF = "eof"


@dataclass(frozen=True, slots=True)
class Token:
    kind: str
    text: str
    """As written (quotes included)."""
    line: int
    start: int
    """Offset of the first character in the scanned text."""
    end: int

    def is_(self, kind: str, text: str | None = None) -> bool:
        return self.kind == kind and (text is None or self.text == text)

    def describe(self) -> str:
        return "the end of the text" if self.kind == EOF else repr(self.text)


Rule = tuple[str, re.Pattern[str]]
"""A token kind and the pattern that matches it at the current position (tried in order)."""


def scan(
    text: str,
    rules: Sequence[Rule],
    file: str,
    skip: re.Pattern[str],
    unterminated: Callable[[str], str | None] = lambda rest: None,
    first_line: int = 1,
    regex_keywords: Collection[str] = (),
) -> list[Token]:
    """Cut ``text`` into tokens, skipping what ``skip`` matches (space, comments).

    A rule of kind ``regex_or_div`` matches ``/…/``: a regex literal where an operand is expected
    (not after a name, a number, a closing bracket … unless the name is one of ``regex_keywords``,
    as InfluxQL's ``FROM /…/``), else a division, whose ``/`` alone becomes an ``op`` token.
    ``unterminated(rest)`` names what starts at a position no rule matches (an unclosed string, a
    regex without its closing slash) so the error can say so; otherwise the character is shown.
    """
    tokens: list[Token] = []
    position = 0
    line = first_line
    while True:
        gap = skip.match(text, position)
        if gap:
            line += text.count("\n", position, gap.end())
            position = gap.end()
        if position >= len(text):
            tokens.append(Token(EOF, "", line, position, position))
            return tokens
        for kind, pattern in rules:
            match = pattern.match(text, position)
            if match and match.end() > position:
                end = match.end()
                if kind == "regex_or_div":
                    kind = "regex" if _expects_operand(tokens, regex_keywords) else "op"
                    end = end if kind == "regex" else position + 1
                tokens.append(Token(kind, text[position:end], line, position, end))
                line += text.count("\n", position, end)
                position = end
                break
        else:
            what = unterminated(text[position:])
            reason = what or f"unexpected character {text[position]!r}"
            raise RefusalError(Refusal(file, line, "", reason))


def _expects_operand(tokens: list[Token], keywords: Collection[str]) -> bool:
    if not tokens:
        return True
    previous = tokens[-1]
    if previous.kind == "ident" and previous.text.upper() in keywords:
        return True
    return previous.kind not in _OPERANDS and previous.text not in (")", "]", "}")


_OPERANDS = frozenset({"ident", "reference", "number", "duration", "string"})


class Cursor:
    """Walks a token list; every error names the file and the line."""

    def __init__(self, tokens: list[Token], file: str):
        self.tokens = tokens
        self.file = file
        self.position = 0

    def peek(self, ahead: int = 0) -> Token:
        return self.tokens[min(self.position + ahead, len(self.tokens) - 1)]

    def next(self) -> Token:
        token = self.peek()
        if token.kind != EOF:
            self.position += 1
        return token

    def at(self, kind: str, text: str | None = None) -> bool:
        return self.peek().is_(kind, text)

    def accept(self, kind: str, text: str | None = None) -> Token | None:
        if self.at(kind, text):
            return self.next()
        return None

    def expect(self, kind: str, text: str | None = None, what: str | None = None, node: str = "") -> Token:
        token = self.peek()
        if token.is_(kind, text):
            return self.next()
        raise self.unexpected(token, what or repr(text or kind), node)

    def unexpected(self, token: Token, wanted: str, node: str = "") -> RefusalError:
        if token.kind == EOF:
            reason = f"the text ends where {wanted} was expected: is it cut short?"
            last = self.tokens[-2] if len(self.tokens) > 1 else token
            return RefusalError(Refusal(self.file, last.line, node, reason))
        reason = f"expected {wanted}, found {token.describe()}"
        return RefusalError(Refusal(self.file, token.line, node, reason))

    def refuse(self, token: Token, node: str, reason: str) -> RefusalError:
        return RefusalError(Refusal(self.file, token.line, node, reason))
