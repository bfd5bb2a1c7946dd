"""UnitRefine models in phy: load/save model folders, compute features, train, predict.

Pure modules (no Qt): ``model_io``, ``features``, ``metrics_*``, ``predict``, ``train``, ``labels``.
The phy adapter lives in ``plugin.py`` and the command line in ``cli.py``.
"""
