"""The layers all backbone groups share, kept one copy (``--backbone-groups``).

When backbones differ only in their top layers (some tasks fine-tuned the top of a shared
encoder), the layers below are the same in every group: the trunk. Each group's backbone is
then rebuilt as the first group's trunk followed by its own branch (its layers from the trunk's
output to its features), so the SavedModel stores the trunk's variables once. Every example
still goes through the trunk once (in its own group's backbone), so nothing is computed twice.

The trunk ends at the deepest layer equal in every group's backbone (exactly: no
``--tolerance``, so each group computes exactly what it computed alone) whose output feeds the
rest of each backbone alone. A backbone that is one nested model called on the text is looked
into, so a fine-tuned top inside a nested base model still shares the layers below it.
"""

from __future__ import annotations

import dataclasses

from headswitch.contract import INPUT_TEXT

from . import _graph
from ._keras import KerasModel


@dataclasses.dataclass(frozen=True)
class Trunk:
    model: KerasModel  # text -> the trunk's output
    layers: tuple[str, ...]  # its layer calls, in the first group's backbone
    backbones: list[KerasModel]  # each group's backbone: the trunk, then its branch


def _inside(backbone: KerasModel) -> KerasModel:
    """The nested model a backbone only wraps (text -> nested(text)), else the backbone."""
    ops = [op for op in backbone.operations() if type(op).__name__ != "InputLayer"]
    if len(ops) == 1 and backbone.children(ops[0]) is not None:
        return _inside(backbone.derived(ops[0]))
    return backbone


def find(backbones: list[KerasModel]) -> Trunk | None:
    """The shared trunk of the groups' backbones (text -> features), or None."""
    inner = [_inside(b) for b in backbones]
    ops = [m.operations() for m in inner]
    shared = min(len(o) for o in ops)
    reference = [_graph.OpSnapshot.of(op) for op in ops[0][:shared]]
    for mine in ops[1:]:
        diff, _ = _graph.divergence(mine, reference, 0.0, limit=shared - 1)
        if diff is not None:
            shared = min(shared, diff.position)
    cuts = [p for p in range(1, shared) if all(
        type(o[p]).__name__ != "InputLayer" and (p == len(o) - 1 or m.head(o[p]) is not None)
        for m, o in zip(inner, ops))]
    if not cuts:
        return None
    end = cuts[-1]
    trunk = inner[0].up_to(ops[0][end], name="trunk").with_text_input(INPUT_TEXT)
    variables, resources = _graph.saved_state(trunk.model)
    if not variables and not resources:
        return None  # nothing to keep one copy of
    rebuilt = []
    for number, (m, o) in enumerate(zip(inner, ops)):
        branch = None if end == len(o) - 1 else m.head(o[end])
        text = trunk.kit.text_input(name=INPUT_TEXT)
        features = trunk.model(text)
        if branch is not None:
            features = branch.model(features)
        rebuilt.append(trunk.derived(trunk.kit.model(text, features, name=f"backbone_{number}")))
    return Trunk(trunk, tuple(op.name for op in ops[0][: end + 1]), rebuilt)
