"""Every exception the collection defines derives from the one base, TritonFilError."""

from __future__ import annotations

import importlib
import inspect
import pkgutil

import pytest

from ansible_collections.rapids.triton_fil.plugins import module_utils
from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError


def _modules():
    names = [info.name for info in pkgutil.walk_packages(module_utils.__path__, module_utils.__name__ + ".")]
    return sorted(names)


def _exceptions():
    found = []
    for name in _modules():
        mod = importlib.import_module(name)
        for _attr, obj in inspect.getmembers(mod, inspect.isclass):
            if obj.__module__ == name and issubclass(obj, BaseException):
                found.append(obj)
    return found


EXCEPTIONS = _exceptions()


def test_the_walk_finds_the_hierarchies():
    names = {cls.__name__ for cls in EXCEPTIONS}
    assert {"GcpError", "GcpApiError", "RegistryError", "InvalidReference", "VerifyError", "RolloutError",
            "ModelRepositoryError", "TunnelError", "FilModelError", "PbtxtEditError", "ReleaseError",
            "UbjsonError", "TritonFilError"} <= names


@pytest.mark.parametrize("cls", EXCEPTIONS, ids=lambda c: f"{c.__module__.rsplit('.', 2)[-2]}.{c.__name__}")
def test_every_exception_is_a_triton_fil_error(cls):
    assert issubclass(cls, TritonFilError), f"{cls.__module__}.{cls.__name__} must derive from TritonFilError"


@pytest.mark.parametrize("name", ["FilModelError", "PbtxtEditError", "ReleaseError", "UbjsonError", "InvalidReference"])
def test_input_errors_stay_value_errors(name):
    cls = next(c for c in EXCEPTIONS if c.__name__ == name)
    assert issubclass(cls, ValueError)
