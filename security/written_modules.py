"""Files a script writes that it may then import: ``evil.py`` written, then ``import evil``.

The checker reports each write (with the file name when its constant tail is known) and each
import, in source order; ``findings()`` decides at the end, when every import is known.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass, field

from security.findings import Finding
from security.rules import FILE_WRITERS, IMPORTABLE_SUFFIXES, STARTUP_MODULES

Position = tuple[int, int]

_WRITE_MODE = re.compile(r"^[rbt]*[wax+][rwaxbt+]*$")
_ARCHIVE_EXTRACTORS = frozenset({"extract", "extractall", "unpack_archive", "extract_all"})
_COPIERS = frozenset({"copy", "copy2", "copyfile", "copytree", "move", "rename", "replace"})
_TARGET_KEYWORDS = ("dst", "destination", "target", "path", "fname", "path_or_buf", "file")
# Writers of their own formats: an unknown name alone does not make them risky.
_FORMAT_WRITERS = frozenset({"savefig", "save", "savetxt", "tofile", "touch"})
ARCHIVE = "archive"


def _at(node: ast.AST) -> Position:
    return (getattr(node, "lineno", 0), getattr(node, "col_offset", 0))


def _finding(node: ast.AST, message: str) -> Finding:
    line, col = _at(node)
    return Finding.of("import-of-written-file", message, line, col)


def _prefixes(dotted: str) -> list[str]:
    parts = dotted.split(".")
    return [".".join(parts[: i + 1]) for i in range(len(parts))]


def _argument(call: ast.Call, pos: int, keyword: str) -> list[ast.expr]:
    for kw in call.keywords:
        if kw.arg == keyword:
            return [kw.value]
    if len(call.args) > pos and not any(isinstance(a, ast.Starred) for a in call.args[: pos + 1]):
        return [call.args[pos]]
    return []


def write_target(call: ast.Call, name: str | None, quals: frozenset[str]) -> ast.expr | str | None:
    """The path expression ``call`` writes to, ``ARCHIVE`` for extractions, else None.

    ``name`` is the callee's last name (``open``, ``to_csv``), ``quals`` what it resolves to.
    """
    func = call.func
    if name is None:
        return None
    if name in _ARCHIVE_EXTRACTORS:
        return ARCHIVE
    if name in ("open", "FileIO") or quals & {"io.open", "codecs.open", "os.open"}:
        if isinstance(func, ast.Attribute) and not quals:
            # Path(...).open("w"); zf.open(name) reads: only a literal mode says "write"
            modes = [kw.value for kw in call.keywords if kw.arg == "mode"] + call.args
            if any(isinstance(m, ast.Constant) and _WRITE_MODE.match(str(m.value)) for m in modes):
                return func.value
            return None
        modes = _argument(call, 1, "mode") + _argument(call, 1, "flags")
        if "os.open" not in quals and not any(
            not isinstance(m, ast.Constant) or any(c in str(m.value) for c in "wax+") for m in modes
        ):
            return None  # read-only
        found = _argument(call, 0, "file")
        return found[0] if found else None
    if name in ("write_text", "write_bytes", "touch") and isinstance(func, ast.Attribute):
        return func.value
    if name in ("rename", "replace", "symlink_to", "hardlink_to") and not quals:
        found = _argument(call, 0, "target")
        return found[0] if found else None
    if name in FILE_WRITERS or name.startswith("to_"):
        positional = [a for a in call.args if not isinstance(a, ast.Starred)]
        for kw in _TARGET_KEYWORDS:
            found = _argument(call, 99, kw)
            if found:
                return found[0]
        if name in _COPIERS:
            return positional[1] if len(positional) > 1 else None
        return positional[0] if positional else None
    return None


@dataclass
class WrittenModules:
    """Writes and imports of one script, in source order."""

    # (where, risky: importable name or unknown name from a raw writer, call)
    writes: list[tuple[Position, bool, ast.AST]] = field(default_factory=list)
    importable: list[tuple[str, ast.AST]] = field(default_factory=list)
    # (where, dotted names it may load, deferred: in a function or loop, so it may run after
    # a later write, node)
    imports: list[tuple[Position, tuple[str, ...], bool, ast.AST]] = field(default_factory=list)
    in_loop: set[int] = field(default_factory=set)

    def note_loop(self, loop: ast.AST) -> None:
        self.in_loop.update(
            id(n) for n in ast.walk(loop) if isinstance(n, ast.Import | ast.ImportFrom)
        )

    def note_import(self, node: ast.Import | ast.ImportFrom, in_function: bool) -> None:
        deferred = in_function or id(node) in self.in_loop
        if isinstance(node, ast.Import):
            names = tuple(alias.name for alias in node.names)
        else:  # from pkg import name: name may be a submodule
            names = tuple(f"{node.module}.{a.name}" for a in node.names if a.name != "*")
            names = names or (str(node.module),)
        self.imports.append((_at(node), names, deferred, node))

    def note_write(self, call: ast.Call, callee: str | None, file_name: str | None) -> None:
        """``file_name``: the constant tail of the target (None when unknown)."""
        importable = file_name is not None and file_name.lower().endswith(IMPORTABLE_SUFFIXES)
        # An unknown name is risky for writers of arbitrary bytes (open, write_text, copy);
        # df.to_excel(writer) or savefig(name) write their own formats.
        raw = not ((callee or "").startswith("to_") or callee in _FORMAT_WRITERS)
        self.writes.append((_at(call), importable or (file_name is None and raw), call))
        if file_name is not None and importable:
            self.importable.append((file_name, call))

    def note_extraction(self, call: ast.Call) -> None:
        self.writes.append((_at(call), True, call))

    def findings(self) -> list[Finding]:
        out = []
        imported_tops = {n.split(".")[0] for _, names, _, _ in self.imports for n in names}
        for name, node in self.importable:
            shown = name if len(name) <= 60 else name[:57] + "..."
            if name.lower().endswith(".pth"):
                out.append(
                    _finding(node, f"writes {shown!r}: .pth files run code when Python starts")
                )
                continue
            parts = [p for p in name.replace("\\", "/").split("/") if p not in ("", ".")]
            # evil.py -> evil; pkg/__init__.py or pkg/mod.py -> pkg (the name imported first)
            stems = {parts[0].split(".")[0], parts[-1].split(".")[0]} if parts else set()
            hit = sorted(stems & imported_tops)
            if hit:
                out.append(
                    _finding(
                        node,
                        f"writes {shown!r} and imports {hit[0]}: the module would be code the "
                        "policy never saw",
                    )
                )
        risky = [where for where, is_risky, _ in self.writes if is_risky]
        if not risky:
            return out
        first = min(risky)
        # a module imported before the first such write is in sys.modules: a file written
        # later cannot shadow it (the exact dotted name: numpy.evil is not numpy)
        loaded = set(STARTUP_MODULES) | {
            prefix
            for where, names, deferred, _ in self.imports
            if not deferred and where < first
            for name in names
            for prefix in _prefixes(name)
        }
        for where, names, deferred, node in self.imports:
            fresh = [n for n in names if n not in loaded]
            if (deferred or where > first) and fresh:
                out.append(
                    _finding(
                        node,
                        f"import of {fresh[0]} after writing a file whose name is computed or "
                        "importable: it could import that file; import everything at the top",
                    )
                )
        return out
