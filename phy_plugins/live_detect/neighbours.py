"""Channel neighbourhoods from ``channel_positions`` (compressed sparse rows)."""

from __future__ import annotations

import numpy as np


def neighbour_csr(n_channels: int, channel_positions: np.ndarray | None,
                  radius_um: float) -> tuple[np.ndarray, np.ndarray]:
    """Return ``(ptr, idx)``: channel ``c``'s neighbours (itself included) are
    ``idx[ptr[c]:ptr[c+1]]``, all channels within ``radius_um``. Without positions or with a
    zero radius every channel is its own only neighbour."""
    if channel_positions is None or radius_um <= 0:
        return np.arange(n_channels + 1, dtype=np.int64), np.arange(n_channels, dtype=np.int64)
    pos = np.asarray(channel_positions, dtype=np.float64)
    if pos.ndim != 2 or pos.shape[0] != n_channels:
        raise ValueError(f"channel_positions must have shape ({n_channels}, 2 or 3), got {pos.shape}")
    d = np.sqrt(((pos[:, None, :] - pos[None, :, :]) ** 2).sum(-1))
    mask = d <= radius_um
    np.fill_diagonal(mask, True)
    ptr = np.zeros(n_channels + 1, dtype=np.int64)
    ptr[1:] = np.cumsum(mask.sum(1))
    idx = np.nonzero(mask)[1].astype(np.int64)
    return ptr, idx
