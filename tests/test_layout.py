"""The package layout and its layering rules, checked from the source tree.

DESIGN.md "The shape": three folders install under one import name (`core/` is
`mcp_core.core`, and so on) through setuptools' `package-dir`. Code imports `mcp_core.…`, never
a bare `core`; `core` imports nothing from `adapters`; the pure parts of `core` (machines,
protocol, sans-IO HTTP, OAuth and vault policies) import no I/O library, not even through
another module of the project (the `mcp_core.core` facade `__init__` excepted: see
`_pure_parents`). These tests read the folders and the imports (with `ast`), so a
new module is covered the moment it exists.
"""

from __future__ import annotations

import ast
import importlib
import importlib.util
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest

ROOT = Path(__file__).resolve().parent.parent
FOLDERS = {"core": "mcp_core.core", "ports": "mcp_core.ports", "adapters": "mcp_core.adapters"}
BARE = frozenset(FOLDERS)

# Optional extras: a module that needs one that is not installed is skipped, not failed.
OPTIONAL = frozenset({"uvicorn", "redis", "asyncpg", "psycopg", "nats", "opentelemetry"})

# Packages of `core` that must stay pure. oauth and vault are pure by DESIGN.md; they are listed
# before they exist so that they are checked from their first line.
PURE = ("mcp_core.core.machines", "mcp_core.core.protocol", "mcp_core.core.http")
PURE += ("mcp_core.core.oauth", "mcp_core.core.vault")

# No I/O, no concurrency, no clock, no dice: those arrive through events and ports.
IO_LIBRARIES = frozenset(
    {
        "anyio",
        "asyncio",
        "httpx",
        "socket",
        "sqlite3",
        "aiosqlite",
        "redis",
        "asyncpg",
        "psycopg",
        "starlette",
        "uvicorn",
        "threading",
        "subprocess",
        "time",
        "random",
        "secrets",
    }
)


# ---- the source tree --------------------------------------------------------------------------


@attrs.frozen
class SourceModule:
    name: str
    path: Path
    is_package: bool


