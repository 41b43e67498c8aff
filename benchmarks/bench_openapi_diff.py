"""Benchmark: diff of a ~5 MB OpenAPI spec pair (seeded, generated here), and the whole
``stability diff OLD NEW`` command on the same pair written to files.

Prints one self-describing JSON line (see _meta.envelope): what was measured, on what, and
how long it took. The budget is 5 s for the diff of a 5 MB pair on this project's 2-core
machines; exits 1 if a pair of at least that size missed it. ``stability diff`` (read, parse,
convert, diff, print; in a fresh process, imports included) is measured against the same budget.

    python benchmarks/bench_openapi_diff.py [--target-mb 5] [--repeats 3] [--seed 7]
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _meta import envelope  # also puts this checkout on sys.path

from stability_lib.contract.openapi_diff import count_levels, count_operations, diff_openapi
from stability_lib.contract.spec_source import parse_spec_bytes

BENCHMARK = "openapi_diff"  # stable key of the results file
QUICK_ARGS = ("--target-mb", "0.5", "--repeats", "1")  # smallest run, for run_all.py --quick
BUDGET_S = 5.0
BUDGET_MB = 5.0  # the pair size the budget is stated for
TYPES = ("string", "integer", "number", "boolean")
FORMATS = {
    "string": ("date-time", "uuid", "email", None),
    "integer": ("int32", "int64", None),
    "number": (None,),
    "boolean": (None,),
}


def _scalar(rng: random.Random) -> dict[str, Any]:
    t = rng.choice(TYPES)
    s: dict[str, Any] = {"type": t, "description": f"A {t} field. " * rng.randint(1, 4)}
    fmt = rng.choice(FORMATS[t])
    if fmt:
        s["format"] = fmt
    if t == "string" and rng.random() < 0.2:
        s["enum"] = [f"v{i}" for i in range(rng.randint(2, 6))]
    if t == "string" and rng.random() < 0.3:
        s["maxLength"] = rng.choice((64, 255, 1024))
    if t in ("integer", "number") and rng.random() < 0.3:
        s["minimum"] = 0
    if rng.random() < 0.1:
        s["nullable"] = True
    return s


def generate(target_bytes: int, seed: int) -> dict[str, Any]:
    """A spec of about ``target_bytes`` JSON: schemas that reference each other, CRUD paths over them."""
    rng = random.Random(seed)
    spec: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": "Generated", "version": "1.0.0"},
        "paths": {},
        "components": {"schemas": {}, "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}}},
        "security": [{"bearer": []}],
    }
    schemas = spec["components"]["schemas"]
    size = 0
    i = 0
    while size < target_bytes:
        name = f"Resource{i}"
        props: dict[str, Any] = {f"field{j}": _scalar(rng) for j in range(rng.randint(6, 20))}
        if i > 0:  # references to earlier schemas: nested objects, arrays of them, and a self reference
            props["parent"] = {"$ref": f"#/components/schemas/Resource{rng.randrange(i)}"}
            props["children"] = {"type": "array", "items": {"$ref": f"#/components/schemas/Resource{rng.randrange(i)}"}}
        props["self_link"] = {"$ref": f"#/components/schemas/{name}"}
        schemas[name] = {
            "type": "object",
            "required": sorted(rng.sample(sorted(props), k=min(3, len(props)))),
            "properties": props,
        }
        ref = {"$ref": f"#/components/schemas/{name}"}
        body = {"required": True, "content": {"application/json": {"schema": ref}}}
        ok = {"description": "ok", "content": {"application/json": {"schema": ref}}}
        page = {"type": "array", "items": ref}
        query = [
            {"name": "limit", "in": "query", "schema": {"type": "integer", "minimum": 1, "maximum": 500}},
            {"name": "cursor", "in": "query", "schema": {"type": "string"}},
        ]
        spec["paths"][f"/r{i}"] = {
            "get": {
                "parameters": query,
                "responses": {
                    "200": {"description": "ok", "content": {"application/json": {"schema": page}}},
                    "400": {"description": "bad"},
                },
            },
            "post": {"requestBody": body, "responses": {"201": ok, "422": {"description": "invalid"}}},
        }
        spec["paths"][f"/r{i}/{{id}}"] = {
            "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "get": {"responses": {"200": ok, "404": {"description": "not found"}}},
            "put": {"requestBody": body, "responses": {"200": ok}},
            "delete": {"responses": {"204": {"description": "gone"}}},
        }
        i += 1
        if i % 50 == 0:
            size = len(json.dumps(spec))
    return spec


def mutate(spec: dict[str, Any], seed: int) -> dict[str, Any]:
    """The candidate: a few breaking and many harmless edits."""
    rng = random.Random(seed + 1)
    new = copy.deepcopy(spec)
    schemas = new["components"]["schemas"]
    names = sorted(schemas)
    for name in rng.sample(names, k=max(1, len(names) // 50)):
        props = schemas[name]["properties"]
        victim = rng.choice(sorted(k for k in props if k.startswith("field")))
        del props[victim]
        schemas[name]["required"] = [r for r in schemas[name]["required"] if r != victim]
    for name in rng.sample(names, k=max(1, len(names) // 10)):
        schemas[name]["properties"]["added"] = {"type": "string"}
    for path in rng.sample(sorted(new["paths"]), k=max(1, len(new["paths"]) // 100)):
        del new["paths"][path]
    new["paths"]["/brand-new"] = {"get": {"responses": {"200": {"description": "ok"}}}}
    return new


def _time_diff_command(old_bytes: bytes, new_bytes: bytes, repeats: int) -> tuple[list[float], int]:
    """Wall time of ``stability diff OLD NEW`` as a user runs it (a new Python process each time)."""
    times = []
    exit_code = -1
    with tempfile.TemporaryDirectory() as folder:
        old_file, new_file = Path(folder) / "old.json", Path(folder) / "new.json"
        old_file.write_bytes(old_bytes)
        new_file.write_bytes(new_bytes)
        argv = [sys.executable, "-m", "stability_lib.cli", "diff", str(old_file), str(new_file)]
        for _ in range(repeats):
            t = time.perf_counter()
            proc = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
            times.append(time.perf_counter() - t)
            exit_code = proc.returncode
            if exit_code not in (0, 1):
                raise SystemExit(f"stability diff could not run: {proc.stderr.decode()[-300:]}")
    return times, exit_code


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target-mb", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()

    t0 = time.perf_counter()
    old = generate(int(args.target_mb * 1024 * 1024), args.seed)
    new = mutate(old, args.seed)
    generate_s = time.perf_counter() - t0
    old_bytes, new_bytes = json.dumps(old).encode(), json.dumps(new).encode()

    parse_times = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        parse_spec_bytes(old_bytes)
        parse_spec_bytes(new_bytes)
        parse_times.append(time.perf_counter() - t)

    diff_times = []
    changes: list[Any] = []
    for _ in range(args.repeats):
        t = time.perf_counter()
        changes = diff_openapi(old, new)
        diff_times.append(time.perf_counter() - t)

    command_times, command_exit = _time_diff_command(old_bytes, new_bytes, args.repeats)

    # A pair smaller than the budget's size says nothing about the budget: None, not True.
    slowest = max(*diff_times, *command_times)
    target_met = slowest < BUDGET_S if args.target_mb >= BUDGET_MB else None
    results = {
        "summary": (
            f"diff of a {len(old_bytes) / 2**20:.1f} MB pair {statistics.median(diff_times):.2f} s "
            f"(median of {args.repeats}), parse {statistics.median(parse_times):.2f} s; "
            f"`stability diff` on the files {statistics.median(command_times):.2f} s"
        ),
        "params": {"target_mb": args.target_mb, "repeats": args.repeats, "seed": args.seed},
        "spec": {
            "baseline_bytes": len(old_bytes),
            "candidate_bytes": len(new_bytes),
            "operations": count_operations(old),
            "schemas": len(old["components"]["schemas"]),
        },
        "timings_s": {
            "generate": round(generate_s, 3),
            "parse_both_median": round(statistics.median(parse_times), 3),
            "diff_median": round(statistics.median(diff_times), 3),
            "diff_min": round(min(diff_times), 3),
            "diff_max": round(max(diff_times), 3),
            # The whole command in a fresh process: start, imports, read, parse, diff, text output.
            "stability_diff_command_median": round(statistics.median(command_times), 3),
            "stability_diff_command_max": round(max(command_times), 3),
        },
        "stability_diff_exit_code": command_exit,  # 1: breaking changes found (the pair has some)
        "changes": count_levels(changes),
        "budget_s": BUDGET_S,
        "within_budget": slowest < BUDGET_S,
        "target": (
            f"diff of a {BUDGET_MB:g} MB pair, and `stability diff` on it, in under {BUDGET_S:g} s "
            "(slowest of the repeats)"
        ),
        "target_met": target_met,
    }
    print(json.dumps(envelope(BENCHMARK, results)))
    return 1 if target_met is False else 0


if __name__ == "__main__":
    raise SystemExit(main())
