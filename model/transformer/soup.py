"""A weight soup: the networks of a seed ensemble averaged into one network that serves alone.

Networks fine-tuned from the same pretrained encoder and the same head initialisation, differing only
in batch order and dropout, stay close enough in weight space that their uniform average is itself a
good network (Wortsman et al. 2022, "Model soups"). The soup costs ``n_networks`` fine-tunes but serves
at the cost of one, where a seed ensemble serves every network. Measured in bench/README.md (stop 27).
"""
from __future__ import annotations

import numpy as np


def average_state_dicts(states: list[dict]) -> dict:
    """The uniform average of ``states`` (state dicts of networks with one architecture), float tensors
    averaged in float32 and cast back; other tensors (integer buffers) taken from the first."""
    if not states:
        raise ValueError("no networks to average")
    first = states[0]
    if any(s.keys() != first.keys() for s in states[1:]):
        raise ValueError("the networks of a soup must share one architecture")
    out = {}
    for key, value in first.items():
        if value.is_floating_point():
            out[key] = (sum(s[key].float() for s in states) / len(states)).to(value.dtype)
        else:
            out[key] = value
    return out


def make_soup(clf, val_ids: list, y_val: np.ndarray, c_val: np.ndarray, trainer) -> dict:
    """Average ``clf``'s network with its seed ensemble's (``clf.members_``) into ``clf.net_``, refit both
    temperatures on the validation rows (token ids ``val_ids``, department labels ``y_val``, channel labels
    ``c_val``, -100: none) and set ``validation_proba_`` from the soup; the members are dropped. Returns
    what the soup did to validation accuracy: {"networks", "network_accuracy" (one per network), "accuracy"}."""
    nets = [clf, *clf.members_]
    before = [float(np.mean(m._combine(*m._logits(val_ids)).argmax(1) == y_val)) for m in nets] if len(y_val) else []
    clf.net_.load_state_dict(average_state_dicts([m.net_.state_dict() for m in nets]))
    clf.net_.eval()
    clf.session_ = None
    clf.members_ = []
    if hasattr(clf, "network_validation_proba_"):
        del clf.network_validation_proba_
    report = {"networks": len(nets), "network_accuracy": [round(a, 4) for a in before], "accuracy": None}
    if len(y_val):
        dl, cl = clf._logits(val_ids)
        clf.temperature_, clf.channel_temperature_ = trainer.temperatures(dl, y_val, cl, c_val)
        clf.validation_proba_ = clf._combine(dl, cl)
        report["accuracy"] = round(float(np.mean(clf.validation_proba_.argmax(1) == y_val)), 4)
    return report
