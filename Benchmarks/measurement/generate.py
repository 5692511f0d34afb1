#!/usr/bin/env python3
"""Writes the measurement benchmark's event log: N events of P people (issue 19), NDJSON, seeded.

Each person has one or two devices (anonymous ids); identifies tie each device to the person's user id, so
only identity resolution sees one person. Visits carry UTM campaigns or referrers (or nothing: direct);
product views, cart adds and orders make the funnel; orders carry revenue.

usage: generate.py OUT.ndjson [--events 1000000] [--people 200000] [--seed 7]
"""
import argparse
import json
import random

CHANNELS = [
    ("email", "newsletter", ["spring_sale", "summer_sale", "welcome"]),
    ("social", "instagram", ["launch", "ugc"]),
    ("cpc", "google", ["brand", "generic"]),
]
REFERRERS = ["https://www.google.com/", "https://duckduckgo.com/", "https://www.reddit.com/r/outdoors"]
START = 1_780_000_000  # 2026-05-28, seconds


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--events", type=int, default=1_000_000)
    ap.add_argument("--people", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=7)
    a = ap.parse_args()
    rnd = random.Random(a.seed)
    per = a.events / a.people
    written = 0
    n = 0
    with open(a.out, "w") as f:
        def emit(m):
            nonlocal written, n
            if written >= a.events:
                return
            n += 1
            m["messageId"] = "m%d" % n
            f.write(json.dumps(m, separators=(",", ":")) + "\n")
            written += 1

        for p in range(a.people):
            budget = max(1, round(per + rnd.uniform(-1.5, 1.5))) if p < a.people - 1 else a.events - written
            user = "u%d" % p
            devices = ["d%d-%d" % (p, k) for k in range(rnd.choice([1, 1, 2]))]
            t = START + rnd.randrange(0, 60 * 86_400)
            events = []
            for d in devices:
                events.append(("identify", d))
            while len(events) < budget:
                events.append((rnd.choices(["page", "view", "add", "order"], [5, 3, 2, 1])[0], rnd.choice(devices)))
            rnd.shuffle(events)
            for kind, d in events:
                t += rnd.randrange(60, 3 * 86_400)
                ts = "%sZ" % __import__("datetime").datetime.utcfromtimestamp(t).isoformat()
                m = {"anonymousId": d, "timestamp": ts}
                if kind == "identify":
                    m.update(type="identify", userId=user)
                elif kind == "page":
                    m["type"] = "page"
                    r = rnd.random()
                    ctx = {"page": {"path": "/", "referrer": ""}}
                    if r < 0.45:
                        medium, source, names = rnd.choice(CHANNELS)
                        ctx["campaign"] = {"medium": medium, "source": source, "name": rnd.choice(names)}
                    elif r < 0.75:
                        ctx["page"]["referrer"] = rnd.choice(REFERRERS)
                    m["context"] = ctx
                else:
                    name = {"view": "Product Viewed", "add": "Product Added", "order": "Order Completed"}[kind]
                    m.update(type="track", event=name, properties={"sku": "sku-%d" % rnd.randrange(50)})
                    if kind == "order":
                        m["properties"]["revenue"] = round(rnd.uniform(10, 300), 2)
                emit(m)
    print("wrote %d events of %d people to %s" % (written, a.people, a.out))


if __name__ == "__main__":
    main()
