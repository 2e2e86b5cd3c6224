"""Is the broker answering? A metadata request of its own connection, so the
answer does not depend on the state of Faust's consumer or of the sender."""
from __future__ import annotations

import asyncio
import contextlib
from typing import Optional

from aiokafka import AIOKafkaClient
from aiokafka.errors import KafkaError

from stream.kafka.security import PLAINTEXT, KafkaSecurity


class BrokerProbe:
    def __init__(self, bootstrap: str, security: KafkaSecurity = PLAINTEXT) -> None:
        self.bootstrap, self.security = bootstrap, security
        self._client: Optional[AIOKafkaClient] = None

    async def reachable(self, timeout_s: float) -> bool:
        """A metadata answer within `timeout_s`."""
        try:
            await asyncio.wait_for(self._metadata(), timeout_s)
            return True
        except (KafkaError, OSError, asyncio.TimeoutError):
            return False

    async def _metadata(self) -> None:
        if self._client is None:
            client = AIOKafkaClient(bootstrap_servers=self.bootstrap, request_timeout_ms=5000,
                                    **self.security.aiokafka())
            try:
                await client.bootstrap()
            except BaseException:
                with contextlib.suppress(Exception):
                    await client.close()
                raise
            self._client = client
        await self._client.fetch_all_metadata()

    async def close(self) -> None:
        if self._client is not None:
            await self._client.close()
            self._client = None
