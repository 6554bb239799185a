"""The project's one atomic writer, as sweep/ has always imported it; it lives in models/files.py, the lowest layer,
so models/, data/ and sweep/ all write through the same code."""
from models.files import json_safe, write_bytes_atomic, write_json_atomic, write_text_atomic

__all__ = ["json_safe", "write_bytes_atomic", "write_json_atomic", "write_text_atomic"]
