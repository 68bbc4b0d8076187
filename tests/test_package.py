"""pyproject.toml against the code and against requirements.txt: every console script names a
callable that takes no argument, and every pin CI installs lies in the range a user's
`pip install .` accepts."""

import ast
import importlib.util
import pathlib
import tomllib

import pytest
from packaging.requirements import Requirement

_ROOT = pathlib.Path(__file__).resolve().parent.parent
_PROJECT = tomllib.loads((_ROOT / "pyproject.toml").read_text())["project"]


def _pins() -> dict[str, str]:
    pins = {}
    for line in (_ROOT / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


@pytest.mark.parametrize("script", sorted(_PROJECT["scripts"]))
def test_console_script_names_a_callable_without_arguments(script):
    module_name, _, function = _PROJECT["scripts"][script].partition(":")
    # Read, not imported: each command defines its absl flags at import, once per process.
    tree = ast.parse(pathlib.Path(importlib.util.find_spec(module_name).origin).read_text())
    defined = {node.name: node for node in tree.body if isinstance(node, ast.FunctionDef)}
    assert function in defined, f"{script}: {module_name} has no function {function!r}"
    arguments = defined[function].args
    assert not (arguments.args or arguments.kwonlyargs or arguments.posonlyargs), (
        f"{script}: {module_name}.{function} takes arguments; a console script calls it with none"
    )


@pytest.mark.parametrize(
    "requirement",
    [Requirement(r) for r in _PROJECT["dependencies"] + _PROJECT["optional-dependencies"]["dev"]],
    ids=str,
)
def test_the_pins_ci_installs_are_within_the_package_ranges(requirement):
    pins = _pins()
    if requirement.name.lower() not in pins:
        pytest.skip(f"{requirement.name} has no pin in requirements.txt")
    assert requirement.specifier.contains(pins[requirement.name.lower()]), (
        f"requirements.txt pins {requirement.name}=={pins[requirement.name.lower()]}, "
        f"outside pyproject.toml's {requirement.specifier}"
    )
