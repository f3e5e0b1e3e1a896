"""Generate docs/crd-reference.md from the CRD's schema: `python -m mlmodel_operator.crddoc`.

The reference is derived, never written by hand; tests/unit/test_docs.py fails
when the committed file differs from what this produces. Its last section describes the
analysis template kinds, whose CRDs `templatecrds` makes from this one.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import yaml

from mlmodel_operator import templatecrds
from mlmodel_operator.analysis.templates import KINDS

ROOT = Path(__file__).resolve().parents[2]
CRD = ROOT / "crds" / "mlmodels.mlops.dev.yaml"
REFERENCE = ROOT / "docs" / "crd-reference.md"


def _type(schema: Mapping[str, Any]) -> str:
    if schema.get("x-kubernetes-int-or-string"):
        return "int or string"
    kind = str(schema.get("type", "object"))
    if kind == "array":
        return f"[]{_type(schema.get('items', {}))}"
    if kind == "object" and "additionalProperties" in schema:
        return f"map[string]{_type(schema['additionalProperties'])}"
    return kind


def _constraints(schema: Mapping[str, Any]) -> str:
    parts = []
    if "enum" in schema:
        parts.append("one of " + ", ".join(f"`{v}`" for v in schema["enum"]))
    if "default" in schema:
        parts.append(f"default `{json.dumps(schema['default'])}`")
    for key, label in (
        ("minimum", "above" if schema.get("exclusiveMinimum") else "min"),
        ("maximum", "below" if schema.get("exclusiveMaximum") else "max"),
        ("maxLength", "max length"),
        ("maxItems", "max items"),
        ("minItems", "min items"),
    ):
        if key in schema:
            parts.append(f"{label} {schema[key]}")
    for rule in schema.get("x-kubernetes-validations", ()):
        parts.append(f"rule: {rule['message']}")
    return "; ".join(parts)


def _rows(schema: Mapping[str, Any], path: str, required: set[str]) -> Iterator[str]:
    properties = schema.get("properties") or {}
    if schema.get("type") == "array":
        properties = (schema.get("items") or {}).get("properties") or {}
        required = set((schema.get("items") or {}).get("required") or ())
        path = f"{path}[]"
    for name, child in properties.items():
        field = f"{path}.{name}" if path else name
        description = " ".join(str(child.get("description", "")).split())
        notes = _constraints(child)
        text = " ".join(p for p in (description, f"({notes})" if notes else "") if p)
        mark = " (required)" if name in required else ""
        yield f"| `{field}` | {_type(child)}{mark} | {text.replace('|', '/')} |"
        yield from _rows(child, field, set(child.get("required") or ()))


def render(crd: Mapping[str, Any]) -> str:
    version = crd["spec"]["versions"][0]
    schema = version["schema"]["openAPIV3Schema"]
    names = crd["spec"]["names"]
    lines = [
        "# MLModel reference",
        "",
        "<!-- Generated from crds/mlmodels.mlops.dev.yaml by "
        "`python -m mlmodel_operator.crddoc`; do not edit. -->",
        "",
        f"`{crd['spec']['group']}/{version['name']}`, kind `{names['kind']}`, "
        f"short name `{names['shortNames'][0]}`, category `{names['categories'][0]}`.",
        "",
        " ".join(str(schema.get("description", "")).split()),
        "",
    ]
    for top in ("spec", "status"):
        section = schema["properties"][top]
        lines += [
            f"## {top}",
            "",
            " ".join(str(section.get("description", "")).split()),
            "",
            "| field | type | description |",
            "|---|---|---|",
            *_rows(section, top, set(section.get("required") or ())),
            "",
        ]
        rules = section.get("x-kubernetes-validations") or ()
        if rules:
            lines += [f"Rules across `{top}`:", ""]
            lines += [f"- {rule['message']}" for rule in rules]
            lines.append("")
    columns = version.get("additionalPrinterColumns") or ()
    lines += ["## kubectl get columns", "", "| column | from |", "|---|---|"]
    lines += [f"| {c['name']} | `{c['jsonPath']}` |" for c in columns]
    lines += ["", *_templates(crd)]
    return "\n".join(lines) + "\n"


def _templates(crd: Mapping[str, Any]) -> list[str]:
    """The analysis template kinds, whose spec is `spec.rollout.analysis` above (their
    CRDs are generated from this one by `templatecrds`)."""
    lines = ["## Analysis templates", ""]
    spec: Mapping[str, Any] = {}
    for kind in KINDS.values():
        template = templatecrds.build(crd, kind)
        names = template["spec"]["names"]
        schema = template["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
        spec = schema["properties"]["spec"]
        scope = "namespaced" if kind.namespaced else "cluster-scoped"
        lines += [
            f"### {names['kind']}",
            "",
            f"`{template['spec']['group']}/{template['spec']['versions'][0]['name']}`, "
            f"{scope}, short name `{names['shortNames'][0]}`, "
            f"category `{names['categories'][0]}` "
            f"(`crds/{templatecrds.file_of(kind).name}`).",
            "",
            " ".join(str(schema.get("description", "")).split()),
            "",
        ]
    lines += [
        "### Template spec",
        "",
        "Both kinds' `spec` has the fields of `spec.rollout.analysis` above, but "
        "`templateRef`, with the same descriptions and rules.",
        "",
    ]
    rules = spec.get("x-kubernetes-validations") or ()
    if rules:
        lines += ["Rules across `spec`:", ""]
        lines += [f"- {rule['message']}" for rule in rules]
    return lines


def main() -> int:
    REFERENCE.write_text(render(yaml.safe_load(CRD.read_text())))
    print(f"wrote {REFERENCE.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
