"""The rules themselves: one pass over the nodes ``ScopeBuilder`` ordered, emitting findings."""

from __future__ import annotations

import ast
import posixpath
import re

from security.code_strings import code_string_problem
from security.findings import Finding
from security.packages import BLOCKED_IMPORT_REASONS, blocked_module, is_allowed
from security.rules import (
    ALLOW_PICKLE_LOADERS,
    ANY_OBJECT_ATTRIBUTES,
    ATTRIBUTE_FETCHER_VALUES,
    BLOCKED_NAMES,
    ENVIRONMENT_NAMES,
    ESCAPE_ATTRIBUTES,
    ESCAPE_NAMES,
    FILE_API_MODULES,
    FILE_API_NAMES,
    FILE_API_PREFIXES,
    FILE_API_QUALIFIED,
    FORMULA_KEYWORDS,
    FORMULA_METHODS,
    FORMULA_MODULES,
    HARMLESS_DEVICES,
    NAMESPACE_BUILTINS,
    NAMESPACE_MUTATORS,
    NAMESPACE_UNBOUND_MUTATORS,
    PATH_BUILDERS,
    PATH_KEYWORDS,
    PATH_METHODS,
    PATH_WRAPPERS,
    PRIVATE_MODULE_ALIASES,
    SAFE_YAML_LOADERS,
    STRING_TO_CODE_CALLS,
    STRING_TO_CODE_METHODS,
    SYMPY_NAME_TAKERS,
    SYSTEM_PATH_ROOTS,
    URL_SCHEMES,
    VALUE_SENSITIVE_MODULES,
    WEIGHTS_ONLY_LOADERS,
    YAML_LOADS,
)
from security.scopes import Resolver, Scope, normalize
from security.written_modules import ARCHIVE, WrittenModules, write_target

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
# The node types _note_context looks at.
_CONTEXT_NODES = frozenset({
    ast.For, ast.AsyncFor, ast.While, ast.Call, ast.Subscript, ast.Compare, ast.Attribute,
    ast.Assign, ast.AnnAssign, ast.NamedExpr,
})  # fmt: skip
# keyword arguments of DataFrame.eval/query that are options, not expressions
_EVAL_OPTIONS = frozenset(
    {"engine", "parser", "inplace", "local_dict", "global_dict", "resolvers", "level", "target"}
)
_FORMAT_FIELD_NAME = re.compile(r"\{([^{}!:]*)")
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


def _format_path_problem(text: str) -> str | None:
    """The first dangerous attribute a format string's fields walk to, if any."""
    for name in _FORMAT_FIELD_NAME.findall(text):
        for part in _FORMAT_PART.split(name)[1:]:
            part = part.strip()
            if part and (
                (part.startswith("__") and part.endswith("__"))
                or part in ESCAPE_ATTRIBUTES
                or part in ANY_OBJECT_ATTRIBUTES
                or part in PRIVATE_MODULE_ALIASES.values()
            ):
                return part
    return None


def _is_false(node: ast.expr) -> bool:
    return isinstance(node, ast.Constant) and node.value is False


def _is_true(node: ast.expr | None) -> bool:
    return isinstance(node, ast.Constant) and node.value is True


def _argument(call: ast.Call, pos: int, keyword: str) -> list[ast.expr]:
    """The argument at ``pos`` or named ``keyword`` (empty when absent)."""
    for kw in call.keywords:
        if kw.arg == keyword:
            return [kw.value]
    positional = call.args
    if len(positional) > pos and not any(isinstance(a, ast.Starred) for a in positional[: pos + 1]):
        return [positional[pos]]
    return []


def _formula_arguments(call: ast.Call) -> list[ast.expr]:
    named = [kw.value for kw in call.keywords if kw.arg in FORMULA_KEYWORDS]
    return named or _argument(call, 0, "formula")


