"""The whole flow without any GUI: plan (pairs + cost), render, judge, write results."""
from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from phy_plugins.core.atomic import atomic_write_bytes

from . import api
from .candidates import Candidate, candidate_pairs
from .evidence import EvidenceParams, SortingData, evidence_hash, pair_evidence
from .fewshot import FewShotBank
from .offline import OFFLINE_VERSION, judge
from .prompt import (
    PROMPT_VERSION,
    SYSTEM_PROMPT,
    AnswerParseError,
    Example,
    build_messages,
    examples_fingerprint,
    pair_text,
    parse_answer,
)
from .render import HEIGHT_PX, WIDTH_PX, image_hash, render_pair
from .results import (
    CSV_NAME,
    ERROR,
    WORK_DIR,
    PairResult,
    ResultCache,
    now_iso,
    read_results_csv,
    write_curation,
    write_results,
)
from .runner import run_bounded
from .tokens import cost_usd, image_tokens, text_tokens

OFFLINE = "offline"
ProgressFn = Callable[[int, int, str], None]


@dataclass
class RunConfig:
    """Settings of one run (the API key is never part of it)."""

    model: str = api.DEFAULT_MODEL
    base_url: str | None = None  # chosen for this run (--base-url, the AI dialog)
    configured_base_url: str | None = None  # the plugin config's, after OPENAI_BASE_URL and .env
    threshold: float = 0.7
    k: int = 3
    workers: int = 8
    waveforms: bool = True
    n_examples: tuple[int, int] = (2, 2)
    use_cache: bool = True
    retry: api.RetryPolicy = field(default_factory=api.RetryPolicy)
    evidence: EvidenceParams = field(default_factory=EvidenceParams)

    @property
    def offline(self) -> bool:
        return self.model == OFFLINE

    @property
    def prompt_version(self) -> str:
        return OFFLINE_VERSION if self.offline else PROMPT_VERSION


@dataclass
class Plan:
    """What a run would send, shown to the user before any API call."""

    candidates: list[Candidate]
    similarity_source: str
    n_cached: int
    n_to_send: int
    input_tokens_per_pair: int
    output_tokens_per_pair: int
    est_cost_usd: float
    model: str
    examples: list[Example] = field(default_factory=list, repr=False)  # few-shot, read once
    examples_fp: str = ""  # their content fingerprint (part of the cache key)

    def summary(self) -> str:
        if self.model == OFFLINE:
            return (f"{len(self.candidates)} pair(s) to judge offline (no API call, no cost); "
                    f"similarity from {self.similarity_source}.")
        return (f"{len(self.candidates)} candidate pair(s), {self.n_cached} already judged "
                f"(cached), {self.n_to_send} to send to {self.model}: "
                f"~{self.input_tokens_per_pair} input + ~{self.output_tokens_per_pair} output "
                f"tokens per pair, estimated cost ${self.est_cost_usd:.4f} (list prices).")


def estimate_tokens(n_examples: int = 0) -> tuple[int, int]:
    """(input, output) tokens estimated for one pair with ``n_examples`` few-shot images."""
    text = SYSTEM_PROMPT + pair_text(10, 11, 0.9)
    per_example = image_tokens(WIDTH_PX, HEIGHT_PX, "low") + text_tokens(
        "Example: clusters 10 and 11 -> NO MERGE (rejected by the user).")
    inp = image_tokens(WIDTH_PX, HEIGHT_PX, "high") + text_tokens(text) + 12
    if n_examples:
        inp += n_examples * per_example + 40
    return inp, 120


def work_dir(ks_dir: str | Path) -> Path:
    return Path(ks_dir) / WORK_DIR


def cache_key(ev_hash: str, cfg: RunConfig, examples_fp: str = "") -> str:
    """Cache key from what determines the image and the prompt, known before rendering: the
    pair's evidence hash (spikes + settings), model, prompt version, waveform panel and, for
    the VLM, the few-shot examples' fingerprint."""
    shots = "" if cfg.offline else examples_fp
    return ResultCache.key(ev_hash, cfg.model, cfg.prompt_version,
                           f"{'w' if cfg.waveforms else 'n'}|{shots}")


