"""Prompt, JSON schema and a tolerant parser for the model's merge decision."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from dataclasses import dataclass, field

DECISIONS = ("merge", "no_merge", "uncertain")

SYSTEM_PROMPT = """You are an expert in extracellular spike sorting curation.
You judge whether two clusters (unit A in blue, unit B in orange) are the same neuron
split in two by the sorter and should be merged.

The image has these panels:
- ACG A, ACG B: autocorrelograms of each unit (counts vs lag in ms).
- CCG A-B: cross-correlogram; the shaded band is the refractory window.
- Amplitude vs time: each spike's amplitude, A blue, B orange.
- Optional: mean waveforms of both units on their best channels.

How to decide:
1. The CCG is the main evidence. If both units are one neuron, the CCG shows a
   refractory dip inside the shaded window like the ACGs do (few or no counts).
   A flat CCG with counts inside the window means two different neurons: no_merge.
   A sharp narrow peak exactly at 0 ms suggests duplicate detections: uncertain.
2. Amplitudes: same neuron -> amplitudes continue each other over time or overlap
   (drift is normal). Amplitude ranges that are clearly separated at the same
   time mean different neurons.
3. Waveforms, if shown, should have the same shape (amplitude scaling is allowed).
4. Too few spikes to see a dip, or conflicting evidence: uncertain.
Be conservative: a wrong merge is worse than a missed one.

Answer ONLY with a JSON object:
{"decision": "merge" | "no_merge" | "uncertain", "confidence": number between 0 and 1,
 "reasoning": "two or three short sentences citing the panels"}"""

PROMPT_VERSION = "vlm_merge-1-" + hashlib.sha256(SYSTEM_PROMPT.encode()).hexdigest()[:8]

RESPONSE_SCHEMA = {
    "type": "object",
    "properties": {
        "decision": {"type": "string", "enum": list(DECISIONS)},
        "confidence": {"type": "number"},
        "reasoning": {"type": "string"},
    },
    "required": ["decision", "confidence", "reasoning"],
    "additionalProperties": False,
}

RESPONSE_FORMAT = {
    "type": "json_schema",
    "json_schema": {"name": "merge_decision", "strict": True, "schema": RESPONSE_SCHEMA},
}


@dataclass
class Example:
    """A labelled few-shot example from the user's bank."""

    cluster_ids: tuple[int, int]
    label: str  # "merge" or "no_merge"
    png: bytes
    note: str = ""


def examples_fingerprint(examples: list[Example] | tuple) -> str:
    """Content hash of the few-shot examples as sent (ids, labels, notes, image bytes; no
    paths). ``""`` when there are none."""
    if not examples:
        return ""
    h = hashlib.sha256()
    for ex in examples:
        h.update(json.dumps([*map(int, ex.cluster_ids), ex.label, ex.note]).encode())
        h.update(hashlib.sha256(ex.png).digest())
    return h.hexdigest()[:16]


@dataclass
class Answer:
    """A parsed model answer."""

    decision: str
    confidence: float
    reasoning: str
    extra: dict = field(default_factory=dict)


class AnswerParseError(ValueError):
    """The model's answer could not be understood."""


def data_url(png: bytes) -> str:
    """PNG bytes as a base64 data URL."""
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def pair_text(a: int, b: int, similarity: float | None) -> str:
    """The user text that accompanies a pair image."""
    s = f"Unit A = cluster {a}, unit B = cluster {b}."
    if similarity is not None:
        s += f" Template similarity {similarity:.2f}."
    return s + " Should they be merged?"


def build_messages(
    a: int,
    b: int,
    png: bytes,
    *,
    similarity: float | None = None,
    examples: list[Example] | tuple = (),
    example_detail: str = "low",
    detail: str = "high",
) -> list[dict]:
    """Chat messages: system prompt, labelled examples (if any), then the pair to judge."""
    messages: list[dict] = [{"role": "system", "content": SYSTEM_PROMPT}]
    if examples:
        content: list[dict] = [{
            "type": "text",
            "text": "Labelled examples from this user's earlier curation of this dataset "
                    "(use them as calibration, then judge the new pair on its own evidence):",
        }]
        for ex in examples:
            label = "MERGE (accepted by the user)" if ex.label == "merge" else \
                "NO MERGE (rejected by the user)"
            text = f"Example: clusters {ex.cluster_ids[0]} and {ex.cluster_ids[1]} -> {label}."
            if ex.note:
                text += f" Note: {ex.note}"
            content.append({"type": "text", "text": text})
            content.append({"type": "image_url",
                            "image_url": {"url": data_url(ex.png), "detail": example_detail}})
        messages.append({"role": "user", "content": content})
    messages.append({"role": "user", "content": [
        {"type": "text", "text": pair_text(a, b, similarity)},
        {"type": "image_url", "image_url": {"url": data_url(png), "detail": detail}},
    ]})
    return messages


