"""vlm_merge inside a real phy GUI (offscreen): AI menu, background run against a local
server, the suggestions dock, Accept through phy's supervisor + undo, Reject, similarity."""
from __future__ import annotations

import vlm_merge_data
import vlm_merge_fake_server as fake

from phy_plugins.core.synthetic import load_ground_truth
from phy_plugins.vlm_merge.fewshot import FewShotBank
from phy_plugins.vlm_merge.plugin import ai_actions
from phy_plugins.vlm_merge.suggestions import ACCEPTED, PENDING, REJECTED

vm_ks_session, vm_ks, vm_ks_rendered = (vlm_merge_data.vm_ks_session, vlm_merge_data.vm_ks,
                                        vlm_merge_data.vm_ks_rendered)
PLUGIN = "PhyPluginsVlmMergePlugin"


def test_gui_suggest_accept_undo_reject(vm_ks_rendered, vm_ks, phy_gui, qtbot, monkeypatch):
    from phy_plugins.vlm_merge import api

    merges = {tuple(p) for p in load_ground_truth(vm_ks)["true_merges"]}

    def respond(req, i):
        pair = fake.pair_of(req)
        return fake.decision("merge", 0.9, "refractory dip") if pair in merges else \
            fake.decision("no_merge", 0.8, "flat CCG")

    with fake.FakeChatServer(respond) as server:
        c, gui = phy_gui(vm_ks, plugins=[PLUGIN])
        plugin = c.phy_plugins_vlm_merge
        sup = c.supervisor
        menus = [a.text() for a in gui.menuBar().actions()]
        assert menus.index("&AI") == menus.index("&Help") - 1
        assert ai_actions(gui) is ai_actions(gui)  # get-or-create: one shared "AI" group
        ai_texts = [a.text() for a in gui.get_menu("&AI").actions()]
        assert any("Suggest merges" in t for t in ai_texts)
        assert c.similarity_functions["ai_merge"] == plugin.similarity

        reads = []  # .env is read once per run (plan, key check and calls share it)
        real = api._dotenv_values
        monkeypatch.setattr(api, "_dotenv_values", lambda dirs: reads.append(dirs) or real(dirs))
        plugin.suggest(threshold=0.93, model="gpt-4o", base_url=server.url, workers=4,
                       confirm=False)
        qtbot.waitUntil(lambda: len(plugin.suggestions) > 0 and not plugin.task.running,
                        timeout=60000)
        assert len(reads) == 1
        assert server.n_requests == len(plugin.suggestions) >= 5
        view = plugin.view
        assert view is not None and len(view.rows) == len(plugin.suggestions)
        top = view.rows[0]
        a, b = top.pair
        assert top.pair in merges and top.result.decision == "merge"
        assert sup.similarity == plugin.similarity
        assert plugin.similarity(a)[0] == (b, 0.9)

        view.select_row(0)  # clicking a row selects the pair in phy
        qtbot.waitUntil(lambda: sorted(sup.selected) == [a, b], timeout=10000)
        n_spikes = len(sup.clustering.spikes_in_clusters([a, b]))

        view.accept_button.click()  # Accept = phy merge through the supervisor
        qtbot.waitUntil(lambda: a not in sup.clustering.cluster_ids, timeout=10000)
        new = max(sup.clustering.cluster_ids)
        assert b not in sup.clustering.cluster_ids
        assert len(sup.clustering.spikes_in_clusters([new])) == n_spikes
        assert plugin.suggestions.get(a, b).status == ACCEPTED
        assert [(e["a"], e["b"], e["label"]) for e in FewShotBank(vm_ks).entries] == [(a, b, "merge")]

        sup.undo()
        qtbot.waitUntil(lambda: {a, b} <= set(sup.clustering.cluster_ids), timeout=10000)
        assert plugin.suggestions.get(a, b).status == PENDING
        assert len(FewShotBank(vm_ks).entries) == 0

        no = next(s for s in view.rows if s.result.decision == "no_merge")
        view.select_row(view.rows.index(no))
        view.reject_button.click()
        assert plugin.suggestions.get(*no.pair).status == REJECTED
        assert [(e["a"], e["b"], e["label"]) for e in FewShotBank(vm_ks).entries] == \
            [(*no.pair, "no_merge")]
        assert no.pair[1] not in [o for o, _ in plugin.similarity(no.pair[0])]
        assert (vm_ks / "vlm_merge_reasoning.csv").exists()
        assert not (vm_ks / "cluster_group.tsv").exists() or "vlm" not in \
            (vm_ks / "cluster_group.tsv").read_text()


