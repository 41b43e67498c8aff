"""Bad command lines, unusable run directories, broken stored runs, a full disk: one line, exit 3.

Issue 11, items 8 and 10: each of these ended in a Python traceback (or exit 2, the
INCONCLUSIVE code, for usage errors), and a failed re-render left the previous PASS behind.
"""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path

import pytest
from support import run_cli
from test_pipeline import HEALTH_ONLY

from stability_lib import cli
from stability_lib.execution.notebooks import prepare_run_dir
from stability_lib.execution.params import load_params
from stability_lib.execution.secrets import secret_values

# ${NAME} values planted in title, description, target.commit and inside base_url.
PLANTED = {
    "SP_TITLE_SECRET": "TitleSecret7391",
    "SP_DESC_SECRET": "DescSecret4410",
    "SP_COMMIT_SECRET": "CommitSecret0923",
    "SP_URL_PASSWORD": "UrlPassword5582",
    "SP_URL_KEY": "UrlQueryKey6604",
}


def params_with_planted_secrets(base_url: str) -> str:
    address = base_url.replace("http://", "http://probe:${SP_URL_PASSWORD}@") + "/?key=${SP_URL_KEY}"
    return (
        "title: 'Release ${SP_TITLE_SECRET}'\n"
        "description: 'about ${SP_DESC_SECRET}'\n"
        f"target:\n  base_url: '{address}'\n  commit: '${{SP_COMMIT_SECRET}}'\n"
        "sections:" + HEALTH_ONLY.split("sections:", 1)[1]
    )


UNREACHABLE = {"TARGET_URL": "http://127.0.0.1:9"}


