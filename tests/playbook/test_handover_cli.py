"""The analyst's way to read a hand-over credential: ``python -m playbook.handover``."""

from __future__ import annotations

import uuid

import pytest
from prefect.blocks.system import Secret

from playbook.handover import main


@pytest.fixture
def stored(prefect_api: str) -> tuple[str, str]:
    run_id = str(uuid.uuid4())
    value = "Handover-Test-Value-" + uuid.uuid4().hex[:8]
    Secret(value=value).save(f"unblock-handover-{run_id}", overwrite=True)
    return run_id, value


def test_prints_the_credential_for_a_run_id(stored: tuple[str, str], capsys) -> None:
    run_id, value = stored
    assert main([run_id, "--allow-non-tty"]) == 0
    out, err = capsys.readouterr()
    assert out.strip() == value
    assert value not in err and "never by e-mail" in err


def test_refuses_to_print_into_a_pipe(stored: tuple[str, str], capsys) -> None:
    run_id, value = stored
    assert main([run_id]) == 2  # pytest's stdout is not a terminal
    out, err = capsys.readouterr()
    assert value not in out + err


def test_missing_block_is_a_clear_error(prefect_api: str, capsys) -> None:
    assert main([str(uuid.uuid4()), "--allow-non-tty"]) == 1
    assert "already deleted" in capsys.readouterr().err


@pytest.mark.parametrize(
    "bad", ["../../etc/passwd", "unblock-handover-x; rm -rf /", "", "a" * 5000]
)
def test_hostile_names_are_refused(bad: str) -> None:
    with pytest.raises(SystemExit, match="not a flow run id"):
        main([bad, "--allow-non-tty"])
