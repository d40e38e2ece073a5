"""Running a module's main() in the test process and getting the result it exits with."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from ansible.module_utils import basic
from ansible.module_utils.testing import patch_module_args


class ModuleExit(Exception):
    """Raised by exit_json/fail_json instead of printing and exiting; carries the result."""

    def __init__(self, result: dict) -> None:
        super().__init__(result)
        self.result = result


@pytest.fixture
def call_main(monkeypatch) -> Callable[[Callable[[], None], dict], dict]:
    """call_main(main, params): run main() with these module args; its result dict.

    `failed` is always in the result: False from exit_json, True (with `msg`) from fail_json.
    """

    def exit_json(self, **result):
        raise ModuleExit(dict(result, failed=False))

    def fail_json(self, msg, **result):
        raise ModuleExit(dict(result, msg=msg, failed=True))

    monkeypatch.setattr(basic.AnsibleModule, "exit_json", exit_json)
    monkeypatch.setattr(basic.AnsibleModule, "fail_json", fail_json)

    def call(main: Callable[[], None], params: dict) -> dict:
        with patch_module_args(params), pytest.raises(ModuleExit) as caught:
            main()
        return caught.value.result

    return call
