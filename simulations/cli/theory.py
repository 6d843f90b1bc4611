"""``tradeoffs theory ...``: exact quantities of the toy families from the command line.

Subcommands::

    tradeoffs theory families [--json]
    tradeoffs theory good-radius --family F --norm N [--param K=V ...] [--json]
    tradeoffs theory ceiling --family F --norm N --eps E [E ...] [--param K=V ...]
                             [--estimate SAMPLES --seed S] [--json]

``--param`` values are parsed as JSON when possible (``3``, ``0.5``, ``[1, 2]``,
``true``), as a list of numbers when comma-separated (``radii=1,2,3``), and as a string
otherwise (``rule=majority``). Unknown families, norms or parameters are reported in one
line naming them, with exit code 2 (see :func:`invariance_tradeoffs.simulations.cli.main`).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from invariance_tradeoffs.simulations.cli.args import add_seed, float_in, int_in
from invariance_tradeoffs.simulations.io import json_default
from invariance_tradeoffs.theory.toys import FAMILIES, family_defaults, get_family

#: Largest Monte Carlo sample of ``--estimate`` (drawn in one batch: about 1 GiB at d = 10).
MAX_SAMPLES = 10_000_000

__all__ = ["add_parser", "parse_params", "good_radius_report", "ceiling_report",
           "families_report"]


def _parse_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        pass
    if "," in text:
        return [_parse_value(part.strip()) for part in text.split(",") if part.strip()]
    return text


def parse_params(items: list[str] | None) -> dict[str, Any]:
    """``["k=v", ...]`` -> ``{k: parsed v}``; ``ValueError`` naming a malformed item."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"--param expects KEY=VALUE, got {item!r}")
        out[key.strip()] = _parse_value(value.strip())
    return out


def good_radius_report(family: str, norm: str, params: dict | None = None) -> dict:
    """JSON-friendly good radius of ``family`` under ``norm``.

    Keys: ``family``, ``norm``, ``params`` (all parameters, defaults filled in) and the
    fields of :meth:`theory.results.Quantity.to_dict` (``value``, ``kind``, ``method``,
    ``side``, ``low``, ``high``, ``confidence``, ``n``, ``extra``).
    """
    fam = get_family(family, **(params or {}))
    q = fam.good_radius(norm)
    return {"family": fam.name, "norm": fam.check_norm(norm), "params": fam.params(),
            **q.to_dict()}


def ceiling_report(family: str, norm: str, eps: list[float], params: dict | None = None,
                   estimate: int | None = None, seed: int = 0) -> dict:
    """JSON-friendly ceiling ``P_D[r_O > eps]`` for each radius.

    Exact when the family has a closed form under ``norm``; with ``estimate=N`` a Monte
    Carlo estimate from ``N`` seeded samples instead (Clopper-Pearson 95% interval).
    Keys: ``family``, ``norm``, ``params`` and ``ceiling``, a list of
    ``{"eps": ..., **Quantity.to_dict()}``.
    """
    fam = get_family(family, **(params or {}))
    rows = []
    for e in eps:
        q = (fam.ceiling(e, norm) if estimate is None
             else fam.ceiling_estimate(e, norm, n=estimate, seed=seed))
        rows.append({"eps": float(e), **q.to_dict()})
    return {"family": fam.name, "norm": fam.check_norm(norm), "params": fam.params(),
            "ceiling": rows}


def families_report() -> list[dict]:
    """Each family's name, dimensions, exact norms and default parameters."""
    out = []
    for name in FAMILIES:
        info = get_family(name).describe()
        info["defaults"] = {k: (list(v) if isinstance(v, tuple) else v)
                            for k, v in family_defaults(name).items()}
        out.append(info)
    return out


def _emit(report: Any, as_json: bool, text: str) -> None:
    print(json.dumps(report, indent=2, default=json_default) if as_json else text)


def _quantity_text(q: dict) -> str:
    value = q["value"]
    if q["kind"] == "estimate":
        return f"{value:.6g} (estimate, CI [{q['low']:.6g}, {q['high']:.6g}], n={q['n']})"
    return f"{value:.6g} ({q['kind']}: {q['method']})"


def _cmd_families(args: argparse.Namespace) -> int:
    report = families_report()
    lines = [f"{r['family']:<16} d={r['n_features']:<4} classes={r['n_classes']:<3} "
             f"exact margins: {','.join(r['exact_margin_norms'])}; exact ceilings: "
             f"{','.join(r['exact_ceiling_norms']) or '-'}" for r in report]
    _emit(report, args.json, "\n".join(lines))
    return 0


def _cmd_good_radius(args: argparse.Namespace) -> int:
    report = good_radius_report(args.family, args.norm, parse_params(args.param))
    _emit(report, args.json,
          f"good radius of {report['family']} under {report['norm']}: {_quantity_text(report)}")
    return 0


def _cmd_ceiling(args: argparse.Namespace) -> int:
    report = ceiling_report(args.family, args.norm, args.eps, parse_params(args.param),
                            estimate=args.estimate, seed=args.seed)
    lines = [f"ceiling P[r_O > eps] of {report['family']} under {report['norm']}:"]
    lines += [f"  eps={row['eps']:<8g} {_quantity_text(row)}" for row in report["ceiling"]]
    _emit(report, args.json, "\n".join(lines))
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("--family", required=True, help=f"one of: {', '.join(FAMILIES)}")
    p.add_argument("--norm", required=True, help="l0, l1, l2 or linf")
    p.add_argument("--param", action="extend", nargs="+", metavar="K=V",
                   help="family parameter, e.g. a=0.1 or radii=1,2,3 (repeatable)")
    p.add_argument("--json", action="store_true", help="print JSON")


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "theory",
        help="exact theory quantities (good radii, ceilings) for the toy families",
        description="Exact theory quantities for the toy families.",
    )
    parser.set_defaults(_parser=parser)
    sub = parser.add_subparsers(dest="theory_command", metavar="SUBCOMMAND")

    fam = sub.add_parser("families", help="list the toy families and their exact norms")
    fam.add_argument("--json", action="store_true", help="print JSON")
    fam.set_defaults(func=_cmd_families)

    gr = sub.add_parser("good-radius", help="exact good radius eps*(norm) of a family")
    _common(gr)
    gr.set_defaults(func=_cmd_good_radius)

    ce = sub.add_parser("ceiling", help="P_D[r_O > eps]: ceiling for eps-robust classifiers")
    _common(ce)
    ce.add_argument("--eps", required=True, type=float_in(0), nargs="+",
                    help="radii >= 0")
    ce.add_argument("--estimate", type=int_in(1, MAX_SAMPLES), metavar="SAMPLES", default=None,
                    help="Monte Carlo estimate from SAMPLES samples (at most "
                    f"{MAX_SAMPLES:,}) instead of the closed form")
    add_seed(ce, what="--estimate")
    ce.set_defaults(func=_cmd_ceiling)
