"""What a name in the checked code refers to: scopes, bindings, and their resolution.

The analysis is flow-insensitive on purpose: every binding of a name in a scope is a candidate,
and a module-level name may still be the builtin of the same name unless an unconditional
top-level statement bound it earlier. That over-approximates (more candidates, never fewer), so
``e = eval``, ``import os as o`` or ``if x: eval = str`` cannot hide what a name really is.
"""

from __future__ import annotations

import ast
import builtins
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Literal

from security.rules import PRIVATE_MODULE_ALIASES, REROOT_MODULES

ScopeKind = Literal["module", "function", "class", "comprehension"]
Position = tuple[int, int]

BUILTIN_NAMES = frozenset(dir(builtins))
_FUNCTION_KINDS = ("function", "comprehension")
# AST nodes that carry no information (operators, load/store markers).
_LEAVES = frozenset(
    cls
    for base in (ast.expr_context, ast.boolop, ast.operator, ast.unaryop, ast.cmpop)
    for cls in base.__subclasses__()
)
# Fields that never hold child nodes worth visiting (names, operators, contexts), and the
# remaining fields per node type (computed on first sight).
_NOT_NODES = frozenset({
    "ctx", "op", "ops", "id", "attr", "arg", "asname", "module", "level", "type_comment",
    "kind", "conversion", "is_async", "simple",
})  # fmt: skip
_NODE_FIELDS: dict[type, tuple[str, ...]] = {}
# Nodes that open a scope, and nodes that bind names.
_SCOPE_NODES = frozenset({
    ast.FunctionDef, ast.AsyncFunctionDef, ast.Lambda, ast.ClassDef,
    ast.ListComp, ast.SetComp, ast.GeneratorExp, ast.DictComp,
})  # fmt: skip
_RECORDED = frozenset({
    ast.Import, ast.ImportFrom, ast.Global, ast.Nonlocal, ast.Assign, ast.AnnAssign,
    ast.NamedExpr, ast.Name, ast.arg, ast.ExceptHandler, ast.MatchAs, ast.MatchStar,
    ast.MatchMapping,
})  # fmt: skip
# How many aliases (``a = b``) a resolution may follow before it gives up.
MAX_ALIAS_DEPTH = 50
# Resolution steps one check may take (cyclic aliases are re-resolved, not cached).
MAX_RESOLUTION_STEPS = 200_000
_NO_CUT = 1 << 30
# Longest string constant folding may build (``"a" * 10**9`` must not allocate).
MAX_FOLDED_CHARS = 10_000


class TooComplex(Exception):
    """The code is too deep or too large to analyse; the policy turns this into a finding."""


@dataclass(eq=False)
class Binding:
    """One way a name got its value: an import (``qual``), an assignment (``value``), or other."""

    value: ast.expr | None = None
    qual: str | None = None
    # End of the statement when it is an unconditional top-level statement of the module.
    end: Position | None = None
    # Scope the statement runs in (``global x; x = os`` binds in the module, runs in a function).
    home: Scope | None = None


@dataclass(eq=False)
class Scope:
    kind: ScopeKind
    parent: Scope | None
    bindings: dict[str, list[Binding]] = field(default_factory=dict)
    declared_global: set[str] = field(default_factory=set)
    declared_nonlocal: set[str] = field(default_factory=set)
    deleted: set[str] = field(default_factory=set)
    star_modules: list[str] = field(default_factory=list)

    def module(self) -> Scope:
        scope = self
        while scope.parent is not None:
            scope = scope.parent
        return scope

    def target(self, name: str) -> Scope:
        """The scope an assignment to ``name`` made here binds in."""
        if name in self.declared_global:
            return self.module()
        if name in self.declared_nonlocal:
            scope = self.parent
            while scope is not None and scope.kind not in _FUNCTION_KINDS:
                scope = scope.parent
            return scope or self.module()
        return self

    def bind(self, name: str, binding: Binding) -> None:
        if binding.home is None:
            binding.home = self
        self.target(name).bindings.setdefault(name, []).append(binding)


