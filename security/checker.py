"""The rules themselves: one pass over the nodes ``ScopeBuilder`` ordered, emitting findings."""

from __future__ import annotations

import ast
import posixpath
import re

from security.findings import Finding
from security.packages import BLOCKED_IMPORT_REASONS, blocked_module, is_allowed
from security.rules import (
    ANY_OBJECT_ATTRIBUTES,
    BLOCKED_NAMES,
    ENVIRONMENT_NAMES,
    ESCAPE_ATTRIBUTES,
    ESCAPE_NAMES,
    FILE_API_MODULES,
    FILE_API_NAMES,
    FILE_API_PREFIXES,
    FILE_API_QUALIFIED,
    HARMLESS_DEVICES,
    NAMESPACE_BUILTINS,
    NAMESPACE_MUTATORS,
    NAMESPACE_UNBOUND_MUTATORS,
    PATH_BUILDERS,
    PATH_KEYWORDS,
    PATH_METHODS,
    PATH_WRAPPERS,
    SYSTEM_PATH_ROOTS,
    URL_SCHEMES,
    VALUE_SENSITIVE_MODULES,
)
from security.scopes import Resolver, Scope, normalize

_ATTRIBUTE_FETCHERS = {
    "builtins.getattr": "getattr",
    "builtins.setattr": "setattr",
    "builtins.delattr": "delattr",
    "operator.attrgetter": "attrgetter",
    "operator.methodcaller": "methodcaller",
}
_OBJECT_ATTRIBUTE_BUILTINS = frozenset(
    {"builtins.getattr", "builtins.hasattr", "builtins.setattr", "builtins.delattr"}
)
# Dunder names that only an escape attempt spells out as a string.
_ESCAPE_DUNDERS = frozenset(n for n in ESCAPE_ATTRIBUTES | ESCAPE_NAMES if n.startswith("__"))
# Builtins that make code from strings, looked up by name in a namespace dict.
_EXEC_BUILTINS = frozenset({"eval", "exec", "compile", "__import__", "breakpoint"})
# "{0.__init__.__globals__}".format(f) walks attributes inside the format string.
_FORMAT_FIELD = re.compile(r"\{([^{}]*)\}")
_FORMAT_PART = re.compile(r"[.\[\]!:]")
_WINDOWS_DRIVE = re.compile(r"^[A-Za-z]:[\\/]")
_PATH_SPLIT = re.compile(r"[\\/]")
# Path parts: (text, rootable). A rootable part replaces what came before when absolute
# (first argument, os.path.join / Path / "/" operands); others are appended (f-string tails).
PathPart = tuple[str, bool]


