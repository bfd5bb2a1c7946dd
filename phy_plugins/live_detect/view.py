"""The live detection dock view (pyqtgraph): controls, scrolling trace, waveforms, readouts.

Qt/GUI side only. Detection runs in :class:`~.session.DetectionSession` (worker thread via
``core.tasks.BackgroundTask``); a 25 Hz ``QTimer`` drains its bounded event queue and redraws.
"""

from __future__ import annotations

import collections
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import pyqtgraph as pg
from PyQt5.QtCore import QThreadPool, QTimer
from PyQt5.QtWidgets import QComboBox, QDoubleSpinBox, QHBoxLayout, QLabel, QLineEdit, QPushButton, QVBoxLayout, QWidget

from ..core.phy_safety import isolated, status
from .config import FILTER_BAND, ThresholdConfig
from .display import event_summary, markers, overlay, parse_channels, recall_lines, trace_spacing
from .events import AnalysisEvent
from .matching import ClusterMatcher
from .session import DetectionSession
from .settings import SettingsStore
from .sources import ReplaySource

logger = logging.getLogger("phy")
SPEEDS = {"1x": 1.0, "2x": 2.0, "5x": 5.0, "10x": 10.0, "max": 0.0}


@dataclass
class ViewContext:
    """What the view needs from phy (built by the plugin, or by hand in tests)."""

    traces: Any  # sliceable (n_samples, n_channels) or None when the raw data are missing
    sample_rate: float
    channel_positions: np.ndarray | None
    n_channels: int
    current_time: Callable[[], float] = lambda: 0.0  # where the replay starts (s)
    make_matcher: Callable[[], ClusterMatcher | None] | None = None
    hp_filtered: bool = True


