"""tickflow's shared contracts: message types, the topic registry, serialisation, settings, time,
the feature schema a bundle pins (feature_schema), the one cost model (costs) and the Kafka plumbing
more than one service uses (kafka_io: transactional loops, the DLQ writer; topic_reader: reading a
topic to its end, rebuild reads).

This package is the only code the services share.
"""

from contracts.errors import ContractError, SettingsError
from contracts.messages import (
    ORDER_V2,
    V1,
    Bar,
    DeadLetter,
    FeatureVector,
    Fill,
    MarketEvent,
    Message,
    Order,
    PortfolioSnapshot,
    SourceOffset,
    Trade,
)
from contracts.serde import decode, encode, to_dict
from contracts.topics import REGISTRY, Topic, market_key, topic

__all__ = [
    "ORDER_V2",
    "REGISTRY",
    "V1",
    "Bar",
    "ContractError",
    "DeadLetter",
    "FeatureVector",
    "Fill",
    "MarketEvent",
    "Message",
    "Order",
    "PortfolioSnapshot",
    "SettingsError",
    "SourceOffset",
    "Topic",
    "Trade",
    "decode",
    "encode",
    "market_key",
    "to_dict",
    "topic",
]
