"""vlm_merge against a local OpenAI-compatible server, through the real ``openai`` client."""
from __future__ import annotations

import base64
import json
import shutil
import threading
import time

import pytest
import vlm_merge_data
import vlm_merge_fake_server as fake

from phy_plugins.core.synthetic import load_ground_truth
from phy_plugins.vlm_merge import api, pipeline
from phy_plugins.vlm_merge.evidence import load_sorting
from phy_plugins.vlm_merge.fewshot import FewShotBank
from phy_plugins.vlm_merge.results import read_results_csv

vm_ks_session, vm_ks, vm_ks_rendered = (vlm_merge_data.vm_ks_session, vlm_merge_data.vm_ks,
                                        vlm_merge_data.vm_ks_rendered)
FAST = api.RetryPolicy(max_attempts=3, base_delay=0.05, max_delay=0.2, timeout=5.0)


@pytest.fixture
def ks(vm_ks_rendered, vm_ks):
    return vm_ks


@pytest.fixture
def server():
    with fake.FakeChatServer() as s:
        yield s


def _cfg(server, **kw):
    kw.setdefault("retry", FAST)
    kw.setdefault("threshold", 0.93)
    kw.setdefault("k", 2)
    return pipeline.RunConfig(base_url=server.url, **kw)


def _truth_responder(ks):
    gt = load_ground_truth(ks)
    merges = {tuple(p) for p in gt["true_merges"]}

    def respond(req, i):
        pair = fake.pair_of(req)
        return fake.decision("merge" if pair in merges else "no_merge", 0.8, f"pair {pair}")
    return respond, merges


def test_requests_carry_images_model_schema_and_key(ks, server):
    (ks / ".env").write_text("OPENAI_API_KEY=sk-test-secret-123\n")
    server.responder, merges = _truth_responder(ks)
    data = load_sorting(ks)
    cfg = _cfg(server, model="gpt-4o-mini")
    plan = pipeline.make_plan(data, ks, cfg)
    report = pipeline.run(data, ks, cfg, plan=plan)
    assert server.n_requests == len(plan.candidates) == len(report.results) > 5
    rows = {r.pair: r for r in report.results}
    for req, headers in zip(server.requests, server.headers, strict=True):
        assert req["model"] == "gpt-4o-mini"
        assert req["response_format"]["type"] == "json_schema"
        assert headers["authorization"] == "Bearer sk-test-secret-123"
        (url,) = fake.image_urls(req)
        assert url.startswith("data:image/png;base64,")
        png = base64.b64decode(url.split(",", 1)[1])
        assert png == (ks / rows[fake.pair_of(req)].image_file).read_bytes()
    assert {p for p, r in rows.items() if r.decision == "merge"} == merges & set(rows)
    assert all(r.input_tokens == 700 and r.cost_usd > 0 and r.prompt_version for r in rows.values())
    written = json.loads((ks / "curation.json").read_text())
    assert sorted(tuple(m["unit_ids"]) for m in written["merges"]) == sorted(merges & set(rows))
    for f in ks.rglob("*"):  # the key is never written anywhere but the user's .env
        if f.is_file() and f.name != ".env" and f.stat().st_size < 50_000_000:
            assert b"sk-test-secret-123" not in f.read_bytes(), f


