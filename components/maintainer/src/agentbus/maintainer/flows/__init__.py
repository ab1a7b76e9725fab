"""The maintainer's flows: a dependency update and an interface change, each ending in a
:class:`~agentbus.maintainer.flows.change.ChangeReport` that the service promotes or escalates."""
