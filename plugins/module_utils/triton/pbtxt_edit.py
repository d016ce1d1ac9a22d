# Copyright: rapids.triton_fil contributors
# Apache License 2.0 (see LICENSE)
"""Edit the ``parameters`` of a config.pbtxt in place, keeping its comments and layout.

A rewrite through protobuf's text_format would drop every comment and reflow the file, so the
migration edits the text: it finds each top-level ``parameters`` entry (list form
``parameters [ {...}, {...} ]`` or repeated ``parameters { ... }``), and renames the key string,
replaces the value string or cuts the entry out. The caller re-parses the result and compares it
with the message it meant to produce (model_config.migrate_text), so an edit this scanner gets
wrong is caught, not written.
"""

from __future__ import annotations

import json
import re

from ansible_collections.rapids.triton_fil.plugins.module_utils.errors import TritonFilError

_TOKEN = re.compile(r"""
    (?P<ws>\s+)
  | (?P<comment>\#[^\n]*)
  | (?P<string>"(?:[^"\\\n]|\\.)*"|'(?:[^'\\\n]|\\.)*')
  | (?P<word>[A-Za-z0-9_.+\-]+)
  | (?P<punct>[{}\[\]<>:,;])
""", re.X)


class PbtxtEditError(TritonFilError, ValueError):
    pass


def _tokens(text):
    pos, out = 0, []
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if not match:
            raise PbtxtEditError(f"cannot scan the configuration at offset {pos}")
        kind = match.lastgroup
        if kind not in ("ws", "comment"):
            out.append((kind, match.group(), match.start(), match.end()))
        pos = match.end()
    return out


def _unquote(token):
    body = token[1:-1]
    return bytes(body, "utf-8").decode("unicode_escape") if "\\" in body else body


def _match_close(tokens, i):
    """Index of the token closing the bracket at tokens[i]."""
    pairs = {"{": "}", "[": "]", "<": ">"}
    depth = 0
    for j in range(i, len(tokens)):
        value = tokens[j][1]
        if value in pairs:
            depth += 1
        elif value in pairs.values():
            depth -= 1
            if depth == 0:
                return j
    raise PbtxtEditError("unbalanced brackets")


def _entry(tokens, start, end):
    """{'key': (text, token index), 'value': (text, token index)} of one parameters entry tokens[start..end]."""
    found = {}
    j = start + 1
    while j < end:
        kind, value = tokens[j][0], tokens[j][1]
        if kind == "word" and value == "key":
            k = j + 1 if tokens[j + 1][1] != ":" else j + 2
            found["key"] = (_unquote(tokens[k][1]), k)
            j = k + 1
            continue
        if kind == "word" and value == "string_value":
            k = j + 1 if tokens[j + 1][1] != ":" else j + 2
            found["value"] = (_unquote(tokens[k][1]), k)
            j = k + 1
            continue
        j += 1
    return found


def _top_level(tokens, field, visit):
    """Call visit(i, j) for every top-level ``field`` word (tokens[i]; tokens[j] follows its optional ``:``).

    visit returns the index to go on from (past what it consumed), or None to go on after the word.
    """
    depth = 0
    i = 0
    while i < len(tokens):
        kind, value = tokens[i][0], tokens[i][1]
        if value in "{[<":
            depth += 1
        elif value in "}]>":
            depth -= 1
        elif depth == 0 and kind == "word" and value == field:
            j = i + 1
            if j < len(tokens) and tokens[j][1] == ":":
                j += 1
            resume = visit(i, j)
            if resume is not None:
                i = resume
                continue
        i += 1


def _message_end(tokens, j):
    """(index of the bracket closing the message opened at tokens[j], text offset its cut ends at: past a , or ;)."""
    end = _match_close(tokens, j)
    cut_end = tokens[end][3]
    if end + 1 < len(tokens) and tokens[end + 1][1] in ",;":
        cut_end = tokens[end + 1][3]
    return end, cut_end


