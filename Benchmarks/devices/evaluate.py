#!/usr/bin/env python3
"""Precision and recall of device links in a Tessera SQLite store against the generator's truth.

Usage: evaluate.py STORE DIR
  STORE  a SQLite store written by `tessera run DIR/sweep.yaml` (links recorded from probability 0.5)
  DIR    where DeviceAccuracyTests wrote events.ndjson, anons.tsv and events.tsv (TESSERA_DEVICE_DIR)

Scores links exactly as DeviceAccuracyTests.evaluate does: a link is an anonymous id's first event proposed for a
profile; it is correct when the candidate profile is the event's person; recall counts anonymous ids correctly
linked over those a device link can find (`linkable`, read from the test's output line in DIR/linkable when
present). Also breaks the false links at the shipped threshold down by where the event was and what its browser is.
"""
import collections
import sqlite3
import sys

store, d = sys.argv[1], sys.argv[2]
SHIPPED = 0.996  # DeviceAccuracyTests.shipped
person, household, kind = {}, {}, {}
for line in open(f"{d}/anons.tsv"):
    a, p, h, k = line.split()
    person[a] = int(p)
    household[int(p)] = int(h)
    kind[a] = int(k)
place, user = {}, {}
for line in open(f"{d}/events.tsv"):
    e, pl, u = line.split()
    place[e] = int(pl)
    user[e] = int(u)
try:
    linkable = int(open(f"{d}/linkable").read())
except OSError:
    linkable = None

db = sqlite3.connect(store)
merged = dict(db.execute("SELECT id, merged_into FROM profiles WHERE merged_into IS NOT NULL"))


def canonical(p):
    while p in merged:
        p = merged[p]
    return p


members = collections.defaultdict(list)
for kind_, value, p in db.execute("SELECT kind, value, profile_id FROM identifiers"):
    members[canonical(p)].append((kind_, value))


def person_of(p):
    for k, v in members.get(canonical(p), []):
        if k == "anonymous_id" and v in person:
            return person[v]
    return -1


anon_of_event = {}
scored = []
false_kinds = collections.Counter()
event_anon = {}
for line in open(f"{d}/events.ndjson"):
    # "messageId":"d-N","type":"page","anonymousId":"a-M"
    i = line.index('"messageId":"') + 13
    e = line[i:line.index('"', i)]
    j = line.index('"anonymousId":"') + 15
    event_anon[e] = line[j:line.index('"', j)]
for event, candidate, prob in db.execute("SELECT event_id, candidate_id, probability FROM match_links"):
    a = event_anon[event]
    cp = person_of(candidate)
    ok = cp == person[a]
    scored.append((prob, ok, a))
    if not ok and prob >= SHIPPED and cp >= 0:
        where = ["home", "office", "carrier", "hotel"][place[event]]
        what = ["laptop", "family-pc", "phone"][kind[a]]
        same = ", same household" if household[cp] == household[person[a]] else ""
        false_kinds[f"{what} at {where}{same}"] += 1
for t in [0.5, 0.8, 0.9, 0.95, 0.99, 0.992, 0.994, 0.996, 0.998]:
    kept = [s for s in scored if s[0] >= t]
    correct = [s for s in kept if s[1]]
    precision = len(correct) / len(kept) if kept else 1.0
    recall = len({s[2] for s in correct}) / linkable if linkable else float("nan")
    print(f"  threshold {t:.3f}: {len(kept)} links, {len(correct)} correct, precision {precision:.4f}, recall {recall:.4f}")
for k, v in false_kinds.most_common():
    print(f"  false at {SHIPPED}: {k} {v}")
