"""The layout keeps the architecture visible: rules a newcomer can rely on, checked.

Everything here reads the source (``ast``) or the installed packages; nothing
is imported from the server except the outbox runner registry.
"""
from __future__ import annotations

import ast
import importlib.metadata
import re
import subprocess
import sysconfig
from functools import cache
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
MAX_ROOT_PYTHON_FILES = 6
MAX_LINES = 400

# Low to high: a module may import its own package and anything in a lower
# layer, never a sibling package of its layer or anything above it. The top
# layer is the entry points, which compose everything below.
LAYERS = (
    ("settings",),
    ("models",),
    ("database", "observability"),
    ("bot_outbox",),
    ("telegram_updates", "membership"),
    ("main", "routes", "telegram_handler", "cli", "worker_process", "local_sandbox", "operations"),
)
LAYER_OF = {package: index for index, packages in enumerate(LAYERS) for package in packages}
ENTRY_POINTS = set(LAYERS[-1])
# Where Flask's request object may be read: the HTTP edge and the handler.
REQUEST_READERS = ("routes", "main", "telegram_handler")


@cache
def tracked_python_files() -> tuple[Path, ...]:
    listed = subprocess.run(["git", "ls-files", "--cached", "--others", "--exclude-standard", "*.py"],
                            cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    return tuple(REPO / name for name in listed if (REPO / name).exists())


def top_name(path: Path) -> str:
    """The first component of a file's dotted name: its package, or the module at the root."""
    parts = path.relative_to(REPO).parts
    return parts[0] if len(parts) > 1 else path.stem


def imported_top_names(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


def server_files() -> list[Path]:
    return [path for path in tracked_python_files() if top_name(path) in LAYER_OF]


def our_top_level_names() -> set[str]:
    """Importable names at the repository root: modules and packages."""
    names = {path.stem for path in REPO.glob("*.py") if "." not in path.stem}
    names |= {path.parent.name for path in REPO.glob("*/__init__.py")}
    return names


def test_at_most_six_python_files_at_the_root():
    root_files = sorted(path.name for path in tracked_python_files() if path.parent == REPO)
    assert len(root_files) <= MAX_ROOT_PYTHON_FILES, root_files


def test_nothing_outside_tests_imports_tests():
    offenders = [str(path.relative_to(REPO)) for path in tracked_python_files()
                 if top_name(path) != "tests" and "tests" in imported_top_names(path)]
    assert offenders == []


def test_no_python_file_is_longer_than_400_lines():
    long_files = {str(path.relative_to(REPO)): n for path in tracked_python_files()
                  if (n := len(path.read_text().splitlines())) > MAX_LINES}
    assert long_files == {}


def test_no_top_level_name_shadows_an_installed_package():
    """An installed distribution providing one of our names would be shadowed by ours."""
    installed = importlib.metadata.packages_distributions()
    assert sorted(name for name in our_top_level_names() if name in installed) == []


def test_no_top_level_name_is_one_that_installed_code_imports():
    """Werkzeug's reloader imports the PyPI ``watchdog``; a root ``watchdog.py`` broke it.

    Any name that installed code imports (often optionally, inside a try) is
    a name we must not take at the root.
    """
    ours = our_top_level_names()
    site_packages = Path(sysconfig.get_paths()["purelib"])
    pattern = re.compile(r"^\s*(?:from\s+(\w+)[\w.]*\s+import|import\s+(\w+))", re.M)
    taken = {}
    for path in site_packages.rglob("*.py"):
        for match in pattern.finditer(path.read_text(errors="ignore")):
            name = match.group(1) or match.group(2)
            if name in ours:
                taken.setdefault(name, str(path.relative_to(site_packages)))
    assert taken == {}


def test_the_shadowing_check_would_catch_the_watchdog_module():
    """The check above is worth something: Werkzeug does import ``watchdog``."""
    werkzeug = Path(sysconfig.get_paths()["purelib"]) / "werkzeug" / "_reloader.py"
    assert re.search(r"^\s*from watchdog\b", werkzeug.read_text(), re.M)


@pytest.mark.parametrize("path", server_files(), ids=lambda path: str(path.relative_to(REPO)))
def test_imports_flow_one_way(path: Path):
    own = top_name(path)
    imported = imported_top_names(path) & set(LAYER_OF)
    for name in imported - {own}:
        if own in ENTRY_POINTS and name in ENTRY_POINTS:
            continue  # the entry points compose each other (main registers routes and cli)
        assert LAYER_OF[name] < LAYER_OF[own], f"{own} (layer {LAYER_OF[own]}) imports {name} (layer {LAYER_OF[name]})"


def test_models_import_only_models_and_settings():
    for path in (REPO / "models").glob("*.py"):
        assert imported_top_names(path) & set(LAYER_OF) <= {"models", "settings"}, path.name


def test_only_the_http_edge_reads_the_request():
    readers = set()
    for path in server_files():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module == "flask" and \
                    any(alias.name == "request" for alias in node.names):
                readers.add(top_name(path))
    assert readers and readers <= set(REQUEST_READERS)


def test_every_outbox_job_kind_that_is_queued_has_a_runner():
    """Runners are registered explicitly (membership.job_runners), not by import side effects."""
    from bot_outbox.jobs import CALL
    from membership.job_runners import RUNNERS

    queued = set()
    for path in server_files():
        module = ".".join(path.relative_to(REPO).with_suffix("").parts)
        constants = _module_constants(path)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "enqueue_job":
                kind = node.args[1]
                assert isinstance(kind, ast.Name) and kind.id in constants, f"{module}: job kind must be a constant"
                queued.add(constants[kind.id])
    assert queued, "no enqueue_job call found: the check is looking in the wrong place"
    assert queued <= set(RUNNERS) | {CALL}


def _module_constants(path: Path) -> dict[str, str]:
    constants = {}
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant) and len(node.targets) == 1 \
                and isinstance(node.targets[0], ast.Name):
            constants[node.targets[0].id] = node.value.value
    return constants


def readme_tree() -> set[str]:
    """The paths of the README's Layout tree (two spaces of indent per level)."""
    text = (REPO / "README.md").read_text()
    block = re.search(r"^## Layout\n.*?^```text\n(.*?)^```", text, re.M | re.S)
    assert block, "README.md has no Layout tree"
    paths, parents = set(), []
    for line in block.group(1).splitlines():
        depth = (len(line) - len(line.lstrip(" "))) // 2
        name = line.split()[0]
        parents[depth:] = [name.rstrip("/")]
        paths.add("/".join(parents))
    return paths


def test_the_readme_layout_tree_is_true():
    listed = readme_tree()
    assert sorted(path for path in listed if not (REPO / path).exists()) == []
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True).stdout.split()
    root_entries = {name.split("/")[0] for name in tracked if not name.startswith(".")}
    package_modules = {str(path.relative_to(REPO)) for path in server_files()
                       if path.parent != REPO and path.name != "__init__.py"}
    assert sorted((root_entries | package_modules) - listed) == []


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def module_level_imports(path: Path, known: set[str]) -> set[str]:
    """The project modules ``path`` imports at load time (not inside functions)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name in known}


def test_no_import_cycles_between_server_modules():
    files = {module_name(path): path for path in server_files()}
    graph = {name: module_level_imports(path, set(files)) - {name} for name, path in files.items()}
    visiting, done, cycles = [], set(), []

    def visit(name: str) -> None:
        if name in done:
            return
        if name in visiting:
            cycles.append(visiting[visiting.index(name):] + [name])
            return
        visiting.append(name)
        for target in sorted(graph[name]):
            visit(target)
        visiting.pop()
        done.add(name)

    for name in sorted(graph):
        visit(name)
    assert cycles == []
