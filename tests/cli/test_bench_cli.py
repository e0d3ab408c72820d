import pytest
from click.testing import CliRunner

from mmunlearn.cli import main


@pytest.mark.parametrize("args", [["bench", "--help"], ["bench", "run", "--help"], ["bench", "report", "--help"],
                                  ["bench", "speed", "--help"], ["demo", "--help"]])
def test_help(args):
    res = CliRunner().invoke(main, args)
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output


def test_run_help_lists_grid_fields():
    res = CliRunner().invoke(main, ["bench", "run", "--help"])
    for field in ("datasets", "noise_seed_offset", "user_subsample", "mia", "hist_bins"):
        assert field in res.output


def test_bench_run_and_refusal_are_one_line(tmp_path):
    from tests.bench.conftest import write_toml

    cfg = write_toml(tmp_path / "g.toml", mia=False, user_attack=False, cka=False, overlap=False)
    out = tmp_path / "res"
    res = CliRunner().invoke(main, ["bench", "run", "--config", str(cfg), "--out", str(out), "--quiet"])
    assert res.exit_code == 0, res.output
    assert (out / "results.md").is_file()
    res = CliRunner().invoke(main, ["bench", "run", "--config", str(cfg), "--out", str(out), "--quiet",
                                    "--methods", "rebuild,rebuild-reset"])
    assert res.exit_code == 2
    errors = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(errors) == 1 and errors[0].startswith("error:") and "different grid" in errors[0]
    res = CliRunner().invoke(main, ["bench", "run", "--config", str(cfg), "--out", str(out), "--quiet",
                                    "--methods", "rebuild,rebuild-reset", "--extend"])
    assert res.exit_code == 0, res.output
    assert "1 cell(s) computed, 4 reused" in res.output
    res = CliRunner().invoke(main, ["bench", "run", "--config", str(cfg), "--out", str(out), "--quiet",
                                    "--methods", "rebuild,rebuild-reset", "--rerun", "rebuild"])
    assert res.exit_code == 0, res.output
    assert "1 cell(s) computed, 4 reused" in res.output
    res = CliRunner().invoke(main, ["bench", "run", "--config", str(cfg), "--out", str(out), "--quiet",
                                    "--methods", "rebuild,rebuild-reset", "--rerun", "tru"])
    errors = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2 and len(errors) == 1 and "--rerun tru: not a method of this grid" in errors[0]
    res = CliRunner().invoke(main, ["bench", "report", str(out), "--no-plots"])
    assert res.exit_code == 0 and "results.csv" in res.output


def test_bad_grid_value_is_one_line_error(tmp_path):
    res = CliRunner().invoke(main, ["bench", "run", "--out", str(tmp_path / "r"), "--regimes", "users"])
    assert res.exit_code == 2 and "unknown regime" in res.output and "Traceback" not in res.output
