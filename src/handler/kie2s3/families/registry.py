"""The registry of family parsers, most specific shapes first; a new family is one module and one line.

Order matters where shapes overlap (`detect` takes the first match; a `?family=` hint that also
matches wins): Suno MIDI (notes beside `data.taskId` and `state` in one third-party shape) before
Market; Market before the rest; Suno MP4 (`video_url` alone) before Runway; bare `{taskId}`
failures go to `unknown` unhinted, before 4o, Veo and Veo 4K, which take them only when hinted; Veo (no 4K marks) before Veo 4K, which also accepts plain Veo
bodies so its hint works; Luma before Midjourney for the bodies neither can claim.
"""

from kie2s3.families.base import FamilyParser
from kie2s3.families.flux_kontext import FluxKontextParser
from kie2s3.families.gpt4o import Gpt4oParser
from kie2s3.families.luma import LumaParser
from kie2s3.families.market import MarketParser
from kie2s3.families.midjourney import MidjourneyParser
from kie2s3.families.runway import RunwayParser
from kie2s3.families.runway_aleph import RunwayAlephParser
from kie2s3.families.suno import SunoParser
from kie2s3.families.suno_cover import SunoCoverParser
from kie2s3.families.suno_midi import SunoMidiParser
from kie2s3.families.suno_mp4 import SunoMp4Parser
from kie2s3.families.suno_vocals import SunoVocalSeparationParser
from kie2s3.families.suno_voice import SunoVoiceParser
from kie2s3.families.suno_wav import SunoWavParser
from kie2s3.families.unknown_failure import UnknownFailureParser
from kie2s3.families.veo import VeoParser
from kie2s3.families.veo4k import Veo4kParser

PARSERS: tuple[FamilyParser, ...] = (
    SunoMidiParser(),
    MarketParser(),
    RunwayAlephParser(),
    SunoParser(),
    SunoWavParser(),
    SunoMp4Parser(),
    SunoVocalSeparationParser(),
    SunoCoverParser(),  # its `{taskId, images: null}` failure, before the bare-failure takers
    RunwayParser(),
    SunoVoiceParser(),
    UnknownFailureParser(),
    Gpt4oParser(),
    FluxKontextParser(),
    VeoParser(),
    Veo4kParser(),
    LumaParser(),
    MidjourneyParser(),
)
