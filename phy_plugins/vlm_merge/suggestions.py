"""The reviewable list of suggestions (pure: no Qt). Backs the dock and the similarity function."""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from .results import PairResult

PENDING, ACCEPTED, REJECTED = "pending", "accepted", "rejected"


@dataclass
class Suggestion:
    result: PairResult
    status: str = PENDING

    @property
    def pair(self) -> tuple[int, int]:
        return self.result.pair


class SuggestionList:
    """Results of the last run with the user's review status."""

    def __init__(self, results: Iterable[PairResult] = ()):
        self.items: dict[tuple[int, int], Suggestion] = {}
        self.set_results(results)

    def set_results(self, results: Iterable[PairResult]) -> None:
        """Replace the list, keeping the review status of pairs already reviewed."""
        old = self.items
        self.items = {}
        for r in results:
            s = Suggestion(r, old[r.pair].status if r.pair in old else PENDING)
            self.items[r.pair] = s

    def rows(self, alive: set[int] | None = None) -> list[Suggestion]:
        """Suggestions sorted by merge score (errors last); pairs whose clusters no longer
        exist are left out when ``alive`` is given (accepted pairs are kept)."""
        out = [s for s in self.items.values()
               if alive is None or s.status == ACCEPTED or set(s.pair) <= alive]
        return sorted(out, key=lambda s: (not s.result.ok, -s.result.merge_score, s.pair))

    def get(self, a: int, b: int) -> Suggestion | None:
        return self.items.get(tuple(sorted((int(a), int(b)))))

    def set_status(self, a: int, b: int, status: str) -> Suggestion:
        s = self.get(a, b)
        if s is None:
            raise KeyError(f"no suggestion for clusters {a} and {b}")
        s.status = status
        return s

    def similar(self, cluster_id: int, alive: set[int] | None = None) -> list[tuple[int, float]]:
        """Partners of a cluster ranked by merge score, for phy's similarity view and wizard
        (rejected and failed pairs left out)."""
        c = int(cluster_id)
        out = []
        for s in self.items.values():
            if c not in s.pair or s.status == REJECTED or not s.result.ok:
                continue
            other = s.pair[1] if s.pair[0] == c else s.pair[0]
            if alive is None or other in alive:
                out.append((other, round(s.result.merge_score, 3)))
        return sorted(out, key=lambda t: (-t[1], t[0]))

    def errors(self) -> list[tuple[int, int]]:
        return [p for p, s in self.items.items() if not s.result.ok]

    def __len__(self) -> int:
        return len(self.items)
