"""The README's code runs as written."""
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

README = Path(__file__).resolve().parent.parent / "README.md"


def python_block(heading: str) -> str:
    """The first ```python block under the README's ``heading``."""
    section = README.read_text().split(f"## {heading}\n", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_your_own_data_example_runs_and_learns_8x8_patches(capsys):
    names = {}
    exec(python_block("Your own data"), names)
    model, history, test_x = names["model"], names["history"], names["test_x"]
    assert model.n_input == 64 and test_x.shape[1] == 64
    assert history["test_bce"][-1] < 0.8 * history["test_bce"][0]  # it learned something
    assert "'bce'" in capsys.readouterr().out
    assert len(names["fig"].axes) >= 48
