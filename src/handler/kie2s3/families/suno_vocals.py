"""Suno vocal separation callbacks: `data.task_id`; stems in `data.vocal_separation_info` or `vocal_removal_info`.

`POST /api/v1/vocal-removal/generate` has three modes (kie-callbacks.md rows 7, 8, 8a): `separate_vocal`
(`vocal_url`, `instrumental_url`), `split_stem` (up to twelve named stems) and `split_stem_advanced`
(`origin_data[].extract` / `.remove`, file names with spaces). docs.kie.ai's English pages call the
container `vocal_separation_info`, its Chinese pages and mirrors `vocal_removal_info`: both are read.
"""

from typing import ClassVar

from kie2s3.families._common import Callback, Family, Fields, Sources, SunoFileRecordInfo, Url, data_of, each
from kie2s3.families.base import JsonObject
from kie2s3.models import Outcome

CONTAINER_KEYS = ("vocal_separation_info", "vocal_removal_info")


class _Audio(Fields):
    audio_url: Url = None


class _OriginEntry(_Audio):
    """An `origin_data[]` entry: one upstream stem (`audio_url`), or an advanced pair (`extract`, `remove`)."""

    extract: _Audio | None = None
    remove: _Audio | None = None

    def sources(self) -> Sources:
        parts = (self, self.extract, self.remove)
        return [(part.audio_url, "audio") for part in parts if part is not None]


class _Separation(Fields):
    """The callback's separation info and record-info's `response` alike (snake_case or camelCase).

    `origin_url` (`originUrl`) is the song that was separated, an input: it has no field here, so it
    is never a file. `origin_data` (`originData`) holds upstream copies of the stems that the named
    fields already give (same ids; record-info's example), so it is read only when no stem is named:
    the `split_stem_advanced` case, whose only results are its extract/remove pairs.
    """

    # kie's record-info order (get-vocal-separation-details); `piano` appears only there.
    STEMS: ClassVar[tuple[str, ...]] = (
        "vocal_url",
        "instrumental_url",
        "backing_vocals_url",
        "drums_url",
        "bass_url",
        "guitar_url",
        "piano_url",
        "keyboard_url",
        "percussion_url",
        "strings_url",
        "synth_url",
        "fx_url",
        "brass_url",
        "woodwinds_url",
    )

    vocal_url: Url = None
    instrumental_url: Url = None
    backing_vocals_url: Url = None
    drums_url: Url = None
    bass_url: Url = None
    guitar_url: Url = None
    piano_url: Url = None
    keyboard_url: Url = None
    percussion_url: Url = None
    strings_url: Url = None
    synth_url: Url = None
    fx_url: Url = None
    brass_url: Url = None
    woodwinds_url: Url = None
    origin_data: list[_OriginEntry] | None = None

    def sources(self) -> Sources:
        named: list[str | None] = [getattr(self, stem) for stem in self.STEMS]
        if any(named):
            return each(named, "audio")
        return [source for entry in self.origin_data or () for source in entry.sources()]


class _SeparationData(Fields):
    vocal_separation_info: _Separation | None = None
    vocal_removal_info: _Separation | None = None

    def infos(self) -> list[_Separation]:
        return [info for info in (self.vocal_separation_info, self.vocal_removal_info) if info]

    def sources(self) -> Sources:
        return [source for info in self.infos() for source in info.sources()]


class SeparationCallback(Callback[_SeparationData]):
    """Any code but 200 fails; so does a 200 whose separation info is null (there is no result)."""

    def state(self) -> tuple[Outcome, str | None]:
        outcome, reason = super().state()
        if outcome is Outcome.SUCCESS and not (self.data and self.data.infos()):
            return Outcome.FAILED, "vocal separation result is null"
        return outcome, reason


class SunoVocalSeparationParser(Family):
    """Suno's vocal/stem separation of a track: two stems, up to twelve, or extract/remove pairs."""

    name = "suno_vocal_separation"
    record_info_path = "/api/v1/vocal-removal/record-info"
    callback_model = SeparationCallback
    # `successFlag` SUCCESS, PENDING, CREATE_TASK_FAILED, GENERATE_AUDIO_FAILED, CALLBACK_EXCEPTION.
    record_model = SunoFileRecordInfo[_Separation]

    def matches(self, body: JsonObject) -> bool:
        data = data_of(body)
        return "task_id" in data and any(key in data for key in CONTAINER_KEYS)
