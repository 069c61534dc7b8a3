"""Webhook intake: POST /webhook's size limit, signature check, strict parse, dedup, hand-off."""
