"""cellblock: run untrusted, mostly LLM-generated Python without putting the host at risk."""

from __future__ import annotations

__version__ = "0.1.0"
