"""Expression strings that libraries evaluate: pandas eval/query, sympy, formulas, numexpr.

A literal expression is checked token by token: it may name columns, symbols and functions
(``np.log(x)``, ``C(group)``, ``@threshold``), but not dunders, private names, the modules the
policy guards, or the builtins that fetch attributes or run code. Tokens rather than an AST,
because formula and query languages are not Python (``y ~ x``, ``a:b``, backticks).
"""

from __future__ import annotations

import ast
import io
import tokenize

from security.rules import (
    ANY_OBJECT_ATTRIBUTES,
    CODE_STRING_NAMES,
    ESCAPE_ATTRIBUTES,
    ESCAPE_NAMES,
    REROOT_MODULES,
)

_MAX_DEPTH = 5  # strings inside strings inside strings ...
_MAX_CHARS = 20_000


def code_string_problem(text: str, depth: int = 0) -> str | None:
    """Why ``text`` must not be evaluated by a library, or None when it is a plain expression."""
    if depth > _MAX_DEPTH or len(text) > _MAX_CHARS:
        return "the expression is too long or too deeply nested to check"
    try:
        tokens = list(tokenize.generate_tokens(io.StringIO(text).readline))
    except (tokenize.TokenError, SyntaxError):
        return "the expression cannot be tokenised"
    for tok in tokens:
        if tok.type == tokenize.NAME:
            why = _name_problem(tok.string)
            if why:
                return why
        elif tok.type == tokenize.STRING:
            # a string inside the expression may be evaluated again (sympify("S('...')"))
            try:
                inner = ast.literal_eval(tok.string)
            except (ValueError, SyntaxError, MemoryError, RecursionError):
                return "the expression holds a string that cannot be read"
            if isinstance(inner, bytes):
                inner = inner.decode("latin-1")
            why = code_string_problem(inner, depth + 1) if isinstance(inner, str) else None
            if why:
                return why
        elif tok.type == tokenize.ERRORTOKEN and tok.string.strip() and tok.string not in "`$?!":
            return f"the expression holds {tok.string!r}"
    return None


def _name_problem(name: str) -> str | None:
    if name.startswith("_"):
        return f"it names {name!r} (dunder and private names are not allowed)"
    if (
        name in CODE_STRING_NAMES
        or name in REROOT_MODULES
        or name in ESCAPE_ATTRIBUTES
        or name in ESCAPE_NAMES
        or name in ANY_OBJECT_ATTRIBUTES
    ):
        return f"it names {name!r}"
    return None
