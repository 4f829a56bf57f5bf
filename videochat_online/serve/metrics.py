"""`GET /metrics`: the scheduler's figures in Prometheus' text format, read when scraped."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, SummaryMetricFamily

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class SchedulerCollector:
    def __init__(self, scheduler):
        self.scheduler = scheduler

    def collect(self):
        s = self.scheduler
        with s.lock:
            sessions = list(s.sessions.values())
        stats = s.stats

        def gauge(name, doc, value):
            return GaugeMetricFamily(f"videochat_{name}", doc, value=value)

        def counter(name, doc, value):
            return CounterMetricFamily(f"videochat_{name}", doc, value=value)

        yield gauge("sessions", "live sessions open", len(sessions))
        yield counter("frames_encoded", "frames through the vision tower", stats.frames_encoded)
        yield counter("frames_dropped", "frames dropped because the model fell behind",
                      stats.frames_dropped_closed + sum(x.frames.dropped for x in sessions))
        yield counter("encode_batches", "vision-tower batches", stats.batches)
        yield gauge("frames_waiting", "frames waiting for the vision tower, all sessions",
                    sum(x.frames.waiting + len(x.held) for x in sessions))
        yield gauge("questions_waiting", "questions waiting or being answered, all sessions",
                    sum(x.waiting_questions for x in sessions))
        yield gauge("memory_bytes", "feature bytes held in the sessions' memories",
                    sum(x.memory_bytes() for x in sessions))
        yield counter("answers", "questions answered", stats.answers)
        yield counter("tokens_generated", "reply tokens generated (answers and watch polls)", stats.tokens)
        yield gauge("tokens_per_second", "decoding speed of a reply, over the latest replies",
                    stats.tokens_per_second())
        ttft = SummaryMetricFamily("videochat_time_to_first_token_seconds",
                                   "seconds from a question's arrival to its first token, the latest answers",
                                   count_value=len(stats.ttft), sum_value=sum(stats.ttft))
        yield ttft
        quantiles = stats.ttft_quantiles()
        if quantiles is not None:
            yield gauge("time_to_first_token_median_seconds", "median of the latest answers", quantiles[0])
            yield gauge("time_to_first_token_p95_seconds", "95th percentile of the latest answers", quantiles[1])


def metrics_text(registry: CollectorRegistry) -> bytes:
    return generate_latest(registry)


def registry_for(scheduler) -> CollectorRegistry:
    registry = CollectorRegistry()
    registry.register(SchedulerCollector(scheduler))
    return registry
