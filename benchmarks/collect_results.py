"""Assemble docs/benchmarks.md from each plugin's latest results in docs/benchmarks/<plugin>.md.

Each benchmark script rewrites its own section file with the command that produced it; run this
afterwards:  python benchmarks/collect_results.py
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ORDER = ("classification_reason", "unitrefine", "vlm_merge", "live_detect")
HEADER = """# Benchmarks

Latest results of `benchmarks/bench_*.py`, each against its named peer in the same run (ratios),
on this project's 2-core build machines (shared and noisy: each section says the load it ran under).
Every section gives the exact command that produced it. Speed is measured here, never asserted in tests.

"""


def main() -> None:
    parts = [HEADER]
    for name in ORDER:
        path = ROOT / "docs" / "benchmarks" / f"{name}.md"
        if path.exists():
            parts.append(path.read_text(encoding="utf-8").strip() + "\n\n")
    (ROOT / "docs" / "benchmarks.md").write_text("".join(parts).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {ROOT / 'docs' / 'benchmarks.md'}")


if __name__ == "__main__":
    main()
