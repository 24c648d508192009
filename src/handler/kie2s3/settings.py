"""The function's configuration: one validated model read from the environment once per container."""

import os
from functools import lru_cache
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from kie2s3.errors import ConfigurationError, Kie2S3Error
from kie2s3.keys import DEFAULT_KEY_TEMPLATE, KeyTemplate
from kie2s3.sources import SourcePolicy, canonical_url, served_path

GIB = 1024**3
# A SigV4 presigned URL lives at most 7 days (docs.aws.amazon.com/AmazonS3/latest/userguide/ShareObjectPreSignedURL.html).
MAX_PRESIGNED_SECONDS = 7 * 24 * 3600
# A day: a task created with the old token in its callback URL, or signed by kie.ai just before the
# new key was made, has long been called back (kie.ai retries after 1, 5 and 15 minutes).
ROTATION_WINDOW_SECONDS = 24 * 3600

# kie.ai's result and download-link hosts (kie-api.md §6); kie.ai does not publish a closed list.
DEFAULT_SOURCE_HOSTS = (
    "tempfile.aiquickdraw.com",
    "file.aiquickdraw.com",
    "tempfileb.aiquickdraw.com",
    "static.aiquickdraw.com",
    "tempfile.redpandaai.co",
    "kieai.redpandaai.co",
    "*.r2.cloudflarestorage.com",
    "*.aiquickdraw.com",
    "*.redpandaai.co",
)

# What a secret id set to this means: off. `sam deploy --guided` cannot take an empty value for a
# parameter that has a default, so the template and the settings take "none" (any case) too.
SWITCHED_OFF = "none"
# A KMS key by its key ARN (IAM grants use on a key ARN; an alias or a bare id would match nothing).
KMS_KEY_ARN_PATTERN = r"^(arn:aws[a-z-]*:kms:[a-z0-9-]+:[0-9]{12}:key/[A-Za-z0-9-]+)?$"
# Storage classes an archived file may take: all read back at once (a duplicate's bytes are checked
# by reading them; GLACIER and DEEP_ARCHIVE objects would need a restore first).
StorageClass = Literal["STANDARD", "INTELLIGENT_TIERING", "STANDARD_IA", "GLACIER_IR"]
# kie2s3's own callback route (the HTTP API's `POST /callbacks/kie`): never a forward target.
CALLBACK_PATH = "/callbacks/kie"


def forward_target_refusal(url: str, *, allow_local: bool) -> str | None:
    """Why FORWARD_URL cannot be a forward target, None when it can: https only (http on loopback when
    `allow_local`), a plain host, no credentials, a literal address only if public, and never a path
    a server would route to kie2s3's callback route (a stage or a custom domain's base path may come
    before it; `sources.served_path` sees through `//`, `;a`, `%6b`, `%2F`, `%20` and dot segments).

    The one judge of a forward target: at start (Settings.forward_refusal), at forward time (the
    forward function checks the settings before anything else); a deploy-time check calls it too,
    never a copy of it.
    """
    try:
        SourcePolicy(allowed_hosts=(), allow_local=allow_local).check_endpoint(url)
    except Kie2S3Error as exc:
        return f"not a permitted target ({exc.reason})"
    path = served_path(url)
    if path == CALLBACK_PATH or path.endswith(CALLBACK_PATH):
        return f"{canonical_url(url)} is kie2s3's own callback route: forwarding there would loop"
    return None


