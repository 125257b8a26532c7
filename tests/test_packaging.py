"""environment.yml installs exactly what ``pip install -e ".[dev]"`` installs."""
import re
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def environment_lists() -> tuple[list[str], list[str]]:
    """(conda dependencies, pip dependencies) of environment.yml, read line by line (no YAML library)."""
    conda, pip, key, pip_indent = [], [], None, None
    for line in (ROOT / "environment.yml").read_text().splitlines():
        if top := re.match(r"^([\w-]+):", line):
            key, pip_indent = top[1], None
            continue
        item = re.match(r"^(\s*)-\s+(.+?)\s*(?:#.*)?$", line)
        if key != "dependencies" or not item:
            continue
        indent, value = len(item[1]), item[2]
        if pip_indent is not None and indent > pip_indent:
            pip.append(value)
        elif value == "pip:":
            pip_indent = indent
        else:
            conda.append(value)
            pip_indent = None
    return conda, pip


def normalise(requirement: str) -> str:
    return re.sub(r"\s+", "", requirement).lower()


def test_environment_pip_list_matches_pyproject_runtime_and_dev_dependencies():
    project = pyproject()["project"]
    wanted = project["dependencies"] + project["optional-dependencies"]["dev"]
    _, pip = environment_lists()
    assert sorted(map(normalise, pip)) == sorted(map(normalise, [*wanted, "-e ."]))


def test_environment_has_python_311_pip_and_the_package_itself():
    conda, pip = environment_lists()
    assert "python=3.11" in conda and "pip" in conda
    assert "-e ." in pip


def test_python_311_is_allowed_by_pyproject():
    requires = pyproject()["project"]["requires-python"]
    lowest = re.fullmatch(r">=\s*3\.(\d+)", requires)
    assert lowest and int(lowest[1]) <= 11


def test_bundled_mnist_is_package_data():
    data = pyproject()["tool"]["setuptools"]["package-data"]["sae_utils"]
    assert "mnist/*.gz" in data
    assert len(list((ROOT / "sae_utils" / "mnist").glob("*.gz"))) == 4
