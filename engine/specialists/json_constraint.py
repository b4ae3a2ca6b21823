"""JSON-schema-constrained greedy decoding for transformers models (llama.cpp has its own grammar sampler).

Two parts:
- ``JsonPrefix``: an incremental, immutable parser state over characters. ``feed(text)`` returns the state after
  ``text`` or None when no JSON document valid for the schema starts with what has been fed. Every state it
  accepts can still be completed (enums and keys are matched as literals, strings can close, numbers can end),
  so greedy decoding never paints itself into a corner.
- ``constrained_generate``: at each step take the model's candidates best-first (top-k, then the whole vocabulary
  if none fits) and keep the first token whose text keeps the prefix valid; stop when the document is closed.

Supported schema subset (what the benchmark's answers use): ``type`` object/array/string/number/integer/boolean/
null (or a list of them), ``properties``, ``required``, ``additionalProperties``, ``items``, ``minItems``,
``maxItems``, ``enum``, ``const``, ``anyOf``/``oneOf`` (chosen by the first character), ``minLength``/
``maxLength``. Declared keys must come in llama.cpp's order (required keys in schema order, then optional
ones). ``minimum``/``maximum`` are enforced on numbers: a number with a bound takes no exponent, a digit is accepted
only while some completion of the text can still land inside the bounds, and the number may end only inside them
(so a bound never leaves the decoder without a way on). ``pattern`` is not enforced; the caller validates values.
Whitespace between tokens is capped so a model cannot loop on blank space.
"""
from __future__ import annotations

import json
import math
from typing import Any