def make_plan(data: SortingData, ks_dir: str | Path, cfg: RunConfig) -> Plan:
    """Candidate pairs, the few-shot examples, how many pairs are cached, and the estimated
    cost. Raises ValueError for a corrupt few-shot bank."""
    cands, source = candidate_pairs(data, cfg.threshold, cfg.k)
    examples = [] if cfg.offline else FewShotBank(ks_dir).examples(
        *cfg.n_examples, exclude={(c.a, c.b) for c in cands})
    fp = examples_fingerprint(examples)
    cache = ResultCache(work_dir(ks_dir) / "cache.json") if cfg.use_cache else None
    n_cached = 0
    if cache is not None and len(cache):
        for c in cands:
            key = cache_key(evidence_hash(data, c.a, c.b, cfg.evidence), cfg, fp)
            n_cached += cache.get(key) is not None
    inp, out = estimate_tokens(len(examples))
    n_send = 0 if cfg.offline else len(cands) - n_cached
    return Plan(cands, source, n_cached, n_send, inp, out,
                n_send * cost_usd(cfg.model, inp, out) if not cfg.offline else 0.0, cfg.model,
                examples, fp)


@dataclass
class Prepared:
    """A candidate with its evidence image on disk."""

    cand: Candidate
    evidence_hash: str
    png: bytes
    image_file: Path
    evidence: object = None  # PairEvidence, kept for the offline judge


def prepare_pair(data: SortingData, ks_dir: str | Path, cand: Candidate, cfg: RunConfig,
                 keep_evidence: bool = False) -> Prepared:
    """Compute the evidence and render (or reuse) the pair's PNG in ``vlm_merge/images/``."""
    ev = pair_evidence(data, cand.a, cand.b, cand.similarity, cfg.evidence,
                       waveforms=cfg.waveforms)
    wf = "w" if cfg.waveforms else "n"
    path = work_dir(ks_dir) / "images" / f"pair_{ev.a}_{ev.b}_{ev.content_hash[:12]}{wf}.png"
    if path.exists():
        png = path.read_bytes()
    else:
        png = render_pair(ev, waveforms=cfg.waveforms)
        atomic_write_bytes(path, png)
    return Prepared(cand, ev.content_hash, png, path, ev if keep_evidence else None)


def _image_file(p: Prepared, ks_dir) -> str:
    return str(p.image_file.relative_to(Path(ks_dir)))


def _row(p: Prepared, ks_dir, cfg: RunConfig, **kw) -> PairResult:
    base = dict(cluster_id_1=int(p.cand.a), cluster_id_2=int(p.cand.b), model=cfg.model,
                prompt_version=cfg.prompt_version, image_hash=image_hash(p.png), time=now_iso(),
                similarity=round(float(p.cand.similarity), 4), evidence_hash=p.evidence_hash,
                image_file=_image_file(p, ks_dir))
    base.update(kw)
    return PairResult(**base)


def judge_offline(p: Prepared, ks_dir, cfg: RunConfig) -> PairResult:
    t0 = time.perf_counter()
    v = judge(p.evidence)
    return _row(p, ks_dir, cfg, decision=v.decision, confidence=v.confidence,
                reasoning=v.reasoning, latency_s=round(time.perf_counter() - t0, 4))


def judge_vlm(p: Prepared, ks_dir, cfg: RunConfig, client, examples: list[Example],
              cancel: threading.Event) -> PairResult:
    """Ask the model about one pair; every failure becomes an 'error' row with its message."""
    messages = build_messages(p.cand.a, p.cand.b, p.png, similarity=p.cand.similarity,
                              examples=examples)
    try:
        out = api.call_model(client, cfg.model, messages, policy=cfg.retry, cancel=cancel)
    except api.Cancelled as exc:
        return _row(p, ks_dir, cfg, decision=ERROR, error=str(exc))
    except api.CallError as exc:
        return _row(p, ks_dir, cfg, decision=ERROR, error=str(exc), attempts=exc.attempts)
    acct = dict(input_tokens=out.input_tokens, output_tokens=out.output_tokens,
                latency_s=round(out.latency_s, 3), attempts=out.attempts,
                cost_usd=round(cost_usd(cfg.model, out.input_tokens, out.output_tokens), 6))
    try:
        ans = parse_answer(out.text)
    except AnswerParseError as exc:
        return _row(p, ks_dir, cfg, decision=ERROR, error=str(exc), **acct)
    return _row(p, ks_dir, cfg, decision=ans.decision, confidence=round(ans.confidence, 4),
                reasoning=ans.reasoning, **acct)


