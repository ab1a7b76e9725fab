"""Every test directory gets the agentbus fixtures (a real nats-server and service factories)."""

pytest_plugins = ["agentbus.framework.testing"]
