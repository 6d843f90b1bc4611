"""Exports of a study: the authors' release format (read back by the published-set
loader), CSVs, Label Studio tasks and reading Label Studio's export back; the CLI."""

from __future__ import annotations

import csv
import io
import json

import numpy as np
import pytest

pytest.importorskip("statsmodels")

from invariance_tradeoffs.simulations.cli import main  # noqa: E402
from invariance_tradeoffs.simulations.data.published import load_published_examples  # noqa: E402
from invariance_tradeoffs.simulations.study import data as study_data  # noqa: E402
from invariance_tradeoffs.simulations.study import store  # noqa: E402
from invariance_tradeoffs.simulations.study.exports import (  # noqa: E402
    LABELSTUDIO_CONFIG,
    REJECT_CHOICE,
    counts_csv,
    export_release,
    import_labelstudio,
    labelstudio_tasks,
    read_labelstudio_export,
    responses_csv,
)
from invariance_tradeoffs.simulations.study.results import summarise  # noqa: E402
from invariance_tradeoffs.theory.oracles import REJECT  # noqa: E402
from tests.study_helpers import answer_through_store, make_study  # noqa: E402


def _right(kind, src, ref):
    return src if kind == "check" else (REJECT if src == 0 else (src + 1) % 10)


@pytest.fixture
def finished(tmp_path):
    """A 12-example study answered by 3 participants; the third fails its checks."""
    study = make_study(tmp_path / "s.study", n=12, participants=3, k=3, rate=0.2)
    for t in study.tokens[:2]:
        answer_through_store(study.path, t, _right)
    answer_through_store(study.path, study.tokens[2], lambda kind, src, ref: 5)
    return study


def test_release_export_is_read_by_the_published_loader(finished, tmp_path, mnist_dir):
    conn = store.connect(finished.path)
    res = summarise(study_data.read_study(conn))
    rel = export_release(conn, res, tmp_path / "out")
    conn.close()
    assert [p.name for p in rel.files] == ["study_eps03.npy", "study_eps03_labels.npy",
                                           "study_eps03_indexs.npy"]
    assert rel.n_written == 12 and rel.n_left_out == 0
    sets = load_published_examples(tmp_path / "out", data_dir=mnist_dir.parent)
    s = sets["linf/study_eps03"]
    assert s.norm == "linf" and s.radius == 0.3 and s.n == 12
    src = np.arange(12) % 10
    np.testing.assert_array_equal(s.human_labels, np.where(src == 0, REJECT, (src + 1) % 10))
    np.testing.assert_array_equal(s.source_indices, np.arange(12))
    assert s.examples.dtype == np.float64 and np.load(rel.files[0]).dtype == np.uint8
    # the exported folder is a published set like any other: a new study can relabel it
    assert main(["study", "create", "--published", str(tmp_path / "out"), "--data-dir",
                 str(mnist_dir.parent), "--participants", "2", "--attention-rate", "0",
                 "--out", str(tmp_path / "again.study")]) == 0
    again = study_data.read_study(store.connect(tmp_path / "again.study"))
    assert again.meta["release_name"] == "linf/study_eps03"
    np.testing.assert_array_equal(again.reference_label, s.human_labels)


def test_release_export_refuses_unfinished_studies(tmp_path):
    study = make_study(tmp_path / "s.study", n=6, participants=2, k=1, rate=0.0)
    answer_through_store(study.path, study.tokens[0], lambda kind, src, ref: src)
    conn = store.connect(study.path)
    res = summarise(study_data.read_study(conn))
    with pytest.raises(ValueError, match="3 of 6 examples have no label"):
        export_release(conn, res, tmp_path / "out")
    assert not (tmp_path / "out").exists()
    rel = export_release(conn, res, tmp_path / "out", "l0/part", partial=True)
    assert rel.n_written == 3 and rel.n_left_out == 3
    assert np.load(rel.files[1]).tolist() == [int(i) for i in np.load(rel.files[2]) % 10]
    with pytest.raises(ValueError, match="--name"):
        export_release(conn, res, tmp_path / "out", "../escape", partial=True)
    conn.close()


