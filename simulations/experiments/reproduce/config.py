"""Configuration of a reproduction run: what it trains, attacks and evaluates, and the
presets (:data:`MAIN`, the default; :data:`QUICK`; :data:`FULL`)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field

__all__ = ["PUBLISHED_RATES", "FULL_MODELS", "MAIN_MODELS", "QUICK_MODELS", "ReproduceConfig",
           "MAIN", "QUICK", "FULL", "PRESETS"]

#: The paper's label-change rates (share of invariance examples whose human label
#: differs from the source's), quoted from Tramer et al. (2020), Section 4.
PUBLISHED_RATES: dict[str, tuple[float, str]] = {
    "linf/automated_eps03": (0.21, "automated l-inf attack, eps = 0.3"),
    "linf/automated_eps04": (0.37, "automated l-inf attack, eps = 0.4"),
    "linf/manual_eps04": (0.88, "manual l-inf attack, eps = 0.4"),
    "l0/automated": (0.55, "automated l0 attack"),
}

FULL_MODELS = ("undefended", "pgd-0.1", "pgd-0.2", "pgd-0.3", "pgd-0.4", "ibp-0.1", "ibp-0.3",
               "ibp-0.4", "logreg", "robust-linear-0.1", "robust-linear-0.3", "knn")
#: The models that carry the paper's claim, within the 10-minute budget of the main run
#: (pgd-0.3 is in the --full sweep: adding it costs about 8 more core-minutes).
MAIN_MODELS = ("undefended", "pgd-0.4", "ibp-0.4")
QUICK_MODELS = ("tiny-standard", "tiny-pgd", "tiny-ibp", "tiny-logreg", "tiny-robust-linear",
                "tiny-knn")


@dataclass(frozen=True)
class ReproduceConfig:
    """What a reproduction run does (all of it is written to ``config.json``).

    Attributes
    ----------
    mode : {"main", "quick", "full"}
        Which preset the run started from (:data:`MAIN`, :data:`QUICK`, :data:`FULL`).
    models : tuple of str
        Zoo configuration names (:data:`invariance_tradeoffs.simulations.models.zoo.CONFIGS`).
    proxy : str
        Proxy configuration name (:data:`simulations.models.proxy.PROXY_CONFIGS`).
    n_sources : int or None
        Published source images attacked (the first ``n_sources``; ``None``: all).
    attack_eps : tuple of float
        Radii of the l-inf invariance attack.
    n_test : int
        First ``n_test`` MNIST test images for clean and certified accuracy.
    n_test_pgd : int or None
        First ``n_test_pgd`` of those for PGD accuracy (``None``: all ``n_test``).
    eval_eps : tuple of float
        Radii of the sensitivity evaluation.
    pgd_steps, pgd_restarts : PGD used for empirical robust accuracy.
    n_test_autoattack : int
        First ``n_test_autoattack`` test images for AutoAttack accuracy (``0``: not run).
    toy : {"small", "default", "none"}
        Toy experiment sizes.
    train_missing : bool
        Train models missing from the cache (otherwise they are reported as missing).
    seed : int
    attack_runs : tuple of str
        Saved attack runs (``tradeoffs mnist attack ...`` output, e.g. the l0 attack) whose
        label-change rate the proxy estimates.
    l0_sources : int or None
        Published sources the model-free l0 attack runs on (the first ``l0_sources``;
        ``None``: all; ``0``: skip the l0 stage).
    l0_budget : {"default", "fast"}
        Search budget of the l0 attack (:data:`simulations.attacks.l0.attack.BUDGETS`).
    l0_train_subset : int or None
        The l0 attack aligns the first ``l0_train_subset`` training images (``None``: all).
    margins_dir : str or None
        A folder written by ``tradeoffs mnist margins``: its table and figure (margin
        bounds from the data, 1-NN accuracy, separation) go into the report; nothing is
        computed for them.
    """

    mode: str = "full"
    models: tuple[str, ...] = FULL_MODELS
    proxy: str = "proxy"
    n_sources: int | None = None
    attack_eps: tuple[float, ...] = (0.3, 0.4)
    n_test: int = 10000
    n_test_pgd: int | None = 1000
    eval_eps: tuple[float, ...] = (0.3, 0.4)
    pgd_steps: int = 40
    pgd_restarts: int = 5
    n_test_autoattack: int = 200
    toy: str = "default"
    train_missing: bool = True
    seed: int = 0
    attack_runs: tuple[str, ...] = ()
    l0_sources: int | None = None
    l0_budget: str = "default"
    l0_train_subset: int | None = None
    margins_dir: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        from invariance_tradeoffs.simulations.models.proxy import PROXY_CONFIGS
        from invariance_tradeoffs.simulations.models.zoo import CONFIGS

        if self.mode not in ("main", "quick", "full"):
            raise ValueError(f"mode must be 'main', 'quick' or 'full', got {self.mode!r}")
        if not 0 <= self.n_test_autoattack <= 10000:
            raise ValueError(f"n_test_autoattack must be in 0..10000, got "
                             f"{self.n_test_autoattack}")
        if self.n_test_pgd is not None and self.n_test_pgd < 1:
            raise ValueError(f"n_test_pgd must be None or >= 1, got {self.n_test_pgd}")
        unknown = [m for m in self.models if m not in CONFIGS]
        if unknown or not self.models:
            raise ValueError(f"models must be zoo names, unknown: {unknown or '(none given)'}")
        if self.proxy not in PROXY_CONFIGS:
            raise ValueError(f"proxy must be one of {sorted(PROXY_CONFIGS)}, got {self.proxy!r}")
        if self.n_sources is not None and self.n_sources < 1:
            raise ValueError(f"n_sources must be >= 1, got {self.n_sources}")
        for name in ("n_test", "pgd_steps", "pgd_restarts"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.n_test > 10000:
            raise ValueError(f"n_test must be <= 10000 (the MNIST test set), got {self.n_test}")
        if self.l0_sources is not None and self.l0_sources < 0:
            raise ValueError(f"l0_sources must be None or >= 0, got {self.l0_sources}")
        if self.l0_budget not in ("default", "fast"):
            raise ValueError(f"l0_budget must be 'default' or 'fast', got {self.l0_budget!r}")
        if self.l0_train_subset is not None and not 1 <= self.l0_train_subset <= 60000:
            raise ValueError(f"l0_train_subset must be None or in 1..60000, "
                             f"got {self.l0_train_subset}")
        if self.toy not in ("small", "default", "none"):
            raise ValueError(f"toy must be 'small', 'default' or 'none', got {self.toy!r}")
        for name in ("attack_eps", "eval_eps"):
            vals = getattr(self, name)
            if not vals or any(not 0 < float(e) <= 1 for e in vals):
                raise ValueError(f"{name} must hold radii in (0, 1], got {vals}")

    def to_dict(self) -> dict:
        return json.loads(json.dumps(asdict(self)))

    def digest(self, stage: str) -> str:
        """Hash of the parts of the configuration a stage depends on."""
        d = self.to_dict()
        # Which models are listed (and whether missing ones get trained) changes no stage's
        # result: evaluation stages carry the model's name and cache key in their name.
        for key in ("extra", "models", "train_missing"):
            d.pop(key, None)
        return hashlib.sha256(json.dumps([stage, d], sort_keys=True).encode()).hexdigest()[:16]


#: The default run: the models that carry the paper's claim (undefended, PGD training at
#: 0.4, IBP at 0.4), the l-inf attack on all 100 published sources, clean and
#: certified accuracy on the whole test set, PGD-40 on its first 1000 images, the toy
#: curves; no l0 stage. Minutes from an empty cache (docs/performance.md).
MAIN = ReproduceConfig(mode="main", models=MAIN_MODELS, proxy="proxy-small",
                       n_test=10000, n_test_pgd=1000,
                       pgd_steps=40, pgd_restarts=1, n_test_autoattack=0, toy="small",
                       l0_sources=0)
#: ``--quick``: tiny models (seconds), 20 sources, 200 test images, PGD-10 x 2 (smoke run).
QUICK = ReproduceConfig(mode="quick", models=QUICK_MODELS, proxy="proxy-tiny", n_sources=20,
                        n_test=200, n_test_pgd=None, pgd_steps=10, pgd_restarts=2,
                        n_test_autoattack=0,
                        toy="small", l0_sources=3, l0_budget="fast", l0_train_subset=5000)
#: ``--full``: every zoo model, the l0 stage on all 100 sources, PGD-40 x 5 restarts,
#: AutoAttack on the first 200 test images, the default toy sizes (training the zoo from an
#: empty cache takes about an hour).
FULL = ReproduceConfig(mode="full")
PRESETS = {"main": MAIN, "quick": QUICK, "full": FULL}
