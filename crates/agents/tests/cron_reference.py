"""Reference next-fire times from croniter, for the schedule agent's comparison test.

Reads a JSON list of {"cron", "timezone", "start", "count"} on stdin ("start" is RFC 3339
UTC) and prints, for each, a list of the next `count` fire times (RFC 3339 UTC), or
{"error": "..."}. croniter is asked for Vixie cron semantics: day-of-month OR day-of-week,
AND when either field starts with `*` (`implement_cron_bug`), and seconds first in 6 fields.
"""
import json
import sys
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from croniter import croniter


def ticks(case):
    tz = ZoneInfo(case["timezone"])
    start = datetime.fromisoformat(case["start"].replace("Z", "+00:00")).astimezone(tz)
    it = croniter(
        case["cron"],
        start,
        implement_cron_bug=True,
        second_at_beginning=True,
    )
    out = []
    for _ in range(case["count"]):
        t = it.get_next(datetime)
        out.append(t.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"))
    return out


def main():
    result = []
    for case in json.load(sys.stdin):
        try:
            result.append(ticks(case))
        except Exception as e:  # reported per case, compared by the Rust test
            result.append({"error": f"{type(e).__name__}: {e}"})
    json.dump(result, sys.stdout)


main()
