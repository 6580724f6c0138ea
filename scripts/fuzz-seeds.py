#!/usr/bin/env python3
"""Seeds for the request-path fuzzer (fuzz/http_api_fuzz.cc), made from the OpenAPI document: one
input per route, method and token that the route admits, with a body built from the request
schema (enum, default and example values where the document gives them) and each documented query
parameter set. Usage: fuzz-seeds.py OPENAPI_JSON OUT_DIR"""

import json
import os
import sys

METHODS = ["GET", "POST", "PATCH", "DELETE", "PUT"]
NONE, OPERATOR, TENANT, NODE, FORGED = range(5)
NODE_NAME = "dev-hgx01-k00-n00"
# Bodies the server accepts, beside the schema's sample (which it may refuse): mutations of both.
VALID = {"/api/v1/jobs": {"name": "seed", "resources": {"gpus": 1}, "time_limit": 600, "command": ["sleep", "1"]},
         "/api/v1/agents/{node}/heartbeat": {"address": "10.0.0.1", "ended": [], "running": []},
         "/api/v1/nodes/{name}/drain": {"reason": "seed"},
         "/api/v1/tenants/{name}": {"borrow_limit": 8}}
SAMPLES = {"id": "1", "name": NODE_NAME, "node": NODE_NAME, "state": "pending", "tenant": "lab-a", "queue": "batch",
           "after": "0", "limit": "10", "history": "true", "fields": "id,name", "known": "1", "wait_ms": "0"}


def resolve(doc, schema):
    while "$ref" in schema:
        node = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


def sample(doc, schema, depth=0):
    schema = resolve(doc, schema)
    for key in ("example", "default"):
        if key in schema:
            return schema[key]
    if "enum" in schema:
        return schema["enum"][0]
    for key in ("oneOf", "anyOf", "allOf"):
        if key in schema:
            return sample(doc, schema[key][0], depth + 1)
    kind = schema.get("type", "object")
    if isinstance(kind, list):
        kind = [k for k in kind if k != "null"][0]
    if depth > 6:
        return None
    if kind == "object":
        props = schema.get("properties", {})
        if not props and isinstance(schema.get("additionalProperties"), dict):
            return {"h100-sxm": sample(doc, schema["additionalProperties"], depth + 1)}
        return {k: sample(doc, v, depth + 1) for k, v in props.items()}
    if kind == "array":
        return [sample(doc, schema.get("items", {}), depth + 1)]
    return {"string": "x", "integer": 1, "number": 1.5, "boolean": True}.get(kind)


def main():
    doc = json.load(open(sys.argv[1]))
    out = sys.argv[2]
    os.makedirs(out, exist_ok=True)
    n = 0
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            if method.upper() not in METHODS:
                continue
            params = [p for p in op.get("parameters", []) if p.get("in") == "query"]
            target = path
            for name, value in SAMPLES.items():
                target = target.replace("{" + name + "}", value)
            query = "&".join(f"{p['name']}={SAMPLES.get(p['name'], '1')}" for p in params)
            tokens = [NODE] if "/agents/" in path else [OPERATOR, TENANT] if path.startswith("/api/v1") else [NONE]
            bodies = [("", "")]
            content = op.get("requestBody", {}).get("content", {})
            for ctype, media in content.items():
                if ctype == "application/json":
                    bodies.append((ctype, json.dumps(sample(doc, media.get("schema", {})))))
                    bodies.append((ctype, json.dumps(VALID.get(path, {}))))
                elif ctype == "application/yaml":
                    bodies.append((ctype, "name: seed\nresources: {gpus: 1}\ntime_limit: 600\ncommand: [sleep, '1']\n"))
                elif ctype == "text/x-shellscript":
                    bodies.append((ctype, "#!/bin/bash\n#SBATCH --job-name=seed\n#SBATCH -N 1 --gpus-per-node=1\n"
                                          "#SBATCH --time=10:00\nsrun hostname\n"))
            for token in tokens:
                for ctype, body in bodies:
                    head = f"{target}{'?' + query if query else ''}\n"
                    if ctype:
                        head += f"Content-Type: {ctype}\n"
                    data = bytes([token, METHODS.index(method.upper())]) + (head + "\n" + body).encode()
                    with open(os.path.join(out, f"seed-{n:03d}"), "wb") as f:
                        f.write(data)
                    n += 1
    print(f"fuzz-seeds: {n} seeds from {sys.argv[1]}")


if __name__ == "__main__":
    main()
