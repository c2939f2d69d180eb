"""Inference: the one tiling engine (tiles and full-width strips), memory probing and out-of-memory
retries, precision/threads/compile settings, the allocator, and :class:`Restorer`, which ties them to a
loaded model."""
