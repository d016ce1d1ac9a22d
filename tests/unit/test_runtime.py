"""runtime.run_module: the one way every module checks its libraries and input, runs, warns and fails."""

from __future__ import annotations

import pytest

from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError
from ansible_collections.rapids.triton_fil.plugins.module_utils.runtime import run_module


class Exited(Exception):
    def __init__(self, failed, result):
        super().__init__(result.get("msg"))
        self.failed, self.result = failed, result


class FakeModule:
    """What run_module uses of AnsibleModule: _name, params, warn, fail_json and exit_json."""

    def __init__(self, params=None):
        self._name = "rapids.triton_fil.some_module"
        self.params = params or {}
        self.warnings = []

    def warn(self, text):
        self.warnings.append(text)

    def fail_json(self, **result):
        raise Exited(True, result)

    def exit_json(self, **result):
        raise Exited(False, result)


class Noted(TritonFilError):
    note = "nothing was written"


def _run(module, runner, **kwargs):
    with pytest.raises(Exited) as caught:
        run_module(module, runner, **kwargs)
    return caught.value


def test_success_exits_with_the_result_and_turns_warnings_into_warnings():
    module = FakeModule()
    done = _run(module, lambda: {"changed": True, "warnings": ["careful"], "thing": 1})
    assert not done.failed
    assert done.result == {"changed": True, "thing": 1}
    assert module.warnings == ["careful"]


def test_a_missing_library_fails_before_the_input_or_the_run():
    calls = []
    done = _run(FakeModule(), lambda: calls.append("run"), requires=[(False, "google-auth", ImportError("x"))],
                validate=lambda params: calls.append("validate") or [])
    assert done.failed and "google-auth" in done.result["msg"]
    assert calls == []


def test_input_problems_are_named_by_the_module_and_stop_the_run():
    calls = []
    done = _run(FakeModule({"a": 0}), lambda: calls.append("run"),
                validate=lambda params: ["a: 0 must be at least 1", "b: is required"])
    assert done.result["msg"] == "some_module: a: 0 must be at least 1; b: is required"
    assert calls == []


def test_an_error_fails_with_its_note_its_result_without_the_diff_and_its_warnings():
    def runner():
        exc = Noted("servers: empty")
        exc.result = {"changed": False, "diff": [{"before": "", "after": "x"}], "done": [], "warnings": ["w"]}
        raise exc

    module = FakeModule()
    done = _run(module, runner, extra=lambda exc: {"operations": ["op-1"]})
    assert done.failed
    assert done.result == {"msg": "some_module: servers: empty (nothing was written)", "changed": False,
                           "done": [], "operations": ["op-1"]}
    assert module.warnings == ["w"]


def test_other_exceptions_are_not_swallowed():
    def runner():
        raise KeyError("bug")

    with pytest.raises(KeyError):
        run_module(FakeModule(), runner)
