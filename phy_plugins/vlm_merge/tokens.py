"""Token and cost estimates (OpenAI's published image-token rule, list prices)."""
from __future__ import annotations

import math

# USD per million tokens (input, output); list prices, used only for estimates.
PRICES_PER_M: dict[str, tuple[float, float]] = {
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "offline": (0.0, 0.0),
}
DEFAULT_PRICE = PRICES_PER_M["gpt-4o"]

BASE_IMAGE_TOKENS = 85
TILE_TOKENS = 170
TILE_PX = 512


def image_tokens(width: int, height: int, detail: str = "high") -> int:
    """Input tokens for one image under OpenAI's GPT-4o rule.

    ``low`` detail is a flat 85 tokens. ``high``: fit inside 2048x2048, then shrink so
    the shortest side is at most 768 px, then 85 + 170 per 512-px tile.
    """
    if detail == "low":
        return BASE_IMAGE_TOKENS
    w, h = float(width), float(height)
    if max(w, h) > 2048:
        s = 2048 / max(w, h)
        w, h = w * s, h * s
    if min(w, h) > 768:
        s = 768 / min(w, h)
        w, h = w * s, h * s
    tiles = math.ceil(w / TILE_PX) * math.ceil(h / TILE_PX)
    return BASE_IMAGE_TOKENS + TILE_TOKENS * tiles


def text_tokens(text: str) -> int:
    """Rough text-token estimate (about 4 characters per token)."""
    return max(1, math.ceil(len(text) / 4))


def price_for(model: str) -> tuple[float, float]:
    """(input, output) USD per million tokens; unknown models are priced as gpt-4o."""
    for name in sorted(PRICES_PER_M, key=len, reverse=True):
        if model == name or model.startswith(name + "-"):
            return PRICES_PER_M[name]
    return DEFAULT_PRICE


def cost_usd(model: str, input_tokens: int, output_tokens: int) -> float:
    """Cost in USD for a call with these token counts."""
    p_in, p_out = price_for(model)
    return (input_tokens * p_in + output_tokens * p_out) / 1e6