def normalize(qual: str) -> str:
    """Re-root ``shutil.os.system`` at ``os.system`` (modules re-export what they import).

    Private aliases re-root too: ``random._os.system`` is ``os.system``.
    """
    if "." not in qual:
        return qual
    parts = qual.split(".")
    for i in range(len(parts) - 1, 0, -1):
        part = parts[i]
        if part in REROOT_MODULES:
            return ".".join(parts[i:])
        if part in PRIVATE_MODULE_ALIASES:
            return ".".join([PRIVATE_MODULE_ALIASES[part], *parts[i + 1 :]])
    return qual


def position(node: ast.AST) -> Position:
    return (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))


def _end(node: ast.stmt) -> Position:
    return (node.end_lineno or node.lineno, node.end_col_offset or 0)


class ScopeBuilder:
    """Walks the tree once, without recursion: assigns every node its scope, records bindings."""

    def __init__(self, *, max_depth: int, max_nodes: int) -> None:
        self.max_depth = max_depth
        self.max_nodes = max_nodes
        self._handled: set[int] = set()  # Name targets bound with a known value already

    def build(self, tree: ast.Module) -> tuple[Scope, list[tuple[ast.AST, Scope]]]:
        module = Scope("module", None)
        top_level = {id(stmt) for stmt in tree.body}
        order: list[tuple[ast.AST, Scope]] = []
        stack: list[tuple[ast.AST, Scope, int]] = [(tree, module, 0)]
        while stack:
            node, scope, depth = stack.pop()
            if depth > self.max_depth:
                raise TooComplex(f"nesting deeper than {self.max_depth} levels")
            order.append((node, scope))
            if len(order) > self.max_nodes:
                raise TooComplex(f"more than {self.max_nodes} syntax nodes")
            kind = type(node)
            if kind is ast.Constant:
                continue
            if kind is ast.Name:
                self._record(node, scope, None)
                continue
            end = _end(node) if id(node) in top_level and isinstance(node, ast.stmt) else None
            if kind in _SCOPE_NODES:
                scoped = list(self._children(node, scope, end))
                stack.extend((child, s, depth + 1) for child, s in reversed(scoped))
                continue
            if kind in _RECORDED:
                self._record(node, scope, end)
            children = _child_nodes(node)
            stack.extend((child, scope, depth + 1) for child in reversed(children))
        return module, order

    def _children(
        self, node: ast.AST, scope: Scope, end: Position | None
    ) -> Iterator[tuple[ast.AST, Scope]]:
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            scope.bind(node.name, Binding(end=end))
            inner = Scope("function", scope)
            yield from self._outer_parts(node.decorator_list, node.args, scope)
            if node.returns is not None:
                yield node.returns, scope
            yield from self._in(_all_args(node.args), inner)
            yield from self._in(node.body, inner)
        elif isinstance(node, ast.Lambda):
            inner = Scope("function", scope)
            yield from self._outer_parts([], node.args, scope)
            yield from self._in(_all_args(node.args), inner)
            yield node.body, inner
        elif isinstance(node, ast.ClassDef):
            scope.bind(node.name, Binding(end=end))
            inner = Scope("class", scope)
            yield from self._in([*node.decorator_list, *node.bases, *node.keywords], scope)
            yield from self._in(node.body, inner)
        elif isinstance(node, ast.ListComp | ast.SetComp | ast.GeneratorExp | ast.DictComp):
            inner = Scope("comprehension", scope)
            for i, gen in enumerate(node.generators):
                yield gen.target, inner
                yield gen.iter, (scope if i == 0 else inner)
                yield from self._in(gen.ifs, inner)
            if isinstance(node, ast.DictComp):
                yield node.key, inner
                yield node.value, inner
            else:
                yield node.elt, inner

    @staticmethod
    def _in(nodes: Iterable[ast.AST], scope: Scope) -> Iterator[tuple[ast.AST, Scope]]:
        for node in nodes:
            yield node, scope

    def _outer_parts(
        self, decorators: list[ast.expr], args: ast.arguments, scope: Scope
    ) -> Iterator[tuple[ast.AST, Scope]]:
        """Decorators, defaults and annotations run in the enclosing scope."""
        yield from self._in(decorators, scope)
        yield from self._in(args.defaults, scope)
        yield from self._in([d for d in args.kw_defaults if d is not None], scope)
        for arg in _all_args(args):
            if arg.annotation is not None:
                yield arg.annotation, scope

    def _record(self, node: ast.AST, scope: Scope, end: Position | None) -> None:
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.asname:
                    scope.bind(alias.asname, Binding(qual=alias.name, end=end))
                else:
                    top = alias.name.split(".")[0]
                    scope.bind(top, Binding(qual=top, end=end))
        elif isinstance(node, ast.ImportFrom):
            for alias in node.names:
                if node.level or not node.module:
                    if alias.name != "*":
                        scope.bind(alias.asname or alias.name, Binding(end=end))
                elif alias.name == "*":
                    scope.module().star_modules.append(node.module)
                else:
                    qual = f"{node.module}.{alias.name}"
                    scope.bind(alias.asname or alias.name, Binding(qual=qual, end=end))
        elif isinstance(node, ast.Global):
            scope.declared_global.update(node.names)
        elif isinstance(node, ast.Nonlocal):
            scope.declared_nonlocal.update(node.names)
        elif isinstance(node, ast.Assign):
            for target in node.targets:
                self._bind_target(target, node.value, scope, end)
        elif isinstance(node, ast.AnnAssign):
            if node.value is not None:
                self._bind_target(node.target, node.value, scope, end)
        elif isinstance(node, ast.NamedExpr):
            # (x := v) in a comprehension binds in the enclosing scope; v runs in the comprehension
            owner = scope
            while owner.kind == "comprehension" and owner.parent is not None:
                owner = owner.parent
            if isinstance(node.target, ast.Name):
                owner.bind(node.target.id, Binding(value=node.value, home=scope))
                self._handled.add(id(node.target))
        elif isinstance(node, ast.Name):
            if isinstance(node.ctx, ast.Del):
                scope.target(node.id).deleted.add(node.id)
            elif isinstance(node.ctx, ast.Store) and id(node) not in self._handled:
                scope.bind(node.id, Binding())
        elif isinstance(node, ast.arg):
            scope.bind(node.arg, Binding())
        elif isinstance(node, ast.ExceptHandler | ast.MatchAs | ast.MatchStar):
            if node.name:
                scope.bind(node.name, Binding())
        elif isinstance(node, ast.MatchMapping) and node.rest:
            scope.bind(node.rest, Binding())

    def _bind_target(
        self, target: ast.expr, value: ast.expr, scope: Scope, end: Position | None
    ) -> None:
        if isinstance(target, ast.Name):
            scope.bind(target.id, Binding(value=value, end=end))
            self._handled.add(id(target))
        elif (
            isinstance(target, ast.Tuple | ast.List)
            and isinstance(value, ast.Tuple | ast.List)
            and len(target.elts) == len(value.elts)
            and not any(isinstance(e, ast.Starred) for e in (*target.elts, *value.elts))
        ):
            for t, v in zip(target.elts, value.elts, strict=True):
                self._bind_target(t, v, scope, end)


