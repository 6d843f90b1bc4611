"""Cost of AutoAttack (standard ensemble, torchattacks) against PGD-40 in the same run.

The worst case for an attack's running time is an image it cannot break: every attack of
the ensemble then runs all its iterations (APGD-CE 100, APGD-T 9 x 100, FAB-T 9 x 100,
Square 5000 queries). The benchmark builds each zoo architecture with its last layer
scaled so that the network predicts class 0 on every input (so nothing breaks), labels
random images 0, and times AutoAttack and PGD-40 (one restart, the main run's setting) on
the same images with one torch thread. The ratio is what to budget: robust accuracy under
AutoAttack on N robust images costs about ``ratio`` times PGD's.

Run: ``python benchmarks/autoattack.py [--n 20] [--eps 0.3]``.
"""

from __future__ import annotations

import argparse
import json
import time


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20, help="images per measurement")
    parser.add_argument("--eps", type=float, default=0.3)
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from invariance_tradeoffs.simulations.attacks.autoattack import autoattack
    from invariance_tradeoffs.simulations.attacks.pgd import pgd_attack
    from invariance_tradeoffs.simulations.models.adapters import PyTorchModel
    from invariance_tradeoffs.simulations.models.architectures import build_architecture

    torch.set_num_threads(1)
    rows = []
    for arch in ("small_cnn", "wide_cnn"):
        net = build_architecture(arch).eval()
        last = [m for m in net.modules() if isinstance(m, torch.nn.Linear)][-1]
        with torch.no_grad():  # predicts 0 everywhere: the attacks run to the end
            last.weight.mul_(1e-4)
            last.bias.zero_()
            last.bias[0] = 5.0
        model = PyTorchModel(net)
        x = np.random.default_rng(0).random((args.n, 1, 28, 28), dtype=np.float32)
        y = np.zeros(args.n, dtype=int)
        start = time.perf_counter()
        res = autoattack(model, x, y, args.eps)
        t_aa = time.perf_counter() - start
        start = time.perf_counter()
        pgd = pgd_attack(model, x, y, args.eps, steps=40, restarts=1)
        t_pgd = time.perf_counter() - start
        assert not res.success.any() and not pgd.success.any()
        rows.append({"arch": arch, "n": args.n, "autoattack_s_per_image": t_aa / args.n,
                     "pgd40_s_per_image": t_pgd / args.n, "ratio": t_aa / t_pgd})
        print(f"{arch:10s} AutoAttack {t_aa / args.n:.3f} s/image, PGD-40 "
              f"{t_pgd / args.n:.4f} s/image, ratio {t_aa / t_pgd:.1f}")
    print(json.dumps(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
