"""Wall time of the README's main command, from an empty cache and with cached models.

A new user's first run: nothing in the cache, the data fetched from the network. Here the
network is a mirror on 127.0.0.1 serving the files of a local data folder (the only
download source reachable), so the run exercises the real download code. The script

1. builds that mirror (MNIST under ``mnist/``, the authors' release at its repository
   paths) and points ``INVARIANCE_TRADEOFFS_MNIST_URL`` / ``_RELEASE_URL`` at it, with an
   empty ``XDG_CACHE_HOME`` and no ``INVARIANCE_TRADEOFFS_DATA``;
2. times ``tradeoffs reproduce --out OUT/cold`` (everything: downloads, training, the
   attack, evaluations, figures, REPORT.md);
3. times ``tradeoffs reproduce --out OUT/warm`` (models cached; a new output folder, so
   every stage is recomputed);
4. times, in the same run, one epoch of standard training of the undefended network on
   one core -- the baseline the two wall times are divided by, so the ratios compare
   across machines.

Run: ``python benchmarks/main_run.py --data ../shared/data [--out results/bench/main_run]``
(``--extra ARGS`` passes options to both ``tradeoffs reproduce`` calls).
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args: object) -> None:
        pass


def _mirror(data: Path, root: Path) -> None:
    """Lay ``data`` (mnist/ + excessive-invariance/) out as the download sources are."""
    from invariance_tradeoffs.simulations.data.release import RELEASE_FILES, find_release

    (root / "mnist").mkdir(parents=True)
    for f in (data / "mnist").glob("*.gz"):
        (root / "mnist" / f.name).symlink_to(f.resolve())
    rel = find_release(data)
    for relpath, path in rel.present.items():
        dest = root / relpath
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(path.resolve())
    missing = [p for p in RELEASE_FILES if p not in rel.present]
    if missing:
        print(f"(the mirror lacks {len(missing)} release files: {', '.join(missing)}; the "
              "run reports those sets as missing)")


def _baseline_epoch(data: Path) -> float:
    """Seconds of one epoch of the undefended configuration's training, one thread."""
    from dataclasses import replace

    import torch

    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.models.zoo import get_config, train

    torch.set_num_threads(1)
    split = load_mnist("train", data)
    cfg = replace(get_config("undefended"), epochs=1)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        train(cfg, split.images, split.labels, cache_dir=tmp)
        return time.perf_counter() - start


def _run(cmd: list[str], env: dict) -> float:
    print("$", " ".join(shlex.quote(c) for c in cmd), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, env=env, check=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, type=Path,
                        help="folder holding mnist/ and excessive-invariance/ (served)")
    parser.add_argument("--out", type=Path, default=Path("results/bench/main_run"))
    parser.add_argument("--extra", default="", help="extra options for tradeoffs reproduce")
    args = parser.parse_args(argv)
    if args.out.exists():
        shutil.rmtree(args.out)
    args.out.mkdir(parents=True)
    work = Path(tempfile.mkdtemp(prefix="main-run-"))
    try:
        _mirror(args.data.resolve(), work / "mirror")
        handler = functools.partial(_Quiet, directory=str(work / "mirror"))
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        env = {k: v for k, v in os.environ.items() if k != "INVARIANCE_TRADEOFFS_DATA"}
        env.update(XDG_CACHE_HOME=str(work / "cache"), MPLBACKEND="Agg",
                   INVARIANCE_TRADEOFFS_MNIST_URL=url + "mnist/",
                   INVARIANCE_TRADEOFFS_RELEASE_URL=url)
        cmd = [sys.executable, "-m", "invariance_tradeoffs.simulations", "reproduce",
               *shlex.split(args.extra)]
        load = os.getloadavg()[0]
        cold = _run([*cmd, "--out", str(args.out / "cold")], env)
        warm = _run([*cmd, "--out", str(args.out / "warm")], env)
        server.shutdown()
        server.server_close()
        base = _baseline_epoch(args.data)
        stages = {k: json.loads((args.out / k / "results.json").read_text())["seconds"]
                  for k in ("cold", "warm")}
    finally:
        shutil.rmtree(work, ignore_errors=True)
    result = {"cold_seconds": round(cold, 1), "warm_seconds": round(warm, 1),
              "baseline_epoch_seconds": round(base, 2),
              "cold_over_baseline": round(cold / base, 1),
              "warm_over_baseline": round(warm / base, 1),
              "load_average_before": load, "cpu_count": os.cpu_count(),
              "extra": args.extra, "stages": stages}
    (args.out / "main_run.json").write_text(json.dumps(result, indent=1))
    print(f"empty cache: {cold / 60:.1f} min ({cold / base:.1f} x one standard epoch); "
          f"cached models: {warm:.0f} s ({warm / base:.1f} x); baseline epoch {base:.1f} s; "
          f"load average before {load:.2f}")
    for k, v in stages["cold"].items():
        print(f"  cold {k:28s} {v:8.1f} s   warm {stages['warm'].get(k, 0):8.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
