"""Traces: the one module that imports OpenTelemetry, and a facade that costs nothing while traces are off.

Traces are on only when the `otel` extra is installed (`pip install altinn-receiver[otel]`) and the environment asks
for them: `OTEL_TRACES_EXPORTER` (other than `none`) or an `OTEL_EXPORTER_OTLP_…ENDPOINT` is set, and
`OTEL_SDK_DISABLED` is not `true`. Everything else (endpoint, headers, service name, sampler, batching) is the SDK's
own reading of the standard `OTEL_*` variables. docs/observability.md lists the spans and their attributes.

The rest of the receiver sees only this facade (`span`, `traced`, `client_span`, `started`, `within`, `traceparent`,
`log_ids`, `Span`); while traces are off `span` hands out one shared object whose methods do nothing, and `on()` lets
the webhook skip even that.

Attributes are what the code puts there, never a URL, a request body or an exception's message: a URL's query holds
the webhook's `?code=` (Altinn's subscription endpoint) and bodies hold tokens. A failure is recorded as the error's
type and a reason the caller has redacted.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import threading
from collections.abc import Awaitable, Callable, Coroutine, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from typing import Any, ParamSpec, TypeVar

from receiver import __version__
from receiver.observability.logs import log_context

log = logging.getLogger(__name__)

Attributes = Mapping[str, str | int | float | bool]
KINDS = ("internal", "server", "client", "consumer", "producer")
EXTRA = "pip install 'altinn-receiver[otel]'"
STOP_TIMEOUT = 5.0
"""Seconds `stop` waits for the spans still buffered to be exported."""
_TRACEPARENT = re.compile(r"00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})")
P = ParamSpec("P")
T = TypeVar("T")


class Span:
    """A span as the receiver's code sees it. This base class is the span of traces that are off: it does nothing."""

    __slots__ = ()

    def set(self, attributes: Attributes) -> None:
        """Add attributes (`http.response.status_code`, `altinn_receiver.outcome`, …)."""

    def fail(self, reason: str, error_type: str = "") -> None:
        """Mark the span as failed: `reason` (already redacted) as its status, `error_type` as `error.type`."""

    def end(self) -> None:
        """End a span from `client_span` (a span from `span` ends with its `with` block)."""

    @property
    def traceparent(self) -> str:
        """The W3C `traceparent` of this span; "" when it is not recorded."""
        return ""


NO_SPAN = Span()


class _NoSpanContext(AbstractContextManager[Span]):
    def __enter__(self) -> Span:
        return NO_SPAN

    def __exit__(self, *exc: object) -> None:
        return None


_NO_SPAN_CONTEXT = _NoSpanContext()
_tracing: _Tracing | None = None


def on() -> bool:
    """Whether spans are recorded (the webhook checks this before doing anything for them)."""
    return _tracing is not None


def span(
    name: str, *, kind: str = "internal", attributes: Attributes | None = None, links: Iterable[str] = ()
) -> AbstractContextManager[Span]:
    """A span around the `with` block, current inside it (spans started inside are its children, log lines carry its
    `trace_id` and `span_id`); `links` are `traceparent`s of related spans in other traces. An exception leaving the
    block marks the span failed with the exception's type (never its message)."""
    if _tracing is None:
        return _NO_SPAN_CONTEXT
    return _tracing.span(name, kind, attributes, links)


def traced(name: str) -> Callable[[Callable[P, Awaitable[T]]], Callable[P, Coroutine[Any, Any, T]]]:
    """Decorate an async function: each call is a span called `name`."""

    def decorate(function: Callable[P, Awaitable[T]]) -> Callable[P, Coroutine[Any, Any, T]]:
        @functools.wraps(function)
        async def call(*args: P.args, **kwargs: P.kwargs) -> T:
            with span(name):
                return await function(*args, **kwargs)

        return call

    return decorate


def client_span(name: str, attributes: Attributes) -> Span:
    """A started client span, child of the current one, that is not made current; `end()` ends it (the Altinn client
    starts one when httpx sends a request and ends it when the answer's headers arrive)."""
    if _tracing is None:
        return NO_SPAN
    return _tracing.client_span(name, attributes)


