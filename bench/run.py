"""Run every benchmark and write BENCHMARKS.md and bench-results/results.json.

Each bench/<area>_<name>.py prints one JSON object as its last line of output.
Preferred shape: {"name": ..., "figures": [{"name", "value", "unit", "baseline",
"baseline_name", "ratio", "target", "ok"}...], "notes": "..."}; any other object
is reported as its flat key/value pairs.
"""
from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def machine() -> dict:
    mem = 0
    try:
        mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError):
        pass
    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "cores": os.cpu_count(), "memory_gib": round(mem / 2**30, 1),
            "python": platform.python_version(), "os": platform.platform()}


def run_one(path: Path, timeout: float) -> dict:
    t0 = time.monotonic()
    try:
        r = subprocess.run([sys.executable, str(path)], capture_output=True, text=True, timeout=timeout, cwd=ROOT)
    except subprocess.TimeoutExpired:
        return {"name": path.stem, "error": f"timed out after {timeout:.0f} s"}
    took = time.monotonic() - t0
    lines = [ln for ln in r.stdout.strip().splitlines() if ln.strip().startswith("{")]
    if r.returncode or not lines:
        return {"name": path.stem, "error": f"exit {r.returncode}: {(r.stderr or r.stdout)[-800:]}"}
    try:
        out = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        return {"name": path.stem, "error": f"last line is not JSON: {e}"}
    out.setdefault("name", path.stem)
    out["wall_s"] = round(took, 1)
    return out


def _rows(result: dict) -> list[tuple]:
    if "error" in result:
        return [(result["name"], "ERROR", result["error"].replace("\n", " ")[:300], "", "", "", "")]
    figs = result.get("figures")
    rows = []
    if isinstance(figs, list):
        for f in figs:
            ratio = f.get("ratio")
            rows.append((result["name"], f.get("name", ""), _fmt(f.get("value"), f.get("unit")),
                         _fmt(f.get("baseline"), f.get("unit")) + (f" ({f['baseline_name']})" if f.get("baseline_name") else ""),
                         "" if ratio is None else f"{ratio:.2f}×", f.get("target", ""),
                         {True: "yes", False: "NO"}.get(f.get("ok"), "")))
    else:
        for k, v in result.items():
            if k not in ("name", "wall_s", "run_at"):
                rows.append((result["name"], k, _fmt(v, None), "", "", "", ""))
    return rows


def _fmt(v, unit) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        v = f"{v:,.3g}" if abs(v) < 100 else f"{v:,.0f}"
    return f"{v} {unit}" if unit else str(v)


def main(argv: list[str]) -> int:
    only = set(argv)
    files = sorted(p for p in (ROOT / "bench").glob("*_*.py") if not p.name.startswith("_"))
    if only:
        files = [p for p in files if p.stem in only]
    when = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    results = []
    for p in files:
        print(f">> {p.stem}", flush=True)
        res = run_one(p, timeout=float(os.environ.get("ASKUE_BENCH_TIMEOUT", "1800")))
        res["run_at"] = when
        print(json.dumps(res, ensure_ascii=False)[:400], flush=True)
        results.append(res)
    info = machine()
    out_dir = ROOT / "bench-results"
    out_dir.mkdir(exist_ok=True)
    if only and (out_dir / "results.json").exists():
        # `make bench BENCH=name`: the other benchmarks keep their last results (and their date)
        fresh = {r["name"] for r in results}
        kept = [r for r in json.loads((out_dir / "results.json").read_text())["results"] if r["name"] not in fresh]
        results = sorted(kept + results, key=lambda r: r["name"])
    (out_dir / "results.json").write_text(json.dumps({"when": when, "machine": info, "results": results},
                                                     ensure_ascii=False, indent=2))
    lines = ["# Benchmarks", "", f"Run {when} by `make bench` on: {info['cpu']}, {info['cores']} cores, "
             f"{info['memory_gib']} GiB, Python {info['python']}.", "",
             "Each figure is measured next to its baseline in the same run; the ratio is figure / baseline.", "",
             "| benchmark | figure | value | baseline | ratio | target | met |", "|---|---|---|---|---|---|---|"]
    for res in results:
        lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in _rows(res)]
    for res in results:
        if res.get("notes"):
            earlier = f" (run {res['run_at']})" if res.get("run_at", when) != when else ""
            lines += ["", f"**{res['name']}**{earlier}: {res['notes']}"]
    (ROOT / "BENCHMARKS.md").write_text("\n".join(lines) + "\n")
    print(f"wrote BENCHMARKS.md and {out_dir / 'results.json'}")
    return 1 if any("error" in r for r in results) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
