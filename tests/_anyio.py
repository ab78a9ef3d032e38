"""The event loops the async tests run on (``@pytest.mark.anyio``): asyncio and trio, which the
httpx adapters both support through anyio. The tests parametrize ``anyio_backend`` with these,
together with what they test (the sync flavours need only one loop)."""

from __future__ import annotations

BACKENDS = ["asyncio", "trio"]
