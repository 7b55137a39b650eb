"""``cninfra_kafka_*``: the status events' backlog, read at scrape time."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from .events import StatusEvents


class KafkaCollector(Collector):
    """What the status events (``status-topic``) wrote, hold and dropped."""

    def __init__(self, events: StatusEvents) -> None:
        self._events = events

    def describe(self) -> Iterable[Metric]:
        return list(self._families())

    def collect(self) -> Iterable[Metric]:
        sent, dropped, waiting, limit = families = self._families()
        events = self._events
        sent.add_metric([], events.sent)
        dropped.add_metric([], events.dropped)
        waiting.add_metric([], events.waiting)
        limit.add_metric([], events.limit)
        return list(families)

    @staticmethod
    def _families() -> tuple[CounterMetricFamily, CounterMetricFamily, GaugeMetricFamily,
                             GaugeMetricFamily]:
        return (
            CounterMetricFamily("cninfra_kafka_status_events_sent",
                                "Status event records written to the status topic."),
            CounterMetricFamily("cninfra_kafka_status_events_dropped",
                                "Status event records dropped, oldest first, because the "
                                "backlog was full while Kafka could not be written to."),
            GaugeMetricFamily("cninfra_kafka_status_events_backlog",
                              "Status event records waiting to be written."),
            GaugeMetricFamily("cninfra_kafka_status_events_backlog_limit",
                              "The backlog's size (status-backlog): beyond it the oldest "
                              "records are dropped."),
        )
