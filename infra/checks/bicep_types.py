"""Type check of the Bicep against Azure's own resource type definitions, as the Bicep compiler
does it (no compiler can be installed offline).

Every `resource` (new or `existing`) and `module` in the given .bicep files is checked against
the generated type files in infra/checks/azure-types/ (see the README there) and the modules'
own `param`/`output` declarations:

  BCP081  unknown resource type or API version
  BCP037  a property the type does not have (module: a parameter the module does not declare)
  BCP035  a required property (module: a parameter without default) is missing
  BCP073  a read-only property is set
  BCP036  a literal of the wrong type, or outside the allowed values (enums)
  BCP088  the same, where a value differing only in case is allowed ("did you mean")
  BCP053  a property read from a resource, or an output read from a module, that does not exist
  BCP091  the module file does not exist

Only literals are judged; an expression this check cannot evaluate (a parameter, a call, an
interpolation) is accepted, as the compiler accepts a value it can only type loosely. A plain
`var` reference is followed to its value. Property names match without regard to case, as ARM
matches them.

Usage: python3 infra/checks/bicep_types.py [--types DIR] [FILE_OR_DIR ...]   (default: infra)
       python3 infra/checks/bicep_types.py --vendor SOURCE_DIR
           rewrite infra/checks/azure-types/ from the full type files in SOURCE_DIR, keeping
           only the resource types infra/ uses and the type nodes they reach
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import tree_sitter_bicep
from tree_sitter import Language, Node, Parser

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bicep_source import readable  # noqa: E402

CHECKS = Path(__file__).resolve().parent
VENDORED = CHECKS / "azure-types"
PARSER = Parser(Language(tree_sitter_bicep.language()))
FLAG_REQUIRED, FLAG_READ_ONLY, FLAG_WRITE_ONLY = 1, 2, 4
# Keys of a resource body that are Bicep's, not the type's.
BICEP_KEYWORDS = {"parent", "scope", "dependsOn"}
MODULE_KEYS = {"name", "params", "scope", "dependsOn"}


# ---------------------------------------------------------------------------------------------
# Type files


@dataclass(frozen=True)
class TypeRef:
    """One node of one type file."""

    nodes: list
    index: int

    @property
    def node(self) -> dict:
        return self.nodes[self.index]

    def follow(self, ref: dict) -> "TypeRef":
        target = ref["$ref"]
        assert target.startswith("#/"), f"cross-file type reference {target!r} is not supported"
        return TypeRef(self.nodes, int(target[2:]))


class Types:
    """Every resource type of the type files in a folder, by `type@version` (type without case)."""

    def __init__(self, folder: Path):
        self.resources: dict[str, TypeRef] = {}
        self.files: dict[str, Path] = {}
        for path in sorted(folder.glob("*.json")):
            nodes = json.loads(path.read_text())
            for index, node in enumerate(nodes):
                if node.get("$type") == "ResourceType":
                    key = normalise(node["name"])
                    self.resources[key] = TypeRef(nodes, index)
                    self.files[key] = path

    def body(self, target: str) -> TypeRef | None:
        ref = self.resources.get(normalise(target))
        return ref.follow(ref.node["body"]) if ref else None

    def versions(self, type_name: str) -> list[str]:
        prefix = type_name.lower() + "@"
        return sorted(ref.node["name"].split("@", 1)[1] for key, ref in self.resources.items() if key.startswith(prefix))


def normalise(target: str) -> str:
    type_name, _, version = target.partition("@")
    return f"{type_name.lower()}@{version}"


def describe(ref: TypeRef) -> str:
    """A type as the compiler names it in messages."""
    node = ref.node
    kind = node["$type"]
    if kind == "StringLiteralType":
        return f"'{node['value']}'"
    if kind == "UnionType":
        return " | ".join(describe(ref.follow(e)) for e in node["elements"])
    if kind == "ArrayType":
        return f"{describe(ref.follow(node['itemType']))}[]"
    if kind == "ObjectType" or kind == "DiscriminatedObjectType":
        return node.get("name") or "object"
    return {"StringType": "string", "IntegerType": "int", "BooleanType": "bool", "AnyType": "any"}.get(kind, kind)


# ---------------------------------------------------------------------------------------------
# Bicep files


@dataclass
class Declaration:
    kind: str  # resource | module
    symbol: str
    target: str  # type@version or module path
    node: Node  # the declaration
    body: Node | None  # the object literal, inside any if/for
    existing: bool = False
    collection: bool = False


@dataclass
class BicepFile:
    path: Path
    root: Node
    source: bytes
    variables: dict[str, Node] = field(default_factory=dict)
    params: dict[str, bool] = field(default_factory=dict)  # name -> has a default
    outputs: set[str] = field(default_factory=set)
    declarations: dict[str, Declaration] = field(default_factory=dict)


def literal_string(node: Node) -> str | None:
    """A string literal's value, or None when it interpolates."""
    if node.type != "string" or any(c.type == "interpolation" for c in node.named_children):
        return None
    return "".join(c.text.decode() for c in node.named_children if c.type in ("string_content", "escape_sequence"))


