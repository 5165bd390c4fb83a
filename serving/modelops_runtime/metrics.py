"""Prometheus metrics. Labelled children are cached so the hot path does one lookup."""

from __future__ import annotations

import functools

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

REGISTRY = CollectorRegistry(auto_describe=True)

REQUESTS = Counter("modelops_requests_total", "Inference requests by outcome.",
                   ["model", "version", "code"], registry=REGISTRY)
LATENCY = Histogram("modelops_request_duration_seconds", "Inference latency, server side.",
                    ["model", "version"], registry=REGISTRY,
                    buckets=(.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10))
BATCH_REQUESTS = Histogram("modelops_batch_requests", "Requests predicted together in one call "
                           "(adaptive batching).", ["model", "version"], registry=REGISTRY,
                           buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256))
IN_FLIGHT = Gauge("modelops_inflight_requests", "Inference requests being served.", ["model"],
                  registry=REGISTRY)
READY = Gauge("modelops_model_ready", "1 when the model version is loaded and serving.",
              ["model", "version"], registry=REGISTRY)
LOAD_SECONDS = Gauge("modelops_model_load_seconds", "Time the last load of a version took.",
                     ["model", "version"], registry=REGISTRY)
MODEL_LOADS = Counter("modelops_model_loads_total",
                      "Loads of a pool member on demand, by why it was not loaded: never "
                      "before (first), made room for another (evicted), or idle (idle).",
                      ["model", "reason"], registry=REGISTRY)
MODEL_EVICTIONS = Counter("modelops_model_evictions_total",
                          "Pool members unloaded: to make room (memory) or idle (idle).",
                          ["model", "reason"], registry=REGISTRY)
POOL_LOADED_BYTES = Gauge("modelops_pool_loaded_bytes",
                          "Memory the loaded members of an on-demand pool are counted at.",
                          registry=REGISTRY)
POOL_BUDGET_BYTES = Gauge("modelops_pool_memory_budget_bytes",
                          "What an on-demand pool's members may take: its memory request "
                          "less what the server itself took before loading any.",
                          registry=REGISTRY)
POOL_LOADED = Gauge("modelops_pool_loaded_models", "Members of an on-demand pool loaded now.",
                    registry=REGISTRY)
LOG_QUEUE = Gauge("modelops_prediction_log_queue_depth",
                  "Prediction records waiting to be written.", registry=REGISTRY)
LOG_DROPPED = Counter("modelops_prediction_log_dropped_total",
                      "Prediction records dropped because the log queue was full.",
                      registry=REGISTRY)
LOG_WRITTEN = Counter("modelops_prediction_log_records_total",
                      "Prediction records written to the shared volume.", registry=REGISTRY)
LOG_UNWRITABLE = Counter("modelops_prediction_log_unwritable_total",
                         "Prediction records the writer could not write, by reason.",
                         ["reason"], registry=REGISTRY)
LOG_WRITER_UP = Gauge("modelops_prediction_log_writer_up",
                      "1 while the prediction-log writer runs and its last write succeeded.",
                      registry=REGISTRY)
GRPC_RESPONSES = Counter("modelops_grpc_responses_total",
                         "Every gRPC response by status code.", ["code"], registry=REGISTRY)
RESPONSES = Counter("modelops_http_responses_total",
                    "Every HTTP response by status code, whatever the path (errors that never "
                    "reach a model included).", ["code"], registry=REGISTRY)
ASYNC_SUBMITTED = Counter("modelops_async_submitted_total",
                          "Asynchronous requests accepted into a queue.", ["model", "version"],
                          registry=REGISTRY)
ASYNC_COMPLETED = Counter("modelops_async_completed_total",
                          "Asynchronous requests ended, by final status.",
                          ["model", "version", "status"], registry=REGISTRY)
ASYNC_QUEUE_SECONDS = Histogram("modelops_async_queue_seconds",
                                "From submit to the start of an attempt.", ["model"],
                                registry=REGISTRY,
                                buckets=(.001, .005, .01, .05, .1, .5, 1, 5, 10, 60, 300, 3600))
ASYNC_END_TO_END = Histogram("modelops_async_end_to_end_seconds",
                             "From submit to the result.", ["model"], registry=REGISTRY,
                             buckets=(.001, .005, .01, .05, .1, .5, 1, 5, 10, 60, 300, 3600))
ASYNC_DUPLICATES = Counter("modelops_async_duplicates_suppressed_total",
                           "Deliveries of a request that already had its result (a "
                           "redelivery after a crash): no second result.", ["model"],
                           registry=REGISTRY)
BROKER_UP = Gauge("modelops_async_broker_up",
                  "1 while this server is connected to its broker (asynchronous requests).",
                  registry=None)  # registered by servers that have a broker (register_async)
ASYNC_CONSUMERS = Gauge("modelops_async_consumers",
                        "Queues this server consumes now (a version's requests and its dead "
                        "letters), 0 while its broker is unreachable.", registry=None)
ASYNC_IN_HAND = Gauge("modelops_async_in_hand",
                      "Queued requests this server has taken and not yet acknowledged.",
                      registry=None)
ASYNC_QUEUE_DEPTH = Gauge("modelops_async_queue_depth",
                          "Messages ready in a version's queue, as the broker counts them: "
                          "requests waiting (queue=\"waiting\") and dead letters not yet "
                          "answered (queue=\"dead\"). Every replica reports the same queue.",
                          ["model", "version", "queue"], registry=None)
ASYNC_QUEUE_LIMIT = Gauge("modelops_async_queue_limit",
                          "The spec's async.maxQueued: past it a submit gets 503.",
                          ["model", "version"], registry=None)
ASYNC_DEAD_LETTERS = Counter("modelops_async_dead_letters_total",
                             "Requests the broker dead-lettered, by its reason.",
                             ["model", "reason"], registry=REGISTRY)


@functools.cache
def register_async() -> None:
    """The broker's gauges, only on a server that has one: elsewhere a 0 would read as
    "broker down" (AsyncBrokerUnreachable)."""
    for gauge in (BROKER_UP, ASYNC_CONSUMERS, ASYNC_IN_HAND, ASYNC_QUEUE_DEPTH,
                  ASYNC_QUEUE_LIMIT):
        REGISTRY.register(gauge)


@functools.lru_cache(maxsize=4096)
def requests(model: str, version: str, code: str) -> Counter:
    return REQUESTS.labels(model, version, code)


@functools.lru_cache(maxsize=4096)
def latency(model: str, version: str) -> Histogram:
    return LATENCY.labels(model, version)


@functools.lru_cache(maxsize=4096)
def batch_size(model: str, version: str) -> Histogram:
    return BATCH_REQUESTS.labels(model, version)


@functools.lru_cache(maxsize=4096)
def in_flight(model: str) -> Gauge:
    return IN_FLIGHT.labels(model)


@functools.lru_cache(maxsize=64)
def response(code: str) -> Counter:
    return RESPONSES.labels(code)


@functools.lru_cache(maxsize=64)
def grpc_response(code: str) -> Counter:
    return GRPC_RESPONSES.labels(code)
