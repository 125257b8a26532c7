"""The notebooks as saved: what a reader sees without a kernel (on GitHub, or before running)."""
import json
from pathlib import Path

import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def _widget_views(notebook: dict) -> list[str]:
    """The model ids of every widget view saved in the notebook's outputs."""
    return [output["data"]["application/vnd.jupyter.widget-view+json"]["model_id"]
            for cell in notebook["cells"] if cell["cell_type"] == "code"
            for output in cell.get("outputs", []) if "application/vnd.jupyter.widget-view+json" in output.get("data", {})]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_every_saved_widget_view_has_its_state_saved(path):
    """A viewer without a kernel draws a widget only from the state saved in the notebook's metadata: a
    re-execution that keeps an old output but saves a new kernel's state leaves the view blank."""
    notebook = json.loads(path.read_text(encoding="utf-8"))
    saved = notebook["metadata"].get("widgets", {}).get("application/vnd.jupyter.widget-state+json", {})
    missing = [model_id for model_id in _widget_views(notebook) if model_id not in saved.get("state", {})]
    assert not missing, f"{path.name}: widget views without saved state: {missing}"


def test_the_explorer_notebook_saves_a_widget_view():
    explorer = next(p for p in NOTEBOOKS if p.name == "04_explorer.ipynb")
    assert _widget_views(json.loads(explorer.read_text(encoding="utf-8")))
