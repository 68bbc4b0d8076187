"""The house rules of STYLE.md that a scan of the source can check (issue 34): no model or task
compares an attention name, no reflection in the attention library, no import up a floor, a
small attention package, and short docstrings."""

import ast
import importlib
import pathlib

_ROOT = pathlib.Path(__file__).resolve().parent.parent
_LIBRARY = _ROOT / "attn_research"

# Floors, bottom to top, by module prefix (the longest prefix decides). A module may import its
# own floor or one below. The task interface (the registry and `Task`) sits under the trainer,
# which receives a task; the tasks themselves sit above it.
_FLOORS = (
    ("attn_research.attention",),
    ("attn_research.names", "attn_research.command_flags"),
    ("attn_research.data",),
    ("attn_research.models",),
    ("attn_research.evaluation",),
    ("attn_research.tasks", "attn_research.tasks.base"),
    ("attn_research.train",),
    ("attn_research.tasks.",),
    ("attn_research.predict",),
    (
        "attn_research",
        "attn_research.main",
        "attn_research.translate",
        "attn_research.classify",
        "attn_research.align",
        "attn_research.average_checkpoints",
    ),
)
# Registries of attention names, as (module, attribute); each group must be found.
_REGISTRIES = {
    "presets": (("attn_research.attention.presets", "KINDS"),),
    "positions rules": (("attn_research.attention.positions", "RULES"),),
    "kernels": (("attn_research.attention.kernels", "KERNELS"),),
    "scores": (("attn_research.attention.scores", "SCORES"),),
}
# Names of attentions that no registry holds any longer but old code spelled.
_OLD_NAMES = {"bahdanau"}
_MAX_ATTENTION_MODULES = 10
# The whole library's fraction after issue 34's docstring trim, rounded up to the next percent.
_MAX_DOCSTRING_FRACTION = 0.16


def _modules(root: pathlib.Path = _LIBRARY) -> dict[str, ast.Module]:
    """Every module under `root`, by dotted name, parsed."""
    modules = {}
    for path in sorted(root.rglob("*.py")):
        parts = path.relative_to(_ROOT).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = ast.parse(path.read_text(encoding="utf-8"), str(path))
    return modules


def _imports(name: str, tree: ast.Module, known: set[str]) -> set[str]:
    """The project modules that module `name` imports (at any depth of its code)."""
    package = name if _is_package(name) else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([node.module] if node.module else []))
            for alias in node.names:  # `from pkg import module` imports pkg.module.
                found.add(f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base)
    return {m for m in found if m == "attn_research" or m.startswith("attn_research.")}


def _is_package(name: str) -> bool:
    return (_ROOT / name.replace(".", "/") / "__init__.py").is_file()


def _floor(module: str) -> int:
    """The index in `_FLOORS` of the longest prefix of `module` (a trailing '.' matches only
    submodules)."""
    best, floor = -1, None
    for index, prefixes in enumerate(_FLOORS):
        for prefix in prefixes:
            matches = (
                module.startswith(prefix)
                if prefix.endswith(".")
                else module == prefix or module.startswith(prefix + ".")
            )
            if matches and len(prefix) > best:
                best, floor = len(prefix), index
    assert floor is not None, f"{module} is on no floor: add it to _FLOORS"
    return floor


def test_no_import_runs_up_a_floor():
    modules = _modules()
    known = set(modules)
    upward = [
        f"{name} (floor {_floor(name)}) imports {target} (floor {_floor(target)})"
        for name, tree in modules.items()
        for target in sorted(_imports(name, tree, known))
        if _floor(target) > _floor(name)
    ]
    assert not upward, "imports up a floor:\n" + "\n".join(upward)


def test_the_floor_scan_sees_an_upward_import():
    tree = ast.parse("from attn_research.train.config import default_config\nfrom . import x")
    known = {"attn_research.models.x", "attn_research.train.config"}
    imported = _imports("attn_research.models.fields", tree, known)
    assert imported == {"attn_research.train.config", "attn_research.models.x"}
    assert _floor("attn_research.train.config") > _floor("attn_research.models.fields")
    assert _floor("attn_research.tasks.base") < _floor("attn_research.train.steps")
    assert _floor("attn_research.tasks.translation") > _floor("attn_research.train.steps")


def _registered_names() -> set[str]:
    names = set()
    for group, places in _REGISTRIES.items():
        found = False
        for module, attribute in places:
            try:
                names |= set(getattr(importlib.import_module(module), attribute))
            except (ImportError, AttributeError):
                continue
            found = True
        assert found, f"no registry of attention {group} at any of {places}"
    return names


