"""The soak's API function scales as Lambda does: concurrent requests in containers of their own, up
to its concurrency; an idle container takes the next request; one that died is replaced."""

import threading
from typing import Any

import pytest
from devstack.soak.run import ApiFunction, ContainerDied, ContainerSummary


class FakeContainer:
    def __init__(self, n: int, barrier: threading.Barrier | None, dies: bool = False) -> None:
        self.pid, self.barrier, self.dies = 1000 + n, barrier, dies
        self.invocations = 0
        self.stopped = False

    def invoke_with_faults(self, event: dict[str, Any]) -> tuple[Any, set[str]]:
        self.invocations += 1
        if self.dies:
            raise ContainerDied("killed")
        if self.barrier is not None:
            self.barrier.wait(timeout=5)  # every container in an invocation at once, or none
        return {"statusCode": 200, "container": self.pid}, {"dynamodb"}

    def stop(self) -> ContainerSummary:
        self.stopped = True
        return ContainerSummary({"s3 PutObject SlowDown": 1}, None)


def test_concurrent_requests_run_in_as_many_containers_at_once() -> None:
    barrier = threading.Barrier(3)
    started: list[FakeContainer] = []

    def start(n: int) -> FakeContainer:
        started.append(FakeContainer(n, barrier))
        return started[-1]

    api = ApiFunction(start, concurrency=3)
    answers: list[Any] = []
    threads = [threading.Thread(target=lambda: answers.append(api.invoke({}))) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not barrier.broken  # one container at a time would have broken it
    assert len(started) == 3
    assert api.peak == 3
    assert sorted(a[0]["container"] for a in answers) == [1000, 1001, 1002]
    assert all(failed == {"dynamodb"} for _, failed in answers)


def test_no_more_containers_than_the_concurrency_and_idle_ones_are_reused() -> None:
    started: list[FakeContainer] = []
    in_flight, most = 0, 0
    lock = threading.Lock()

    class Counting(FakeContainer):
        def invoke_with_faults(self, event: dict[str, Any]) -> tuple[Any, set[str]]:
            nonlocal in_flight, most
            with lock:
                in_flight += 1
                most = max(most, in_flight)
            try:
                threading.Event().wait(0.01)
                return super().invoke_with_faults(event)
            finally:
                with lock:
                    in_flight -= 1

    def start(n: int) -> FakeContainer:
        started.append(Counting(n, None))
        return started[-1]

    api = ApiFunction(start, concurrency=2)
    threads = [threading.Thread(target=api.invoke, args=({},)) for _ in range(12)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(started) == 2
    assert most == 2
    assert sum(c.invocations for c in started) == 12
    api.invoke({})  # one at a time: the idle container takes it
    assert len(started) == 2


def test_a_container_that_died_is_replaced_and_its_faults_still_counted() -> None:
    started: list[FakeContainer] = []

    def start(n: int) -> FakeContainer:
        started.append(FakeContainer(n, None, dies=n == 0))
        return started[-1]

    api = ApiFunction(start, concurrency=1)
    assert api.invoke({}) == (None, set())  # the gateway answers 502
    answer, _ = api.invoke({})
    assert answer["container"] == 1001
    summaries = api.stop()
    assert len(summaries) == 2
    assert all(c.stopped for c in started)
    assert api.pids == []


def test_an_invocation_that_raised_gives_its_container_back() -> None:
    class Raising(FakeContainer):
        def invoke_with_faults(self, event: dict[str, Any]) -> tuple[Any, set[str]]:
            raise RuntimeError("the function raised KeyError")

    api = ApiFunction(lambda n: Raising(n, None), concurrency=1)
    for _ in range(2):  # the second would wait for ever for a container not given back
        with pytest.raises(RuntimeError):
            api.invoke({})
