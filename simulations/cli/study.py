"""``tradeoffs study ...``: human labelling studies of invariance examples.

Commands::

    tradeoffs study create (--run RUN.npz | --published NAME|DIR) --participants P --out STUDY
    tradeoffs study serve STUDY [--host 127.0.0.1] [--port 8000]
    tradeoffs study results STUDY [--out DIR] [--json] [--min-check-accuracy 0.75]
    tradeoffs study export STUDY --format release|responses-csv|counts-csv|labelstudio --out PATH
    tradeoffs study import-labelstudio STUDY EXPORT.json
    tradeoffs study invite STUDY (--participant ID ... | --admin)

See docs/study.md.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path

from invariance_tradeoffs.simulations.cli.args import check_out_dir, check_out_file

__all__ = ["add_parser"]

#: Modules of the ``[study]`` extra, by the commands that need them.
_SERVER_MODULES = ("starlette", "uvicorn")
_STATS_MODULES = ("statsmodels",)


def _missing_extra(modules: tuple[str, ...]) -> str | None:
    import importlib.util

    missing = [m for m in modules if importlib.util.find_spec(m) is None]
    if not missing:
        return None
    return (f"this command needs {', '.join(missing)} from the [study] extra: "
            "pip install \"invariance-tradeoffs[study]\"")


def _needs(modules: tuple[str, ...], handler: Callable[[argparse.Namespace], int]
           ) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        why = _missing_extra(modules)
        if why:
            print(f"tradeoffs: error: {why}", file=sys.stderr)
            return 2
        return handler(args)
    return run


def _write_private(path: Path, text: str) -> None:
    """Write a file only the owner can read (it holds tokens); refuse to overwrite."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", newline="") as fh:
        fh.write(text)