def _identifier(node: ast.expr) -> str:
    """The name `node` reads (`self.attention`, `model["attention"]`, `model.get("attention")`
    -> 'attention'), or ''."""
    if isinstance(node, ast.Call) and node.args and isinstance(node.func, ast.Attribute):
        node = ast.Subscript(node.func.value, node.args[0]) if node.func.attr == "get" else node
    if isinstance(node, ast.Subscript) and isinstance(node.slice, ast.Constant):
        return str(node.slice.value)
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Name):
        return node.id
    return ""


def _strings(node: ast.expr) -> list[str]:
    """The string constants of `node`, or of the tuple, list or set it is."""
    elements = node.elts if isinstance(node, ast.Tuple | ast.List | ast.Set) else [node]
    return [e.value for e in elements if isinstance(e, ast.Constant) and isinstance(e.value, str)]


def _name_comparisons(tree: ast.Module, names: set[str]) -> list[tuple[int, str]]:
    """(line, text) of each comparison or `case` in `tree` of an attention name: a string
    against an expression named `*attention*`, or a string that is one of `names`."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Compare):
            sides = [node.left, *node.comparators]
        elif isinstance(node, ast.Match):
            sides = [node.subject] + [
                p.value
                for c in node.cases
                for p in ast.walk(c.pattern)
                if isinstance(p, ast.MatchValue)
            ]
        else:
            continue
        named = any("attention" in _identifier(side).lower() for side in sides)
        strings = {text for side in sides for text in _strings(side)}
        if strings & names or (named and strings):
            found.append((node.lineno, ast.unparse(node)))
    return sorted(found)


def test_the_name_scan_sees_every_spelling():
    names = {"luong", "local"}
    source = """
if self.attention == "bahdanau": pass
if config.model.get("attention") != "none": pass
if spec.kind in ("luong", "other"): pass
if mode == "local": pass
match attention:
    case "luong": pass
if size == 3 and kind == "gru" and model["attention_kind"] == "x": pass
if self.attention is None or remat == "none": pass
"""
    lines = [line for line, _ in _name_comparisons(ast.parse(source), names)]
    assert lines == [2, 3, 4, 5, 6, 8]


def test_no_model_or_task_compares_an_attention_name():
    names = _registered_names() | _OLD_NAMES
    found = [
        f"{path.relative_to(_ROOT)}:{line}: {text}"
        for package in ("models", "tasks")
        for path in sorted((_LIBRARY / package).rglob("*.py"))
        for line, text in _name_comparisons(ast.parse(path.read_text(encoding="utf-8")), names)
    ]
    assert not found, "ask the attention a question instead:\n" + "\n".join(found)


def test_the_attention_library_uses_no_reflection():
    found = []
    for path in sorted((_LIBRARY / "attention").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            imported = []
            if isinstance(node, ast.Import):
                imported = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                imported = [node.module or ""]
            if "inspect" in imported or (
                isinstance(node, ast.Attribute) and node.attr == "signature"
            ):
                found.append(f"{path.relative_to(_ROOT)}:{node.lineno}")
    assert not found, "inspect in attention/: " + ", ".join(found)


def test_the_attention_package_is_small():
    attention = _LIBRARY / "attention"
    modules = sorted(p.name for p in attention.glob("*.py") if p.name != "__init__.py")
    assert (attention / "kernels" / "__init__.py").is_file(), "no attention/kernels/ package"
    assert len(modules) <= _MAX_ATTENTION_MODULES, f"{len(modules)} modules: {modules}"


def docstring_lines(tree: ast.Module) -> int:
    """The number of source lines inside module, class and function docstrings of `tree`."""
    count = 0
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                if isinstance(body[0].value.value, str):
                    count += body[0].end_lineno - body[0].lineno + 1
    return count


def test_docstrings_are_short():
    paths = sorted(_LIBRARY.rglob("*.py"))
    total = sum(len(p.read_text(encoding="utf-8").splitlines()) for p in paths)
    inside = sum(docstring_lines(ast.parse(p.read_text(encoding="utf-8"))) for p in paths)
    fraction = inside / total
    message = f"docstrings are {inside} of the library's {total} lines ({fraction:.1%})"
    print(message)
    assert fraction < _MAX_DOCSTRING_FRACTION, message


def test_docstring_lines_counts_every_docstring():
    source = (
        '"""Module\n\ndoc."""\n\n\nclass A:\n    """One."""\n\n    def f(self):\n        x = "no"\n'
    )
    assert docstring_lines(ast.parse(source)) == 4
