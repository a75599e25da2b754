"""The floor of a sharded search on Ray: one round of calls to S actors that do nothing, gathered, as a search
over S shards makes it, gathered by one ``ray.get`` of every answer or, as a read with failover has to, by a
``ray.wait`` and a ``ray.get`` for each actor in turn; over a channel to each actor (``rapidrag.channels``, the
connections a sharded index's searches read over: the argument pickled, sent, its echo read back from each); then
the same round as a Ray compiled graph (the calls set up
once over shared-memory channels), and what the compiled graph's actors cost while idle (their CPU seconds over 5 s
without a round). Run inside a private network namespace, as the Ray tests do:

    unshare --net sh -c 'ip link set lo up && python benchmarks/ray_round_trip.py'
"""

from __future__ import annotations

import os
import time

import numpy as np
from _common import local_ray


def main() -> None:
    ray = local_ray()

    @ray.remote(num_cpus=0)
    class Echo:
        def call(self, x: object = None) -> object:
            return x

        def channel(self, key: bytes) -> tuple[str, int]:
            import pickle

            from rapidrag.channels import ChannelServer

            self.server = ChannelServer(lambda payload: pickle.dumps(pickle.loads(payload)), key, "127.0.0.1")
            return self.server.address

        def cpu_seconds(self) -> float:
            import resource

            usage = resource.getrusage(resource.RUSAGE_SELF)
            return usage.ru_utime + usage.ru_stime

    for n_actors in (1, 2, 4):
        actors = [Echo.remote() for _ in range(n_actors)]  # type: ignore[attr-defined]
        ray.get([a.call.remote() for a in actors])
        for name, payload in (("none", None), ("a 384-float vector", np.zeros(384, np.float32))):
            for gather in ("one ray.get", "wait and get each"):
                times = []
                for _ in range(2000):
                    clock = time.perf_counter()
                    refs = [a.call.remote(payload) for a in actors]
                    if gather == "one ray.get":
                        ray.get(refs)
                    else:
                        for ref in refs:
                            ray.wait([ref], num_returns=1)
                            ray.get(ref)
                    times.append((time.perf_counter() - clock) * 1000)
                p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
                print(f"{n_actors} actors, argument {name}, {gather}: one round p50 {p50:.3f} ms, p99 {p99:.3f} ms")
            over_channels(ray, actors, name, payload)
        compiled(ray, actors)
        for actor in actors:
            ray.kill(actor)


def over_channels(ray: object, actors: list[object], name: str, payload: object) -> None:
    """The round over a channel to each actor: the argument pickled once, sent to each, each echo read back."""
    import pickle
    from multiprocessing.connection import wait

    from rapidrag.channels import OK, Channels

    key = os.urandom(32)
    channels = Channels(key)
    addresses = ray.get([a.channel.remote(key) for a in actors])  # type: ignore[attr-defined]
    conns = [channels.connection(i, tuple(address), 2.0) for i, address in enumerate(addresses)]
    times = []
    for _ in range(2000):
        clock = time.perf_counter()
        request = pickle.dumps(payload, protocol=5)
        for conn in conns:
            conn.send_bytes(request)
        left = list(conns)
        while left:
            for ready in wait(left):
                reply = ready.recv_bytes()  # type: ignore[union-attr]
                if reply[:1] != OK:
                    raise RuntimeError("an echo failed")
                pickle.loads(reply[1:])
                left.remove(ready)  # type: ignore[arg-type]
        times.append((time.perf_counter() - clock) * 1000)
    p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
    print(f"{len(actors)} actors, argument {name}, a channel each: one round p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    for i in range(len(conns)):
        channels.drop(i)


def compiled(ray: object, actors: list[object]) -> None:
    """The round as a compiled graph over ``actors``, and their CPU while the graph is up and idle."""
    from ray.dag import InputNode, MultiOutputNode

    with InputNode() as request:
        dag = MultiOutputNode([a.call.bind(request) for a in actors])  # type: ignore[attr-defined]
    graph = dag.experimental_compile()
    for name, payload in (("none", None), ("a 384-float vector", np.zeros(384, np.float32))):
        times = []
        for _ in range(2000):
            clock = time.perf_counter()
            ray.get(graph.execute(payload))  # type: ignore[attr-defined]
            times.append((time.perf_counter() - clock) * 1000)
        p50, p99 = np.percentile(times, 50), np.percentile(times, 99)
        print(f"{len(actors)} actors, argument {name}, compiled graph: one round p50 {p50:.3f} ms, p99 {p99:.3f} ms")
    before = ray.get([a.cpu_seconds.remote() for a in actors])  # type: ignore[attr-defined]
    time.sleep(5)
    after = ray.get([a.cpu_seconds.remote() for a in actors])  # type: ignore[attr-defined]
    busy = ", ".join(f"{b - a:.2f}" for a, b in zip(before, after, strict=True))
    print(f"{len(actors)} actors in a compiled graph, idle for 5 s: CPU seconds per actor {busy}")
    graph.teardown()


if __name__ == "__main__":
    main()
