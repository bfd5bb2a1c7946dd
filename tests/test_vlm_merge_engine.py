"""vlm_merge pure engine: tokens, prompt parsing, candidates, evidence, offline judge, results."""
from __future__ import annotations

import json

import numpy as np
import pytest
import vlm_merge_data
from hypothesis import given, settings
from hypothesis import strategies as st

from phy_plugins.core.synthetic import load_ground_truth
from phy_plugins.core.tsv import write_cluster_tsv
from phy_plugins.vlm_merge import pipeline
from phy_plugins.vlm_merge.candidates import candidate_pairs, cluster_similarity
from phy_plugins.vlm_merge.evidence import SortingData, _pair_counts, evidence_hash, load_sorting, pair_evidence
from phy_plugins.vlm_merge.fewshot import FewShotBank
from phy_plugins.vlm_merge.offline import judge
from phy_plugins.vlm_merge.prompt import AnswerParseError, Example, build_messages, parse_answer
from phy_plugins.vlm_merge.render import png_size, render_pair
from phy_plugins.vlm_merge.results import (
    PairResult,
    curation_dict,
    disjoint_merges,
    read_results_csv,
    write_curation,
    write_results,
)
from phy_plugins.vlm_merge.tokens import cost_usd, image_tokens

vm_ks_session, vm_ks = vlm_merge_data.vm_ks_session, vlm_merge_data.vm_ks  # fixtures


# ------------------------------------------------------------------ tokens
def test_image_tokens_follow_openai_rule():
    assert image_tokens(512, 512) == 85 + 170 * 1
    assert image_tokens(1024, 512) == 85 + 170 * 2
    assert image_tokens(1500, 1500) == 85 + 170 * 4  # shrunk to 768x768
    assert image_tokens(3000, 1500) == 85 + 170 * 6  # 2048x1024 -> 1536x768
    assert image_tokens(4000, 4000, "low") == 85
    assert cost_usd("gpt-4o", 1_000_000, 0) == pytest.approx(2.5)
    assert cost_usd("gpt-4o-mini-2024-07-18", 0, 1_000_000) == pytest.approx(0.6)


# ------------------------------------------------------------------ prompt / parser
@pytest.mark.parametrize("text, decision, conf", [
    ('{"decision": "merge", "confidence": 0.83, "reasoning": "dip"}', "merge", 0.83),
    ('```json\n{"decision": "no_merge", "confidence": 0.9, "reasoning": "x"}\n```', "no_merge", 0.9),
    ('Sure! Here: {"decision": "Not Merge", "confidence": "75%", "reasoning": "flat"} ok',
     "no_merge", 0.75),
    ("{'decision': 'uncertain', 'confidence': 0.5, 'reasoning': 'few spikes',}", "uncertain", 0.5),
    ('{"merge_type": "merge", "reasoning": "SpikeAgent-style"}', "merge", 0.5),
    ("Decision: no merge\nConfidence: 0.6\nReasoning: amplitudes disjoint", "no_merge", 0.6),
    ('{"decision": "merge", "confidence": 80, "reasoning": "percent"}', "merge", 0.8),
])
def test_parse_answer_tolerant(text, decision, conf):
    ans = parse_answer(text)
    assert ans.decision == decision
    assert ans.confidence == pytest.approx(conf)


@pytest.mark.parametrize("text", ["", "   ", "I cannot tell.", '{"decision": "maybe"}',
                                  "<html>502 Bad Gateway</html>"])
def test_parse_answer_rejects_garbage(text):
    with pytest.raises(AnswerParseError):
        parse_answer(text)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=300))
def test_parse_answer_never_crashes(text):
    try:
        ans = parse_answer(text)
    except AnswerParseError:
        return
    assert ans.decision in ("merge", "no_merge", "uncertain")
    assert 0 <= ans.confidence <= 1


