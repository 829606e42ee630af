"""Test double of the Panzoto transcription backend (see ../README.md)."""
