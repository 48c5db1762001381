"""The DNS parser's work bound, in executed lines of sniffer/dns_parse.py rather than seconds, so the
tests that check it mean the same on a busy machine as on an idle one."""
from __future__ import annotations

import sys
from collections.abc import Callable
from types import FrameType
from typing import Any, TypeVar

from sniffer import dns_parse
from sniffer.dns_parse import MAX_ANSWERS, MAX_NAME_WIRE_BYTES, MAX_POINTER_HOPS, DnsParseError

T = TypeVar("T")

# Names read: the question plus at most two per answer record (owner, CNAME target). Steps per name: at
# most MAX_POINTER_HOPS pointers plus the labels of <= 255 wire bytes (>= 2 bytes each) plus the root
# label. LINES_PER_STEP is a generous count of the lines one step of _read_name's loop executes;
# LINES_PER_RECORD the same for one answer record outside the name reads; LINES_FIXED covers the
# header, question and linking.
LINES_PER_STEP = 30
LINES_PER_RECORD = 60
LINES_FIXED = 2000
NAME_STEPS = MAX_POINTER_HOPS + MAX_NAME_WIRE_BYTES // 2 + 1


def line_budget(answers: int) -> int:
    """The most lines one parse of a message with `answers` answer records may execute."""
    return (1 + 2 * answers) * NAME_STEPS * LINES_PER_STEP + answers * LINES_PER_RECORD + LINES_FIXED


LINE_BUDGET = line_budget(MAX_ANSWERS)


def counting_lines(call: Callable[[], T]) -> tuple[T | DnsParseError, int]:
    """call() under a tracer counting the lines it executes in sniffer/dns_parse.py."""
    lines = 0
    target = dns_parse.__file__

    def tracer(frame: FrameType, event: str, _arg: Any) -> Any:
        nonlocal lines
        if frame.f_code.co_filename != target:
            return None  # do not trace into other modules
        if event == "line":
            lines += 1
        return tracer

    sys.settrace(tracer)
    try:
        result: T | DnsParseError = call()
    except DnsParseError as e:
        result = e
    finally:
        sys.settrace(None)
    return result, lines
