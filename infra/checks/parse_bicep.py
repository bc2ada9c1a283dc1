"""Syntax check of every .bicep file with tree-sitter-bicep (no Bicep compiler can be
installed offline). Prints the first error or missing node of each broken file with its
line and column. `extension` statements are blanked first (see bicep_source.py).

Usage: python3 infra/checks/parse_bicep.py [FILE_OR_DIR ...]   (default: infra)
"""

from __future__ import annotations

import sys
from pathlib import Path

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

from bicep_source import readable


def first_error(node: Node) -> Node | None:
    """The innermost ERROR or missing node of the first broken branch."""
    for child in node.children:
        if child.has_error or child.is_missing:
            found = first_error(child)
            if found is not None:
                return found
    if node.type == "ERROR" or node.is_missing:
        return node
    return None


def main() -> int:
    parser = Parser(Language(tree_sitter_bicep.language()))
    targets = [Path(a) for a in sys.argv[1:]] or [Path("infra")]
    files = sorted({f for t in targets for f in ([t] if t.is_file() else t.rglob("*.bicep"))})
    if not files:
        print("no .bicep files found")
        return 1
    broken = 0
    for path in files:
        source = readable(path.read_text()).encode()
        root = parser.parse(source).root_node
        if not root.has_error:
            continue
        broken += 1
        error = first_error(root) or root
        row, column = error.start_point
        line = source.splitlines()[row].decode(errors="replace") if row < len(source.splitlines()) else ""
        what = f"missing {error.type}" if error.is_missing else "syntax error"
        print(f"{path}:{row + 1}:{column + 1}: {what}\n    {line}\n    {' ' * column}^")
    print(f"{len(files) - broken} of {len(files)} .bicep files parse")
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
