"""Imports run one way, so that each floor can be read, tested and deployed without the floors above it:

    core  <-  contracts  <-  services, gateway  <-  parvis (command line, supervisor, demo data, dev servers)

A service never imports the gateway and the gateway never runs a service's code (what they share is in
contracts/); contracts/base.py holds the registries and imports no service's module (no circle)."""
import ast
from pathlib import Path

import pytest

from tests.support import ROOT

ALLOWED = {
    "core": {"core"},
    "contracts": {"core", "contracts"},
    "services": {"core", "contracts", "services"},
    "gateway": {"core", "contracts", "gateway"},
    "parvis": {"core", "contracts", "services", "gateway", "parvis"},
}


def ours(module: str) -> str | None:
    top = module.split(".")[0]
    return top if top in ALLOWED else None


def imports(path: Path) -> list[tuple[int, str]]:
    """Every module a file imports (at the top or inside a function), by line."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found += [(node.lineno, node.module)]
    return found


@pytest.mark.parametrize("package", sorted(ALLOWED))
def test_imports_run_one_way(package):
    wrong = []
    for path in sorted((ROOT / package).rglob("*.py")):
        for line, module in imports(path):
            top = ours(module)
            if top is not None and top not in ALLOWED[package]:
                wrong.append(f"{path.relative_to(ROOT)}:{line} imports {module}")
    assert wrong == [], "\n".join(wrong)


def test_the_contract_registries_import_no_service_module():
    modules = {m for _, m in imports(ROOT / "contracts" / "base.py")}
    assert not {m for m in modules if m.startswith("contracts")}, modules
