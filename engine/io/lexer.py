r"""One tokenizer for the LEF and DEF readers (and its SPEF variant), keeping each token's line for error messages.

LEF and DEF share their lexical rules (the LEF/DEF reference's syntax conventions): tokens are separated by
whitespace; ``;`` ends a statement and ``(`` ``)`` enclose a point, each its own token here even when written
against a word (``(0 0)``); a ``#`` that starts a token begins a comment running to the end of the line; a string in
double quotes is one token, quotes kept, with ``#``, ``;`` and spaces inside it plain characters.

SPEF (IEEE 1481) has other rules, in ``tokenize_spef``: tokens are separated by whitespace only; ``//`` starts a
comment to the end of the line and ``/* ... */`` encloses one, over lines too (both only where a token would start:
``/`` is SPEF's default hierarchy divider inside names); a backslash makes the next character part of the name
(``u_rx\.count``); a string in double quotes is one token.
"""
from __future__ import annotations

import re
from pathlib import Path

from engine.errors import EngineError

# A closed string, an unclosed one (an error), a comment, a punctuation mark, a word.
_TOKEN = re.compile(r'"[^"]*"|"[^"]*$|#.*|[();]|[^\s();]+')
_WORD = re.compile(r"[();]|[^\s();]+")  # the same on a line with no '#' and no '"': the common, fast case


def tokenize(text: str, path: str | Path = "<text>", error: type[EngineError] = EngineError) -> list[tuple[int, str]]:
    """(line, token) pairs of ``text``, lines counted from 1. An unclosed string raises ``error`` naming its line."""
    toks: list[tuple[int, str]] = []
    for lineno, line in enumerate(text.splitlines(), 1):
        if "#" not in line and '"' not in line:
            toks.extend((lineno, t) for t in _WORD.findall(line))
            continue
        for t in _TOKEN.findall(line):
            if t[0] == "#":
                break
            if t[0] == '"' and (len(t) == 1 or t[-1] != '"'):
                raise error(f"{path}:{lineno}: string {t} is not closed on its line")
            toks.append((lineno, t))
    return toks


_SPEF_WORD = re.compile(r"(?:\\.|[^\s\\])+|\\")  # escaped characters and plain ones; a lone '\' at a line's end


def tokenize_spef(text: str, path: str | Path = "<text>",
                  error: type[EngineError] = EngineError) -> list[tuple[int, str]]:
    """(line, token) pairs of a SPEF ``text`` (rules in the module's doc). An unclosed string or '/*' raises
    ``error`` naming its line."""
    toks: list[tuple[int, str]] = []
    comment_from: int | None = None  # the line of an open '/*'
    for lineno, line in enumerate(text.splitlines(), 1):
        if comment_from is None and "/" not in line and '"' not in line and "\\" not in line:
            toks.extend((lineno, t) for t in line.split())
            continue
        pos = 0
        while pos < len(line):
            if comment_from is not None:
                end = line.find("*/", pos)
                if end < 0:
                    break
                pos, comment_from = end + 2, None
                continue
            while pos < len(line) and line[pos].isspace():
                pos += 1
            if pos >= len(line) or line.startswith("//", pos):
                break
            if line.startswith("/*", pos):
                comment_from, pos = lineno, pos + 2
            elif line[pos] == '"':
                end = line.find('"', pos + 1)
                if end < 0:
                    raise error(f"{path}:{lineno}: string {line[pos:]} is not closed on its line")
                toks.append((lineno, line[pos:end + 1]))
                pos = end + 1
            else:
                m = _SPEF_WORD.match(line, pos)
                assert m is not None  # line[pos] is not whitespace, so one of the two alternatives matches
                toks.append((lineno, m.group()))
                pos = m.end()
    if comment_from is not None:
        raise error(f"{path}:{comment_from}: comment '/*' is never closed by '*/'")
    return toks


class TokenReader:
    """A cursor over the tokens of one LEF, DEF or SPEF file; its errors name the file and the line.

    ``tokens`` (from ``tokenize_spef``, say) replaces the LEF/DEF tokens of ``text``."""

    def __init__(self, path: str | Path, text: str, error: type[EngineError] = EngineError,
                 tokens: list[tuple[int, str]] | None = None):
        self.path = Path(path)
        self._error = error
        self.toks = tokenize(text, self.path, error) if tokens is None else tokens
        self.i = 0

    def error(self, msg: str, lineno: int | None = None) -> EngineError:
        """An error at ``lineno``, by default the line of the token at the cursor (of the last one at the end)."""
        if lineno is None:
            lineno = self.toks[min(self.i, len(self.toks) - 1)][0] if self.toks else 1
        return self._error(f"{self.path}:{lineno}: {msg}")

    def peek(self) -> str | None:
        return self.toks[self.i][1] if self.i < len(self.toks) else None

    def next(self) -> str:
        if self.i >= len(self.toks):
            raise self.error("unexpected end of file")
        tok = self.toks[self.i][1]
        self.i += 1
        return tok

    def statement(self) -> list[str]:
        """Tokens up to the next ';' (the ';' consumed, not returned)."""
        out: list[str] = []
        start = self.i
        while True:
            if self.i >= len(self.toks):
                self.i = start
                raise self.error("statement not closed by ';'")
            tok = self.next()
            if tok == ";":
                return out
            out.append(tok)

    def number(self, tok: str) -> float:
        """``tok`` (of the statement just read) as a number; else an error at that statement's last line."""
        try:
            return float(tok)
        except ValueError:
            raise self.error(f"expected a number, found '{tok}'", self.toks[max(self.i - 1, 0)][0]
                             if self.toks else 1) from None

    def skip_block(self, name: str) -> None:
        """Skip to 'END name' (any 'END' when name is ''), the block opened by the token just read."""
        start_line = self.toks[self.i - 1][0]
        while self.i < len(self.toks):
            tok = self.next()
            if tok == "END" and (self.peek() == name or name == ""):
                if name:
                    self.next()
                return
        raise self.error(f"block '{name}' opened here is never closed by 'END {name}'", start_line)
