"""Run every benchmark module and write ``benches/results.json``.

``python -m benches`` runs them all; ``python -m benches decode batch`` runs
the named modules only.
"""

from __future__ import annotations

import importlib
import json
import pkgutil
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    names = argv or sorted(
        m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_")
    )
    results = []
    for name in names:
        module = importlib.import_module(f"benches.{name}")
        print(f"== {name}", flush=True)
        for rec in module.run():
            print(
                f"   {rec['name']:<32} ours {rec['ours']:>14.6g} {rec['unit']:<18}"
                f" {rec['baseline_name']} {rec['baseline']:.6g}  ratio {rec['ratio']:.3g}",
                flush=True,
            )
            results.append(rec)
    out = HERE / "results.json"
    if argv and out.exists():
        # A partial run updates its own records and keeps the others.
        kept = [
            r for r in json.loads(out.read_text()) if r["name"] not in {r["name"] for r in results}
        ]
        results = kept + results
    out.write_text(json.dumps(results, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
