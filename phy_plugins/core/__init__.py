"""Shared, Qt-free building blocks of phy-plugins (folder access, TSV I/O, synthetic data).

Modules that need Qt or phy's GUI (``tasks``, ``phy_safety``) import it lazily.
"""