def test_concurrency_never_exceeds_workers(ks, server):
    server.responder = lambda req, i: fake.decision("no_merge", delay=0.25)
    data = load_sorting(ks)
    cfg = _cfg(server, workers=3)
    t0 = time.perf_counter()
    report = pipeline.run(data, ks, cfg)
    elapsed = time.perf_counter() - t0
    n = len(report.results)
    assert n >= 9 and report.n_errors == 0
    assert server.max_in_flight == 3
    assert elapsed >= (n // 3) * 0.25 * 0.9


def test_429_retry_after_is_honoured(ks, server):
    seen: dict = {}
    lock = threading.Lock()

    def respond(req, i):
        pair = fake.pair_of(req)
        with lock:
            seen.setdefault(pair, []).append(time.monotonic())
            first = len(seen[pair]) == 1
        return fake.error(429, retry_after=1, message="slow down") if first else fake.decision("merge")
    server.responder = respond
    report = pipeline.run(load_sorting(ks), ks, _cfg(server, threshold=0.99, k=1))
    assert report.results and report.n_errors == 0
    for pair, times in seen.items():
        assert len(times) == 2 and times[1] - times[0] >= 0.9, pair
    assert all(r.attempts == 2 for r in report.results)


def test_500_and_malformed_body_are_retried(ks, server):
    counts: dict = {}

    def respond(req, i):
        pair = fake.pair_of(req)
        counts[pair] = counts.get(pair, 0) + 1
        return {1: fake.error(500), 2: fake.malformed_body()}.get(counts[pair], fake.decision("merge"))
    server.responder = respond
    report = pipeline.run(load_sorting(ks), ks, _cfg(server, threshold=0.99, k=1))
    assert report.n_errors == 0 and all(r.attempts == 3 for r in report.results)


def test_failures_recorded_as_errors_then_retried(ks, server):
    data = load_sorting(ks)
    cfg = _cfg(server, retry=api.RetryPolicy(max_attempts=2, base_delay=0.05,
                                                             timeout=0.5))
    cands = pipeline.make_plan(data, ks, cfg).candidates
    assert len(cands) >= 4
    bad = {(c.a, c.b): kind for c, kind in zip(cands, ["500", "timeout", "content", "401"],
                                               strict=False)}

    def respond(req, i):
        kind = bad.get(fake.pair_of(req))
        if kind == "500":
            return fake.error(500, message="upstream exploded")
        if kind == "timeout":
            return fake.decision("merge", delay=1.5)
        if kind == "content":
            return fake.malformed_content()
        if kind == "401":
            return fake.error(401, message="invalid key")
        return fake.decision("no_merge")
    server.responder = respond
    report = pipeline.run(data, ks, cfg)
    rows = {r.pair: r for r in read_results_csv(ks / "vlm_merge_reasoning.csv")}
    for pair, kind in bad.items():
        r = rows[pair]
        assert r.decision == "error" and r.confidence is None, (pair, kind)
        want = {"500": "HTTP 500", "timeout": "timed out", "content": "could not parse",
                "401": "HTTP 401"}[kind]
        assert want in r.error
        assert r.attempts == {"500": 2, "timeout": 2, "content": 1, "401": 1}[kind], (pair, kind)
    assert report.n_errors == len(bad)
    merges = json.loads((ks / "curation.json").read_text())["merges"]
    assert not {tuple(m["unit_ids"]) for m in merges} & set(bad)
    # run again with a healthy server: only the failed pairs are sent (the rest is cached)
    before = server.n_requests
    server.responder = lambda req, i: fake.decision("merge", 0.6)
    report2 = pipeline.run(load_sorting(ks), ks, cfg)
    assert server.n_requests - before == len(bad)
    assert report2.n_errors == 0
    assert sum(r.cached for r in report2.results) == len(report2.results) - len(bad)


def test_cancel_returns_promptly_and_marks_unfinished(ks, server):
    server.responder = lambda req, i: fake.decision("merge", delay=1.0)
    done = []
    t0 = time.perf_counter()
    report = pipeline.run(load_sorting(ks), ks, _cfg(server, workers=2),
                          progress=lambda d, t, x: done.append(d),
                          is_cancelled=lambda: max(done, default=0) >= 2)
    assert time.perf_counter() - t0 < 3.5
    assert report.cancelled
    ok = [r for r in report.results if r.ok]
    cancelled = [r for r in report.results if r.error == "cancelled by the user"]
    assert len(ok) >= 2 and cancelled and len(ok) + len(cancelled) == len(report.results)
    assert all(r.decision == "error" for r in cancelled)


def test_fewshot_bank_examples_sent_with_labels(ks, server):
    img = next((ks / "vlm_merge" / "images").glob("*.png")).read_bytes()
    bank = FewShotBank(ks)
    bank.add(900, 901, "merge", img)
    bank.add(902, 903, "no_merge", img)
    pipeline.run(load_sorting(ks), ks, _cfg(server, threshold=0.99, k=1))
    req = server.requests[0]
    assert len(fake.image_urls(req)) == 3
    text = json.dumps(req["messages"][1])
    assert "clusters 900 and 901 -> MERGE" in text and "clusters 902 and 903 -> NO MERGE" in text
    assert [p["image_url"]["detail"] for p in req["messages"][1]["content"]
            if p["type"] == "image_url"] == ["low", "low"]


def test_structured_output_fallback_and_key_rules(server, tmp_path, monkeypatch):
    server.responder = lambda req, i: (
        fake.error(400, message="response_format json_schema is not supported")
        if "response_format" in req else fake.decision("uncertain", 0.4))
    client = api.make_client(server.url, None)
    out = api.call_model(client, "local-model", [{"role": "user", "content": "hi"}], policy=FAST)
    assert json.loads(out.text)["decision"] == "uncertain"
    assert "response_format" not in server.requests[-1]
    (tmp_path / ".env").write_text("OPENAI_API_KEY=from-dotenv\nOPENAI_BASE_URL=http://127.0.0.1:9/v1\n")
    monkeypatch.chdir(tmp_path)
    assert api.resolve_api_key([tmp_path]) == "from-dotenv"
    assert api.resolve_base_url(None, [tmp_path]) == "http://127.0.0.1:9/v1"
    monkeypatch.setenv("OPENAI_API_KEY", "from-env")
    assert api.resolve_api_key([tmp_path]) == "from-env"
    with pytest.raises(api.CallError, match="OPENAI_API_KEY"):
        api.make_client(None, None)
    assert api.retry_after_seconds({"retry-after": "2"}) == 2.0
    assert api.retry_after_seconds({"retry-after-ms": "1500"}) == 1.5
    assert 0 <= api.retry_after_seconds({"retry-after": "Wed, 21 Oct 2015 07:28:00 GMT"}) <= 0


def test_changed_fewshot_bank_is_not_served_from_cache(ks, server, tmp_path):
    """The cache key holds a fingerprint of the few-shot examples' content: a changed bank
    sends the pairs again, an unchanged one (even at another path) reuses the answers."""
    imgs = sorted((ks / "vlm_merge" / "images").glob("*.png"))
    cfg = _cfg(server, threshold=0.99, k=1)
    FewShotBank(ks).add(900, 901, "merge", imgs[0].read_bytes())
    first = pipeline.run(load_sorting(ks), ks, cfg)
    n = len(first.results)
    assert n and server.n_requests == n and first.plan.examples_fp
    assert pipeline.make_plan(load_sorting(ks), ks, cfg).n_to_send == 0
    same = pipeline.run(load_sorting(ks), ks, cfg)
    assert server.n_requests == n and all(r.cached for r in same.results)

    FewShotBank(ks).add(902, 903, "no_merge", imgs[1].read_bytes())  # the bank grows
    plan = pipeline.make_plan(load_sorting(ks), ks, cfg)
    assert plan.n_cached == 0 and plan.n_to_send == n and plan.examples_fp != first.plan.examples_fp
    grown = pipeline.run(load_sorting(ks), ks, cfg, plan=plan)
    assert server.n_requests == 2 * n and not any(r.cached for r in grown.results)

    FewShotBank(ks).add(900, 901, "merge", imgs[2].read_bytes())  # same label, new image
    assert pipeline.make_plan(load_sorting(ks), ks, cfg).n_to_send == n

    moved = tmp_path / "moved"  # fingerprint of content, not of paths
    shutil.copytree(ks, moved, symlinks=True)
    assert pipeline.make_plan(load_sorting(moved), moved, cfg).examples_fp == \
        pipeline.make_plan(load_sorting(ks), ks, cfg).examples_fp


def test_dotenv_read_once_per_run_and_key_not_in_repr(ks, server, monkeypatch):
    (ks / ".env").write_text(f"OPENAI_API_KEY=sk-once-456\nOPENAI_BASE_URL={server.url}\n")
    reads = []
    real = api._dotenv_values
    monkeypatch.setattr(api, "_dotenv_values", lambda dirs: reads.append(dirs) or real(dirs))
    report = pipeline.run(load_sorting(ks), ks, pipeline.RunConfig(retry=FAST, threshold=0.99,
                                                                   k=1))
    assert report.results and report.n_errors == 0 and len(reads) == 1
    assert server.headers[0]["authorization"] == "Bearer sk-once-456"
    conn = api.resolve_connection(None, [ks])
    assert (conn.base_url, conn.api_key) == (server.url, "sk-once-456")
    assert "sk-once-456" not in repr(conn)
