"""Checks KServe manifests field by field against KServe's own generated models (and the
Kubernetes client's, for the pod parts). Run as a script, in a process of its own: the
kserve package and tritonclient both define the protobuf package ``inference``, which
one process cannot load twice.

    python tests/kserve_fields.py < manifests.json    # prints the problems, one per line
"""

import json
import sys

import kserve
import kubernetes.client

KINDS = {"ServingRuntime": "V1alpha1ServingRuntime", "ClusterServingRuntime": "V1alpha1ClusterServingRuntime",
         "InferenceService": "V1beta1InferenceService"}
SCALARS = {"str": str, "int": int, "bool": bool, "float": (int, float)}


def problems(value, kind: str, path: str) -> list[str]:
    """What in ``value`` the generated model ``kind`` does not declare, or declares of another type."""
    if kind.startswith(("list[", "List[")):  # KServe's and the Kubernetes client's spellings
        if not isinstance(value, list):
            return [f"{path}: not a list"]
        return [p for i, item in enumerate(value) for p in problems(item, kind[5:-1], f"{path}[{i}]")]
    if kind.startswith(("dict(", "Dict[")):
        if not isinstance(value, dict):
            return [f"{path}: not a mapping"]
        inner = kind[5:-1].split(", ", 1)[1]
        return [p for key, item in value.items() for p in problems(item, inner, f"{path}.{key}")]
    if kind in SCALARS:
        ok = isinstance(value, SCALARS[kind]) and not (kind != "bool" and isinstance(value, bool))
        return [] if ok else [f"{path}: {value!r} is not {kind}"]
    if kind == "object":
        return []
    model = getattr(kserve, kind, None) or getattr(kubernetes.client, kind)
    if not isinstance(value, dict):
        return [f"{path}: not a mapping ({kind})"]
    fields = {json_key: attribute for attribute, json_key in model.attribute_map.items()}
    found = []
    for key, item in value.items():
        if key not in fields:
            found.append(f"{path}.{key}: {kind} has no such field")
        else:
            found += problems(item, model.openapi_types[fields[key]], f"{path}.{key}")
    return found


if __name__ == "__main__":
    for doc in json.load(sys.stdin):
        for problem in problems(doc, KINDS[doc["kind"]], doc["kind"]):
            print(problem)
