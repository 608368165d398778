"""Who may read and write where on a secure cluster: one principal per service (see ``infra.kafka.secure``).

Every resource name is under the topic prefix (``TICKFLOW_TOPIC_PREFIX``) of the moment the ACLs are
applied, as the services name their topics, groups and transactional ids (``contracts.topics.prefixed``):

- ``ingestor`` writes (and reads back, for ``--resume``) ``market.*`` and their dead-letter topics;
- ``streams`` reads ``market.*``, writes ``signals.*`` and the dead letters of ``market.trades``, and owns
  everything named after its app id (group, changelogs, Faust's internal topics, transactional ids);
- ``trader`` reads ``signals.*``, ``fills``, ``market.events``, writes ``orders`` and ``portfolio`` (and
  reads them back at a rebuild), the dead letters of what it reads, and owns ``tickflow-trader-*`` groups
  and transactional ids;
- ``paper`` reads ``orders``, ``market.trades``, ``market.books``, writes ``fills`` (and reads it back at a
  rebuild) and the dead letters of ``orders``, and owns the ``tickflow-paper`` group and transactional id;
- the shadow lane (``contracts.topics.SHADOW``): ``trader`` does with ``orders.shadow``, ``fills.shadow`` and
  ``portfolio.shadow`` what it does with their live twins, and ``paper`` likewise, as ``tickflow-paper-shadow``.

Reading a topic to its end (``contracts.topic_reader``) and the replay's resume take group ids without
the prefix that they never commit under; every service may use those. Anything not listed is refused
(``allow.everyone.if.no.acl.found=false``).
"""

from __future__ import annotations

from collections.abc import Mapping

from confluent_kafka.admin import (
    AclBinding,
    AclOperation,
    AclPermissionType,
    ResourcePatternType,
    ResourceType,
)

from contracts.topics import (
    FILLS,
    LIVE,
    MARKET_BOOKS,
    MARKET_EVENTS,
    MARKET_TRADES,
    ORDERS,
    PORTFOLIO,
    SHADOW,
    SIGNALS_FEATURES,
    prefixed,
)
from infra.kafka.admin import admin

READ, WRITE, CREATE, ALL = AclOperation.READ, AclOperation.WRITE, AclOperation.CREATE, AclOperation.ALL
TOPIC, GROUP, TXN = ResourceType.TOPIC, ResourceType.GROUP, ResourceType.TRANSACTIONAL_ID
LITERAL, PREFIXED = ResourcePatternType.LITERAL, ResourcePatternType.PREFIXED
Grant = tuple[ResourceType, str, ResourcePatternType, tuple[AclOperation, ...]]  # type, name, pattern, operations
# groups named without the topic prefix, never committed under (contracts.topic_reader, ingestor.resume)
READERS: tuple[Grant, ...] = tuple((GROUP, g, PREFIXED, (READ,)) for g in
                                   ("tickflow-read-", "tickflow-follow-", "tickflow-end-offsets"))
STREAMS_APP_ID = "tickflow-streams"  # streams.spec's default app id


def grants(streams_app_id: str = STREAMS_APP_ID) -> dict[str, tuple[Grant, ...]]:
    """What each service's principal may do, every name under the current topic prefix (but READERS')."""
    p = prefixed
    app = p(streams_app_id)
    return {
        "ingestor": ((TOPIC, p("market."), PREFIXED, (WRITE, READ)),
                     (GROUP, "tickflow-replay-resume", LITERAL, (READ,))),
        "streams": ((TOPIC, p("market."), PREFIXED, (READ,)),
                    (TOPIC, p("signals."), PREFIXED, (WRITE, READ, CREATE)),
                    (TOPIC, MARKET_TRADES.dlq.name, LITERAL, (WRITE,)),
                    (TOPIC, app, PREFIXED, (ALL,)),
                    (GROUP, app, PREFIXED, (READ,)),
                    (TXN, app, PREFIXED, (WRITE,))),
        "trader": ((TOPIC, p("signals."), PREFIXED, (READ,)),
                   *((TOPIC, t.name, LITERAL, (READ,)) for t in (FILLS, SHADOW.fills, MARKET_EVENTS)),
                   *((TOPIC, t.name, LITERAL, (WRITE, READ)) for t in (ORDERS, PORTFOLIO, SHADOW.orders,
                                                                       SHADOW.portfolio)),
                   *((TOPIC, t.dlq.name, LITERAL, (WRITE,)) for t in (SIGNALS_FEATURES, FILLS, SHADOW.fills,
                                                                      MARKET_EVENTS)),
                   (GROUP, p("tickflow-trader-"), PREFIXED, (READ,)),
                   (TXN, p("tickflow-trader-"), PREFIXED, (WRITE,))),
        "paper": (*((TOPIC, t.name, LITERAL, (READ,)) for t in (ORDERS, SHADOW.orders, MARKET_TRADES, MARKET_BOOKS)),
                  *((TOPIC, t.name, LITERAL, (WRITE, READ)) for t in (FILLS, SHADOW.fills)),
                  *((TOPIC, t.dlq.name, LITERAL, (WRITE,)) for t in (ORDERS, SHADOW.orders)),
                  *((GROUP, lane.group("tickflow-paper"), LITERAL, (READ,)) for lane in (LIVE, SHADOW)),
                  *((TXN, lane.group("tickflow-paper"), LITERAL, (WRITE,)) for lane in (LIVE, SHADOW))),
    }


def bindings(table: Mapping[str, tuple[Grant, ...]] | None = None) -> list[AclBinding]:
    """The ACLs of ``table`` (default ``grants()``); every principal may also write idempotently
    (IDEMPOTENT_WRITE on the cluster) and read topics to their end (READERS)."""
    out = []
    for principal, granted in (table or grants()).items():
        user = f"User:{principal}"
        out.append(AclBinding(ResourceType.BROKER, "kafka-cluster", LITERAL, user, "*",
                              AclOperation.IDEMPOTENT_WRITE, AclPermissionType.ALLOW))
        for restype, name, pattern, operations in (*granted, *READERS):
            out += [AclBinding(restype, name, pattern, user, "*", op, AclPermissionType.ALLOW) for op in operations]
    return out


def apply(bootstrap: str, admin_env: Mapping[str, str], timeout: float = 30.0) -> int:
    """Create the services' ACLs (creating one that exists is a no-op); how many bindings were sent."""
    wanted = bindings()
    client = admin(bootstrap, env=admin_env)  # held until every answer is in
    for fut in client.create_acls(wanted, request_timeout=timeout).values():
        fut.result()
    return len(wanted)