def _source_modules() -> list[SourceModule]:
    modules = []
    for folder, package in FOLDERS.items():
        for path in sorted((ROOT / folder).rglob("*.py")):
            relative = path.relative_to(ROOT / folder)
            if any(part == "__pycache__" or part.startswith(".") for part in relative.parts):
                continue
            parts = list(relative.with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            modules.append(SourceModule(".".join([package, *parts]), path, is_package))
    return modules


MODULES = _source_modules()
BY_NAME = {module.name: module for module in MODULES}


@attrs.frozen
class Import:
    """One imported dotted name, made absolute; `line` is where the import statement is."""

    target: str
    line: int


def _imports(module: SourceModule) -> list[Import]:
    """Every name a module imports, anywhere in the file (functions and TYPE_CHECKING too).

    `from a.b import c` yields both `a.b` and `a.b.c` (c may be a submodule). Relative imports
    are resolved against the module's package; one that climbs above `mcp_core` yields
    `<beyond mcp_core>`.
    """
    tree = ast.parse(module.path.read_text("utf-8"), str(module.path))
    package = module.name if module.is_package else module.name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.extend(Import(alias.name, node.lineno) for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                try:
                    base = importlib.util.resolve_name(
                        "." * node.level + (node.module or ""), package
                    )
                except ImportError:
                    found.append(Import("<beyond mcp_core>", node.lineno))
                    continue
            else:
                base = node.module or ""
            found.append(Import(base, node.lineno))
            found.extend(
                Import(f"{base}.{alias.name}", node.lineno)
                for alias in node.names
                if alias.name != "*"
            )
    return found


def _is_within(target: str, package: str) -> bool:
    return target == package or target.startswith(package + ".")


def _where(module: SourceModule, line: int) -> str:
    return f"{module.path.relative_to(ROOT)}:{line}"


# ---- (a) importing everything never creates a bare `core`, `ports` or `adapters` --------------


def _bare_in_sys_modules() -> list[str]:
    return sorted(name for name in sys.modules if name.partition(".")[0] in BARE)


@pytest.mark.parametrize("name", [m.name for m in MODULES])
def test_importing_module_leaves_no_bare_top_level_name(name: str) -> None:
    try:
        module = importlib.import_module(name)
    except ImportError as exc:
        missing = (exc.name or "").partition(".")[0]
        if missing in OPTIONAL:
            pytest.skip(f"{name} needs the optional package {missing}, not installed")
        raise
    assert _bare_in_sys_modules() == [], "something imported the folders by their bare names"
    # The module came from this checkout, so these tests read what actually runs.
    assert Path(module.__file__ or "").resolve() == BY_NAME[name].path.resolve()


def test_no_module_imports_bare_folder_names() -> None:
    offenders = [
        f"{_where(module, imp.line)}: imports {imp.target}"
        for module in MODULES
        for imp in _imports(module)
        if imp.target.partition(".")[0] in BARE
    ]
    assert not offenders, "import mcp_core.<folder>..., never a bare folder:\n" + "\n".join(
        offenders
    )


# ---- (b) layering -------------------------------------------------------------------------------


def test_core_imports_nothing_from_adapters() -> None:
    offenders = [
        f"{_where(module, imp.line)}: imports {imp.target}"
        for module in MODULES
        if _is_within(module.name, "mcp_core.core")
        for imp in _imports(module)
        if _is_within(imp.target, "mcp_core.adapters") or imp.target == "<beyond mcp_core>"
    ]
    assert not offenders, "core must not depend on adapters:\n" + "\n".join(offenders)


def _io_imports(module: SourceModule) -> Iterator[Import]:
    for imp in _imports(module):
        if imp.target.partition(".")[0] in IO_LIBRARIES:
            yield imp


def _project_module_of(target: str) -> str | None:
    """The source module an imported name lives in (longest known prefix), if it is ours."""
    parts = target.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in BY_NAME:
            return candidate
    return None


def _is_pure(name: str) -> bool:
    return any(_is_within(name, package) for package in PURE)


def _pure_parents(name: str) -> list[str]:
    """The parent packages whose `__init__` runs first when `name` is imported, if pure.

    `mcp_core.core/__init__.py` also runs, but it is the public facade (it re-exports the
    services) and not part of a pure package, so it is not held against pure modules; a pure
    module that imports it explicitly is.
    """
    parts = name.split(".")
    chain = [".".join(parts[:end]) for end in range(2, len(parts))]
    return [m for m in chain if m in BY_NAME and _is_pure(m)]


def _project_dependencies(name: str) -> set[str]:
    """Our modules that importing `name` runs: what it imports, and pure parent packages."""
    out = set(_pure_parents(name))
    for imp in _imports(BY_NAME[name]):
        target = _project_module_of(imp.target)
        if target is not None:
            out.add(target)
            out.update(_pure_parents(target))
    out.discard(name)
    return out


def _first_io_chain(start: str) -> list[str] | None:
    """The import chain from `start` to a module importing an I/O library, if there is one."""
    seen = {start}
    frontier = [[start]]
    while frontier:
        chain = frontier.pop(0)
        module = BY_NAME[chain[-1]]
        for imp in _io_imports(module):
            return [*chain[:-1], f"{chain[-1]} ({_where(module, imp.line)}: {imp.target})"]
        for dependency in sorted(_project_dependencies(chain[-1]) - seen):
            seen.add(dependency)
            frontier.append([*chain, dependency])
    return None


PURE_MODULES = [m.name for m in MODULES if _is_pure(m.name)]


def test_pure_packages_exist() -> None:
    # Guards the list above against a rename that would silently check nothing.
    assert {"mcp_core.core.machines", "mcp_core.core.protocol"} <= set(PURE_MODULES)


@pytest.mark.parametrize("name", PURE_MODULES)
def test_pure_module_imports_no_io_library(name: str) -> None:
    chain = _first_io_chain(name)
    assert chain is None, "a pure module reaches an I/O library: " + " -> ".join(chain or [])


# ---- (c) every package folder is installed -------------------------------------------------------


def _setuptools() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        return dict(tomllib.load(file)["tool"]["setuptools"])


def test_package_dir_maps_the_three_folders() -> None:
    assert _setuptools()["package-dir"] == {package: folder for folder, package in FOLDERS.items()}


def test_every_package_folder_is_listed_in_pyproject() -> None:
    listed = set(_setuptools()["packages"])  # type: ignore[call-overload]
    folders = {m.name for m in MODULES if m.is_package}
    missing = sorted(folders - listed)
    assert not missing, f"add to [tool.setuptools] packages in pyproject.toml: {missing}"


def test_every_listed_package_exists() -> None:
    setuptools = _setuptools()
    package_dir: dict[str, str] = setuptools["package-dir"]  # type: ignore[assignment]
    absent = []
    for package in setuptools["packages"]:  # type: ignore[attr-defined]
        root = max((p for p in package_dir if _is_within(package, p)), key=len, default=None)
        if root is None:
            absent.append(f"{package} (under no package-dir entry)")
            continue
        folder = ROOT / package_dir[root] / Path(*package[len(root) :].split(".")[1:])
        if not (folder / "__init__.py").is_file():
            absent.append(f"{package} (no {folder.relative_to(ROOT)}/__init__.py)")
    assert not absent, f"listed in pyproject.toml but not in the tree: {absent}"


def test_folders_with_modules_are_packages() -> None:
    # A folder of .py files without __init__.py would be a namespace package: importable from the
    # checkout, but left out of the wheel.
    loose = sorted(
        str(path.parent.relative_to(ROOT))
        for module in MODULES
        for path in [module.path]
        if not (path.parent / "__init__.py").is_file()
    )
    assert not loose, f"add an __init__.py to: {sorted(set(loose))}"