class Settings(BaseModel):
    """Every setting, named by the environment variable it comes from (design.md, Public contract)."""

    model_config = ConfigDict(frozen=True, populate_by_name=False)

    bucket_name: Annotated[str, Field(alias="BUCKET_NAME", min_length=3)]
    object_prefix: Annotated[str, Field(alias="OBJECT_PREFIX")] = "kie/"
    key_template: Annotated[str, Field(alias="KEY_TEMPLATE")] = DEFAULT_KEY_TEMPLATE
    tasks_table: Annotated[str, Field(alias="TASKS_TABLE", min_length=1)]
    idempotency_table: Annotated[str, Field(alias="IDEMPOTENCY_TABLE", min_length=1)]
    copy_mode: Annotated[Literal["queue", "inline"], Field(alias="COPY_MODE")] = "queue"
    copy_queue_url: Annotated[str, Field(alias="COPY_QUEUE_URL")] = ""
    kie_api_base_url: Annotated[str, Field(alias="KIE_API_BASE_URL")] = "https://api.kie.ai"
    kie_api_key_secret: Annotated[str, Field(alias="KIE_API_KEY_SECRET", min_length=1)]
    # Empty means "off": HMAC off falls back to the callback token; both off refuses every callback.
    kie_webhook_hmac_secret: Annotated[str, Field(alias="KIE_WEBHOOK_HMAC_SECRET")] = ""
    callback_token_secret: Annotated[str, Field(alias="CALLBACK_TOKEN_SECRET")] = ""
    webhook_tolerance_seconds: Annotated[int, Field(alias="WEBHOOK_TOLERANCE_SECONDS", ge=1)] = 300
    # After a rotation (measured from the AWSCURRENT version's CreatedDate), the AWSPREVIOUS HMAC
    # key or token is accepted this long too: callbacks of tasks started before it still arrive.
    secret_rotation_window_seconds: Annotated[int, Field(alias="SECRET_ROTATION_WINDOW_SECONDS", ge=0)] = (
        ROTATION_WINDOW_SECONDS
    )
    allowed_source_hosts: Annotated[tuple[str, ...], Field(alias="ALLOWED_SOURCE_HOSTS")] = (
        DEFAULT_SOURCE_HOSTS
    )
    allow_local_sources: Annotated[bool, Field(alias="ALLOW_LOCAL_SOURCES")] = False
    max_file_bytes: Annotated[int, Field(alias="MAX_FILE_BYTES", gt=0)] = 5 * GIB
    # GET /tasks links each copied file for this long (0: no links); SigV4 allows at most 7 days.
    presigned_url_ttl_seconds: Annotated[
        int, Field(alias="PRESIGNED_URL_TTL_SECONDS", ge=0, le=MAX_PRESIGNED_SECONDS)
    ] = 3600
    # Absent (an environment from before they existed): SSE-S3 and STANDARD, as then.
    kms_key_arn: Annotated[str, Field(alias="KMS_KEY_ARN", pattern=KMS_KEY_ARN_PATTERN)] = ""
    storage_class: Annotated[StorageClass, Field(alias="STORAGE_CLASS")] = "STANDARD"
    # Forwarding each accepted callback to the user's own handler: off while FORWARD_URL is empty.
    forward_url: Annotated[str, Field(alias="FORWARD_URL")] = ""
    forward_hmac_secret: Annotated[str, Field(alias="FORWARD_HMAC_SECRET")] = ""
    forward_queue_url: Annotated[str, Field(alias="FORWARD_QUEUE_URL")] = ""
    # The EventBridge bus the ledger's events go to (template parameter EventBusName).
    event_bus_name: Annotated[str, Field(alias="EVENT_BUS_NAME", min_length=1)] = "default"

    @field_validator("allowed_source_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        if isinstance(value, str):
            hosts = tuple(h.strip().lower() for h in value.split(",") if h.strip())
            return hosts or DEFAULT_SOURCE_HOSTS
        return value

    @field_validator("kie_webhook_hmac_secret", "callback_token_secret", "forward_hmac_secret")
    @classmethod
    def _none_is_off(cls, value: str) -> str:
        return "" if value.strip().lower() == SWITCHED_OFF else value

    @field_validator("key_template")
    @classmethod
    def _known_placeholders(cls, value: str) -> str:
        return KeyTemplate.parse(value).text

    @field_validator("forward_url")
    @classmethod
    def _strip(cls, value: str) -> str:
        return value.strip()

    @field_validator("kie_api_base_url")
    @classmethod
    def _strip_slash(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _queue_needs_url(self) -> "Settings":
        if self.copy_mode == "queue" and not self.copy_queue_url:
            raise ValueError("COPY_QUEUE_URL is required when COPY_MODE is 'queue'")
        return self

    @property
    def forward_refusal(self) -> str | None:
        """Why forwarding cannot work in this environment; None when it can, or when it is off.

        Never fatal: nothing about forwarding may stop the archive. A function that starts with a
        refusal logs it (handlers/wiring.py) and the forward function refuses each job, which waits
        on the forward queue (then its dead-letter queue) until the configuration is fixed.
        """
        if not self.forward_url:
            return None
        refusal = forward_target_refusal(self.forward_url, allow_local=self.allow_local_sources)
        if refusal is not None:
            return f"FORWARD_URL: {refusal}"
        if not self.forward_hmac_secret:
            return "FORWARD_HMAC_SECRET is required when FORWARD_URL is set"
        if not self.forward_queue_url:
            return "FORWARD_QUEUE_URL is required when FORWARD_URL is set"
        return None

    @property
    def forwarding(self) -> bool:
        """Whether accepted callbacks are forwarded (FORWARD_URL set)."""
        return bool(self.forward_url)

    @classmethod
    def from_environ(cls, environ: dict[str, str]) -> "Settings":
        """Validate the environment; the error names every missing or invalid variable."""
        names = {field.alias for field in cls.model_fields.values() if field.alias}
        try:
            return cls.model_validate({k: v for k, v in environ.items() if k in names})
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in err['loc']) or 'environment'}: {err['msg']}"
                for err in exc.errors()
            )
            raise ConfigurationError(f"invalid configuration: {problems}") from exc


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The settings of this container, read once."""
    return Settings.from_environ(dict(os.environ))
