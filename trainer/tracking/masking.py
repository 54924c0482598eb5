"""Secrets kept out of what a run records and prints: values of secret-looking keys as ***, passwords in URLs hidden.
"""
from __future__ import annotations

import re
from typing import Any

# token, not tokenizer (the text runs' config group): the tokenizer's settings are no secret
_SECRET = re.compile(r"password|passwd|token(?!iz)|secret|credential|api_?key|access_?key|private_?key"
                     r"|(?:^|[_\-])keys?(?:$|[_\-])", re.I)
_OVERRIDE = re.compile(r"([\w.+~@/\-]+)=([^,\s]*)")
MASK = "***"


def is_secret(key: str) -> bool:
    """True when the last part of a dotted key looks like it holds a secret (password, token, secret, key, ...)."""
    return bool(_SECRET.search(str(key).rsplit(".", 1)[-1]))


def mask_overrides(text: str) -> str:
    """Command-line overrides (`a.token=x`, `k=v,k2=v2`) with the values of secret-looking keys as ***."""
    return _OVERRIDE.sub(lambda m: f"{m[1]}={MASK}" if is_secret(m[1]) else m[0], text)


def mask(node: Any) -> Any:
    """A plain config tree with the values of secret-looking keys, and of such overrides in strings, as ***."""
    if isinstance(node, dict):  # an unset secret (null, "") stays visible: nothing to hide, nothing to ask for
        return {k: MASK if is_secret(k) and v not in (None, "") else mask(v) for k, v in node.items()}
    if isinstance(node, list):
        return [mask(v) for v in node]
    return mask_overrides(node) if isinstance(node, str) else node


def hide_password(url: str) -> str:
    """A database URL with its password as *** (SQLAlchemy's make_url); a string it cannot read as a URL is not
    shown at all, since it may be a secret."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - not a URL SQLAlchemy reads
        return "<unreadable URL>"
