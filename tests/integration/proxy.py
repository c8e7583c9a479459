"""An HTTP proxy in front of the test influxd that sees every write a sink makes.

It is :class:`~tests.integration.faults.HttpProxy` (forward everything; answer writes with an
error, slow them down, or hold the Nth one — the moment a test kills the writing process,
mid-window) with the writes it forwarded as line-protocol lines, and ``down`` for a sink that
answers 503.
"""

from __future__ import annotations

from tests.integration.faults import HttpProxy
from tests.integration.workspace import Workspace


class WriteProxy(HttpProxy):
    @property
    def writes(self) -> list[list[str]]:
        """Lines of every write forwarded, in order."""
        return [body.decode().splitlines() for body in self.bodies]

    def lines(self) -> list[str]:
        return [line for write in self.writes for line in write]

    @property
    def down(self) -> bool:
        return self.fail_status == 503

    @down.setter
    def down(self, value: bool) -> None:
        self.fail_status = 503 if value else None


def gated_sink(workspace: Workspace, proxy: WriteProxy, batch_size: int | None = None) -> None:
    """Sink profile ``gated``: writes through ``proxy`` to the workspace's output database, with
    no retry and no gzip; ``batch_size`` points per request (default: the sink's)."""
    batch = "" if batch_size is None else f"batch_size = {batch_size}"
    workspace.sink(
        "gated",
        f"""
        type = "influxdb"
        url = "{proxy.url}"
        database = "{workspace.out_database}"
        {batch}
        retries = 0
        gzip = false
        """,
    )
