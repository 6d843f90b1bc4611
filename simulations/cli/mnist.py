"""``tradeoffs mnist ...``: MNIST data, the authors' release, attacks and evaluation.

Commands::

    tradeoffs mnist download [--data-dir DIR] [--mnist-url URL] [--release-url URL]
    tradeoffs mnist published [--published-dir DIR] [--data-dir DIR]
    tradeoffs mnist reproduce-linf [--eps 0.3 0.4] [--align] [--n-jobs N]
    tradeoffs mnist judges [--judges knn abs proxy ensemble] [--json FILE]
    tradeoffs mnist attack linf|l0 ...        (see invariance_tradeoffs.simulations.cli.attack)
    tradeoffs mnist margins [--out DIR] [--n-ti N] [--n-test N] [--no-train-separation]
    tradeoffs mnist evaluate --model NAME ...
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import numpy as np

from invariance_tradeoffs.simulations.attacks.l0.judges import JUDGE_NAMES
from invariance_tradeoffs.simulations.cli import attack
from invariance_tradeoffs.simulations.cli.args import (
    add_data_args,
    add_deprecated_alias,
    add_jobs,
    add_out,
    add_progress,
    add_scheduler,
    add_seed,
    add_threads,
    float_in,
    int_in,
)

__all__ = ["add_parser"]


def _cmd_download(args: argparse.Namespace) -> int:
    from invariance_tradeoffs.simulations.data.mnist import download_mnist
    from invariance_tradeoffs.simulations.data.release import (
        CITATION,
        LICENCE,
        RELEASE_FILES,
        fetch_release,
    )

    progress = not args.no_progress
    folder = download_mnist(args.data_dir, url=args.mnist_url, progress=progress)
    print(f"MNIST: 4 files verified (MD5 of the IDX content) in {folder}")
    report = fetch_release(args.data_dir, url=args.release_url, download=True,
                           progress=progress)
    print(f"authors' release: {len(report.present) + len(report.fetched)} of "
          f"{len(RELEASE_FILES)} files verified (SHA256) in {report.folder} "
          f"({len(report.fetched)} downloaded now)")
    for relpath, why in report.failed.items():
        print(f"  missing {relpath}: {why}")
    print()
    print(LICENCE)
    print("MNIST: Yann LeCun, Corinna Cortes and Christopher J.C. Burges, CC BY-SA 3.0.")
    print("Please cite:")
    print(CITATION)
    return 0 if report.ok else 1


def _cmd_published(args: argparse.Namespace) -> int:
    from invariance_tradeoffs.simulations.data.published import load_published_examples

    sets = load_published_examples(args.published_dir, data_dir=args.data_dir)
    print(f"release folder: {sets.folder} (from the {sets.origin})")
    print(
        f"{'set':24s} {'n':>4s} {'norm':>5s} {'radius':>6s} {'human changed':>14s} "
        f"{'max dist':>9s} {'violations':>10s}"
    )
    for name, s in sets.items():
        radius = "-" if s.radius is None else f"{s.radius:g}"
        print(
            f"{name:24s} {s.n:4d} {s.norm or '?':>5s} {radius:>6s} "
            f"{s.human_changed.mean():14.2%} {s.distortion.max():9.4g} {len(s.violations):10d}"
        )
    for name, why in sets.missing.items():
        print(f"{name:24s} MISSING: {why}")
    return 0


def _cmd_reproduce(args: argparse.Namespace) -> int:
    import time

    from invariance_tradeoffs.simulations.attacks.alignment import NeighbourIndex, align_neighbours
    from invariance_tradeoffs.simulations.attacks.linf import (
        check_radius,
        compare_with_published,
        examples_from_neighbours,
        project_linf,
    )
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.data.published import (
        load_npy,
        load_published_examples,
        published_indices,
        published_neighbours,
    )

    radii = [check_radius(e) for e in args.eps]
    sets = load_published_examples(args.published_dir, data_dir=args.data_dir)
    test = load_mnist("test", args.data_dir)
    idx = published_indices(args.published_dir)
    nns, classes, grids = published_neighbours(args.published_dir)
    sources, labels = test.images[idx], test.labels[idx]
    origin = "published all_nns.npy"
    if args.align:
        train = load_mnist("train", args.data_dir)
        start = time.perf_counter()
        ours = align_neighbours(
            sources, labels, index=NeighbourIndex(train.images, train.labels), n_jobs=args.n_jobs,
            scheduler=args.scheduler)
        took = time.perf_counter() - start
        same = int(np.all(ours.neighbours == nns, axis=(2, 3)).sum())
        same_t = int(np.all(ours.transforms == grids, axis=2).sum())
        print(
            f"step 1 on {len(idx)} sources ({took:.1f} s, n_jobs={args.n_jobs}): aligned "
            f"neighbours identical to all_nns.npy: {same} of {nns.shape[0] * nns.shape[1]}; "
            f"transforms identical to all_grids_nns.npy: {same_t}"
        )
        nns, classes, origin = ours.neighbours, ours.classes, "step 1 (this run)"
    print(f"steps 2-3 from the aligned neighbours of {origin}:")
    for eps in radii:
        res = examples_from_neighbours(sources, labels, nns, classes, eps)
        match = [
            s for s in sets.values()
            if s.name.startswith("linf/automated") and s.radius is not None
            and abs(s.radius - eps) < 1e-9
        ]  # fmt: skip
        if not match:
            print(f"  eps={eps:g}: no published automated set at this radius")
            continue
        pset = match[0]
        cands = project_linf(res.sources[:, None], nns / 255.0, eps)
        rep = compare_with_published(
            res.examples,
            load_npy(pset.files[0]),
            targets=res.targets,
            candidates=cands,
            candidate_classes=classes,
        )
        print(
            f"  eps={eps:g} vs {pset.name}: identical {rep['identical']:.0f}/{rep['n']:.0f}; "
            f"pixels differing {rep['pixels_differing']:.2%}; mean |diff| "
            f"{rep['mean_abs_diff']:.3f} grey levels (max {rep['max_abs_diff']:.0f}); "
            f"same (inferred) target {rep['same_target']:.0f}/{rep['n']:.0f}"
        )
    return 0


def _cmd_judges(args: argparse.Namespace) -> int:
    import json
    import time

    from invariance_tradeoffs.simulations.attacks.l0.judges import (
        MeanJudge,
        MemoJudge,
        build_judge,
    )
    from invariance_tradeoffs.simulations.attacks.runs import load_run
    from invariance_tradeoffs.simulations.data.mnist import load_mnist
    from invariance_tradeoffs.simulations.data.published import load_published_examples
    from invariance_tradeoffs.simulations.evaluation.judge_validation import (
        judge_run,
        run_table,
        save_verdict_grid,
        validate_judges,
        validation_table,
    )
    from invariance_tradeoffs.simulations.io import atomic_write, to_jsonable

    for path in args.runs or []:  # before any training: a wrong path fails at once
        if not Path(path).is_file():
            raise FileNotFoundError(f"--runs {path}: no such run file")
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    sets = load_published_examples(args.published_dir, data_dir=args.data_dir)
    train = load_mnist("train", args.data_dir)
    opts = {"abs_config": args.abs_config, "proxy_config": args.proxy,
            "cache_dir": args.cache_dir, "progress": not args.no_progress}
    built: dict = {}
    for name in ("knn", "abs", "proxy"):
        if name in args.judges or "ensemble" in args.judges:
            start = time.perf_counter()
            built[name] = MemoJudge(build_judge(name, train.images, train.labels, **opts))
            print(f"judge {name}: {built[name]!r} ready in {time.perf_counter() - start:.1f} s")
    judges = {n: built[n] for n in args.judges if n != "ensemble"}
    if "ensemble" in args.judges:
        judges["ensemble"] = MeanJudge({n: built[n] for n in ("knn", "abs", "proxy")})
    result = validate_judges(judges, sets)
    print(f"published sets: {', '.join(sets)} (from {sets.folder})"
          + "".join(f"; missing {k}" for k in sets.missing))
    print(validation_table(result))
    judged_runs = []
    for path in args.runs or []:
        run = load_run(path)
        judged = judge_run(judges, run)
        grid = save_verdict_grid(Path(path).with_suffix(".judges.png"), run, judged["judges"],
                                 title=f"{Path(path).stem}: source | example; judges' labels")
        # folder/stem: runs of the same attack from different folders keep apart
        judged_runs.append((f"{Path(path).parent.name}/{Path(path).stem}", run, judged))
        print(f"verdict grid of {path} -> {grid}")
    if judged_runs:
        print(run_table(judged_runs))
    if args.json:
        result["runs"] = {name: judged for name, _, judged in judged_runs}
        out = {**result, "judge_repr": {k: repr(v) for k, v in judges.items()},
               "options": {k: v for k, v in opts.items() if k != "progress"},
               "missing_sets": sets.missing}
        atomic_write(args.json, lambda p: Path(p).write_text(json.dumps(to_jsonable(out),
                                                                       indent=1)))
        print(f"full result -> {args.json}")
    return 0


def _cmd_margins(args: argparse.Namespace) -> int:
    from invariance_tradeoffs.simulations.cli.args import check_out_dir
    from invariance_tradeoffs.simulations.margins.report import margins_table, run_margins

    out = check_out_dir(args.out)
    res = run_margins(out, data_dir=args.data_dir, published_dir=args.published_dir,
                      n_ti=args.n_ti, n_test=args.n_test,
                      train_separation=not args.no_train_separation,
                      progress=not args.no_progress)
    print(margins_table(res))
    for name, h in res.get("human_ceilings", {}).items():
        print(f"human ceiling {name} (radius {h['radius']:g}): {h['ceiling']}")
    for name, by in res.get("crossing", {}).items():
        print(f"{name}: examples beyond their source's nearest other-class training image: "
              + ", ".join(f"{m} {t['beyond']}/{t['n']}" for m, t in by.items()))
    print(f"arrays, margins.json and margins.png in {out}")
    return 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "mnist",
        help="MNIST data, the published invariance examples and the invariance attacks",
        description="MNIST data, the authors' published invariance examples and the "
        "model-free invariance attacks (Tramer et al., ICML 2020).",
    )
    parser.set_defaults(_parser=parser)
    sub = parser.add_subparsers(dest="mnist_command", metavar="SUBCOMMAND")

    p = sub.add_parser(
        "download",
        help="download and verify MNIST and the authors' release (examples, human labels, "
        "aligned neighbours)",
        description="Fetch what is missing of MNIST (verified by the MD5 of the IDX "
        "content) and of the authors' release ftramer/Excessive-Invariance at a pinned "
        "commit (verified by SHA256), into --data-dir or $INVARIANCE_TRADEOFFS_DATA or the "
        "per-user cache; print where they are, the licence and the citation. Exit 1 when "
        "a file could not be fetched.",
    )
    add_data_args(p, published=False)
    p.add_argument("--mnist-url", metavar="URL", default=None,
                   help="MNIST mirror to use (default: $INVARIANCE_TRADEOFFS_MNIST_URL, then "
                   "the public mirrors)")
    p.add_argument("--release-url", metavar="URL", default=None,
                   help="base URL of the release (default: $INVARIANCE_TRADEOFFS_RELEASE_URL, "
                   "then raw.githubusercontent.com at the pinned commit)")
    add_progress(p)
    p.set_defaults(func=_cmd_download)

    p = sub.add_parser("published", help="summarise the authors' released invariance examples")
    add_data_args(p)
    p.set_defaults(func=_cmd_published)

    p = sub.add_parser(
        "reproduce-linf",
        help="compare the l-inf attack with the authors' released examples",
        description="Run steps 2-3 of the l-inf attack on the published aligned neighbours "
        "(or, with --align, on this package's step 1 over the 100 published sources) and "
        "compare with the released automated examples at each radius.",
    )
    p.add_argument("--eps", type=float_in(0, 1, low_open=True), nargs="+", default=[0.3, 0.4],
                   help="radii in (0, 1] (default: 0.3 0.4)")
    p.add_argument("--align", action="store_true", help="also run step 1 (about a minute)")
    add_jobs(p, what="worker processes of step 1")
    add_scheduler(p)
    add_data_args(p)
    p.set_defaults(func=_cmd_reproduce)

    p = sub.add_parser(
        "judges",
        help="validate the judges (k-NN, ABS VAEs, proxy, ensemble) against the human "
        "labels of every published set",
        description="For every judge and every published human-labelled set found: "
        "agreement with the human labels overall, on label-changed and on unchanged "
        "examples, and the reject rate (estimates with 95% Clopper-Pearson intervals). "
        "Judges are fitted on MNIST training data only (trained and cached when missing).")
    p.add_argument("--judges", nargs="+", choices=JUDGE_NAMES, default=list(JUDGE_NAMES),
                   metavar="NAME", help="judges to validate, of "
                   f"{', '.join(JUDGE_NAMES)} (default: all)")
    attack.add_judge_args(p, what=None)
    add_threads(p)
    p.add_argument("--runs", nargs="+", metavar="RUN.npz", default=None,
                   help="attack runs (.npz of `mnist attack`) to judge: per run, the judged "
                   "label-change rate under every judge (a table) and a verdict grid "
                   "RUN.judges.png")
    p.add_argument("--json", metavar="FILE", default=None,
                   help="also write the full result (intervals, every label) as JSON")
    add_data_args(p)
    add_progress(p)
    p.set_defaults(func=_cmd_judges)

    attack.add_parser(sub)

    p = sub.add_parser(
        "margins",
        help="upper bounds on MNIST's oracle margin from the data: exact nearest "
        "other-class training images, 1-NN accuracy, separation",
        description="For every MNIST test image, the exact distance to the nearest training "
        "image of each class under l0 (binarised at 128), l1, l2 and l-inf, and the "
        "transformation-invariant l2 (775 rotations and shifts) for the first --n-ti test "
        "images; the nearest other-class distance is an upper bound on the oracle margin "
        "(if the labels are right). Writes nearest_test.npz, nearest_train.npz, "
        "ti_test_N.npz (resumable parts), margins.json and margins.png to --out.",
    )
    add_out(p, default="margins", help="output folder (resumes there)")
    p.add_argument("--n-ti", type=int_in(0, 10000), default=1000, metavar="N",
                   help="first N test images for the transformation-invariant l2 (about "
                   "0.2-0.5 s each; 0: skip; default: 1000)")
    p.add_argument("--n-test", type=int_in(1, 10000), default=10000, metavar="N",
                   help="first N test images for l0/l1/l2/l-inf (default: all 10000)")
    p.add_argument("--no-train-separation", action="store_true",
                   help="skip the 60000 training images (train-train separation; about six "
                   "times the test images' cost)")
    add_data_args(p)
    add_progress(p)
    p.set_defaults(func=_cmd_margins)

    # evaluate (robust models, certification, agreement): see the block at the end.
    add_evaluate_parser(sub)


# =====================================================================================
# `tradeoffs mnist evaluate` -- robust models, certification and agreement with human
# labels. Owned by simulations/models/zoo.py and simulations/evaluation/; keys in docs/mnist.md.
# =====================================================================================
def _is_model_file(spec: str) -> bool:
    """Whether ``--model SPEC`` names a file (else a zoo name); a missing file is an error
    that says so, not "unknown model"."""
    if Path(spec).suffix not in (".pt", ".npz") and "/" not in spec and os.sep not in spec:
        return False
    if not Path(spec).is_file():
        raise FileNotFoundError(f"--model {spec}: no such model file (a .pt/.npz written by "
                                "the zoo, or a registered zoo name)")
    return True


def add_evaluate_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``mnist evaluate`` on the ``mnist`` group's subparsers."""
    p = sub.add_parser(
        "evaluate",
        help="agreement with human labels, provably-wrong counts, ceilings and robust "
        "accuracy of zoo models on the published invariance examples",
        description="For every model and every published set found in --published-dir: "
        "agreement with the human labels (overall, label-changed, unchanged), the "
        "provably-wrong count, the ceiling, and clean / PGD / certified robust accuracy on "
        "the sources at the set's radius.",
    )
    p.add_argument(
        "--model",
        action="append",
        required=True,
        metavar="NAME",
        help="zoo model name (see `tradeoffs mnist evaluate --help`, models.zoo.CONFIGS) or a "
        "saved model "
        "file (.pt/.npz); repeat for several models",
    )
    add_data_args(p)
    p.add_argument(
        "--cache-dir",
        metavar="DIR",
        default=None,
        help="model cache (default: <per-user cache>/models)",
    )
    p.add_argument(
        "--train", action="store_true", help="train models missing from the cache (default: error)"
    )
    p.add_argument(
        "--n-test", type=int_in(0, 10000), default=0, metavar="N",
        help="also report clean/PGD/certified accuracy on the first N MNIST test images "
        "(0..10000; default: 0)")
    p.add_argument("--eps", type=float_in(0, 1, low_open=True), nargs="+",
                   default=[0.1, 0.2, 0.3, 0.4],
                   help="l-inf radii in (0, 1] for the --n-test report (default: 0.1 0.2 0.3 0.4)")
    p.add_argument("--pgd-steps", type=int_in(1, 10000), default=40,
                   help="PGD steps (default: 40)")
    p.add_argument("--pgd-restarts", type=int_in(1, 1000), default=10,
                   help="PGD random restarts (default: 10)")
    add_deprecated_alias(p, "--restarts", "--pgd-restarts", "pgd_restarts",
                         type=int_in(1, 1000))
    p.add_argument("--no-pgd", action="store_true", help="skip the PGD attack")
    p.add_argument("--autoattack", type=int_in(0, 10000), default=0, metavar="N",
                   help="also run AutoAttack (standard ensemble, the leaderboards' upper "
                   "bound) on the first N sources of each l-inf set and of the --n-test "
                   "images (needs torchattacks; about 0.3-0.9 s per robust image and radius "
                   "on one core; default 0: off)")
    add_seed(p, what="the PGD random starts and AutoAttack")
    add_threads(p)
    add_scheduler(p)
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    add_progress(p)
    p.set_defaults(func=_cmd_evaluate)