WS = " \t\n\r"
MAX_WS = 4  # consecutive whitespace characters allowed between JSON tokens
MAX_STRING = 200  # default cap on a string's length when the schema gives no maxLength
MAX_NUMBER = 24  # characters in one number
_DIGITS = "0123456789"
_HEX = "0123456789abcdefABCDEF"
_ESCAPES = {'"': '"', "\\": "\\", "/": "/", "b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}

# Frames are tuples (kind, ...) so a state is a tuple of tuples: copying is free, states can be shared.
#   ("root", schema, phase)                 phase: start | done
#   ("value", schema)                       waiting for the first character of a value
#   ("lit", options, matched)               one of a fixed set of texts (enum, const, true/false/null, keys)
#   ("str", min_len, max_len, buf, esc)     esc: 0 plain, 1 after a backslash, 2..5 inside \\uXXXX
#   ("num", integer, dfa_state, n, text, lo, hi)   lo/hi: bounds or None
#   ("obj", schema, used, phase, key)       phase: first | comma | inkey | colon | invalue | after
#   ("arr", schema, n, phase)               phase: first | comma | invalue | after


def _types(schema: dict) -> tuple[str, ...]:
    t = schema.get("type")
    if t is None:
        return ()
    return tuple(t) if isinstance(t, list) else (t,)


def _first_chars(schema: dict) -> str:
    """Characters a value of this schema can start with."""
    if "const" in schema:
        return json.dumps(schema["const"])[0]
    if "enum" in schema:
        return "".join({json.dumps(v)[0] for v in schema["enum"]})
    if "anyOf" in schema or "oneOf" in schema:
        return "".join(_first_chars(s) for s in schema.get("anyOf", schema.get("oneOf", [])))
    starts = {"object": "{", "array": "[", "string": '"', "number": "-" + _DIGITS, "integer": "-" + _DIGITS,
              "boolean": "tf", "null": "n"}
    types = _types(schema) or tuple(starts)
    return "".join(starts.get(t, "") for t in types)


def _start_value(schema: dict, ch: str):
    """The frame that parses a value of ``schema`` starting with ``ch`` (ch not consumed), or None."""
    if "const" in schema:
        return ("lit", (json.dumps(schema["const"]),), "")
    if "enum" in schema:
        return ("lit", tuple(json.dumps(v) for v in schema["enum"]), "")
    subs = schema.get("anyOf") or schema.get("oneOf")
    if subs:
        for sub in subs:
            if ch in _first_chars(sub):
                return _start_value(sub, ch)
        return None
    types = _types(schema)
    if ch == "{" and (not types or "object" in types):
        return ("obj", schema if types else {}, (), "open", None)
    if ch == "[" and (not types or "array" in types):
        return ("arr", schema if types else {}, 0, "open")
    if ch == '"' and (not types or "string" in types):
        return ("str", int(schema.get("minLength", 0)), int(schema.get("maxLength", MAX_STRING)), "", -1)
    if ch in "-" + _DIGITS and (not types or "number" in types or "integer" in types):
        integer = bool(types) and "integer" in types and "number" not in types
        lo, hi = schema.get("minimum"), schema.get("maximum")
        return ("num", integer, "start", 0, "", None if lo is None else float(lo), None if hi is None else float(hi))
    if ch in "tf" and (not types or "boolean" in types):
        return ("lit", ("true", "false"), "")
    if ch == "n" and (not types or "null" in types):
        return ("lit", ("null",), "")
    return None


def _obj_keys(schema: dict, used: tuple) -> tuple[list[str], bool]:
    """(declared keys that may come next, whether undeclared keys are allowed).

    Declared keys come in llama.cpp's order (its grammar from a JSON schema): the required ones in schema order,
    then the optional ones; an optional key may be left out, a required one may not. So both runtimes accept the
    same texts and their greedy answers can agree."""
    props = schema.get("properties") or {}
    extra = schema.get("additionalProperties", not props)
    required = set(schema.get("required", []))
    ordered = [k for k in props if k in required] + [k for k in props if k not in required]
    declared = [k for k in used if k in props]
    start = ordered.index(declared[-1]) + 1 if declared else 0
    nxt = []
    for k in ordered[start:]:
        nxt.append(k)
        if k in required:
            break
    return nxt, bool(extra)


def _obj_value_schema(schema: dict, key: str) -> dict:
    props = schema.get("properties") or {}
    if key in props:
        return props[key]
    extra = schema.get("additionalProperties", {})
    return extra if isinstance(extra, dict) else {}


_NUM_NEXT = {  # (state, char class) -> state; classes: '-', '0', '1' (1-9), '.', 'e', '+'
    ("start", "-"): "minus", ("start", "0"): "zero", ("start", "1"): "int",
    ("minus", "0"): "zero", ("minus", "1"): "int",
    ("int", "0"): "int", ("int", "1"): "int",
    ("zero", "."): "dot", ("int", "."): "dot", ("dot", "0"): "frac", ("dot", "1"): "frac",
    ("frac", "0"): "frac", ("frac", "1"): "frac",
    ("zero", "e"): "e", ("int", "e"): "e", ("frac", "e"): "e",
    ("e", "+"): "esign", ("e", "-"): "esign", ("e", "0"): "exp", ("e", "1"): "exp",
    ("esign", "0"): "exp", ("esign", "1"): "exp", ("exp", "0"): "exp", ("exp", "1"): "exp",
}
_NUM_ACCEPT = {"zero", "int", "frac", "exp"}


def _num_class(ch: str) -> str:
    if ch == "0":
        return "0"
    if ch in "123456789":
        return "1"
    if ch in "eE":
        return "e"
    return ch


def _num_in_bounds(text: str, lo: float | None, hi: float | None) -> bool:
    if lo is None and hi is None:
        return True
    v = float(text)
    return (lo is None or v >= lo) and (hi is None or v <= hi)


def _num_reachable(text: str, lo: float | None, hi: float | None, room: int) -> bool:
    """Whether some number that starts with ``text`` (no exponent, at most ``room`` more characters) lies in
    [lo, hi]. The completions of a prefix form intervals of magnitude: "0.3" -> [0.3, 0.4], "12" -> [12, 13],
    [120, 130], [1200, 1300], ... (digits may still be appended to the integer part), "-" or "" -> everything."""
    lo_ = -math.inf if lo is None else lo
    hi_ = math.inf if hi is None else hi
    neg = text.startswith("-")
    body = text[1:] if neg else text
    if not body:
        spans = [(0.0, math.inf)]
    elif "." in body:
        ip, fp = body.split(".", 1)
        v = float(f"{ip}.{fp or '0'}")
        spans = [(v, v + 10.0 ** -len(fp))]
    elif body == "0":
        spans = [(0.0, 1.0)]
    else:
        v = int(body)
        spans = [(float(v * 10 ** j), float((v + 1) * 10 ** j)) for j in range(room + 1) if v * 10 ** j <= max(
            abs(lo_), abs(hi_), 1.0) * 10 or j == 0]
    for a, b in spans:  # magnitudes in [a, b): values in [a, b), or in (-b, -a] after a minus sign
        if (not neg and a <= hi_ and b > lo_) or (neg and -a >= lo_ and -b < hi_):
            return True
    return False


def _step(frame: tuple, ch: str):
    """One character for the top frame. Returns:
    ("ws",) consumed whitespace · ("set", f) consumed, replace top · ("push", f, child, consumed) replace top and
    push a child (char consumed or not) · ("done", value, consumed) top is complete · None invalid."""
    kind = frame[0]
    if kind == "root":
        _, schema, phase = frame
        if phase == "start":
            if ch in WS:
                return ("ws",)
            child = _start_value(schema, ch)
            return None if child is None else ("push", ("root", schema, "invalue"), child, False)
        if phase == "done":
            return ("ws",) if ch in WS else None
        return None
    if kind == "value":
        if ch in WS:
            return ("ws",)
        child = _start_value(frame[1], ch)
        return None if child is None else ("set", child, False)
    if kind == "lit":
        _, options, matched = frame
        m2 = matched + ch
        longer = [o for o in options if o.startswith(m2)]
        if longer:
            if m2 in options and len(longer) == 1:
                return ("done", m2, True)
            return ("set", ("lit", options, m2), True)
        if matched in options:
            return ("done", matched, False)
        return None
    if kind == "str":
        _, lo, hi, buf, esc = frame
        if esc == -1:  # the opening quote
            return ("set", ("str", lo, hi, buf, 0), True) if ch == '"' else None
        if esc == 0:
            if ch == '"':
                return ("done", ("s", buf), True) if len(buf) >= lo else None
            if len(buf) >= hi or ord(ch) < 0x20:
                return None
            if ch == "\\":
                return ("set", ("str", lo, hi, buf, 1), True)
            return ("set", ("str", lo, hi, buf + ch, 0), True)
        if esc == 1:
            if ch in _ESCAPES:
                return ("set", ("str", lo, hi, buf + _ESCAPES[ch], 0), True)
            return ("set", ("str", lo, hi, buf, 2), True) if ch == "u" else None
        if ch not in _HEX:
            return None
        return ("set", ("str", lo, hi, buf + ("?" if esc == 5 else ""), 0 if esc == 5 else esc + 1), True)
    if kind == "num":
        _, integer, state, n, text, lo, hi = frame
        bounded = lo is not None or hi is not None
        cls = _num_class(ch)
        nxt = _NUM_NEXT.get((state, cls))
        if nxt in ("dot", "e") and integer or nxt == "e" and bounded:
            nxt = None
        ok = nxt is not None and n < MAX_NUMBER
        if ok and (not bounded or _num_reachable(text + ch, lo, hi, MAX_NUMBER - n - 1)):
            return ("set", ("num", integer, nxt, n + 1, text + ch, lo, hi), True)
        if state in _NUM_ACCEPT and _num_in_bounds(text, lo, hi):
            return ("done", None, False)
        return None
    if kind == "obj":
        _, schema, used, phase, key = frame
        if phase == "open":
            return ("set", ("obj", schema, used, "first", key), True) if ch == "{" else None
        if phase in ("first", "comma", "colon", "after") and ch in WS:
            return ("ws",)
        if phase in ("first", "comma"):
            if ch == "}" and phase == "first":
                required = schema.get("required", [])
                return ("done", None, True) if not required else None
            if ch != '"':
                return None
            keys, extra = _obj_keys(schema, used)
            if extra:
                child = ("str", 0, MAX_STRING, "", -1)
            elif keys:
                child = ("lit", tuple(json.dumps(k) for k in keys), "")
            else:
                return None
            return ("push", ("obj", schema, used, "inkey", None), child, False)
        if phase == "colon":
            if ch != ":":
                return None
            return ("push", ("obj", schema, used, "invalue", key), ("value", _obj_value_schema(schema, key)), True)
        if phase == "after":
            if ch == ",":
                keys, extra = _obj_keys(schema, used)
                return ("set", ("obj", schema, used, "comma", None), True) if keys or extra else None
            if ch == "}":
                missing = [k for k in schema.get("required", []) if k not in used]
                return ("done", None, True) if not missing else None
            return None
        return None
    if kind == "arr":
        _, schema, n, phase = frame
        lo, hi = int(schema.get("minItems", 0)), int(schema.get("maxItems", 10**9))
        if phase == "open":
            return ("set", ("arr", schema, n, "first"), True) if ch == "[" else None
        if ch in WS and phase in ("first", "comma", "after"):
            return ("ws",)
        if phase in ("first", "comma"):
            if phase == "first" and ch == "]":
                return ("done", None, True) if lo == 0 else None
            if n >= hi:
                return None
            child = _start_value(schema.get("items", {}), ch)
            return None if child is None else ("push", ("arr", schema, n, "invalue"), child, False)
        if phase == "after":
            if ch == ",":
                return ("set", ("arr", schema, n, "comma"), True) if n < hi else None
            if ch == "]":
                return ("done", None, True) if n >= lo else None
        return None
    raise ValueError(f"unknown frame {kind}")


def _child_done(parent: tuple, value: Any):
    """The parent frame after its child completed with ``value`` (a key's text for objects)."""
    kind = parent[0]
    if kind == "root":
        return ("root", parent[1], "done")
    if kind == "obj":
        _, schema, used, phase, _key = parent
        if phase == "inkey":
            key = value[1] if isinstance(value, tuple) else json.loads(value)  # a free key's text, or a literal
            if key in used:
                return None  # a repeated key is not valid for our purposes
            return ("obj", schema, used + (key,), "colon", key)
        if phase == "invalue":
            return ("obj", schema, used, "after", None)
        return None
    if kind == "arr":
        _, schema, n, _phase = parent
        return ("arr", schema, n + 1, "after")
    return None


class JsonPrefix:
    """Parser state after some text; immutable. ``JsonPrefix(schema).feed('{"a"')`` -> state or None."""

    __slots__ = ("stack", "ws")

    def __init__(self, schema: dict | None = None, _stack: tuple | None = None, _ws: int = 0):
        self.stack = _stack if _stack is not None else (("root", schema or {}, "start"),)
        self.ws = _ws

    def feed(self, text: str) -> JsonPrefix | None:
        stack, ws = self.stack, self.ws
        for ch in text:
            while True:  # a frame that ends before ch hands ch to its parent
                res = _step(stack[-1], ch)
                if res is None:
                    return None
                tag = res[0]
                if tag == "ws":
                    ws += 1
                    if ws > MAX_WS:
                        return None
                    break
                if tag == "set":
                    stack = stack[:-1] + (res[1],)
                    if res[2]:
                        ws = 0
                        break
                    continue
                if tag == "push":
                    stack = stack[:-1] + (res[1], res[2])
                    if res[3]:
                        ws = 0
                        break
                    continue
                # done: pop and tell the parent
                parent = _child_done(stack[-2], res[1])
                if parent is None:
                    return None
                stack = stack[:-2] + (parent,)
                if res[2]:
                    ws = 0
                    break
        return JsonPrefix(_stack=stack, _ws=ws)

    @property
    def closed(self) -> bool:
        """The document is complete and nothing but whitespace may follow (objects, arrays, strings)."""
        return len(self.stack) == 1 and self.stack[0][2] == "done"

    def can_end(self) -> bool:
        """The text so far is a complete document (a trailing number or literal may also end here)."""
        stack = self.stack
        while len(stack) > 1:
            top = stack[-1]
            complete = ((top[0] == "num" and top[2] in _NUM_ACCEPT and _num_in_bounds(top[4], top[5], top[6]))
                        or (top[0] == "lit" and top[2] in top[1]))
            if not complete:
                return False
            parent = _child_done(stack[-2], top[2] if top[0] == "lit" else None)
            if parent is None:
                return False
            stack = stack[:-2] + (parent,)
        return stack[0][2] == "done"


def schema_errors(value: Any, schema: dict, path: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (the subset above, plus minimum/maximum); [] when it conforms."""
    errs: list[str] = []
    if "const" in schema and value != schema["const"]:
        return [f"{path}: expected {schema['const']!r}"]
    if "enum" in schema and value not in schema["enum"]:
        return [f"{path}: {value!r} is not one of {schema['enum']}"]
    subs = schema.get("anyOf") or schema.get("oneOf")
    if subs:
        return [] if any(not schema_errors(value, s, path) for s in subs) else [f"{path}: matches no alternative"]
    types = _types(schema)
    checks = {"object": lambda v: isinstance(v, dict), "array": lambda v: isinstance(v, list),
              "string": lambda v: isinstance(v, str), "boolean": lambda v: isinstance(v, bool),
              "null": lambda v: v is None,
              "integer": lambda v: isinstance(v, int) and not isinstance(v, bool),
              "number": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool)}
    if types and not any(checks[t](value) for t in types if t in checks):
        return [f"{path}: expected {'/'.join(types)}, got {type(value).__name__}"]
    if isinstance(value, dict):
        props = schema.get("properties") or {}
        for k in schema.get("required", []):
            if k not in value:
                errs.append(f"{path}: missing {k!r}")
        extra = schema.get("additionalProperties", not props)
        for k, v in value.items():
            if k in props:
                errs += schema_errors(v, props[k], f"{path}.{k}")
            elif not extra:
                errs.append(f"{path}: unexpected key {k!r}")
            elif isinstance(extra, dict):
                errs += schema_errors(v, extra, f"{path}.{k}")
    elif isinstance(value, list):
        if len(value) < schema.get("minItems", 0) or len(value) > schema.get("maxItems", 10**9):
            errs.append(f"{path}: {len(value)} items")
        for i, v in enumerate(value):
            errs += schema_errors(v, schema.get("items", {}), f"{path}[{i}]")
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        if "minimum" in schema and value < schema["minimum"]:
            errs.append(f"{path}: {value} < minimum {schema['minimum']}")
        if "maximum" in schema and value > schema["maximum"]:
            errs.append(f"{path}: {value} > maximum {schema['maximum']}")
    return errs


# ------------------------------------------------------------------------------------------ token texts
def _byte_decoder() -> dict[str, int]:
    """GPT-2's byte <-> printable-unicode table, inverted (byte-level BPE token strings -> raw bytes)."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def token_texts(tokenizer) -> list[str | None]:
    """Each token id's exact text (None for special tokens and for pieces of a multi-byte character), cached
    per tokenizer. Byte-level BPE tokens are mapped byte by byte; other tokenizers decode each id alone."""
    cached = getattr(tokenizer, "_cda_token_texts", None)  # kept on the tokenizer: built once, freed with it
    if cached is not None:
        return cached
    n = len(tokenizer)
    special = set(getattr(tokenizer, "all_special_ids", []) or [])
    added = getattr(tokenizer, "added_tokens_decoder", {}) or {}
    special |= {i for i, t in added.items() if getattr(t, "special", False)}
    pieces = tokenizer.convert_ids_to_tokens(list(range(n)))
    decoder = getattr(getattr(tokenizer, "backend_tokenizer", None), "decoder", None)
    out: list[str | None] = []
    if decoder is not None and type(decoder).__name__ == "ByteLevel":
        table = _byte_decoder()
        for i, piece in enumerate(pieces):
            if i in special or piece is None:
                out.append(None)
                continue
            try:
                out.append(bytes(table[c] for c in piece).decode("utf-8"))
            except (KeyError, UnicodeDecodeError):
                out.append(None)
    else:
        for i, piece in enumerate(pieces):
            if i in special or piece is None:
                out.append(None)
                continue
            text = tokenizer.decode([i])
            if piece.startswith("▁"):  # SentencePiece word start: decode alone drops the space
                text = " " + text.lstrip()
            out.append(None if "\ufffd" in text else text)
    try:
        tokenizer._cda_token_texts = out
    except AttributeError:  # a tokenizer class that refuses new attributes: rebuilt per call (about a second)
        pass
    return out


def constrained_generate(model, tokenizer, input_ids, schema: dict | None, max_new_tokens: int = 128,
                         top_k: int = 64) -> str:
    """Greedy decoding where every token keeps the output a valid prefix of a JSON document for ``schema``.

    input_ids: (1, T) prompt. Returns the generated text (a complete document unless max_new_tokens ran out).
    """
    import inspect

    import torch

    texts = token_texts(tokenizer)
    # transformers 5.x calls the KV cache argument `cache` (older releases: `past_key_values`).
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model  # a PEFT wrapper forwards kwargs
    cache_arg = "cache" if "cache" in inspect.signature(inner.forward).parameters else "past_key_values"
    eos = {i for i in (tokenizer.eos_token_id, getattr(model.config, "eos_token_id", None)) if isinstance(i, int)}
    state = JsonPrefix(schema or {})
    out_text = ""
    past = None
    cur = input_ids
    with torch.inference_mode():
        for _ in range(max_new_tokens):
            res = model(input_ids=cur, use_cache=True, **{cache_arg: past})
            past = getattr(res, cache_arg, None)
            logits = res.logits[0, -1].float()  # (V,)
            chosen, new_state = None, None
            top = torch.topk(logits, min(top_k, logits.shape[0])).indices.tolist()
            for pool in (top, None):
                ids = pool if pool is not None else torch.argsort(logits, descending=True).tolist()
                for tid in ids:
                    if tid in eos:
                        if state.can_end():
                            chosen = tid
                            break
                        continue
                    text = texts[tid] if tid < len(texts) else None
                    if not text:
                        continue
                    nxt = state.feed(text)
                    if nxt is not None:
                        chosen, new_state = tid, nxt
                        break
                if chosen is not None:
                    break
            if chosen is None or chosen in eos:
                break
            state = new_state
            out_text += texts[chosen]
            if state.closed:
                break
            cur = torch.tensor([[chosen]], dtype=input_ids.dtype)
    return out_text