def _list_entries(tokens, j):
    """The entries of a ``parameters: [ {..}, {..} ]`` list opened at tokens[j]; each cut takes one comma along."""
    close = _match_close(tokens, j)
    entries = []
    k = j + 1
    while k < close:
        if tokens[k][1] in "{<":
            end = _match_close(tokens, k)
            cut_end = tokens[end][3]
            cut_start = tokens[k][2]
            if tokens[end + 1][1] == ",":
                cut_end = tokens[end + 1][3]
            elif tokens[k - 1][1] == ",":
                cut_start = tokens[k - 1][2]
            entries.append(dict(_entry(tokens, k, end), span=(cut_start, cut_end), form="list"))
            k = end + 1
        else:
            k += 1
    return entries, close


def find_parameters(text):
    """[{key, value, key_token, value_token, span: (start, end) to cut, form}] for every top-level parameters entry."""
    tokens = _tokens(text)
    entries = []

    def visit(i, j):
        if j >= len(tokens):
            return None
        if tokens[j][1] == "[":
            found, close = _list_entries(tokens, j)
            entries.extend(found)
            return close + 1
        if tokens[j][1] in "{<":
            end, cut_end = _message_end(tokens, j)
            entries.append(dict(_entry(tokens, j, end), span=(tokens[i][2], cut_end), form="field"))
            return end + 1
        return None

    _top_level(tokens, "parameters", visit)
    for entry in entries:
        entry["tokens"] = tokens
    return entries


def _widen_to_lines(text, start, end):
    """Grow a cut to whole lines when nothing else is left on them."""
    line_start = text.rfind("\n", 0, start) + 1
    line_end = text.find("\n", end)
    line_end = len(text) if line_end == -1 else line_end
    if text[line_start:start].strip() == "" and text[end:line_end].strip() == "":
        return line_start, min(line_end + 1, len(text))
    return start, end


def apply(text, edits):
    """Apply edits [{'key', 'op': 'rename'|'delete'|'set', 'new_key'?, 'new_value'?}] to the parameters in text."""
    entries = {e["key"][0]: e for e in find_parameters(text) if "key" in e}
    replacements = []
    for edit in edits:
        entry = entries.get(edit["key"])
        if entry is None:
            raise PbtxtEditError(f"parameter {edit['key']!r} not found in the text")
        tokens = entry["tokens"]
        if edit["op"] == "delete":
            start, end = _widen_to_lines(text, *entry["span"])
            replacements.append((start, end, ""))
            continue
        if edit.get("new_key"):
            tok = tokens[entry["key"][1]]
            replacements.append((tok[2], tok[3], json.dumps(edit["new_key"])))
        if edit.get("new_value") is not None:
            if "value" not in entry:
                raise PbtxtEditError(f"parameter {edit['key']!r} has no string_value")
            tok = tokens[entry["value"][1]]
            replacements.append((tok[2], tok[3], json.dumps(edit["new_value"])))
    out = text
    for start, end, new in sorted(replacements, reverse=True):
        out = out[:start] + new + out[end:]
    return out


def remove_field(text, field):
    """text without its top-level message field(s) named field (``field { }``, ``field: { }``, ``field < >``).

    The rollout pins ``version_policy`` this way: the configuration's own policy is cut out (comments and
    layout elsewhere stay) and the pinned one appended; the caller re-parses and compares the result.
    """
    tokens = _tokens(text)
    cuts = []

    def visit(i, j):
        if j >= len(tokens) or tokens[j][1] not in "{<":
            raise PbtxtEditError(f"{field} is not a message field here")
        end, cut_end = _message_end(tokens, j)
        cuts.append(_widen_to_lines(text, tokens[i][2], cut_end))
        return end + 1

    _top_level(tokens, field, visit)
    out = text
    for start, end in sorted(cuts, reverse=True):
        out = out[:start] + out[end:]
    return out