def assert_one_line_could_not_run(proc: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr + proc.stdout
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


def marked(marker: str) -> dict[int, list[str]]:
    """Live processes whose environment carries ``marker``: pid -> argv (zombies excluded)."""
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() not in (entry / "environ").read_bytes():
                continue
            if (entry / "stat").read_text().rsplit(")", 1)[1].split()[0] == "Z":
                continue
            found[int(entry.name)] = (entry / "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
    return found


@pytest.mark.parametrize(
    "args",
    [["run"], ["frobnicate"], ["run", "p.yaml", "--workers", "99"], ["baseline", "save", "x"], ["report"]],
    ids=["missing-params", "unknown-command", "workers-out-of-range", "missing-name", "missing-run-dir"],
)
def test_a_usage_error_exits_3_not_the_inconclusive_code(args: list[str]) -> None:
    proc = run_cli(args)
    assert proc.returncode == 3, proc.stderr
    assert "could not run:" in proc.stderr and "Traceback" not in proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


def test_help_still_exits_0() -> None:
    assert run_cli(["--help"]).returncode == 0


@pytest.mark.parametrize("where", ["file", "under-file", "/dev/null", "/dev/null/run", "/proc/run", "/sys/run"])
def test_an_unusable_out_folder_is_one_line(tmp_path: Path, where: str) -> None:
    params = tmp_path / "health.yaml"
    params.write_text(HEALTH_ONLY)
    a_file = tmp_path / "a-file"
    a_file.write_text("not a folder")
    out = {"file": str(a_file), "under-file": str(a_file / "run")}.get(where, where)
    proc = run_cli(["run", str(params), "--out", out], env=UNREACHABLE)
    assert_one_line_could_not_run(proc, "run directory")
    assert a_file.read_text() == "not a folder"


def stored_run(root: Path) -> Path:
    """A run directory as a finished PASS run leaves it (the parts a re-render reads first)."""
    run_dir = root / "run"
    (run_dir / "evidence").mkdir(parents=True)
    (run_dir / "notebooks").mkdir()
    (run_dir / "params.yaml").write_text(HEALTH_ONLY)
    (run_dir / "run.json").write_text(
        json.dumps(
            {"run_id": "run", "started_at": "2026-01-01T00:00:00+00:00", "targets": {"candidate": "http://127.0.0.1:9"}}
        )
    )
    (run_dir / "summary.json").write_text(json.dumps({"verdict": "PASS", "exit_code": 0}))
    (run_dir / "report.html").write_text("<p>Verdict: PASS</p>")
    return run_dir


def break_run_json(run_dir: Path) -> None:
    (run_dir / "run.json").write_text('{"run_id": "run", ')


def run_json_not_an_object(run_dir: Path) -> None:
    (run_dir / "run.json").write_text("[1, 2]")


def params_not_utf8(run_dir: Path) -> None:
    (run_dir / "params.yaml").write_bytes(b'title: "caf\xe9 \xff"\n' + HEALTH_ONLY.encode())


def params_unparseable(run_dir: Path) -> None:
    (run_dir / "params.yaml").write_text("title: [unclosed\n")


@pytest.mark.parametrize("breakage", [break_run_json, run_json_not_an_object, params_not_utf8, params_unparseable])
def test_report_on_a_broken_run_is_one_line_and_leaves_no_stale_pass(tmp_path: Path, breakage) -> None:
    run_dir = stored_run(tmp_path)
    breakage(run_dir)
    proc = run_cli(["report", str(run_dir)])
    assert_one_line_could_not_run(proc)
    # The previous verdict must not survive a failed re-render looking current.
    assert not (run_dir / "summary.json").exists()
    assert not (run_dir / "report.html").exists()


def test_report_on_a_missing_folder_is_one_line(tmp_path: Path) -> None:
    proc = run_cli(["report", str(tmp_path / "no-such-run")])
    assert_one_line_could_not_run(proc, "no run directory")


def test_report_on_a_folder_that_is_not_a_run_keeps_its_files(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text("{}")
    proc = run_cli(["report", str(tmp_path)])
    assert_one_line_could_not_run(proc, "not a run directory")
    assert (tmp_path / "summary.json").exists()  # not ours: never deleted


def test_an_unexpected_exception_is_one_line_with_the_traceback_in_run_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    run_dir = stored_run(tmp_path)

    def broken(_run_dir: Path) -> dict:
        raise ZeroDivisionError("a bug of ours")

    monkeypatch.setattr("stability_lib._pipeline.summarize_run", broken)
    assert cli.main(["report", str(run_dir)]) == 3
    err = capsys.readouterr().err
    assert [line for line in err.splitlines() if line.strip()] == [
        f"stability: could not run: ZeroDivisionError: a bug of ours (traceback in {run_dir.resolve() / 'run.log'})"
    ]
    log = (run_dir / "run.log").read_text()
    assert "Traceback" in log and "ZeroDivisionError" in log
    assert not (run_dir / "summary.json").exists()


def test_an_unexpected_exception_outside_a_run_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(*_args, **_kwargs):
        raise KeyError("a bug of ours")

    monkeypatch.setattr("stability_lib._pipeline.run", broken)
    assert cli.main(["run", "whatever.yaml"]) == 3
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "internal error: KeyError" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("flags", "needle"),
    [(["--variant", "bogus"], "bogus"), (["--fault", "banana"], "banana"), (["--baseline-variant", "nope"], "nope")],
)
def test_demo_with_a_bad_variant_or_fault_is_one_line_and_leaves_no_process(
    tmp_path: Path, flags: list[str], needle: str
) -> None:
    marker = f"STABILITY_TEST_MARKER={uuid.uuid4().hex}"
    proc = run_cli(["demo", *flags, "--out", str(tmp_path / "run")], env=dict([marker.split("=", 1)]), timeout=120)
    assert_one_line_could_not_run(proc, "did not start", needle)
    assert marked(marker) == {}  # the services, and the kernels that started while they booted
    assert not (tmp_path / "run").exists()  # nothing ran: no run directory to mistake for a run


def test_run_json_and_fingerprint_carry_no_secret_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """${NAME} in title, description, target.commit and inside base_url (userinfo, query)."""
    for name, value in PLANTED.items():
        monkeypatch.setenv(name, value)
    params_file = tmp_path / "p.yaml"
    params_file.write_text(params_with_planted_secrets("http://127.0.0.1:9"))
    params, raw = load_params(params_file)
    secrets = secret_values(raw, os.environ)
    run_dir = prepare_run_dir(params_file, raw, params, tmp_path / "run", [], secrets)
    written = b"".join(p.read_bytes() for p in run_dir.rglob("*") if p.is_file())
    assert secrets and not [s for s in secrets if s.encode() in written]
    assert json.loads((run_dir / "run.json").read_text())["title"].startswith("Release ")
    # The redactor's own helper decides what is secret; these must all be among its values.
    assert set(PLANTED.values()) <= secrets


@pytest.mark.slow
@pytest.mark.skipif(os.geteuid() != 0, reason="mounting a tmpfs needs root")
@pytest.mark.parametrize("size", ["16k", "40k"])  # 16k: full before the first evidence; 40k: after a section ran
def test_a_disk_that_fills_during_the_run_is_one_line_exit_3(tmp_path: Path, candidate_url: str, size: str) -> None:
    disk = tmp_path / "disk"
    disk.mkdir()
    if subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(disk)], capture_output=True
    ).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        params = tmp_path / "health.yaml"
        params.write_text(HEALTH_ONLY)
        proc = run_cli(["run", str(params), "--out", str(disk / "run")], env={"TARGET_URL": candidate_url})
        if proc.returncode in (0, 1, 2):  # enough room after all: then there must be a report
            assert (disk / "run" / "report.html").exists()
        else:
            assert_one_line_could_not_run(proc, "No space left on device")
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


