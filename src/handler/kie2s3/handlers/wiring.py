"""Builds the use cases' Services once per container from the settings and cached clients."""

from functools import lru_cache

from kie2s3.adapters import clients
from kie2s3.adapters.event_bus import EventBus
from kie2s3.adapters.http_source import HttpSource
from kie2s3.adapters.idempotency import CopyGuard, DynamoDBCopyRecords
from kie2s3.adapters.kie_client import KieClient
from kie2s3.adapters.ledger import Ledger
from kie2s3.adapters.queue import CopyQueue, ForwardQueue
from kie2s3.adapters.s3_store import S3Store
from kie2s3.adapters.secrets import get_secret, get_secret_versions, secrets_provider, versions_provider
from kie2s3.adapters.webhook import WebhookClient
from kie2s3.logic.services import Forwarding, Services
from kie2s3.observability import logger
from kie2s3.redaction import install_log_redaction
from kie2s3.settings import get_settings
from kie2s3.sources import SourcePolicy


@lru_cache(maxsize=1)
def get_services() -> Services:
    """The services of this container (validated settings first: a bad environment fails here, clearly)."""
    settings = get_settings()
    install_log_redaction()
    if refusal := settings.forward_refusal:
        # Refused at start, without stopping the archive: callbacks are still queued for forwarding.
        logger.error("forwarding refused at start: callbacks wait on the forward queue", reason=refusal)
    policy = SourcePolicy(settings.allowed_source_hosts, settings.allow_local_sources)
    pool = clients.http_pool(policy)
    api_key_secret = settings.kie_api_key_secret
    return Services(
        settings=settings,
        ledger=Ledger(clients.dynamodb_resource().Table(settings.tasks_table)),
        store=S3Store(
            clients.s3_client(),
            settings.bucket_name,
            kms_key_arn=settings.kms_key_arn,
            storage_class=settings.storage_class,
        ),
        queue=CopyQueue(clients.sqs_client(), settings.copy_queue_url)
        if settings.copy_mode == "queue"
        else None,
        kie=KieClient(pool, settings.kie_api_base_url, lambda: get_secret(api_key_secret)),
        source=HttpSource(pool),
        policy=policy,
        secret=get_secret,
        secret_versions=get_secret_versions,
        guard=CopyGuard(
            DynamoDBCopyRecords(settings.idempotency_table, clients.dynamodb_client(), settings.tasks_table)
        ),
        forwarding=Forwarding(
            queue=ForwardQueue(clients.sqs_client(), settings.forward_queue_url), webhook=WebhookClient(pool)
        )
        if settings.forwarding
        else None,
        bus=EventBus(clients.events_client(), settings.event_bus_name),
    )


def reset() -> None:
    """Forget the cached settings and services (for tests and local runs that change the env). The
    AWS clients are kept: each belongs to the AWS environment it was built from (adapters/clients)."""
    for cached in (
        get_services,
        get_settings,
        clients.http_pool,
        secrets_provider,
        versions_provider,
    ):
        cached.cache_clear()