def started(name: str, attributes: Attributes | None = None) -> Span:
    """A started internal span, child of the current one, that is not made current: `within(span)` makes it current
    for a block, in any task, and `end()` ends it. For one piece of work that runs in more than one task (a catch-up
    page is fetched in one and stored in another)."""
    if _tracing is None:
        return NO_SPAN
    return _tracing.started(name, attributes)


def within(span: Span) -> AbstractContextManager[object]:
    """Make `span` (from `started`) current inside the block; an exception leaving it marks the span failed with the
    exception's type. The span does not end with the block."""
    if _tracing is None or not isinstance(span, _OtelSpan):
        return _NO_SPAN_CONTEXT
    return _tracing.within(span)


def traceparent() -> str:
    """The W3C `traceparent` of the current span, to store with an event; "" when none is recorded."""
    if _tracing is None:
        return ""
    return _tracing.current_traceparent()


def log_ids() -> dict[str, str]:
    """`trace_id` and `span_id` of the current span, for a line written after it has ended (the access line: the
    webhook takes them while its span is current); {} when none is recorded."""
    if _tracing is None:
        return {}
    return _ids(_tracing.trace.get_current_span().get_span_context())


# --- switching traces on and off ---


def wanted(environ: Mapping[str, str]) -> bool:
    """Whether the environment asks for traces (whether or not the extra is installed)."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return False
    exporter = environ.get("OTEL_TRACES_EXPORTER", "").strip().lower()
    if exporter:
        return exporter != "none"
    return any(
        key.startswith("OTEL_EXPORTER_OTLP_") and key.endswith("ENDPOINT") and value.strip()
        for key, value in environ.items()
    )


def start_from_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Switch traces on when the environment asks for them and the extra is installed, with a log line either way
    (nothing at all when traces are not asked for). A problem (the extra missing, an unknown exporter) is a warning:
    the receiver runs without traces rather than not at all."""
    if not wanted(environ):
        return
    try:
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
    except ImportError:
        log.warning(f"OTEL_* variables ask for traces, but OpenTelemetry is not installed: {EXTRA}; traces are off")
        return
    try:
        exporters = [_exporter(name, environ) for name in _exporter_names(environ)]
    except LookupError as exc:
        log.warning(f"{exc}; traces are off")
        return
    provider = TracerProvider(resource=_resource(), shutdown_on_exit=False)  # `stop` does it, within a bound
    for exporter in exporters:
        provider.add_span_processor(BatchSpanProcessor(exporter))
    use(provider)
    log.info("traces on", extra={"exporters": _exporter_names(environ)})


def use(provider: Any) -> None:
    """Record spans with `provider`, an OpenTelemetry SDK `TracerProvider` (the tests pass one that keeps spans in
    memory). The OpenTelemetry global provider is left alone."""
    global _tracing
    _tracing = _Tracing(provider)


def stop(timeout: float = STOP_TIMEOUT) -> None:
    """Switch traces off and export what is buffered, waiting at most `timeout` seconds (at the end of `serve`: an
    unreachable collector must not hold up the exit until the orchestrator kills the process)."""
    global _tracing
    tracing, _tracing = _tracing, None
    if tracing is not None:
        flushing = threading.Thread(target=tracing.provider.shutdown, name="traces-shutdown", daemon=True)
        flushing.start()
        flushing.join(timeout)


def _exporter_names(environ: Mapping[str, str]) -> list[str]:
    names = [n.strip().lower() for n in environ.get("OTEL_TRACES_EXPORTER", "otlp").split(",") if n.strip()]
    return [n for n in names if n != "none"] or ["otlp"]


def _exporter(name: str, environ: Mapping[str, str]) -> Any:
    """The span exporter called `name` in OTEL_TRACES_EXPORTER: `otlp` over the protocol OTEL_EXPORTER_OTLP_(TRACES_)
    PROTOCOL names (http/protobuf unless grpc), `console`, or any exporter installed under that entry-point name."""
    from importlib.metadata import entry_points

    entry = name
    if name == "otlp":
        protocol = environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL") or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL", "")
        entry = "otlp_proto_grpc" if protocol.strip().lower() == "grpc" else "otlp_proto_http"
    found = [ep for ep in entry_points(group="opentelemetry_traces_exporter") if ep.name == entry]
    if not found:
        package = {"otlp_proto_grpc": "opentelemetry-exporter-otlp-proto-grpc"}.get(entry, f"an exporter named {entry}")
        raise LookupError(f"OTEL_TRACES_EXPORTER={name} needs {package}, which is not installed")
    return found[0].load()()