def _links_text(rows: list[tuple[str, str, str, str]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["role", "participant", "token", "path"])
    w.writerows(rows)
    return buf.getvalue()


def _load_items(args: argparse.Namespace):
    from invariance_tradeoffs.simulations.study.design import items_from_published, items_from_run

    if args.run is not None:
        from invariance_tradeoffs.simulations.attacks.runs import load_run

        if not Path(args.run).is_file():
            raise FileNotFoundError(f"--run {args.run}: file not found")
        items, dropped = items_from_run(load_run(args.run), str(args.run))
        if dropped:
            print(f"{dropped} sources of {args.run} have no invariance example (the attack "
                  "found none) and are not in the study")
        return items
    from invariance_tradeoffs.simulations.data.published import load_published_examples

    spec = args.published
    folder = Path(spec)
    if folder.is_dir():
        sets = load_published_examples(folder, data_dir=args.data_dir)
        if len(sets) != 1:
            raise ValueError(f"--published {spec} holds {len(sets)} labelled sets "
                             f"({', '.join(sets) or 'none'}); name one with --published "
                             f"NAME --published-dir {spec}")
        return items_from_published(next(iter(sets.values())))
    sets = load_published_examples(args.published_dir, data_dir=args.data_dir)
    if spec not in sets:
        why = f" ({sets.missing[spec]})" if spec in sets.missing else ""
        raise ValueError(f"--published {spec!r}: no such set in {sets.folder}{why}; "
                         f"found: {', '.join(sets) or 'none'}")
    return items_from_published(sets[spec])


def _cmd_create(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from invariance_tradeoffs.simulations.study.design import Design, create_study, select_items

    out = check_out_file(args.out, "--out", must_not_exist=True)
    links = check_out_file(args.links or out.with_name(out.name + ".links.csv"), "--links",
                           must_not_exist=True)
    k = args.labels_per_image
    if k is None:
        k = min(3, args.participants) if args.participants >= 1 else 1
    design = Design(n_participants=args.participants, labels_per_image=k,
                    attention_rate=args.attention_rate, seed=args.seed)
    items = select_items(_load_items(args), args.items, args.seed)
    if args.name:
        items = replace(items, name=args.name)
    test = None
    if design.attention_rate > 0:
        from invariance_tradeoffs.simulations.data.mnist import load_mnist

        test = load_mnist("test", args.data_dir)
    study = create_study(out, items, design, test, title=args.title)
    _write_private(links, _links_text(study.links()))
    loads = sorted({len(s) for s in study.plan.sequences})
    print(f"study {out}: {items.n} examples from {items.origin}; {design.labels_per_image} "
          f"labels each from {design.n_participants} participants "
          f"({'-'.join(map(str, loads))} trials each, attention checks included: "
          f"{study.plan.check_indices.size} check images); seed {design.seed}")
    print(f"images are shown as 8-bit grey levels (largest change from the given images: "
          f"{items.quantisation:.4f}); labelled-set name: {items.name}")
    print(f"invite and admin links (tokens are shown only now; keep them private): {links}")
    for role, pid, _, path in study.links():
        print(f"  {role} {pid}: {path}".replace(" :", ":"))
    print(f"next: tradeoffs study serve {out}")
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from invariance_tradeoffs.simulations.study.app import serve

    if not Path(args.study).is_file():
        raise FileNotFoundError(f"study file {args.study} not found")
    if not 0 <= args.port <= 65535:
        raise ValueError(f"--port must be in 0..65535, got {args.port}")
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: --host {args.host} exposes the study beyond this machine; put it "
              "behind HTTPS (tokens travel in the URLs)", file=sys.stderr)

    def announce(url: str) -> None:
        print(f"serving on {url} (study: {args.study}; invite links are {url}p/<token>, "
              f"admin {url}admin/<token>; Ctrl-C to stop)", flush=True)

    serve(args.study, args.host, args.port, announce=announce)
    return 0


def _results(args: argparse.Namespace):
    from invariance_tradeoffs.simulations.study import data as study_data
    from invariance_tradeoffs.simulations.study import store
    from invariance_tradeoffs.simulations.study.results import ExclusionRule, summarise

    rule = ExclusionRule(args.min_check_accuracy)
    conn = store.connect(args.study)
    return conn, summarise(study_data.read_study(conn), rule)


def _cmd_results(args: argparse.Namespace) -> int:
    from invariance_tradeoffs.simulations.study.exports import (
        counts_csv,
        export_release,
        responses_csv,
        write_file,
    )
    from invariance_tradeoffs.simulations.study.results import report

    conn, res = _results(args)
    try:
        text = report(res)
        if args.json:
            print(json.dumps(res.to_dict(), indent=1))
        elif args.out is None:
            print(text, end="")
        if args.out is None:
            return 0
        out = check_out_dir(args.out)
        written = [write_file(out / name, lambda fh, t=body: fh.write(t.encode()))
                   for name, body in (("REPORT.md", text),
                                      ("results.json", json.dumps(res.to_dict(), indent=1)),
                                      ("counts.csv", counts_csv(res)),
                                      ("responses.csv", responses_csv(res)))]
        try:
            rel = export_release(conn, res, out / "release", args.name, partial=args.partial)
            written += list(rel.files)
            note = (f"release format: {rel.n_written} examples"
                    + (f" ({rel.n_left_out} without a label left out)" if rel.n_left_out
                       else "") + f"; load with --published-dir {out / 'release'}")
        except ValueError as exc:
            note = f"release format not written: {exc}"
        if not args.json:
            summary = text.split("## Participants")[0]
            print(summary.rstrip())
            print()
        print(note, file=sys.stderr if args.json else sys.stdout)
        for path in written:
            print(f"wrote {path}", file=sys.stderr if args.json else sys.stdout)
    finally:
        conn.close()
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from invariance_tradeoffs.simulations.study.exports import (
        LABELSTUDIO_CONFIG,
        counts_csv,
        export_release,
        labelstudio_tasks,
        responses_csv,
        write_file,
    )

    if args.format == "labelstudio":
        from invariance_tradeoffs.simulations.study import store

        conn = store.connect(args.study)
        try:
            tasks = labelstudio_tasks(conn)
        finally:
            conn.close()
        out = check_out_file(args.out)
        write_file(out, lambda fh: fh.write(json.dumps(tasks).encode()))
        config = out.with_suffix(".config.xml")
        write_file(config, lambda fh: fh.write(LABELSTUDIO_CONFIG.encode()))
        print(f"{len(tasks)} Label Studio tasks -> {out}; labelling config -> {config}")
        return 0
    conn, res = _results(args)
    try:
        if args.format == "release":
            check_out_dir(args.out)
            rel = export_release(conn, res, args.out, args.name, partial=args.partial)
            print(f"{rel.n_written} labelled examples (majority labels of kept participants)"
                  + (f", {rel.n_left_out} without a label left out" if rel.n_left_out
                     else "") + ":")
            for path in rel.files:
                print(f"  {path}")
            print(f"load them with: tradeoffs mnist published --published-dir {args.out}")
        else:
            text = responses_csv(res) if args.format == "responses-csv" else counts_csv(res)
            write_file(check_out_file(args.out), lambda fh: fh.write(text.encode()))
            print(f"{args.format} -> {args.out}")
    finally:
        conn.close()
    return 0


def _cmd_import_labelstudio(args: argparse.Namespace) -> int:
    from invariance_tradeoffs.simulations.study import store
    from invariance_tradeoffs.simulations.study.exports import import_labelstudio

    conn = store.connect(args.study)
    try:
        rep = import_labelstudio(conn, args.export)
    finally:
        conn.close()
    print(f"{args.export}: {rep.added} answers added from {rep.annotators} annotators "
          f"({rep.already_present} already in the study, {rep.cancelled} skipped tasks "
          "left out)")
    return 0


def _cmd_invite(args: argparse.Namespace) -> int:
    from invariance_tradeoffs.simulations.study import store

    if not args.participant and not args.admin:
        raise ValueError("name --participant ID [ID ...] and/or --admin")
    links = Path(args.links) if args.links else None
    if links is not None and links.exists():
        raise ValueError(f"--links {links} already exists; choose another")
    conn = store.connect(args.study)
    try:
        rows = [("participant", str(p), t, f"/p/{t}")
                for p, t in store.reissue_tokens(conn, args.participant or []).items()]
        if args.admin:
            token = store.reissue_admin_token(conn)
            rows.append(("admin", "", token, f"/admin/{token}"))
    finally:
        conn.close()
    if links is not None:
        _write_private(links, _links_text(rows))
    print("new links (the old ones no longer work; answers are kept):")
    for role, pid, _, path in rows:
        print(f"  {role} {pid}: {path}".replace(" :", ":"))
    return 0


def _add_label_options(p: argparse.ArgumentParser) -> None:
    """Options of the commands that compute labels: exclusion rule, release-format name."""
    p.add_argument("--min-check-accuracy", type=float, default=0.75, metavar="X",
                   help="exclusion rule: keep participants who labelled at least this share "
                   "of their answered attention checks correctly (default: 0.75)")
    p.add_argument("--name", default=None, help="labelled-set name in the release format, "
                   "e.g. linf/study_eps03 (default: chosen at create)")
    p.add_argument("--partial", action="store_true", help="release format: write the "
                   "labelled examples even when some have no label yet")


def _on_study(sub: argparse._SubParsersAction, name: str, func: Callable, help: str,
              description: str) -> argparse.ArgumentParser:
    """A subcommand acting on an existing study file (its first argument, STUDY)."""
    p = sub.add_parser(name, help=help, description=description)
    p.add_argument("study", metavar="STUDY", help="the study file")
    p.set_defaults(func=func)
    return p


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    from invariance_tradeoffs.simulations.cli.mnist import add_data_args

    parser = subparsers.add_parser(
        "study", help="human labelling studies of invariance examples",
        description="Create, serve and analyse a human labelling study of invariance "
        "examples (see docs/study.md).")
    parser.set_defaults(_parser=parser)
    sub = parser.add_subparsers(dest="study_command", metavar="SUBCOMMAND")

    p = sub.add_parser(
        "create", help="create a study file from an attack run or a published set",
        description="Create a study file (SQLite) holding the images, the plan (who labels "
        "which image, in which seeded order, with attention checks from clean MNIST test "
        "images) and hashed invite tokens; write the invite and admin links to a private "
        "CSV file.")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="FILE", help="an attack run (.npz)")
    source.add_argument("--published", metavar="NAME|DIR",
                        help="a published set by name (e.g. linf/automated_eps03, found via "
                        "--published-dir) or a folder in the release format holding one set")
    p.add_argument("--participants", type=int, required=True, metavar="P",
                   help="number of invited participants (one invite link each)")
    p.add_argument("--labels-per-image", type=int, default=None, metavar="K",
                   help="labels per example, from K distinct participants (default: 3, or "
                   "--participants if fewer)")
    p.add_argument("--attention-rate", type=float, default=0.1, metavar="R",
                   help="share of each participant's trials that are attention checks "
                   "(default: 0.1; 0 for none)")
    p.add_argument("--items", default=None, metavar="SPEC",
                   help="examples to include, by position in the run/set: 'A:B', "
                   "'random:N' (with --seed) or 'i,j,k' (default: all)")
    p.add_argument("--seed", type=int, default=0,
                   help="seed of the assignment, the checks and the orders (default: 0)")
    p.add_argument("--name", default=None, metavar="NAME",
                   help="name of the labelled set in the release format, e.g. "
                   "linf/study_eps03 (default: from the run or set)")
    p.add_argument("--title", default=None, help="title on the admin page and the report")
    p.add_argument("--out", required=True, metavar="STUDY", help="the study file to create")
    p.add_argument("--links", default=None, metavar="FILE",
                   help="where the invite links go (default: STUDY.links.csv)")
    add_data_args(p)
    p.set_defaults(func=_cmd_create)

    p = _on_study(
        sub, "serve", _needs(_SERVER_MODULES, _cmd_serve),
        help="serve a study to its participants",
        description="Serve the study (Starlette + uvicorn) on 127.0.0.1 by default. "
        "Answers are committed before the next image is served; stopping and restarting "
        "loses nothing and every participant resumes where they were.")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on "
                   "(default: 127.0.0.1)")
    p.add_argument("--port", type=int, default=8000, help="port (default: 8000; 0: any free)")

    p = _on_study(
        sub, "results", _needs(_STATS_MODULES, _cmd_results),
        help="counts, majority labels, agreement, kappa, attention checks",
        description="Report the study's results (Markdown, or JSON with --json); with --out "
        "also write REPORT.md, results.json, counts.csv, responses.csv and the labelled "
        "examples in the release format (release/).")
    p.add_argument("--out", default=None, metavar="DIR", help="write the files here")
    p.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    _add_label_options(p)

    p = _on_study(
        sub, "export", _needs(_STATS_MODULES, _cmd_export),
        help="export labels (release format, CSV) or tasks for Label Studio",
        description="release: <name>.npy + <name>_labels.npy (majority labels) + "
        "<name>_indexs.npy under --out, loadable with --published-dir; responses-csv / "
        "counts-csv: one file; labelstudio: tasks JSON (images inline) and its labelling "
        "config (.config.xml beside it).")
    p.add_argument("--format", required=True,
                   choices=["release", "responses-csv", "counts-csv", "labelstudio"])
    p.add_argument("--out", required=True, metavar="PATH",
                   help="folder (release) or file (the others)")
    _add_label_options(p)

    p = _on_study(
        sub, "import-labelstudio", _cmd_import_labelstudio,
        help="read a Label Studio JSON export back into the study",
        description="Add the annotations of a Label Studio JSON export of the study's "
        "tasks (tradeoffs study export --format labelstudio) as answers; each annotator "
        "becomes a participant; importing the same export twice adds nothing.")
    p.add_argument("export", metavar="EXPORT", help="Label Studio's JSON export")

    p = _on_study(
        sub, "invite", _cmd_invite, help="issue new invite links (or a new admin link)",
        description="Replace participants' invite tokens (the old link stops working, the "
        "browser claim is released, answers are kept) or the admin token.")
    p.add_argument("--participant", type=int, nargs="+", metavar="ID",
                   help="participant ids (as in the links file)")
    p.add_argument("--admin", action="store_true", help="issue a new admin token")
    p.add_argument("--links", default=None, metavar="FILE",
                   help="also write the new links to this (new) file")
