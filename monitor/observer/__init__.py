"""LiveKit watched directly: the hidden room participant and RoomService reconciliation."""
