"""CronJob schedules, read as the CronJob controller reads them (robfig/cron's standard
parser): five fields, or a descriptor. cronsim, a well-kept strict parser, checks the
fields; what robfig reads differently is settled here first (`?` is `*`; `L`, `W`, `#`
and a day-of-week of 7 are refused; a time zone belongs in `timeZone`, not the schedule).
A schedule that can never fire (31 February) is refused too: Kubernetes would accept it,
and the job would never run.
"""

from __future__ import annotations

import re
from datetime import datetime

from cronsim import CronSim, CronSimError

DESCRIPTORS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly")
_EVERY = re.compile(r"^@every (\d+(\.\d+)?(ns|us|µs|ms|s|m|h))+$")
FIELDS = ("minute", "hour", "day-of-month", "month", "day-of-week")


def check(schedule: str) -> str:
    """The schedule, or ValueError saying what the controller would make of it."""
    text = schedule.strip()
    if re.match(r"^(CRON_)?TZ=", text):
        raise ValueError("a time zone in the schedule is refused by Kubernetes; set the "
                         "CronJob's timeZone instead")
    if text.startswith("@"):
        if text in DESCRIPTORS or _EVERY.match(text):
            return schedule
        raise ValueError(f"unknown descriptor {text.split()[0]!r}; expected one of "
                         f"{', '.join(DESCRIPTORS)} or '@every <duration>'")
    fields = text.split()
    if len(fields) != len(FIELDS):
        raise ValueError(f"expected 5 fields ({' '.join(FIELDS)}), got {len(fields)}")
    dom, dow = fields[2].upper(), fields[4].upper()
    if re.search(r"[LW]", dom) or re.search(r"L|#", dow):
        raise ValueError("the CronJob controller does not understand L, W or #")
    if any(int(n) > 6 for n in re.findall(r"\d+", dow)):
        raise ValueError("day-of-week runs from 0 to 6 (Sunday is 0)")
    fields[2] = "*" if fields[2] == "?" else fields[2]
    fields[4] = "*" if fields[4] == "?" else fields[4]
    try:
        CronSim(" ".join(fields), datetime(2000, 1, 1))
    except CronSimError as exc:
        raise ValueError(f"{str(exc).lower()}: each field is a number, a range (a-b), a "
                         f"step (*/n) or a list of them") from None
    return schedule
