"""One contract for every classifier in model/ (scikit-learn style), the transformer included.

The transformer here is the tests' tiny one (tests/factories.py: a random 2-layer base, ~1 s to fit)
with its default linear ensemble; the contract is what the router relies on
(:class:`model.protocols.RoutingClassifier`)."""
import numpy as np
import pytest
from sklearn.base import clone
from sklearn.exceptions import NotFittedError

from model.linear import LinearTextClassifier
from model.protocols import RoutingClassifier
from tests.factories import make_unigram_base, tiny_rows, tiny_transformer

@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    pytest.importorskip("transformers")
    return make_unigram_base(tmp_path_factory.mktemp("base") / "tiny-e5")


CLASSIFIERS = {
    "linear": lambda base: LinearTextClassifier(),
    "linear-isotonic-chars": lambda base: LinearTextClassifier(word_ngram_range=(0, 0), calibration="isotonic", C=1.0),
    "transformer": lambda base: tiny_transformer(base),
    "transformer-channel-head": lambda base: tiny_transformer(base, channel_map={r["department"]: r["channel"] for r in tiny_rows()}),
}


@pytest.fixture(params=list(CLASSIFIERS))
def classifier(request):
    """An unfitted classifier of each kind (the transformer ones on the tiny base)."""
    base = request.getfixturevalue("tiny_base") if request.param.startswith("transformer") else None
    return CLASSIFIERS[request.param](base)


def test_classifier_contract(classifier):
    rows = tiny_rows()
    texts, labels = [r["text"] for r in rows], [r["department"] for r in rows]
    est = clone(classifier)
    with pytest.raises(NotFittedError):
        est.predict_proba(["有人打架"])
    assert est.fit(texts, labels) is est
    assert isinstance(est, RoutingClassifier) and est.model_class in ("linear", "transformer")  # what the router needs
    proba = est.predict_proba(["楼下有人打架", "家里停水了", "车被堵了"])
    assert proba.shape == (3, len(set(labels)))
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert list(est.classes_) == sorted(set(labels))
    assert list(est.predict(["楼下有人打架"])) == [est.classes_[proba[0].argmax()]]
    # It learned something: held-out paraphrases land on the right class.
    assert est.predict(["小区停电了好几个小时"])[0] == "utilities"
    # The router's path: probabilities and per-text features in one call, features that explain() takes.
    same, features = est.predict_proba_with_features(["楼下有人打架", "家里停水了", "车被堵了"])
    np.testing.assert_allclose(same, proba, atol=1e-6)
    terms = est.explain("家里停水了", "utilities", top_k=3, features=None if features is None else features[1])
    assert terms == est.explain("家里停水了", "utilities", top_k=3) and all(isinstance(t, str) for t, _ in terms)
    assert set(est.get_params()) == set(clone(est).get_params())


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
