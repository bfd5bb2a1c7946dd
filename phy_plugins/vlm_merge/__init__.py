"""AI merge suggestions from correlogram and amplitude images (pure core + phy adapter).

Pure modules (no Qt): ``candidates``, ``evidence``, ``render``, ``offline``, ``prompt``,
``tokens``, ``api``, ``runner``, ``results``, ``fewshot``, ``pipeline``.
Qt/phy adapters: ``plugin`` and ``view``.
"""
