"""Prometheus metrics read from the database and the broker at scrape time.

The job table is the source of truth, so every gunicorn process reports the same
numbers and nothing is lost on a restart; Flower has no queue-depth metric, so
the site reads each queue's length from Redis itself.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import timedelta

import redis
from django.conf import settings
from django.db.models import Case, CharField, Count, DurationField, F, Min, Q, Sum, Value, When
from django.db.models.expressions import ExpressionWrapper
from django.utils import timezone
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from predictions.models import Job
from predictions.monitoring.health import broker_client

LATENCY_BUCKETS_S = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)
# kombu's Redis transport keeps a queue's prioritised messages in these extra lists.
_PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")
FAILURE_REASONS = ("timeout", "invalid_image", "gave_up", "contract", "other")


def failure_reason() -> Case:
    """Bucket a failed job's free-text error into one of FAILURE_REASONS, in SQL."""
    return Case(
        When(error__startswith="The job took longer than", then=Value("timeout")),
        When(error__startswith="The image cannot be classified", then=Value("invalid_image")),
        When(error__startswith="Gave up after", then=Value("gave_up")),
        When(error__startswith="contract version", then=Value("contract")),
        default=Value("other"),
        output_field=CharField(),
    )


def known_queues() -> list[str]:
    """The configured queues plus any queue an unfinished job still waits on."""
    configured = {settings.INFERENCE_QUEUE, settings.CPU_QUEUE}
    waiting = Job.objects.unfinished().values_list("queue", flat=True).distinct()
    return sorted(configured | set(waiting[:50]))


def queue_depths(queues: Iterable[str]) -> dict[str, int]:
    """Return the number of messages waiting in each queue (Redis LLEN, all priorities)."""
    queues = list(queues)
    client = broker_client()
    try:
        with client.pipeline(transaction=False) as pipe:
            for queue in queues:
                for suffix in _PRIORITY_SUFFIXES:
                    pipe.llen(queue + suffix)
            lengths = pipe.execute()
    finally:
        client.close()
    step = len(_PRIORITY_SUFFIXES)
    return {queue: sum(lengths[i * step : (i + 1) * step]) for i, queue in enumerate(queues)}


class JobCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        yield self.jobs_by_status()
        yield from self.queues()
        yield self.latency()
        yield self.failures()

    def jobs_by_status(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily("mri_jobs", "Jobs in the database by status.", labels=["status"])
        counts = dict(Job.objects.values_list("status").annotate(n=Count("pk")).order_by())
        for status in Job.Status.values:
            family.add_metric([status], counts.get(status, 0))
        return family

    def queues(self) -> Iterator[GaugeMetricFamily]:
        queues = known_queues()
        up = GaugeMetricFamily("mri_broker_up", "1 when the broker answered this scrape.")
        try:
            depths = queue_depths(queues)
        except redis.RedisError:
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        depth = GaugeMetricFamily(
            "mri_queue_depth", "Messages waiting in the broker queue.", labels=["queue"]
        )
        for queue, length in depths.items():
            depth.add_metric([queue], length)
        yield depth
        yield self.oldest_queued(queues)

    def oldest_queued(self, queues: list[str]) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "mri_oldest_queued_job_age_seconds",
            "Age of the oldest job still queued, per queue (0 when none).",
            labels=["queue"],
        )
        oldest = dict(
            Job.objects.filter(status=Job.Status.QUEUED)
            .values_list("queue")
            .annotate(first=Min("created"))
            .order_by()
        )
        now = timezone.now()
        for queue in queues:
            first = oldest.get(queue)
            family.add_metric([queue], (now - first).total_seconds() if first else 0.0)
        return family

    def latency(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(
            "mri_job_latency_seconds",
            "Time from submission (queued) to finished, for finished jobs.",
            labels=["status"],
        )
        latency = ExpressionWrapper(F("finished_at") - F("created"), output_field=DurationField())
        buckets = {
            f"le_{bound}": Count("pk", filter=Q(latency__lte=timedelta(seconds=bound)))
            for bound in LATENCY_BUCKETS_S
        }
        finished = Job.objects.filter(finished_at__isnull=False).annotate(latency=latency)
        for status in (Job.Status.SUCCEEDED, Job.Status.FAILED):
            row = finished.filter(status=status).aggregate(
                total=Count("pk"), sum=Sum("latency"), **buckets
            )
            counts = [(str(float(b)), row[f"le_{b}"]) for b in LATENCY_BUCKETS_S]
            counts.append(("+Inf", row["total"]))
            seconds = row["sum"].total_seconds() if row["sum"] else 0.0
            family.add_metric([status], counts, seconds)
        return family

    def failures(self) -> CounterMetricFamily:
        family = CounterMetricFamily(
            "mri_job_failures", "Failed jobs by reason.", labels=["reason"]
        )
        counts = dict(
            Job.objects.filter(status=Job.Status.FAILED)
            .annotate(reason=failure_reason())
            .values_list("reason")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for reason in FAILURE_REASONS:
            family.add_metric([reason], counts.get(reason, 0))
        return family


registry = CollectorRegistry(auto_describe=False)
registry.register(JobCollector())
