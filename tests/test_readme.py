"""The README's Python examples run as written (they are what new users copy first)."""

import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
# Examples that need the network are not run.
BLOCKS = [
    b for b in re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    if "fetch(" not in b
]


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_readme_example_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    exec(compile(code, str(README), "exec"), {"__name__": "__readme__"})
