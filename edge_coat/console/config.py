"""Configuration of the operator console (the ``console:`` section of the site config)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

_LISTEN = r"^[A-Za-z0-9.\-\[\]:*]+:[0-9]{1,5}$"


class ConsoleConfig(BaseModel):
    """Section ``console``: the operator web console served next to the gRPC event service.

    Off unless ``enabled``. It uses the event service's security: the same tokens file (a token sees
    only its streams; ``control`` may enroll, ``ack`` may acknowledge) and, when ``events.tls`` is
    set, the same certificate (HTTPS). With ``events.insecure`` and no tokens file everyone may do
    everything, as on the gRPC side (tests and demos only).
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = Field(False, description="serve the web console (and record per-window timelines)")
    listen: str = Field("127.0.0.1:8090", pattern=_LISTEN,
                        description="host:port of the console's HTTP(S) listener (port 0: any free port)")
    history_s: float = Field(3600.0, ge=60.0, le=7 * 86400.0,
                             description="per-window timeline points kept in the log file, seconds")
    timeline_s: float = Field(600.0, ge=10.0, le=86400.0,
                              description="how much of the timeline a stream page shows at first, seconds")
    session_ttl_s: float = Field(12 * 3600.0, ge=60.0, le=30 * 86400.0,
                                 description="a login session ends after this long without a request, seconds")
    stale_after_s: float = Field(10.0, gt=0.0, le=3600.0,
                                 description="a live stream with no window for this long shows as 'gap', seconds")
    refresh_s: float = Field(1.0, ge=0.05, le=60.0,
                             description="how often open pages get new stream states and timeline points, seconds")
    page_events: int = Field(50, ge=5, le=1000, description="events per page on the events view")