@pytest.mark.slow
def test_secrets_in_title_commit_and_address_reach_no_file_and_no_terminal(tmp_path: Path, candidate_url: str) -> None:
    """Issue 11, items 2b/2c: every file of the run, the PDF text and the terminal, against
    whatever the redactor's ``secret_values`` calls secret (the source of truth)."""
    from support import pdf_text

    params = tmp_path / "p.yaml"
    params.write_text(params_with_planted_secrets(candidate_url))
    out = tmp_path / "run"
    proc = run_cli(["run", str(params), "--out", str(out)], env=PLANTED)
    assert proc.returncode in (0, 1, 2), proc.stdout + proc.stderr
    import yaml

    secrets = secret_values(yaml.safe_load(params.read_text()), PLANTED)
    assert set(PLANTED.values()) <= secrets
    leaks = {
        s: [str(p.relative_to(out)) for p in out.rglob("*") if p.is_file() and s.encode() in p.read_bytes()]
        for s in secrets
    }
    assert {s: where for s, where in leaks.items() if where} == {}
    terminal_and_pdf = proc.stdout + proc.stderr + pdf_text(out / "report.pdf")
    assert [s for s in secrets if s in terminal_and_pdf] == []
    assert "Release" in (out / "summary.json").read_text()  # the title itself is still there


def test_a_run_without_a_live_target_says_so_instead_of_an_empty_candidate(tmp_path: Path) -> None:
    from test_params import FILES_ONLY

    from stability_lib.report.frontpage import front_page_html
    from stability_lib.report.render import NO_LIVE_TARGET

    params_file = tmp_path / "p.yaml"
    params_file.write_text(FILES_ONLY)
    params, raw = load_params(params_file, env={})
    run_dir = prepare_run_dir(params_file, raw, params, tmp_path / "run", [])
    targets = json.loads((run_dir / "run.json").read_text())["targets"]
    assert targets == {}  # before: {"candidate": ""}, shown as an empty candidate on page 1
    page = front_page_html({"title": "files only", "verdict": "PASS", "targets": targets})
    assert f"<th>Candidate</th><td>{NO_LIVE_TARGET}" in page.replace("<wbr>", "")