def _is_private(name: str) -> bool:
    """``_os``, ``__x`` (mangled): private; ``__dict__``: a dunder, judged elsewhere."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


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
        # Expressions in call position (``getattr(...)``), namespace calls used in an allowed
        # way (``globals()["x"]``), and the files written / modules imported, in source order.
        self._called: set[int] = set()
        self._namespace_ok: set[int] = set()
        self._written = WrittenModules()

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
                self._written.note_import(node, scope.kind != "module")
                if scope.kind == "class":
                    self._class_level_import(node)
            elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
                self._import_from(node)
                self._written.note_import(node, scope.kind != "module")
                if scope.kind == "class":
                    self._class_level_import(node)
            elif isinstance(node, ast.Constant | ast.BinOp | ast.JoinedStr):
                self._spelled_dunder(node, scope)
        self.findings.extend(self._written.findings())
        return self.findings

    def _note_context(self, node: ast.AST, scope: Scope) -> None:
        """Mark the children where a module object may appear: ``os.x``, ``o = os``, getattr."""
        if type(node) not in _CONTEXT_NODES:
            return  # most nodes (names, constants, operators) set no context
        if isinstance(node, ast.For | ast.AsyncFor | ast.While):
            self._written.note_loop(node)
        if isinstance(node, ast.Call):
            self._called.add(id(node.func))
            func = node.func
            # globals().get("name"), globals().keys(): lookups the checker can see
            if (
                isinstance(func, ast.Attribute)
                and func.attr in ("get", "keys", "__contains__", "__getitem__", *NAMESPACE_MUTATORS)
                and self._is_namespace_call(func.value, scope)
            ):
                self._namespace_ok.add(id(func.value))
                if func.attr in ("get", "__getitem__", "pop", "setdefault"):
                    self._namespace_lookup(node, scope)
            if isinstance(func, ast.Attribute) and func.attr in ("format", "format_map"):
                # "{a} {b}".format(**locals()): the (checked) format string names the keys
                self._namespace_ok.update(id(kw.value) for kw in node.keywords if kw.arg is None)
                self._namespace_ok.update(id(a) for a in node.args[:1] if func.attr == "format_map")
            if node.args and self.r.quals(node.func, scope) & NAMESPACE_UNBOUND_MUTATORS:
                self._namespace_ok.add(id(node.args[0]))
        elif isinstance(node, ast.Subscript):
            self._namespace_ok.add(id(node.value))  # judged in _subscript
        elif isinstance(node, ast.Compare) and all(
            isinstance(op, ast.In | ast.NotIn) for op in node.ops
        ):
            self._namespace_ok.update(id(c) for c in node.comparators)  # "df" in locals()
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
        elif isinstance(text, str) and "{" in text and "." in text:
            # a format string handed to any str.format-based API (StrMethodFormatter, logging
            # with style="{", Styler.format): its field paths are attribute walks
            bad = _format_path_problem(text)
            if bad:
                self.emit(
                    "escape-attribute",
                    node,
                    f"format field walks to {bad!r}; format fields may only name plain attributes",
                )
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
        if _is_private(name) and module != "__future__":
            self.emit(
                "private-module-attribute",
                where,
                f"from {module} import {name}: private names of modules may alias os, sys, ...",
            )
            return True
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
        self._fetcher_as_value(node, quals)
        # Names bound straight by an import were judged at the import statement.
        for qual in sorted(quals - self.r.imported_as(node.id, scope)):
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
        if (
            _is_private(attr)
            and attr not in ANY_OBJECT_ATTRIBUTES
            and base_quals
            and not all(self._is_blocked(q) for q in base_quals)
        ):
            self.emit(
                "private-module-attribute",
                node,
                f"{_short(node)}: private names of modules may alias os, sys, ...; "
                "use the public API",
            )
        if (
            attr in PRIVATE_MODULE_ALIASES.values()
            and not base_quals
            and isinstance(node.ctx, ast.Load)
        ):
            # [glob][0].os: a module reached through an object the checker cannot follow
            self.emit(
                "module-as-value",
                node,
                f"{_short(node)}: the {attr} module reached through an object; "
                f"import {attr} and call it directly",
            )
        if base_quals & ATTRIBUTE_FETCHER_VALUES:
            self.emit(
                "indirect-attribute",
                node,
                f"{_short(node)}: an attribute of {_short(node.value)} hides what it fetches",
            )
        if attr == "__dict__" and (base_quals or self._is_class_expr(node.value, scope)):
            self.emit(
                "namespace-tampering",
                node,
                f"{_short(node)} reads a module or class namespace by name",
            )
        if not isinstance(node.ctx, ast.Load):
            if any(q == "builtins" for q in base_quals):
                self.emit("namespace-tampering", node, f"{_short(node)}: assigns into builtins")
            for qual in sorted(self.r.quals(node, scope)):
                if qual in BLOCKED_NAMES:  # sys.path = [...], sys.path += [...]
                    self._report_qual(qual, node, _short(node))
            return
        if base_quals and all(self._is_blocked(q) for q in base_quals):
            return  # the base was reported already
        quals = self.r.quals(node, scope)
        self._module_as_value(node, quals)
        self._fetcher_as_value(node, quals)
        for qual in sorted(quals):
            self._report_qual(qual, node, _short(node))

    def _fetcher_as_value(self, node: ast.Name | ast.Attribute, quals: frozenset[str]) -> None:
        """``reduce(getattr, names, obj)``: getattr as a value fetches names nobody sees."""
        if id(node) in self._called:
            return
        if (
            isinstance(node, ast.Attribute)
            and node.attr in STRING_TO_CODE_METHODS
            and isinstance(node.ctx, ast.Load)
        ):
            # f = df.query; f(text): the alias is not followed through an unknown object
            self.emit(
                "string-to-code",
                node,
                f"{_short(node)} evaluates strings and is used as a value; call it directly "
                "with a literal expression",
            )
        if id(node) in self._value_ok:
            return  # an alias (f = sympy.sympify) is resolved where it is called
        fetchers = sorted(quals & ATTRIBUTE_FETCHER_VALUES)
        if fetchers:
            self.emit(
                "indirect-attribute",
                node,
                f"{_short(node)} (= {fetchers[0]}) passed as a value: the attribute names it "
                "will fetch cannot be checked; call it with a literal name",
            )
        if any(q in STRING_TO_CODE_CALLS for q in quals):
            # map(sympy.sympify, strings): the strings are unseen
            self.emit(
                "string-to-code",
                node,
                f"{_short(node)} evaluates strings and is passed as a value; call it "
                "directly with a literal expression",
            )

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
                self._format_string(node, func, scope)
        if self._is_namespace_call(node, scope) and id(node) not in self._namespace_ok:
            self.emit(
                "namespace-tampering",
                node,
                f"{_short(node)} used as a value: its entries (builtins, modules) can then be "
                "reached by computed names; index it with a literal name",
            )
        self._deserialisers(node, func_quals, scope)
        self._strings_to_code(node, func_quals, scope)
        self._note_write(node, func_quals, scope)
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

    # -- data that becomes code -------------------------------------------------------------
    def _deserialisers(self, node: ast.Call, func_quals: frozenset[str], scope: Scope) -> None:
        """numpy.load(allow_pickle=...), yaml.load(Loader=...), torch.load(weights_only=...)."""
        kwargs = {kw.arg: kw.value for kw in node.keywords if kw.arg is not None}
        unpacked = any(kw.arg is None for kw in node.keywords)
        shown = _short(node.func)
        if "allow_pickle" in kwargs and not _is_false(kwargs["allow_pickle"]):
            self.emit(
                "unsafe-deserialisation",
                kwargs["allow_pickle"],
                f"{shown}(allow_pickle=...): anything but a literal False unpickles, which runs "
                "code from the file",
            )
        for qual in func_quals:
            if qual in ALLOW_PICKLE_LOADERS:
                pos = ALLOW_PICKLE_LOADERS[qual]
                if (len(node.args) > pos and not _is_false(node.args[pos])) or (
                    unpacked and "allow_pickle" not in kwargs
                ):
                    self.emit(
                        "unsafe-deserialisation",
                        node,
                        f"{shown}: allow_pickle must be a literal False (or left out)",
                    )
            elif qual in YAML_LOADS:
                loader = kwargs.get("Loader", node.args[1] if len(node.args) > 1 else None)
                loaders = self.r.quals(loader, scope) if loader is not None else frozenset()
                if not loaders or not loaders <= SAFE_YAML_LOADERS:
                    self.emit(
                        "unsafe-deserialisation",
                        node,
                        f"{shown}: only Loader=yaml.SafeLoader is safe; use yaml.safe_load",
                    )
            elif qual in WEIGHTS_ONLY_LOADERS and not _is_true(kwargs.get("weights_only")):
                self.emit(
                    "unsafe-deserialisation",
                    node,
                    f"{shown}: unpickles the file unless weights_only=True",
                )

    def _strings_to_code(self, node: ast.Call, func_quals: frozenset[str], scope: Scope) -> None:
        """Expression strings handed to pandas, sympy, numexpr or a formula interface."""
        func = node.func
        method = func.attr if isinstance(func, ast.Attribute) else None
        shown = _short(func)
        # (argument, what a non-literal means: "refuse", "formula" (soft) or "unknown")
        targets: list[tuple[ast.expr, str]] = []
        for qual in func_quals:
            if qual in STRING_TO_CODE_CALLS:
                pos, keyword = STRING_TO_CODE_CALLS[qual]
                # lambdify mostly gets sympy objects, which no check can tell from strings
                computed = "unknown" if qual.endswith("lambdify") else "refuse"
                targets += [(a, computed) for a in _argument(node, pos, keyword)]
            elif qual.startswith(FORMULA_MODULES):
                targets += [(a, "formula") for a in _formula_arguments(node)]
            elif qual.startswith("sympy.") and qual not in SYMPY_NAME_TAKERS:
                # every sympy function sympifies strings; only literals are recognisable
                targets += [(a, "unknown") for a in node.args]
        if method in STRING_TO_CODE_METHODS and (node.args or node.keywords):
            pos, keyword = STRING_TO_CODE_METHODS[method]
            found = _argument(node, pos, keyword) or [  # xarray: ds.query(x="expr")
                kw.value for kw in node.keywords if kw.arg not in _EVAL_OPTIONS
            ]
            targets += [(a, "refuse") for a in found]
        elif method in FORMULA_METHODS:
            targets += [(a, "formula") for a in _formula_arguments(node)]
        for arg, computed in targets:
            text = self.r.const_str(arg, scope)
            if text is not None:
                self._explained.add(id(arg))
                why = code_string_problem(text)
                if why:
                    self.emit(
                        "string-to-code",
                        arg,
                        f"{shown}(...) evaluates its expression string and {why}",
                    )
            elif isinstance(arg, ast.Constant) or computed == "unknown":
                continue  # numbers: sympify(2); sympy objects
            elif computed == "refuse":
                self.emit(
                    "string-to-code",
                    arg,
                    f"{shown}(...) evaluates an expression built at run time; pass a literal "
                    "string (refer to variables as @name) or use boolean indexing",
                )
            else:
                self.emit(
                    "computed-formula",
                    arg,
                    f"{shown}(...): a formula built at run time is evaluated as Python; "
                    "write the formula literally (Q('column') quotes odd column names)",
                )

    # -- files the script may import -----------------------------------------------------------
    def _note_write(self, node: ast.Call, func_quals: frozenset[str], scope: Scope) -> None:
        callee = _callee_name(node.func)
        target = write_target(node, callee, func_quals)
        if target == ARCHIVE:
            self._written.note_extraction(node)
        elif isinstance(target, ast.expr):
            parts = self._path_parts(target, scope, 0)
            self._written.note_write(node, callee, parts[-1][0].strip() if parts else None)

    def _namespace_lookup(self, call: ast.Call, scope: Scope) -> None:
        """``globals().get(name)``: the name must be a literal, and not a builtin escape."""
        shown = f"{_short(call.func)}(...)"
        key = self.r.const_str(call.args[0], scope) if call.args else None
        if key is None:
            self.emit("namespace-tampering", call, f"{shown}: lookup by computed name")
        elif key in _EXEC_BUILTINS or key in ESCAPE_NAMES or _is_private(key):
            self.emit("blocked-call", call, f"{shown} fetches {key!r}")
        if call.args:
            self._explained.add(id(call.args[0]))

    def _is_namespace_call(self, node: ast.expr, scope: Scope) -> bool:
        """``globals()``, ``locals()`` or ``vars()`` without an argument."""
        return (
            isinstance(node, ast.Call)
            and not node.args
            and bool(self.r.quals(node.func, scope) & NAMESPACE_BUILTINS)
        )

    def _format_string(self, node: ast.Call, func: ast.Attribute, scope: Scope) -> None:
        """Format fields walk attribute paths (``"{0.__init__.__globals__}"``): check them."""
        receiver = func.value
        if self.r.const_str(receiver, scope) is not None:
            candidate = receiver
        elif func.attr == "vformat" or (
            func.attr == "format"
            and (
                "builtins.str" in self.r.quals(receiver, scope)
                or (
                    isinstance(receiver, ast.Call)
                    and not (self.r.quals(receiver.func, scope) - {"string.Formatter"})
                )
            )
        ):
            # str.format(fmt, ...), string.Formatter().format(fmt, ...), vformat(fmt, ...)
            if not node.args:
                return
            candidate = node.args[0]
        elif node.args and "{" in (self.r.const_str(node.args[0], scope) or ""):
            candidate = node.args[0]  # df.style.format("{:.2f}"): a formatter's own format
        else:
            candidate = receiver
        text = self.r.const_str(candidate, scope)
        if text is None:
            if node.args or node.keywords:
                self.emit(
                    "computed-format",
                    candidate,
                    f"{_short(func)}(...) with a format string built at run time: format "
                    "fields can walk attributes; use a literal format string or an f-string",
                )
            return
        self._explained.add(id(candidate))
        bad = _format_path_problem(text)
        if bad:
            self.emit(
                "escape-attribute",
                candidate,
                f"format string walks to {bad!r}; format fields may only name plain attributes",
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
            if _is_private(part) and part not in ANY_OBJECT_ATTRIBUTES and obj_quals:
                self.emit(
                    "private-module-attribute",
                    call,
                    f"{kind}(..., {part!r}): private names of modules may alias os, sys, ...",
                )
            if part in STRING_TO_CODE_METHODS or part in FORMULA_METHODS:
                self.emit(
                    "string-to-code",
                    call,
                    f"{kind}(..., {part!r}) fetches a method that evaluates strings; "
                    "call it directly with a literal expression",
                )
            if (kind != "getattr" or not obj_quals) and part in PRIVATE_MODULE_ALIASES.values():
                # attrgetter("os.system")(some_module)
                self.emit(
                    "dynamic-attribute-module",
                    call,
                    f"{kind}(..., {name!r}) walks into the {part} module of another module",
                )
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
            if name in ("with_name", "with_suffix") and node.args:
                parts += [(t, False) for t, _ in self._path_parts(node.args[0], scope, d)]
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
