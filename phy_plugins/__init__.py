"""phy-plugins: curation aids for phy 2.1 (bombcell reasons, UnitRefine, VLM merges, live detection)."""

__version__ = "0.1.0"

#: The phy plugin class names of this bundle, in the order they are attached.
PLUGIN_CLASS_NAMES = (
    "PhyPluginsBombcellReasonPlugin",
    "PhyPluginsUnitRefinePlugin",
    "PhyPluginsVlmMergePlugin",
    "PhyPluginsLiveDetectPlugin",
)
