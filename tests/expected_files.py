"""What each `events/callback-*.json` sample must yield, written by hand from kie-api.md (§1, §8).

The independent expectation the parser and integration tests check against: the family detected
(with the sample's `?family=` hint, if any), the outcome, and the files archived in order with the
Content-Type their bytes should be stored under.
"""

from dataclasses import dataclass

PNG = "image/png"
JPEG = "image/jpeg"
MP4 = "video/mp4"
MP3 = "audio/mpeg"
WAV = "audio/wav"

_T = "https://tempfile.aiquickdraw.com"
_F = "https://file.aiquickdraw.com"


@dataclass(frozen=True)
class Expected:
    family: str
    outcome: str  # "success" | "failed" | "not_final" | "unrecognised"
    files: tuple[tuple[str, str], ...] = ()  # (url, stored Content-Type), in archive order
    hint: str | None = None


EXPECTED: dict[str, Expected] = {
    # Market: resultJson is a JSON string; Suno-on-Market lists tracks, text models an object.
    "callback-market-success.json": Expected(
        "market",
        "success",
        (
            (f"{_T}/p/7c1e0f3ab2d94c55a1e6f0b9d2c4a871_0_1790001234_5521.png", PNG),
            (f"{_T}/p/7c1e0f3ab2d94c55a1e6f0b9d2c4a871_1_1790001234_5522.mp4", MP4),
        ),
    ),
    "callback-market-failure.json": Expected("market", "failed"),
    "callback-market-suno-success.json": Expected(
        "market",
        "success",
        (
            (f"{_T}/s/7b89346e3ac6_0.mp3", MP3),
            (f"{_T}/s/7b89346e3ac6_0.jpeg", JPEG),
            (f"{_T}/s/7b89346e3ac6_1.mp3", MP3),
            (f"{_T}/s/7b89346e3ac6_1.jpeg", JPEG),
        ),
    ),
    "callback-market-text-result.json": Expected("market", "success"),
    # Veo 3.1: resultUrls then originUrls, as arrays or JSON strings; failures carry no info.
    "callback-veo-success.json": Expected(
        "veo",
        "success",
        (
            (f"{_T}/v/cbe5bda0ffb34c8c_1790003300.mp4", MP4),
            (f"{_T}/v/cbe5bda0ffb34c8c_1790003300_origin.mp4", MP4),
        ),
    ),
    "callback-veo-success-json-string.json": Expected(
        "veo",
        "success",
        (
            (f"{_T}/v/952d860f5a4f4671_1790003400.mp4", MP4),
            (f"{_T}/v/952d860f5a4f4671_1790003400_origin.mp4", MP4),
        ),
    ),
    "callback-veo-failure.json": Expected("veo", "failed"),
    # Veo 4K: the video, then its thumbnail; without thumbnails only the hint tells it from Veo.
    "callback-veo4k-success.json": Expected(
        "veo4k",
        "success",
        (
            (f"{_F}/v/75c95e6b91ac4d02_4k_1790004100.mp4", MP4),
            (f"{_F}/v/75c95e6b91ac4d02_4k_1790004100.jpg", JPEG),
        ),
    ),
    "callback-veo4k-success-openapi.json": Expected(
        "veo4k",
        "success",
        (
            (f"{_F}/p/f2daaccf8ecb4e97_4k_1790004200.mp4", MP4),
            (f"{_F}/p/f2daaccf8ecb4e97_4k_1790004200.jpg", JPEG),
        ),
    ),
    "callback-veo4k-success-hinted.json": Expected(
        "veo4k", "success", ((f"{_F}/v/4bdf9804d9374d54_4k_1790004300.mp4", MP4),), hint="veo4k"
    ),
    # Suno: only `complete` copies, each track's mp3 then cover; never stream or source_* URLs.
    "callback-suno-text.json": Expected("suno", "not_final"),
    "callback-suno-first.json": Expected("suno", "not_final"),
    "callback-suno-complete.json": Expected(
        "suno",
        "success",
        (
            (f"{_T}/s/efea1f34-c26d-49e9-9569-7b511a0b6bdd.mp3", MP3),
            (f"{_T}/s/efea1f34-c26d-49e9-9569-7b511a0b6bdd.jpeg", JPEG),
            (f"{_T}/s/e562cc1a-45e9-46f1-800b-8a78e8890078.mp3", MP3),
            (f"{_T}/s/e562cc1a-45e9-46f1-800b-8a78e8890078.jpeg", JPEG),
        ),
    ),
    "callback-suno-error.json": Expected("suno", "failed"),
    "callback-suno-wav-success.json": Expected(
        "suno_wav", "success", ((f"{_F}/s/f07a44ca-bbce-4732-a1c5-f8b404731742.wav", WAV),)
    ),
    "callback-suno-wav-success-snake.json": Expected(
        "suno_wav", "success", ((f"{_F}/s/7bb67803-692e-435f-900f-737cc1d8cfa3.wav", WAV),)
    ),
    "callback-suno-mp4-success.json": Expected(
        "suno_mp4", "success", ((f"{_T}/s/93140a6a-c62b-4fc2-b5c7-70625c13bf7f.mp4", MP4),)
    ),
    "callback-suno-mp4-failure.json": Expected("suno_mp4", "failed"),
    # 4o Image: info.result_urls (snake_case); a failure is a bare {taskId}.
    "callback-gpt4o-success.json": Expected(
        "gpt4o", "success", ((f"{_T}/v/4o_bcc64832d25641b4_0.png", PNG),)
    ),
    "callback-gpt4o-failure.json": Expected("gpt4o", "failed"),
    # Flux Kontext: resultImageUrl only (originImageUrl is an upstream copy that expires in 10 min).
    "callback-flux-kontext-success.json": Expected(
        "flux_kontext", "success", ((f"{_T}/f/fk_9139f8fc15b2.jpg", JPEG),)
    ),
    "callback-flux-kontext-failure.json": Expected("flux_kontext", "failed"),
    # Runway: the video, then its cover; a failure has empty strings.
    "callback-runway-success.json": Expected(
        "runway", "success", ((f"{_T}/k/ed3dde76.mp4", MP4), (f"{_T}/m/ed3dde76.png", PNG))
    ),
    "callback-runway-failure.json": Expected("runway", "failed"),
    # Runway Aleph: top-level taskId; data null on error.
    "callback-runway-aleph-success.json": Expected(
        "runway_aleph",
        "success",
        ((f"{_T}/k/aleph_7dc1f17c.mp4", MP4), (f"{_T}/m/aleph_7dc1f17c.png", PNG)),
    ),
    "callback-runway-aleph-failure.json": Expected("runway_aleph", "failed"),
    # Luma and Midjourney share a shape; promptJson tells them apart. Input and hook URLs are not results.
    "callback-luma-success.json": Expected(
        "luma", "success", ((f"{_T}/l/14a87575-d4d3-4319-9604-c63dfb1b057c.mp4", MP4),)
    ),
    "callback-luma-failure.json": Expected("luma", "failed"),
    "callback-midjourney-success.json": Expected(
        "midjourney",
        "success",
        tuple((f"{_T}/v/5818db91_0_{n}.jpeg", JPEG) for n in range(4)),
    ),
    "callback-midjourney-failure.json": Expected("midjourney", "failed"),
    # A signed-looking body no family knows: archived raw, recorded `unrecognised`, nothing copied.
    "callback-unrecognised.json": Expected("unknown", "unrecognised"),
}