def load(path: Path) -> BicepFile:
    source = readable(path.read_text()).encode()
    root = PARSER.parse(source).root_node
    parsed = BicepFile(path, root, source)
    for node in root.named_children:
        named = node.named_children
        if node.type == "variable_declaration":
            parsed.variables[named[0].text.decode()] = named[-1]
        elif node.type == "parameter_declaration":
            parsed.params[named[0].text.decode()] = any(c.type == "=" for c in node.children)
        elif node.type == "output_declaration":
            parsed.outputs.add(named[0].text.decode())
        elif node.type in ("resource_declaration", "module_declaration"):
            kind = "resource" if node.type == "resource_declaration" else "module"
            body = named[-1]
            collection = False
            if body.type == "if_statement":
                body = body.named_children[-1]
            if body.type == "for_statement":
                collection = True
                body = [c for c in body.named_children if c.type == "object"][-1]
            if body.type == "if_statement":  # [for ...: if (...) {...}]
                body = body.named_children[-1]
            symbol = named[0].text.decode()
            parsed.declarations[symbol] = Declaration(
                kind,
                symbol,
                literal_string(named[1]) or "",
                node,
                body if body.type == "object" else None,
                existing=any(c.type == "existing" for c in node.children),
                collection=collection,
            )
    return parsed


def properties_of(obj: Node) -> list[tuple[str | None, Node, Node]]:
    """(key or None when computed, key node, value node) of an object literal."""
    found = []
    for prop in obj.named_children:
        if prop.type != "object_property":
            continue
        key_node, value = prop.named_children[0], prop.named_children[-1]
        key = literal_string(key_node) if key_node.type == "string" else key_node.text.decode()
        found.append((key, key_node, value))
    return found


# ---------------------------------------------------------------------------------------------
# The check


@dataclass
class Finding:
    path: Path
    node: Node
    code: str
    message: str

    def __str__(self) -> str:
        row, column = self.node.start_point
        return f"{self.path}:{row + 1}:{column + 1}: {self.code}: {self.message}"


