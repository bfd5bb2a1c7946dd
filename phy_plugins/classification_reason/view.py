"""Dockable "bombcell reason" view: every rule for the selected cluster (Qt widget only)."""

from __future__ import annotations

import math

from PyQt5.QtGui import QBrush, QColor
from PyQt5.QtWidgets import QAbstractItemView, QLabel, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget

from ..core.phy_safety import isolated
from .session import ReasonSession, ViewContent

HEADERS = ("block", "rule", "value", "threshold", "state", "distance to flip")
_FAIL = QColor(190, 60, 60, 110)
_OFF = QColor(128, 128, 128)


def _num(v: float) -> str:
    return "" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v:.4g}"


class BombcellReasonView(QWidget):
    """Header (reason, labels, all failed rules) above a table with one row per bombcell rule.

    The class name is the ``view_creator`` key, so phy restores the view with its layout.
    """

    def __init__(self, session: ReasonSession, supervisor=None, parent=None):
        super().__init__(parent)
        self.session = session
        self.supervisor = supervisor
        self.setWindowTitle("bombcell reason")
        self.title = QLabel("select a cluster")
        self.title.setWordWrap(True)
        self.title.setStyleSheet("font-weight: bold")
        self.details = QLabel("")
        self.details.setWordWrap(True)
        self.table = QTableWidget(0, len(HEADERS))
        self.table.setHorizontalHeaderLabels(HEADERS)
        self.table.setEditTriggers(QAbstractItemView.NoEditTriggers)
        self.table.verticalHeader().setVisible(False)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.details)
        layout.addWidget(self.table, 1)
        self.content: ViewContent | None = None

    @isolated
    def on_select(self, sender, cluster_ids, **kwargs) -> None:
        """phy's ``select`` event; only the supervisor's selection is followed."""
        if self.supervisor is not None and sender is not self.supervisor:
            return
        if len(cluster_ids):
            self.show_cluster(int(cluster_ids[0]))

    def show_cluster(self, cluster_id: int) -> None:
        c = self.session.view_content(cluster_id)
        self.content = c
        self.title.setText(c.title)
        self.details.setText("\n".join(c.lines))
        self.table.setRowCount(len(c.rows))
        for r, row in enumerate(c.rows):
            rule = row["rule"] + (f"  [{row['group']}]" if row["group"] else "")
            cells = (row["block"], rule, _num(row["value"]), _num(row["threshold"]), row["state"], row["flip"])
            for col, text in enumerate(cells):
                item = QTableWidgetItem(str(text))
                if row["state"] == "FAIL":
                    item.setBackground(QBrush(_FAIL))
                elif row["state"] == "not evaluated":
                    item.setForeground(QBrush(_OFF))
                self.table.setItem(r, col, item)
        self.table.resizeColumnsToContents()

    def row_texts(self) -> list[list[str]]:
        """The table as text (for tests and copy/paste)."""
        return [[self.table.item(r, c).text() for c in range(self.table.columnCount())]
                for r in range(self.table.rowCount())]