def test_csv_exports(finished):
    res = summarise(study_data.read_study(store.connect(finished.path)))
    rows = list(csv.DictReader(io.StringIO(responses_csv(res))))
    assert len(rows) == sum(len(s) for s in finished.plan.sequences)
    assert {r["participant_kept"] for r in rows if r["participant"] == "3"} == {"0"}
    assert {r["item_kind"] for r in rows} == {"example", "check"}
    counts = list(csv.DictReader(io.StringIO(counts_csv(res))))
    assert len(counts) == 12 and counts[0]["reject"] == "2" and counts[0]["majority"] == "-1"
    assert sum(int(counts[3][str(d)]) for d in range(10)) == 2


def _labelstudio_export(tasks: list[dict], annotators: dict[int, callable], refs: dict) -> list:
    """What Label Studio's JSON export looks like after annotators labelled ``tasks``."""
    out, ann_id = [], 1000
    for t, task in enumerate(tasks):
        anns = []
        for user, choose in annotators.items():
            choice = choose(refs[task["data"]["item"]])
            ann_id += 1
            if choice is None:  # skipped task
                anns.append({"id": ann_id, "result": [], "was_cancelled": True,
                             "completed_by": user, "task": t + 1})
                continue
            anns.append({
                "id": ann_id, "completed_by": user, "was_cancelled": False,
                "ground_truth": False, "created_at": "2026-01-05T10:00:00.000000Z",
                "lead_time": 2.5, "task": t + 1,
                "result": [{"id": f"r{ann_id}", "type": "choices", "from_name": "label",
                            "to_name": "image", "origin": "manual",
                            "value": {"choices": [choice]}}]})
        out.append({"id": t + 1, "data": task["data"], "annotations": anns,
                    "predictions": [], "project": 7})
    return out


def test_labelstudio_round_trip(tmp_path):
    study = make_study(tmp_path / "s.study", n=8, participants=2, k=1, rate=0.2)
    conn = store.connect(study.path)
    tasks = labelstudio_tasks(conn)
    data = study_data.read_study(conn)
    assert len(tasks) == data.n_items
    assert all(t["data"]["image"].startswith("data:image/png;base64,") for t in tasks)
    assert set(tasks[0]["data"]) == {"image", "item"}  # no label, target or kind
    assert 'hotkey="x"' in LABELSTUDIO_CONFIG and REJECT_CHOICE in LABELSTUDIO_CONFIG
    refs = {r: i for i, r in enumerate(data.item_ref.tolist())}

    def good(i):  # right on checks, the source label on examples
        return str(data.source_label[i])

    def lazy(i):  # rejects everything, skips item 0
        return None if i == 0 else REJECT_CHOICE

    export = tmp_path / "export.json"
    export.write_text(json.dumps(_labelstudio_export(tasks, {11: good, 12: lazy}, refs)))
    rep = import_labelstudio(conn, export)
    assert (rep.added, rep.already_present, rep.cancelled, rep.annotators) == (
        2 * data.n_items - 1, 0, 1, 2)
    again = import_labelstudio(conn, export)
    assert (again.added, again.already_present) == (0, 2 * data.n_items - 1)
    res = summarise(study_data.read_study(conn))
    conn.close()
    parts = {p["origin"]: p for p in res.participants()}
    assert parts["labelstudio:11"]["kept"] and not parts["labelstudio:12"]["kept"]
    assert parts["labelstudio:11"]["answered"] == data.n_items
    assert res.majority.n.tolist() == [1] * 8 and res.label_change.value == 0


