"""The README's code examples, for the tests that run them exactly as written."""
from __future__ import annotations

import re
import shlex
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def python_block(section: str, needle: str) -> str:
    """The one ```python block of the README section headed ``## <section>...`` that holds ``needle``."""
    text = README.read_text()
    assert f"\n## {section}" in text, f"README has no section '## {section}'"
    body = text.split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    blocks = [b for b in re.findall(r"```python\n(.*?)```", body, re.S) if needle in b]
    assert len(blocks) == 1, f"README section '{section}': {len(blocks)} python examples hold {needle!r}, expected 1"
    return blocks[0]


def bash_commands(section: str) -> list[list[str]]:
    """The commands of the one ```bash block of the README section headed ``## <section>...``,
    each split as a shell would (``\\`` continuations joined, ``#`` comments dropped)."""
    text = README.read_text()
    assert f"\n## {section}" in text, f"README has no section '## {section}'"
    body = text.split(f"\n## {section}", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", body, re.S)
    assert len(blocks) == 1, f"README section '{section}': {len(blocks)} bash blocks, expected 1"
    return [shlex.split(line, comments=True) for line in blocks[0].replace("\\\n", " ").splitlines()
            if shlex.split(line, comments=True)]
