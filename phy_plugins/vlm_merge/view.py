"""The dockable "merge suggestions" view (Qt only; logic lives in ``suggestions``)."""
from __future__ import annotations

from collections.abc import Callable

from PyQt5.QtCore import Qt
from PyQt5.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from .suggestions import Suggestion

COLUMNS = ["A", "B", "decision", "confidence", "similarity", "status", "reasoning"]


class PhyPluginsVlmMergeView(QWidget):
    """Pairs ranked by merge confidence; click selects the pair in phy; Accept / Reject."""

    def __init__(self, on_select: Callable[[int, int], None],
                 on_accept: Callable[[int, int], None], on_reject: Callable[[int, int], None],
                 parent: QWidget | None = None):
        super().__init__(parent)
        self._on_select, self._on_accept, self._on_reject = on_select, on_accept, on_reject
        self.rows: list[Suggestion] = []
        self.table = QTableWidget(0, len(COLUMNS))
        self.table.setHorizontalHeaderLabels(COLUMNS)
        self.table.setSelectionBehavior(QAbstractItemView.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.itemSelectionChanged.connect(self._selected)
        self.accept_button = QPushButton("Accept (merge)")
        self.reject_button = QPushButton("Reject")
        self.accept_button.clicked.connect(lambda: self._act(self._on_accept))
        self.reject_button.clicked.connect(lambda: self._act(self._on_reject))
        self.info = QLabel("No suggestions yet: AI > Suggest merges...")
        self.info.setWordWrap(True)
        buttons = QHBoxLayout()
        buttons.addWidget(self.accept_button)
        buttons.addWidget(self.reject_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.info)
        layout.addWidget(self.table)
        layout.addLayout(buttons)

    def set_rows(self, rows: list[Suggestion], info: str = "") -> None:
        """Show these suggestions (already sorted)."""
        current = self.current_pair()
        self.rows = list(rows)
        self.table.blockSignals(True)
        self.table.setRowCount(len(self.rows))
        for i, s in enumerate(self.rows):
            r = s.result
            conf = "" if r.confidence is None else f"{r.confidence:.2f}"
            sim = "" if r.similarity is None else f"{r.similarity:.3f}"
            text = r.error if not r.ok else r.reasoning
            for j, v in enumerate([str(r.cluster_id_1), str(r.cluster_id_2), r.decision, conf,
                                   sim, s.status, text]):
                item = QTableWidgetItem(v)
                if j == len(COLUMNS) - 1:
                    item.setToolTip(text)
                if j < 5:
                    item.setTextAlignment(Qt.AlignCenter)
                self.table.setItem(i, j, item)
            if current == s.pair:
                self.table.selectRow(i)
        self.table.blockSignals(False)
        self.table.resizeColumnsToContents()
        if info:
            self.info.setText(info)

    def set_info(self, text: str) -> None:
        self.info.setText(text)

    def current_pair(self) -> tuple[int, int] | None:
        rows = self.table.selectionModel().selectedRows() if self.table.selectionModel() else []
        if not rows or rows[0].row() >= len(self.rows):
            return None
        return self.rows[rows[0].row()].pair

    def select_row(self, index: int) -> None:
        self.table.selectRow(index)

    def _selected(self) -> None:
        pair = self.current_pair()
        if pair is not None:
            self._on_select(*pair)

    def _act(self, fn: Callable[[int, int], None]) -> None:
        pair = self.current_pair()
        if pair is not None:
            fn(*pair)


class PhyPluginsVlmMergeDialog:
    """Asks for threshold, model, base URL and workers (the API key is never asked for)."""

    MODELS = ["gpt-4o", "gpt-4o-mini", "gpt-4.1", "offline"]

    def __init__(self, parent: QWidget | None, *, threshold: float, model: str,
                 base_url: str | None, workers: int):
        from PyQt5.QtWidgets import (
            QComboBox,
            QDialog,
            QDialogButtonBox,
            QDoubleSpinBox,
            QFormLayout,
            QLineEdit,
            QSpinBox,
        )

        self.dialog = d = QDialog(parent)
        d.setWindowTitle("Suggest merges")
        form = QFormLayout(d)
        self.threshold = QDoubleSpinBox()
        self.threshold.setRange(0.0, 1.0)
        self.threshold.setSingleStep(0.05)
        self.threshold.setDecimals(2)
        self.threshold.setValue(threshold)
        form.addRow("Min. template similarity (higher = stricter)", self.threshold)
        self.model = QComboBox()
        self.model.setEditable(True)
        self.model.addItems(self.MODELS if model in self.MODELS else [model, *self.MODELS])
        self.model.setCurrentText(model)
        form.addRow("Model ('offline' = no API)", self.model)
        self.base_url = QLineEdit(base_url or "")
        self.base_url.setPlaceholderText("https://api.openai.com/v1 (or OPENAI_BASE_URL)")
        form.addRow("Server URL", self.base_url)
        self.workers = QSpinBox()
        self.workers.setRange(1, 64)
        self.workers.setValue(workers)
        form.addRow("Concurrent requests", self.workers)
        form.addRow(QLabel("API key: read from OPENAI_API_KEY or a .env file only."))
        box = QDialogButtonBox(QDialogButtonBox.Ok | QDialogButtonBox.Cancel)
        box.accepted.connect(d.accept)
        box.rejected.connect(d.reject)
        form.addRow(box)

    def values(self) -> dict:
        return dict(threshold=float(self.threshold.value()),
                    model=self.model.currentText().strip() or "gpt-4o",
                    base_url=self.base_url.text().strip() or None,
                    workers=int(self.workers.value()))

    def exec_(self) -> dict | None:
        return self.values() if self.dialog.exec_() else None
