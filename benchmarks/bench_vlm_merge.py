"""Benchmark for vlm_merge: offline-judge accuracy, throughput against a local server, and
render time and image tokens per pair, each compared with SpikeAgent's design in the same run.

Run:  python benchmarks/bench_vlm_merge.py [--seeds 0 1 2] [--latency 1.0] [--out FILE.md]

SpikeAgent is not installed or run. Its design is rebuilt from its published description:
- image sizes at 300 dpi;
- one call per feature plus a judge call per pair;
- batches of num_workers // (3 x n_features) pairs.
This is our own code. The peer numbers measure that design, not SpikeAgent's code.
"""
from __future__ import annotations

import argparse
import io
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from phy_plugins.core.synthetic import generate_dataset, load_ground_truth  # noqa: E402
from phy_plugins.vlm_merge import api, pipeline  # noqa: E402
from phy_plugins.vlm_merge.candidates import candidate_pairs  # noqa: E402
from phy_plugins.vlm_merge.evidence import load_sorting, pair_evidence  # noqa: E402
from phy_plugins.vlm_merge.offline import judge  # noqa: E402
from phy_plugins.vlm_merge.render import HEIGHT_PX, WIDTH_PX, render_pair  # noqa: E402
from phy_plugins.vlm_merge.tokens import image_tokens  # noqa: E402


# --------------------------------------------------------------------------- accuracy
def accuracy(ks: Path) -> dict:
    """Offline judge vs ground truth on every candidate pair (default threshold 0.7, k 3)."""
    gt = load_ground_truth(ks)
    neuron = {int(c): v["neuron"] for c, v in gt["clusters"].items()}
    data = load_sorting(ks)
    cands, _ = candidate_pairs(data, 0.7, 3)
    tp = fp = fn = tn = unc = 0
    for c in cands:
        truth = neuron[c.a] == neuron[c.b]
        d = judge(pair_evidence(data, c.a, c.b, c.similarity, waveforms=False)).decision
        unc += d == "uncertain"
        pred = d == "merge"
        tp += pred and truth
        fp += pred and not truth
        fn += (not pred) and truth
        tn += (not pred) and not truth
    listed = {tuple(p): True for p in gt["true_merges"]} | {tuple(p): False for p in gt["true_non_merges"]}
    listed_ok = sum((judge(pair_evidence(data, a, b, None, waveforms=False)).decision == "merge") == m
                    for (a, b), m in listed.items())
    found = {(c.a, c.b) for c in cands}
    return dict(pairs=len(cands), tp=tp, fp=fp, fn=fn, tn=tn, uncertain=unc,
                true_merges_in_candidates=sum(tuple(p) in found for p in gt["true_merges"]),
                n_true_merges=len(gt["true_merges"]), listed_correct=listed_ok, listed=len(listed))


# --------------------------------------------------------------------------- throughput
def ours_throughput(ks: Path, url: str, n_pairs: int, workers: int) -> dict:
    """Wall times for ``n_pairs``: cold (the images are rendered during the run) and warm
    (the images are already on disk; the calls are repeated, the cache is off)."""
    import shutil

    data = load_sorting(ks)
    cfg = pipeline.RunConfig(base_url=url, threshold=0.3, k=6, workers=workers, use_cache=False,
                             retry=api.RetryPolicy(timeout=30))
    plan = pipeline.make_plan(data, ks, cfg)
    plan.candidates = plan.candidates[:n_pairs]
    out = {}
    for name in ("cold", "warm"):
        if name == "cold":
            shutil.rmtree(ks / "vlm_merge" / "images", ignore_errors=True)
        t0 = time.perf_counter()
        report = pipeline.run(data, ks, cfg, plan=plan)
        out[name] = time.perf_counter() - t0
        out["ok"] = len(report.results) - report.n_errors
    return out


