"""Every state machine of mcp-core, each a transition table. Pure: no I/O, no clock."""

from ._fsm import LocalProtocolError, Rule, StateMachine

__all__ = ["LocalProtocolError", "Rule", "StateMachine"]