def test_gui_dialog_and_previous_results(vm_ks_rendered, vm_ks, phy_gui, qtbot):
    from phy_plugins.cli import main
    from phy_plugins.vlm_merge.view import PhyPluginsVlmMergeDialog

    assert main(["vlm-merge", str(vm_ks), "--model", "offline", "--threshold", "0.97"]) == 0
    c, gui = phy_gui(vm_ks, plugins=[PLUGIN])
    plugin = c.phy_plugins_vlm_merge
    assert len(plugin.suggestions) >= 4  # loaded from vlm_merge_reasoning.csv
    view = plugin.show_view()
    assert view is not None and view.rows[0].result.decision == "merge"
    assert "vlm_merge_reasoning.csv" in view.info.text()  # dock opened with the earlier results
    task = plugin.suggest(threshold=0.97, model="gpt-4o", confirm=False)  # no key, no URL
    assert task.wait(30)
    assert "no API key" in gui.status_message and plugin.task is task
    dlg = PhyPluginsVlmMergeDialog(gui, threshold=0.8, model="offline", base_url=None, workers=8)
    dlg.threshold.setValue(0.85)
    dlg.model.setCurrentText("gpt-4o-mini")
    assert dlg.values() == dict(threshold=0.85, model="gpt-4o-mini", base_url=None, workers=8)


def test_gui_menu_dialog_shows_cost_before_sending(vm_ks_rendered, vm_ks, phy_gui, qtbot,
                                                   monkeypatch):
    """The real menu action: parameters dialog, then a Yes/No box with the pair count and cost
    that appears before any request reaches the server."""
    from PyQt5.QtCore import QTimer
    from PyQt5.QtWidgets import QApplication, QDialog, QMessageBox

    with fake.FakeChatServer(lambda req, i: fake.decision("no_merge", 0.7)) as server:
        monkeypatch.setenv("OPENAI_BASE_URL", server.url)
        c, gui = phy_gui(vm_ks, plugins=[PLUGIN])
        plugin = c.phy_plugins_vlm_merge
        seen = []

        def answer_modals():
            w = QApplication.activeModalWidget()
            if isinstance(w, QMessageBox):
                seen.append((w.text(), server.n_requests))
                w.button(QMessageBox.Yes).click()
            elif isinstance(w, QDialog) and w.windowTitle() == "Suggest merges":
                spin = [x for x in w.children() if x.__class__.__name__ == "QDoubleSpinBox"][0]
                spin.setValue(0.97)
                w.accept()

        timer = QTimer()
        timer.timeout.connect(answer_modals)
        timer.start(50)
        action = next(a for a in gui.get_menu("&AI").actions() if "Suggest merges" in a.text())
        action.trigger()
        qtbot.waitUntil(lambda: len(plugin.suggestions) > 0 and not plugin.task.running,
                        timeout=60000)
        timer.stop()
        assert len(seen) == 1
        text, n_before = seen[0]
        assert n_before == 0  # nothing was sent before the user said Yes
        assert "estimated cost $" in text and f"{len(plugin.suggestions)} to send" in text
        assert server.n_requests == len(plugin.suggestions)
        assert all(r.result.decision == "no_merge" for r in plugin.view.rows)


def test_dialog_settings_are_remembered_across_sessions(vm_ks, tmp_path, qtbot, monkeypatch):
    """The last run's dialog choices come back in the next phy session (phy's GUI state), never the key."""
    from phy_plugins import all_plugins  # noqa: F401 - registers our plugin classes
    from phy_plugins.core.phy_session import close_phy, open_phy
    from phy_plugins.vlm_merge.plugin import STATE_KEY, default_settings

    monkeypatch.setenv("OPENAI_API_KEY", "sk-sentinel-not-to-be-saved")
    config = tmp_path / "phy-config"
    c, gui = open_phy(vm_ks, plugins=[PLUGIN], config_dir=config, clear_state=True, enable_threading=False)
    try:
        plugin = c.phy_plugins_vlm_merge
        assert plugin.settings == default_settings()
        plugin.suggest(threshold=0.97, model="offline", workers=2, confirm=False)
        qtbot.waitUntil(lambda: not plugin.task.running, timeout=60000)
    finally:
        close_phy(c, gui)
    state_files = list(config.rglob("state.json"))
    saved = "".join(p.read_text() for p in state_files)
    assert STATE_KEY in saved and "sk-sentinel" not in saved
    c, gui = open_phy(vm_ks, plugins=[PLUGIN], config_dir=config, enable_threading=False)
    try:
        settings = c.phy_plugins_vlm_merge.settings
        assert (settings["threshold"], settings["model"], settings["workers"]) == (0.97, "offline", 2)
    finally:
        close_phy(c, gui)


def test_saved_settings_keep_only_well_typed_values():
    from phy_plugins.vlm_merge.plugin import STATE_KEY, saved_settings

    state = {STATE_KEY: {"threshold": "high", "model": "gpt-4o", "workers": True, "base_url": None, "k": 3}}
    assert saved_settings(state) == {"model": "gpt-4o", "base_url": None}
    assert saved_settings({}) == {}
    assert saved_settings({STATE_KEY: ["threshold", 0.9]}) == {}