def spikeagent_schedule(url: str, n_pairs: int, num_workers: int, n_features: int = 2) -> float:
    """SpikeAgent's batching rebuilt with the same client and server.

    Batches of num_workers // (3 * n_features) pairs run concurrently. Within a pair, the
    feature calls run concurrently, then the judge call.
    """
    batch = num_workers // (3 * n_features)
    if batch == 0:
        raise ValueError("SpikeAgent's batch size is 0 here (it crashes)")
    client = api.make_client(url, None, 30)
    msg = [{"role": "user", "content": "Unit A = cluster 1, unit B = cluster 2."}]

    def call():
        api.call_model(client, "gpt-4o", msg, structured=False)

    def pair():
        ts = [threading.Thread(target=call) for _ in range(n_features)]
        [t.start() for t in ts]
        [t.join() for t in ts]
        call()  # judge

    t0 = time.perf_counter()
    for i in range(0, n_pairs, batch):
        ts = [threading.Thread(target=pair) for _ in range(min(batch, n_pairs - i))]
        [t.start() for t in ts]
        [t.join() for t in ts]
    return time.perf_counter() - t0


# --------------------------------------------------------------------------- render + tokens
def spikeagent_images(ev) -> list[tuple[int, int]]:
    """Render the two feature images the SpikeAgent tutorial uses, at 300 dpi as JPEG (our
    code): a 2x2 correlogram grid at matplotlib's default 6.4x4.8 in, and amplitudes vs time
    plus a histogram at 10x5 in. Returns their pixel sizes."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    sizes = []
    fig = Figure(figsize=(6.4, 4.8), dpi=300)
    FigureCanvasAgg(fig)
    axs = fig.subplots(2, 2)
    for (i, j), h in {(0, 0): ev.acg_a, (1, 1): ev.acg_b, (0, 1): ev.ccg, (1, 0): ev.ccg[::-1]}.items():
        axs[i, j].bar(ev.lags_ms, h, width=0.5, color="g" if i == j else "k")
    fig2 = Figure(figsize=(10, 5), dpi=300)
    FigureCanvasAgg(fig2)
    a1, a2 = fig2.subplots(1, 2, gridspec_kw={"width_ratios": [4, 1]})
    for t, a, col in ((ev.times_a, ev.amps_a, "C0"), (ev.times_b, ev.amps_b, "C1")):
        a1.scatter(t, a, s=1, color=col)
        a2.hist(a, bins=50, orientation="horizontal", color=col, alpha=0.5)
    for f in (fig, fig2):
        buf = io.BytesIO()
        f.savefig(buf, format="jpg", dpi=300)
        from PIL import Image

        sizes.append(Image.open(io.BytesIO(buf.getvalue())).size)
    return sizes


def spikeagent_image_tokens(sizes: list[tuple[int, int]], n_examples: int = 2) -> int:
    """Image tokens per pair for SpikeAgent's design with 1 good + 1 bad example:
    - each feature call sends the pair's image plus the examples' images, all full resolution;
    - the judge call sends one horizontal concatenation resized to 300 px high."""
    per_feature = sum((1 + n_examples) * image_tokens(w, h) for w, h in sizes)
    concat_w = sum(round(w * 300 / h) for w, h in sizes)
    return per_feature + image_tokens(concat_w, 300)


def render_bench(ks: Path, n: int) -> dict:
    data = load_sorting(ks)
    cands, _ = candidate_pairs(data, 0.7, 3)
    evs = [pair_evidence(data, c.a, c.b, c.similarity) for c in cands[:n]]
    render_pair(evs[0])
    t_ours, t_peer, sizes = [], [], None
    for ev in evs:
        t0 = time.perf_counter()
        render_pair(ev)
        t_ours.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        sizes = spikeagent_images(ev)
        t_peer.append(time.perf_counter() - t0)
    return dict(n=len(evs), ours_s=statistics.median(t_ours), peer_s=statistics.median(t_peer),
                peer_sizes=sizes)


# --------------------------------------------------------------------------- main
def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--latency", type=float, default=1.0)
    p.add_argument("--pairs", type=int, default=40)
    p.add_argument("--workers", type=int, default=8)
    p.add_argument("--render-pairs", type=int, default=10)
    p.add_argument("--out", type=Path, default=None, help="also write the Markdown table here")
    args = p.parse_args(argv)
    import vlm_merge_fake_server as fake

    lines = [f"command: python benchmarks/bench_vlm_merge.py {' '.join(argv or sys.argv[1:])}".rstrip(),
             ""]
    with tempfile.TemporaryDirectory() as tmp:
        # 1. accuracy
        lines += ["## Offline judge vs ground truth (small preset, threshold 0.7, k 3)", "",
                  "| seed | candidate pairs | TP | FP | FN | TN | uncertain | precision | recall | "
                  "true merges in candidates | listed pairs correct |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        tot = dict(tp=0, fp=0, fn=0)
        for seed in args.seeds:
            ks = generate_dataset(Path(tmp) / f"s{seed}", preset="small", seed=seed)
            r = accuracy(ks)
            for k in tot:
                tot[k] += r[k]
            prec = r["tp"] / max(r["tp"] + r["fp"], 1)
            rec = r["tp"] / max(r["tp"] + r["fn"], 1)
            lines.append(f"| {seed} | {r['pairs']} | {r['tp']} | {r['fp']} | {r['fn']} | {r['tn']} | "
                         f"{r['uncertain']} | {prec:.2f} | {rec:.2f} | "
                         f"{r['true_merges_in_candidates']}/{r['n_true_merges']} | "
                         f"{r['listed_correct']}/{r['listed']} |")
        lines.append(f"| all | | {tot['tp']} | {tot['fp']} | {tot['fn']} | | | "
                     f"{tot['tp'] / max(tot['tp'] + tot['fp'], 1):.2f} | "
                     f"{tot['tp'] / max(tot['tp'] + tot['fn'], 1):.2f} | | |")
        ks = Path(tmp) / f"s{args.seeds[0]}"

        # 2. throughput
        with fake.FakeChatServer(lambda req, i: fake.decision("no_merge", delay=args.latency)) as s:
            tp = ours_throughput(ks, s.url, args.pairs, args.workers)
            t_ours, n_ok = tp["warm"], tp["ok"]
            t_sa8 = spikeagent_schedule(s.url, args.pairs, args.workers)
            t_sa50 = spikeagent_schedule(s.url, args.pairs, 50)
        lines += ["", f"## Throughput: {args.pairs} pairs, local server, {args.latency:g} s per call", "",
                  "| design | workers | wall time (s) | ratio to ours |", "|---|---|---|---|",
                  f"| ours (1 call per pair, images already rendered, {n_ok} ok) | {args.workers} | "
                  f"{t_ours:.2f} | 1.00 |",
                  f"| ours, cold (images rendered during the run) | {args.workers} | "
                  f"{tp['cold']:.2f} | {tp['cold'] / t_ours:.2f} |",
                  f"| SpikeAgent schedule (2 features + judge) | {args.workers} | {t_sa8:.2f} | "
                  f"{t_sa8 / t_ours:.1f} |",
                  f"| SpikeAgent schedule (2 features + judge) | 50 (its template) | {t_sa50:.2f} | "
                  f"{t_sa50 / t_ours:.1f} |"]

        # 3. render time + image tokens
        rb = render_bench(ks, args.render_pairs)
        ours_img = image_tokens(WIDTH_PX, HEIGHT_PX, "high")
        ours_fs = ours_img + 4 * image_tokens(WIDTH_PX, HEIGHT_PX, "low")
        inp_fs, _ = pipeline.estimate_tokens(4)
        peer = spikeagent_image_tokens(rb["peer_sizes"])
        lines += ["", f"## Render time and image tokens per pair (median of {rb['n']} pairs)", "",
                  "| design | images | render (s/pair) | image tokens/pair | ratio to SpikeAgent |",
                  "|---|---|---|---|---|",
                  f"| ours | 1 PNG {WIDTH_PX}x{HEIGHT_PX}, high detail | {rb['ours_s']:.3f} | {ours_img} | "
                  f"{ours_img / peer:.3f} |",
                  f"| ours + 4 few-shot examples (low detail) | same + 4 x 85 | | {ours_fs} | "
                  f"{ours_fs / peer:.3f} |",
                  f"| ours + 4 examples, total input incl. text (est.) | | | {inp_fs} | "
                  f"{inp_fs / peer:.3f} |",
                  f"| SpikeAgent design, 2 features, 1+1 examples, judge image | "
                  f"{' + '.join(f'{w}x{h}' for w, h in rb['peer_sizes'])} JPEG at 300 dpi | "
                  f"{rb['peer_s']:.3f} | {peer} (images only) | 1.000 |"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