@settings(max_examples=100, deadline=None)
@given(st.sampled_from(["merge", "no_merge", "uncertain"]), st.floats(0, 1), st.text(max_size=200))
def test_parse_answer_roundtrip(decision, conf, reasoning):
    ans = parse_answer(json.dumps({"decision": decision, "confidence": conf, "reasoning": reasoning}))
    assert (ans.decision, ans.reasoning) == (decision, reasoning)
    assert ans.confidence == pytest.approx(conf)


def test_build_messages_images_and_labelled_examples():
    ex = [Example((1, 2), "merge", b"\x89PNGa"), Example((3, 4), "no_merge", b"\x89PNGb", "flat")]
    msgs = build_messages(7, 9, b"\x89PNGpair", similarity=0.91, examples=ex)
    assert msgs[0]["role"] == "system" and "JSON" in msgs[0]["content"]
    texts = " ".join(p.get("text", "") for m in msgs[1:] for p in m["content"])
    assert "clusters 1 and 2 -> MERGE" in texts and "clusters 3 and 4 -> NO MERGE" in texts
    assert "cluster 7, unit B = cluster 9" in texts
    urls = [p["image_url"] for m in msgs[1:] for p in m["content"] if p["type"] == "image_url"]
    assert [u["detail"] for u in urls] == ["low", "low", "high"]
    assert all(u["url"].startswith("data:image/png;base64,") for u in urls)


# ------------------------------------------------------------------ candidates
def _tiny(similar, spike_templates, spike_clusters, groups=None):
    n = len(spike_clusters)
    return SortingData(spike_times=np.arange(n) * 0.01, spike_clusters=np.array(spike_clusters),
                       spike_templates=np.array(spike_templates), amplitudes=np.ones(n),
                       templates=None, sample_rate=30000.0, duration_s=n * 0.01,
                       similar_templates=np.array(similar, float), groups=groups or {})


def test_cluster_similarity_is_max_over_templates_like_phy():
    sim = [[1, .2, .9, .1], [.2, 1, .3, .75], [.9, .3, 1, .0], [.1, .75, .0, 1]]
    # cluster 10 = templates 0+1 (after a merge), cluster 20 = template 2, cluster 30 = template 3
    d = _tiny(sim, [0, 1, 2, 3, 0, 2], [10, 10, 20, 30, 10, 20])
    s, source = cluster_similarity(d, [10, 20, 30])
    assert "similar_templates" in source
    assert s[0, 1] == pytest.approx(0.9) and s[0, 2] == pytest.approx(0.75)
    assert s[1, 2] == pytest.approx(0.0)


def test_candidates_threshold_k_and_noise():
    rng = np.random.default_rng(1)
    n = 8
    a = rng.uniform(0, 1, (n, n))
    sim = (a + a.T) / 2
    np.fill_diagonal(sim, 1)
    d = _tiny(sim, list(range(n)), list(range(n)))
    loose, _ = candidate_pairs(d, threshold=0.3, k=n)
    strict, _ = candidate_pairs(d, threshold=0.6, k=n)
    assert {(c.a, c.b) for c in strict} < {(c.a, c.b) for c in loose}  # higher = stricter
    assert all(c.similarity >= 0.6 for c in strict)
    capped, _ = candidate_pairs(d, threshold=0.0, k=2)
    counts = np.bincount([x for c in capped for x in (c.a, c.b)], minlength=n)
    assert counts.max() <= 2
    d.groups = {3: "noise"}
    no_noise, _ = candidate_pairs(d, threshold=0.0, k=n)
    assert all(3 not in (c.a, c.b) for c in no_noise)
    with pytest.raises(ValueError, match="stricter"):
        candidate_pairs(d, threshold=1.5)


def test_candidates_on_generated_dataset_include_true_pairs(vm_ks_session):
    gt = load_ground_truth(vm_ks_session)
    d = load_sorting(vm_ks_session)
    cands, _ = candidate_pairs(d, threshold=0.7, k=3)
    pairs = {(c.a, c.b) for c in cands}
    assert {tuple(p) for p in gt["true_merges"]} <= pairs
    assert all(a < b for a, b in pairs)


