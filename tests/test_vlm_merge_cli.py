"""``phy-plugins vlm-merge`` end to end (offline, dry run, local server, bad input)."""
from __future__ import annotations

import json
import shutil

import pytest
import vlm_merge_data
import vlm_merge_fake_server as fake

from phy_plugins.cli import main
from phy_plugins.core.synthetic import load_ground_truth
from phy_plugins.vlm_merge.results import read_results_csv

vm_ks_session, vm_ks, vm_ks_rendered = (vlm_merge_data.vm_ks_session, vlm_merge_data.vm_ks,
                                        vlm_merge_data.vm_ks_rendered)


def test_cli_offline_writes_csv_and_curation(vm_ks_rendered, vm_ks, capsys):
    rc = main(["vlm-merge", str(vm_ks), "--model", "offline", "--threshold", "0.93", "-k", "2"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "higher = stricter" in out and "no API call" in out
    rows = read_results_csv(vm_ks / "vlm_merge_reasoning.csv")
    assert rows and all(r.model == "offline" and r.decision != "error" for r in rows)
    gt = {tuple(p) for p in load_ground_truth(vm_ks)["true_merges"]}
    merged = {tuple(m["unit_ids"]) for m in json.loads((vm_ks / "curation.json").read_text())["merges"]}
    assert merged == gt & {r.pair for r in rows}


def test_cli_dry_run_sends_nothing(vm_ks_rendered, vm_ks, capsys):
    with fake.FakeChatServer() as server:
        rc = main(["vlm-merge", str(vm_ks), "--base-url", server.url, "--threshold", "0.97",
                   "--dry-run"])
        assert server.n_requests == 0
    out = capsys.readouterr().out
    assert rc == 0 and "estimated cost $" in out and "nothing sent" in out
    assert len(list((vm_ks / "vlm_merge" / "images").glob("*.png"))) >= 4
    assert not (vm_ks / "vlm_merge_reasoning.csv").exists()


def test_cli_local_server_and_error_exit_code(vm_ks_rendered, vm_ks, capsys):
    def respond(req, i):
        return fake.error(500) if fake.pair_of(req) == (3, 19) else fake.decision("merge", 0.7)
    with fake.FakeChatServer(respond) as server:
        rc = main(["vlm-merge", str(vm_ks), "--base-url", server.url, "--threshold", "0.99",
                   "--workers", "2", "--timeout", "5", "--retries", "1", "-y"])
    captured = capsys.readouterr()
    assert rc == 1 and "failed" in captured.err
    rows = {r.pair: r for r in read_results_csv(vm_ks / "vlm_merge_reasoning.csv")}
    assert rows[(3, 19)].decision == "error" and "HTTP 500" in rows[(3, 19)].error
    assert all(r.decision == "merge" for p, r in rows.items() if p != (3, 19))


def test_cli_bad_input_messages(tmp_path, vm_ks, capsys):
    assert main(["vlm-merge", str(tmp_path / "missing"), "--model", "offline"]) == 2
    assert "not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["vlm-merge", str(tmp_path / "empty"), "--model", "offline"]) == 2
    assert "not found" in capsys.readouterr().err
    assert main(["vlm-merge", str(vm_ks), "--model", "offline", "--threshold", "2"]) == 2
    assert "stricter" in capsys.readouterr().err
    assert main(["vlm-merge", str(vm_ks), "--threshold", "0.99", "-y"]) == 2  # no key, no URL
    assert "OPENAI_API_KEY" in capsys.readouterr().err


SHARED_TOY = vlm_merge_data.SHARED / "data" / "bombcell_toy_kilosort"


@pytest.mark.skipif(not SHARED_TOY.is_dir(), reason="needs ../shared/data (real Kilosort output)")
def test_cli_offline_on_real_kilosort_output(tmp_path, capsys):
    """Real data: no params.py, no similar_templates.npy (cosine fallback), 356 channels."""
    ks = tmp_path / "toy"
    shutil.copytree(SHARED_TOY, ks)
    rc = main(["vlm-merge", str(ks), "--model", "offline", "--threshold", "0.7", "-k", "1"])
    out = capsys.readouterr().out
    assert rc == 0 and "cosine similarity" in out
    rows = read_results_csv(ks / "vlm_merge_reasoning.csv")
    assert rows and all(r.decision in ("merge", "no_merge", "uncertain") for r in rows)
    assert all(r.confidence is not None and 0.5 <= r.confidence <= 1 for r in rows)


def test_cli_defaults_come_from_runconfig(tmp_path, monkeypatch, capsys):
    """One source of truth: the CLI's values and its help text are RunConfig's defaults; the
    config file and the command line override them in that order."""
    import argparse

    from phy_plugins.vlm_merge import cli, pipeline

    monkeypatch.setenv("HOME", str(tmp_path))  # no user config
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())
    d = pipeline.RunConfig()
    assert cli._config(parser.parse_args(["vlm-merge", "x"])) == d
    with pytest.raises(SystemExit):
        main(["vlm-merge", "-h"])
    text = " ".join(capsys.readouterr().out.split())
    for opt, value in [("--model", d.model), ("--threshold", d.threshold), ("--workers", d.workers),
                       ("--timeout", d.retry.timeout), ("--retries", d.retry.max_attempts - 1)]:
        assert f"(default {value})" in text, opt
    (tmp_path / ".phy").mkdir()
    (tmp_path / ".phy" / "phy_plugins.json").write_text('{"vlm_merge": {"threshold": 0.9, "k": 5}}')
    cfg = cli._config(parser.parse_args(["vlm-merge", "x", "--threshold", "0.8"]))
    assert (cfg.threshold, cfg.k, cfg.workers) == (0.8, 5, d.workers)


def test_server_order_base_url_env_dotenv_then_config(tmp_path, monkeypatch):
    """--base-url, then OPENAI_BASE_URL, then .env, then the plugin config (as the docs say)."""
    import argparse

    from phy_plugins.vlm_merge import api, cli

    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    (tmp_path / ".phy").mkdir()
    (tmp_path / ".phy" / "phy_plugins.json").write_text('{"vlm_merge": {"base_url": "http://config"}}')
    parser = argparse.ArgumentParser()
    cli.register(parser.add_subparsers())

    def server(*argv):
        cfg = cli._config(parser.parse_args(["vlm-merge", "x", *argv]))
        return api.resolve_connection(cfg.base_url, [tmp_path], cfg.configured_base_url).base_url

    assert server() == "http://config"
    (tmp_path / ".env").write_text("OPENAI_BASE_URL=http://dotenv\n")
    assert server() == "http://dotenv"
    monkeypatch.setenv("OPENAI_BASE_URL", "http://env")
    assert server() == "http://env"
    assert server("--base-url", "http://flag") == "http://flag"
