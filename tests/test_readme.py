"""The README's library example runs as written and gives what its comments promise."""

import re

import torch

from tests.conftest import REPO


def test_readme_library_example_runs():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert len(blocks) == 1
    scope: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    result, settings = scope["result"], scope["settings"]
    assert result.mean.shape == result.std.shape == result.regression.shape == (1, 1, 64, 64)
    assert float(result.mean.min()) >= 0 and float(result.std.mean()) > 0
    assert settings.samples == 8 and settings.antithetic
    assert not torch.equal(result.mean, result.regression)