# ------------------------------------------------------------------ evidence
@settings(max_examples=60, deadline=None)
@given(st.lists(st.integers(0, 30000), max_size=40), st.lists(st.integers(0, 30000), max_size=40),
       st.integers(1, 3000), st.integers(0, 3000))
def test_pair_counts_match_brute_force(s1, s2, hi, lo):
    """Spike times in samples, windows between samples (no float ties), vs O(n^2) counts."""
    fs = 30000.0
    lo, hi = min(lo, hi) + 0.5, hi + 0.5
    t1, t2 = np.sort(s1) / fs, np.sort(s2) / fs
    d = np.abs(np.subtract.outer(np.sort(s2), np.sort(s1)))
    assert _pair_counts(t1, t2, lo / fs, hi / fs, same=False) == int(((d >= lo) & (d < hi)).sum())
    d1 = np.abs(np.subtract.outer(np.sort(s1), np.sort(s1))).astype(float)
    np.fill_diagonal(d1, np.inf)
    assert _pair_counts(t1, t1, lo / fs, hi / fs, same=True) == int(((d1 >= lo) & (d1 < hi)).sum())
    assert _pair_counts(t1, t1, 0.0, hi / fs, same=True) == int((d1 < hi).sum())


def test_evidence_hash_tracks_spikes(vm_ks_session):
    d = load_sorting(vm_ks_session)
    p = pipeline.RunConfig().evidence
    h = evidence_hash(d, 3, 19, p)
    assert h == evidence_hash(load_sorting(vm_ks_session), 3, 19, p)
    sc = d.spike_clusters.copy()
    sc[np.flatnonzero(sc == 3)[0]] = 19  # one spike moves
    d2 = SortingData(**{**d.__dict__, "spike_clusters": sc, "_index": None})
    assert evidence_hash(d2, 3, 19, p) != h
    assert evidence_hash(d2, 0, 5, p) == evidence_hash(d, 0, 5, p)


def test_render_compact_deterministic_png(vm_ks_session):
    d = load_sorting(vm_ks_session)
    ev = pair_evidence(d, 3, 19, 0.99)
    png = render_pair(ev)
    w, h = png_size(png)
    assert max(w, h) <= 1024 and min(w, h) >= 256
    other = pair_evidence(d, 4, 20, 0.7)
    assert render_pair(other) != png
    assert render_pair(ev) == png  # the reused figure keeps no state from the previous pair
    assert render_pair(ev, waveforms=False) != png
    bare = pair_evidence(d, 4, 20, None, waveforms=False)  # no templates: panel left empty
    assert png_size(render_pair(bare, waveforms=True)) == (w, h)


def test_render_threads_match_sequential(vm_ks_session):
    from concurrent.futures import ThreadPoolExecutor

    d = load_sorting(vm_ks_session)
    evs = [pair_evidence(d, c.a, c.b, c.similarity) for c in candidate_pairs(d, 0.97, 2)[0]]
    with ThreadPoolExecutor(3) as ex:
        assert list(ex.map(render_pair, evs)) == [render_pair(e) for e in evs]


# ------------------------------------------------------------------ offline judge
def _train(rng, rate, dur, refractory=0.002):
    isi = refractory + rng.exponential(1 / rate, int(rate * dur * 2))
    t = np.cumsum(isi)
    return t[t < dur]