class Checker:
    def __init__(self, types: Types):
        self.types = types
        self.findings: list[Finding] = []
        self.counts = {"resource": 0, "existing": 0, "module": 0}
        self._modules: dict[Path, BicepFile] = {}

    def report(self, file: BicepFile, node: Node, code: str, message: str) -> None:
        self.findings.append(Finding(file.path, node, code, message))

    def module(self, path: Path) -> BicepFile | None:
        path = path.resolve()
        if path not in self._modules:
            self._modules[path] = load(path) if path.is_file() else None
        return self._modules[path]

    # -- files ------------------------------------------------------------------------------

    def check_file(self, file: BicepFile) -> None:
        for decl in file.declarations.values():
            if decl.kind == "module":
                self.counts["module"] += 1
                self.check_module(file, decl)
            else:
                self.counts["existing" if decl.existing else "resource"] += 1
                self.check_resource(file, decl)
        self.check_reads(file, file.root)

    def check_resource(self, file: BicepFile, decl: Declaration) -> None:
        target_node = decl.node.named_children[1]
        body_type = self.types.body(decl.target)
        if body_type is None:
            type_name = decl.target.partition("@")[0]
            known = self.types.versions(type_name)
            detail = f"known API versions: {', '.join(known)}" if known else "the resource type is unknown"
            self.report(file, target_node, "BCP081", f'Resource type "{decl.target}" does not have types available ({detail})')
            return
        if decl.body is None:
            return
        if decl.existing:
            # An existing resource is named, not described: only these keys are allowed.
            for key, key_node, _ in properties_of(decl.body):
                if key not in ("name", "parent", "scope"):
                    self.report(file, key_node, "BCP037", f'The property "{key}" is not allowed on an existing resource')
            if not any(key == "name" for key, _, _ in properties_of(decl.body)):
                self.report(file, decl.body, "BCP035", 'The specified "resource" declaration is missing the required property "name"')
            return
        self.check_value(file, decl.body, body_type, "resource", top=True)

    def check_module(self, file: BicepFile, decl: Declaration) -> None:
        path_node = decl.node.named_children[1]
        module = self.module(file.path.parent / decl.target)
        if module is None:
            self.report(file, path_node, "BCP091", f'An error occurred reading file "{decl.target}": no such file')
            return
        if decl.body is None:
            return
        given: dict[str, Node] = {}
        for key, key_node, value in properties_of(decl.body):
            if key not in MODULE_KEYS:
                self.report(file, key_node, "BCP037", f'The property "{key}" is not allowed on a module')
            if key == "params" and value.type == "object":
                for name, name_node, _ in properties_of(value):
                    if name is None:
                        continue
                    given[name] = name_node
                    if name not in module.params:
                        self.report(file, name_node, "BCP037", f'The property "{name}" is not allowed: {decl.target} declares no such parameter (it declares {", ".join(sorted(module.params))})')
        for name, has_default in sorted(module.params.items()):
            if not has_default and name not in given:
                self.report(file, decl.body, "BCP035", f'The module "{decl.symbol}" is missing the required parameter "{name}" of {decl.target}')

    # -- values -----------------------------------------------------------------------------

    def check_value(self, file: BicepFile, node: Node, ref: TypeRef, where: str, top: bool = False, seen=()) -> None:
        """Judge a value against a type, as far as the value is a literal."""
        while node.type == "parenthesized_expression" and len(node.named_children) == 1:
            node = node.named_children[0]
        if node.type == "identifier" and node.text.decode() in file.variables and node.text.decode() not in seen:
            name = node.text.decode()
            return self.check_value(file, file.variables[name], ref, where, top, (*seen, name))
        kind = ref.node["$type"]
        if kind in ("AnyType", "ResourceFunctionType"):
            return
        # A conditional value: each branch must fit (`cond ? [ ... ] : []`).
        if node.type == "ternary_expression":
            for branch in node.named_children[1:]:
                if branch.type != "comment":
                    self.check_value(file, branch, ref, where, top, seen)
            return
        # concat(a, b, ...) of arrays: each argument is an array of the same items.
        if node.type == "call_expression" and kind == "ArrayType" and node.named_children[0].text.decode() == "concat":
            args = next((c for c in node.named_children if c.type == "arguments"), None)
            for arg in (args.named_children if args is not None else []):
                if arg.type != "comment":
                    self.check_value(file, arg, ref, where, top, seen)
            return
        if node.type == "object":
            if kind == "ObjectType":
                return self.check_object(file, node, ref, ref.node.get("properties", {}), ref.node.get("additionalProperties"), where, top, seen)
            if kind == "DiscriminatedObjectType":
                return self.check_discriminated(file, node, ref, where, top, seen)
            if kind == "UnionType":
                return  # a union of objects: the compiler narrows it, we do not
            return self.mismatch(file, node, ref, where, "object")
        if node.type == "array":
            if kind == "ArrayType":
                items = [c for c in node.named_children if c.type != "comment"]
                self.check_length(file, node, ref, where, len(items))
                for item in items:
                    self.check_value(file, item, ref.follow(ref.node["itemType"]), f"{where}[]", seen=seen)
                return
            if kind == "UnionType" and any(ref.follow(e).node["$type"] == "ArrayType" for e in ref.node["elements"]):
                return
            return self.mismatch(file, node, ref, where, "array")
        literal = self.literal(node)
        if literal is None:
            return  # an expression: accepted, as the compiler accepts what it cannot narrow
        self.check_literal(file, node, ref, where, literal)

    @staticmethod
    def literal(node: Node):
        """(kind, value) of a literal, or None."""
        if node.type == "string":
            text = literal_string(node)
            return None if text is None else ("string", text)
        if node.type in ("number", "integer"):
            return ("int", int(node.text.decode()))
        if node.type == "boolean":
            return ("bool", node.text.decode() == "true")
        if node.type == "unary_expression" and node.text.decode().lstrip("-").isdigit():
            return ("int", int(node.text.decode()))
        return None

    def check_literal(self, file: BicepFile, node: Node, ref: TypeRef, where: str, literal) -> None:
        kind, value = literal
        shown = f"'{value}'" if kind == "string" else str(value).lower()
        if self.accepts(ref, literal):
            if kind == "string":
                self.check_length(file, node, ref, where, len(value))
            elif kind == "int":
                lo, hi = ref.node.get("minValue"), ref.node.get("maxValue")
                if lo is not None and value < lo:
                    self.report(file, node, "BCP329", f'The property "{where}" must be at least {lo}, is {value}')
                if hi is not None and value > hi:
                    self.report(file, node, "BCP328", f'The property "{where}" must be at most {hi}, is {value}')
            return
        if kind == "string":
            near = [v for v in self.string_literals(ref) if v.lower() == value.lower()]
            if near:
                self.report(file, node, "BCP088", f'The property "{where}" expected a value of type "{describe(ref)}" but the provided value is of type "{shown}". Did you mean "\'{near[0]}\'"?')
                return
        self.mismatch(file, node, ref, where, shown)

    def accepts(self, ref: TypeRef, literal) -> bool:
        kind, value = literal
        node = ref.node
        match node["$type"]:
            case "AnyType":
                return True
            case "StringType":
                return kind == "string"
            case "IntegerType":
                return kind == "int"
            case "BooleanType":
                return kind == "bool"
            case "StringLiteralType":
                return kind == "string" and value == node["value"]
            case "UnionType":
                return any(self.accepts(ref.follow(e), literal) for e in node["elements"])
        return False

    def string_literals(self, ref: TypeRef) -> list[str]:
        if ref.node["$type"] == "StringLiteralType":
            return [ref.node["value"]]
        if ref.node["$type"] == "UnionType":
            return [v for e in ref.node["elements"] for v in self.string_literals(ref.follow(e))]
        return []

    def check_length(self, file: BicepFile, node: Node, ref: TypeRef, where: str, length: int) -> None:
        lo, hi = ref.node.get("minLength"), ref.node.get("maxLength")
        if lo is not None and length < lo:
            self.report(file, node, "BCP333", f'The property "{where}" must have a length of at least {lo}, has {length}')
        if hi is not None and length > hi:
            self.report(file, node, "BCP332", f'The property "{where}" must have a length of at most {hi}, has {length}')

    def mismatch(self, file: BicepFile, node: Node, ref: TypeRef, where: str, shown: str) -> None:
        self.report(file, node, "BCP036", f'The property "{where}" expected a value of type "{describe(ref)}" but the provided value is of type "{shown}"')

    def check_object(self, file, node, ref, properties: dict, additional, where, top, seen) -> None:
        by_lower = {name.lower(): name for name in properties}
        present = set()
        type_name = ref.node.get("name") or where
        for key, key_node, value in properties_of(node):
            if key is None:  # a computed key: only additionalProperties can take it
                if additional is not None:
                    self.check_value(file, value, ref.follow(additional), f"{where}.*", seen=seen)
                continue
            if top and key in BICEP_KEYWORDS:
                continue
            name = by_lower.get(key.lower())
            path = key if top else f"{where}.{key}"
            if name is None:
                if additional is not None:
                    self.check_value(file, value, ref.follow(additional), path, seen=seen)
                    continue
                allowed = ", ".join(f'"{n}"' for n in sorted(properties, key=str.lower) if not properties[n].get("flags", 0) & FLAG_READ_ONLY)
                self.report(file, key_node, "BCP037", f'The property "{key}" is not allowed on objects of type "{type_name}". Permissible properties include {allowed}')
                continue
            present.add(name)
            spec = properties[name]
            if spec.get("flags", 0) & FLAG_READ_ONLY:
                self.report(file, key_node, "BCP073", f'The property "{key}" is read-only. Expressions cannot be assigned to read-only properties')
                continue
            self.check_value(file, value, ref.follow(spec["type"]), path, seen=seen)
        missing = [n for n, spec in properties.items() if spec.get("flags", 0) & FLAG_REQUIRED and n not in present]
        if missing:
            self.report(file, node, "BCP035", f'The specified "object" declaration is missing the following required properties: {", ".join(sorted(missing))} (in "{type_name}")')

    def check_discriminated(self, file, node, ref, where, top, seen) -> None:
        spec = ref.node
        discriminator = spec["discriminator"]
        chosen = None
        for key, key_node, value in properties_of(node):
            if key == discriminator:
                chosen = (self.resolved_literal(file, value), value)
        base = spec.get("baseProperties", {})
        if chosen is None or chosen[0] is None:
            return  # the variant cannot be told before deploy time
        elements = spec["elements"]
        if chosen[0] not in elements:
            allowed = " | ".join(f"'{e}'" for e in elements)
            self.report(file, chosen[1], "BCP036", f'The property "{discriminator}" expected a value of type "{allowed}" but the provided value is of type "\'{chosen[0]}\'"')
            return
        variant = ref.follow(elements[chosen[0]])
        self.check_object(file, node, variant, {**base, **variant.node.get("properties", {})}, variant.node.get("additionalProperties"), where, top, seen)

    def resolved_literal(self, file: BicepFile, node: Node) -> str | None:
        if node.type == "identifier" and node.text.decode() in file.variables:
            node = file.variables[node.text.decode()]
        literal = self.literal(node)
        return literal[1] if literal and literal[0] == "string" else None

    # -- reads: symbol.properties.x, module.outputs.y ---------------------------------------

    def check_reads(self, file: BicepFile, node: Node) -> None:
        for child in node.named_children:
            if child.type in ("member_expression", "subscript_expression"):
                self.check_read(file, child)
            self.check_reads(file, child)

    def check_read(self, file: BicepFile, node: Node) -> None:
        if node.parent is not None and node.parent.type in ("member_expression", "subscript_expression") \
                and node.parent.named_children[0] == node:
            return  # only the outermost access of a chain
        steps: list[tuple[str | None, Node]] = []
        current = node
        while current.type in ("member_expression", "subscript_expression"):
            inner, last = current.named_children[0], current.named_children[-1]
            steps.append((last.text.decode() if current.type == "member_expression" else None, last))
            current = inner
        if current.type != "identifier":
            return
        decl = file.declarations.get(current.text.decode())
        if decl is None:
            return
        steps.reverse()
        if decl.collection:
            if not steps or steps[0][0] is not None:
                return
            steps = steps[1:]
        if not steps:
            return
        if decl.kind == "module":
            self.check_module_read(file, decl, steps)
        else:
            self.check_resource_read(file, decl, steps)

    def check_module_read(self, file: BicepFile, decl: Declaration, steps) -> None:
        first, first_node = steps[0]
        if first == "name":
            return
        if first != "outputs":
            self.report(file, first_node, "BCP053", f'The type "module" does not contain property "{first}". Available properties include "name", "outputs"')
            return
        if len(steps) < 2 or steps[1][0] is None:
            return
        module = self.module(file.path.parent / decl.target)
        if module is not None and steps[1][0] not in module.outputs:
            self.report(file, steps[1][1], "BCP053", f'The type "outputs" does not contain property "{steps[1][0]}": {decl.target} outputs {", ".join(sorted(module.outputs)) or "nothing"}')

    def check_resource_read(self, file: BicepFile, decl: Declaration, steps) -> None:
        ref = self.types.body(decl.target)
        path = decl.symbol
        for name, step_node in steps:
            if ref is None:
                return
            node = ref.node
            kind = node["$type"]
            if name is None:  # an index
                if kind == "ArrayType":
                    ref = ref.follow(node["itemType"])
                elif kind == "ObjectType" and node.get("additionalProperties"):
                    ref = ref.follow(node["additionalProperties"])
                else:
                    return
                path += "[]"
                continue
            if kind != "ObjectType":
                return  # unions, discriminated objects, any: not narrowed here
            properties = node.get("properties", {})
            match = {n.lower(): n for n in properties}.get(name.lower())
            if match is None:
                if node.get("additionalProperties"):
                    ref = ref.follow(node["additionalProperties"])
                    path += f".{name}"
                    continue
                self.report(file, step_node, "BCP053", f'The type "{node.get("name") or path}" does not contain property "{name}" (read as {path}.{name})')
                return
            if properties[match].get("flags", 0) & FLAG_WRITE_ONLY:
                self.report(file, step_node, "BCP077", f'The property "{name}" on type "{node.get("name")}" is write-only and cannot be read')
                return
            ref = ref.follow(properties[match]["type"])
            path += f".{name}"