@pytest.mark.parametrize("content, message", [
    ("{not json", "is not JSON"),
    ('{"a": 1}', "must be a JSON list of tasks"),
    ('[{"data": {"image": "x"}}]', "has no data.item"),
    ('[{"data": {"item": "r"}, "annotations": [{"id": 1, "completed_by": 1, "result": '
     '[{"type": "choices", "from_name": "label", "value": {"choices": ["seven"]}}]}]}]',
     "is not a digit 0-9"),
    ('[{"data": {"item": "r"}, "annotations": [{"id": 1, "completed_by": 1, "result": '
     '[]}]}]', "exactly one 'label' choice"),
    ('[{"data": {"item": "r"}, "annotations": [{"id": 1, "result": '
     '[{"type": "choices", "from_name": "label", "value": {"choices": ["7"]}}]}]}]',
     "'completed_by' must name the annotator"),
])
def test_labelstudio_export_errors(tmp_path, content, message):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError, match=message):
        read_labelstudio_export(path)


def test_labelstudio_unknown_item_writes_nothing(tmp_path):
    study = make_study(tmp_path / "s.study", n=4, participants=2, k=1, rate=0.0)
    path = tmp_path / "other.json"
    path.write_text('[{"data": {"item": "0123456789abcdef"}, "annotations": [{"id": 1, '
                    '"completed_by": 3, "result": [{"type": "choices", "from_name": "label", '
                    '"value": {"choices": ["7"]}}]}]}]')
    conn = store.connect(study.path)
    before = conn.execute("SELECT COUNT(*) FROM participants").fetchone()
    with pytest.raises(ValueError, match="is not in this study"):
        import_labelstudio(conn, path)
    assert conn.execute("SELECT COUNT(*) FROM participants").fetchone() == before
    conn.close()


def test_cli_results_export_import_invite(finished, tmp_path, capsys):
    s = str(finished.path)
    out = tmp_path / "res"
    assert main(["study", "results", s, "--out", str(out)]) == 0
    text = capsys.readouterr().out
    assert "label-change rate" in text and "release format: 12 examples" in text
    for name in ("REPORT.md", "results.json", "counts.csv", "responses.csv",
                 "release/linf/study_eps03_labels.npy"):
        assert (out / name).is_file(), name
    report = (out / "REPORT.md").read_text()
    assert "## Exclusion rule" in report and "no: 0 of" in report
    assert json.loads((out / "results.json").read_text())["participants_excluded"] == 1
    assert main(["study", "results", s, "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["responses"] > 0
    assert main(["study", "results", s, "--min-check-accuracy", "2"]) == 2
    assert "--min-check-accuracy must be a number in [0, 1]" in capsys.readouterr().err

    assert main(["study", "export", s, "--format", "labelstudio", "--out",
                 str(tmp_path / "ls.json")]) == 0
    assert (tmp_path / "ls.config.xml").read_text() == LABELSTUDIO_CONFIG
    assert main(["study", "export", s, "--format", "responses-csv", "--out",
                 str(tmp_path / "r.csv")]) == 0
    assert main(["study", "export", s, "--format", "release", "--out",
                 str(tmp_path / "rel"), "--name", "linf/mine_eps03"]) == 0
    assert (tmp_path / "rel/linf/mine_eps03_indexs.npy").is_file()
    capsys.readouterr()

    tasks = json.loads((tmp_path / "ls.json").read_text())
    conn = store.connect(finished.path)
    refs = {r: i for i, r in enumerate(study_data.read_study(conn).item_ref.tolist())}
    conn.close()
    export = tmp_path / "ls-export.json"
    export.write_text(json.dumps(_labelstudio_export(tasks, {5: lambda i: "3"}, refs)))
    assert main(["study", "import-labelstudio", s, str(export)]) == 0
    assert "answers added from 1 annotators" in capsys.readouterr().out

    assert main(["study", "invite", s, "--participant", "2", "--admin", "--links",
                 str(tmp_path / "new.csv")]) == 0
    assert "participant 2: /p/" in capsys.readouterr().out
    conn = store.connect(finished.path)
    with pytest.raises(store.Refused):
        store.find_participant(conn, finished.tokens[1])
    with pytest.raises(store.Refused):
        store.check_admin(conn, finished.admin_token)
    conn.close()
    assert main(["study", "invite", s, "--participant", "99"]) == 2
    assert "--participant 99" in capsys.readouterr().err
    assert main(["study", "results", str(tmp_path / "none.study")]) == 2
    assert "not found" in capsys.readouterr().err
