"""The domain ring is pure: no I/O library is imported by it, directly or through fleetcam."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

import fleetcam

FORBIDDEN = {"boto3", "botocore", "av", "asyncio", "socket", "fastapi", "starlette",
             "sqlite3", "uvicorn", "aiomqtt", "amqtt", "pynamodb"}
PACKAGE = Path(fleetcam.__file__).parent
DOMAIN = sorted((PACKAGE / "domain").glob("*.py"))


def _imports(path: Path) -> set[str]:
    """Absolute names of the modules ``path`` imports (relative imports resolved)."""
    module = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if path.name != "__init__.py" else module
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([base] if base else []))
            names.add(base)
            names.update(f"{base}.{a.name}" for a in node.names)  # from pkg import module
    return names


def _source(module: str) -> Path | None:
    path = PACKAGE.parent.joinpath(*module.split("."))
    for candidate in (path.with_suffix(".py"), path / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _reachable(start: Path) -> dict[str, str]:
    """Every module imported from ``start``, following fleetcam's own modules: name -> via."""
    seen: dict[str, str] = {}
    todo = [start]
    visited: set[Path] = set()
    while todo:
        path = todo.pop()
        if path in visited:
            continue
        visited.add(path)
        for name in _imports(path):
            seen.setdefault(name, str(path.relative_to(PACKAGE.parent)))
            if name.split(".")[0] == "fleetcam" and (src := _source(name)) is not None:
                todo.append(src)
    return seen


def test_domain_has_modules() -> None:
    assert {p.stem for p in DOMAIN} >= {"models", "keys", "expr", "selectors", "retention"}


@pytest.mark.parametrize("path", DOMAIN, ids=lambda p: p.stem)
def test_domain_module_is_pure(path: Path) -> None:
    bad = {name: via for name, via in _reachable(path).items()
           if name.split(".")[0] in FORBIDDEN}
    assert not bad, f"{path.name} reaches I/O modules: {bad}"


def test_the_checker_sees_a_violation(tmp_path: Path) -> None:
    assert "sqlite3" in _imports(PACKAGE / "adapters" / "local" / "db.py")
    assert any(n.split(".")[0] == "sqlite3"
               for n in _reachable(PACKAGE / "adapters" / "local" / "repos.py"))