def _resource() -> Any:
    """The SDK's resource from OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES, `altinn-receiver` and this version
    where they say nothing."""
    from opentelemetry.sdk.resources import OTELResourceDetector, Resource

    from_environment = OTELResourceDetector().detect().attributes
    defaults = {"service.name": "altinn-receiver", "service.version": __version__}
    return Resource.create({key: value for key, value in defaults.items() if key not in from_environment})


def _parse_traceparent(value: str) -> tuple[int, int, int] | None:
    """(trace id, span id, flags) of a W3C traceparent written by `Span.traceparent`; None for anything else."""
    match = _TRACEPARENT.fullmatch(value)
    if match is None:
        return None
    trace_id, span_id, flags = (int(part, 16) for part in match.groups())
    return (trace_id, span_id, flags) if trace_id and span_id else None


class _Tracing:
    """Spans through an SDK TracerProvider."""

    def __init__(self, provider: Any) -> None:
        from opentelemetry import trace
        from opentelemetry.trace import Link, SpanContext, SpanKind, TraceFlags

        self.provider = provider
        self.tracer = provider.get_tracer("altinn-receiver", __version__)
        self.trace = trace
        self.kinds = {kind: getattr(SpanKind, kind.upper()) for kind in KINDS}
        self.link = Link
        self.span_context = SpanContext
        self.trace_flags = TraceFlags

    @contextmanager
    def span(self, name: str, kind: str, attributes: Attributes | None, links: Iterable[str]) -> Iterator[Span]:
        otel = self.tracer.start_span(
            name, kind=self.kinds[kind], attributes=attributes, links=self._links(links), record_exception=False
        )
        wrapped = _OtelSpan(otel)
        try:
            with self.within(wrapped):
                yield wrapped
        finally:
            otel.end()

    def started(self, name: str, attributes: Attributes | None) -> Span:
        return _OtelSpan(self.tracer.start_span(name, attributes=attributes, record_exception=False))

    @contextmanager
    def within(self, span: _OtelSpan) -> Iterator[_OtelSpan]:
        otel = span._span
        try:
            with (
                self.trace.use_span(otel, end_on_exit=False, record_exception=False, set_status_on_exception=False),
                log_context(**_ids(otel.get_span_context())),
            ):
                yield span
        except BaseException as exc:
            span.fail(type(exc).__name__, type(exc).__qualname__)
            raise

    def client_span(self, name: str, attributes: Attributes) -> Span:
        return _OtelSpan(self.tracer.start_span(name, kind=self.kinds["client"], attributes=attributes))

    def current_traceparent(self) -> str:
        return _traceparent_of(self.trace.get_current_span().get_span_context())

    def _links(self, traceparents: Iterable[str]) -> list[Any]:
        links = []
        for value in traceparents:
            parsed = _parse_traceparent(value)
            if parsed is not None:
                trace_id, span_id, flags = parsed
                context = self.span_context(trace_id, span_id, is_remote=True, trace_flags=self.trace_flags(flags))
                links.append(self.link(context))
        return links


def _ids(context: Any) -> dict[str, str]:
    if not context.is_valid or not context.trace_flags.sampled:
        return {}
    return {"trace_id": f"{context.trace_id:032x}", "span_id": f"{context.span_id:016x}"}


def _traceparent_of(context: Any) -> str:
    if not context.is_valid or not context.trace_flags.sampled:
        return ""
    return f"00-{context.trace_id:032x}-{context.span_id:016x}-{int(context.trace_flags):02x}"


class _OtelSpan(Span):
    __slots__ = ("_span",)

    def __init__(self, span: Any) -> None:
        self._span = span

    def set(self, attributes: Attributes) -> None:
        self._span.set_attributes(attributes)

    def fail(self, reason: str, error_type: str = "") -> None:
        from opentelemetry.trace import Status, StatusCode

        if error_type:
            self._span.set_attribute("error.type", error_type)
        self._span.set_status(Status(StatusCode.ERROR, reason))

    def end(self) -> None:
        self._span.end()

    @property
    def traceparent(self) -> str:
        return _traceparent_of(self._span.get_span_context())
