"""The import graph has no upward arrow (docs/architecture.md): the library never imports the pool
builder or the tools, and models never import dataset code."""
from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def _imported_modules(path: Path) -> set[str]:
    """Absolute names of every module ``path`` imports, at any depth (inside functions too)."""
    package = '.'.join(path.relative_to(REPO).with_suffix('').parts[:-1])
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding='utf-8'))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split('.')[:len(package.split('.')) - node.level + 1]
                names.add('.'.join(base + ([node.module] if node.module else [])))
            else:
                names.add(node.module)
    return names


def _violations(folder: str, forbidden: tuple[str, ...]) -> list[str]:
    found = []
    for path in sorted((REPO / folder).rglob('*.py')):
        for name in _imported_modules(path):
            if any(name == f or name.startswith(f + '.') for f in forbidden):
                found.append(f'{path.relative_to(REPO)} imports {name}')
    return found


def test_the_library_never_imports_the_pool_builder_or_the_tools():
    assert _violations('xpaste_mm', ('pool_builder', 'tools', 'gpu_phases', 'pipeline_demo')) == []


def test_models_do_not_import_dataset_code():
    assert _violations('xpaste_mm/models', ('xpaste_mm.datasets',)) == []


def test_the_check_sees_relative_imports(tmp_path):
    """The scanner itself: a relative import is resolved to its absolute module name."""
    sample = REPO / 'xpaste_mm/models/losses/federated_loss.py'
    assert 'xpaste_mm.categories' in _imported_modules(sample)
