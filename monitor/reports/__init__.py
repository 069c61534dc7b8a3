"""What the voice agent reports (POST /v1/events, data channel, lk.agent.session), applied once."""
