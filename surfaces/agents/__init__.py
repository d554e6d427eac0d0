"""The bot's side of its agents: the one mapping from configuration to the agent
client's limits (and, later, what the bot knows about each agent's health)."""

from surfaces.agents.limits import probe_limits, turn_limits

__all__ = ["probe_limits", "turn_limits"]
