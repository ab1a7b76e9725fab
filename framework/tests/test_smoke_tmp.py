from .helpers import echo_interface, echo_service, EchoRequest

async def test_smoke(start_service, bus):
    iface = echo_interface()
    svc = await start_service(echo_service(iface))
    reply = await bus.request(iface, EchoRequest(text="hi"))
    assert reply.text == "hi"
