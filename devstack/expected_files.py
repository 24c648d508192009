"""What each `events/callback-*.json` sample must yield, written by hand from kie-api.md (§1, §8).

The independent expectation the parser, the integration tests and the soak check against: the family detected
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
    outcome: str  # "success" | "no_files" | "failed" | "not_final" | "unrecognised"
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
    "callback-market-text-result.json": Expected("market", "no_files"),
    # A Market result of a shape no parser knows: the safety net takes its URLs, never inputs/streams.
    "callback-market-net-nested.json": Expected(
        "market",
        "success",
        ((f"{_T}/s/6e5d4c3b_Vocals.mp3", MP3), (f"{_T}/s/6e5d4c3b_Instrumental.mp3", MP3)),
    ),
    "callback-market-no-url.json": Expected("market", "unrecognised"),
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
    # Suno vocal separation: under `vocal_separation_info` (EN docs) or `vocal_removal_info` (CN docs);
    # vocal then instrumental, or each stem present in kie's record-info order, or origin_data's
    # extract/remove pairs (names with spaces). Never `origin_url`, the input song.
    "callback-suno-vocals-separate-vocal.json": Expected(
        "suno_vocal_separation",
        "success",
        (
            (f"{_F}/s/3d7021c9-fa8b-4eda-91d1-3b9297ddb172_Vocals.mp3", MP3),
            (f"{_F}/s/d92a13bf-c6f4-4ade-bb47-f69738435528_Instrumental.mp3", MP3),
        ),
    ),
    "callback-suno-vocals-removal-info-spelling.json": Expected(
        "suno_vocal_separation",
        "success",
        (
            (f"{_F}/s/6e5d4c3b-2a1f-4e0d-9c8b-7a6f5e4d3c2b_Vocals.mp3", MP3),
            (f"{_F}/s/9b1c2d3e-4f5a-4b6c-8d7e-9f0a1b2c3d4e_Instrumental.mp3", MP3),
        ),
    ),
    "callback-suno-vocals-split-stem.json": Expected(
        "suno_vocal_separation",
        "success",
        (
            (f"{_F}/s/07429a8b-7c6d-4e5f-8a4b-3c2d1e0f9a11_Vocals.mp3", MP3),
            (f"{_F}/s/aadc1f0e-4c1b-4f07-9a4e-1d2b3c4d5e01_Backing_Vocals.mp3", MP3),
            (f"{_F}/s/ac75d2e1-0f9e-4d8c-b7a6-5f4e3d2c1b04_Drums.mp3", MP3),
            (f"{_F}/s/a3c2b7d1-5e6f-4a8b-9c0d-2e3f4a5b6c02_Bass.mp3", MP3),
            (f"{_F}/s/064d3b2a-1c0d-4e9f-8a7b-6c5d4e3f2a06_Guitar.mp3", MP3),
            (f"{_F}/s/adc90f1e-2d3c-4b5a-9f8e-7d6c5b4a3f07_Keyboard.mp3", MP3),
            (f"{_F}/s/0f701a2b-3c4d-4e5f-8a9b-0c1d2e3f4a08_Percussion.mp3", MP3),
            (f"{_F}/s/49827e6d-5c4b-4a3f-9e2d-1c0b9a8f7e09_Strings.mp3", MP3),
            (f"{_F}/s/56b23c4d-5e6f-4a7b-8c9d-0e1f2a3b4c10_Synth.mp3", MP3),
            (f"{_F}/s/a8826c5d-4e3f-4a2b-8c1d-0e9f8a7b6c05_FX.mp3", MP3),
            (f"{_F}/s/334b9e8d-7c6b-4a5f-8e4d-3c2b1a0f9e03_Brass.mp3", MP3),
            (f"{_F}/s/d8154f3e-2d1c-4b0a-9f8e-7d6c5b4a3e12_Woodwinds.mp3", MP3),
        ),
    ),
    "callback-suno-vocals-split-stem-removal-info.json": Expected(
        "suno_vocal_separation",
        "success",
        (
            (f"{_F}/s/1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b_Vocals.mp3", MP3),
            (f"{_F}/s/2a3b4c5d-6e7f-4081-9a2b-3c4d5e6f7a8b_Backing_Vocals.mp3", MP3),
        ),
    ),
    "callback-suno-vocals-split-stem-advanced.json": Expected(
        "suno_vocal_separation",
        "success",
        (
            (f"{_T}/r/eb7d41c2-8a3f-4e6b-9d1c-5f2a7b8c9d0e_Lead Vocal.mp3", MP3),
            (f"{_T}/r/706d2b1a-9c8e-4f7d-a6b5-c4d3e2f1a0b9_Lead Vocal.mp3", MP3),
        ),
    ),
    "callback-suno-vocals-failure.json": Expected("suno_vocal_separation", "failed"),
    "callback-suno-vocals-failure-removal-info.json": Expected("suno_vocal_separation", "failed"),
    # Suno cover image: camelCase `data.taskId`, `data.images[]`; a failure has `images: null`.
    "callback-suno-cover-success.json": Expected(
        "suno_cover",
        "success",
        (
            (f"{_T}/s/1753958521_6c1b3015141849d1a9bf17b738ce9347.png", PNG),
            (f"{_T}/s/1753958524_c153143acc6340908431cf0e90cbce9e.png", PNG),
        ),
    ),
    "callback-suno-cover-failure.json": Expected("suno_cover", "failed"),
    # 4o Image: info.result_urls (snake_case); a failure is a bare {taskId}.
    "callback-gpt4o-success.json": Expected(
        "gpt4o", "success", ((f"{_T}/v/4o_bcc64832d25641b4_0.png", PNG),)
    ),
    "callback-gpt4o-failure.json": Expected("unknown", "failed"),  # a bare {taskId} failure: no guess
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
    # Results without files by design, and a failure that names no family.
    "callback-suno-lyrics.json": Expected("suno", "no_files"),
    "callback-suno-midi.json": Expected("suno_midi", "no_files"),
    "callback-suno-voice.json": Expected("suno_voice", "no_files"),
    "callback-bare-failure.json": Expected("unknown", "failed"),
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
    # Suno vocal separation (get-vocal-separation-details): named stems in camelCase; `originUrl` is
    # the input and `originData[]` the upstream copies of the same stems, read only when no stem is named.
    (
        "suno_vocal_separation",
        "separate-vocal",
        {
            "taskId": "t",
            "musicId": "m",
            "musicIndex": 0,
            "successFlag": "SUCCESS",
            "response": {
                "id": None,
                "originUrl": "https://h/origin.mp3",
                "originData": [
                    {"duration": 245.6, "audio_url": "https://h/up/v.mp3", "stem_type_group_name": "Vocals"},
                    {
                        "duration": 245.6,
                        "audio_url": "https://h/up/i.mp3",
                        "stem_type_group_name": "Instrumental",
                    },
                ],
                "instrumentalUrl": "https://h/i.mp3",
                "vocalUrl": "https://h/v.mp3",
                "backingVocalsUrl": None,
                "drumsUrl": None,
                "pianoUrl": None,
                "woodwindsUrl": None,
            },
            "errorCode": None,
            "errorMessage": None,
        },
        _SUCCESS,
        ["https://h/v.mp3", "https://h/i.mp3"],
        None,
    ),
    (
        "suno_vocal_separation",
        "split-stem",
        {
            "successFlag": "SUCCESS",
            "response": {
                "originUrl": "https://h/origin.mp3",
                "instrumentalUrl": None,
                "vocalUrl": "https://h/v.mp3",
                "backingVocalsUrl": "https://h/bv.mp3",
                "drumsUrl": "https://h/d.mp3",
                "bassUrl": "https://h/b.mp3",
                "guitarUrl": "https://h/g.mp3",
                "pianoUrl": "https://h/p.mp3",
                "keyboardUrl": "https://h/k.mp3",
                "percussionUrl": "https://h/pc.mp3",
                "stringsUrl": "https://h/s.mp3",
                "synthUrl": "https://h/sy.mp3",
                "fxUrl": "https://h/fx.mp3",
                "brassUrl": "https://h/br.mp3",
                "woodwindsUrl": "https://h/w.mp3",
            },
        },
        _SUCCESS,
        [
            "https://h/v.mp3",
            "https://h/bv.mp3",
            "https://h/d.mp3",
            "https://h/b.mp3",
            "https://h/g.mp3",
            "https://h/p.mp3",
            "https://h/k.mp3",
            "https://h/pc.mp3",
            "https://h/s.mp3",
            "https://h/sy.mp3",
            "https://h/fx.mp3",
            "https://h/br.mp3",
            "https://h/w.mp3",
        ],
        None,
    ),
    (
        "suno_vocal_separation",
        "split-stem-advanced",
        {
            "successFlag": "SUCCESS",
            "response": {
                "originUrl": None,
                "vocalUrl": None,
                "instrumentalUrl": None,
                "originData": [
                    {
                        "extract": {
                            "audio_url": "https://h/x_Lead Vocal.mp3",
                            "stem_type_group_name": "Lead Vocal",
                        },
                        "remove": {
                            "audio_url": "https://h/r_Lead Vocal.mp3",
                            "stem_type_group_name": "Lead Vocal",
                        },
                    }
                ],
            },
        },
        _SUCCESS,
        ["https://h/x_Lead Vocal.mp3", "https://h/r_Lead Vocal.mp3"],
        None,
    ),
    (
        "suno_vocal_separation",
        "audio-failed",
        {"successFlag": "GENERATE_AUDIO_FAILED", "errorCode": 500, "errorMessage": "separation failed"},
        _FAILED,
        [],
        "separation failed (errorCode 500)",
    ),
    (
        "suno_vocal_separation",
        "create-failed",
        {"successFlag": "CREATE_TASK_FAILED", "response": None},
        _FAILED,
        [],
        "status CREATE_TASK_FAILED",
    ),
    (
        "suno_vocal_separation",
        "callback-exception",
        {"successFlag": "CALLBACK_EXCEPTION", "response": {"vocalUrl": "https://h/v.mp3"}},
        _FAILED,
        [],
        "status CALLBACK_EXCEPTION",
    ),
    ("suno_vocal_separation", "pending", {"successFlag": "PENDING"}, _NOT_FINAL, [], "status PENDING"),
    # Suno cover image (get-cover-suno-details): `successFlag` 1 in kie's example, status names in its list.
    (
        "suno_cover",
        "success",
        {
            "taskId": "t",
            "parentTaskId": "p",
            "response": {"images": ["https://h/c0.png", "https://h/c1.png"]},
            "successFlag": 1,
            "errorCode": 200,
            "errorMessage": "",
        },
        _SUCCESS,
        ["https://h/c0.png", "https://h/c1.png"],
        None,
    ),
    (
        "suno_cover",
        "success-named",
        {"successFlag": "SUCCESS", "response": {"images": ["https://h/c0.png"]}},
        _SUCCESS,
        ["https://h/c0.png"],
        None,
    ),
    (
        "suno_cover",
        "cover-failed",
        {"successFlag": "GENERATE_COVER_FAILED", "errorCode": 500, "errorMessage": "cover failed"},
        _FAILED,
        [],
        "cover failed (errorCode 500)",
    ),
    (
        "suno_cover",
        "create-failed",
        {"successFlag": "CREATE_TASK_FAILED"},
        _FAILED,
        [],
        "status CREATE_TASK_FAILED",
    ),
    ("suno_cover", "pending", {"successFlag": "PENDING", "response": None}, _NOT_FINAL, [], "status PENDING"),
    ("suno_cover", "generating", {"successFlag": 0}, _NOT_FINAL, [], "status 0"),
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
    # Results without files by design: a success is `no_files`, never a success without files.
    (
        "suno_midi",
        "success",
        {"successFlag": 1, "midiData": {"instruments": [{"name": "Drums", "notes": []}]}},
        Outcome.NO_FILES,
        [],
        "result has no files: MIDI notes",
    ),
    (
        "suno_midi",
        "failed",
        {"successFlag": 3, "errorMessage": "no notes found"},
        _FAILED,
        [],
        "no notes found",
    ),
    ("suno_midi", "running", {"successFlag": 0}, _NOT_FINAL, [], "status 0"),
    (
        "suno_voice",
        "success",
        {"successFlag": 1, "voiceId": "voice_5c0a"},
        Outcome.NO_FILES,
        [],
        "result has no files: voice task",
    ),
    (
        "suno_voice",
        "failed",
        {"successFlag": 2, "errorMessage": "voice rejected"},
        _FAILED,
        [],
        "voice rejected",
    ),
    ("suno_voice", "running", {"successFlag": 0}, _NOT_FINAL, [], "status 0"),
]