def _short(node: ast.AST) -> str:
    """A short, stable rendering of a name or attribute chain for messages."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = node.value
        prefix = _short(base) if isinstance(base, ast.Name | ast.Attribute) else "(...)"
        return f"{prefix}.{node.attr}"
    if isinstance(node, ast.Call):
        return f"{_short(node.func)}(...)"
    return "(...)"


def _callee_name(func: ast.expr) -> str | None:
    if isinstance(func, ast.Name):
        return func.id
    if isinstance(func, ast.Attribute):
        return func.attr
    return None


def _blocked(module: str) -> str:
    return f"{module} is blocked ({BLOCKED_IMPORT_REASONS.get(module, 'by policy')})"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


class Checker:
    """Applies every rule to the ordered nodes of one module."""

    def __init__(self, *, allowed: frozenset[str], resolver: Resolver) -> None:
        self.allowed = allowed
        self.r = resolver
        self.findings: list[Finding] = []
        # Nodes whose parent already decided how they are used (nodes arrive parents first):
        # module objects allowed as values here, strings already reported.
        self._value_ok: set[int] = set()
        self._explained: set[int] = set()

    def run(self, order: list[tuple[ast.AST, Scope]]) -> list[Finding]:
        for node, scope in order:
            self._note_context(node, scope)
            if isinstance(node, ast.Name):
                self._name(node, scope)
            elif isinstance(node, ast.Attribute):
                self._attribute(node, scope)
            elif isinstance(node, ast.Call):
                self._call(node, scope)
            elif isinstance(node, ast.Subscript):
                self._subscript(node, scope)
            elif isinstance(node, ast.Import):
                for alias in node.names:
                    self._import_plain(alias)
                if scope.kind == "class":
                    self._class_level_import(node)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                self._import_from(node)
                if scope.kind == "class":
                    self._class_level_import(node)
            elif isinstance(node, ast.Constant | ast.BinOp | ast.JoinedStr):
                self._spelled_dunder(node, scope)
        return self.findings

    def _note_context(self, node: ast.AST, scope: Scope) -> None:
        """Mark the children where a module object may appear: ``os.x``, ``o = os``, getattr."""
        if isinstance(node, ast.Attribute):
            self._value_ok.add(id(node.value))
        elif isinstance(node, ast.Assign | ast.AnnAssign | ast.NamedExpr) and scope.kind != "class":
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            value = node.value
            if value is not None and all(isinstance(t, ast.Name) for t in targets):
                self._value_ok.add(id(value))
            elif (
                len(targets) == 1
                and isinstance(targets[0], ast.Tuple | ast.List)
                and isinstance(value, ast.Tuple | ast.List)
                and all(isinstance(t, ast.Name) for t in targets[0].elts)
                and len(targets[0].elts) == len(value.elts)
            ):
                self._value_ok.update(id(v) for v in value.elts)
        elif (
            isinstance(node, ast.Call)
            and node.args
            and self.r.quals(node.func, scope) & _OBJECT_ATTRIBUTE_BUILTINS
        ):
            self._value_ok.add(id(node.args[0]))

    def _class_level_import(self, node: ast.Import | ast.ImportFrom) -> None:
        """``class A: import os`` makes the module a class attribute (``self.os.system``)."""
        for alias in node.names:
            if isinstance(node, ast.ImportFrom):
                qual = normalize(f"{node.module}.{alias.name}")
            else:
                qual = alias.name if alias.asname else alias.name.split(".")[0]
            if qual in VALUE_SENSITIVE_MODULES:
                self.emit(
                    "module-as-value",
                    alias,
                    f"the {qual} module imported into a class body becomes an attribute; "
                    "import it at module level",
                )

    def _module_as_value(self, node: ast.Name | ast.Attribute, quals: frozenset[str]) -> None:
        if id(node) in self._value_ok:
            return
        modules = sorted(quals & VALUE_SENSITIVE_MODULES)
        if modules:
            self.emit(
                "module-as-value",
                node,
                f"{_short(node)} (the {modules[0]} module) used as a value; "
                f"call {modules[0]}.<function>(...) directly",
            )

    def _spelled_dunder(self, node: ast.Constant | ast.BinOp | ast.JoinedStr, scope: Scope) -> None:
        if id(node) in self._explained:
            return
        if isinstance(node, ast.BinOp) and not (
            isinstance(node.op, ast.Add | ast.Mult)
            and any(
                isinstance(side, ast.BinOp | ast.JoinedStr)
                or (isinstance(side, ast.Constant) and isinstance(side.value, str))
                for side in (node.left, node.right)
            )
        ):
            return  # only string-building expressions can spell a name
        text = node.value if isinstance(node, ast.Constant) else self.r.const_str(node, scope)
        if isinstance(text, str) and text in _ESCAPE_DUNDERS:
            self.emit("escape-attribute", node, f"the string {text!r} names an escape hatch")
        if isinstance(node, ast.BinOp | ast.JoinedStr):
            self._explained.update(id(n) for n in ast.iter_child_nodes(node))

    def emit(self, rule_id: str, node: ast.AST, message: str) -> None:
        line = getattr(node, "lineno", 1)
        col = getattr(node, "col_offset", 0)
        self.findings.append(Finding.of(rule_id, message, line, col))

    # -- imports -----------------------------------------------------------------------------
    def _import(self, module: str, name: str | None, where: ast.AST) -> bool:
        """Report a blocked module or name; True when something was reported."""
        blocked = blocked_module(module)
        if blocked:
            self.emit("blocked-import", where, f"import of {module}: {_blocked(blocked)}")
            return True
        if name is None:
            return False
        qual = normalize(f"{module}.{name}")
        if qual in BLOCKED_NAMES:
            rule, why = BLOCKED_NAMES[qual]
            rule = "blocked-import" if rule == "blocked-call" else rule
            self.emit(rule, where, f"from {module} import {name}: {why}")
            return True
        blocked = blocked_module(qual)
        if blocked:
            self.emit("blocked-import", where, f"from {module} import {name}: {_blocked(blocked)}")
            return True
        if qual in ENVIRONMENT_NAMES:
            self.emit("environment-read", where, f"{qual} reads environment variables")
        return False

    def _not_allowlisted(self, module: str, where: ast.AST) -> None:
        top = module.split(".")[0]
        self.emit(
            "import-not-allowlisted",
            where,
            f"{top} is not in the allow-list and may not be installed in the sandbox",
        )

    def _import_plain(self, alias: ast.alias) -> None:
        if not self._import(alias.name, None, alias) and not is_allowed(alias.name, self.allowed):
            self._not_allowlisted(alias.name, alias)

    def _import_from(self, node: ast.ImportFrom) -> None:
        module = node.module or ""
        if self._import(module, None, node):
            return  # one finding for the statement
        unlisted = False
        for alias in node.names:
            if alias.name == "*":
                unlisted |= not is_allowed(module, self.allowed)
            elif not self._import(module, alias.name, alias):
                # "from urllib import parse" is allowed through "urllib.parse"
                unlisted |= not (
                    is_allowed(module, self.allowed)
                    or is_allowed(f"{module}.{alias.name}", self.allowed)
                )
        if unlisted:
            self._not_allowlisted(module, node)

    # -- names and attributes ----------------------------------------------------------------
    def _report_qual(self, qual: str, node: ast.AST, shown: str) -> None:
        resolved = shown if shown == qual or qual == f"builtins.{shown}" else f"{shown} (= {qual})"
        if qual in BLOCKED_NAMES:
            rule, why = BLOCKED_NAMES[qual]
            self.emit(rule, node, f"{resolved} is blocked: {why}")
        elif qual in ENVIRONMENT_NAMES:
            self.emit("environment-read", node, f"{resolved} reads environment variables")
        elif not qual.startswith("builtins."):  # print is builtins.print, not an import
            blocked = blocked_module(qual)
            if blocked:
                self.emit("blocked-import", node, f"{resolved} reaches {_blocked(blocked)}")

    @staticmethod
    def _is_blocked(qual: str) -> bool:
        if qual in BLOCKED_NAMES:
            return True
        return not qual.startswith("builtins.") and blocked_module(qual) is not None

    def _name(self, node: ast.Name, scope: Scope) -> None:
        if node.id in ESCAPE_NAMES:
            self.emit("escape-attribute", node, f"{node.id} exposes the interpreter's internals")
            return
        if not isinstance(node.ctx, ast.Load):
            return
        quals = self.r.quals(node, scope)
        self._module_as_value(node, quals)
        bindings, _ = self.r.lookup(node.id, scope, None)
        # Names bound straight by an import were judged at the import statement.
        direct = {normalize(b.qual) for b, _ in bindings if b.qual is not None}
        for qual in sorted(quals - direct):
            self._report_qual(qual, node, node.id)

    def _attribute(self, node: ast.Attribute, scope: Scope) -> None:
        attr = node.attr
        if attr in ESCAPE_ATTRIBUTES:
            self.emit(
                "escape-attribute", node, f"attribute {attr} leads to globals, code or frames"
            )
        if attr in ANY_OBJECT_ATTRIBUTES:
            rule, why = ANY_OBJECT_ATTRIBUTES[attr]
            self.emit(rule, node, f"{_short(node)} is blocked: {why}")
        base_quals = self.r.quals(node.value, scope)
        if attr == "__dict__" and (base_quals or self._is_class_expr(node.value, scope)):
            self.emit(
                "namespace-tampering",
                node,
                f"{_short(node)} reads a module or class namespace by name",
            )
        if not isinstance(node.ctx, ast.Load):
            if any(q == "builtins" for q in base_quals):
                self.emit("namespace-tampering", node, f"{_short(node)}: assigns into builtins")
            return
        if base_quals and all(self._is_blocked(q) for q in base_quals):
            return  # the base was reported already
        quals = self.r.quals(node, scope)
        self._module_as_value(node, quals)
        for qual in sorted(quals):
            self._report_qual(qual, node, _short(node))

    def _is_class_expr(self, node: ast.expr, scope: Scope) -> bool:
        if isinstance(node, ast.Attribute) and node.attr == "__class__":
            return True
        return isinstance(node, ast.Call) and "builtins.type" in self.r.quals(node.func, scope)

    # -- calls -------------------------------------------------------------------------------
    def _call(self, node: ast.Call, scope: Scope) -> None:
        func_quals = self.r.quals(node.func, scope)
        for qual in func_quals:
            kind = _ATTRIBUTE_FETCHERS.get(qual)
            if kind in ("getattr", "setattr", "delattr") and len(node.args) >= 2:
                self._dynamic_attribute(kind, node.args[0], node.args[1], node, scope)
            elif kind in ("attrgetter", "methodcaller"):
                names = node.args if kind == "attrgetter" else node.args[:1]
                for arg in names:
                    self._dynamic_attribute(kind, None, arg, node, scope)
        if "builtins.vars" in func_quals and node.args and self.r.quals(node.args[0], scope):
            self.emit("namespace-tampering", node, "vars(module) reads a module namespace")
        if (
            func_quals & NAMESPACE_UNBOUND_MUTATORS
            and node.args
            and self._is_namespace_call(node.args[0], scope)
        ):
            self.emit("namespace-tampering", node, "dict methods applied to a live namespace")
        func = node.func
        if isinstance(func, ast.Attribute):
            if func.attr in NAMESPACE_MUTATORS and self._is_namespace_call(func.value, scope):
                self.emit(
                    "namespace-tampering",
                    node,
                    f"{_short(func.value)}.{func.attr}(...) rewrites a live namespace",
                )
            if func.attr in ("format", "format_map", "vformat"):
                self._format_string(node, func)
        for kw in node.keywords:
            if (
                kw.arg == "allow_pickle"
                and isinstance(kw.value, ast.Constant)
                and kw.value.value is True
            ):
                self.emit("blocked-call", kw.value, "allow_pickle=True: unpickling runs code")
        if self._is_file_api(func, func_quals):
            self._check_paths(node, scope)
        if (
            isinstance(func, ast.Attribute)
            and func.attr in PATH_METHODS
            and isinstance(func.value, ast.BinOp)
        ):
            # (Path("data") / ".." / "x").read_text()
            for text, rootable in self._path_parts(func.value, scope, 0):
                self._judge_path(text, rootable, func.value, _short(func))

    def _is_namespace_call(self, node: ast.expr, scope: Scope) -> bool:
        """``globals()``, ``locals()`` or ``vars()`` without an argument."""
        return (
            isinstance(node, ast.Call)
            and not node.args
            and bool(self.r.quals(node.func, scope) & NAMESPACE_BUILTINS)
        )

    def _format_string(self, node: ast.Call, func: ast.Attribute) -> None:
        candidates = [func.value]
        if func.attr == "vformat" or (
            func.attr == "format" and not isinstance(func.value, ast.Constant)
        ):
            candidates.extend(node.args[:1])
        for candidate in candidates:
            if isinstance(candidate, ast.Constant) and isinstance(candidate.value, str):
                fields = _FORMAT_FIELD.findall(candidate.value)
                parts = {p.strip() for f in fields for p in _FORMAT_PART.split(f)}
                bad = sorted(parts & ESCAPE_ATTRIBUTES)
                if bad:
                    self.emit(
                        "escape-attribute",
                        candidate,
                        f"format string walks to {bad[0]}, which leads to globals, code or frames",
                    )

    def _dynamic_attribute(
        self,
        kind: str,
        obj: ast.expr | None,
        name_node: ast.expr,
        call: ast.Call,
        scope: Scope,
    ) -> None:
        self._explained.add(id(name_node))
        obj_quals = self.r.quals(obj, scope) if obj is not None else frozenset()
        on_builtins = isinstance(obj, ast.Name) and obj.id == "__builtins__"
        name = self.r.const_str(name_node, scope)
        if name is None:
            if obj_quals or on_builtins:
                target = _short(obj) if obj is not None else "(...)"
                self.emit(
                    "dynamic-attribute-module",
                    call,
                    f"{kind}({target}, <computed name>) can reach any member of a module",
                )
            elif kind in ("getattr", "attrgetter", "methodcaller"):
                if self._mentions_dunder(name_node):
                    self.emit(
                        "escape-attribute", call, f"{kind} with a computed dunder attribute name"
                    )
                else:
                    self.emit(
                        "dynamic-attribute",
                        call,
                        f"{kind} with a computed attribute name; use a constant name or a dict",
                    )
            return
        for part in name.split(".") if kind == "attrgetter" else [name]:
            if part in ESCAPE_ATTRIBUTES or part in ESCAPE_NAMES:
                self.emit(
                    "escape-attribute",
                    call,
                    f"{kind}(..., {part!r}) leads to globals, code or frames",
                )
            if part in ANY_OBJECT_ATTRIBUTES:
                rule, why = ANY_OBJECT_ATTRIBUTES[part]
                self.emit(rule, call, f"{kind}(..., {part!r}) is blocked: {why}")
            if part == "__dict__" and (obj_quals or on_builtins):
                self.emit("namespace-tampering", call, f"{kind}(module, '__dict__')")
        if kind in ("setattr", "delattr") and (on_builtins or "builtins" in obj_quals):
            self.emit("namespace-tampering", call, f"{kind} on builtins")
        if kind == "getattr":
            shown = f"getattr({_short(obj) if obj is not None else '(...)'}, {name!r})"
            for qual in sorted(obj_quals):
                if not self._is_blocked(qual):
                    self._report_qual(normalize(f"{qual}.{name}"), call, shown)

    @staticmethod
    def _mentions_dunder(node: ast.expr) -> bool:
        return any(
            isinstance(n, ast.Constant) and isinstance(n.value, str) and "__" in n.value
            for n in ast.walk(node)
        )

    # -- subscripts --------------------------------------------------------------------------
    def _subscript(self, node: ast.Subscript, scope: Scope) -> None:
        key = None if isinstance(node.slice, ast.Slice) else self.r.const_str(node.slice, scope)
        if key is not None and (key in ESCAPE_ATTRIBUTES or key in ESCAPE_NAMES):
            self.emit("escape-attribute", node, f"[{key!r}] exposes the interpreter's internals")
            self._explained.add(id(node.slice))
        if not self._is_namespace_call(node.value, scope):
            return
        shown = _short(node.value)
        if not isinstance(node.ctx, ast.Load):
            self.emit(
                "namespace-tampering", node, f"{shown}[...] = ...: writes into a live namespace"
            )
        elif key is None:
            self.emit("namespace-tampering", node, f"{shown}[<computed>]: lookup by computed name")
        elif key in _EXEC_BUILTINS:
            self.emit("blocked-call", node, f"{shown}[{key!r}] fetches a blocked builtin")

    # -- paths -------------------------------------------------------------------------------
    @staticmethod
    def _is_file_api(func: ast.expr, func_quals: frozenset[str]) -> bool:
        name = _callee_name(func)
        if name is not None and (name in FILE_API_NAMES or name.startswith(FILE_API_PREFIXES)):
            return True
        return any(
            q in FILE_API_QUALIFIED or (q.count(".") == 1 and q.split(".")[0] in FILE_API_MODULES)
            for q in func_quals
        )

    def _check_paths(self, call: ast.Call, scope: Scope) -> None:
        args: list[ast.expr] = [a for a in call.args if not isinstance(a, ast.Starred)]
        args += [kw.value for kw in call.keywords if kw.arg in PATH_KEYWORDS]
        shown = _short(call.func)
        for arg in args:
            for text, rootable in self._path_parts(arg, scope, 0):
                self._judge_path(text, rootable, arg, shown)

    def _path_parts(self, node: ast.AST, scope: Scope, depth: int) -> list[PathPart]:
        """The constant pieces a path expression is built from (empty when unknown)."""
        if depth > 40:
            return []
        d = depth + 1
        if isinstance(node, ast.Constant):
            if isinstance(node.value, str):
                return [(node.value, True)]
            if isinstance(node.value, bytes):
                return [(node.value.decode("latin-1"), True)]
            return []
        if isinstance(node, ast.JoinedStr):
            parts: list[PathPart] = []
            for i, value in enumerate(node.values):
                inner = value.value if isinstance(value, ast.FormattedValue) else value
                for text, rootable in self._path_parts(inner, scope, d):
                    parts.append((text, rootable and i == 0))
            return parts
        if isinstance(node, ast.BinOp):
            left = self._path_parts(node.left, scope, d)
            if isinstance(node.op, ast.Add):
                return left + [(t, False) for t, _ in self._path_parts(node.right, scope, d)]
            if isinstance(node.op, ast.Div):  # Path("x") / "/etc" is "/etc"
                return left + self._path_parts(node.right, scope, d)
            if isinstance(node.op, ast.Mod):
                return left
            return []
        if isinstance(node, ast.Call):
            name = _callee_name(node.func)
            parts = []
            if isinstance(node.func, ast.Attribute) and name in (
                *PATH_WRAPPERS,
                "joinpath",
                "with_name",
                "with_suffix",
                "with_stem",
            ):
                parts += self._path_parts(node.func.value, scope, d)
            if name in PATH_BUILDERS:
                for arg in node.args:
                    parts += self._path_parts(arg, scope, d)
            elif name in PATH_WRAPPERS and node.args:
                parts += self._path_parts(node.args[0], scope, d)
            return parts
        if isinstance(node, ast.Attribute) and node.attr in ("parent", "parents"):
            return self._path_parts(node.value, scope, d)
        if isinstance(node, ast.IfExp):
            return self._path_parts(node.body, scope, d) + self._path_parts(node.orelse, scope, d)
        if isinstance(node, ast.Name):
            found = self.r.single_value(node, scope)
            if found is not None:
                return self._path_parts(found[0], found[1], d)
        return []

    def _judge_path(self, text: str, rootable: bool, node: ast.AST, shown: str) -> None:
        stripped = text.strip()
        lowered = stripped.lower()
        if lowered.startswith("file://"):
            stripped, rootable = stripped[len("file://") :], True
        elif lowered.startswith(URL_SCHEMES):
            self.emit(
                "network-url",
                node,
                f"{shown}({_clip(stripped)!r}): the sandbox has no network; use an input file",
            )
            return
        absolute = stripped.startswith(("/", "\\", "~")) or bool(_WINDOWS_DRIVE.match(stripped))
        if rootable and absolute:
            if _is_system_path(stripped):
                self.emit(
                    "path-system",
                    node,
                    f"{shown}({_clip(stripped)!r}): system location outside the working directory",
                )
            elif posixpath.normpath(stripped) not in HARMLESS_DEVICES:
                self.emit(
                    "path-outside-workdir",
                    node,
                    f"{shown}({_clip(stripped)!r}): absolute path; read inputs and write outputs "
                    "by bare file name in the working directory",
                )
        elif ".." in _PATH_SPLIT.split(stripped):
            self.emit(
                "path-outside-workdir",
                node,
                f"{shown}({_clip(stripped)!r}): '..' leaves the working directory",
            )


def _is_system_path(path: str) -> bool:
    if path.startswith("~"):
        return True
    normal = posixpath.normpath(path.replace("\\", "/"))
    if normal in HARMLESS_DEVICES:
        return False
    if normal == "/" or "docker.sock" in normal:
        return True
    first = normal.split("/")[1] if normal.count("/") >= 1 else ""
    if any(ch in first for ch in "*?["):  # glob over the root: "/*", "/[a-z]*"
        return True
    return any(normal == root or normal.startswith(root + "/") for root in SYSTEM_PATH_ROOTS)