_DECISION_WORDS = {
    "merge": "merge", "merged": "merge", "yes": "merge", "same": "merge",
    "no_merge": "no_merge", "no merge": "no_merge", "not merge": "no_merge",
    "not_merge": "no_merge", "nomerge": "no_merge", "no-merge": "no_merge",
    "do not merge": "no_merge", "dont merge": "no_merge", "don't merge": "no_merge",
    "no": "no_merge", "different": "no_merge",
    "uncertain": "uncertain", "unsure": "uncertain", "unknown": "uncertain",
}


def _normalise_decision(value: object) -> str | None:
    if not isinstance(value, str):
        return None
    key = re.sub(r"\s+", " ", value.strip().lower().replace("_", " ")).strip(" .!\"'")
    return _DECISION_WORDS.get(key) or _DECISION_WORDS.get(key.replace(" ", "_"))


def _normalise_confidence(value: object) -> float | None:
    if isinstance(value, str):
        m = re.search(r"[-+]?\d*\.?\d+", value)
        if not m:
            return None
        pct = "%" in value
        value = float(m.group()) / (100 if pct else 1)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    v = float(value)
    if 1 < v <= 100:  # a percentage
        v /= 100
    return min(1.0, max(0.0, v)) if v == v else None


def _from_dict(d: dict) -> Answer | None:
    lower = {str(k).lower(): v for k, v in d.items()}
    decision = None
    for k in ("decision", "merge_type", "verdict", "answer"):
        decision = _normalise_decision(lower.get(k))
        if decision:
            break
    if decision is None:
        return None
    conf = _normalise_confidence(lower.get("confidence"))
    reasoning = lower.get("reasoning", lower.get("reason", lower.get("reasons", "")))
    if isinstance(reasoning, list):
        reasoning = " ".join(map(str, reasoning))
    extra = {k: v for k, v in d.items() if str(k).lower() not in
             ("decision", "confidence", "reasoning")}
    return Answer(decision, 0.5 if conf is None else conf, str(reasoning), extra)


def _json_candidates(text: str) -> list[str]:
    out = [text]
    out += re.findall(r"```(?:json)?\s*(.*?)```", text, flags=re.S)
    start = text.find("{")
    while start != -1:  # every balanced {...} block
        depth, in_str, esc = 0, False, False
        for i in range(start, len(text)):
            ch = text[i]
            if in_str:
                esc = ch == "\\" and not esc
                if ch == '"' and not esc:
                    in_str = False
                continue
            if ch == '"':
                in_str = True
            elif ch == "{":
                depth += 1
            elif ch == "}":
                depth -= 1
                if depth == 0:
                    out.append(text[start:i + 1])
                    break
        start = text.find("{", start + 1)
    return out


def parse_answer(text: str | None) -> Answer:
    """Parse the model's answer: strict JSON first, then JSON inside prose or code fences,
    then ``decision: ...`` / ``confidence: ...`` lines. Raises AnswerParseError."""
    if not text or not text.strip():
        raise AnswerParseError("empty answer from the model")
    for cand in _json_candidates(text.strip()):
        try:
            obj = json.loads(cand)
        except (ValueError, TypeError):
            try:  # single quotes / trailing commas are common
                obj = json.loads(re.sub(r",\s*([}\]])", r"\1", cand.replace("'", '"')))
            except (ValueError, TypeError):
                continue
        if isinstance(obj, dict):
            ans = _from_dict(obj)
            if ans:
                return ans
    m = re.search(r"decision\W{0,3}\s*([a-z_ '\-]+?)\s*(?:[\n,;.}\"]|$)", text, flags=re.I)
    decision = _normalise_decision(m.group(1)) if m else None
    if decision:
        c = re.search(r"confidence\W{0,3}\s*([0-9.]+\s*%?)", text, flags=re.I)
        conf = _normalise_confidence(c.group(1)) if c else None
        r = re.search(r"reasoning\W{0,3}\s*(.+)", text, flags=re.I | re.S)
        return Answer(decision, 0.5 if conf is None else conf,
                      (r.group(1) if r else text).strip()[:2000])
    raise AnswerParseError("could not parse a decision from the model's answer: "
                           + text.strip()[:200])