# ---------------------------------------------------------------------------------------------
# Vendoring


def used_targets(files: list[Path]) -> set[str]:
    """Every resource type@version the files declare."""
    return {d.target for f in files for d in load(f).declarations.values() if d.kind == "resource"}


def subset(nodes: list, roots: list[int]) -> list:
    """The nodes reachable from `roots`, in their original order, references renumbered."""
    keep: set[int] = set()
    pending = list(roots)
    while pending:
        index = pending.pop()
        if index in keep:
            continue
        keep.add(index)
        pending.extend(int(r[2:]) for r in re.findall(r'"\$ref": ?"(#/\d+)"', json.dumps(nodes[index])))
    order = sorted(keep)
    renumber = {old: new for new, old in enumerate(order)}

    def rewrite(value):
        if isinstance(value, dict):
            if set(value) == {"$ref"}:
                return {"$ref": f"#/{renumber[int(value['$ref'][2:])]}"}
            # Descriptions are documentation the check never reads: dropped to keep the files small.
            return {k: rewrite(v) for k, v in value.items() if not (k == "description" and isinstance(v, str))}
        if isinstance(value, list):
            return [rewrite(v) for v in value]
        return value

    return [rewrite(nodes[i]) for i in order]


def vendor(source: Path, files: list[Path]) -> int:
    wanted = {normalise(t) for t in used_targets(files)}
    full = Types(source)
    missing = sorted(wanted - set(full.resources))
    if missing:
        print(f"no type definition in {source} for: {', '.join(missing)}")
        return 1
    by_file: dict[Path, list[int]] = {}
    for key in sorted(wanted):
        by_file.setdefault(full.files[key], []).append(full.resources[key].index)
    for old in VENDORED.glob("*.json"):
        old.unlink()
    for path, roots in sorted(by_file.items()):
        nodes = subset(json.loads(path.read_text()), roots)
        out = VENDORED / path.name
        out.write_text("[\n" + ",\n".join(json.dumps(n, separators=(",", ":")) for n in nodes) + "\n]\n")
        print(f"{out}: {len(roots)} resource types, {len(nodes)} type nodes, {out.stat().st_size} bytes")
    return 0


# ---------------------------------------------------------------------------------------------


def bicep_files(targets: list[Path]) -> list[Path]:
    return sorted({f for t in targets for f in ([t] if t.is_file() else t.rglob("*.bicep"))})


def check(files: list[Path], types_dir: Path) -> Checker:
    checker = Checker(Types(types_dir))
    for path in files:
        checker.check_file(load(path))
    return checker


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--types", type=Path, default=VENDORED, help="folder of type files")
    parser.add_argument("--vendor", type=Path, metavar="SOURCE_DIR", help="rewrite the vendored subset from SOURCE_DIR")
    parser.add_argument("targets", nargs="*", type=Path)
    args = parser.parse_args()
    files = bicep_files(args.targets or [Path("infra")])
    if not files:
        print("no .bicep files found")
        return 1
    if args.vendor:
        return vendor(args.vendor, files)
    checker = check(files, args.types)
    for finding in checker.findings:
        print(finding)
    counts = checker.counts
    print(f"{len(files)} files: {counts['resource']} resources, {counts['existing']} existing, {counts['module']} modules "
          f"checked against {len(checker.types.resources)} resource types; {len(checker.findings)} findings")
    return 1 if checker.findings else 0


if __name__ == "__main__":
    sys.exit(main())
