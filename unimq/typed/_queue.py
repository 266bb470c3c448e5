"""Typed queues: pydantic values in, pydantic values out, over any backend."""

from __future__ import annotations

import base64
import json
import logging
import threading
import time
import types
from collections.abc import Callable, Iterable, Mapping
from typing import (
    TYPE_CHECKING,
    Annotated,
    Any,
    Generic,
    TypeVar,
    Union,
    cast,
    get_args,
    get_origin,
)

from pydantic import BaseModel, TypeAdapter, ValidationError

from unimq._errors import DecodeError, MessageTooLarge, QueueEmpty, UnsupportedOperation
from unimq._message import Capability, Message
from unimq._waiting import Deadline
from unimq.typed._codecs import Codec, JSONCodec

if TYPE_CHECKING:
    from unimq._queue import Queue

__all__ = ["TypedQueue"]

M = TypeVar("M")
logger = logging.getLogger("unimq.typed")

_clock = time.monotonic


class _DeadLetterLog:
    """Rate-limited WARNING records for dead letters, one state per (source, dlq)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        #: (source, dlq) -> (time of the last WARNING, dead letters not reported since)
        self._state: dict[tuple[str, str], tuple[float, int]] = {}

    def record(self, source: str, dlq: str, reason: str, interval: float) -> None:
        now = _clock()
        key = (source, dlq)
        with self._lock:
            state = self._state.get(key)
            due = state is None or now - state[0] >= interval
            pending = 0 if state is None else state[1]
            self._state[key] = (now, 0) if due or state is None else (state[0], pending + 1)
        if not due:
            logger.debug("dead-lettered an undecodable message from %s to %s", source, dlq)
            return
        more = (
            f"; {pending} more since the last report (reported at most every {interval:g} s)"
            if pending
            else ""
        )
        logger.warning(
            "dead-lettered an undecodable message from %s to %s: %s%s", source, dlq, reason, more
        )


_dead_letter_log = _DeadLetterLog()


def _make_codec(tp: Any, codec: str | Codec[Any], queue: Queue) -> Codec[Any]:
    if not isinstance(codec, str):
        return codec
    if codec == "json":
        return JSONCodec(tp)
    if codec == "cstruct":
        from unimq.cstruct import CStructCodec

        return CStructCodec(tp, mtype_prefix=bool(queue.capabilities & Capability.MTYPE))
    raise ValueError(f"unknown codec {codec!r}; use 'json', 'cstruct' or a Codec instance")


class TypedQueue(Generic[M]):
    """A view of a :class:`unimq.Queue` that sends and receives typed values.

    Made by :meth:`unimq.Queue.typed`. With one type, every message carries
    that type. With a mapping ``{mtype: Model}`` (SysV and memory), each model
    travels with its own message type: ``send`` picks the mtype from the
    value's class and ``receive(Model)`` selects that mtype.

    Delivery is at most once: a message that does not decode has already left
    the queue; :class:`unimq.DecodeError` carries it (``.message``), or, with
    ``dead_letter``, it is forwarded there and the receive goes on.
    """

    #: Seconds between two WARNING records (logger ``unimq.typed``) about dead
    #: letters from one queue to one dead-letter queue; those in between are
    #: logged at DEBUG and counted, and the next WARNING says how many.
    dead_letter_log_interval: float = 60.0

    def __init__(
        self,
        queue: Queue,
        model: type[M] | Mapping[int, type[BaseModel]] | Any,
        *,
        codec: str | Codec[Any] = "json",
        mtype: int | None = None,
        dead_letter: str | Queue | None = None,
    ) -> None:
        self.queue = queue
        self._by_mtype: dict[int, Codec[Any]] = {}
        self._mtype_of: dict[type, int] = {}
        self._models: dict[int, Any] = {}
        self._accepts: dict[int, Callable[[object], str | None]] = {}
        #: How many undecodable messages this view forwarded to its dead-letter queue.
        self.dead_lettered = 0
        if isinstance(model, Mapping):
            if not queue.capabilities & Capability.MTYPE:
                raise UnsupportedOperation(
                    f"{queue.scheme}:// queues have no message types, so a mapping of models "
                    "cannot be told apart by mtype; bind a discriminated union instead, e.g. "
                    "q.typed(Annotated[Odd | Even, Field(discriminator='kind')])",
                    url=queue.url,
                )
            if mtype is not None:
                raise ValueError("mtype= goes with a single model; the mapping gives each one")
            for key, tp in model.items():
                self._bind(int(key), tp, codec)
            self._single: Codec[Any] | None = None
            self._default_mtype = 0
        else:
            bound = 1 if mtype is None else mtype
            if bound != 1 and not queue.capabilities & Capability.MTYPE:
                raise UnsupportedOperation(
                    f"{queue.scheme}:// queues have no message types (mtype={mtype})",
                    url=queue.url,
                )
            self._single = self._bind(bound, model, codec)
            self._default_mtype = bound
        self._select = 0 if self._single is not None and mtype is None else self._default_mtype
        self._dead_letter = dead_letter
        self._dlq: Queue | None = None

    def _bind(self, mtype: int, tp: Any, codec: str | Codec[Any]) -> Codec[Any]:
        made = _make_codec(tp, codec, self.queue)
        self._by_mtype[mtype] = made
        self._models[mtype] = tp
        self._accepts[mtype] = _instance_check(tp)
        if isinstance(tp, type):
            self._mtype_of[tp] = mtype
        return made

    # ------------------------------------------------------------------ sending

    def send(
        self,
        value: M,
        *,
        mtype: int | None = None,
        priority: int = 0,
        timeout: float | None = None,
    ) -> None:
        """Encode ``value`` and send it.

        ``value`` must be an instance of the bound model (of one of the mapped
        models, with a mapping): a dict, a JSON string or another model is a
        ``TypeError``, never sent as whatever it happens to serialize to.
        Validate such data into the model first (``Order.model_validate(d)``).
        For a bound type that is not a class (a union, ``list[Order]``), the
        value must pass pydantic's strict validation of that type.

        :raises TypeError: if ``value`` is not an instance of the bound model.
        :raises ValueError: if the value cannot be encoded faithfully: a
            required field is missing (``model_construct``), a field holds the
            wrong type, a NaN or infinity for JSON, a string too long for (or
            holding a NUL in) its C field; or ``mtype`` differs from the one a
            mapping binds to the value's model.
        :raises MessageTooLarge: if the encoded value is larger than the queue allows.
        Otherwise as :meth:`unimq.Queue.send`.
        """
        data, mtype = self._payload(value, mtype)
        self.queue.send(data, mtype=mtype, priority=priority, timeout=timeout)

    def _payload(self, value: object, mtype: int | None) -> tuple[bytes, int]:
        """The checked encoding of one value and the mtype it travels with (the
        sync and async :meth:`send` share it)."""
        tag = self._tag_of(value)
        if self._single is None and mtype is not None and mtype != tag:
            raise ValueError(
                f"{type(value).__name__} travels with mtype {tag} on this typed queue; "
                f"sending it with mtype={mtype} would make receivers decode it as another "
                "model: leave mtype out"
            )
        return self._encode(value, tag), tag if mtype is None else mtype

    def send_many(self, values: Iterable[M], *, timeout: float | None = None) -> int:
        """Encode and send several values in order, with one deadline for the batch.

        Every value is checked and encoded before the first is sent, so a bad
        value sends nothing (same errors as :meth:`send`). If the deadline
        passes after k values, :class:`unimq.QueueFull` is raised with
        ``.sent == k``; see :meth:`unimq.Queue.send_many`.
        """
        return self.queue.send_many(self._batch(values), timeout=timeout)

    def _batch(self, values: Iterable[Any]) -> list[bytes] | list[Message]:
        """The checked encodings of a batch (the sync and async send_many share it)."""
        values = list(values)
        if self._single is not None and isinstance(self._single, JSONCodec):
            batch = self._encode_batch(values, self._single)
            if batch is not None:
                return batch
        tags = [self._tag_of(value) for value in values]
        return [Message(self._encode(v, t), t, 0) for v, t in zip(values, tags, strict=True)]

    def _encode_batch(
        self, values: list[Any], codec: JSONCodec[Any]
    ) -> list[bytes] | list[Message] | None:
        """The batch's payloads with one pydantic-core call for the whole batch
        (measured ~2x faster than value by value); None when a value fails a
        check, so that the value-by-value path raises its exact error."""
        tag = self._default_mtype
        accepts = self._accepts[tag]
        for value in values:
            if accepts(value) is not None:
                return None
        datas = codec.encode_many(values)
        limit = self.queue.max_message_size
        for data in datas:
            if len(data) > limit:
                return None
        # Bytes items travel with mtype 1 and priority 0: the same as Message(data, 1, 0).
        return datas if tag == 1 else [Message(data, tag, 0) for data in datas]

    def _tag_of(self, value: object) -> int:
        return self._default_mtype if self._single is not None else self._mtype_for(value)

    def _encode(self, value: object, tag: int) -> bytes:
        """The checked encoding of one value travelling with mtype ``tag``."""
        problem = self._accepts[tag](value)
        if problem is not None:
            raise TypeError(problem)
        codec = self._single if self._single is not None else self._by_mtype[tag]
        data = codec.encode(value)
        if len(data) > self.queue.max_message_size:
            raise MessageTooLarge(
                f"{type(value).__name__} encodes to {len(data)} bytes, more than the "
                f"{self.queue.max_message_size} bytes {self.queue.url} accepts; send a smaller "
                "value or use a queue with a larger max_message_size",
                size=len(data),
                limit=self.queue.max_message_size,
                url=self.queue.url,
            )
        return data

    def _mtype_for(self, value: object) -> int:
        tag = self._mtype_of.get(type(value))
        if tag is None:
            for tp, candidate in self._mtype_of.items():
                if isinstance(value, tp):
                    return candidate
            bound = ", ".join(f"{t}: {_type_name(m)}" for t, m in self._models.items())
            raise TypeError(
                f"{type(value).__name__} is not one of the models bound to this typed queue "
                f"({{{bound}}}){_hint(value, None)}"
            )
        return tag

    # ------------------------------------------------------------------ receiving

    def receive(self, model: type[M] | None = None, *, timeout: float | None = None) -> M:
        """Receive and decode one value.

        :param model: with a mapping binding, receive only this model (its mtype).
        :raises DecodeError: if the payload does not decode (and no dead-letter
            queue is set); ``.message`` holds the raw message.
        :raises QueueEmpty: if nothing (decodable) arrived in time.
        """
        return self.receive_message(model, timeout=timeout)[0]

    def receive_message(
        self, model: type[M] | None = None, *, timeout: float | None = None
    ) -> tuple[M, Message]:
        """Like :meth:`receive`, also returning the raw :class:`unimq.Message`."""
        select = self._select if model is None else self._mtype_for_model(model)
        if self._dead_letter is None:
            msg = self.queue.receive(mtype=select, timeout=timeout)
            return self._decode(msg), msg
        deadline = Deadline(timeout)
        forwarded = 0
        while True:
            # After a dead letter, messages already queued are still taken even once
            # the deadline has passed (remaining() is then 0: take, never wait).
            try:
                msg = self.queue.receive(mtype=select, timeout=deadline.remaining())
            except QueueEmpty:
                if not forwarded:
                    raise
                raise QueueEmpty(
                    f"no decodable message arrived in {self.queue.url} within {timeout} s; "
                    f"{forwarded} undecodable one(s) went to the dead-letter queue",
                    url=self.queue.url,
                ) from None
            try:
                return self._decode(msg), msg
            except DecodeError as exc:
                self._forward(exc)
                forwarded += 1

    def receive_many(
        self, max_messages: int, model: type[M] | None = None, *, timeout: float | None = None
    ) -> list[M]:
        """Wait (per ``timeout``) for the first value, then take what is already
        queued, up to ``max_messages``, and decode them in order.

        Nothing is lost to a payload that does not decode: with a dead-letter
        queue it goes there and the others are returned (if every message
        taken was undecodable, more are taken without waiting, as
        :meth:`receive` does); without one, :class:`unimq.DecodeError` is
        raised for the first bad payload, with ``.message`` that message and
        ``.received`` every raw message of the batch, in order.
        """
        select = self._select if model is None else self._mtype_for_model(model)
        decode_all = self._batch_decoder()
        if decode_all is not None:
            return decode_all(self.queue.receive_many(max_messages, mtype=select, timeout=timeout))
        deadline = Deadline(timeout)
        while True:
            msgs = self.queue.receive_many(max_messages, mtype=select, timeout=deadline.remaining())
            values = self._decode_batch(msgs)
            if values:
                return values

    def _batch_decoder(self) -> Callable[[list[Message]], list[M]] | None:
        """With one JSON model and no dead-letter queue (the common case), a
        function decoding a whole batch with pydantic-core and no Python frame
        per message; a failure decodes the batch again message by message,
        which raises the first bad payload's DecodeError (JSON decoding has no
        side effects). None otherwise."""
        single = self._single
        if self._dead_letter is not None or not isinstance(single, JSONCodec):
            return None
        decode = single.decode

        def decode_all(msgs: list[Message]) -> list[M]:
            try:
                return list(map(decode, [msg[0] for msg in msgs]))
            except ValueError:
                return self._decode_batch(msgs)

        return decode_all

    def _split_batch(self, msgs: list[Message]) -> tuple[list[M], list[DecodeError]]:
        """The batch's values in order, and the errors of the undecodable
        messages (for the dead-letter queue); without a dead-letter queue the
        first error is raised, with ``.received`` the whole batch."""
        values: list[M] = []
        bad: list[DecodeError] = []
        for msg in msgs:
            try:
                values.append(self._decode(msg))
            except DecodeError as exc:
                if self._dead_letter is None:
                    exc.received = msgs
                    raise
                bad.append(exc)
        return values, bad

    def _decode_batch(self, msgs: list[Message]) -> list[M]:
        """The batch's values in order; undecodable messages go to the
        dead-letter queue (see _split_batch)."""
        values, bad = self._split_batch(msgs)
        for exc in bad:
            self._forward(exc)
        return values

    def _mtype_for_model(self, model: type[M]) -> int:
        tag = self._mtype_of.get(cast(type, model))
        if tag is None:
            raise TypeError(f"{_type_name(model)} is not bound to this typed queue")
        return tag

    def _decode(self, msg: Message) -> M:
        codec = self._single or self._by_mtype.get(msg.mtype)
        if codec is None:
            raise DecodeError(
                f"message of mtype {msg.mtype} from {self.queue.url} has no model bound "
                f"(bound: {sorted(self._by_mtype)})",
                message=msg,
                url=self.queue.url,
            )
        try:
            return cast(M, codec.decode(msg.data))
        except ValueError as exc:
            raise DecodeError(
                f"a message from {self.queue.url} (mtype {msg.mtype}, priority {msg.priority}, "
                f"{len(msg.data)} bytes) does not decode: {_first_line(exc)}; the raw message "
                "is in this error's .message",
                message=msg,
                url=self.queue.url,
            ) from exc

    def _forward(self, error: DecodeError) -> None:
        """Send an undecodable message to the dead-letter queue, with the reason."""
        import unimq

        msg = error.message
        assert msg is not None
        if self._dlq is None:
            target = self._dead_letter
            self._dlq = unimq.open(target) if isinstance(target, str) else target
        dlq = self._dlq
        assert dlq is not None
        envelope = json.dumps(
            {
                "reason": str(error.__cause__ or error),
                "source": self.queue.url,
                "mtype": msg.mtype,
                "priority": msg.priority,
                "data": base64.b64encode(msg.data).decode("ascii"),
            }
        ).encode()
        caps = dlq.capabilities
        try:
            dlq.send(
                envelope,
                mtype=msg.mtype if caps & Capability.MTYPE else 1,
                priority=msg.priority if caps & Capability.PRIORITY else 0,
                timeout=5,
            )
        except Exception as exc:
            raise error from exc  # the DecodeError still carries the message: nothing lost
        self.dead_lettered += 1
        _dead_letter_log.record(
            self.queue.url,
            dlq.url,
            _first_line(error.__cause__ or error),
            self.dead_letter_log_interval,
        )

    # ------------------------------------------------------------------ queue.Queue spellings

    def put(self, item: M, block: bool = True, timeout: float | None = None) -> None:
        """Send ``item`` (see :meth:`unimq.Queue.put` for block/timeout)."""
        self.send(item, timeout=0.0 if not block else timeout)

    def get(self, block: bool = True, timeout: float | None = None) -> M:
        """Receive a value (see :meth:`unimq.Queue.get` for block/timeout)."""
        return self.receive(timeout=0.0 if not block else timeout)

    def put_nowait(self, item: M) -> None:
        """``send(item, timeout=0)``, as :meth:`queue.Queue.put_nowait`."""
        self.put(item, block=False)

    def get_nowait(self) -> M:
        """``receive(timeout=0)``, as :meth:`queue.Queue.get_nowait`."""
        return self.get(block=False)

    # ------------------------------------------------------------------ schema

    def json_schema(self) -> dict[str, Any]:
        """The JSON Schema of the bound type, or ``{"mtypes": {mtype: schema}}`` for a mapping."""
        if self._single is not None:
            return self._single.json_schema()
        return {"mtypes": {str(t): c.json_schema() for t, c in sorted(self._by_mtype.items())}}

    def close(self) -> None:
        """Close the underlying queue handle (and a dead-letter queue opened from a URL)."""
        self.queue.close()
        if self._dlq is not None and isinstance(self._dead_letter, str):
            self._dlq.close()

    def __enter__(self) -> TypedQueue[M]:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        names = {t: getattr(m, "__name__", repr(m)) for t, m in self._models.items()}
        shown = next(iter(names.values())) if self._single is not None else names
        return f"<unimq.TypedQueue {self.queue.url!r} model={shown}>"


def _type_name(tp: Any) -> str:
    return tp.__name__ if isinstance(tp, type) else repr(tp)


def _hint(value: object, model: Any) -> str:
    name = model.__name__ if isinstance(model, type) else "the model"
    if isinstance(value, Mapping):
        return (
            f"; a dict is not sent as it is: validate it into the model first, "
            f"{name}.model_validate(data)"
        )
    if isinstance(value, str | bytes | bytearray):
        return (
            f"; to send JSON text, validate it into the model first, "
            f"{name}.model_validate_json(text), or send raw bytes on the queue itself"
        )
    return ""


def _member_classes(tp: Any) -> tuple[type, ...] | None:
    """The classes a union (``A | B``, ``Optional[A]``, ``Annotated[A | B, ...]``)
    is made of, or None if ``tp`` is not a union of plain classes."""
    origin = get_origin(tp)
    if origin is Annotated:
        return _member_classes(get_args(tp)[0])
    if origin is Union or origin is types.UnionType:
        found: list[type] = []
        for arg in get_args(tp):
            members = _member_classes(arg)
            if members is None:
                return None
            found += members
        return tuple(found)
    if tp is None:
        return (type(None),)
    if isinstance(tp, type) and origin is None:
        return (tp,)
    return None


def _instance_check(tp: Any) -> Callable[[object], str | None]:
    """A function that says why a value is not "an instance of" ``tp`` (None if it is).

    A pydantic model: an instance of it (subclasses included) with every
    required field set. Any other class, or a union of classes (``A | B``,
    also inside ``Annotated``): an instance of one of them. Any other type
    (``list[Order]``, ``dict[str, int]``): a value pydantic's strict
    validation of ``tp`` accepts; models inside are checked when encoding.
    """
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        required = {name for name, f in tp.model_fields.items() if f.is_required()}
        count = len(tp.model_fields)

        def check_model(value: object) -> str | None:
            if not isinstance(value, tp):
                return (
                    f"this typed queue sends {tp.__name__} values, not "
                    f"{type(value).__name__}{_hint(value, tp)}"
                )
            if len(value.__dict__) < count:
                missing = sorted(required - value.__dict__.keys())
                if missing:
                    raise ValueError(
                        f"{tp.__name__} value lacks required field(s) {', '.join(missing)} "
                        "(built with model_construct()?); the receiver could not decode it"
                    )
            return None

        return check_model
    classes = _member_classes(tp)
    if classes is not None:
        names = " | ".join(c.__name__ for c in classes)

        def check_union(value: object) -> str | None:
            if isinstance(value, classes):
                return None
            return (
                f"{type(value).__name__} value is not a {names}: this typed queue sends "
                f"instances of {names}{_hint(value, None)}"
            )

        return check_union
    adapter: TypeAdapter[Any] = TypeAdapter(tp)

    def check_strict(value: object) -> str | None:
        try:
            adapter.validate_python(value, strict=True)
        except ValidationError as exc:
            return (
                f"{type(value).__name__} value is not a {tp!r}: {_first_line(exc)}"
                f"{_hint(value, None)}"
            )
        return None

    return check_strict


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return " / ".join(line.strip() for line in text[:3])
