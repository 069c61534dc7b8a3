"""Call state: the call model, the tracker's transitions, departure rules. Who is the avatar, the
agent or a user is avatar_monitor_agent.roles, shared with the voice agent's client."""
