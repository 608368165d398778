"""A secure local cluster (`tickflow kafka start --secure`): who connects, and how the nodes are configured.

Clients and brokers speak SASL/SCRAM-SHA-512 on the broker listener (``SASL_PLAINTEXT``: authenticated,
not encrypted; it listens on loopback). The controllers' listener uses SASL/PLAIN with one ``controller``
principal known only to the nodes' configuration (KRaft cannot check SCRAM there: the credentials live in
the metadata the controllers serve). Every principal's password is generated at the cluster's first start
into ``<TICKFLOW_HOME>/kafka/credentials/<principal>.env`` (mode 0600), as the variables a service reads
(``KAFKA_SASL_USERNAME``, ``KAFKA_SASL_PASSWORD``, ``KAFKA_SASL_MECHANISM``); the SCRAM credentials go
into the storage at format time (``kafka-storage format --add-scram``). ``admin`` (provisioning) and
``controller`` are super users; what the services may do is in ``infra.kafka.acls``.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import dataclass, field
from pathlib import Path

from contracts.settings import SASL_MECHANISMS
from infra.kafka.broker import BrokerError

MECHANISM = SASL_MECHANISMS[0]  # SCRAM-SHA-512
ADMIN = "admin"
CONTROLLER = "controller"
SERVICES = ("ingestor", "streams", "trader", "paper")
PRINCIPALS = (ADMIN, *SERVICES)
SUPER_USERS = (ADMIN, CONTROLLER)
AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
_SCRAM_LOGIN = "org.apache.kafka.common.security.scram.ScramLoginModule"
_PLAIN_LOGIN = "org.apache.kafka.common.security.plain.PlainLoginModule"


@dataclass(frozen=True)
class Credentials:
    """The password of every principal (the services', ``admin`` and ``controller``), and where they live."""

    folder: Path
    passwords: dict[str, str] = field(repr=False)

    def file(self, principal: str) -> Path:
        return self.folder / f"{principal}.env"

    def env(self, principal: str) -> dict[str, str]:
        """The variables a client of ``principal`` reads (contracts.settings.kafka_auth)."""
        if principal not in self.passwords:
            raise BrokerError(f"no principal {principal!r} on this cluster; there are {', '.join(PRINCIPALS)}")
        return {"KAFKA_SASL_USERNAME": principal, "KAFKA_SASL_PASSWORD": self.passwords[principal],
                "KAFKA_SASL_MECHANISM": MECHANISM}

    @classmethod
    def create(cls, folder: Path) -> Credentials:
        """New random passwords, one env file per principal (the folder 0700, the files 0600)."""
        folder.mkdir(parents=True, exist_ok=True)
        folder.chmod(0o700)
        creds = cls(folder, {p: secrets.token_urlsafe(24) for p in (*PRINCIPALS, CONTROLLER)})
        for principal in creds.passwords:
            path = creds.file(principal)
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as out:
                out.write("".join(f"{k}={v}\n" for k, v in creds.env(principal).items()))
        return creds

    @classmethod
    def read(cls, folder: Path) -> Credentials:
        passwords = {}
        for principal in (*PRINCIPALS, CONTROLLER):
            path = folder / f"{principal}.env"
            if not path.exists():
                raise BrokerError(f"{path} is missing: the secure cluster's credentials are incomplete; "
                                  "stop the cluster and remove its TICKFLOW_HOME/kafka to start afresh")
            values = dict(line.split("=", 1) for line in path.read_text().splitlines() if "=" in line)
            passwords[principal] = values["KAFKA_SASL_PASSWORD"]
        return cls(folder, passwords)

    # -- the nodes' side ---------------------------------------------------------------------------
    def scram_args(self) -> list[str]:
        """``kafka-storage format`` arguments that create every SCRAM principal in the new storage."""
        args = []
        for principal in PRINCIPALS:
            args += ["--add-scram", f"{MECHANISM}=[name={principal},password={self.passwords[principal]}]"]
        return args

    def broker_properties(self, host: str, port: int, controller_port: int) -> dict[str, str]:
        """The listener, SASL and authorizer keys of a node (they replace the plaintext ones)."""
        controller_pw = self.passwords[CONTROLLER]
        return {
            "listeners": f"SASL_PLAINTEXT://{host}:{port},CONTROLLER://{host}:{controller_port}",
            "advertised.listeners": f"SASL_PLAINTEXT://{host}:{port}",
            "inter.broker.listener.name": "SASL_PLAINTEXT",
            "listener.security.protocol.map": "SASL_PLAINTEXT:SASL_PLAINTEXT,CONTROLLER:SASL_PLAINTEXT",
            "sasl.enabled.mechanisms": MECHANISM,
            "sasl.mechanism.inter.broker.protocol": MECHANISM,
            f"listener.name.sasl_plaintext.{MECHANISM.lower()}.sasl.jaas.config":
                f'{_SCRAM_LOGIN} required username="{ADMIN}" password="{self.passwords[ADMIN]}";',
            "sasl.mechanism.controller.protocol": "PLAIN",
            "listener.name.controller.sasl.enabled.mechanisms": "PLAIN",
            "listener.name.controller.plain.sasl.jaas.config":
                f'{_PLAIN_LOGIN} required username="{CONTROLLER}" password="{controller_pw}" '
                f'user_{CONTROLLER}="{controller_pw}";',
            "authorizer.class.name": AUTHORIZER,
            "super.users": ";".join(f"User:{p}" for p in SUPER_USERS),
            "allow.everyone.if.no.acl.found": "false",
        }
