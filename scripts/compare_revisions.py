"""Behaviour of two revisions of the package, compared: same inputs, same seed, same outputs.

A refactor must not change what the package computes. This script installs each revision
(a ``git worktree`` of it, built as a wheel into its own virtual environment that sees the
machine's packages, so torch and numpy are shared) and runs, in each:

1. ``tradeoffs mnist reproduce-linf --align`` -- step 1 of the l-inf attack over the 100
   published sources (900 aligned neighbours) and steps 2-3 at 0.3 and 0.4, compared with
   the released examples: the printed comparison lines must be identical;
2. ``tradeoffs toy all --small --seed 0 --n-jobs 1`` -- every toy table (CSV and JSON,
   timings removed) must be identical;
3. ``tradeoffs reproduce --quick`` -- ``results.json`` must be identical once run times and
   paths are removed (keys only the *after* revision writes are new outputs: listed, not
   failures);
4. ``--help`` of every command of the *before* revision must still answer in the *after*
   revision (flags may have been renamed, with the old spelling kept as an alias).

Run (about 10 minutes on 2 cores)::

    python scripts/compare_revisions.py --before 087ba65 --after HEAD \\
        --data ../shared/data --out /tmp/compare

It writes ``OUT/comparison.json`` and exits 1 if anything differs.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# Keys whose values legitimately differ between two runs of the same computation.
VOLATILE = re.compile(r"(seconds|time|elapsed|duration|wall|path|dir|command|cache|version"
                      r"|created|host|python|platform|digest)", re.I)


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    print("$", " ".join(cmd), flush=True)
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def install(rev: str, work: Path) -> Path:
    """Build ``rev`` into ``work/venv-<rev>``; return its ``bin`` folder."""
    src, venv = work / f"src-{rev}", work / f"venv-{rev}"
    if not src.exists():
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "--detach", str(src), rev],
                       check=True)
    if not (venv / "bin" / "tradeoffs").exists():
        subprocess.run([sys.executable, "-m", "venv", "--system-site-packages", str(venv)],
                       check=True)
        # A real (non-editable) install: the venv's copy is found before any editable
        # install of the machine's checkout, whose finder comes after the path search.
        subprocess.run([str(venv / "bin" / "pip"), "install", "-q", "--no-deps",
                        str(src)], check=True)
    return venv / "bin"


def commands(bin_: Path, env: dict, prefix: list[str] = ()) -> list[list[str]]:
    """Every (sub)command reachable from ``tradeoffs`` (read off the help texts)."""
    out = [list(prefix)]
    help_ = run([str(bin_ / "tradeoffs"), *prefix, "--help"], env=env).stdout
    block = re.search(r"positional arguments:\n(.*?)(\n\S|\Z)", help_, re.S)
    if not block:
        return out
    names = re.findall(r"^    (\S+)", block.group(1), re.M)
    for name in names:
        if name.startswith("{") or name.upper() == name:  # a choice list or a metavariable
            continue
        out += commands(bin_, env, [*prefix, name])
    return out


#: Keys dropped whole: the log of parallel training jobs (order and process ids vary).
VOLATILE_KEYS = {"training", "pid"}


def strip_volatile(obj: object) -> object:
    if isinstance(obj, dict):
        return {k: strip_volatile(v) for k, v in obj.items()
                if not VOLATILE.search(k) and k not in VOLATILE_KEYS}
    if isinstance(obj, list):
        return [strip_volatile(v) for v in obj]
    return obj


def linf_lines(stdout: str) -> list[str]:
    # Timings such as "(19.3 s, n_jobs=2)" differ between runs; the comparisons must not.
    return [re.sub(r"\([\d.]+ s\b[^)]*\)", "(...)", ln.strip()) for ln in stdout.splitlines()
            if re.search(r"identical|neighbour|aligned", ln)]


def tables(folder: Path) -> dict[str, object]:
    out: dict[str, object] = {}
    for f in sorted(folder.rglob("*")):
        rel = str(f.relative_to(folder))
        if f.suffix == ".csv":
            out[rel] = f.read_text()
        elif f.suffix == ".json" and f.name != "manifest.json":
            out[rel] = strip_volatile(json.loads(f.read_text()))
    return out


def run_revision(rev: str, work: Path, data: Path) -> dict:
    bin_ = install(rev, work)
    cache = Path(tempfile.mkdtemp(prefix=f"cache-{rev}-", dir=work))
    env = {**os.environ, "INVARIANCE_TRADEOFFS_DATA": str(data), "XDG_CACHE_HOME": str(cache),
           "MPLBACKEND": "Agg", "PYTHONPATH": ""}
    res: dict = {"rev": rev}
    out = work / f"out-{rev}"
    p = run([str(bin_ / "tradeoffs"), "mnist", "reproduce-linf", "--align", "--n-jobs", "2"],
            env=env)
    res["linf"] = {"rc": p.returncode, "lines": linf_lines(p.stdout), "stderr": p.stderr[-500:]}
    p = run([str(bin_ / "tradeoffs"), "toy", "all", "--small", "--seed", "0", "--n-jobs", "1",
             "--no-progress", "--out", str(out / "toy")], env=env)
    res["toy"] = {"rc": p.returncode, "tables": tables(out / "toy"), "stderr": p.stderr[-500:]}
    p = run([str(bin_ / "tradeoffs"), "reproduce", "--quick", "--no-progress", "--out",
             str(out / "reproduce")], env=env)
    results = out / "reproduce" / "results.json"
    res["reproduce"] = {"rc": p.returncode, "stderr": p.stderr[-500:], "results":
                        strip_volatile(json.loads(results.read_text()))
                        if results.exists() else None}
    res["commands"] = [" ".join(c) for c in commands(bin_, env)]
    res["_bin"], res["_env"] = str(bin_), env
    return res


def diff(a: object, b: object, where: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}/{k}: only in before" for k in a.keys() - b.keys()]
        out += [f"{where}/{k}: only in after" for k in b.keys() - a.keys()]
        for k in a.keys() & b.keys():
            out += diff(a[k], b[k], f"{where}/{k}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        pairs = enumerate(zip(a, b, strict=True))
        return [d for i, (x, y) in pairs for d in diff(x, y, f"{where}[{i}]")]
    return [] if a == b else [f"{where}: {str(a)[:80]!r} != {str(b)[:80]!r}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", required=True, help="git revision before the change")
    parser.add_argument("--after", default="HEAD", help="git revision after (default HEAD)")
    parser.add_argument("--data", required=True, type=Path,
                        help="data folder holding mnist/ and excessive-invariance/")
    parser.add_argument("--out", required=True, type=Path, help="work folder")
    args = parser.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    revs = [subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", r], check=True,
                           capture_output=True, text=True).stdout.strip()
            for r in (args.before, args.after)]
    before, after = (run_revision(r, args.out, args.data.resolve()) for r in revs)
    report: dict = {"before": revs[0], "after": revs[1]}
    for key in ("linf", "toy", "reproduce"):
        rcs = (before[key]["rc"], after[key]["rc"])
        diffs = diff({k: v for k, v in before[key].items() if k not in {"rc", "stderr"}},
                     {k: v for k, v in after[key].items() if k not in {"rc", "stderr"}})
        # A key only the new revision has is a new output (e.g. a new measurement), not a
        # changed one: listed, but behaviour counts as unchanged if all else is equal.
        added = [d for d in diffs if d.endswith(": only in after")]
        changed = [d for d in diffs if d not in added]
        report[key] = {"exit codes": rcs, "differences": changed, "added": added,
                       "identical": rcs == (0, 0) and not changed}
    report["linf"]["lines"] = after["linf"]["lines"]
    report["toy"]["n_tables"] = len(after["toy"]["tables"])
    # Every command of the old revision still answers --help in the new one.
    failing = []
    for cmd in before["commands"]:
        p = run([after["_bin"] + "/tradeoffs", *cmd.split(), "--help"], env=after["_env"])
        if p.returncode != 0:
            failing.append(cmd)
    report["commands"] = {"before": len(before["commands"]), "after": len(after["commands"]),
                          "old commands failing --help after": failing}
    (args.out / "comparison.json").write_text(json.dumps(report, indent=1))
    ok = all(report[k]["identical"] for k in ("linf", "toy", "reproduce")) and not failing
    for key in ("linf", "toy", "reproduce"):
        r = report[key]
        print(f"{key:10s} identical={r['identical']} exit codes={r['exit codes']} "
              f"differences={len(r['differences'])} added outputs={len(r['added'])}")
        for d in r["differences"][:10]:
            print("   ", d)
    print("l-inf:", *report["linf"]["lines"], sep="\n  ")
    print(f"commands: {len(before['commands'])} before, {len(after['commands'])} after; "
          f"old ones failing --help after: {failing or 'none'}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
