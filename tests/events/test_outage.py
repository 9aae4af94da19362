"""A RabbitMQ outage only delays events: the relay's connection is cut mid-stream (a proxy of
the test's own between it and RabbitMQ, never the shared server stopped) and comes back."""

from __future__ import annotations

import contextlib
import socket
import threading
import time

from hie.config import Settings
from hie.events.relay import Relay
from hie.storage import open_database
from tests.events.conftest import Consumer
from tests.events.test_relay import RECORDS, VERSIONS, published, wait_for, write_events


class CuttableProxy:
    """A TCP forwarder to RabbitMQ that can refuse and drop every connection, then come back."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.up = threading.Event()
        self.up.set()
        self.sockets: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if not self.up.is_set():
                client.close()
                continue
            upstream = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
                s.close()

    def cut(self) -> None:
        self.up.clear()
        with self.lock:
            for s in self.sockets:
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)
            self.sockets.clear()

    def restore(self) -> None:
        self.up.set()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_a_rabbitmq_outage_only_delays_events(
    event_settings: Settings, consumer: Consumer, broker_url: str
) -> None:
    proxy = CuttableProxy(("127.0.0.1", 5672))
    via_proxy = broker_url.replace("127.0.0.1:5672", f"127.0.0.1:{proxy.port}")
    assert via_proxy != broker_url
    write_events(event_settings)
    total = RECORDS * VERSIONS
    database = open_database(event_settings, migrate=False)
    relay = Relay(database, via_proxy, event_settings.events_exchange, batch=5, max_backoff=1.0)
    stop = threading.Event()
    thread = threading.Thread(target=relay.run, args=(stop,))
    thread.start()
    try:
        wait_for(lambda: published(event_settings)[0] >= 50)
        proxy.cut()
        during = published(event_settings)[0]
        time.sleep(2)  # the relay retries against a closed door meanwhile
        assert thread.is_alive() and published(event_settings)[0] == during < total
        proxy.restore()
        wait_for(lambda: published(event_settings)[0] == total)
    finally:
        stop.set()
        thread.join(timeout=60)
        database.close()
        proxy.close()
    assert not thread.is_alive()
    wait_for(
        lambda: (
            consumer.channel.queue_declare(consumer.queue, passive=True).method.message_count
            >= total
        )
    )
    ids = {body["event_id"] for _, _, body in consumer.drain()}
    assert len(ids) == total
