"""``tradeoffs mnist attack linf|l0``: model-free invariance attacks over MNIST test images.

Both attacks share the batch runner (:func:`run_command`, built on
:func:`invariance_tradeoffs.simulations.attacks.runs.run_attack`): the sources are chosen
with ``--indices``, processed in batches of ``--batch-size`` whose results are written as
they finish, so an interrupted run resumes; the result is one ``.npz`` per run plus a PNG
grid, and the examples in the authors' release format under ``<out>/release/``
(:func:`~invariance_tradeoffs.simulations.attacks.runs.save_release`). ``--scheduler``
runs the batches as tasks of a Dask cluster (:mod:`invariance_tradeoffs.simulations.engine`).
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np

from invariance_tradeoffs.simulations.cli.args import (
    add_data_args,
    add_deprecated_alias,
    add_jobs,
    add_out,
    add_progress,
    add_scheduler,
    add_seed,
    add_threads,
    check_out_dir,
    float_in,
    int_in,
)

__all__ = ["add_judge_args", "add_parser", "add_run_args", "attack_jobs", "l0_batch",
           "resolve_indices", "run_command"]


def add_judge_args(parser: argparse.ArgumentParser, *, what: str | None) -> None:
    """``--judge`` (one of the judges :func:`~simulations.attacks.l0.judges.build_judge`
    knows; only with ``what``, the judge's role), ``--abs-config``, ``--proxy`` and
    ``--cache-dir``."""
    from invariance_tradeoffs.simulations.attacks.l0.judges import JUDGE_NAMES
    from invariance_tradeoffs.simulations.models.abs_judge import ABS_CONFIGS
    from invariance_tradeoffs.simulations.models.proxy import PROXY_CONFIGS

    if what is not None:
        parser.add_argument("--judge", choices=JUDGE_NAMES, default="knn",
                            help=f"judge of what an image reads as ({what}): 'knn' (vote of "
                            "the 10 nearest binarised training images), 'abs' (one VAE per "
                            "class, with a reject label), 'proxy' (augmented CNN ensemble) "
                            "or 'ensemble' (mean of the three) (default: knn)")
    parser.add_argument("--abs-config", choices=tuple(ABS_CONFIGS), default="abs",
                        help="configuration of the 'abs' judge (default: abs)")
    parser.add_argument("--proxy", choices=tuple(PROXY_CONFIGS), default="proxy-small",
                        help="configuration of the 'proxy' judge (default: proxy-small)")
    parser.add_argument("--cache-dir", metavar="DIR", default=None,
                        help="model cache of the trained judges (default: <per-user "
                        "cache>/models); missing ones are trained")


def add_run_args(parser: argparse.ArgumentParser) -> None:
    """Options shared by every batch attack run (indices, seed, output, batching, jobs)."""
    parser.add_argument(
        "--indices", default="published",
        help="MNIST test images to attack: 'all' (the 10000), 'published' (the authors' "
        "100), 'A:B', 'random:N' (drawn with --seed) or 'i,j,k' (default: published)")
    add_seed(parser, what="--indices random:N and of the attack's own search")
    add_out(parser)
    parser.add_argument("--batch-size", type=int_in(1, 10000), default=25,
                        help="sources per saved batch (default: 25)")
    add_jobs(parser)
    add_scheduler(parser)
    add_progress(parser)


def attack_jobs(args: argparse.Namespace) -> int:
    """joblib workers inside one batch: ``--n-jobs`` locally, 1 on a Dask cluster (where
    the batches themselves are the parallel tasks)."""
    return 1 if getattr(args, "scheduler", None) else args.n_jobs


def resolve_indices(args: argparse.Namespace) -> np.ndarray:
    """The MNIST test indices selected by ``--indices`` (and ``--seed``), validated."""
    from invariance_tradeoffs.simulations.attacks.runs import parse_indices
    from invariance_tradeoffs.simulations.data.published import published_indices

    return parse_indices(
        args.indices, seed=args.seed,
        published=lambda: published_indices(getattr(args, "published_dir", None)))


def run_command(args: argparse.Namespace, name: str, params: dict,
                attack: Callable[[np.ndarray], dict[str, np.ndarray]], *,
                indices: np.ndarray | None = None) -> int:
    """Run ``attack`` over ``args.indices`` with the shared runner; print a summary.

    ``attack(batch_indices)`` returns the per-source arrays (see
    :func:`~invariance_tradeoffs.simulations.attacks.runs.run_attack`). Pass ``indices``
    when already resolved with :func:`resolve_indices` (to fail fast before loading data).
    """
    from invariance_tradeoffs.simulations.attacks.runs import run_attack, save_release

    if indices is None:
        indices = resolve_indices(args)
    run, path = run_attack(attack, indices, args.out, name,
                           {**params, "indices": args.indices, "seed": args.seed},
                           batch_size=args.batch_size, progress=not args.no_progress,
                           scheduler=getattr(args, "scheduler", None))
    release = save_release(run, Path(args.out) / "release")
    changed = np.bincount(run.targets[run.targets >= 0], minlength=10)
    print(f"{run.n} invariance examples -> {path} (grid: {path.with_suffix('.png')}); in "
          f"the authors' release format: {release[0]} (+ _labels: targets, _indexs)")
    found = np.isfinite(run.distortion)  # NaN marks a source with no example (l0 attack)
    spread = (f"mean {run.distortion[found].mean():.4g}, max {run.distortion[found].max():.4g}"
              if found.any() else "no example found")
    print(f"distortion over the {int(found.sum())} examples found: {spread}; "
          f"target classes: {dict(enumerate(changed.tolist()))}")
    return 0


def _cmd_linf(args: argparse.Namespace) -> int:
    from invariance_tradeoffs.simulations.attacks.linf import (
        DEFAULT_TARGETS,
        LinfInvarianceAttack,
        check_radius,
    )
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    eps = check_radius(args.eps)
    check_out_dir(args.out)
    indices = resolve_indices(args)  # fail fast, before loading data
    train = load_mnist("train", args.data_dir)
    test = load_mnist("test", args.data_dir)
    attack = LinfInvarianceAttack(train.images, train.labels, eps=eps,
                                  n_jobs=attack_jobs(args))
    params = {
        "attack": "linf",
        "eps": eps,
        "targets": {str(k): list(v) for k, v in DEFAULT_TARGETS.items()},
        "selection": "least_ink",
        "training_set": "all 60000 MNIST training images",
    }

    def batch(idx: np.ndarray) -> dict[str, np.ndarray]:
        return attack.run(test.images[idx], test.labels[idx]).as_arrays()

    return run_command(args, f"linf_eps{eps:g}", params, batch, indices=indices)


def l0_batch(data_dir: str | None, **options: object) -> Callable[[np.ndarray], dict]:
    """The l0 attack's batch function, built from the MNIST found at ``data_dir`` (as
    ``--data-dir``): what each Dask worker builds for itself (``options``: those of
    :func:`~invariance_tradeoffs.simulations.attacks.l0.attack.batch_attack`)."""
    from invariance_tradeoffs.simulations.attacks.l0.attack import batch_attack
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    batch = batch_attack(load_mnist("train", data_dir), load_mnist("test", data_dir),
                         **options)[0]  # type: ignore[arg-type]
    batch.attack.prepare(np.arange(10))  # type: ignore[attr-defined]  # every pool, once
    return batch


def _cmd_l0(args: argparse.Namespace) -> int:
    from invariance_tradeoffs.simulations.attacks.l0.attack import batch_attack, summarize_run
    from invariance_tradeoffs.simulations.attacks.runs import load_run
    from invariance_tradeoffs.simulations.data.mnist import load_mnist

    check_out_dir(args.out)
    indices = resolve_indices(args)
    train = load_mnist("train", args.data_dir)
    test = load_mnist("test", args.data_dir)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    options = dict(n_train=args.train_subset, budget=args.budget, targets=args.targets,
                   min_confidence=args.min_confidence, random_state=args.seed,
                   n_jobs=attack_jobs(args), judge=args.judge,
                   judge_options={"abs_config": args.abs_config, "proxy_config": args.proxy,
                                  "cache_dir": args.cache_dir,
                                  "progress": not args.no_progress})
    batch, params = batch_attack(train, test, **options)
    if args.scheduler:  # each worker builds the attack from the data folder (see engine)
        from invariance_tradeoffs.simulations.engine import BuiltOnWorker

        batch = BuiltOnWorker(l0_batch, args.data_dir, **options)
    name = f"l0_{args.targets}" + ("" if args.judge == "knn" else f"_{args.judge}")
    code = run_command(args, name, params, batch, indices=indices)
    if code == 0:
        print(summarize_run(load_run(Path(args.out) / f"{name}.npz")))
    return code


def add_parser(mnist_subparsers: argparse._SubParsersAction) -> None:
    """Register ``tradeoffs mnist attack linf|l0`` on the ``mnist`` group."""
    from invariance_tradeoffs.simulations.attacks.l0.attack import BUDGETS, JUDGE_NEIGHBOURS

    attack = mnist_subparsers.add_parser("attack", help="run a model-free invariance attack")
    attack.set_defaults(_parser=attack)
    sub = attack.add_subparsers(dest="attack_command", metavar="NORM")

    p = sub.add_parser(
        "linf", help="l-inf invariance attack (alignment search + projection onto the ball)",
        description="For each source test image: align the nearest training image of every "
        "other class (rotations -30..30 deg, shifts -3..3 px), move the source towards it "
        "inside the l-inf eps-ball, keep the plausible target that removes the least ink.")
    p.add_argument("--eps", type=float_in(0, 1, low_open=True), required=True,
                   help="l-inf radius in (0, 1]")
    add_data_args(p)
    add_run_args(p)
    p.set_defaults(func=_cmd_linf)

    p = sub.add_parser(
        "l0", help="l0 invariance attack (alignment search + smallest judged cluster edit)",
        description="For each source test image: align binarised training images of the "
        "target classes (affine transform + stroke thickness; coarse matrix-product search, "
        "then evolution strategies), cluster the differing pixels (DBSCAN, eps=2) and keep "
        "the smallest union of clusters that a kNN judge over the binarised training set "
        "reads as the target class.")
    p.add_argument("--targets", choices=("all", "published"), default="all",
                   help="target classes per source class: all other classes (as the "
                   "authors' l0 search) or the published l-inf attack's table (default: all)")
    p.add_argument("--min-confidence", type=float_in(0, 1, low_open=True), default=0.5,
                   help="smallest kNN vote share of the target class (default: 0.5)")
    p.add_argument("--budget", choices=tuple(BUDGETS), default="default",
                   help="search budget: 'default' (as measured in the docs) or 'fast'")
    p.add_argument("--train-subset", type=int_in(JUDGE_NEIGHBOURS, 60000), default=None,
                   metavar="N", help="use only the first N training images (judge and search; "
                   f"at least {JUDGE_NEIGHBOURS}, the judge's neighbours; default: all 60000)")
    add_judge_args(p, what="acceptance test of the edits")
    add_threads(p)
    add_data_args(p)
    add_run_args(p)
    add_deprecated_alias(p, "--attack-seed", "--seed", "seed", type=int_in(0, 2**32 - 1))
    p.set_defaults(func=_cmd_l0)
