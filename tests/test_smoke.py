from tests.rpcclient import RpcClient


async def test_ping(client: RpcClient) -> None:
    assert await client.call("daemon.ping") == "pong"
