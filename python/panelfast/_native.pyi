"""Type stubs of the Rust core, ``panelfast._native`` (checked by mypy.stubtest)."""

__all__ = [
    "BatchError",
    "DecodeError",
    "LayoutError",
    "PanelfastError",
    "RingError",
    "__version__",
]

__version__: str

class PanelfastError(Exception): ...
class LayoutError(PanelfastError): ...
class DecodeError(PanelfastError): ...
class RingError(PanelfastError): ...
class BatchError(PanelfastError): ...