class LiveDetectView(QWidget):
    """Dock widget: start/stop a replay through the detector and watch events as they happen."""

    fps = 25
    n_waveforms = 50

    def __init__(self, ctx: ViewContext, state: dict | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.session: DetectionSession | None = None
        self.task: Any = None
        self.gui: Any = None
        self.auto_channels: list[int] = [0] if ctx.n_channels else []
        self.selected: list[int] = []
        self.events: collections.deque[AnalysisEvent] = collections.deque(maxlen=2000)
        self.waveforms: collections.deque[AnalysisEvent] = collections.deque(maxlen=self.n_waveforms)
        self.n_received = 0
        self.frames = 0
        self._pool_bumped = False
        base = ThresholdConfig(filter_band=None if ctx.hp_filtered else FILTER_BAND)
        self.store = SettingsStore(base)
        self._build()
        self.set_state(state or {})
        self.store.subscribe(self._settings_to_controls, replay=True)
        self.timer = QTimer(self)
        self.timer.setInterval(int(1000 / self.fps))
        self.timer.timeout.connect(self._refresh)

    # -- construction ---------------------------------------------------------------
    def _build(self) -> None:
        self.start_button = QPushButton("Start")
        self.start_button.clicked.connect(self._toggle)
        self.polarity = QComboBox()
        self.polarity.addItems(["neg", "pos", "both"])
        self.k_sigma = _spin(1.0, 30.0, 0.5, " sigma")
        self.refractory = _spin(0.0, 50.0, 0.5, " ms")
        self.channels_edit = QLineEdit()
        self.channels_edit.setPlaceholderText("auto (best channel)")
        self.speed = QComboBox()
        self.speed.addItems(list(SPEEDS))
        for w in (self.polarity, self.speed):
            w.currentIndexChanged.connect(self._controls_changed)
        for w in (self.k_sigma, self.refractory):
            w.valueChanged.connect(self._controls_changed)
        self.channels_edit.editingFinished.connect(self._controls_changed)
        row = QHBoxLayout()
        for label, w in (("", self.start_button), ("polarity", self.polarity), ("k", self.k_sigma),
                         ("refractory", self.refractory), ("channels", self.channels_edit), ("speed", self.speed)):
            if label:
                row.addWidget(QLabel(label))
            row.addWidget(w)
        self.status_label = QLabel("stopped")
        self.event_label = QLabel("no event yet")
        self.recall_label = QLabel("")
        for lab in (self.status_label, self.event_label, self.recall_label):
            lab.setWordWrap(True)
        plots = pg.GraphicsLayoutWidget()
        self.trace_plot = plots.addPlot(row=0, col=0, title="trace")
        self.trace_plot.setLabel("bottom", "time", "s")
        self.trace_plot.disableAutoRange(axis="x")  # scrolls with the data instead
        self.wave_plot = plots.addPlot(row=0, col=1, title="waveforms")
        self.wave_plot.setLabel("bottom", "time from peak", "ms")
        plots.ci.layout.setColumnStretchFactor(0, 3)
        self.trace_curves: list[pg.PlotDataItem] = []
        self.threshold_curve = self.trace_plot.plot([], [], pen=pg.mkPen("r", style=2), connect="finite")
        self.marker_matched = pg.ScatterPlotItem(size=8, brush="g", symbol="t")
        self.marker_unmatched = pg.ScatterPlotItem(size=8, brush="y", symbol="t")
        self.trace_plot.addItem(self.marker_matched)
        self.trace_plot.addItem(self.marker_unmatched)
        self.wave_curve = self.wave_plot.plot([], [], pen=pg.mkPen((120, 180, 255, 90)), connect="finite")
        layout = QVBoxLayout(self)
        layout.addLayout(row)
        layout.addWidget(plots, stretch=1)
        for lab in (self.status_label, self.event_label, self.recall_label):
            layout.addWidget(lab)
        if self.ctx.traces is None:
            self.start_button.setEnabled(False)
            self.status_label.setText("no raw data: set dat_path in params.py to use live detection")

    # -- phy integration -------------------------------------------------------------
    def attach(self, gui: Any) -> None:
        """Called by phy's ``create_and_add_view``: dock the widget, restore and save its state."""
        from phylib.utils import connect

        self.gui = gui
        gui.add_view(self, position="right")
        self.set_state(dict(gui.state.get_view_state(self) or {}))

        @connect(sender=gui)
        @isolated
        def on_close(sender: Any) -> None:
            gui.state.update_view_state(self, self.state)
            self.shutdown()

        @connect
        @isolated
        def on_close_view(view: Any, gui_: Any) -> None:
            if view is self:
                gui.state.update_view_state(self, self.state)
                self.shutdown()

        self._callbacks = (on_close, on_close_view)

    def set_selection(self, cluster_ids: list[int], best_channel: int | None) -> None:
        """The selected clusters changed (default channel: the first one's best channel)."""
        self.selected = list(cluster_ids)
        if best_channel is not None:
            self.auto_channels = [int(best_channel)]
            self._apply_channels()

    @property
    def state(self) -> dict:
        """Persistent view state (settings only, never data)."""
        c = self.store.get()
        return {"polarity": c.polarity, "auto_k_sigma": c.auto_k_sigma, "refractory_ms": c.refractory_s * 1e3,
                "channels": self.channels_edit.text(), "speed": self.speed.currentText()}

    def set_state(self, state: dict) -> None:
        """Restore settings saved by :attr:`state`; bad values are ignored with a log line."""
        try:
            changes = {}
            if state.get("polarity") in ("neg", "pos", "both"):
                changes["polarity"] = state["polarity"]
            if "auto_k_sigma" in state:
                changes["auto_k_sigma"] = float(state["auto_k_sigma"])
            if "refractory_ms" in state:
                changes["refractory_s"] = float(state["refractory_ms"]) / 1e3
            self.store.update(**changes)
            if state.get("speed") in SPEEDS:
                self.speed.setCurrentText(state["speed"])
            if isinstance(state.get("channels"), str):
                self.channels_edit.setText(state["channels"])
        except (TypeError, ValueError) as exc:
            logger.warning("live_detect: ignoring invalid saved state %r: %s", state, exc)

    # -- controls -------------------------------------------------------------------
    def _settings_to_controls(self, c: ThresholdConfig) -> None:
        for w, value in ((self.polarity, c.polarity), (self.k_sigma, c.auto_k_sigma),
                         (self.refractory, c.refractory_s * 1e3)):
            w.blockSignals(True)
            if isinstance(w, QComboBox):
                w.setCurrentText(value)
            else:
                w.setValue(value)
            w.blockSignals(False)

    @isolated
    def _controls_changed(self, *args: Any) -> None:
        self.store.update(polarity=self.polarity.currentText(), auto_k_sigma=float(self.k_sigma.value()),
                          refractory_s=float(self.refractory.value()) / 1e3)
        self._apply_channels()

    def display_channels(self) -> list[int]:
        """Channels shown: the typed list, else the best channel of the selected cluster."""
        try:
            typed = parse_channels(self.channels_edit.text(), self.ctx.n_channels)
        except ValueError as exc:
            status(self.gui, f"live_detect: {exc}")
            typed = []
        return typed or self.auto_channels

    def _apply_channels(self) -> None:
        if self.session is not None:
            chans = self.display_channels()
            if chans != self.session.history.channels:
                self.session.history.set_channels(chans)

    @isolated
    def _toggle(self, *args: Any) -> None:
        if self.is_running:
            self.stop()
        else:
            self.start()

    # -- run control ----------------------------------------------------------------
    @property
    def is_running(self) -> bool:
        return self.session is not None and not self.session.stopped

    def start(self) -> None:
        """Replay the raw data from the trace view's current time through the detector."""
        from ..core.tasks import BackgroundTask

        if self.is_running or self.ctx.traces is None:
            return
        sr = self.ctx.sample_rate
        start = int(max(0.0, self.ctx.current_time()) * sr)
        source = ReplaySource(self.ctx.traces, sr, start=start, chunk_ms=10.0,
                              speed=SPEEDS.get(self.speed.currentText(), 1.0))
        matcher = self.ctx.make_matcher() if self.ctx.make_matcher else None
        self.session = DetectionSession(source, self.store, self.ctx.channel_positions, matcher=matcher,
                                        display_channels=self.display_channels(), display_s=1.0)
        self.events.clear()
        self.waveforms.clear()
        pool = QThreadPool.globalInstance()  # a long-running stream must not starve phy's pool
        pool.setMaxThreadCount(pool.maxThreadCount() + 1)
        self._pool_bumped = True
        self.task = BackgroundTask(self.session.run, gui=self.gui, name="live_detect",
                                   on_error=self._on_error)
        self.task.signals.finished.connect(self._on_finished)
        self.start_button.setText("Stop")
        self.timer.start()

    def stop(self) -> None:
        """Ask the worker to stop (it flushes and ends within one chunk)."""
        if self.session is not None:
            self.session.stop()
        if self.task is not None:
            self.task.cancel()

    def shutdown(self, timeout_s: float = 2.0) -> None:
        """Stop the worker and wait for it (GUI closing)."""
        self.stop()
        if self.task is not None:
            self.task.wait(timeout_s)
        self.timer.stop()
        self._release_pool()

    def _release_pool(self) -> None:
        if self._pool_bumped:
            pool = QThreadPool.globalInstance()
            pool.setMaxThreadCount(max(1, pool.maxThreadCount() - 1))
            self._pool_bumped = False

    @isolated
    def _on_error(self, exc: BaseException, tb: str) -> None:
        self.status_label.setText(f"detection stopped: {type(exc).__name__}: {exc}")

    @isolated
    def _on_finished(self) -> None:
        self._release_pool()
        self._refresh()
        self.timer.stop()
        self.start_button.setText("Start")

    # -- drawing --------------------------------------------------------------------
    @isolated
    def _refresh(self) -> None:
        session = self.session
        if session is None:
            return
        new = session.drain(max_items=2000)
        self.n_received += len(new)
        self.events.extend(new)
        chans = session.history.channels
        self.waveforms.extend(e for e in new if not chans or e.channel in chans)
        samples, chans, data = session.history.snapshot()
        sr = self.ctx.sample_rate
        levels = session.levels
        spacing = trace_spacing(data, levels, chans)
        t = samples / sr
        self._draw_traces(t, chans, data, levels, spacing)
        t0, t1 = (t[0], t[-1]) if len(t) else (0.0, 0.0)
        mx, my, matched = markers(self.events, chans, spacing, t0, t1)
        self.marker_matched.setData(mx[matched], my[matched])
        self.marker_unmatched.setData(mx[~matched], my[~matched])
        if self.waveforms:
            w0 = self.waveforms[-1]
            x, y = overlay([e.samples for e in self.waveforms], sr, int(round(w0.pre_ms * sr / 1e3)))
            self.wave_curve.setData(x, y)
            self.event_label.setText("last event: " + event_summary(w0))
        s = session.stats()
        dead = f" | dead channels {s.dead_channels}" if s.dead_channels else ""
        self.status_label.setText(
            f"{'running' if s.running else 'stopped'} | t={s.position / sr:.2f}s | rate {s.rate_hz:.0f} ev/s | "
            f"events {s.events} | shown {self.n_received} | dropped {s.dropped}{dead}"
            + (f" | error {s.error}" if s.error else ""))
        if session.matcher is not None:
            self.recall_label.setText("  ".join(recall_lines(session.matcher.recall(), self.selected)))
        self.frames += 1

    def _draw_traces(self, t: np.ndarray, chans: list[int], data: np.ndarray, levels: np.ndarray | None,
                     spacing: float) -> None:
        while len(self.trace_curves) < len(chans):
            self.trace_curves.append(self.trace_plot.plot([], [], pen=pg.mkPen("w", width=1), connect="finite"))
        for i, curve in enumerate(self.trace_curves):
            if i < len(chans):
                curve.setData(t, data[:, i] - i * spacing)
            else:
                curve.setData([], [])
        if len(t):
            self.trace_plot.setXRange(t[0], t[-1], padding=0)
        xs, ys = [], []
        t = t[[0, -1]] if len(t) else t
        if levels is not None and len(t):
            for i, c in enumerate(chans):
                for lv in levels[:, c]:
                    if np.isfinite(lv):
                        xs += [t[0], t[-1], np.nan]
                        ys += [lv - i * spacing] * 2 + [np.nan]
        self.threshold_curve.setData(np.array(xs, float), np.array(ys, float))


def _spin(lo: float, hi: float, step: float, suffix: str) -> QDoubleSpinBox:
    w = QDoubleSpinBox()
    w.setRange(lo, hi)
    w.setSingleStep(step)
    w.setDecimals(2)
    w.setSuffix(suffix)
    return w
