"""Many concurrent subscribers on one server; TLS and mutual TLS from files made by edge_coat.events.certs."""

from __future__ import annotations

import asyncio

import grpc
import pytest

from edge_coat.events.certs import create_ca, create_site, issue
from edge_coat.events.client import EventClient
from edge_coat.events.config import TlsConfig
from edge_coat.v1 import events_pb2 as pb
from edge_coat.v1 import events_pb2_grpc as pb_grpc

from .conftest import ADMIN, record


def test_a_thousand_concurrent_subscribers_receive_everything(make_server, writer):
    server = make_server(heartbeat_s=5.0)
    subs, n_events = 1000, 20

    async def main():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.EventServiceStub(channel)
            calls = [stub.Subscribe(pb.SubscribeRequest(), metadata=(("authorization", f"Bearer {ADMIN}"),))
                     for _ in range(subs)]

            async def read(call):
                ids = []
                async for resp in call:
                    ids += [e.id for e in resp.events]
                    if len(ids) >= n_events:
                        call.cancel()
                        return ids
                return ids

            tasks = [asyncio.create_task(read(c)) for c in calls]
            # live-only subscriptions: wait until the server holds all of them before publishing
            for _ in range(600):
                if server._hub.subscribers >= subs:
                    break
                await asyncio.sleep(0.05)
            assert server._hub.subscribers == subs
            await asyncio.to_thread(writer.append_many, [record(f"press-{i % 7}", n=i) for i in range(n_events)])
            server.notify()
            return await asyncio.wait_for(asyncio.gather(*tasks), 120)

    results = asyncio.run(main())
    expected = list(range(1, n_events + 1))
    assert len(results) == subs and all(r == expected for r in results)


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    site = tmp_path_factory.mktemp("pki")
    create_site(site, clients=("client",))
    rogue = tmp_path_factory.mktemp("rogue")
    create_ca(rogue)
    issue(rogue, "client", server=False)
    return site, rogue


def test_tls_and_mutual_tls(make_server, writer, pki):
    site, rogue = pki
    writer.append(record(n=0))
    server = make_server(insecure=False, tls=TlsConfig(cert_file=site / "server.pem", key_file=site / "server-key.pem",
                                                       client_ca_file=site / "ca.pem"))
    target = f"localhost:{server.port}"
    good = EventClient(target, token=ADMIN, ca_file=site / "ca.pem", cert_file=site / "client.pem",
                       key_file=site / "client-key.pem")
    assert next(good.subscribe(from_cursor=0)).id == 1
    assert oct((site / "client-key.pem").stat().st_mode & 0o777) == "0o600"
    good.close()
    # a client certificate signed by another CA is refused at the handshake
    wrong_ca_client = EventClient(target, token=ADMIN, ca_file=site / "ca.pem", cert_file=rogue / "client.pem",
                                  key_file=rogue / "client-key.pem")
    # a client that trusts another CA refuses the server
    wrong_trust = EventClient(target, token=ADMIN, ca_file=rogue / "ca.pem", cert_file=site / "client.pem",
                              key_file=site / "client-key.pem")
    no_cert = EventClient(target, token=ADMIN, ca_file=site / "ca.pem")
    for c in (wrong_ca_client, wrong_trust, no_cert):
        with pytest.raises(grpc.RpcError) as err:
            c.get_status(timeout=5)
        assert err.value.code() == grpc.StatusCode.UNAVAILABLE
        c.close()


def test_secure_config_requires_tls_and_tokens(tmp_path):
    from edge_coat.events.config import EventsConfig

    with pytest.raises(ValueError, match="events.insecure: true"):
        EventsConfig(db_path=tmp_path / "e.db")
    with pytest.raises(ValueError, match="tokens_file is required"):
        EventsConfig(tls=TlsConfig(cert_file=tmp_path / "c", key_file=tmp_path / "k"))
