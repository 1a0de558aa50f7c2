"""One contract for every classifier in model/ (scikit-learn style)."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from model.linear import LinearTextClassifier
from tests.factories import tiny_rows

CLASSIFIERS = [
    LinearTextClassifier(),
    LinearTextClassifier(word_ngram_range=(0, 0), calibration="isotonic", C=1.0),
]


@pytest.mark.parametrize("clf", CLASSIFIERS, ids=lambda c: repr(c))
def test_classifier_contract(clf):
    rows = tiny_rows()
    texts, labels = [r["text"] for r in rows], [r["department"] for r in rows]
    est = clone(clf)
    with pytest.raises(NotFittedError):
        est.predict_proba(["有人打架"])
    assert est.fit(texts, labels) is est
    proba = est.predict_proba(["楼下有人打架", "家里停水了", "车被堵了"])
    assert proba.shape == (3, len(set(labels)))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert list(est.classes_) == sorted(set(labels))
    assert list(est.predict(["楼下有人打架"])) == [est.classes_[proba[0].argmax()]]
    # It learned something: held-out paraphrases land on the right class.
    assert est.predict(["小区停电了好几个小时"])[0] == "utilities"


def test_params_are_stored_not_validated_in_init():
    clf = LinearTextClassifier(calibration="nonsense")
    assert clf.get_params()["calibration"] == "nonsense"
    with pytest.raises(ValueError, match="calibration"):
        clf.fit(["a", "b"], ["x", "y"])


def test_explain_names_terms_of_the_text():
    rows = tiny_rows()
    clf = LinearTextClassifier().fit([r["text"] for r in rows], [r["department"] for r in rows])
    terms = clf.explain("小区停水了，什么时候来水", "utilities")
    assert terms and all(t in "小区停水了，什么时候来水".replace("，", "") or t.replace(" ", "") in "小区停水了什么时候来水" for t, _ in terms)


def test_single_label_is_refused():
    with pytest.raises(ValueError, match="two different labels"):
        LinearTextClassifier().fit(["a", "b"], ["x", "x"])


@pytest.mark.parametrize("calibration", ["sigmoid", "isotonic"])
def test_fast_inference_equals_scikit_learn(calibration):
    rows = tiny_rows()
    texts, labels = [r["text"] for r in rows], [r["department"] for r in rows]
    channel_of = {r["department"]: r["channel"] for r in rows}
    clf = LinearTextClassifier(calibration=calibration, channel_of=channel_of).fit(texts, labels)
    probe = ["楼下有人打架", "家里停水了", "完全没见过的词语组合", "车被堵了 ABC 123"]
    X_ref = clf.features_.transform(probe)
    np.testing.assert_allclose(clf.transform(probe).toarray(), X_ref.toarray(), atol=1e-12)
    ref = clf.calibrated_.predict_proba(X_ref)
    ours = clf._calibrated_proba(clf.calibrated_, clf.svm_, clf.transform(probe))
    np.testing.assert_allclose(ours, ref, atol=1e-9)
    cal = clf.channel_calibrated_
    np.testing.assert_allclose(clf._calibrated_proba(cal, cal.calibrated_classifiers_[0].estimator, X_ref), cal.predict_proba(X_ref), atol=1e-9)
    # The request path (feature rows, no sparse matrix) gives the same scores and reasons.
    feats = clf.transform_rows(probe)
    np.testing.assert_allclose(clf._calibrated_proba(clf.calibrated_, clf.svm_, feats), ref, atol=1e-9)
    np.testing.assert_allclose(clf.predict_proba_features(feats), clf.predict_proba(probe), atol=1e-12)
    label = str(clf.classes_[0])
    assert clf.explain(probe[0], label, features=feats[0]) == clf.explain(probe[0], label)