@dataclass
class RunReport:
    """Outcome of a run."""

    plan: Plan
    results: list[PairResult]
    csv_path: Path | None = None
    curation_path: Path | None = None
    cancelled: bool = False

    @property
    def n_errors(self) -> int:
        return sum(not r.ok for r in self.results)

    def summary(self) -> str:
        counts: dict[str, int] = {}
        for r in self.results:
            counts[r.decision] = counts.get(r.decision, 0) + 1
        cost = sum(r.cost_usd for r in self.results if not r.cached)
        parts = ", ".join(f"{v} {k}" for k, v in sorted(counts.items())) or "no pairs"
        s = f"{len(self.results)} pair(s): {parts}; cost ${cost:.4f}"
        if self.cancelled:
            s += " (cancelled)"
        return s


def run(
    data: SortingData,
    ks_dir: str | Path,
    cfg: RunConfig,
    *,
    plan: Plan | None = None,
    connection: api.Connection | None = None,
    progress: ProgressFn | None = None,
    is_cancelled: Callable[[], bool] = lambda: False,
    dry_run: bool = False,
    only_pairs: set[tuple[int, int]] | None = None,
) -> RunReport:
    """Judge every planned pair (render + call, ``cfg.workers`` at a time) and write the CSV,
    ``curation.json`` and the cache. Cached pairs are not rendered again. ``dry_run`` renders
    images only. ``only_pairs`` restricts the run (e.g. to retry the errors). ``connection``
    (base URL + key) is resolved here when not given."""
    ks_dir = Path(ks_dir)
    plan = plan or make_plan(data, ks_dir, cfg)
    cands = [c for c in plan.candidates if only_pairs is None or (c.a, c.b) in only_pairs]
    _ = data.index  # build the spike index once, before the worker threads
    progress = progress or (lambda done, total, text: None)
    cache = ResultCache(work_dir(ks_dir) / "cache.json")
    client = None
    if not cfg.offline and not dry_run:
        conn = connection or api.resolve_connection(cfg.base_url, [ks_dir], cfg.configured_base_url)
        client = api.make_client(conn.base_url, conn.api_key, cfg.retry.timeout)

    def job(cand: Candidate, cancel: threading.Event) -> PairResult | None:
        if cancel.is_set():
            return None
        if dry_run:
            p = prepare_pair(data, ks_dir, cand, cfg)
            return _row(p, ks_dir, cfg, decision="not_sent", reasoning="dry run: not sent")
        if cfg.use_cache:  # looked up before any evidence is computed or rendered
            hit = cache.get(cache_key(evidence_hash(data, cand.a, cand.b, cfg.evidence), cfg,
                                      plan.examples_fp))
            if hit is not None:
                if not hit.image_file or not (ks_dir / hit.image_file).is_file():
                    hit.image_file = _image_file(prepare_pair(data, ks_dir, cand, cfg), ks_dir)
                return hit
        p = prepare_pair(data, ks_dir, cand, cfg, keep_evidence=cfg.offline)
        if cfg.offline:
            return judge_offline(p, ks_dir, cfg)
        return judge_vlm(p, ks_dir, cfg, client, plan.examples, cancel)

    def on_done(done: int, total: int, r: PairResult | None) -> None:
        what = "" if r is None else f"{r.cluster_id_1}-{r.cluster_id_2}: {r.decision}"
        progress(done, total, what)

    def on_cancel(c: Candidate) -> PairResult:
        return PairResult(int(c.a), int(c.b), ERROR, error="cancelled by the user",
                          model=cfg.model, prompt_version=cfg.prompt_version, time=now_iso(),
                          similarity=round(float(c.similarity), 4))

    progress(0, len(cands), "starting")
    workers = cfg.workers if not cfg.offline else 4
    out = run_bounded(cands, job, workers=workers, is_cancelled=is_cancelled, on_done=on_done,
                      on_cancelled=on_cancel)
    results = [r if r is not None else on_cancel(c) for r, c in zip(out, cands, strict=True)]
    report = RunReport(plan, results, cancelled=is_cancelled())
    if dry_run:
        return report
    for r in results:
        if not r.cached and r.ok:
            cache.put(cache_key(r.evidence_hash, cfg, plan.examples_fp), r)
    cache.save()
    rows = results
    if only_pairs is not None and (ks_dir / CSV_NAME).exists():
        new = {r.pair for r in results}
        planned = {(c.a, c.b) for c in plan.candidates}
        rows = [r for r in read_results_csv(ks_dir / CSV_NAME)
                if r.pair not in new and r.pair in planned] + results
    report.csv_path = write_results(ks_dir, rows)
    report.curation_path = write_curation(ks_dir, [int(c) for c in data.cluster_ids], rows)
    return report
