"""What a notification looks like on each kind of channel, and when to try again.

Pure code (no Django): a Message in, a request body out, so every shape is tested on its own.
"""

import hashlib
import hmac
import json
import random
from dataclasses import dataclass, field

DISCORD_MAX_EMBEDS = 10
DISCORD_MAX_CONTENT = 2000
DISCORD_MAX_FIELDS = 25
SIGNATURE_HEADER = "X-Monitor-Signature"
TIMESTAMP_HEADER = "X-Monitor-Timestamp"

# Discord embed colours per rule (decimal RGB).
COLOURS = {
    "run_failed": 0xE5484D,
    "machine_silent": 0xE3A008,
    "project_degraded": 0xE3A008,
    "server_error": 0xB42318,
    "daily_digest": 0x2D6CDF,
    "test": 0x2E9D5B,
}


@dataclass(frozen=True)
class Message:
    id: int
    rule: str
    title: str
    text: str
    link: str = ""
    facts: list = field(default_factory=list)  # [[name, value], ...]
    created_at: str = ""  # ISO 8601


def discord_body(message: Message, username: str = "Monitor") -> dict:
    """Discord's webhook body: {username, content, embeds (at most 10)}."""
    embed = {
        "title": message.title[:256],
        "description": message.text[:4096],
        "color": COLOURS.get(message.rule, 0x667085),
        "fields": [
            {"name": str(name)[:256], "value": str(value)[:1024] or "-", "inline": True}
            for name, value in message.facts[:DISCORD_MAX_FIELDS]
        ],
    }
    if message.link:
        embed["url"] = message.link
    if message.created_at:
        embed["timestamp"] = message.created_at
    return {
        "username": username,
        "content": message.title[:DISCORD_MAX_CONTENT],
        "embeds": [embed][:DISCORD_MAX_EMBEDS],
    }


def slack_body(message: Message) -> dict:
    lines = [f"*{message.title}*", message.text]
    lines += [f"• {name}: {value}" for name, value in message.facts]
    if message.link:
        lines.append(f"<{message.link}|Open in Monitor>")
    return {"text": "\n".join(line for line in lines if line)}


def webhook_body(message: Message) -> dict:
    return {
        "id": message.id,
        "rule": message.rule,
        "title": message.title,
        "text": message.text,
        "facts": {str(name): value for name, value in message.facts},
        "link": message.link,
        "created_at": message.created_at,
    }


def email_text(message: Message) -> str:
    lines = [message.text, ""]
    lines += [f"{name}: {value}" for name, value in message.facts]
    if message.link:
        lines += ["", message.link]
    return "\n".join(lines).strip() + "\n"


def encode(body: dict) -> bytes:
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode("utf-8")


def signature(secret: str, timestamp: str, raw_body: bytes) -> str:
    """HMAC-SHA256 over "<timestamp>.<body>", so a captured request cannot be replayed later
    with another timestamp. Receivers recompute it and compare in constant time."""
    digest = hmac.new(secret.encode("utf-8"), timestamp.encode("ascii") + b"." + raw_body,
                      hashlib.sha256)
    return "sha256=" + digest.hexdigest()


def verify_signature(secret: str, timestamp: str, raw_body: bytes, header_value: str) -> bool:
    return hmac.compare_digest(signature(secret, timestamp, raw_body), header_value or "")


def is_retryable(status_code: int | None) -> bool:
    """No answer, a server error, 408 or 429: try again. Any other 4xx will not get better."""
    if status_code is None:
        return True
    return status_code >= 500 or status_code in (408, 429)


def retry_delay(attempt: int, base: float, cap: float, retry_after: float | None = None,
                rng=random.random) -> float:
    """Exponential backoff with full jitter after the `attempt`-th failure (1-based); a
    receiver's Retry-After wins when it asks for longer."""
    ceiling = min(cap, base * (2 ** (attempt - 1)))
    delay = ceiling / 2 + rng() * ceiling / 2
    if retry_after is not None:
        delay = max(delay, min(retry_after, cap))
    return delay
