"""Redraw cost of the LiveDetectView dock (offscreen Qt), while the detector replays at full speed.

    QT_QPA_PLATFORM=offscreen python benchmarks/bench_live_detect_view.py [--channels 384] [--seconds 5]

Measures, on the GUI thread, the time of each redraw (drain the event queue, update trace,
thresholds, markers, waveforms, labels) and the frame rate the 25 Hz timer achieves, with the
worker detecting in parallel. Writes its section of docs/benchmarks/live_detect.md.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
from bench_live_detect import write_section  # noqa: E402  (same folder: the script's sys.path[0])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--channels", type=int, default=384)
    ap.add_argument("--seconds", type=float, default=5.0, help="wall seconds to run the view")
    ap.add_argument("--speed", default="1x", help="replay speed: 1x, 2x, 5x, 10x or max")
    ap.add_argument("--out", type=Path, default=Path(__file__).resolve().parents[1] / "docs/benchmarks/live_detect.md",
                    help="Markdown file whose view-redraw section is replaced (default: docs/benchmarks/...)")
    args = ap.parse_args(argv)

    from PyQt5.QtWidgets import QApplication

    from phy_plugins.live_detect.view import LiveDetectView, ViewContext

    app = QApplication.instance() or QApplication([])
    sr, n_ch = 30_000.0, args.channels
    rng = np.random.default_rng(0)
    n = int(sr * 60)
    traces = rng.normal(0, 20, (n, n_ch)).astype(np.int16)
    t = np.arange(int(sr * 0.5), n - 100, 600)  # 50 spikes/s spread over the probe
    ch = rng.integers(0, n_ch, t.size)
    shape = (-200 * np.exp(-((np.arange(-15, 16)) / 4.0) ** 2)).astype(np.int16)
    for ti, ci in zip(t, ch, strict=True):
        traces[ti - 15:ti + 16, ci] += shape
    pos = np.c_[np.tile([0.0, 32.0], n_ch // 2 + 1)[:n_ch], np.repeat(np.arange(n_ch // 2 + 1) * 20.0, 2)[:n_ch]]
    view = LiveDetectView(ViewContext(traces=traces, sample_rate=sr, channel_positions=pos, n_channels=n_ch))
    view.resize(1200, 600)
    view.show()
    view.channels_edit.setText(", ".join(str(c) for c in range(0, min(n_ch, 8))))
    view.speed.setCurrentText(args.speed)
    durations: list[float] = []
    original = view._refresh

    def timed() -> None:
        t0 = time.perf_counter()
        original()
        durations.append(time.perf_counter() - t0)

    view.timer.timeout.disconnect()
    view.timer.timeout.connect(timed)
    view.start()
    t_end = time.monotonic() + args.seconds
    while time.monotonic() < t_end:
        app.processEvents()
        time.sleep(0.002)
    view.shutdown()
    stats = view.session.stats()
    d = np.array(durations) * 1e3
    fps = len(d) / args.seconds
    text = f"""### live_detect view redraw

Command: `QT_QPA_PLATFORM=offscreen python benchmarks/bench_live_detect_view.py --channels {n_ch} \
--seconds {args.seconds:g} --speed {args.speed}`

{n_ch} channels int16 at 30 kHz (synthetic, ~50 spikes/s), 8 channels drawn, replay at {args.speed}, offscreen Qt,
worker detecting in parallel. Redraws: {len(d)} in {args.seconds:g} s = **{fps:.1f} frames/s** (timer 25 Hz);
time per redraw on the GUI thread p50 {np.percentile(d, 50):.1f} ms, p99 {np.percentile(d, 99):.1f} ms,
max {d.max():.1f} ms; GUI thread busy {100 * d.sum() / 1e3 / args.seconds:.0f} % of the time. Events detected
{stats.events}, shown {view.n_received}, dropped {stats.dropped}.
"""
    print(text)
    write_section(args.out, "bench_live_detect_view", text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
