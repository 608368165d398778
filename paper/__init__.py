"""The paper broker service: orders and market trades in, fills out (`tickflow paper`)."""
