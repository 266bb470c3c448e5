"""The queue contract as a pytest kit, for anyone who writes a backend.

Subclass :class:`QueueContract` in a test module and give it a ``backend``
fixture that says how to make a fresh URL and what the backend can do;
pytest then runs every contract test against it::

    import pytest
    import unimq
    import unimq.testing


    class TestMyBackend(unimq.testing.QueueContract):
        @pytest.fixture
        def backend(self) -> unimq.testing.Backend:
            return unimq.testing.Backend(
                make_url=lambda: f"myq://{unimq.testing.unique_name()}",
                capabilities=unimq.Capability.PRIORITY,
            )

The contract is grouped by capability (:class:`LifecycleContract`,
:class:`SendReceiveContract`, :class:`PriorityContract`,
:class:`MtypeContract`, :class:`InterprocessContract`, :class:`HandleContract`,
:class:`BatchContract`,
:class:`SignalContract`); tests of a capability the backend does not have
are skipped, saying so. Every queue a test makes at a URL the kit handed out
is removed afterwards, and the test fails if one cannot be: queues the kit
did not hand out are never touched.

Needs pytest (``pip install 'unimq[testing]'``); ``import unimq`` alone never
imports it.
"""

from __future__ import annotations

import pytest

# Plain asserts in the contract modules report their values, as in test files.
pytest.register_assert_rewrite(
    "unimq.testing._batches",
    "unimq.testing._fixtures",
    "unimq.testing._handles",
    "unimq.testing._interprocess",
    "unimq.testing._lifecycle",
    "unimq.testing._messaging",
    "unimq.testing._mtype",
    "unimq.testing._priority",
    "unimq.testing._signals",
    "unimq.testing._waiting",
)

from unimq.testing._backend import (  # noqa: E402
    Backend,
    QueueLedger,
    exists,
    message_options,
    unique_name,
)
from unimq.testing._batches import BatchContract  # noqa: E402
from unimq.testing._fixtures import BackendFixtures, OpenQueue  # noqa: E402
from unimq.testing._handles import HandleContract  # noqa: E402
from unimq.testing._interprocess import InterprocessContract  # noqa: E402
from unimq.testing._lifecycle import LifecycleContract  # noqa: E402
from unimq.testing._messaging import SendReceiveContract  # noqa: E402
from unimq.testing._mtype import MtypeContract  # noqa: E402
from unimq.testing._priority import PriorityContract  # noqa: E402
from unimq.testing._signals import SignalContract  # noqa: E402
from unimq.testing._waiting import (  # noqa: E402
    Alarms,
    Background,
    ChildWatch,
    Waiter,
    in_background,
    wait_until_blocked,
)

__all__ = [
    "Alarms",
    "Backend",
    "BackendFixtures",
    "Background",
    "BatchContract",
    "ChildWatch",
    "HandleContract",
    "InterprocessContract",
    "LifecycleContract",
    "MtypeContract",
    "OpenQueue",
    "PriorityContract",
    "QueueContract",
    "QueueLedger",
    "SendReceiveContract",
    "SignalContract",
    "Waiter",
    "exists",
    "in_background",
    "message_options",
    "unique_name",
    "wait_until_blocked",
]


class QueueContract(
    LifecycleContract,
    HandleContract,
    SendReceiveContract,
    BatchContract,
    PriorityContract,
    MtypeContract,
    InterprocessContract,
    SignalContract,
):
    """Every contract test. Subclass it as ``Test...`` and define ``backend``.

    A new contract test is a new ``test_*`` method on one of the capability
    classes (or a new class added here); every backend's subclass runs it.
    """
