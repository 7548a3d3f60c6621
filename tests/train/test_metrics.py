"""Metrics against hand-computed values, and the label map / report helpers (no model)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from edge_coat.data.folder import Clip
from edge_coat.train.labelmap import apply_label_map, parse_label_map
from edge_coat.train.metrics import anomaly_metrics, bootstrap_intervals, classification_metrics, partial_auc
from edge_coat.train.report import eval_document, format_confusion, write_json


def test_classification_metrics_match_a_hand_computed_confusion():
    labels = ["a", "b", "c"]
    y_true = ["a", "a", "a", "a", "b", "b", "c", "c"]
    y_pred = ["a", "a", "a", "b", "b", "c", "c", "a"]
    m, per = classification_metrics(y_true, y_pred, labels)
    assert m["confusion"] == [[3, 1, 0], [0, 1, 1], [1, 0, 1]]
    assert m["accuracy"] == pytest.approx(5 / 8)
    # recalls 3/4, 1/2, 1/2 -> UA 7/12; precisions 3/4, 1/2, 1/2 -> F1 3/4, 1/2, 1/2
    assert m["ua"] == pytest.approx((3 / 4 + 1 / 2 + 1 / 2) / 3)
    assert m["macro_f1"] == pytest.approx((3 / 4 + 1 / 2 + 1 / 2) / 3)
    assert per["a"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4}
    text = format_confusion(labels, m["confusion"])
    assert "true \\ pred" in text and text.splitlines()[-1].split() == ["c", "1", "0", "1"]


def test_ua_ignores_classes_absent_from_the_truth():
    m, per = classification_metrics(["a", "a", "b"], ["a", "c", "b"], ["a", "b", "c"])
    assert m["ua"] == pytest.approx((0.5 + 1.0) / 2)  # c has no support: not averaged
    assert per["c"]["support"] == 0 and per["c"]["precision"] == 0.0


def test_classification_metrics_refuse_labels_outside_the_set():
    with pytest.raises(ValueError, match="not in the label set"):
        classification_metrics(["a"], ["z"], ["a", "b"])


def test_pauc_is_the_raw_partial_area_over_max_fpr():
    # 10 normals scored 0..9, 2 abnormals: one above every normal, one above 8 of them.
    y = [0] * 10 + [1, 1]
    s = list(range(10)) + [20, 7.5]
    # ROC: TPR 0.5 at FPR 0, TPR 1.0 from FPR 0.2 -> area up to FPR 0.1 is 0.1 * 0.5.
    assert partial_auc(y, s, 0.1) == pytest.approx(0.5)
    m = anomaly_metrics(y, s, 0.1)
    assert m["auc"] == pytest.approx((10 + 8) / 20)
    from sklearn.metrics import roc_auc_score

    assert m["pauc_mcclish"] == pytest.approx(roc_auc_score(y, s, max_fpr=0.1))
    assert m["pauc"] != pytest.approx(m["pauc_mcclish"])


def test_pauc_extremes():
    rng = np.random.default_rng(0)
    y = np.r_[np.zeros(4000), np.ones(4000)]
    assert partial_auc(y, np.r_[np.zeros(4000), np.ones(4000)]) == pytest.approx(1.0)
    assert partial_auc(y, rng.random(8000), 0.1) == pytest.approx(0.05, abs=0.01)  # random: max_fpr / 2
    with pytest.raises(ValueError, match="both normal"):
        anomaly_metrics([1, 1], [0.1, 0.2])


def _clips(labels):
    return [Clip(file=f"{i}.wav", path=None, label=lab) for i, lab in enumerate(labels)]


def test_label_map_inline_and_file(tmp_path):
    path = tmp_path / "map.json"
    path.write_text(json.dumps({"joy": "happy", "boredom": None}))
    assert parse_label_map(str(path)) == {"joy": "happy", "boredom": None}
    assert parse_label_map('{"joy": "happy"}') == {"joy": "happy"}
    assert parse_label_map(None) is None
    with pytest.raises(ValueError, match="no such file"):
        parse_label_map(str(tmp_path / "missing.json"))
    with pytest.raises(ValueError, match="invalid JSON"):
        parse_label_map('{"joy": ')
    with pytest.raises(ValueError, match="model label"):
        parse_label_map('{"joy": 3}')


def test_label_map_drops_null_and_restricts_candidates():
    model_labels = ["neutral", "happy", "sad", "angry"]
    clips, cands = apply_label_map(_clips(["joy", "sad", "boredom", "joy"]),
                                   {"joy": "happy", "boredom": None}, model_labels)
    assert [c.label for c in clips] == ["happy", "sad", "happy"]
    assert cands == ["happy", "sad"]  # the model's order, only the labels in use
    clips, cands = apply_label_map(_clips(["sad", "angry"]), None, model_labels)
    assert cands == model_labels


def test_label_map_lists_every_unknown_label():
    with pytest.raises(ValueError) as err:
        apply_label_map(_clips(["joy", "boredom", "sad"]), {"joy": "glee"}, ["happy", "sad"])
    assert "'joy' (mapped to 'glee')" in str(err.value) and "'boredom' (not in the label map)" in str(err.value)


def test_eval_document_shape(tmp_path):
    doc = eval_document("emotion", "m", 3, {"accuracy": 1.0}, {"a": {"recall": 1.0}})
    out = write_json(tmp_path / "x" / "r.json", doc)
    assert list(json.loads(out.read_text())) == ["task", "model", "n", "metrics", "per_class"]
    with pytest.raises(ValueError):
        eval_document("emotion", "m", -1, {}, {})


def test_bootstrap_intervals_hold_the_point_values_and_match_a_loop():
    rng = np.random.default_rng(3)
    y_true = list(rng.choice(["a", "b", "c"], size=120, p=[0.5, 0.3, 0.2]))
    y_pred = [t if rng.random() < 0.7 else "a" for t in y_true]
    m, _ = classification_metrics(y_true, y_pred, ["a", "b", "c"])
    ci = bootstrap_intervals(y_true, y_pred, resamples=400, seed=5)
    for key in ("accuracy", "ua"):
        lo, hi = ci[key]
        assert lo < m[key] < hi and hi - lo < 0.3, (key, lo, m[key], hi)
    # the vectorised UA equals recomputing classification_metrics on each resample
    idx = np.random.default_rng(5).integers(0, 120, size=(400, 120))
    uas = [classification_metrics([y_true[i] for i in r], [y_pred[i] for i in r], ["a", "b", "c"])[0]["ua"] for r in idx]
    assert ci["ua"] == pytest.approx(list(np.percentile(uas, [2.5, 97.5])))
    assert bootstrap_intervals(y_true, y_pred, resamples=400, seed=5) == ci  # seeded: a rerun gives the same
    # all right: a point interval at 1
    assert bootstrap_intervals(["a", "b"] * 10, ["a", "b"] * 10, resamples=50) == {"accuracy": [1.0, 1.0], "ua": [1.0, 1.0]}
    with pytest.raises(ValueError, match="resamples"):
        bootstrap_intervals(y_true, y_pred, resamples=0)


def test_intervals_of_a_written_result_are_rebuilt_from_its_confusion(tmp_path, capsys):
    from edge_coat.train.metrics import main, pairs_from_confusion

    y_true = ["a"] * 6 + ["b"] * 4
    y_pred = ["a", "a", "a", "a", "b", "b", "b", "b", "b", "a"]
    m, per = classification_metrics(y_true, y_pred, ["a", "b"])
    t, p = pairs_from_confusion(m["labels"], m["confusion"])
    assert classification_metrics(t, p, ["a", "b"])[0] == m
    path = write_json(tmp_path / "r.json", eval_document("emotion", "m", 10, m, per))
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert main([str(path), str(bad), "--resamples", "200"]) == 2  # one bad file: reported, the others still printed
    out, err = capsys.readouterr()
    ci = bootstrap_intervals(t, p, resamples=200)  # the clips in the confusion's order
    assert f"UA {m['ua']:.3f} [{ci['ua'][0]:.3f}-{ci['ua'][1]:.3f}]" in out
    assert "bad.json: not a classification result" in err and len(err.strip().splitlines()) == 1


def test_paired_bootstrap_of_a_difference_is_narrower_than_unpaired_and_matches_a_loop():
    from edge_coat.train.metrics import paired_bootstrap

    rng = np.random.default_rng(7)
    y_true = list(rng.choice(["a", "b", "c"], size=150))
    hard = rng.random(150) < 0.4  # clips both systems get wrong: shared difficulty
    pred_b = [("a" if t != "a" else "b") if h else t for t, h in zip(y_true, hard)]
    pred_a = [t if i % 10 == 0 else p for i, (t, p) in enumerate(zip(y_true, pred_b))]  # B, with every 10th clip fixed
    d = paired_bootstrap(y_true, pred_a, pred_b, resamples=300, seed=2)
    ma = classification_metrics(y_true, pred_a, ["a", "b", "c"])[0]
    mb = classification_metrics(y_true, pred_b, ["a", "b", "c"])[0]
    assert d["ua"]["diff"] == pytest.approx(ma["ua"] - mb["ua"]) and d["ua"]["diff"] > 0
    lo, hi = d["ua"]["ci95"]
    assert lo <= d["ua"]["diff"] <= hi
    # a loop over the same draws gives the same interval
    idx = np.random.default_rng(2).integers(0, 150, size=(300, 150))
    diffs = [classification_metrics([y_true[i] for i in r], [pred_a[i] for i in r], ["a", "b", "c"])[0]["ua"]
             - classification_metrics([y_true[i] for i in r], [pred_b[i] for i in r], ["a", "b", "c"])[0]["ua"] for r in idx]
    assert [lo, hi] == pytest.approx(list(np.percentile(diffs, [2.5, 97.5])))
    # pairing: the difference's interval is narrower than either system's own interval
    ci_a = bootstrap_intervals(y_true, pred_a, resamples=300, seed=2)["ua"]
    assert hi - lo < ci_a[1] - ci_a[0]


def test_paired_command_reads_two_prediction_files_and_refuses_mismatches(tmp_path, capsys):
    from edge_coat.train.metrics import main

    (tmp_path / "labels.csv").write_text("file,label\nx.wav,a\ny.wav,b\nz.wav,a\n")
    (tmp_path / "a.csv").write_text("file,prediction,score\nx.wav,a,0.9\ny.wav,b,0.8\nz.wav,a,0.7\n")
    (tmp_path / "b.csv").write_text("file,prediction,score\nz.wav,b,0.6\nx.wav,a,0.9\ny.wav,a,0.5\n")
    (tmp_path / "short.csv").write_text("file,prediction,score\nx.wav,a,0.9\n")
    assert main(["--paired", str(tmp_path / "labels.csv"), str(tmp_path / "a.csv"), str(tmp_path / "b.csv"),
                 "--resamples", "100"]) == 0
    out = capsys.readouterr().out
    assert "A - B on 3 clips: accuracy +0.667" in out and "UA +0.750" in out  # A all right; B right on x only
    assert main(["--paired", str(tmp_path / "labels.csv"), str(tmp_path / "a.csv"), str(tmp_path / "short.csv")]) == 2
    err = capsys.readouterr().err
    assert "scored different clips" in err and len(err.strip().splitlines()) == 1
