"""How every Kafka client of memberstream connects: PLAINTEXT, SSL or SASL
(PLAIN, SCRAM-SHA-256, SCRAM-SHA-512), with or without TLS, from the settings
(`Settings.kafka_security`). One place, so Faust (stream/worker/app.py), the batcher, the sender,
the refetchers, the broker probe, the admin client, replay and tail all
connect the same way.

The secrets stay SecretStr until a client is built: a repr, a log line or an
error message shows `**********`. The object pickles (the batcher's process
gets it) and builds its TLS context where it is used.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from pydantic import SecretStr

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512")


@dataclass(frozen=True)
class KafkaSecurity:
    protocol: str = "PLAINTEXT"
    mechanism: str = "SCRAM-SHA-512"
    username: Optional[str] = None
    password: Optional[SecretStr] = None
    cafile: Optional[Path] = None
    certfile: Optional[Path] = None
    keyfile: Optional[Path] = None
    key_password: Optional[SecretStr] = None
    check_hostname: bool = True

    def __post_init__(self) -> None:
        if self.protocol not in PROTOCOLS:
            raise ValueError(f"Kafka security protocol {self.protocol!r}: one of {', '.join(PROTOCOLS)}")
        if self.sasl:
            if self.mechanism not in MECHANISMS:
                raise ValueError(f"SASL mechanism {self.mechanism!r}: one of {', '.join(MECHANISMS)}")
            if not self.username or self.password is None:
                raise ValueError(f"{self.protocol} needs a SASL username and password")
        if (self.certfile is None) != (self.keyfile is None) and self.keyfile is not None:
            raise ValueError("a TLS client key needs its certificate (kafka_ssl_certfile)")

    @property
    def sasl(self) -> bool:
        return self.protocol.startswith("SASL_")

    @property
    def tls(self) -> bool:
        return self.protocol in ("SSL", "SASL_SSL")

    def ssl_context(self):
        """The TLS context: the CA to trust (the system's if none), the client
        certificate if given; hostnames checked unless turned off."""
        if not self.tls:
            return None
        from aiokafka.helpers import create_ssl_context

        context = create_ssl_context(
            cafile=str(self.cafile) if self.cafile else None,
            certfile=str(self.certfile) if self.certfile else None,
            keyfile=str(self.keyfile) if self.keyfile else None,
            # "" rather than None: OpenSSL would ask for a missing password on the terminal.
            password=self.key_password.get_secret_value() if self.key_password else "")
        context.check_hostname = self.check_hostname
        return context

    def aiokafka(self) -> dict:
        """Keyword arguments for any aiokafka client."""
        options: dict = {"security_protocol": self.protocol}
        if self.tls:
            options["ssl_context"] = self.ssl_context()
        if self.sasl:
            options.update(sasl_mechanism=self.mechanism, sasl_plain_username=self.username,
                           sasl_plain_password=self.password.get_secret_value())
        return options


PLAINTEXT = KafkaSecurity()
