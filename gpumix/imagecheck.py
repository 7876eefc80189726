"""Whether an encoded image decodes completely (Pillow), and why not."""
import io

from PIL import Image, UnidentifiedImageError

__all__ = ["why_undecodable"]


def why_undecodable(data: bytes | bytearray | memoryview) -> str | None:
    """None if ``data`` (bytes-like, not modified) decodes completely, else the reason it does not."""
    if len(data) == 0:
        return "empty file"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()  # a full decode: truncation shows up here, not in open()
    except UnidentifiedImageError:
        # Pillow's own message names only its in-memory buffer object
        return "UnidentifiedImageError: not an image format Pillow can identify"
    except Exception as e:  # noqa: BLE001 - any decoder failure is the finding, reported with its message
        return f"{type(e).__name__}: {e}"
    return None
