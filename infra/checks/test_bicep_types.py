"""Tests of the type check (bicep_types.py): the project passes, and each kind of error the Bicep
compiler's type check would reject is caught when it is put into a copy of the project.

Each mutation copies infra/'s .bicep files to a temporary folder, replaces one piece of text in
one file, and asserts that the check reports the expected code there, naming the expected word.

Run: python3 infra/checks/test_bicep_types.py   (or python3 -m pytest on this file)
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import tempfile
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bicep_types  # noqa: E402

INFRA = Path(__file__).resolve().parent.parent


def findings_of(infra: Path) -> list[bicep_types.Finding]:
    return bicep_types.check(bicep_types.bicep_files([infra]), bicep_types.VENDORED).findings


def test_the_project_passes():
    findings = findings_of(INFRA)
    assert not findings, "the project has type-check findings:\n" + "\n".join(map(str, findings))


def test_every_declaration_is_checked():
    files = bicep_types.bicep_files([INFRA])
    checker = bicep_types.check(files, bicep_types.VENDORED)
    declared = sum(len(bicep_types.load(f).declarations) for f in files)
    assert sum(checker.counts.values()) == declared > 0, f"checked {checker.counts}, declared {declared}"
    assert checker.counts["existing"] >= 1 and checker.counts["module"] >= 1


def test_the_vendored_types_are_exactly_the_used_ones():
    """Size matters: nothing vendored that no declaration uses, nothing used that is missing."""
    used = {bicep_types.normalise(t) for t in bicep_types.used_targets(bicep_types.bicep_files([INFRA]))}
    vendored = set(bicep_types.Types(bicep_types.VENDORED).resources)
    assert used == vendored, f"used but not vendored: {sorted(used - vendored)}; vendored but unused: {sorted(vendored - used)}"


def test_the_vendored_files_are_self_contained():
    for path in bicep_types.VENDORED.glob("*.json"):
        nodes = json.loads(path.read_text())
        for ref in re.findall(r'"\$ref":"#/(\d+)"', path.read_text()):
            assert int(ref) < len(nodes), f"{path.name}: reference #/{ref} points past the end"


# ---------------------------------------------------------------------------------------------
# Mutations: (file under infra/, old text, new text, expected code, word the finding must name)

MUTATIONS = [
    # a misspelt property (BCP037), at every level
    ("modules/frontend.bicep", "    httpsOnly: true", "    httpOnly: true", "BCP037", "httpOnly"),
    ("modules/frontend.bicep", "      ftpsState: 'Disabled'", "      ftpState: 'Disabled'", "BCP037", "ftpState"),
    ("modules/network.bicep", "      privateEndpointNetworkPolicies: 'Disabled'", "      privateEndpointNetworkPolicy: 'Disabled'", "BCP037", "privateEndpointNetworkPolicy"),
    ("modules/backend-auth.bicep", "unauthenticatedClientAction: 'Return401'", "unauthenticatedAction: 'Return401'", "BCP037", "unauthenticatedAction"),
    ("modules/entra-app.bicep", "  appRoleAssignmentRequired: true", "  appRoleAssignmentsRequired: true", "BCP037", "appRoleAssignmentsRequired"),
    ("modules/registry.bicep", "    anonymousPullEnabled: false", "    anonymousPullEnable: false", "BCP037", "anonymousPullEnable"),
    # an invalid enum value (BCP036), and one that differs in case only (BCP088)
    # (only closed enums: where the type also admits any string, as for ftpsState, the compiler
    # accepts any string too, and test_security_props.py pins the value)
    ("modules/frontend.bicep", "    type: 'UserAssigned'", "    type: 'UserAssignedOnly'", "BCP036", "identity.type"),
    ("modules/backend-auth.bicep", "convention: 'NoProxy'", "convention: 'None'", "BCP036", "convention"),
    ("modules/backend-auth.bicep", "'Return401'", "'Return402'", "BCP036", "unauthenticatedClientAction"),
    ("modules/network.bicep", "      name: 'webServerFarms'\n", "      name: 42\n", "BCP036", "delegations[].name"),
    ("modules/keyvault.bicep", "      name: 'standard'", "      name: 'Standard'", "BCP088", "standard"),
    ("modules/app-gateway.bicep", "          port: 443", "          port: '443'", "BCP036", "port"),
    ("modules/app-gateway.bicep", "          pickHostNameFromBackendAddress: true", "          pickHostNameFromBackendAdress: true", "BCP037", "pickHostNameFromBackendAdress"),
    # inside `cond ? [...] : []` within concat(...): each branch and argument is checked
    ("modules/network.bicep", "          service: 'Microsoft.Web'\n        }\n      ]\n    }", "          servce: 'Microsoft.Web'\n        }\n      ]\n    }", "BCP037", "servce"),
    ("modules/backend-auth.bicep", "  name: 'authsettingsV2'", "  name: 'authSettingsV3'", "BCP036", "authSettingsV3"),
    # a literal of the wrong type
    ("modules/frontend.bicep", "    httpsOnly: true", "    httpsOnly: 'true'", "BCP036", "httpsOnly"),
    ("modules/monitoring.bicep", "retentionInDays: 30", "retentionInDays: 'thirty'", "BCP036", "retentionInDays"),
    # a bogus API version, an unknown resource type
    ("modules/frontend.bicep", "'Microsoft.Web/sites@2025-03-01'", "'Microsoft.Web/sites@2025-13-01'", "BCP081", "2025-13-01"),
    ("modules/monitoring.bicep", "Microsoft.OperationalInsights/workspaces@", "Microsoft.OperationalInsights/workspace@", "BCP081", "workspace@"),
    # a required property missing (BCP035), a read-only one set (BCP073)
    ("modules/identities.bicep", "  name: frontendIdentityName\n  location: location\n", "  name: frontendIdentityName\n", "BCP035", "location"),
    ("modules/plan.bicep", "    reserved: true\n", "    reserved: true\n    numberOfSites: 2\n", "BCP073", "numberOfSites"),
    # an existing resource may only be named
    ("modules/backend-auth.bicep", "existing = {\n  name: siteName\n", "existing = {\n  name: siteName\n  location: 'x'\n", "BCP037", "location"),
    # reads: a property an existing (or declared) resource does not have, a module output that does not exist
    ("modules/backend-open.bicep", "output defaultHostName string = site.properties.defaultHostName",
     "output defaultHostName string = site.properties.defaultHostname2", "BCP053", "defaultHostname2"),
    ("modules/network.bicep", "vnet.properties.subnets[0].id", "vnet.properties.subnets[0].subnetId", "BCP053", "subnetId"),
    ("main.bicep", "network.outputs.integrationSubnetId", "network.outputs.integrationSubnet", "BCP053", "integrationSubnet"),
    ("main.bicep", "entraApp.?outputs.identifierUri", "entraApp.?outputs.identifierUrl", "BCP053", "identifierUrl"),
    # module parameters: unknown, missing, and a missing module
    ("main.bicep", "    workspaceName: 'log-${resourceToken}'", "    workspaceNam: 'log-${resourceToken}'", "BCP037", "workspaceNam"),
    ("main.bicep", "    workspaceName: 'log-${resourceToken}'\n", "", "BCP035", "workspaceName"),
    ("main.bicep", "'modules/monitoring.bicep'", "'modules/monitor.bicep'", "BCP091", "monitor.bicep"),
]


def run_mutation(path: str, old: str, new: str, code: str, word: str) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "infra"
        shutil.copytree(INFRA, copy, ignore=lambda _dir, names: [n for n in names if n in ("checks", "scripts", "smoke")])
        target = copy / path
        text = target.read_text()
        assert old in text, f"stale mutation: {old!r} is not in {path}"
        target.write_text(text.replace(old, new, 1))
        findings = findings_of(copy)
        hits = [f for f in findings if f.code == code and word in f.message and f.path.resolve() == target.resolve()]
        assert hits, f"{path}: {old.strip()!r} -> {new.strip()!r} was not reported as {code} naming {word!r}; findings: {[str(f) for f in findings]}"


def make_mutation_test(path, old, new, code, word):
    def test():
        run_mutation(path, old, new, code, word)

    words = re.sub(r"[^a-z0-9]+", "_", f"{Path(path).stem} {code} {word}".lower()).strip("_")
    test.__name__ = f"test_mutation_{words}"
    return test


for _mutation in MUTATIONS:
    _test = make_mutation_test(*_mutation)
    while _test.__name__ in globals():
        _test.__name__ += "_"
    globals()[_test.__name__] = _test


def test_open_enums_take_any_string():
    """Where the type is 'A' | 'B' | string the compiler takes any string: so does the check."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "infra"
        shutil.copytree(INFRA, copy, ignore=lambda _dir, names: [n for n in names if n in ("checks", "scripts", "smoke")])
        target = copy / "modules/frontend.bicep"
        target.write_text(target.read_text().replace("ftpsState: 'Disabled'", "ftpsState: 'Off'", 1))
        assert not findings_of(copy), "ftpsState is 'AllAllowed' | 'FtpsOnly' | 'Disabled' | string"


def test_expressions_are_accepted():
    """What the check cannot evaluate is not an error: a parameter where an enum is expected."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "infra"
        shutil.copytree(INFRA, copy, ignore=lambda _dir, names: [n for n in names if n in ("checks", "scripts", "smoke")])
        target = copy / "modules/frontend.bicep"
        target.write_text(target.read_text().replace("ftpsState: 'Disabled'", "ftpsState: name", 1))
        assert not findings_of(copy), "a parameter in place of an enum literal must be accepted"


# ---------------------------------------------------------------------------------------------


def main() -> int:
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_") and callable(fn)]
    failed = 0
    for name, fn in tests:
        try:
            fn()
        except AssertionError as error:
            failed += 1
            print(f"FAIL {name}: {error}")
        except Exception:  # noqa: BLE001 - report every failure, then go on
            failed += 1
            print(f"FAIL {name}: crashed")
            traceback.print_exc()
        else:
            print(f"ok   {name}")
    print(f"{len(tests) - failed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
