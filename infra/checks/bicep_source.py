"""Bicep source as the offline tools can read it.

tree-sitter-bicep 1.1.0 and checkov's Bicep parser predate the `extension` statement (the
Microsoft Graph extension in modules/entra-app.bicep). It declares which resource types exist and
holds nothing to check, so it is blanked out — replaced by a comment of the same length, so line
and column numbers stay true — before parsing. Everything else in the file is parsed as written.
"""

from __future__ import annotations

import re
from pathlib import Path

EXTENSION = re.compile(r"^extension\s.*$", re.M)


def uses_extension(text: str) -> bool:
    """True when the file declares a Bicep extension."""
    return EXTENSION.search(text) is not None


def readable(text: str) -> str:
    """`text` with each `extension ...` line turned into a comment of the same length."""
    return EXTENSION.sub(lambda m: "//" + " " * (len(m.group(0)) - 2), text)


def read(path: Path) -> str:
    """A .bicep file, readable by the offline parsers."""
    return readable(path.read_text())
