"""``tradeoffs reproduce``: configuration, the new zoo entries, and a reduced quick run."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from invariance_tradeoffs.simulations.experiments.reproduce import (
    FULL,
    MAIN,
    PUBLISHED_RATES,
    QUICK,
    ReproduceConfig,
)
from invariance_tradeoffs.simulations.models.zoo import (
    CONFIGS,
    IBP_TRAINING_RADII,
    PGD_TRAINING_RADII,
    TrainConfig,
    config_key,
    get_config,
)


def test_pgd_and_ibp_sweeps_are_registered_valid_and_distinct():
    names = [f"pgd-{e}" for e in PGD_TRAINING_RADII] + [f"ibp-{e}" for e in IBP_TRAINING_RADII]
    assert set(names) == {"pgd-0.1", "pgd-0.2", "pgd-0.3", "pgd-0.4", "ibp-0.1", "ibp-0.3",
                          "ibp-0.4"}
    keys = set()
    for name in names:
        cfg = get_config(name)
        assert cfg.method == name.split("-")[0]
        assert cfg.eps == float(name.split("-")[1])
        assert cfg.n_train is None and cfg.budget_minutes <= 10
        if cfg.method == "pgd":
            assert cfg.pgd_step_size == pytest.approx(cfg.eps / 3, abs=1e-4)
        assert TrainConfig.from_dict(cfg.to_dict()) == cfg
        keys.add(config_key(cfg, "same data"))
    assert len(keys) == len(names)
    # Within a sweep only the radius changes, and the PGD sweep shares its architecture
    # with the undefended network (its eps = 0 point), so the agreement trend is not an
    # architecture effect.
    for family in (PGD_TRAINING_RADII, IBP_TRAINING_RADII):
        method = "pgd" if family is PGD_TRAINING_RADII else "ibp"
        cfgs = [get_config(f"{method}-{e}") for e in family]
        rest = [{k: v for k, v in c.to_dict().items() if k not in ("name", "eps", "pgd_step_size")}
                for c in cfgs]
        assert all(r == rest[0] for r in rest), method
    assert get_config("pgd-0.3").arch == get_config("undefended").arch == "wide_cnn"
    assert get_config("ibp-0.4") == TrainConfig(
        "ibp-0.4", "ibp", arch="small_cnn", epochs=10, lr=2e-3, lr_schedule="onecycle",
        eps=0.4, warmup_fraction=0.05, ramp_fraction=0.5, kappa_final=0.5, budget_minutes=5)


def test_quick_uses_only_tiny_models_and_full_only_real_ones():
    assert MAIN.models == ("undefended", "pgd-0.4", "ibp-0.4")
    assert MAIN.n_test == 10000 and MAIN.n_test_pgd == 1000 and MAIN.l0_sources == 0
    assert FULL.l0_sources is None and set(MAIN.models) <= set(FULL.models)
    assert all(m.startswith("tiny-") for m in QUICK.models)
    assert QUICK.proxy == "proxy-tiny" and QUICK.n_sources == 20
    assert not any(m.startswith("tiny-") for m in FULL.models)
    assert all(m in CONFIGS for m in FULL.models)
    assert set(PUBLISHED_RATES) >= {"linf/automated_eps03", "linf/automated_eps04"}


def test_config_validation_and_stage_digests():
    with pytest.raises(ValueError, match="unknown"):
        ReproduceConfig(models=("nope",))
    with pytest.raises(ValueError, match="proxy"):
        ReproduceConfig(proxy="nope")
    with pytest.raises(ValueError, match="n_test"):
        ReproduceConfig(n_test=0)
    with pytest.raises(ValueError, match="toy"):
        ReproduceConfig(toy="huge")
    with pytest.raises(ValueError, match="attack_eps"):
        ReproduceConfig(attack_eps=(1.5,))
    assert QUICK.digest("toy") != QUICK.digest("attack")
    assert QUICK.digest("toy") != replace(QUICK, seed=1).digest("toy")
    assert QUICK.digest("toy") == replace(QUICK).digest("toy")


def test_reduced_quick_run_writes_the_report_table_and_figures(mnist_dir, published_dir,
                                                               tmp_path, capsys):
    pytest.importorskip("torch")
    import numpy as np

    from invariance_tradeoffs.simulations.attacks.runs import AttackRun, save_run
    from invariance_tradeoffs.simulations.cli import main

    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, size=(4, 28, 28)).astype(np.uint8)
    run_path = save_run(tmp_path / "fake_l0.npz", AttackRun(
        sources=imgs, source_indices=np.arange(4), source_labels=np.array([1, 2, 3, 4]),
        examples=imgs, targets=np.array([2, -1, 5, 6]), distortion=np.zeros(4),
        params={"attack": "l0"}))
    out = tmp_path / "res"
    argv = ["reproduce", "--attack-run", str(run_path), "--quick", "--out", str(out),
            "--data-dir", str(mnist_dir),
            "--published-dir", str(published_dir), "--cache-dir", str(tmp_path / "cache"),
            "--models", "tiny-logreg", "tiny-standard", "--n-sources", "3", "--n-test", "40",
            "--pgd-steps", "2", "--pgd-restarts", "1", "--l0-sources", "2", "--no-progress"]
    assert main(argv) == 0
    report = (out / "REPORT.md").read_text()
    assert "| model | train eps | clean | PGD 0.3 | cert. 0.3 | PGD 0.4 | cert. 0.4 |" in report
    assert "| tiny-logreg | 0 |" in report and "| tiny-standard | 0 |" in report
    assert "| linf/automated_eps03 | 21% | 0.210 [0.13, 0.30] | 0.790 [0.70, 0.87] |" in report
    assert "(quoted)" in report and "proxy estimate" in report
    assert "What limits the proxy" in report
    assert "## The project's l0 invariance attack" in report
    l0 = json.loads((out / "stages" / "l0.json").read_text())["result"]
    assert l0["n_sources"] == 2 and l0["n_examples"] + l0["n_failures"] == 2
    assert (out / "runs" / "l0_all.npz").exists()
    judges = json.loads((out / "stages" / "judges.json").read_text())["result"]
    assert judges["abs_config"] == "abs-tiny" and set(judges["l0"]) == {
        "knn", "abs", "proxy", "ensemble"}
    assert judges["validation"]["abs"]["pooled"]["n"] == 200
    assert "## Judges: agreement with the human labels" in report
    assert "| abs | linf/automated_eps03 | 100 (21) |" in report
    assert (out / "runs" / "l0_all.judges.png").stat().st_size > 1000
    assert "tradeoffs reproduce --out" in report and "--quick" in report
    for stem in ("agreement_vs_eps", "robust_vs_agreement", "examples_grid", "toy_vs_mnist"):
        assert (out / "figures" / f"{stem}.png").stat().st_size > 1000
        assert f"figures/{stem}.png" in report
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["config"]["models"] == ["tiny-logreg", "tiny-standard"]
    assert cfg["config"]["n_sources"] == 3 and cfg["command"].startswith("tradeoffs reproduce")
    results = json.loads((out / "results.json").read_text())
    assert results["attack"]["n_sources"] == 3
    # our examples at 0.3 reproduce the published ones, so the human labels transfer
    assert results["attack"]["radii"]["0.3"]["identical_to_published"] == 3
    fake = results["runs"]["fake_l0.npz"]
    assert fake["n_sources"] == 4 and fake["n_examples"] == 3  # target -1: no example
    assert "proxy estimate" in fake["proxy_label_change_rate"]["method"]
    assert "saved run `fake_l0.npz` (l0, 3 examples of 4 sources)" in report
    ev = results["evals"]["tiny-logreg"]["published"]["linf/automated_eps03"]
    assert ev["n"] == 100 and ev["provably_wrong"]["kind"] == "exact"
    assert "`tiny-standard` (trained)" in report and "What this run cannot show" in report
    assert "**Missing** `linf/manual_eps04`" in report  # ../shared/data lacks it
    # A rerun resumes: every stage is reused and the results are the same; only the
    # models' provenance changes (now from the cache).
    assert main(argv) == 0
    again = (out / "REPORT.md").read_text()
    assert "`tiny-standard` (cached)" in again

    def results_part(text: str) -> str:
        return text.split("## Label-change rates")[1].split("## Figures")[0]

    assert results_part(again) == results_part(report)


def test_quick_never_trains_a_full_configuration(mnist_dir, published_dir, tmp_path,
                                                 monkeypatch):
    pytest.importorskip("torch")
    import invariance_tradeoffs.simulations.models.zoo as zoo
    from invariance_tradeoffs.simulations.experiments.reproduce.stages import (
        models_stage,
        train_stage,
    )

    def no_training(*a, **k):
        raise AssertionError("trained")

    monkeypatch.setattr(zoo, "train", no_training)
    config = replace(QUICK, models=("undefended",), proxy="proxy-tiny", train_missing=False)
    assert train_stage(config, mnist_dir, tmp_path / "empty", 1, progress=False) == []
    config = replace(config, train_missing=True)
    jobs = train_stage(replace(config, proxy="proxy-tiny"), mnist_dir, tmp_path / "empty", 1,
                        progress=False)
    assert [j["job"] for j in jobs] == ["proxy-tiny[member 0]", "proxy-tiny[member 1]"]
    models, info = models_stage(config, mnist_dir, tmp_path / "empty", set())
    assert models == {} and info["undefended"]["status"] == "missing"


def test_missing_models_are_reported_not_trained_with_no_train(mnist_dir, published_dir,
                                                               tmp_path):
    pytest.importorskip("torch")
    from invariance_tradeoffs.simulations.experiments.reproduce import run_reproduction

    config = replace(QUICK, models=("tiny-logreg", "tiny-knn"), n_sources=2, n_test=20,
                     pgd_steps=1, pgd_restarts=1, toy="none", train_missing=False)
    with pytest.raises(ValueError, match="no model"):
        # with nothing trained there is nothing to evaluate
        run_reproduction(config, tmp_path / "r", data_dir=mnist_dir,
                         published_dir=published_dir, cache_dir=tmp_path / "empty",
                         progress=False)
