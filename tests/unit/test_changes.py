"""The one changes/diff convention (plugins/module_utils/changes.py)."""

from __future__ import annotations

from ansible_collections.rapids.triton_fil.plugins.module_utils.changes import change, diff_of


def test_change_is_field_before_after_then_extras():
    assert change("labels", {}, {"a": "1"}) == {"field": "labels", "before": {}, "after": {"a": "1"}}
    assert list(change("size", 1, 2, action="recreate")) == ["field", "before", "after", "action"]


def test_diff_of_keys_both_sides_by_field():
    changes = [change("a", 1, 2), change("b.c", None, "x", in_place=True)]
    assert diff_of(changes) == {"before": {"a": 1, "b.c": None}, "after": {"a": 2, "b.c": "x"}}
    assert diff_of([]) == {"before": {}, "after": {}}


def test_diff_of_another_key():
    changes = [{"file": "m/config.pbtxt", "before": "old", "after": "new"}]
    assert diff_of(changes, key="file") == {"before": {"m/config.pbtxt": "old"}, "after": {"m/config.pbtxt": "new"}}