def _child_nodes(node: ast.AST) -> list[ast.AST]:
    """Like ``ast.iter_child_nodes`` minus operators and load/store markers, as a list."""
    out: list[ast.AST] = []
    fields = _NODE_FIELDS.get(type(node))
    if fields is None:
        fields = _NODE_FIELDS[type(node)] = tuple(f for f in node._fields if f not in _NOT_NODES)
    for name in fields:
        value = getattr(node, name, None)
        if type(value) is list:
            out.extend(v for v in value if isinstance(v, ast.AST) and type(v) not in _LEAVES)
        elif isinstance(value, ast.AST) and type(value) not in _LEAVES:
            out.append(value)
    return out


def _all_args(args: ast.arguments) -> list[ast.arg]:
    out = [*args.posonlyargs, *args.args, *args.kwonlyargs]
    if args.vararg:
        out.append(args.vararg)
    if args.kwarg:
        out.append(args.kwarg)
    return out


# lookup's answer for a name in a scope: bindings, fallback, end of the first unconditional
# top-level binding (see ``Resolver._walk``).
_Lookup = tuple[list[tuple[Binding, Scope]], tuple[str, ...], Position | None]


class Resolver:
    """Resolves expressions to qualified names (``"os.system"``) and constant strings."""

    def __init__(self) -> None:
        self._quals: dict[int, frozenset[str]] = {}
        self._lookups: dict[tuple[str, int], _Lookup] = {}  # (name, id(scope)) -> _walk's answer
        self._bound: dict[tuple[str, int], frozenset[str]] = {}  # (name, id(scope)) -> quals
        self._imported: dict[tuple[str, int], frozenset[str]] = {}  # -> imported_as
        self._consts: dict[int, str | None] = {}
        # quals() nodes being resolved -> their depth; a cycle back to one of them is cut, and
        # results that depended on a cut are not cached (they may be incomplete).
        self._resolving: dict[int, int] = {}
        self._lowest_cut = _NO_CUT
        self._steps = 0
        self._folding: set[int] = set()
        self._alias_depth = 0

    def follow(self) -> _AliasStep:
        """Context for following one alias (``a = b``); bounded so chains cannot recurse away."""
        return _AliasStep(self)

    # -- names -------------------------------------------------------------------------------
    def lookup(
        self, name: str, scope: Scope, pos: Position | None
    ) -> tuple[list[tuple[Binding, Scope]], tuple[str, ...]]:
        """Bindings ``name`` may refer to at ``pos`` in ``scope``, plus fallback qualnames.

        ``pos`` is given when the reference runs inline (module body or a comprehension in
        it); only then can an earlier unconditional top-level binding rule out the builtin.
        The walk is made once per name and scope (the list returned is shared: read only).
        """
        key = (name, id(scope))
        entry = self._lookups.get(key)
        if entry is None:
            entry = self._lookups[key] = self._walk(name, scope)
        found, fallback, first_end = entry
        if pos is not None and first_end is not None and first_end <= pos:
            return found, ()
        return found, fallback

    def imported_as(self, name: str, scope: Scope) -> frozenset[str]:
        """The qualnames import statements bound ``name`` to, as seen from ``scope``."""
        key = (name, id(scope))
        direct = self._imported.get(key)
        if direct is None:
            bindings, _ = self.lookup(name, scope, None)
            direct = frozenset(normalize(b.qual) for b, _ in bindings if b.qual is not None)
            self._imported[key] = direct
        return direct

    @staticmethod
    def _walk(name: str, scope: Scope) -> _Lookup:
        """``lookup`` for any position: the bindings, the fallback, and the end of the first
        unconditional top-level binding when an inline reference after it cannot mean the
        fallback (``None``: it always may)."""
        found: list[tuple[Binding, Scope]] = []
        current: Scope | None = scope
        inline = True
        while current is not None and current.kind != "module":
            if current.kind == "class":
                found.extend((b, current) for b in current.bindings.get(name, ()))
                inline = False
            else:
                if name in current.declared_global:
                    current = current.module()
                    break
                if name in current.bindings:
                    found.extend((b, current) for b in current.bindings[name])
                    return found, (), None
                if current.kind == "function":
                    inline = False
            current = current.parent
            # Functions do not see the bodies of enclosing classes.
            while current is not None and current.kind == "class" and scope.kind != "class":
                current = current.parent
        module = current or scope.module()
        own = module.bindings.get(name, [])
        found.extend((b, module) for b in own)
        ends = [b.end for b in own if b.end is not None]
        first_end = min(ends) if inline and ends and name not in module.deleted else None
        fallback = [f"{m}.{name}" for m in module.star_modules]
        if name in BUILTIN_NAMES:
            fallback.append(f"builtins.{name}")
        return found, tuple(fallback), first_end

    def quals(self, expr: ast.AST, scope: Scope) -> frozenset[str]:
        """Qualified names ``expr`` may evaluate to (empty when it is not module-derived)."""
        key = id(expr)
        cached = self._quals.get(key)
        if cached is not None:
            return cached
        index = self._resolving.get(key)
        if index is not None:  # a = b; b = a
            self._lowest_cut = min(self._lowest_cut, index)
            return frozenset()
        self._steps += 1
        if self._steps > MAX_RESOLUTION_STEPS:
            raise TooComplex(f"more than {MAX_RESOLUTION_STEPS} name resolution steps")
        mine = len(self._resolving)
        self._resolving[key] = mine
        outer_cut, self._lowest_cut = self._lowest_cut, _NO_CUT
        try:
            result = frozenset(self._quals_of(expr, scope))
        finally:
            del self._resolving[key]
            inner_cut = self._lowest_cut
            self._lowest_cut = min(outer_cut, inner_cut)
        if inner_cut >= mine:  # no cycle through a node still being resolved above us
            self._quals[key] = result
        return result

    def _quals_of(self, expr: ast.AST, scope: Scope) -> set[str]:
        if isinstance(expr, ast.Name):
            bindings, fallback = self.lookup(expr.id, scope, self._inline_pos(expr, scope))
            return set(fallback) | self._bound_quals(expr.id, scope, bindings)
        if isinstance(expr, ast.Attribute):
            return {normalize(f"{q}.{expr.attr}") for q in self.quals(expr.value, scope)}
        if isinstance(expr, ast.Call) and len(expr.args) >= 2:
            # getattr(os, "system") is os.system
            if "builtins.getattr" in self.quals(expr.func, scope):
                name = self.const_str(expr.args[1], scope)
                if name is not None:
                    return {normalize(f"{q}.{name}") for q in self.quals(expr.args[0], scope)}
            return set()
        if isinstance(expr, ast.IfExp):
            return set(self.quals(expr.body, scope) | self.quals(expr.orelse, scope))
        if isinstance(expr, ast.BoolOp):
            union: set[str] = set()
            for value in expr.values:
                union |= self.quals(value, scope)
            return union
        if isinstance(expr, ast.NamedExpr):
            return set(self.quals(expr.value, scope))
        return set()

    def _bound_quals(
        self, name: str, scope: Scope, bindings: list[tuple[Binding, Scope]]
    ) -> frozenset[str]:
        """What ``name``'s bindings, as seen from ``scope``, may evaluate to.

        Kept once complete (no cut through a node still being resolved), like ``quals``, but
        per name and scope rather than per reference: a script that reassigns ``df`` N times
        and reads it N times cost N * N steps when each read walked every binding again."""
        key = (name, id(scope))
        cached = self._bound.get(key)
        if cached is not None:
            return cached
        mine = len(self._resolving)
        outer_cut, self._lowest_cut = self._lowest_cut, _NO_CUT
        out: set[str] = set()
        try:
            for binding, where in bindings:
                if binding.qual is not None:
                    out.add(normalize(binding.qual))
                elif binding.value is not None:
                    with self.follow():
                        out |= self.quals(binding.value, binding.home or where)
        finally:
            inner_cut = self._lowest_cut
            self._lowest_cut = min(outer_cut, inner_cut)
        result = frozenset(out)
        if inner_cut >= mine:
            self._bound[key] = result
        return result

    @staticmethod
    def _inline_pos(node: ast.AST, scope: Scope) -> Position | None:
        current: Scope | None = scope
        while current is not None and current.kind == "comprehension":
            current = current.parent
        return position(node) if current is not None and current.kind == "module" else None

    def single_value(self, name: ast.Name, scope: Scope) -> tuple[ast.expr, Scope] | None:
        """The one expression ``name`` was assigned, when there is exactly one."""
        bindings, fallback = self.lookup(name.id, scope, self._inline_pos(name, scope))
        if fallback or len(bindings) != 1:
            return None
        binding, where = bindings[0]
        if binding.value is None:
            return None
        return binding.value, binding.home or where

    # -- constant strings --------------------------------------------------------------------
    def const_str(self, expr: ast.AST, scope: Scope) -> str | None:
        """Fold string-building expressions (``'sys' + 'tem'``, ``'metsys'[::-1]``, aliases)."""
        key = id(expr)
        if key in self._consts:
            return self._consts[key]
        if key in self._folding:  # a cycle has no constant value
            return None
        self._folding.add(key)
        try:
            value = self._const_str_of(expr, scope)
        finally:
            self._folding.discard(key)
        if value is not None and len(value) > MAX_FOLDED_CHARS:
            value = None
        self._consts[key] = value
        return value

    def _const_str_of(self, expr: ast.AST, scope: Scope) -> str | None:
        if isinstance(expr, ast.Constant):
            return expr.value if isinstance(expr.value, str) else None
        if isinstance(expr, ast.JoinedStr):
            pieces = []
            for part in expr.values:
                if isinstance(part, ast.FormattedValue):
                    if part.format_spec is not None or part.conversion not in (-1, 115):
                        return None
                    piece = self.const_str(part.value, scope)
                else:
                    piece = self.const_str(part, scope)
                if piece is None:
                    return None
                pieces.append(piece)
            return "".join(pieces)
        if isinstance(expr, ast.BinOp):
            if isinstance(expr.op, ast.Add):
                left, right = self.const_str(expr.left, scope), self.const_str(expr.right, scope)
                return left + right if left is not None and right is not None else None
            if isinstance(expr.op, ast.Mult):
                for text_node, count_node in ((expr.left, expr.right), (expr.right, expr.left)):
                    text = self.const_str(text_node, scope)
                    if (
                        text is not None
                        and isinstance(count_node, ast.Constant)
                        and type(count_node.value) is int
                        and 0 <= count_node.value * len(text) <= MAX_FOLDED_CHARS
                    ):
                        return text * count_node.value
            return None
        if isinstance(expr, ast.Subscript) and isinstance(expr.slice, ast.Slice):
            s = expr.slice
            if s.lower is None and s.upper is None and _is_int(s.step, -1):
                text = self.const_str(expr.value, scope)
                return text[::-1] if text is not None else None
            return None
        if isinstance(expr, ast.Call) and isinstance(expr.func, ast.Attribute):
            # "".join(["sys", "tem"])
            if expr.func.attr == "join" and len(expr.args) == 1 and not expr.keywords:
                sep = self.const_str(expr.func.value, scope)
                seq = expr.args[0]
                if sep is not None and isinstance(seq, ast.List | ast.Tuple):
                    parts = [self.const_str(e, scope) for e in seq.elts]
                    if all(p is not None for p in parts):
                        return sep.join(p for p in parts if p is not None)
            return None
        if isinstance(expr, ast.Name):
            found = self.single_value(expr, scope)
            if found is None or self._alias_depth >= MAX_ALIAS_DEPTH:
                return None  # unknown is safe here: callers treat it as "computed"
            with self.follow():
                return self.const_str(found[0], found[1])
        return None


class _AliasStep:
    def __init__(self, resolver: Resolver) -> None:
        self.resolver = resolver

    def __enter__(self) -> None:
        if self.resolver._alias_depth >= MAX_ALIAS_DEPTH:
            raise TooComplex(f"aliases chained deeper than {MAX_ALIAS_DEPTH}")
        self.resolver._alias_depth += 1

    def __exit__(self, *exc: object) -> None:
        self.resolver._alias_depth -= 1


def _is_int(node: ast.expr | None, value: int) -> bool:
    if isinstance(node, ast.UnaryOp) and isinstance(node.op, ast.USub):
        return _is_int(node.operand, -value)
    return isinstance(node, ast.Constant) and type(node.value) is int and node.value == value
