"""Where a sync writes: one module per destination, all behind :class:`base.DestinationClient`."""
