"""Prometheus metrics read from the database and the broker at scrape time.

The job table is the source of truth, so every gunicorn process reports the same
numbers and nothing is lost on a restart; Flower has no queue-depth metric, so
the site reads each queue's length from Redis itself.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

from django.db.models import Count, DurationField, F, Min, Q, Sum
from django.db.models.expressions import ExpressionWrapper
from django.utils import timezone
from prometheus_client.core import (
    CollectorRegistry,
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
)
from prometheus_client.registry import Collector

from predictions import broker
from predictions.models import Job, WorkerModelState
from workers.contracts import FailureCode

LATENCY_BUCKETS_S = (1, 2, 5, 10, 30, 60, 120, 300, 600, 1800, 3600)


class JobCollector(Collector):
    def collect(self) -> Iterator[GaugeMetricFamily | CounterMetricFamily | HistogramMetricFamily]:
        yield self.jobs_by_status()
        yield self.awaiting_dispatch()
        yield from self.queues()
        yield self.latency()
        yield self.failures()
        yield self.worker_models()

    def jobs_by_status(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily("mri_jobs", "Jobs in the database by status.", labels=["status"])
        counts = dict(Job.objects.values_list("status").annotate(n=Count("pk")).order_by())
        for status in Job.Status.values:
            family.add_metric([status], counts.get(status, 0))
        return family

    def worker_models(self) -> GaugeMetricFamily:
        """Per worker following the site's model: 1 when it serves the version the site
        wanted at its last report, 0 when it could not fetch or verify it (alert on 0)."""
        family = GaugeMetricFamily(
            "mri_worker_model_current",
            "1 when the worker serves the model version the site serves.",
            labels=["worker", "serving", "wanted"],
        )
        for state in WorkerModelState.objects.all():
            current = bool(state.wanted) and state.serving == state.wanted and not state.error
            family.add_metric([state.worker, state.serving, state.wanted], int(current))
        return family

    def awaiting_dispatch(self) -> GaugeMetricFamily:
        family = GaugeMetricFamily(
            "mri_jobs_awaiting_dispatch",
            "Queued jobs waiting in the database for an unreachable broker.",
        )
        family.add_metric([], Job.objects.awaiting_dispatch().count())
        return family

    def queues(self) -> Iterator[GaugeMetricFamily]:
        queues = broker.known_queues()
        up = GaugeMetricFamily("mri_broker_up", "1 when the broker answered this scrape.")
        try:
            depths = broker.queue_depths(queues)
        except broker.BrokerUnavailable:
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
            "mri_job_failures", "Failed jobs by failure code.", labels=["reason"]
        )
        counts = dict(
            Job.objects.filter(status=Job.Status.FAILED)
            .values_list("failure_code")
            .annotate(n=Count("pk"))
            .order_by()
        )
        for code in FailureCode:
            family.add_metric([code.value], counts.get(code.value, 0))
        return family


registry = CollectorRegistry(auto_describe=False)
registry.register(JobCollector())
