"""The kie.ai emulator's fault injection: what can go wrong, and when it is taken."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Final, Literal, get_args

FaultKind = Literal["http_status", "truncate", "stall", "reset", "wrong_content_type", "new_version"]
FAULT_KINDS: Final = frozenset(get_args(FaultKind))


@dataclass(frozen=True, slots=True)
class FileFault:
    """A fault applied to one GET of a download link (byte offsets are relative to the response body)."""

    kind: FaultKind
    status: int = 0
    at_byte: int = 0
    seconds: float = 0.0
    content_type: str = ""

    @classmethod
    def http_status(cls, status: int) -> FileFault:
        """Answer ``status`` with a short error body instead of the file."""
        return cls("http_status", status=status)

    @classmethod
    def truncate(cls, at_byte: int) -> FileFault:
        """Send the full Content-Length header, then close the connection after ``at_byte`` body bytes."""
        return cls("truncate", at_byte=at_byte)

    @classmethod
    def stall(cls, after_byte: int, seconds: float) -> FileFault:
        """Stop sending for ``seconds`` after ``after_byte`` body bytes, then carry on."""
        return cls("stall", at_byte=after_byte, seconds=seconds)

    @classmethod
    def reset(cls) -> FileFault:
        """Close the socket (TCP RST) without any response."""
        return cls("reset")

    @classmethod
    def wrong_content_type(cls, content_type: str) -> FileFault:
        """Serve the file with this Content-Type header."""
        return cls("wrong_content_type", content_type=content_type)

    @classmethod
    def new_version(cls) -> FileFault:
        """Answer this GET from the file as it is, then overwrite the file with a new version (other
        bytes of the same size and type, another ETag, a later Last-Modified), as when the origin's
        file is replaced between two requests of one download."""
        return cls("new_version")


@dataclass(slots=True)
class _EnvelopeFault:
    code: int
    remaining: int
    key: str | None


@dataclass(slots=True)
class _SlowAnswer:
    seconds: float
    remaining: int
    key: str | None


@dataclass(slots=True)
class _PendingFileFault:
    fault: FileFault
    remaining: int


class FaultInjection:
    """The emulator's injectable faults: envelope codes and delays on kie.ai's API, faults on file
    links; each applies to the next `times` matching calls, taken under the emulator's lock."""

    _lock: threading.Lock
    _download_url_faults: list[_EnvelopeFault]
    _record_info_faults: list[_EnvelopeFault]
    _record_info_delays: list[_SlowAnswer]
    _file_faults: dict[str, list[_PendingFileFault]]

    # -- faults -----------------------------------------------------------------------------------

    def inject_download_url(self, code: int, times: int = 1, url: str | None = None) -> None:
        """Answer the next ``times`` download-url calls (for ``url``, or any) with envelope ``code``."""
        with self._lock:
            self._download_url_faults.append(_EnvelopeFault(code, times, url))

    def inject_record_info(self, code: int, times: int = 1, task_id: str | None = None) -> None:
        """Answer the next ``times`` record-info calls (for ``task_id``, or any) with envelope ``code``."""
        with self._lock:
            self._record_info_faults.append(_EnvelopeFault(code, times, task_id))

    def delay_record_info(self, seconds: float, times: int = 1, task_id: str | None = None) -> None:
        """Answer the next ``times`` record-info calls (for ``task_id``, or any) ``seconds`` late,
        the headers included, as a slow kie.ai does (an injected envelope code still applies after)."""
        with self._lock:
            self._record_info_delays.append(_SlowAnswer(seconds, times, task_id))

    def inject_file_fault(self, name: str, fault: FileFault, times: int = 1) -> None:
        """Apply ``fault`` to the next ``times`` GETs of the download link of file ``name``."""
        with self._lock:
            self._file_faults.setdefault(name, []).append(_PendingFileFault(fault, times))

    def clear_faults(self) -> None:
        """Drop every pending injected fault."""
        with self._lock:
            self._download_url_faults.clear()
            self._record_info_faults.clear()
            self._record_info_delays.clear()
            self._file_faults.clear()

    # -- taken by the handler ---------------------------------------------------------------------

    def _take_envelope_fault(self, faults: list[_EnvelopeFault], key: str | None) -> int | None:
        with self._lock:
            for fault in faults:
                if fault.key is None or fault.key == key:
                    fault.remaining -= 1
                    if fault.remaining <= 0:
                        faults.remove(fault)
                    return fault.code
        return None

    def _take_slow_answer(self, key: str) -> float:
        with self._lock:
            for delay in self._record_info_delays:
                if delay.key is None or delay.key == key:
                    delay.remaining -= 1
                    if delay.remaining <= 0:
                        self._record_info_delays.remove(delay)
                    return delay.seconds
        return 0.0

    def _take_file_fault(self, name: str) -> FileFault | None:
        with self._lock:
            pending = self._file_faults.get(name)
            if not pending:
                return None
            first = pending[0]
            first.remaining -= 1
            if first.remaining <= 0:
                pending.pop(0)
            return first.fault
