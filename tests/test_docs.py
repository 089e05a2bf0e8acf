"""The README's Python example runs as written and prints what it says it prints.

(Docstring examples in the package run too: pytest collects them with
``--doctest-modules``, see ``pyproject.toml``.)
"""

import doctest
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_readme_python_example(shared_cifar, cifar_cache, monkeypatch):
    monkeypatch.chdir(ROOT)  # the example's paths are relative to the project root
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    outcome = doctest.testfile(str(ROOT / "README.md"), module_relative=False, optionflags=flags)
    assert outcome.attempted >= 10, "the README's example lost its >>> lines"
    assert outcome.failed == 0


def test_readme_example_block_is_complete():
    """Every line of the README's Python block is part of the checked example."""
    text = (ROOT / "README.md").read_text()
    block = text.split("```python\n", 1)[1].split("```", 1)[0]
    code = [line for line in block.splitlines() if line.strip()]
    assert code and all(
        line.startswith((">>> ", "... ")) or not line.startswith(" ") for line in code
    )
