"""fastrnn."""