def _cmd_evaluate(args: argparse.Namespace) -> int:
    import json

    from invariance_tradeoffs.simulations.data.published import load_published_examples
    from invariance_tradeoffs.simulations.evaluation.agreement import (
        AutoAttackSettings,
        PGDSettings,
        evaluate_models,
        summary_table,
    )
    from invariance_tradeoffs.simulations.models.zoo import get_config, load_or_train, load_saved

    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    for spec in args.model:  # before any data is read: a bad name fails at once
        if not _is_model_file(spec):
            get_config(spec)
    autoattack = None
    if args.autoattack:
        from invariance_tradeoffs.simulations.attacks.autoattack import require_torchattacks

        require_torchattacks()  # before hours of work, not after
        autoattack = AutoAttackSettings(n=args.autoattack, seed=args.seed)
    sets = load_published_examples(args.published_dir, data_dir=args.data_dir)
    models = {}
    for spec in args.model:
        if _is_model_file(spec):
            trained = load_saved(spec)
        else:
            trained = load_or_train(
                spec,
                data_dir=args.data_dir,
                cache_dir=args.cache_dir,
                train_if_missing=args.train,
                progress=not args.no_progress,
            )
        models[spec] = trained.model
    pgd = (
        None
        if args.no_pgd
        else PGDSettings(steps=args.pgd_steps, restarts=args.pgd_restarts, seed=args.seed)
    )
    test_images = test_labels = None
    if args.n_test:
        from invariance_tradeoffs.simulations.data.mnist import load_mnist

        test = load_mnist("test", args.data_dir)
        test_images, test_labels = test.images[: args.n_test], test.labels[: args.n_test]
    result = evaluate_models(
        models,
        sets,
        pgd=pgd,
        test_images=test_images,
        test_labels=test_labels,
        test_eps=tuple(args.eps) if args.n_test else (),
        autoattack=autoattack,
        scheduler=args.scheduler,
    )
    result["published_dir"] = str(sets.folder)
    result["missing_sets"] = sets.missing
    print(json.dumps(result, indent=2) if args.json else summary_table(result))
    return 0
