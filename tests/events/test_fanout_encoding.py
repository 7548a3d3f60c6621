"""Fan-out sends each event serialized once: the pre-encoded responses must be exactly what protobuf would
send, shared only between subscriptions that may see the same events, and refreshed when the ring moves."""

from __future__ import annotations

import asyncio

import grpc

from edge_coat.events.auth import ANONYMOUS, Principal
from edge_coat.events.config import EventsConfig
from edge_coat.events.convert import encode_entry, encode_response, event_to_pb
from edge_coat.events.hub import EventHub
from edge_coat.v1 import events_pb2 as pb
from edge_coat.v1 import events_pb2_grpc as pb_grpc

from .conftest import ADMIN, AGENT, record


def test_pre_encoded_response_is_byte_identical_to_protobuf(writer):
    stored = writer.append_many([record("press-1", n=0), record("call-2", "emotion", 0.4, n=1)])
    events = [event_to_pb(ev) for ev in stored]
    body = b"".join(encode_entry(e) for e in events)
    assert encode_response(body, 2, 7, server_time=12.5) == pb.SubscribeResponse(
        events=events, cursor=2, head=7, server_time=12.5).SerializeToString()
    beat = encode_response(b"", 2, 7, heartbeat=True, server_time=3.0)
    assert pb.SubscribeResponse.FromString(beat) == pb.SubscribeResponse(cursor=2, head=7, heartbeat=True,
                                                                         server_time=3.0)


def test_hub_shares_responses_per_filter_and_refreshes_them_when_the_ring_moves(tmp_path, writer):
    writer.append_many([record("press-1", n=0), record("call-2", "emotion", 0.4, n=1),
                        record("call-3", "emotion", 0.9, n=2)])

    async def main():
        hub = EventHub(writer, EventsConfig(db_path=writer.path, insecure=True))
        hub.head = 0
        await hub._pull()
        agent = Principal("agent", ("call-*",), False)
        everything = hub.filter_for(ANONYMOUS, [], [], 0.0)
        assert hub.filter_for(ANONYMOUS, (), (), 0) is everything  # same filter, same object
        calls = hub.filter_for(agent, [], ["emotion"], 0.5)
        assert calls is not hub.filter_for(agent, [], ["emotion"], 0.0)
        ring = hub.after(0, 100)
        first = hub.response(everything, ring, shared=True)
        assert hub.response(everything, ring, shared=True) is first  # built once, then shared
        got = pb.SubscribeResponse.FromString(first)
        assert [e.id for e in got.events] == [1, 2, 3] and got.cursor == 3 and got.head == 3
        got = pb.SubscribeResponse.FromString(hub.response(calls, ring, shared=True))
        assert [e.id for e in got.events] == [3] and got.events[0].evidence.model_name == "coat-tiny"
        assert hub.response(hub.filter_for(agent, ["call-2"], [], 0.9), ring, shared=True) is None
        writer.append(record("press-1", n=3))
        await hub._pull()
        moved = pb.SubscribeResponse.FromString(hub.response(everything, hub.after(0, 100), shared=True))
        assert [e.id for e in moved.events] == [1, 2, 3, 4] and moved.head == 4
        hub.close()

    asyncio.run(main())


def test_live_subscribers_with_different_filters_and_scopes_each_get_exactly_theirs(make_server, writer):
    server = make_server(heartbeat_s=5.0)
    records = [record(["press-1", "call-1", "call-2"][i % 3], ["anomaly", "emotion"][i % 2], (i % 10) / 10, n=i)
               for i in range(90)]
    groups = {  # name: (token, request, the records it must get)
        "all": (ADMIN, pb.SubscribeRequest(), records),
        "emotion>=0.5": (ADMIN, pb.SubscribeRequest(kinds=["emotion"], min_score=0.5),
                         [r for r in records if r.kind == "emotion" and r.score >= 0.5]),
        "agent": (AGENT, pb.SubscribeRequest(), [r for r in records if r.stream_id.startswith("call-")]),
        "agent call-2": (AGENT, pb.SubscribeRequest(stream_ids=["call-2"]),
                         [r for r in records if r.stream_id == "call-2"]),
    }
    per_group = 15

    async def main():
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            stub = pb_grpc.EventServiceStub(channel)

            async def read(token, request, want):
                got = []
                call = stub.Subscribe(request, metadata=(("authorization", f"Bearer {token}"),))
                async for resp in call:
                    got += [(e.stream_id, e.kind, e.score, e.text) for e in resp.events]
                    if len(got) >= want:
                        call.cancel()
                        break
                return got

            tasks = {(name, k): asyncio.create_task(read(token, req, len(want)))
                     for name, (token, req, want) in groups.items() for k in range(per_group)}
            for _ in range(600):
                if server.subscribers >= len(tasks):
                    break
                await asyncio.sleep(0.05)
            for start in range(0, len(records), 30):  # three ring generations
                await asyncio.to_thread(writer.append_many, records[start:start + 30])
                server.notify()
            done = await asyncio.wait_for(asyncio.gather(*tasks.values()), 60)
            return dict(zip(tasks, done))

    results = asyncio.run(main())
    for (name, _), got in results.items():
        want = groups[name][2]
        assert got == [(r.stream_id, r.kind, r.score, r.text) for r in want], name


def test_idle_subscription_gets_heartbeats_carrying_the_cursor_past_filtered_events(make_server, writer):
    server = make_server(heartbeat_s=0.3)
    with grpc.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        call = pb_grpc.EventServiceStub(channel).Subscribe(
            pb.SubscribeRequest(kinds=["emotion"], from_cursor=0), metadata=(("authorization", f"Bearer {ADMIN}"),),
            timeout=30)
        writer.append_many([record("press-1", n=i) for i in range(3)])  # anomalies only: all filtered out
        server.notify()
        beats = []
        for resp in call:
            assert resp.heartbeat and not resp.events
            beats.append(resp)
            if resp.cursor == 3:
                break
        call.cancel()
    assert beats[-1].cursor == 3 and beats[-1].head == 3 and beats[-1].server_time > 0
