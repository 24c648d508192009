"""What each `events/callback-*.json` sample must yield, written by hand from kie-api.md (§1, §8).

The independent expectation the parser and integration tests check against: the family detected
(with the sample's `?family=` hint, if any), the outcome, and the files archived in order with the
Content-Type their bytes should be stored under.
"""

from dataclasses import dataclass
from typing import Any

from kie2s3.models import Outcome

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


# What each family's record-info `data` must yield (kie-api.md §5): the copy-by-taskId expectations.
_FAILED, _NOT_FINAL, _SUCCESS = Outcome.FAILED, Outcome.NOT_FINAL, Outcome.SUCCESS

RECORDS: list[tuple[str, str, dict[str, Any], Outcome, list[str], str | None]] = [
    # (family, scenario, record-info data, outcome, urls, reason)
    (
        "veo",
        "success",
        {
            "successFlag": 1,
            "response": {"resultUrls": ["https://h/v.mp4"], "originUrls": ["https://h/o.mp4"]},
        },
        _SUCCESS,
        ["https://h/v.mp4", "https://h/o.mp4"],
        None,
    ),
    (
        "veo",
        "success-json-string",
        {"successFlag": 1, "response": {"resultUrls": '["https://h/v.mp4"]', "originUrls": None}},
        _SUCCESS,
        ["https://h/v.mp4"],
        None,
    ),
    (
        "veo",
        "success-quickstart",
        {"successFlag": "1", "resultUrls": '["https://h/q.mp4"]'},
        _SUCCESS,
        ["https://h/q.mp4"],
        None,
    ),
    (
        "veo",
        "failed",
        {"successFlag": 2, "errorCode": 400, "errorMessage": "prompt flagged"},
        _FAILED,
        [],
        "prompt flagged (errorCode 400)",
    ),
    ("veo", "generation-failed", {"successFlag": 3, "errorMessage": None}, _FAILED, [], "status 3"),
    ("veo", "running", {"successFlag": 0, "response": None}, _NOT_FINAL, [], "status 0"),
    (
        "veo4k",
        "success",
        {
            "successFlag": 1,
            "response": {
                "resultUrls": ["https://h/4k.mp4"],
                "imageUrls": ["https://h/4k.jpg"],
                "mediaIds": ["m"],
            },
        },
        _SUCCESS,
        ["https://h/4k.mp4", "https://h/4k.jpg"],
        None,
    ),
    ("veo4k", "failed", {"successFlag": 2, "errorMessage": "unavailable"}, _FAILED, [], "unavailable"),
    ("veo4k", "running", {"successFlag": 0}, _NOT_FINAL, [], "status 0"),
    (
        "suno",
        "success",
        {
            "status": "SUCCESS",
            "response": {
                "sunoData": [
                    {
                        "id": "a",
                        "audioUrl": "https://h/a.mp3",
                        "streamAudioUrl": "https://h/s/a",
                        "imageUrl": "https://h/a.jpeg",
                    },
                    {
                        "id": "b",
                        "audioUrl": "https://h/b.mp3",
                        "streamAudioUrl": "https://h/s/b",
                        "imageUrl": "",
                    },
                ]
            },
        },
        _SUCCESS,
        ["https://h/a.mp3", "https://h/a.jpeg", "https://h/b.mp3"],
        None,
    ),
    ("suno", "create-failed", {"status": "CREATE_TASK_FAILED", "errorMessage": "bad"}, _FAILED, [], "bad"),
    (
        "suno",
        "audio-failed",
        {"status": "GENERATE_AUDIO_FAILED", "errorCode": 501},
        _FAILED,
        [],
        "status GENERATE_AUDIO_FAILED (errorCode 501)",
    ),
    (
        "suno",
        "callback-exception",
        {"status": "CALLBACK_EXCEPTION"},
        _FAILED,
        [],
        "status CALLBACK_EXCEPTION",
    ),
    (
        "suno",
        "sensitive-word",
        {"status": "SENSITIVE_WORD_ERROR"},
        _FAILED,
        [],
        "status SENSITIVE_WORD_ERROR",
    ),
    ("suno", "pending", {"status": "PENDING"}, _NOT_FINAL, [], "status PENDING"),
    ("suno", "text-success", {"status": "TEXT_SUCCESS"}, _NOT_FINAL, [], "status TEXT_SUCCESS"),
    (
        "suno",
        "first-success",
        {"status": "FIRST_SUCCESS", "response": {"sunoData": [{"audioUrl": "https://h/a.mp3"}]}},
        _NOT_FINAL,
        [],
        "status FIRST_SUCCESS",
    ),
    (
        "suno_wav",
        "success",
        {"successFlag": "SUCCESS", "response": {"audioWavUrl": "https://h/a.wav"}},
        _SUCCESS,
        ["https://h/a.wav"],
        None,
    ),
    ("suno_wav", "failed", {"successFlag": "GENERATE_WAV_FAILED", "errorMessage": "no"}, _FAILED, [], "no"),
    ("suno_wav", "running", {"successFlag": "PENDING"}, _NOT_FINAL, [], "status PENDING"),
    (
        "suno_mp4",
        "success",
        {"successFlag": "SUCCESS", "response": {"videoUrl": "https://h/m"}},
        _SUCCESS,
        ["https://h/m"],
        None,
    ),
    ("suno_mp4", "failed", {"successFlag": "CREATE_TASK_FAILED"}, _FAILED, [], "status CREATE_TASK_FAILED"),
    ("suno_mp4", "running", {"successFlag": "GENERATING"}, _NOT_FINAL, [], "status GENERATING"),
    (
        "gpt4o",
        "success",
        {
            "successFlag": 1,
            "status": "SUCCESS",
            "progress": "1.00",
            "response": {"resultUrls": ["https://h/4o.png"]},
        },
        _SUCCESS,
        ["https://h/4o.png"],
        None,
    ),
    (
        "gpt4o",
        "success-flag-only",
        {"successFlag": 1, "response": {"resultUrls": ["https://h/4o.png"]}},
        _SUCCESS,
        ["https://h/4o.png"],
        None,
    ),
    (
        "gpt4o",
        "failed",
        {"status": "GENERATE_FAILED", "errorCode": 400, "errorMessage": "policy"},
        _FAILED,
        [],
        "policy (errorCode 400)",
    ),
    ("gpt4o", "create-failed", {"status": "CREATE_TASK_FAILED"}, _FAILED, [], "status CREATE_TASK_FAILED"),
    (
        "gpt4o",
        "running",
        {"successFlag": 0, "status": "GENERATING", "progress": "0.40"},
        _NOT_FINAL,
        [],
        "status GENERATING",
    ),
    (
        "flux_kontext",
        "success",
        {
            "successFlag": 1,
            "response": {"resultImageUrl": "https://h/f.jpg", "originImageUrl": "https://up/f.jpg"},
        },
        _SUCCESS,
        ["https://h/f.jpg"],
        None,
    ),
    ("flux_kontext", "create-failed", {"successFlag": 2, "errorMessage": "flagged"}, _FAILED, [], "flagged"),
    ("flux_kontext", "generate-failed", {"successFlag": 3}, _FAILED, [], "status 3"),
    ("flux_kontext", "running", {"successFlag": 0}, _NOT_FINAL, [], "status 0"),
    (
        "runway",
        "success",
        {
            "state": "success",
            "videoInfo": {"videoId": "v", "videoUrl": "https://h/r.mp4", "imageUrl": "https://h/r.png"},
        },
        _SUCCESS,
        ["https://h/r.mp4", "https://h/r.png"],
        None,
    ),
    (
        "runway",
        "failed",
        {"state": "fail", "failCode": 400, "failMsg": "moderated"},
        _FAILED,
        [],
        "moderated (failCode 400)",
    ),
    ("runway", "wait", {"state": "wait"}, _NOT_FINAL, [], "status wait"),
    ("runway", "queueing", {"state": "queueing"}, _NOT_FINAL, [], "status queueing"),
    ("runway", "generating", {"state": "generating", "videoInfo": None}, _NOT_FINAL, [], "status generating"),
    (
        "runway_aleph",
        "success",
        {
            "successFlag": 1,
            "response": {"resultVideoUrl": "https://h/al.mp4", "resultImageUrl": "https://h/al.png"},
        },
        _SUCCESS,
        ["https://h/al.mp4", "https://h/al.png"],
        None,
    ),
    ("runway_aleph", "failed", {"successFlag": 2, "errorMessage": "moderated"}, _FAILED, [], "moderated"),
    ("runway_aleph", "running", {"successFlag": 0}, _NOT_FINAL, [], "status 0"),
    (
        "luma",
        "success",
        {"successFlag": 1, "response": {"resultUrls": ["https://h/l.mp4"]}},
        _SUCCESS,
        ["https://h/l.mp4"],
        None,
    ),
    (
        "luma",
        "callback-failed-generation-ok",
        {"successFlag": 4, "response": {"resultUrls": ["https://h/l.mp4"]}},
        _SUCCESS,
        ["https://h/l.mp4"],
        None,
    ),
    ("luma", "create-failed", {"successFlag": 2, "errorMessage": "too long"}, _FAILED, [], "too long"),
    ("luma", "generate-failed", {"successFlag": 3}, _FAILED, [], "status 3"),
    ("luma", "running", {"successFlag": 0}, _NOT_FINAL, [], "status 0"),
    (
        "midjourney",
        "success",
        {
            "successFlag": 1,
            "taskType": "mj_txt2img",
            "resultInfoJson": {
                "resultUrls": [{"resultUrl": "https://h/0.jpeg"}, {"resultUrl": "https://h/1.jpeg"}]
            },
        },
        _SUCCESS,
        ["https://h/0.jpeg", "https://h/1.jpeg"],
        None,
    ),
    (
        "midjourney",
        "success-json-string",
        {
            "successFlag": 1,
            "resultInfoJson": '{"resultUrls": [{"resultUrl": "https://h/0.jpeg"}, {"resultUrl": ""}]}',
        },
        _SUCCESS,
        ["https://h/0.jpeg"],
        None,
    ),
    (
        "midjourney",
        "failed",
        {"successFlag": 2, "errorCode": 500, "errorMessage": "banned"},
        _FAILED,
        [],
        "banned (errorCode 500)",
    ),
    ("midjourney", "generate-failed", {"successFlag": 3, "resultInfoJson": None}, _FAILED, [], "status 3"),
    ("midjourney", "running", {"successFlag": 0}, _NOT_FINAL, [], "status 0"),
]