def _data_from_trains(trains, dur):
    t = np.concatenate(trains)
    c = np.concatenate([np.full(len(x), i) for i, x in enumerate(trains)])
    o = np.argsort(t)
    return SortingData(spike_times=t[o], spike_clusters=c[o], spike_templates=c[o],
                       amplitudes=np.ones(len(t))[o] * 100, templates=None, sample_rate=30000.0,
                       duration_s=dur)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_offline_judge_split_vs_independent(seed):
    rng = np.random.default_rng(seed)
    dur = 120.0
    one = _train(rng, 20, dur)
    half = rng.integers(0, 2, len(one)).astype(bool)
    other = _train(rng, 15, dur)
    d = _data_from_trains([one[half], one[~half], other], dur)
    assert judge(pair_evidence(d, 0, 1, 0.95)).decision == "merge"
    v = judge(pair_evidence(d, 0, 2, 0.95))
    assert v.decision == "no_merge" and "CCG" in v.reasoning
    dup = np.sort(one + 0.0001)  # every spike detected twice, 0.1 ms apart
    d2 = _data_from_trains([one, dup], dur)
    assert judge(pair_evidence(d2, 0, 1, 0.95)).decision == "uncertain"
    few = _data_from_trains([one[:3], other[:3]], dur)
    assert judge(pair_evidence(few, 0, 1, 0.95)).decision != "merge"


def test_offline_judge_on_generated_ground_truth(vm_ks_session):
    gt = load_ground_truth(vm_ks_session)
    d = load_sorting(vm_ks_session)
    for a, b in gt["true_merges"]:
        assert judge(pair_evidence(d, a, b, 0.95)).decision == "merge", (a, b)
    for a, b in gt["true_non_merges"]:
        assert judge(pair_evidence(d, a, b, 0.95)).decision == "no_merge", (a, b)


# ------------------------------------------------------------------ results
def _r(a, b, decision, conf=0.9, **kw):
    return PairResult(a, b, decision, conf, **kw)


def test_csv_roundtrip_plain_ints(tmp_path):
    rows = [_r(np.int64(3), 7, "merge", reasoning='has, "quotes"\nand newline'),
            _r(1, 2, "error", None, error="HTTP 500")]
    path = write_results(tmp_path, rows)
    text = path.read_text()
    assert "np.int64" not in text and text.splitlines()[1].startswith("3,7,merge")
    back = read_results_csv(path)
    assert [(r.cluster_id_1, r.cluster_id_2, r.decision) for r in back] == [(3, 7, "merge"),
                                                                          (1, 2, "error")]
    assert back[0].reasoning == 'has, "quotes"\nand newline' and back[1].confidence is None


def test_curation_json_disjoint_and_valid_for_spikeinterface(tmp_path):
    from spikeinterface.curation.curation_model import Curation

    rows = [_r(1, 2, "merge", 0.9), _r(2, 3, "merge", 0.95), _r(4, 5, "merge", 0.7),
            _r(6, 7, "no_merge"), _r(8, 9, "error", None), _r(10, 11, "uncertain")]
    chosen, deferred = disjoint_merges(rows)
    assert [r.pair for r in chosen] == [(2, 3), (4, 5)] and [r.pair for r in deferred] == [(1, 2)]
    d = curation_dict(list(range(12)), rows)
    Curation(**d)  # raises if invalid
    assert d["merges"] == [{"unit_ids": [2, 3]}, {"unit_ids": [4, 5]}]
    # never overwrite a curation.json the user wrote
    user = tmp_path / "curation.json"
    user.write_text('{"format_version": "2", "unit_ids": [1], "merges": []}')
    out = write_curation(tmp_path, list(range(12)), rows)
    assert out == tmp_path / "vlm_merge" / "curation.json"
    assert json.loads(user.read_text())["unit_ids"] == [1]
    (tmp_path / "vlm_merge" / "curation.json").rename(user)  # ours: may be replaced
    assert write_curation(tmp_path, list(range(12)), rows) == user


