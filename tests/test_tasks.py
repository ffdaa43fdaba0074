"""``headswitch.tasks``: the one reader of a model's ``tasks`` signature, ids with gaps."""

from __future__ import annotations

import subprocess
import sys

import pytest

import headswitch
from headswitch.tasks import TaskInfo, TaskList, UnknownTaskError

# What the tasks signature of a version whose task 3 was removed returns (one example's row):
# ids out of order, bytes, labels padded with "" to the widest head.
GAPPED = TaskList.from_columns(
    [7, 0, 1, 2, 4], [b"lang", b"topic", b"spam", b"2019", b"intent"], [2, 3, 2, 1, 2],
    [[b"en", b"fr", b""], [b"a", b"b", b"c"], [b"ham", b"spam", b""], [b"x", b"", b""],
     [b"buy", b"sell", b""]],
    [b"softmax", b"softmax", b"sigmoid", b"linear", b"softmax"])


def test_ids_may_have_gaps_and_any_order() -> None:
    assert GAPPED.ids == (0, 1, 2, 4, 7)
    assert GAPPED.names == ("topic", "spam", "2019", "intent", "lang")
    assert GAPPED.by_id[7] == TaskInfo(7, "lang", ("en", "fr"), "softmax")
    assert GAPPED.by_id[7].num_classes == 2
    assert [t.id for t in GAPPED] == [0, 1, 2, 4, 7] and len(GAPPED) == 5


def test_name_to_id_and_id_to_name() -> None:
    assert GAPPED.id_of("intent") == 4 and GAPPED.name_of(4) == "intent"
    with pytest.raises(UnknownTaskError) as caught:
        GAPPED.name_of(3)
    assert caught.value.task == 3
    assert caught.value.message == ("unknown task id 3; the model has 5 tasks: ids 0, 1, 2, 4, "
                                    "7, names topic, spam, 2019, intent, lang")
    with pytest.raises(UnknownTaskError, match="unknown task 'weather'; .* names topic"):
        GAPPED.id_of("weather")


def test_resolve_takes_a_name_an_id_or_an_id_as_text() -> None:
    assert [GAPPED.resolve(t) for t in (7, "lang", "7", " 4 ", "2019", "2")] == \
        [7, 7, 7, 4, 2, 2]  # "2019" is a name, not the id 2019
    for bad in (3, 8, -1, "3", "weather", "", "1.0"):
        assert GAPPED.find(bad) is None
        with pytest.raises(UnknownTaskError) as caught:
            GAPPED.resolve(bad)
        assert caught.value.task == bad
        assert repr(bad) in caught.value.message or str(bad) in caught.value.message
        assert "ids 0, 1, 2, 4, 7" in caught.value.message
    assert isinstance(caught.value, headswitch.Error) and isinstance(caught.value, LookupError)


def test_long_lists_are_cut_short_in_messages() -> None:
    many = TaskList(TaskInfo(i * 2, f"t{i}", ("a",), "linear") for i in range(30))
    message = many.unknown("nope")
    assert message.startswith("unknown task 'nope'; the model has 30 tasks: ids 0, 2, ")
    assert message.count("...") == 2 and "t10" not in message


def test_a_task_named_twice_is_refused() -> None:
    with pytest.raises(ValueError, match="each task once"):
        TaskList([TaskInfo(0, "a", (), "linear"), TaskInfo(1, "a", (), "linear")])


def test_importing_it_imports_no_numpy_or_tensorflow() -> None:
    code = ("import sys, headswitch.tasks; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('numpy', 'tensorflow')))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          check=True)
    assert done.stdout.strip() == "[]"