def test_fewshot_bank(tmp_path):
    bank = FewShotBank(tmp_path)
    bank.add(5, 2, "merge", b"\x89PNG1")
    bank.add(3, 4, "no_merge", b"\x89PNG2", "flat CCG")
    bank.add(2, 5, "no_merge", b"\x89PNG1")  # relabel replaces
    again = FewShotBank(tmp_path)
    assert len(again) == 2
    ex = again.examples(2, 2)
    assert sorted((e.cluster_ids, e.label) for e in ex) == [((2, 5), "no_merge"), ((3, 4), "no_merge")]
    assert again.examples(2, 2, exclude={(3, 4)})[0].cluster_ids == (2, 5)
    with pytest.raises(ValueError):
        bank.add(1, 2, "maybe", b"")
    (tmp_path / "vlm_merge" / "fewshot_bank.json").write_text("{not json")
    with pytest.raises(ValueError, match="few-shot bank"):
        FewShotBank(tmp_path)


def test_offline_run_writes_results_and_caches(vm_ks):
    d = load_sorting(vm_ks)
    cfg = pipeline.RunConfig(model="offline", threshold=0.95, k=1)
    plan = pipeline.make_plan(d, vm_ks, cfg)
    assert plan.est_cost_usd == 0 and plan.candidates
    rep = pipeline.run(d, vm_ks, cfg, plan=plan)
    assert rep.n_errors == 0 and not any(r.cached for r in rep.results)
    rows = read_results_csv(vm_ks / "vlm_merge_reasoning.csv")
    assert len(rows) == len(plan.candidates)
    assert all((vm_ks / r.image_file).exists() for r in rows)
    gt = load_ground_truth(vm_ks)
    merges = json.loads((vm_ks / "curation.json").read_text())["merges"]
    assert sorted(m["unit_ids"] for m in merges) == sorted(gt["true_merges"])
    rep2 = pipeline.run(load_sorting(vm_ks), vm_ks, cfg)
    assert all(r.cached for r in rep2.results)
    assert pipeline.make_plan(d, vm_ks, cfg).n_cached == len(plan.candidates)


def test_noise_label_file_skips_cluster(vm_ks):
    write_cluster_tsv(vm_ks, "group", {3: "noise"}, allow_group=True)
    d = load_sorting(vm_ks)
    cands, _ = candidate_pairs(d, 0.7, 3)
    assert cands and all(3 not in (c.a, c.b) for c in cands)


def test_cache_hits_skip_evidence_and_rendering(vm_ks):
    """The cache key is decided from the spikes alone: a cached pair needs no correlograms
    and no image, except an image that was deleted, which is rendered again."""
    from dataclasses import replace

    d = load_sorting(vm_ks)
    cfg = pipeline.RunConfig(model="offline", threshold=0.95, k=1)
    plan = pipeline.make_plan(d, vm_ks, cfg)
    first = pipeline.run(d, vm_ks, cfg, plan=plan)
    assert len(first.results) >= 2 and not any(r.cached for r in first.results)
    broken = replace(d, spike_times=np.zeros(0), _index=None)  # no evidence can be computed
    with pytest.raises(IndexError):
        pipeline.prepare_pair(broken, vm_ks, plan.candidates[0], cfg)
    again = pipeline.run(broken, vm_ks, cfg, plan=plan)
    assert [r.pair for r in again.results] == [r.pair for r in first.results]
    assert all(r.cached for r in again.results)
    gone, kept = (vm_ks / r.image_file for r in first.results[:2])
    gone.unlink()
    mtime = kept.stat().st_mtime_ns
    third = pipeline.run(d, vm_ks, cfg, plan=plan)
    assert all(r.cached for r in third.results)
    assert gone.is_file() and kept.stat().st_mtime_ns == mtime


def test_cache_key_tracks_waveform_panel(vm_ks):
    d = load_sorting(vm_ks)
    cfg = pipeline.RunConfig(model="offline", threshold=0.95, k=1)
    pipeline.run(d, vm_ks, cfg)
    bare = pipeline.RunConfig(model="offline", threshold=0.95, k=1, waveforms=False)
    rep = pipeline.run(d, vm_ks, bare)
    assert rep.results and not any(r.cached for r in rep.results)
    assert all(r.image_file.endswith("n.png") for r in rep.results)
